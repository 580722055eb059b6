//! The final answer of a reference solution: after the last "cevap"/"answer"-like marker,
//! else a choice letter in context, else after the last `=`, else the whole short text.

use super::choice;
use super::expr;
use super::lexer::{Kind, Scan};
use super::markers;
use super::numbers::{self, Convention, Rational};

/// The final answer of a solution, in the form the guard compares hints against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinalAnswer {
    /// An exact number: "12", "12,5", "1.000,5 TL", "3/4", "-5", "%25" (as 25).
    Number(Rational),
    /// A multiple-choice letter, `'A'..='E'`.
    Choice(char),
    /// An expression, normalised: folded, whitespace-free, `*` dropped, powers as `^`.
    Expression(String),
    /// Folded words (accents dropped), without apostrophe suffixes: "İstanbul'dur" →
    /// `["istanbul"]`.
    Phrase(Vec<String>),
}

/// Phrases longer than this are explanations, not answers.
const MAX_PHRASE_WORDS: usize = 6;

/// Extracts the final answer of `solution`; `None` when there is nothing recognisable
/// (empty text, or a long explanation without a marker or `=`).
pub fn final_answer(solution: &str) -> Option<FinalAnswer> {
    let scan = Scan::new(solution);
    if scan.len() == 0 {
        return None;
    }
    let convention = Convention::of(solution);

    // "Cevap: C", "Doğru cevap (B) şıkkıdır", "Sonuç olarak x = 5", "The answer is 1,000".
    for marker in (0..scan.len())
        .rev()
        .filter(|&i| markers::is_marker(&scan, i))
    {
        let start = markers::skip_fillers(&scan, marker + 1);
        if let Some((letter, _)) = choice::at(&scan, start, true) {
            return Some(FinalAnswer::Choice(letter));
        }
        let end = sentence_end(&scan, start);
        let start = last_equals(&scan, start, end).map_or(start, |eq| eq + 1);
        if let Some(answer) = span(&scan, start, end).and_then(|text| classify(text, convention)) {
            return Some(answer);
        }
    }

    // "B şıkkı.", "(C)".
    if let Some(mention) = choice::mentions(&scan).last() {
        return Some(FinalAnswer::Choice(mention.letter));
    }

    // "2x + 3 = 27 → x = 12".
    if let Some(eq) = last_equals(&scan, 0, scan.len()) {
        let end = sentence_end(&scan, eq + 1);
        return span(&scan, eq + 1, end).and_then(|text| classify(text, convention));
    }

    // "C", "c.", or a short text.
    if let Some((letter, last)) = choice::at(&scan, 0, false).or_else(|| choice::at(&scan, 0, true))
        && (last + 1..scan.len()).all(|i| scan.sym(i).is_some())
    {
        return Some(FinalAnswer::Choice(letter));
    }
    classify(&scan.text, convention)
}

/// The index of the last `=` in tokens `start..end`.
fn last_equals(scan: &Scan, start: usize, end: usize) -> Option<usize> {
    (start..end).rev().find(|&i| scan.sym(i) == Some('='))
}

/// The first token from `start` on that ends a sentence (`.`, `!`, `?`, `;`, a new line),
/// or the end.
fn sentence_end(scan: &Scan, start: usize) -> usize {
    (start..scan.len())
        .find(|&i| {
            (i > start && scan.tokens[i].line_start)
                || scan.sym(i).is_some_and(|c| ".!?;".contains(c))
        })
        .unwrap_or(scan.len())
}

/// The text of tokens `start..end`, if any.
fn span(scan: &Scan, start: usize, end: usize) -> Option<&str> {
    (start < end).then(|| scan.slice(start, end - 1))
}

/// Classifies a short answer text as a number, an expression or a phrase.
pub(super) fn classify(text: &str, convention: Convention) -> Option<FinalAnswer> {
    let scan = Scan::new(text);
    let (start, end) = trimmed(&scan)?;
    let scan = Scan::new(scan.slice(start, end - 1));

    let found = numbers::matches(&scan, convention);
    let widest = found.iter().max_by_key(|m| (m.last - m.first, m.first));
    let widest_covers_all =
        widest.is_some_and(|w| found.iter().all(|m| w.first <= m.first && m.last <= w.last));
    let inside_widest = |i: usize| widest.is_some_and(|w| w.first <= i && i <= w.last);
    let operators = (0..scan.len())
        .filter(|&i| !inside_widest(i))
        .filter(|&i| scan.sym(i).is_some_and(|c| "+-*/^=()√<>".contains(c)))
        .count();
    let variable_after_number = (1..scan.len()).any(|i| {
        scan.glued(i)
            && scan.is_number(i - 1)
            && scan
                .single_letter(i)
                .is_some_and(|c| "xyzabcnt".contains(c.to_ascii_lowercase()))
    });
    let words: Vec<&str> = (0..scan.len()).filter_map(|i| scan.word(i)).collect();
    // A number in words is the answer only with at most a unit beside it: "on dört cm" is
    // 14, "Dokuz Eylül" and "İkinci Dünya Savaşı" are names.
    let spelled = widest.is_some_and(|w| (w.first..=w.last).any(|i| scan.word(i).is_some()));
    let only_units_beside = (0..scan.len())
        .filter(|&i| !inside_widest(i))
        .filter_map(|i| scan.word(i))
        .all(|w| w.chars().count() <= 3);

    if let Some(number) = widest
        && widest_covers_all
        && operators == 0
        && !variable_after_number
        && (!spelled || only_units_beside)
    {
        return number.values.first().copied().map(FinalAnswer::Number);
    }
    if (operators > 0 || variable_after_number) && words.iter().all(|w| expr::is_math_word(w)) {
        let expression = expr::normalize_expression(&scan.text);
        return (!expression.is_empty()).then_some(FinalAnswer::Expression(expression));
    }
    let phrase = phrase_words(&scan);
    (!phrase.is_empty() && phrase.len() <= MAX_PHRASE_WORDS).then_some(FinalAnswer::Phrase(phrase))
}

/// Token range `start..end` of `scan` without leading fillers and punctuation, trailing
/// punctuation, apostrophe suffixes ("'dir") and closing words ("olur").
fn trimmed(scan: &Scan) -> Option<(usize, usize)> {
    let mut start = markers::skip_fillers(scan, 0);
    while scan.sym(start).is_some_and(|c| "=.;!?'\"".contains(c)) {
        start = markers::skip_fillers(scan, start + 1);
    }
    let mut end = scan.len();
    while end > start {
        let last = end - 1;
        if scan.sym(last).is_some_and(|c| ".,;:!?'\"".contains(c)) {
            end -= 1;
        } else if scan.is_suffix(last) {
            end -= 2;
        } else if scan.word(last).is_some_and(markers::is_tail_word) && last > start {
            end -= 1;
        } else {
            break;
        }
    }
    (start < end).then_some((start, end))
}

/// The folded words of a phrase answer, apostrophe suffixes and leading articles dropped.
fn phrase_words(scan: &Scan) -> Vec<String> {
    let mut words = Vec::new();
    for i in 0..scan.len() {
        if scan.is_suffix(i) {
            continue;
        }
        match &scan.tokens[i].kind {
            Kind::Word(_) | Kind::Number => {
                words.extend(crate::prompts::words(scan.raw(i), true));
            }
            Kind::Sym(_) => {}
        }
    }
    while words
        .first()
        .is_some_and(|w| matches!(w.as_str(), "the" | "a" | "an"))
        && words.len() > 1
    {
        words.remove(0);
    }
    words
}
