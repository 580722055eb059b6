//! Multiple-choice letters, recognised only in a choice context: "(C)", "C)", "C şıkkı",
//! "C seçeneği", "option C". A letter used as a word ("C vitamini", "A noktası") is not one.

use super::lexer::Scan;

/// True when `word` (folded) names an option: "şık", "şıkkı", "şıkları", "seçenek",
/// "seçeneği", "option", "choice".
pub(super) fn is_choice_word(word: &str) -> bool {
    word == "sik"
        || word.starts_with("sikk")
        || word.starts_with("siklar")
        || word.starts_with("secenek")
        || word.starts_with("seceneg")
        || matches!(word, "option" | "options" | "choice")
}

/// The option letter at token `i` ("A".."E", either case), upper-cased, and whether it was
/// written in upper case.
fn letter(scan: &Scan, i: usize) -> Option<(char, bool)> {
    let ch = scan.single_letter(i)?;
    let upper = ch.to_ascii_uppercase();
    ('A'..='E')
        .contains(&upper)
        .then_some((upper, ch.is_ascii_uppercase()))
}

/// True when the letter at `i` stands alone: not glued to a word or number on either side.
fn standalone(scan: &Scan, i: usize) -> bool {
    let glued_before = scan.glued(i) && (scan.word(i - 1).is_some() || scan.is_number(i - 1));
    let glued_after = scan.glued(i + 1) && (scan.word(i + 1).is_some() || scan.is_number(i + 1));
    !glued_before && !glued_after
}

fn choice_word_at(scan: &Scan, i: usize) -> bool {
    scan.word(i).is_some_and(is_choice_word)
}

/// A choice letter written at token `i`, and the index of its last token: "(C)", "C)",
/// "C şıkkı" (the choice word included). Lower-case letters need a choice word ("c
/// şıkkı") unless `loose`. With `loose` (after "cevap", "option"), a bare letter counts too:
/// an upper-case one always, a lower-case one before punctuation or the end ("cevap b.").
pub(super) fn at(scan: &Scan, i: usize, loose: bool) -> Option<(char, usize)> {
    if scan.sym(i) == Some('(')
        && let Some((ch, upper)) = letter(scan, i + 1)
        && scan.sym(i + 2) == Some(')')
    {
        let word_after = choice_word_at(scan, i + 3);
        return (upper || loose || word_after).then_some((ch, i + 2 + usize::from(word_after)));
    }
    let (ch, upper) = letter(scan, i)?;
    if !standalone(scan, i) && scan.sym(i + 1) != Some(')') {
        return None;
    }
    if scan.glued(i) && scan.sym(i - 1) == Some('(') {
        return None;
    }
    if scan.sym(i + 1) == Some(')') {
        let word_after = choice_word_at(scan, i + 2);
        let alone = !scan.glued(i) || scan.sym(i - 1).is_some();
        return (alone && (upper || loose || word_after))
            .then_some((ch, i + 1 + usize::from(word_after)));
    }
    if choice_word_at(scan, i + 1) {
        return Some((ch, i + 1));
    }
    if loose {
        let closes =
            i + 1 >= scan.len() || scan.sym(i + 1).is_some_and(|c| ".,;:!?'\"".contains(c));
        if upper || closes {
            return Some((ch, i));
        }
    }
    None
}

/// A choice letter mentioned in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Mention {
    pub letter: char,
    pub first: usize,
    pub last: usize,
    /// Only a label ("(C)", "C)"), without a choice word around it.
    pub label: bool,
}

/// Every choice letter mentioned in context. Bare labels are dropped when there are labels
/// for two or more letters: the text then lists the options rather than picking one.
pub(super) fn mentions(scan: &Scan) -> Vec<Mention> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < scan.len() {
        let preceded_by_choice_word = i > 0 && choice_word_at(scan, i - 1);
        if let Some((letter, last)) = at(scan, i, preceded_by_choice_word) {
            let label = !preceded_by_choice_word && !choice_word_at(scan, last);
            found.push(Mention {
                letter,
                first: if preceded_by_choice_word { i - 1 } else { i },
                last,
                label,
            });
            i = last + 1;
        } else {
            i += 1;
        }
    }
    let mut labelled: Vec<char> = found.iter().filter(|m| m.label).map(|m| m.letter).collect();
    labelled.sort_unstable();
    labelled.dedup();
    if labelled.len() >= 2 {
        found.retain(|m| !m.label);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letters(text: &str) -> Vec<char> {
        mentions(&Scan::new(text))
            .iter()
            .map(|m| m.letter)
            .collect()
    }

    #[test]
    fn choice_contexts() {
        assert_eq!(letters("Bence (C) olabilir"), ['C']);
        assert_eq!(letters("C) şıkkına bak"), ['C']);
        assert_eq!(letters("c şıkkını düşün"), ['C']);
        assert_eq!(letters("C seçeneğini ele"), ['C']);
        assert_eq!(letters("look at option C."), ['C']);
        assert_eq!(letters("Doğru şık D"), ['D']);
    }

    #[test]
    fn letters_as_words_are_not_choices() {
        assert!(letters("C vitamini portakalda bulunur").is_empty());
        assert!(letters("A noktasından B noktasına git").is_empty());
        assert!(letters("f(a) ve (b) kısmı").is_empty());
        assert!(letters("A) 3 B) 4 C) 5").is_empty(), "a list of options");
    }
}
