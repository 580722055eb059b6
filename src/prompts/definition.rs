//! The prompt file format (`prompts/*.yaml`): what a file may say, parsed strictly.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value as Json;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptFile {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    pub system_prompt: String,
    pub user_template: String,
    pub parameters: Parameters,
    #[serde(default)]
    pub constraints: ConstraintsSyntax,
    #[serde(default)]
    pub inputs: BTreeMap<String, InputSpec>,
    #[serde(default)]
    pub output_schema: Option<Json>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Parameters {
    pub temperature: f32,
    pub max_tokens: u32,
    #[serde(default)]
    pub model: Option<String>,
}

/// Constraints as the seed writes them (a list of one-key maps) or as one map.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ConstraintsSyntax {
    List(Vec<serde_json::Map<String, Json>>),
    Map(serde_json::Map<String, Json>),
}

impl Default for ConstraintsSyntax {
    fn default() -> Self {
        Self::Map(serde_json::Map::new())
    }
}

impl ConstraintsSyntax {
    pub fn into_constraints(self) -> Result<Constraints, String> {
        let mut merged = serde_json::Map::new();
        let entries: Vec<serde_json::Map<String, Json>> = match self {
            Self::List(list) => list,
            Self::Map(map) => vec![map],
        };
        for entry in entries {
            for (key, value) in entry {
                if merged.insert(key.clone(), value).is_some() {
                    return Err(format!("constraint `{key}` is given twice"));
                }
            }
        }
        serde_json::from_value(Json::Object(merged)).map_err(|err| format!("constraints: {err}"))
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraints {
    /// Longest `text` input, in Unicode characters.
    #[serde(default)]
    pub max_input_length: Option<usize>,
    /// Shortest `text` input, in Unicode characters.
    #[serde(default)]
    pub min_input_length: Option<usize>,
    /// Words or phrases refused in `text` inputs, matched as whole words after Turkish folding.
    #[serde(default)]
    pub forbidden_topics: Vec<String>,
    /// Overrides `prompts.ignore_diacritics` for this prompt.
    #[serde(default)]
    pub ignore_diacritics: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// Free text written by a person: length constraints and forbidden topics apply.
    Text,
    /// A short label (a subject, a level); `allowed` lists its values.
    String,
    Integer,
    Number,
    Boolean,
    /// A list of short strings.
    StringList,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    #[serde(rename = "type")]
    pub kind: InputKind,
    /// Reference material for the model that the client must never get back (a hint's
    /// `solution`): not checked for forbidden topics, hashed in the audit trail.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
    /// The student's own words (an attempt, an answer): a request holding it is answered from
    /// the response cache only with that same user's earlier answers, never another user's
    /// (a `cached: true` would tell a student someone else sent exactly this).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub personal: bool,
    #[serde(default = "required_by_default")]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The only values accepted (strings or numbers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<Json>>,
    /// Numeric range, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Length in characters (strings) or in items (lists); for `text` it overrides the constraints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
}

fn required_by_default() -> bool {
    true
}
