//! Answer-specific leaks: the hint contains the solution's final answer, in any spelling.

use super::answer::{FinalAnswer, classify};
use super::lexer::Scan;
use super::numbers::{self, Convention, Rational};
use super::{Leak, LeakKind, choice, expr, markers, options, phrase, roman, spelled};

/// The first place where `hint` reveals `answer`. Numbers and expressions that also occur in
/// `question` are excused (the hint may repeat the question's data), except in its options.
pub(super) fn answer_leak(hint: &Scan, answer: &FinalAnswer, question: &str) -> Option<Leak> {
    let data = options::data(question);
    match answer {
        FinalAnswer::Number(value) => {
            let data = Scan::new(&data);
            if numbers::all_values(&data).contains(value) {
                return None;
            }
            numbers::matches(hint, Convention::Turkish)
                .into_iter()
                .find(|found| !found.weak && found.values.contains(value))
                .map(|found| Leak::new(LeakKind::Number, hint.slice(found.first, found.last)))
                .or_else(|| roman_leak(hint, *value, &data))
        }
        FinalAnswer::Choice(letter) => {
            choice_leak(hint, *letter).or_else(|| option_leak(hint, *letter, question))
        }
        FinalAnswer::Expression(expression) => {
            let needle = expr::tokens(expression);
            if expr::contains(&expr::tokens(&data), &needle) {
                return None;
            }
            let hay = expr::tokens(&hint.text);
            expr::find(&hay, &needle)
                .map(|at| Leak::new(LeakKind::Expression, &hay[at..at + needle.len()].concat()))
        }
        FinalAnswer::Phrase(words) => {
            let find = |text: &str| {
                let hay = crate::prompts::words(text, true);
                phrase::find(&hay, words, phrase::inflects)
                    .map(|at| Leak::new(LeakKind::Phrase, &hay[at..at + words.len()].join(" ")))
            };
            find(&hint.text).or_else(|| spelled::joined(hint).and_then(|text| find(&text)))
        }
    }
}

/// A small integer answer written in Roman numerals ("XIX. yüzyıl" for 19), unless the
/// question writes it so too.
fn roman_leak(hint: &Scan, value: Rational, data: &Scan) -> Option<Leak> {
    let wanted = u32::try_from(value.numer())
        .ok()
        .filter(|_| value.denom() == 1 && (1..=roman::MAX_ANSWER).contains(&value.numer()))?;
    if roman::numerals(data).iter().any(|&(v, _)| v == wanted) {
        return None;
    }
    roman::numerals(hint)
        .into_iter()
        .find(|&(v, _)| v == wanted)
        .map(|(_, i)| Leak::new(LeakKind::Number, hint.raw(i)))
}

/// `letter` in a choice context ("(C)", "C şıkkı", "option C") or after a marker ("cevap C").
fn choice_leak(hint: &Scan, letter: char) -> Option<Leak> {
    if let Some(mention) = choice::mentions(hint)
        .into_iter()
        .find(|m| m.letter == letter)
    {
        return Some(Leak::new(
            LeakKind::Choice,
            hint.slice(mention.first, mention.last),
        ));
    }
    (0..hint.len())
        .filter(|&i| markers::is_marker(hint, i))
        .find_map(|i| {
            let start = markers::skip_fillers(hint, i + 1);
            let (found, last) = choice::at(hint, start, true)?;
            (found == letter).then(|| Leak::new(LeakKind::Choice, hint.slice(i, last)))
        })
}

/// The content of the right option ("B) 6" → 6), named in the hint.
fn option_leak(hint: &Scan, letter: char, question: &str) -> Option<Leak> {
    let options = options::Options::of(question)?;
    let content_answer = classify(options.content(letter)?, Convention::of(question))?;
    if matches!(content_answer, FinalAnswer::Choice(_)) {
        return None;
    }
    let leak = answer_leak(hint, &content_answer, &options.stem)?;
    Some(Leak::new(LeakKind::OptionText, &leak.matched))
}
