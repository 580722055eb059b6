//! Loads `prompts/*.yaml`, checks every file, and keeps the versions of each feature's prompt.
//!
//! File names: `<feature>.yaml` or `<feature>@<version>.yaml`; the `version` inside is the truth
//! (a file name that says otherwise is refused). Without a pinned version a request gets the
//! highest one.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use handlebars::Handlebars;

use super::builder;
use super::definition::{InputKind, PromptFile};
use super::fold::Topic;
use super::{Prompt, RenderedPrompt};
use crate::feature::Feature;

/// One problem in one file, with the line where it is when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub reason: String,
}

impl FileError {
    /// The problem without the path: `line 13: reason`.
    pub fn located_reason(&self) -> String {
        match self.line {
            Some(line) => format!("line {line}: {}", self.reason),
            None => self.reason.clone(),
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path.display(), self.reason),
            None => write!(f, "{}: {}", self.path.display(), self.reason),
        }
    }
}

/// Every problem found while loading a prompt directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadError(pub Vec<FileError>);

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("feature `{feature}` has no prompt version `{version}` (available: {})", available.join(", "))]
    UnknownVersion {
        feature: Feature,
        version: String,
        available: Vec<String>,
    },
}

/// An immutable, fully checked set of prompts; reloading builds a new one.
pub struct PromptSet {
    engine: Handlebars<'static>,
    by_feature: BTreeMap<Feature, Vec<Arc<Prompt>>>,
}

impl fmt::Debug for PromptSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.by_feature
                    .iter()
                    .map(|(f, v)| (f, v.iter().map(|p| &p.version).collect::<Vec<_>>())),
            )
            .finish()
    }
}

impl PromptSet {
    pub fn load(dir: &Path, ignore_diacritics: bool) -> Result<Self, LoadError> {
        let dir_error = |reason: String| {
            LoadError(vec![FileError {
                path: dir.to_path_buf(),
                line: None,
                reason,
            }])
        };
        let entries = std::fs::read_dir(dir)
            .map_err(|err| dir_error(format!("cannot read the prompt directory: {err}")))?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                matches!(
                    path.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml")
                )
            })
            .collect();
        paths.sort();

        let mut engine = builder::new_engine();
        let mut by_feature: BTreeMap<Feature, Vec<Arc<Prompt>>> = BTreeMap::new();
        let mut errors = Vec::new();
        let mut failed_features = Vec::new();
        for path in paths {
            match load_file(&path, ignore_diacritics, &mut engine) {
                Ok(prompt) => {
                    let versions = by_feature.entry(prompt.feature).or_default();
                    if let Some(other) = versions.iter().find(|p| p.version == prompt.version) {
                        errors.push(FileError {
                            path: path.clone(),
                            line: None,
                            reason: format!(
                                "version {} of `{}` is already defined in {}",
                                prompt.version,
                                prompt.feature,
                                other.source.display()
                            ),
                        });
                    } else {
                        versions.push(Arc::new(prompt));
                    }
                }
                Err(err) => {
                    failed_features.push(feature_of(&path));
                    errors.push(err);
                }
            }
        }
        for feature in Feature::ALL {
            if !by_feature.contains_key(&feature) && !failed_features.contains(&Some(feature)) {
                errors.push(FileError {
                    path: dir.join(format!("{feature}.yaml")),
                    line: None,
                    reason: format!("no prompt for feature `{feature}`"),
                });
            }
        }
        if !errors.is_empty() {
            return Err(LoadError(errors));
        }
        for versions in by_feature.values_mut() {
            versions.sort_by(|a, b| compare_versions(&a.version, &b.version));
        }
        Ok(Self { engine, by_feature })
    }

    /// The pinned version, or the highest one.
    pub fn get(&self, feature: Feature, version: Option<&str>) -> Result<Arc<Prompt>, LookupError> {
        let versions = self
            .by_feature
            .get(&feature)
            .expect("every feature has a prompt after load");
        match version {
            None => Ok(versions.last().expect("non-empty").clone()),
            Some(wanted) => versions
                .iter()
                .find(|p| p.version == wanted)
                .cloned()
                .ok_or_else(|| LookupError::UnknownVersion {
                    feature,
                    version: wanted.to_owned(),
                    available: versions.iter().map(|p| p.version.clone()).collect(),
                }),
        }
    }

    /// `(feature, versions)` for every feature, lowest version first.
    pub fn versions(&self) -> Vec<(Feature, Vec<String>)> {
        self.by_feature
            .iter()
            .map(|(feature, prompts)| {
                (
                    *feature,
                    prompts.iter().map(|p| p.version.clone()).collect(),
                )
            })
            .collect()
    }

    /// Renders both templates with already validated input data.
    pub fn render(
        &self,
        prompt: &Prompt,
        data: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<RenderedPrompt, String> {
        let data = serde_json::Value::Object(data.clone());
        Ok(RenderedPrompt {
            system: builder::render(&self.engine, &prompt.system_key(), &data)?,
            user: builder::render(&self.engine, &prompt.user_key(), &data)?,
        })
    }
}

/// The running prompt set, swapped whole on reload so a request never sees half of one.
pub struct PromptRegistry {
    dir: PathBuf,
    ignore_diacritics: bool,
    current: RwLock<Arc<PromptSet>>,
}

impl PromptRegistry {
    pub fn load(dir: &Path, ignore_diacritics: bool) -> Result<Self, LoadError> {
        let set = PromptSet::load(dir, ignore_diacritics)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            ignore_diacritics,
            current: RwLock::new(Arc::new(set)),
        })
    }

    pub fn snapshot(&self) -> Arc<PromptSet> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Loads the directory again; on any error the running set stays in place.
    pub fn reload(&self) -> Result<Arc<PromptSet>, LoadError> {
        let set = Arc::new(PromptSet::load(&self.dir, self.ignore_diacritics)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = set.clone();
        Ok(set)
    }
}

/// The feature a file name claims, if it names one.
fn feature_of(path: &Path) -> Option<Feature> {
    let stem = path.file_stem()?.to_str()?;
    stem.split('@').next()?.parse().ok()
}

fn load_file(
    path: &Path,
    ignore_diacritics: bool,
    engine: &mut Handlebars<'static>,
) -> Result<Prompt, FileError> {
    let fail = |line: Option<usize>, reason: String| FileError {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|err| fail(None, err.to_string()))?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let (feature_name, file_version) = match stem.split_once('@') {
        Some((feature, version)) => (feature, Some(version)),
        None => (stem, None),
    };
    let feature: Feature = feature_name.parse().map_err(|_| {
        fail(
            None,
            format!(
                "`{feature_name}` is not a feature; name the file <feature>.yaml or <feature>@<version>.yaml with one of: {}",
                Feature::names().join(", ")
            ),
        )
    })?;
    let file: PromptFile = serde_norway::from_str(&text).map_err(|err| {
        let message = err.to_string();
        // The line goes in front; drop serde's " at line L column C" tail.
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(head, _)| head);
        fail(err.location().map(|l| l.line()), message.to_owned())
    })?;
    if let Some(file_version) = file_version
        && file_version != file.version
    {
        return Err(fail(
            line_of(&text, "version:"),
            format!(
                "the file name says version {file_version} but the file says {}",
                file.version
            ),
        ));
    }
    if file.version.trim().is_empty() || file.name.trim().is_empty() {
        return Err(fail(None, "`name` and `version` must not be empty".into()));
    }
    let constraints = file
        .constraints
        .into_constraints()
        .map_err(|reason| fail(line_of(&text, "constraints:"), reason))?;
    if !(0.0..=2.0).contains(&file.parameters.temperature) {
        return Err(fail(
            line_of(&text, "temperature:"),
            "parameters.temperature must be between 0 and 2".into(),
        ));
    }
    if file.parameters.max_tokens == 0 {
        return Err(fail(
            line_of(&text, "max_tokens:"),
            "parameters.max_tokens must be greater than 0".into(),
        ));
    }

    let mut prompt = Prompt {
        feature,
        name: file.name,
        version: file.version,
        description: file.description,
        parameters: file.parameters,
        ignore_diacritics: constraints.ignore_diacritics.unwrap_or(ignore_diacritics),
        topics: Vec::new(),
        constraints,
        inputs: file.inputs,
        output_schema: None,
        output_validator: None,
        source: path.to_path_buf(),
    };
    prompt.topics = prompt
        .constraints
        .forbidden_topics
        .iter()
        .map(|t| Topic::new(t, prompt.ignore_diacritics))
        .collect();
    if prompt.topics.iter().any(Topic::is_empty) {
        return Err(fail(
            line_of(&text, "forbidden_topics"),
            "a forbidden topic has no letters or digits".into(),
        ));
    }
    if prompt.topics.is_empty() && prompt.inputs.values().all(|i| i.kind != InputKind::Text) {
        // Nothing to check: fine, the prompt takes only labels and numbers.
    }

    for (key, source, template_key) in [
        ("system_prompt", &file.system_prompt, prompt.system_key()),
        ("user_template", &file.user_template, prompt.user_key()),
    ] {
        let key_line = line_of(&text, &format!("{key}:"));
        let (template, names) = builder::compile(source).map_err(|err| {
            // A block scalar (`key: |`) starts on the line after the key.
            let line = match (key_line, err.template_line) {
                (Some(key), Some(inner)) if is_block_scalar(&text, key) => Some(key + inner),
                (key, _) => key,
            };
            fail(line, format!("{key}: {}", err.message))
        })?;
        if let Some(undeclared) = names.iter().find(|n| !prompt.inputs.contains_key(*n)) {
            return Err(fail(
                line_of(&text, &format!("{{{{{undeclared}"))
                    .or_else(|| line_of(&text, &format!("{key}:"))),
                format!("{key}: `{{{{{undeclared}}}}}` is not declared in `inputs`"),
            ));
        }
        engine.register_template(&template_key, template);
    }

    if let Some(schema) = file.output_schema {
        let validator = jsonschema::validator_for(&schema).map_err(|err| {
            fail(
                line_of(&text, "output_schema:"),
                format!("output_schema is not a valid JSON Schema: {err}"),
            )
        })?;
        prompt.output_schema = Some(Arc::new(schema));
        prompt.output_validator = Some(Arc::new(validator));
    }
    Ok(prompt)
}

/// Whether the 1-based `line` ends in a YAML block-scalar indicator (`|`, `|-`, `>` ...).
fn is_block_scalar(text: &str, line: usize) -> bool {
    text.lines()
        .nth(line - 1)
        .and_then(|l| l.split_once(':'))
        .is_some_and(|(_, rest)| rest.trim().starts_with(['|', '>']))
}

/// 1-based line of the first occurrence of `needle`.
fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.lines()
        .position(|line| line.contains(needle))
        .map(|i| i + 1)
}

/// Dotted numeric comparison (`1.10` > `1.9`), falling back to text for non-numeric parts.
fn compare_versions(a: &str, b: &str) -> Ordering {
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let order = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    _ => x.cmp(y),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(compare_versions("1.10", "1.9"), Ordering::Greater);
        assert_eq!(compare_versions("1.0", "1.0"), Ordering::Equal);
        assert_eq!(compare_versions("1", "1.0"), Ordering::Less);
        assert_eq!(compare_versions("2.0-beta", "2.0-alpha"), Ordering::Greater);
    }
}
