//! Final-result statements, recognised without a solution: a marker followed by a value
//! ("cevap 12", "sonuç 42'dir", "the answer is 7", "yanıt B"), a value followed by a marker
//! ("12 doğru cevaptır", "C is the answer", "C şıkkı doğru"), a hint that ends with
//! "= <number>", and a value standing alone as a sentence ("81. Çünkü …").

use std::collections::HashSet;

use super::lexer::Scan;
use super::numbers::{self, Convention, Found, Rational};
use super::{Leak, LeakKind, choice, expr, markers, options};

/// The first final-result statement in `hint`. An ending equation that the question itself
/// contains ("2x + 3 = 27") is excused.
pub(super) fn find(hint: &Scan, question: &str) -> Option<Leak> {
    let found = Found::new(hint, Convention::Turkish);
    marker_then_value(hint, &found)
        .or_else(|| value_then_marker(hint, &found))
        .or_else(|| choice_declared_correct(hint))
        .or_else(|| ending_equation(hint, &found, question))
        .or_else(|| bare_value(hint, &found, question))
}

/// Words after which a number is an operand or a description, not a value: "cevabı 2 ile
/// çarp", "cevabın 2 katı", "cevap 12'den fazla", "the answer is more than 3".
const NOT_VALUE: &[&str] = &[
    "ile", "ila", "ye", "ya", "fazla", "eksik", "az", "arti", "eksi", "carpi", "bolu", "by",
    "times", "more", "less", "fewer", "than", "plus", "minus",
];

/// True when the number ending at `last` is an operand or a description, not a value:
/// "sonucu 12'ye böl", "cevabı 2 ile çarp", "cevap 3 basamaklı", or a heading ("Çözüm 1:").
/// A copula ("12'dir", "12'ydi") keeps it a value.
fn is_operand(scan: &Scan, last: usize) -> bool {
    if scan.sym(last + 1) == Some('\'') && scan.is_suffix(last + 2) {
        let suffix = scan.word(last + 2).unwrap_or_default();
        let copula = ["di", "du", "ti", "tu", "ydi", "ydu"]
            .iter()
            .any(|c| suffix.starts_with(c));
        return !copula;
    }
    if scan.sym(last + 1) == Some(':') && !scan.is_number(last + 2) {
        // "Çözüm 1: ...", "Answer 2:": a heading.
        return true;
    }
    // "olmalı" closes a value ("cevap 7 olmalı"); "basamaklı" describes it.
    scan.word(last + 1).is_some_and(|w| {
        NOT_VALUE.contains(&w)
            || w.starts_with("kat")
            || ((w.ends_with("li") || w.ends_with("lu")) && !markers::is_tail_word(w))
    })
}

/// True when the value ending at `last` closes its sentence ("cevap bir.", "the answer is
/// one!"), maybe with a copula or a closing word: then "bir" is the number, not the article
/// of "sonuç bir kesir olacak".
fn closes(scan: &Scan, last: usize) -> bool {
    let mut k = last + 1;
    if scan.sym(k) == Some('\'') && scan.is_suffix(k + 1) {
        k += 2;
    }
    while scan.word(k).is_some_and(markers::is_tail_word) {
        k += 1;
    }
    k >= scan.len() || scan.tokens[k].line_start || scan.sym(k).is_some_and(|c| ".!;,…".contains(c))
}

/// The last token of a value starting at token `j`: a number, a choice letter, `= ...`, a
/// variable in an equation ("x = 3") or an expression ("x + 1", "(x+1)^2").
pub(super) fn value_at(scan: &Scan, found: &Found, j: usize) -> Option<usize> {
    if j >= scan.len() {
        return None;
    }
    if let Some(number) = found.covering(j) {
        let value = !number.governed
            && !is_operand(scan, number.last)
            && (!number.weak || closes(scan, number.last));
        return value.then_some(number.last);
    }
    if let Some((_, last)) = choice::at(scan, j, true) {
        return Some(last);
    }
    let next_is_value = |k: usize| {
        scan.is_number(k) || scan.word(k).is_some() || matches!(scan.sym(k), Some('(' | '-'))
    };
    match scan.sym(j) {
        Some('=') => return next_is_value(j + 1).then_some(j + 1),
        Some('(') => {
            let opens_value = scan.is_number(j + 1) || scan.single_letter(j + 1).is_some();
            return opens_value.then_some(j + 1);
        }
        _ => {}
    }
    if scan.single_letter(j).is_some()
        && scan.sym(j + 1).is_some_and(|c| "=+-*/^".contains(c))
        && next_is_value(j + 2)
    {
        return Some(j + 2);
    }
    None
}

fn marker_then_value(scan: &Scan, found: &Found) -> Option<Leak> {
    (0..scan.len())
        .filter(|&i| markers::is_marker(scan, i))
        .find_map(|i| {
            let last = value_at(scan, found, markers::skip_fillers(scan, i + 1))?;
            // "Doğru seçenek D": report the whole marker.
            let first = if i > 0 && scan.word(i - 1).is_some_and(markers::is_correct) {
                i - 1
            } else {
                i
            };
            Some(Leak::new(LeakKind::Statement, scan.slice(first, last)))
        })
}

/// Words that may stand between a value and a following marker: "12 is the correct answer",
/// "C şıkkı doğru cevaptır".
fn is_backward_filler(scan: &Scan, i: usize) -> bool {
    scan.word(i).is_some_and(|w| {
        matches!(
            w,
            "is" | "the" | "a" | "final" | "son" | "correct" | "right" | "dogru"
        ) || choice::is_choice_word(w)
    })
}

fn is_upper(scan: &Scan, i: usize) -> bool {
    scan.single_letter(i)
        .is_some_and(|c| c.is_ascii_uppercase())
}

fn value_then_marker(scan: &Scan, found: &Found) -> Option<Leak> {
    (0..scan.len()).find_map(|i| {
        let word = scan.word(i)?;
        let english = matches!(word, "answer" | "result" | "solution");
        if !english && !markers::is_copula_marker(word) {
            return None;
        }
        let mut k = i;
        let mut saw_is = false;
        let mut saw_choice_word = false;
        while k > 0 && is_backward_filler(scan, k - 1) {
            k -= 1;
            let filler = scan.word(k).unwrap_or_default();
            saw_is |= filler == "is";
            saw_choice_word |= choice::is_choice_word(filler);
        }
        if english && !saw_is {
            return None;
        }
        let end = k.checked_sub(1)?;
        let start = if let Some(number) = found.ending_at(end) {
            number.first
        } else {
            (end.saturating_sub(2)..=end).find(|&s| {
                choice::at(scan, s, saw_choice_word)
                    .or_else(|| choice::at(scan, s, true).filter(|_| is_upper(scan, s)))
                    .is_some_and(|(_, last)| end <= last && last < i)
            })?
        };
        Some(Leak::new(LeakKind::Statement, scan.slice(start, i)))
    })
}

/// "C şıkkı doğru", "(C) is correct", "C doğrudur": a choice declared right (not asked
/// about: "C doğru mu?" is a question).
fn choice_declared_correct(scan: &Scan) -> Option<Leak> {
    choice::mentions(scan).into_iter().find_map(|mention| {
        let mut k = mention.last + 1;
        if scan.word(k) == Some("is") {
            k += 1;
        }
        let word = scan.word(k)?;
        let correct = markers::is_correct(word) || word == "dogrudur";
        let asked = scan
            .word(k + 1)
            .is_some_and(|w| matches!(w, "mi" | "mu" | "midir" | "mudur"))
            || scan.sym(k + 1) == Some('?');
        (correct && !asked).then(|| Leak::new(LeakKind::Statement, scan.slice(mention.first, k)))
    })
}

/// The first token of the left-hand side of the `=` at `eq`: numbers, variables, operators
/// and brackets, back to the first ordinary word or the start of the line.
fn left_side(scan: &Scan, eq: usize) -> usize {
    let mut k = eq;
    while k > 0 {
        let prev = k - 1;
        let mathy = scan.is_number(prev)
            || scan.single_letter(prev).is_some()
            || scan.word(prev).is_some_and(expr::is_function)
            || scan.sym(prev).is_some_and(|c| "+-*/^()".contains(c));
        if !mathy || scan.tokens[k].line_start {
            break;
        }
        k = prev;
    }
    k
}

/// "… yani x = 4." at the end of the hint, or "x = 4." ending any sentence.
fn ending_equation(scan: &Scan, found: &Found, question: &str) -> Option<Leak> {
    let equals: Vec<usize> = (0..scan.len())
        .filter(|&i| scan.sym(i) == Some('='))
        .collect();
    let last_equals = *equals.last()?;
    let question_tokens = expr::tokens(&options::data(question));
    equals.iter().rev().find_map(|&eq| {
        let number = found.starting_at(eq + 1)?;
        let end = markers::skip_tail(scan, number.last + 1);
        let ends_hint = eq == last_equals
            && (end..scan.len()).all(|i| scan.sym(i).is_some_and(|c| c != '?' && c != '='));
        let ends_sentence = end == scan.len()
            || scan.tokens[end].line_start
            || scan.sym(end).is_some_and(|c| ".!…".contains(c));
        let lhs = left_side(scan, eq);
        let single_variable = lhs + 1 == eq && scan.single_letter(lhs).is_some();
        if !(ends_hint || (single_variable && ends_sentence)) {
            return None;
        }
        let equation = scan.slice(lhs, number.last);
        if expr::contains(&question_tokens, &expr::tokens(equation)) {
            return None;
        }
        Some(Leak::new(LeakKind::Equation, equation))
    })
}

/// Words after which a value opening the hint before a comma still stands alone: "81,
/// çünkü …".
const BECAUSE: &[&str] = &["cunku", "zira", "yani", "because", "since"];

/// True when token `s` starts a sentence: the start of the text or of a line, or after a
/// sentence mark.
fn starts_sentence(scan: &Scan, s: usize) -> bool {
    s == 0 || scan.tokens[s].line_start || scan.sym(s - 1).is_some_and(|c| ".!?;…".contains(c))
}

/// Emphasis and quotes around a bare value: "**81**", "\"C\"".
fn is_mark(scan: &Scan, i: usize) -> bool {
    scan.sym(i).is_some_and(|c| "*\"“”«»_".contains(c))
}

/// A value standing as a sentence of its own ("81. Çünkü …", "…\n7.\n…", "Kırk iki.",
/// "C."), or opening the hint before ", çünkü": the result stated with nothing around it. A
/// number the question itself contains is excused: the hint may recall a datum.
fn bare_value(scan: &Scan, found: &Found, question: &str) -> Option<Leak> {
    let mut data: Option<HashSet<Rational>> = None;
    (0..scan.len())
        .filter(|&s| starts_sentence(scan, s))
        .find_map(|s| {
            let mut start = s;
            while is_mark(scan, start) {
                start += 1;
            }
            let number = found.starting_at(start);
            let last = match number {
                Some(number) => number.last,
                None => {
                    let (_, last) = choice::at(scan, start, true)?;
                    let upper = scan.sym(start) == Some('(') || is_upper(scan, start);
                    if !upper {
                        return None;
                    }
                    last
                }
            };
            let mut end = markers::skip_tail(scan, last + 1);
            while is_mark(scan, end) {
                end += 1;
            }
            let alone = end >= scan.len()
                || scan.tokens[end].line_start
                || scan.sym(end).is_some_and(|c| ".!;…".contains(c));
            let opens = start == 0
                && scan.sym(end) == Some(',')
                && scan.word(end + 1).is_some_and(|w| BECAUSE.contains(&w));
            if !(alone || opens) {
                return None;
            }
            if let Some(number) = number {
                let data = data.get_or_insert_with(|| {
                    numbers::all_values(&Scan::new(&options::data(question)))
                });
                if number.values.iter().any(|v| data.contains(v)) {
                    return None;
                }
            }
            Some(Leak::new(LeakKind::Statement, scan.slice(start, last)))
        })
}
