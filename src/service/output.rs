//! Turns a model's text into the feature's result: plain text, or JSON checked against the
//! prompt's `output_schema`.

use serde_json::Value as Json;

use crate::prompts::Prompt;

/// Parses a structured answer, tolerating the Markdown code fence models like to add.
pub fn structured(prompt: &Prompt, text: &str) -> Result<Json, Vec<String>> {
    let body = strip_fence(text.trim());
    let value: Json =
        serde_json::from_str(body).map_err(|err| vec![format!("the answer is not JSON: {err}")])?;
    prompt.check_output(&value)?;
    Ok(value)
}

fn strip_fence(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("```") else {
        return text;
    };
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    rest.strip_suffix("```").unwrap_or(rest).trim()
}

#[cfg(test)]
mod tests {
    use super::strip_fence;

    #[test]
    fn fences_are_removed() {
        assert_eq!(strip_fence("```json\n{\"a\":1}\n```"), "{\"a\":1}");
        assert_eq!(strip_fence("```\n[1]\n```"), "[1]");
        assert_eq!(strip_fence("{}"), "{}");
    }
}
