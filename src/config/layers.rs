//! Builds the configuration tree: `default.yaml`, then the environment's overlay, then
//! `TUTORQ__SECTION__KEY` variables, each layer merged key by key over the one before.

use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

use super::ConfigError;

/// Keys that may only come from the environment: a file that sets one is refused.
pub const ENV_ONLY_KEYS: &[&[&str]] = &[
    &["auth", "jwt_secret"],
    &["webhooks", "secret"],
    &["webhooks", "client_secrets"],
    &["providers", "openai", "api_key"],
    &["providers", "azure", "api_key"],
    &["providers", "azure", "bearer_token"],
    &["providers", "anthropic", "api_key"],
    &["audit", "hash_key"],
    &["metrics", "token"],
];

const ENV_PREFIX: &str = "TUTORQ__";

/// Reads and merges every layer into one YAML tree.
pub fn merged_tree(
    dir: &Path,
    environment: &str,
    env_vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Value, ConfigError> {
    let mut tree = read_layer(&dir.join("default.yaml"), true)?;
    let overlay = read_layer(&dir.join(format!("{environment}.yaml")), false)?;
    merge(&mut tree, overlay);
    for (name, value) in env_vars {
        let Some(path) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let keys: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
        if keys.iter().any(String::is_empty) {
            return Err(ConfigError::Invalid {
                key: name.clone(),
                reason: "empty key segment (use exactly two underscores between keys)".into(),
            });
        }
        set_path(&mut tree, &keys, parse_scalar(&value));
    }
    Ok(tree)
}

fn read_layer(path: &Path, required: bool) -> Result<Value, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(Value::Mapping(Mapping::new()));
        }
        Err(err) => {
            return Err(ConfigError::File {
                path: path.to_path_buf(),
                reason: err.to_string(),
            });
        }
    };
    let value: Value = serde_norway::from_str(&text).map_err(|err| ConfigError::File {
        path: path.to_path_buf(),
        reason: err.to_string(),
    })?;
    let value = match value {
        Value::Null => Value::Mapping(Mapping::new()),
        Value::Mapping(_) => value,
        _ => {
            return Err(ConfigError::File {
                path: path.to_path_buf(),
                reason: "the top level must be a mapping of sections".into(),
            });
        }
    };
    refuse_env_only_keys(path, &value)?;
    Ok(value)
}

fn refuse_env_only_keys(path: &Path, tree: &Value) -> Result<(), ConfigError> {
    for keys in ENV_ONLY_KEYS {
        let mut node = tree;
        let mut found = true;
        for key in *keys {
            match node.get(*key) {
                Some(next) => node = next,
                None => {
                    found = false;
                    break;
                }
            }
        }
        if found && !node.is_null() {
            let env_name = format!("{ENV_PREFIX}{}", keys.join("__").to_ascii_uppercase());
            return Err(ConfigError::File {
                path: PathBuf::from(path),
                reason: format!(
                    "{} is a secret and may only come from the environment ({env_name})",
                    keys.join(".")
                ),
            });
        }
    }
    Ok(())
}

/// An env value is read as a YAML scalar or flow collection, so `9000` is a number, `true` a
/// boolean and `[openai, mock]` a list; anything that does not parse stays a string.
fn parse_scalar(raw: &str) -> Value {
    match serde_norway::from_str::<Value>(raw) {
        Ok(Value::Null) if !raw.trim().is_empty() && raw.trim() != "~" && raw.trim() != "null" => {
            Value::String(raw.to_owned())
        }
        Ok(Value::Mapping(_)) | Err(_) => Value::String(raw.to_owned()),
        Ok(value) => value,
    }
}

fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Mapping(base), Value::Mapping(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

fn set_path(tree: &mut Value, keys: &[String], value: Value) {
    let mut node = tree;
    for key in keys {
        if !node.is_mapping() {
            *node = Value::Mapping(Mapping::new());
        }
        let Value::Mapping(map) = node else {
            unreachable!("node was just made a mapping")
        };
        node = map.entry(Value::String(key.clone())).or_insert(Value::Null);
    }
    *node = value;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn overlay_then_env_win_key_by_key() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "default.yaml",
            "server:\n  host: a\n  port: 1\nlog:\n  level: info\n",
        );
        write(dir.path(), "production.yaml", "server:\n  host: b\n");
        let env = vec![
            ("TUTORQ__SERVER__PORT".to_string(), "9000".to_string()),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let tree = merged_tree(dir.path(), "production", env).unwrap();
        assert_eq!(tree["server"]["host"], Value::String("b".into()));
        assert_eq!(tree["server"]["port"], Value::Number(9000.into()));
        assert_eq!(tree["log"]["level"], Value::String("info".into()));
    }

    #[test]
    fn missing_overlay_is_fine_missing_default_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let err = merged_tree(dir.path(), "development", vec![]).unwrap_err();
        assert!(err.to_string().contains("default.yaml"), "{err}");
        write(dir.path(), "default.yaml", "server: {port: 1}\n");
        assert!(merged_tree(dir.path(), "development", vec![]).is_ok());
    }

    #[test]
    fn secrets_in_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "default.yaml", "auth:\n  jwt_secret: oops\n");
        let err = merged_tree(dir.path(), "development", vec![]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("auth.jwt_secret"), "{text}");
        assert!(text.contains("TUTORQ__AUTH__JWT_SECRET"), "{text}");
        assert!(
            !text.contains("oops"),
            "the secret itself must not be echoed: {text}"
        );
    }

    #[test]
    fn env_values_parse_as_yaml_scalars() {
        assert_eq!(parse_scalar("true"), Value::Bool(true));
        assert_eq!(
            parse_scalar("0.5"),
            serde_norway::from_str::<Value>("0.5").unwrap()
        );
        assert_eq!(
            parse_scalar("redis://h:1/0"),
            Value::String("redis://h:1/0".into())
        );
        assert_eq!(parse_scalar("a: b"), Value::String("a: b".into()));
        assert!(parse_scalar("[openai, mock]").is_sequence());
    }
}
