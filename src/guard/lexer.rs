//! Normalises text and splits it into words, numbers and symbols, each with its byte span.
//!
//! Every other part of the guard works on these tokens, so that "x² = 4", "x^2=4" and
//! "x ^ 2 = 4" look alike, and so that words are compared folded (Turkish casing, no accents).

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use super::digits;
use crate::prompts::fold;

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    /// A run of letters, folded (Turkish lower case, accents dropped, `ı` → `i`).
    Word(String),
    /// A run of ASCII digits, with any `.` or `,` that sits between two digits.
    Number,
    /// Any other single character: an operator, a bracket, punctuation, an emoji.
    Sym(char),
}

/// One token and where it is in [`Scan::text`].
#[derive(Debug, Clone)]
pub(super) struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
    /// Whitespace (or the start of the text) comes right before the token.
    pub space_before: bool,
    /// The token is the first on its line.
    pub line_start: bool,
}

/// A normalised text and its tokens.
#[derive(Debug, Clone)]
pub(super) struct Scan {
    pub text: String,
    pub tokens: Vec<Token>,
}

impl Scan {
    /// Normalises `text` (see [`normalize`]) and tokenises it.
    pub fn new(text: &str) -> Self {
        let text = normalize(text);
        let tokens = tokenize(&text);
        Self { text, tokens }
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// The source text of token `i`.
    pub fn raw(&self, i: usize) -> &str {
        let token = &self.tokens[i];
        &self.text[token.start..token.end]
    }

    /// The source text from token `first` to token `last`, both included.
    pub fn slice(&self, first: usize, last: usize) -> &str {
        &self.text[self.tokens[first].start..self.tokens[last].end]
    }

    /// The folded word at `i`, if token `i` is a word.
    pub fn word(&self, i: usize) -> Option<&str> {
        match &self.tokens.get(i)?.kind {
            Kind::Word(folded) => Some(folded),
            _ => None,
        }
    }

    /// The symbol at `i`, if token `i` is one.
    pub fn sym(&self, i: usize) -> Option<char> {
        match self.tokens.get(i)?.kind {
            Kind::Sym(ch) => Some(ch),
            _ => None,
        }
    }

    pub fn is_number(&self, i: usize) -> bool {
        matches!(self.tokens.get(i).map(|t| &t.kind), Some(Kind::Number))
    }

    /// True when token `i` touches the token before it (no whitespace in between).
    pub fn glued(&self, i: usize) -> bool {
        i > 0 && i < self.tokens.len() && !self.tokens[i].space_before
    }

    /// The single letter at `i`, if token `i` is a one-letter word.
    pub fn single_letter(&self, i: usize) -> Option<char> {
        self.word(i)?;
        let mut chars = self.raw(i).chars();
        match (chars.next(), chars.next()) {
            (Some(ch), None) => Some(ch),
            _ => None,
        }
    }

    /// True when token `i` is a word after an apostrophe, such as `dir` in `12'dir`.
    pub fn is_suffix(&self, i: usize) -> bool {
        self.word(i).is_some()
            && self.glued(i)
            && self.sym(i - 1) == Some('\'')
            && self.glued(i - 1)
    }
}

/// One spelling for the characters that mean the same thing in maths and Turkish text:
/// superscript digits become `^` and digits (before NFKC, which would make "x²" read "x2"),
/// curly apostrophes become `'`; then NFKC folds compatibility forms ("１２", "½", "Ⅻ",
/// ligatures), every script's decimal digits become ASCII digits, `**` becomes `^`, `×` and
/// `·` become `*`, `÷` becomes `/`, the minus sign and dashes become `-`, and no-break and thin
/// spaces become spaces.
pub(super) fn normalize(text: &str) -> String {
    let mut marked = String::with_capacity(text.len());
    let mut in_superscript = false;
    for ch in text.nfc() {
        if let Some(plain) = superscript(ch) {
            if !in_superscript {
                marked.push('^');
                in_superscript = true;
            }
            marked.push(plain);
            continue;
        }
        in_superscript = false;
        match ch {
            '\u{2019}' | '\u{2018}' | '\u{2bc}' | '`' | '´' => marked.push('\''),
            _ => marked.push(ch),
        }
    }
    let mut out = String::with_capacity(marked.len());
    let mut chars = marked.nfkc().peekable();
    while let Some(ch) = chars.next() {
        if let Some(digit) = digits::ascii_digit(ch).or_else(|| digits::arabic_punctuation(ch)) {
            out.push(digit);
            continue;
        }
        match ch {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                out.push('^');
            }
            '\u{2212}' | '\u{2010}' | '\u{2012}' | '\u{2013}' => out.push('-'),
            '×' | '·' | '⋅' | '∙' => out.push('*'),
            '÷' | '∕' | '⁄' => out.push('/'),
            '\u{a0}' | '\u{2007}' | '\u{2009}' | '\u{200a}' | '\u{202f}' => out.push(' '),
            _ => out.push(ch),
        }
    }
    out
}

fn superscript(ch: char) -> Option<char> {
    match ch {
        '⁰' => Some('0'),
        '¹' => Some('1'),
        '²' => Some('2'),
        '³' => Some('3'),
        '⁴'..='⁹' => char::from_u32(u32::from(ch) - u32::from('⁴') + u32::from('4')),
        '⁻' => Some('-'),
        _ => None,
    }
}

fn is_letter(ch: char) -> bool {
    ch.is_alphabetic() || is_combining_mark(ch)
}

fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut space = true;
    let mut line_start = true;
    let mut chars = text.char_indices().peekable();
    while let Some((start, ch)) = chars.next() {
        if ch.is_whitespace() {
            space = true;
            line_start |= ch == '\n';
            continue;
        }
        let mut end = start + ch.len_utf8();
        let kind = if ch.is_ascii_digit() {
            loop {
                while let Some(&(i, c)) = chars.peek()
                    && c.is_ascii_digit()
                {
                    end = i + 1;
                    chars.next();
                }
                // A separator counts only between two digits: "1.000,5" is one token, and
                // "x = 4." ends at the 4.
                let mut ahead = chars.clone();
                if let Some((_, '.' | ',')) = ahead.next()
                    && ahead.peek().is_some_and(|&(_, c)| c.is_ascii_digit())
                {
                    chars.next();
                    continue;
                }
                break;
            }
            Kind::Number
        } else if is_letter(ch) {
            while let Some(&(i, c)) = chars.peek()
                && is_letter(c)
            {
                end = i + c.len_utf8();
                chars.next();
            }
            Kind::Word(fold(&text[start..end], true))
        } else {
            Kind::Sym(ch)
        };
        tokens.push(Token {
            kind,
            start,
            end,
            space_before: space,
            line_start,
        });
        space = false;
        line_start = false;
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<String> {
        let scan = Scan::new(text);
        (0..scan.len())
            .map(|i| match &scan.tokens[i].kind {
                Kind::Word(w) => format!("w:{w}"),
                Kind::Number => format!("n:{}", scan.raw(i)),
                Kind::Sym(c) => format!("s:{c}"),
            })
            .collect()
    }

    #[test]
    fn numbers_keep_inner_separators_only() {
        assert_eq!(kinds("x = 1.000,5."), ["w:x", "s:=", "n:1.000,5", "s:."]);
        assert_eq!(kinds("12'dir"), ["n:12", "s:'", "w:dir"]);
        assert_eq!(kinds("3, 4"), ["n:3", "s:,", "n:4"]);
    }

    #[test]
    fn maths_spellings_are_unified() {
        assert_eq!(normalize("x² − 2·x"), "x^2 - 2*x");
        assert_eq!(normalize("x**10 ÷ 2"), "x^10 / 2");
        assert_eq!(normalize("İSTANBUL\u{2019}dur"), "İSTANBUL'dur");
        assert_eq!(kinds("İSTANBUL"), ["w:istanbul"]);
        assert_eq!(kinds("I\u{307}zmir"), ["w:izmir"]);
    }

    #[test]
    fn every_script_writes_the_same_number() {
        assert_eq!(normalize("１２ ٣/٤ ۸۱ ३५ 𝟏𝟐"), "12 3/4 81 35 12");
        assert_eq!(normalize("½'si"), "1/2'si");
        assert_eq!(normalize("٣٫٥ ve ١٬٠٠٠"), "3,5 ve 1.000");
        assert_eq!(normalize("Ⅻ. bölüm, x² ve ｆｉ"), "XII. bölüm, x^2 ve fi");
        assert_eq!(normalize("12´dir"), "12'dir");
    }
}
