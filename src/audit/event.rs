//! One audit event: what a request asked (`pre_request`) and how it ended (`success` or
//! `error`). Ids are derived from the task id, so a task has at most one event of each kind
//! however often it is reported (a retried write or a re-run after a crash cannot add rows).

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    PreRequest,
    Success,
    Error,
    /// A moderation flag on a request's input (distress, self-harm, abuse, cheating).
    Flag,
    /// The hint guard refused a generated hint (it revealed the answer).
    Guard,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PreRequest => "pre_request",
            Self::Success => "success",
            Self::Error => "error",
            Self::Flag => "flag",
            Self::Guard => "guard",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditEvent {
    pub id: Uuid,
    pub kind: Kind,
    pub request_id: String,
    pub task_id: Option<Uuid>,
    pub user_id: String,
    pub role: String,
    pub feature: String,
    pub prompt_name: Option<String>,
    pub prompt_version: Option<String>,
    /// When it happened (Unix µs).
    pub at_us: i64,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub prompt_tokens: i32,
    pub completion_tokens: i32,
    pub cost_usd: f64,
    pub duration_ms: Option<i32>,
    pub cached: bool,
    pub degraded: bool,
    pub error_kind: Option<String>,
    pub client_ip: Option<String>,
    /// Input, answer, error details: redacted and capped.
    pub payload: Json,
}

/// The id of a task's event of one kind, the same every time (a retried insert cannot add a
/// row); a final event (`success` or `error`) shares one id.
pub fn event_id(task_id: &str, kind: Kind) -> Uuid {
    let slot = match kind {
        Kind::PreRequest => "pre_request",
        Kind::Success | Kind::Error => "final",
        Kind::Flag => "flag",
        Kind::Guard => "guard",
    };
    let digest = Sha256::digest(format!("{task_id}/{slot}").as_bytes());
    let mut bytes: [u8; 16] = digest[..16].try_into().expect("16 bytes");
    // Task ids are UUIDv7: their first 48 bits are the creation time in ms. Leading with them
    // keeps each new event near the right edge of the primary key's index (an append instead
    // of a random insert); the other 74 bits stay the digest's.
    if let Ok(task) = Uuid::parse_str(task_id)
        && task.get_version_num() == 7
    {
        bytes[..6].copy_from_slice(&task.as_bytes()[..6]);
    }
    Uuid::new_v8(bytes)
}

/// SHA-256 of the input as sent, to find identical requests without storing them twice.
pub fn input_hash(input: &Json) -> String {
    let mut digest = Sha256::new();
    serde_json::to_writer(&mut digest, input).expect("a JSON value always serialises");
    format!("{:x}", digest.finalize())
}

/// Replaces the values of the named keys, at any depth, with `hmac-sha256:<hex>` of their
/// JSON text under `key` (plain SHA-256, `sha256:<hex>`, without a key): equal values stay
/// comparable, none can be read back.
pub fn hash_in_place(value: &mut Json, fields: &[String], key: Option<&str>) {
    match value {
        Json::Object(map) => {
            for (name, value) in map.iter_mut() {
                if fields.iter().any(|f| f.eq_ignore_ascii_case(name)) {
                    *value = Json::String(keyed_hash(&value.to_string(), key));
                } else {
                    hash_in_place(value, fields, key);
                }
            }
        }
        Json::Array(items) => {
            for item in items {
                hash_in_place(item, fields, key);
            }
        }
        _ => {}
    }
}

fn keyed_hash(text: &str, key: Option<&str>) -> String {
    use hmac::Mac as _;
    match key {
        Some(key) => {
            let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key.as_bytes())
                .expect("HMAC takes any key length");
            mac.update(text.as_bytes());
            format!("hmac-sha256:{:x}", mac.finalize().into_bytes())
        }
        None => format!("sha256:{:x}", Sha256::digest(text.as_bytes())),
    }
}

/// [`redact`] in place, for values the caller hands over.
pub fn redact_in_place(value: &mut Json, fields: &[String], max_bytes: usize) {
    match value {
        Json::Object(map) => {
            for (key, value) in map.iter_mut() {
                if fields.iter().any(|f| f.eq_ignore_ascii_case(key)) {
                    *value = json!("[redacted]");
                } else {
                    redact_in_place(value, fields, max_bytes);
                }
            }
        }
        Json::Array(items) => {
            for item in items {
                redact_in_place(item, fields, max_bytes);
            }
        }
        Json::String(text) if text.len() > max_bytes => {
            let cut = redact(&Json::String(std::mem::take(text)), fields, max_bytes);
            *value = cut;
        }
        _ => {}
    }
}

/// `value` with the named keys' values replaced and long strings cut (on a char boundary).
pub fn redact(value: &Json, fields: &[String], max_bytes: usize) -> Json {
    match value {
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(key, value)| {
                    let value = if fields.iter().any(|f| f.eq_ignore_ascii_case(key)) {
                        json!("[redacted]")
                    } else {
                        redact(value, fields, max_bytes)
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        Json::Array(items) => {
            Json::Array(items.iter().map(|v| redact(v, fields, max_bytes)).collect())
        }
        Json::String(text) if text.len() > max_bytes => {
            let mut end = max_bytes;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            json!(format!(
                "{}… [cut: {} of {} bytes]",
                &text[..end],
                end,
                text.len()
            ))
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_per_task_and_kind() {
        let task = "0191c3a4-1111-7000-8000-000000000001";
        assert_eq!(
            event_id(task, Kind::PreRequest),
            event_id(task, Kind::PreRequest)
        );
        assert_eq!(event_id(task, Kind::Success), event_id(task, Kind::Error));
        assert_ne!(
            event_id(task, Kind::PreRequest),
            event_id(task, Kind::Success)
        );
        assert_ne!(
            event_id(task, Kind::Success),
            event_id("0191c3a4-1111-7000-8000-000000000002", Kind::Success)
        );
    }

    #[test]
    fn the_input_hash_is_sha256_of_the_json_text() {
        let input = json!({ "question": "2x + 3 = 11", "n": [1, 2] });
        assert_eq!(
            input_hash(&input),
            format!("{:x}", Sha256::digest(input.to_string().as_bytes()))
        );
    }

    #[test]
    fn secrets_are_redacted_and_long_text_cut() {
        let input = json!({
            "question": "ş".repeat(10),
            "solution": "x = 4",
            "nested": [{ "API_KEY": "sk-123", "ok": 1 }],
        });
        let out = redact(&input, &["solution".into(), "api_key".into()], 5);
        assert_eq!(out["solution"], "[redacted]");
        assert_eq!(out["nested"][0]["API_KEY"], "[redacted]");
        assert_eq!(out["nested"][0]["ok"], 1);
        // 5 bytes cut back to the boundary of the two-byte `ş`: 4 bytes, two letters.
        assert_eq!(out["question"], "şş… [cut: 4 of 20 bytes]");
    }
}
