//! The prompt layer: YAML prompt files, their registry, strict rendering and input constraints.

mod builder;
mod definition;
mod fold;
mod inputs;
mod registry;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

pub use definition::{Constraints, InputKind, InputSpec, Parameters};
pub use fold::{fold, words};
pub use inputs::{FieldErrors, InputError, clean as clean_input, validate};
pub use registry::{FileError, LoadError, LookupError, PromptRegistry, PromptSet};

use crate::feature::Feature;
use crate::outcome::PromptRef;

/// One checked version of one feature's prompt.
#[derive(Debug)]
pub struct Prompt {
    pub feature: Feature,
    pub name: String,
    pub version: String,
    pub description: String,
    pub parameters: Parameters,
    pub constraints: Constraints,
    pub ignore_diacritics: bool,
    pub inputs: BTreeMap<String, InputSpec>,
    /// JSON Schema of the answer, for features that answer in JSON.
    pub output_schema: Option<Arc<serde_json::Value>>,
    output_validator: Option<Arc<jsonschema::Validator>>,
    topics: Vec<fold::Topic>,
    pub source: PathBuf,
}

impl Prompt {
    /// Its name and version, as answers and audit events name it.
    pub fn reference(&self) -> PromptRef {
        PromptRef {
            name: self.name.clone(),
            version: self.version.clone(),
        }
    }

    fn system_key(&self) -> String {
        format!("{}@{}/system", self.feature, self.version)
    }

    fn user_key(&self) -> String {
        format!("{}@{}/user", self.feature, self.version)
    }

    /// The first of the prompt's forbidden topics that `text` mentions (whole words, folded).
    pub fn forbidden_topic_in(&self, text: &str) -> Option<&str> {
        if self.topics.is_empty() {
            return None;
        }
        let words = fold::words(text, self.ignore_diacritics);
        self.topics
            .iter()
            .find(|t| t.occurs_in(&words))
            .map(|t| t.original.as_str())
    }

    /// The prompt's forbidden topics, as configured.
    pub fn forbidden_topics(&self) -> impl Iterator<Item = &str> {
        self.topics.iter().map(|t| t.original.as_str())
    }

    /// The names of the inputs marked `secret`.
    pub fn secret_inputs(&self) -> impl Iterator<Item = &str> {
        self.inputs
            .iter()
            .filter(|(_, spec)| spec.secret)
            .map(|(name, _)| name.as_str())
    }

    /// Checks a structured answer against `output_schema`; every violation, with its location.
    pub fn check_output(&self, value: &serde_json::Value) -> Result<(), Vec<String>> {
        let Some(validator) = &self.output_validator else {
            return Ok(());
        };
        let problems: Vec<String> = validator
            .iter_errors(value)
            .map(|err| {
                format!(
                    "{}: {err}",
                    if err.instance_path().as_str().is_empty() {
                        "/"
                    } else {
                        err.instance_path().as_str()
                    }
                )
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// A rendered prompt, ready for a provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderedPrompt {
    pub system: String,
    pub user: String,
}
