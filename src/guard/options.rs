//! The options of a multiple-choice question: "... kaçtır? A) 4 B) 6 C) 8". When the answer
//! is a letter, a hint that names the right option's content leaks it just as well.

use super::lexer::Scan;

/// A question split into its stem and its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Options {
    /// The text before the first option.
    pub stem: String,
    /// The option contents, for A, B, C... in order.
    pub contents: Vec<String>,
}

impl Options {
    /// Splits `question`; `None` unless it lists options labelled "A)" or "(A)" (upper
    /// case), in order from A, at least two.
    pub fn of(question: &str) -> Option<Self> {
        let scan = Scan::new(question);
        let labels = labels(&scan);
        let &(stem_end, _) = labels.first()?;
        let stem = if stem_end == 0 {
            String::new()
        } else {
            scan.slice(0, stem_end - 1).to_owned()
        };
        let contents = labels
            .iter()
            .enumerate()
            .map(|(index, &(_, last))| {
                let end = labels.get(index + 1).map_or(scan.len(), |&(next, _)| next);
                if last + 1 < end {
                    scan.slice(last + 1, end - 1).trim().to_owned()
                } else {
                    String::new()
                }
            })
            .collect();
        Some(Self { stem, contents })
    }

    /// The content of option `letter` (`'A'`, `'B'`...), if not empty.
    pub fn content(&self, letter: char) -> Option<&str> {
        let index = usize::from(u8::try_from(letter).ok()?.checked_sub(b'A')?);
        self.contents
            .get(index)
            .map(String::as_str)
            .filter(|c| !c.is_empty())
    }
}

/// The part of `question` whose numbers and expressions a hint may repeat: the stem when the
/// question lists options (an option may be the answer itself), else the whole question.
pub(super) fn data(question: &str) -> String {
    Options::of(question).map_or_else(|| question.to_owned(), |options| options.stem)
}

/// The option labels of `scan`, as (first, last) token indices, for A, B, C... in order.
fn labels(scan: &Scan) -> Vec<(usize, usize)> {
    let mut found: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < scan.len() && found.len() < 26 {
        let expected = char::from(b'A' + u8::try_from(found.len()).unwrap_or(0));
        if let Some(label) = label_at(scan, i, expected) {
            found.push(label);
            i = label.1 + 1;
        } else {
            i += 1;
        }
    }
    if found.len() >= 2 { found } else { Vec::new() }
}

/// "A)" or "(A)" for `expected` at token `i`, starting a word. Lower-case "(a)" labels the
/// parts of a question, not its options.
fn label_at(scan: &Scan, i: usize, expected: char) -> Option<(usize, usize)> {
    let is_expected = |j: usize| scan.single_letter(j) == Some(expected);
    if scan.sym(i) == Some('(') && is_expected(i + 1) && scan.sym(i + 2) == Some(')') {
        return Some((i, i + 2));
    }
    let starts_word = !scan.glued(i) || scan.sym(i - 1).is_some_and(|c| c != '(');
    (is_expected(i) && starts_word && scan.sym(i + 1) == Some(')')).then_some((i, i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_split_in_order() {
        let options = Options::of("12 elmanın yarısı kaçtır? A) 4 B) 6 C) 8").unwrap();
        assert_eq!(options.stem, "12 elmanın yarısı kaçtır?");
        assert_eq!(options.content('B'), Some("6"));
        assert_eq!(options.content('C'), Some("8"));
        assert_eq!(options.content('D'), None);
        assert_eq!(Options::of("f(a) nedir?"), None);
        assert_eq!(
            data("(a) 3 ve (b) 4"),
            "(a) 3 ve (b) 4",
            "parts, not options"
        );
        assert_eq!(data("3 + 4 kaçtır?"), "3 + 4 kaçtır?");
    }
}
