//! Builds a deterministic JSON value that satisfies a JSON Schema (the subset prompts use:
//! object, array, string, integer, number, boolean, enum, const, min/max bounds).

use serde_json::{Map, Value as Json};

/// Most items the mock puts in an array that allows more.
const MAX_MOCK_ITEMS: u64 = 5;

pub fn instance(schema: &Json, rng: &mut fastrand::Rng, topic: &str, name: &str) -> Json {
    if let Some(value) = schema.get("const") {
        return value.clone();
    }
    if let Some(Json::Array(values)) = schema.get("enum")
        && !values.is_empty()
    {
        return values[rng.usize(..values.len())].clone();
    }
    let kind = match schema.get("type") {
        Some(Json::String(kind)) => kind.as_str(),
        Some(Json::Array(kinds)) => kinds
            .iter()
            .filter_map(Json::as_str)
            .find(|k| *k != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => "string",
    };
    match kind {
        "object" => {
            let mut object = Map::new();
            if let Some(Json::Object(properties)) = schema.get("properties") {
                for (key, sub) in properties {
                    object.insert(key.clone(), instance(sub, rng, topic, key));
                }
            }
            Json::Object(object)
        }
        "array" => {
            let min = schema.get("minItems").and_then(Json::as_u64).unwrap_or(0);
            let max = schema.get("maxItems").and_then(Json::as_u64);
            let count = max.unwrap_or(min.max(1)).min(MAX_MOCK_ITEMS).max(min);
            let items = schema
                .get("items")
                .cloned()
                .unwrap_or(Json::Object(Map::new()));
            Json::Array(
                (0..count)
                    .map(|i| instance(&items, rng, topic, &format!("{name} {}", i + 1)))
                    .collect(),
            )
        }
        "integer" => {
            let min = schema.get("minimum").and_then(Json::as_i64).unwrap_or(0);
            let max = schema
                .get("maximum")
                .and_then(Json::as_i64)
                .unwrap_or(min.max(0) + 100);
            Json::from(rng.i64(min..=max.max(min)))
        }
        "number" => {
            let min = schema.get("minimum").and_then(Json::as_f64).unwrap_or(0.0);
            let max = schema
                .get("maximum")
                .and_then(Json::as_f64)
                .unwrap_or(min + 100.0);
            let value = min + rng.f64() * (max - min).max(0.0);
            Json::from((value * 100.0).round() / 100.0)
        }
        "boolean" => Json::Bool(rng.bool()),
        "null" => Json::Null,
        _ => {
            let min = schema.get("minLength").and_then(Json::as_u64).unwrap_or(0) as usize;
            let mut text = format!("{name}: {topic}");
            while text.chars().count() < min {
                text.push_str(" …");
            }
            if let Some(max) = schema.get("maxLength").and_then(Json::as_u64) {
                text = text.chars().take(max as usize).collect();
            }
            Json::String(text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_output_schema_gets_a_valid_instance() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            let file: serde_json::Value = serde_norway::from_str(&text).unwrap();
            let Some(schema) = file.get("output_schema") else {
                continue;
            };
            let validator = jsonschema::validator_for(schema).unwrap();
            for seed in 0..50 {
                let value = instance(schema, &mut fastrand::Rng::with_seed(seed), "Konu", "root");
                let errors: Vec<String> = validator
                    .iter_errors(&value)
                    .map(|e| e.to_string())
                    .collect();
                assert!(errors.is_empty(), "seed {seed}: {errors:?}\n{value}");
            }
            checked += 1;
        }
        assert!(
            checked >= 3,
            "expected the JSON features' schemas, found {checked}"
        );
    }

    #[test]
    fn same_seed_same_value() {
        let schema = serde_json::json!({"type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 1000}}});
        let a = instance(&schema, &mut fastrand::Rng::with_seed(7), "t", "r");
        let b = instance(&schema, &mut fastrand::Rng::with_seed(7), "t", "r");
        assert_eq!(a, b);
    }
}
