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

/// Invisible characters taken out of every string of an input before it is checked, rendered
/// or audited: soft hyphen, zero-width space / non-joiner / joiner, the left-to-right and
/// right-to-left marks, word joiner and invisible operators, the Mongolian vowel separator and
/// the byte-order mark. They carry nothing a prompt needs and could split a forbidden word
/// ("ce\u{200b}vap") past the topic check.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
}

/// Characters a text input may not hold (422): control characters other than tab, line feed
/// and carriage return (NUL among them), and the bidirectional embeddings, overrides and
/// isolates that reorder how text is shown (U+202A–U+202E, U+2066–U+2069, "Trojan Source").
fn refused_char(text: &str) -> Option<char> {
    text.chars().find(|c| {
        (c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    })
}

/// Takes the invisible characters out of every string in `input`, in place.
pub fn clean(input: &mut Json) {
    match input {
        Json::String(text) if text.chars().any(is_invisible) => text.retain(|c| !is_invisible(c)),
        Json::Array(items) => items.iter_mut().for_each(clean),
        Json::Object(fields) => fields.values_mut().for_each(clean),
        _ => {}
    }
}

/// A given string: not blank, and without refused characters.
fn printable(text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err("must not be blank".into());
    }
    match refused_char(text) {
        Some(c) => Err(format!(
            "must not hold control or bidirectional-override characters (found U+{:04X})",
            c as u32
        )),
        None => Ok(()),
    }
}

fn check(prompt: &Prompt, spec: &InputSpec, value: &Json) -> Result<(), String> {
    match spec.kind {
        InputKind::Text => {
            let text = value.as_str().ok_or("must be a string")?;
            printable(text)?;
            let min = spec.min_length.or(prompt.constraints.min_input_length);
            let max = spec.max_length.or(prompt.constraints.max_input_length);
            length(text, min, max)?;
            allowed(spec, value)
        }
        InputKind::String => {
            let text = value.as_str().ok_or("must be a string")?;
            printable(text)?;
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
                printable(text).map_err(|e| format!("item {index} {e}"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_characters_go_and_controls_and_overrides_are_refused() {
        let mut input = serde_json::json!({
            "q": "ce\u{200b}vap\u{feff} ne?",
            "list": ["a\u{00ad}b"],
        });
        clean(&mut input);
        assert_eq!(input["q"], "cevap ne?");
        assert_eq!(input["list"][0], "ab");
        assert!(printable("satır\nsatır\tsekme").is_ok());
        assert!(printable("   \n ").unwrap_err().contains("blank"));
        assert!(printable("a\u{0}b").unwrap_err().contains("U+0000"));
        assert!(printable("abc\u{202E}fed").unwrap_err().contains("U+202E"));
        assert!(printable("x\u{2066}y").is_err());
        assert!(printable("\u{0085}").is_err());
    }
}
