//! What one attempt of a task produced, typed once: the result and how an AI answer was made
//! (usage, provider, model, latency, cache, degradation, prompt), or the error. The service
//! makes it from the provider's answer, the engine stores it on the task, and the history, the
//! audit trail, the metering, the batches, the webhooks and the HTTP view read its fields. It is
//! serialised at each store's edge and nowhere else.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// Tokens one answer used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

impl Usage {
    pub fn new(prompt_tokens: u32, completion_tokens: u32) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    ContentFilter,
}

/// The prompt (and its version) an answer was made with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PromptRef {
    pub name: String,
    pub version: String,
}

/// How an AI answer was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Answer {
    pub usage: Usage,
    /// The provider that answered (`cache` for a response-cache hit, `mock` when degraded).
    pub provider: String,
    pub model: String,
    pub finish_reason: FinishReason,
    pub prompt: PromptRef,
    /// Time spent producing the answer (prompt rendering and provider calls).
    pub latency_ms: u64,
    /// Answered from the response cache: no provider call, no tokens charged.
    pub cached: bool,
    /// Every provider failed and the mock answered instead (the answer is a placeholder).
    pub degraded: bool,
    /// "provider: error" for each provider attempt that failed before this answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_providers: Vec<String>,
    /// The hint guard refused the first hint and this one was generated again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub regenerated: bool,
    /// The hint guard refused both hints: this is the level's safe generic hint.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub guarded: bool,
    /// Moderation flags of the input (`distress`, `self_harm`, `abuse`, `cheating`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// A supportive note to show beside the answer (distress, self-harm or abuse flags).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support: Option<String>,
}

/// Why an attempt failed (failed, dead or retrying): a stable kind and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TaskError {
    pub kind: String,
    #[serde(default)]
    pub message: String,
}

/// What one attempt produced: a result (with, for an AI request, how it was made) or an error.
/// Stored and shown flat: `result`, the answer's fields, or `error`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Json>,
    #[serde(flatten)]
    pub answer: Option<Answer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<TaskError>,
}

/// The schema is the answer's own with every field optional (a queued task, an error or a job
/// of another kind has none of them), plus `result` and `error`: made from [`Answer`]'s derived
/// schema, so the two cannot drift apart.
impl PartialSchema for Outcome {
    fn schema() -> RefOr<Schema> {
        let RefOr::T(Schema::Object(mut object)) = Answer::schema() else {
            unreachable!("Answer derives an object schema")
        };
        object.required.clear();
        object.description = Some(
            "What the last attempt produced: the result and, for an AI request, how it was made; \
             or the error"
                .into(),
        );
        let result = ObjectBuilder::new()
            .schema_type(SchemaType::AnyValue)
            .description(Some(
                "Succeeded: text for free-form features, a JSON object for structured ones (what a \
             job of another kind returned)",
            ));
        object.properties.insert("result".into(), result.into());
        let error = RefOr::Ref(Ref::from_schema_name(TaskError::name()));
        object.properties.insert("error".into(), error);
        RefOr::T(Schema::Object(object))
    }
}

impl ToSchema for Outcome {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((TaskError::name().into(), TaskError::schema()));
        <Answer as ToSchema>::schemas(schemas);
    }
}

impl Outcome {
    /// An AI answer and how it was made.
    pub fn answered(result: Json, answer: Answer) -> Self {
        Self {
            result: Some(result),
            answer: Some(answer),
            error: None,
        }
    }

    /// The result of a job of another kind.
    pub fn value(result: Json) -> Self {
        Self {
            result: Some(result),
            ..Self::default()
        }
    }

    pub fn error(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: Some(TaskError {
                kind: kind.into(),
                message: message.into(),
            }),
            ..Self::default()
        }
    }

    /// Tokens the attempt used, which a quota reservation settles to (none without an answer).
    pub fn tokens_used(&self) -> u64 {
        self.answer
            .as_ref()
            .map_or(0, |answer| u64::from(answer.usage.total_tokens))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer() -> Answer {
        Answer {
            usage: Usage::new(3, 4),
            provider: "openai".into(),
            model: "gpt-4o-mini".into(),
            finish_reason: FinishReason::Stop,
            prompt: PromptRef {
                name: "hint".into(),
                version: "2.0".into(),
            },
            latency_ms: 12,
            cached: false,
            degraded: false,
            failed_providers: Vec::new(),
            regenerated: false,
            guarded: false,
            flags: Vec::new(),
            support: None,
        }
    }

    #[test]
    fn an_answer_is_stored_flat_and_read_back_whole() {
        let outcome = Outcome::answered(json!("Önce 3'ü karşıya at."), answer());
        let stored = serde_json::to_value(&outcome).unwrap();
        assert_eq!(stored["usage"]["total_tokens"], 7);
        assert_eq!(stored["cached"], false);
        assert_eq!(stored["prompt"]["version"], "2.0");
        assert!(stored.get("error").is_none() && stored.get("regenerated").is_none());
        let back: Outcome = serde_json::from_value(stored).unwrap();
        assert_eq!(back, outcome);
        assert_eq!(back.tokens_used(), 7);
    }

    #[test]
    fn an_error_or_a_plain_value_has_no_answer() {
        let stored = json!({ "error": { "kind": "attempts_exhausted", "message": "m" } });
        let back: Outcome = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(back, Outcome::error("attempts_exhausted", "m"));
        assert_eq!(serde_json::to_value(&back).unwrap(), stored);
        let value: Outcome = serde_json::from_value(json!({ "result": { "echo": 1 } })).unwrap();
        assert_eq!(value, Outcome::value(json!({ "echo": 1 })));
        assert_eq!(value.tokens_used(), 0);
    }
}
