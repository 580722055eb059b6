//! Checks a request's `input` object against a prompt's declared inputs and constraints.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json};

use super::Prompt;
use super::definition::{InputKind, InputSpec};

/// Longest `string` input when the prompt does not say, in characters.
const DEFAULT_STRING_MAX: usize = 200;

/// Field path (`input.question`) → what is wrong with it.
pub type FieldErrors = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    #[error("the input is invalid")]
    Invalid(FieldErrors),
    #[error("`{field}` mentions the forbidden topic `{topic}`")]
    ForbiddenTopic { field: String, topic: String },
}

/// Returns the input with every declared name present (absent optional ones as `null`), ready
/// for strict rendering.
pub fn validate(prompt: &Prompt, input: &Json) -> Result<Map<String, Json>, InputError> {
    let mut errors = FieldErrors::new();
    let Some(given) = input.as_object() else {
        errors.insert("input".into(), "must be a JSON object".into());
        return Err(InputError::Invalid(errors));
    };
    for name in given.keys() {
        if !prompt.inputs.contains_key(name) {
            let known: Vec<&str> = prompt.inputs.keys().map(String::as_str).collect();
            errors.insert(
                format!("input.{name}"),
                format!(
                    "is not an input of this feature (expected: {})",
                    known.join(", ")
                ),
            );
        }
    }
    let mut data = Map::new();
    for (name, spec) in &prompt.inputs {
        let value = given.get(name).filter(|v| !v.is_null());
        match value {
            None if spec.required => {
                errors.insert(format!("input.{name}"), "is required".into());
            }
            None => {
                data.insert(name.clone(), Json::Null);
            }
            Some(value) => match check(prompt, spec, value) {
                Ok(()) => {
                    data.insert(name.clone(), value.clone());
                }
                Err(message) => {
                    errors.insert(format!("input.{name}"), message);
                }
            },
        }
    }
    if !errors.is_empty() {
        return Err(InputError::Invalid(errors));
    }
    forbidden_topics(prompt, &data)?;
    Ok(data)
}

fn check(prompt: &Prompt, spec: &InputSpec, value: &Json) -> Result<(), String> {
    match spec.kind {
        InputKind::Text => {
            let text = value.as_str().ok_or("must be a string")?;
            let min = spec.min_length.or(prompt.constraints.min_input_length);
            let max = spec.max_length.or(prompt.constraints.max_input_length);
            length(text, min, max)?;
            allowed(spec, value)
        }
        InputKind::String => {
            let text = value.as_str().ok_or("must be a string")?;
            if text.trim().is_empty() {
                return Err("must not be blank".into());
            }
            length(
                text,
                spec.min_length,
                Some(spec.max_length.unwrap_or(DEFAULT_STRING_MAX)),
            )?;
            allowed(spec, value)
        }
        InputKind::Integer => {
            let number = value.as_i64().ok_or("must be an integer")?;
            range(spec, number as f64)?;
            allowed(spec, value)
        }
        InputKind::Number => {
            let number = value.as_f64().ok_or("must be a number")?;
            range(spec, number)?;
            allowed(spec, value)
        }
        InputKind::Boolean => value
            .as_bool()
            .map(|_| ())
            .ok_or_else(|| "must be true or false".into()),
        InputKind::StringList => {
            let items = value.as_array().ok_or("must be a list of strings")?;
            if let Some(min) = spec.min_length
                && items.len() < min
            {
                return Err(format!(
                    "must have at least {min} items (got {})",
                    items.len()
                ));
            }
            if let Some(max) = spec.max_length
                && items.len() > max
            {
                return Err(format!(
                    "must have at most {max} items (got {})",
                    items.len()
                ));
            }
            for (index, item) in items.iter().enumerate() {
                let text = item
                    .as_str()
                    .ok_or_else(|| format!("item {index} must be a string"))?;
                if text.trim().is_empty() {
                    return Err(format!("item {index} must not be blank"));
                }
                length(text, None, Some(DEFAULT_STRING_MAX))
                    .map_err(|e| format!("item {index} {e}"))?;
                allowed(spec, item).map_err(|e| format!("item {index} {e}"))?;
            }
            Ok(())
        }
    }
}

fn length(text: &str, min: Option<usize>, max: Option<usize>) -> Result<(), String> {
    let count = text.chars().count();
    if let Some(min) = min
        && count < min
    {
        return Err(format!(
            "must be at least {min} characters long (got {count})"
        ));
    }
    if let Some(max) = max
        && count > max
    {
        return Err(format!(
            "must be at most {max} characters long (got {count})"
        ));
    }
    Ok(())
}

fn range(spec: &InputSpec, number: f64) -> Result<(), String> {
    match (spec.min, spec.max) {
        (Some(min), Some(max)) if number < min || number > max => {
            Err(format!("must be between {min} and {max} (got {number})"))
        }
        (Some(min), None) if number < min => Err(format!("must be at least {min} (got {number})")),
        (None, Some(max)) if number > max => Err(format!("must be at most {max} (got {number})")),
        _ => Ok(()),
    }
}

fn allowed(spec: &InputSpec, value: &Json) -> Result<(), String> {
    match &spec.allowed {
        Some(values) if !values.contains(value) => {
            let list: Vec<String> = values.iter().map(Json::to_string).collect();
            Err(format!("must be one of {}", list.join(", ")))
        }
        _ => Ok(()),
    }
}

fn forbidden_topics(prompt: &Prompt, data: &Map<String, Json>) -> Result<(), InputError> {
    if prompt.topics.is_empty() {
        return Ok(());
    }
    for (name, spec) in &prompt.inputs {
        if spec.kind != InputKind::Text || spec.secret {
            continue;
        }
        let Some(text) = data.get(name).and_then(Json::as_str) else {
            continue;
        };
        if let Some(topic) = prompt.forbidden_topic_in(text) {
            return Err(InputError::ForbiddenTopic {
                field: format!("input.{name}"),
                topic: topic.to_owned(),
            });
        }
    }
    Ok(())
}
