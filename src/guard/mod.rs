//! Answer-leak guard for hints, and moderation flags for student messages. Pure logic: no
//! I/O, no configuration beyond what the caller passes in.
//!
//! A hint must never reveal the answer. [`check`] refuses a hint that
//! - contains the reference solution's final answer ([`final_answer`]) in any spelling: a
//!   number in either separator convention or as an equivalent fraction (`0,75` = `3/4` =
//!   `6/8`), the choice letter in a choice context ("(C)", "C şıkkı", "cevap C"), the
//!   expression (`x² + 2x + 1` = `x^2+2x+1`), the phrase ("İSTANBUL'dur"), or, for a choice
//!   answer, the right option's content from the question;
//! - states a final result, solution or not: "cevap 12", "sonuç 42'dir", "the answer is 7",
//!   "yanıt B", a bare value standing as a sentence ("81. Çünkü …"), or ending with "= 4".
//!
//! Numbers count in every spelling: digits of any script, words in Turkish and English
//! ("on dört", "beşte iki", "yüzde kırk", "eksi yedi", "forty-two"), Roman numerals for a
//! small integer answer ("XIX. yüzyıl"); a phrase counts spelled letter by letter too
//! ("k-l-o-r-o-f-i-l"). [`topic_statement`] applies a prompt's forbidden topics to a hint.
//!
//! Numbers and expressions that the question itself contains are not counted as leaks:
//! the hint may repeat the data.

mod answer;
mod choice;
mod digits;
mod expr;
mod leak;
mod lexer;
mod lexicon;
mod markers;
mod moderation;
mod numbers;
mod numerals;
mod options;
mod phrase;
mod rational;
mod roman;
mod safe;
mod spelled;
mod statement;
#[cfg(test)]
mod tests;
mod topics;

use serde::Serialize;

pub use answer::{FinalAnswer, final_answer};
pub use moderation::{Category, Flag, Moderation, ModerationError};
pub use rational::Rational;
pub use safe::{Lang, safe_hint};

use lexer::Scan;

/// What kind of leak a hint contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeakKind {
    /// The answer's number, in any spelling.
    Number,
    /// The answer's choice letter, in a choice context.
    Choice,
    /// The answer's expression.
    Expression,
    /// The answer's words.
    Phrase,
    /// The content of the right option of a multiple-choice question.
    OptionText,
    /// A stated final result: "cevap 12", "the answer is C".
    Statement,
    /// A hint ending with "= <number>", or a sentence ending with "x = <number>".
    Equation,
}

/// What a refused hint revealed, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leak {
    pub kind: LeakKind,
    /// The offending text, as found in the (normalised) hint.
    pub matched: String,
}

impl Leak {
    fn new(kind: LeakKind, matched: &str) -> Self {
        Self {
            kind,
            matched: matched.trim().to_owned(),
        }
    }
}

/// The guard's decision on a hint. Serialises as `{"verdict":"clean"}` or
/// `{"verdict":"leak","kind":"number","matched":"0,75"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Clean,
    Leak(Leak),
}

impl Verdict {
    /// True for [`Verdict::Leak`].
    pub fn is_leak(&self) -> bool {
        matches!(self, Verdict::Leak(_))
    }
}

/// Where `hint` reveals `answer`, if it does. Only the answer itself is looked for; see
/// [`check`] for final-result statements and for the question's own numbers.
pub fn leaks(hint: &str, answer: &FinalAnswer) -> Option<Leak> {
    leak::answer_leak(&Scan::new(hint), answer, "")
}

/// Where `hint` uses one of a prompt's forbidden `topics` (words the input may not contain:
/// "cevap", "sonuç", "answer") to introduce a value or a choice ("sonuç 14", "cevap D", "the
/// answer is seven"). A forbidden word alone on the output states nothing and passes:
/// "bulacağın sonuç negatif olabilir, işaretini kontrol et" is a good hint.
pub fn topic_statement<'t>(hint: &str, topics: impl IntoIterator<Item = &'t str>) -> Option<Leak> {
    topics::introduces_value(&Scan::new(hint), topics)
}

/// Decides whether `hint` may be shown for `question`: it must not contain the final answer
/// of `solution` (numbers and expressions that `question` contains excepted), nor state a
/// final result.
pub fn check(hint: &str, solution: Option<&str>, question: &str) -> Verdict {
    let scan = Scan::new(hint);
    let answer_leak = solution
        .and_then(final_answer)
        .and_then(|answer| leak::answer_leak(&scan, &answer, question));
    match answer_leak.or_else(|| statement::find(&scan, question)) {
        Some(leak) => Verdict::Leak(leak),
        None => Verdict::Clean,
    }
}
