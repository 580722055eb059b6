//! Tutoring safety around requests (issue 10): moderation flags on inputs, the student's own
//! attempt before higher hint levels, and the answer guard on every generated hint (inline,
//! queued or streamed). The checks themselves are pure (`crate::guard`); this module applies
//! them on the request path.

use std::sync::Arc;

use serde_json::{Map, Value as Json, json};

use super::AiService;
use super::job::AiRequestJob;
use crate::auth::{Principal, Role};
use crate::feature::Feature;
use crate::guard::{Flag, Lang, Moderation};
use crate::prompts::{FieldErrors, InputError, InputKind, Prompt, RenderedPrompt};
use crate::providers::{AiResponse, CompletionOptions, Usage};

/// Said to the model when its hint revealed the answer.
const STRICTER: &str = "ÖNEMLİ: Önceki ipucun cevabı ele verdi. Bu kez son sonucu, sayısal \
cevabı, doğru şıkkı ya da \"cevap/sonuç ... dır\" gibi bir ifadeyi kesinlikle yazma; yalnızca \
bu seviyeye uygun, öğrenciyi düşündüren bir ipucu ver.";

/// Shown beside the answer when the input looks like distress, self-harm or abuse.
const SUPPORT: &str = "Yazdıkların için teşekkürler; bunları tek başına taşımak zorunda \
değilsin. Güvendiğin bir öğretmenle, rehber öğretmeninle ya da ailenden biriyle konuşabilirsin. \
Acil bir durumdaysan 112'yi ara; ALO 183 Sosyal Destek Hattı da 7/24 ücretsiz yanıt verir.";

/// The moderation flags of the text a person wrote (the prompt's `text` inputs that are not
/// secret), each category once.
pub fn input_flags(
    moderation: &Moderation,
    prompt: &Prompt,
    data: &Map<String, Json>,
) -> Vec<Flag> {
    let mut flags: Vec<Flag> = Vec::new();
    for (name, spec) in &prompt.inputs {
        if spec.kind != InputKind::Text || spec.secret {
            continue;
        }
        let Some(text) = data.get(name).and_then(Json::as_str) else {
            continue;
        };
        for flag in moderation.flags(text) {
            if !flags.iter().any(|f| f.category == flag.category) {
                flags.push(flag);
            }
        }
    }
    flags
}

/// A supportive note for flags that are about the student's wellbeing, not about cheating.
pub fn support_note(flags: &[Flag]) -> Option<&'static str> {
    use crate::guard::Category;
    flags
        .iter()
        .any(|f| {
            matches!(
                f.category,
                Category::Distress | Category::SelfHarm | Category::Abuse
            )
        })
        .then_some(SUPPORT)
}

/// What the guard knows about one hint request.
pub struct HintGuard {
    prompt: Arc<Prompt>,
    question: String,
    solution: Option<String>,
    level: u8,
}

impl HintGuard {
    pub fn new(prompt: Arc<Prompt>, data: &Map<String, Json>) -> Self {
        let text = |name: &str| data.get(name).and_then(Json::as_str).map(str::to_owned);
        Self {
            question: text("question").unwrap_or_default(),
            solution: text("solution"),
            level: data
                .get("hint_level")
                .and_then(Json::as_u64)
                .map_or(1, |l| l.clamp(1, 3) as u8),
            prompt,
        }
    }

    /// Why `hint` may not be shown (the leak's kind), or `None` when it may. The prompt's
    /// forbidden topics refuse a hint only where they introduce a value or a choice ("sonuç
    /// 14"); they are about what a student may ask, and alone on a hint they state nothing.
    pub fn refuses(&self, hint: &str) -> Option<String> {
        if let crate::guard::Verdict::Leak(leak) =
            crate::guard::check(hint, self.solution.as_deref(), &self.question)
        {
            return Some(
                serde_json::to_value(leak.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "leak".into()),
            );
        }
        crate::guard::topic_statement(hint, self.prompt.forbidden_topics())
            .map(|_| "forbidden_topic".to_owned())
    }
}

/// A streamed hint held back until it is safe: whole sentences are released once the text up
/// to them passes the guard; after a refusal nothing more is released.
pub struct HeldHint<'a> {
    guard: &'a HintGuard,
    text: String,
    released: usize,
    pub refused: Option<String>,
}

impl<'a> HeldHint<'a> {
    pub fn new(guard: &'a HintGuard) -> Self {
        Self {
            guard,
            text: String::new(),
            released: 0,
            refused: None,
        }
    }

    /// Takes a streamed chunk; returns the text that may be shown now.
    pub fn push(&mut self, chunk: &str) -> Option<String> {
        self.text.push_str(chunk);
        if self.refused.is_some() {
            return None;
        }
        let end = self.released + sentence_end(&self.text[self.released..])?;
        self.release_to(end)
    }

    /// The stream ended: the rest, if the whole hint passes.
    pub fn finish(&mut self) -> Option<String> {
        if self.refused.is_some() || self.released == self.text.len() {
            return None;
        }
        self.release_to(self.text.len())
    }

    fn release_to(&mut self, end: usize) -> Option<String> {
        if let Some(kind) = self.guard.refuses(&self.text[..end]) {
            self.refused = Some(kind);
            return None;
        }
        let out = self.text[self.released..end].to_owned();
        self.released = end;
        Some(out)
    }
}

/// The byte offset just past the last sentence end in `text` (a `.`, `!`, `?` or `:` followed
/// by whitespace, or a newline), if any. The dot of a number standing alone ("1. Önce …",
/// "81. Çünkü …") ends no sentence: whether it labels a list item or states the result shows
/// only with the words after it.
fn sentence_end(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let number_dot = |dot: usize| {
        let digits = bytes[..dot]
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_digit())
            .count();
        digits > 0 && (digits == dot || bytes[dot - digits - 1].is_ascii_whitespace())
    };
    (1..bytes.len()).rev().find(|&i| {
        let after_mark = matches!(bytes[i - 1], b'.' | b'!' | b'?' | b':')
            && bytes[i].is_ascii_whitespace()
            && !(bytes[i - 1] == b'.' && number_dot(i - 1));
        after_mark || bytes[i - 1] == b'\n'
    })
}

/// How the guard ended for one hint.
pub struct Guarded {
    pub response: AiResponse,
    /// A leaking hint was regenerated and the new one passed.
    pub regenerated: bool,
    /// Both hints leaked: the answer is the safe generic hint for the level.
    pub safe_hint: bool,
}

impl AiService {
    /// Students must show their own attempt before level ≥ `require_attempt_from_level` hints
    /// in the configured subjects.
    pub(super) fn check_attempt(
        &self,
        principal: &Principal,
        feature: Feature,
        prompt: &Prompt,
        data: &Map<String, Json>,
    ) -> Result<(), InputError> {
        let safety = &self.settings.safety;
        if feature != Feature::Hint
            || principal.role != Role::Student
            || !prompt.inputs.contains_key("student_attempt")
        {
            return Ok(());
        }
        let level = data.get("hint_level").and_then(Json::as_u64).unwrap_or(1);
        let subject = data
            .get("subject")
            .and_then(Json::as_str)
            .unwrap_or_default();
        let folded = crate::prompts::fold(subject, true);
        let applies = safety
            .require_attempt_subjects
            .iter()
            .any(|s| s == "*" || crate::prompts::fold(s, true) == folded);
        let attempted = data
            .get("student_attempt")
            .and_then(Json::as_str)
            .is_some_and(|a| !a.trim().is_empty());
        if applies && level >= u64::from(safety.require_attempt_from_level) && !attempted {
            let errors: FieldErrors = [(
                "input.student_attempt".to_owned(),
                format!(
                    "is required for level {level} hints in {subject}: show your own attempt first"
                ),
            )]
            .into();
            return Err(InputError::Invalid(errors));
        }
        Ok(())
    }

    /// Audits a request's moderation flags (once per task: the event id comes from it).
    pub(super) fn audit_flags(&self, facts: &crate::audit::RequestFacts, flags: &[Flag]) {
        if !flags.is_empty() {
            self.audit
                .flag(facts, serde_json::to_value(flags).expect("flags serialize"));
        }
    }

    /// The guard's last word on a hint: a refused hint is asked for once more with a stricter
    /// instruction; a second refusal answers the level's safe hint. `refused` is the verdict
    /// already reached (a streamed hint is checked as it arrives).
    pub(super) async fn guard_hint(
        &self,
        job: &AiRequestJob,
        guard: &HintGuard,
        rendered: &RenderedPrompt,
        options: &CompletionOptions,
        first: AiResponse,
        refused: Option<String>,
    ) -> Result<Guarded, super::ServiceError> {
        let Some(kind) = refused.or_else(|| guard.refuses(&first.text)) else {
            return Ok(Guarded {
                response: first,
                regenerated: false,
                safe_hint: false,
            });
        };
        let facts = crate::audit::RequestFacts {
            prompt: Some(guard.prompt.reference()),
            ..crate::audit::RequestFacts::of(job.facts())
        };
        tracing::info!(task_id = %job.task_id, leak = %kind, "the hint revealed the answer; asking once more");
        let stricter = RenderedPrompt {
            system: format!("{}\n\n{STRICTER}", rendered.system),
            user: rendered.user.clone(),
        };
        let mut second = self
            .providers
            .complete(job.feature, &stricter, options)
            .await?;
        second.usage = Usage::new(
            first.usage.prompt_tokens + second.usage.prompt_tokens,
            first.usage.completion_tokens + second.usage.completion_tokens,
        );
        let again = guard.refuses(&second.text);
        self.audit.guard(
            &facts,
            json!({
                "first": kind,
                "second": again,
                "outcome": if again.is_some() { "safe_hint" } else { "regenerated" },
            }),
        );
        if again.is_none() {
            return Ok(Guarded {
                response: second,
                regenerated: true,
                safe_hint: false,
            });
        }
        second.text = crate::guard::safe_hint(guard.level, Lang::Tr).to_owned();
        Ok(Guarded {
            response: second,
            regenerated: true,
            safe_hint: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(solution: &str) -> HintGuard {
        let set = crate::prompts::PromptSet::load(std::path::Path::new("prompts"), true)
            .expect("the shipped prompts load");
        let prompt = set.get(Feature::Hint, Some("2.0")).unwrap();
        let data = serde_json::json!({
            "question": "2x + 3 = 27 ise x kaçtır?", "subject": "Matematik", "hint_level": 3,
            "solution": solution,
        });
        HintGuard::new(prompt, data.as_object().unwrap())
    }

    #[test]
    fn sentences_end_at_a_mark_before_space_or_at_a_newline() {
        assert_eq!(
            sentence_end("Önce 3 çıkar. Sonra"),
            Some("Önce 3 çıkar.".len())
        );
        assert_eq!(sentence_end("1.5 kere"), None);
        assert_eq!(sentence_end("Bak: şimdi\nne"), Some("Bak: şimdi\n".len()));
        assert_eq!(sentence_end("yok"), None);
        assert_eq!(sentence_end("1. Verilenleri"), None, "a list item's number");
        assert_eq!(sentence_end("81. Çünkü"), None);
        assert_eq!(sentence_end("Topla. 12. Sonra"), Some("Topla.".len()));
    }

    #[test]
    fn a_streamed_hint_is_released_by_sentence_until_one_leaks() {
        let guard = guard("x = 12");
        let mut held = HeldHint::new(&guard);
        let mut shown = String::new();
        for chunk in [
            "Önce 3'ü ",
            "karşıya at. Son",
            "ra 2'ye böl: x = 1",
            "2 olur. Bravo!",
        ] {
            shown.extend(held.push(chunk));
        }
        shown.extend(held.finish());
        // The sentence with the answer never shows; what came before it does.
        assert_eq!(shown, "Önce 3'ü karşıya at. Sonra 2'ye böl:");
        assert_eq!(held.refused.as_deref(), Some("number"));
    }

    #[test]
    fn a_clean_streamed_hint_is_released_whole() {
        let guard = guard("x = 12");
        let mut held = HeldHint::new(&guard);
        let text = "İki taraftan 3 çıkar. Sonra ne yapman gerektiğini düşün";
        let mut shown = String::new();
        let chars: Vec<char> = text.chars().collect();
        for chunk in chars.chunks(7) {
            shown.extend(held.push(&chunk.iter().collect::<String>()));
        }
        shown.extend(held.finish());
        assert!(held.refused.is_none());
        assert_eq!(shown, text);
    }

    #[test]
    fn forbidden_topics_on_the_hint_refuse_only_what_they_introduce() {
        let guard = guard("x = 12");
        for good in [
            "Bu sorunun cevap anahtarı yok, dene.",
            "Bulacağın sonuç negatif olabilir, işaretini kontrol et.",
            "Check your answer by putting it back into the equation.",
        ] {
            assert_eq!(guard.refuses(good), None, "{good}");
        }
        assert_eq!(
            guard.refuses("Sonuç on dört.").as_deref(),
            Some("statement")
        );
        assert_eq!(guard.refuses("İki taraftan 3 çıkar."), None);
    }

    /// A configured topic that is no result word of the guard's own ("püf noktası") refuses
    /// a hint where it introduces a value, and only there.
    #[test]
    fn a_configured_topic_refuses_the_value_it_introduces() {
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir("prompts").unwrap() {
            let path = entry.unwrap().path();
            let mut text = std::fs::read_to_string(&path).unwrap();
            if path.ends_with("hint@2.0.yaml") {
                text = text.replace(
                    r#"forbidden_topics: ["cevap", "sonuç", "answer"]"#,
                    r#"forbidden_topics: ["püf noktası"]"#,
                );
            }
            std::fs::write(dir.path().join(path.file_name().unwrap()), text).unwrap();
        }
        let set = crate::prompts::PromptSet::load(dir.path(), true).unwrap();
        let prompt = set.get(Feature::Hint, Some("2.0")).unwrap();
        assert_eq!(
            prompt.forbidden_topics().collect::<Vec<_>>(),
            ["püf noktası"]
        );
        let data =
            serde_json::json!({"question": "2x + 3 = 27 ise x kaçtır?", "subject": "Matematik"});
        let guard = HintGuard::new(prompt, data.as_object().unwrap());
        assert_eq!(
            guard.refuses("Püf noktası: on iki.").as_deref(),
            Some("forbidden_topic")
        );
        assert_eq!(
            guard.refuses("Püf noktası şu: C.").as_deref(),
            Some("forbidden_topic")
        );
        assert_eq!(guard.refuses("Püf noktası: işaretlere dikkat et."), None);
        assert_eq!(guard.refuses("Sorunun püf noktası işarettir."), None);
    }
}
