//! Algebraic expressions compared as token sequences: folded, whitespace-free, `*` optional,
//! `²` and `**` written as `^`, decimal commas written as points.

use super::lexer::normalize;
use crate::prompts::fold;

/// Function names kept whole, so that "sinx" and "sin x" agree.
const FUNCTIONS: &[&str] = &[
    "arcsin", "arccos", "arctan", "sqrt", "sin", "cos", "tan", "cot", "sec", "csc", "log", "exp",
    "lim", "ln",
];

/// The tokens of `text`: numbers, single-letter variables, function names, longer words,
/// operators and brackets; other punctuation becomes the separator `|`.
pub(super) fn tokens(text: &str) -> Vec<String> {
    let text = fold(&normalize(text), true);
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        if ch.is_whitespace() || ch == '*' {
            i += 1;
        } else if ch.is_ascii_digit() {
            let mut number = String::new();
            while i < chars.len() {
                let c = chars[i];
                let between_digits = matches!(c, '.' | ',')
                    && chars.get(i + 1).is_some_and(char::is_ascii_digit)
                    && !number.is_empty();
                if c.is_ascii_digit() {
                    number.push(c);
                } else if between_digits {
                    number.push('.');
                } else {
                    break;
                }
                i += 1;
            }
            out.push(number);
        } else if ch.is_alphabetic() {
            let start = i;
            while i < chars.len() && chars[i].is_alphabetic() {
                i += 1;
            }
            let run: String = chars[start..i].iter().collect();
            push_letters(&run, &mut out);
        } else if "+-/^=()[]<>√%!".contains(ch) {
            out.push(ch.to_string());
            i += 1;
        } else {
            if out.last().is_none_or(|last| last != "|") {
                out.push("|".to_owned());
            }
            i += 1;
        }
    }
    out
}

/// A run of letters: a function name (optionally with one variable after it), up to three
/// variables ("xy", "abc"), or an ordinary word.
fn push_letters(run: &str, out: &mut Vec<String>) {
    for name in FUNCTIONS {
        if let Some(rest) = run.strip_prefix(name)
            && rest.chars().count() <= 1
        {
            out.push((*name).to_owned());
            if !rest.is_empty() {
                out.push(rest.to_owned());
            }
            return;
        }
    }
    if run.chars().count() <= 3 {
        out.extend(run.chars().map(String::from));
    } else {
        out.push(run.to_owned());
    }
}

/// The canonical spelling of an expression: its tokens joined without spaces.
pub(super) fn normalize_expression(text: &str) -> String {
    tokens(text).concat()
}

/// True when `word` (folded) can be part of an expression: a variable or a function name.
pub(super) fn is_math_word(word: &str) -> bool {
    word.chars().count() <= 3
        || FUNCTIONS
            .iter()
            .any(|f| word.strip_prefix(f).is_some_and(|r| r.chars().count() <= 1))
}

/// True when `word` (folded) is a function name such as "sin" or "log".
pub(super) fn is_function(word: &str) -> bool {
    FUNCTIONS.contains(&word)
}

fn is_operand(token: &str) -> bool {
    token.chars().next().is_some_and(|c| c.is_ascii_digit())
        || (token.chars().count() == 1 && token.chars().all(char::is_alphabetic))
}

/// Where `needle` occurs in `hay` as a whole expression: not continued by an operator, an
/// operand or a bracket on either side ("2x+1" is not inside "x^2+2x+1").
pub(super) fn find(hay: &[String], needle: &[String]) -> Option<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return None;
    }
    (0..=hay.len() - needle.len()).find(|&at| {
        if hay[at..at + needle.len()] != *needle {
            return false;
        }
        let before = at.checked_sub(1).map(|i| hay[i].as_str());
        let after = hay.get(at + needle.len()).map(String::as_str);
        let binds = |t: &str| matches!(t, "+" | "-" | "/" | "^") || is_operand(t);
        let starts_with_op = matches!(needle[0].as_str(), "+" | "-" | "/" | "^");
        let ok_before = before.is_none_or(|t| starts_with_op || !(binds(t) || t == ")"));
        let ok_after = after.is_none_or(|t| !(binds(t) || t == "("));
        ok_before && ok_after
    })
}

/// True when `needle` occurs anywhere in `hay`, boundaries ignored.
pub(super) fn contains(hay: &[String], needle: &[String]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_agree() {
        let canonical = normalize_expression("x^2+2x+1");
        assert_eq!(canonical, "x^2+2x+1");
        for text in [
            "x² + 2x + 1",
            "x**2 + 2*x + 1",
            "X^2 + 2·x + 1",
            "x ^ 2+2 x+1",
        ] {
            assert_eq!(normalize_expression(text), canonical, "{text}");
        }
        assert_eq!(
            normalize_expression("sin x + 0,5"),
            normalize_expression("sinx+0.5")
        );
    }

    #[test]
    fn whole_expressions_only() {
        let needle = tokens("2x+1");
        assert!(find(&tokens("yani 2x + 1 olur"), &needle).is_some());
        assert!(find(&tokens("x^2+2x+1"), &needle).is_none());
        assert!(find(&tokens("2x+10"), &needle).is_none());
        assert!(find(&tokens("(2x+1)^2"), &needle).is_some());
    }
}
