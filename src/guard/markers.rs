//! Words that announce a final result ("cevap", "sonucu", "the answer"), the filler words that
//! may stand between such a word and its value, and the words that may close a result
//! ("olur", "'dir"). All folded: lower case, no accents, `ı` → `i`.

use super::choice::is_choice_word;
use super::lexer::Scan;

/// Words announcing the result, in their bare and possessive forms. "sonuçta" ("in the
/// end") is not one: it is a connective.
const MARKERS: &[&str] = &[
    "cevap",
    "cevabi",
    "cevabin",
    "cevabim",
    "cevabimiz",
    "cevabiniz",
    "yanit",
    "yaniti",
    "yanitin",
    "yanitimiz",
    "sonuc",
    "sonucu",
    "sonucun",
    "sonucumuz",
    "cozum",
    "cozumu",
    "cozumun",
    "answer",
    "result",
    "solution",
];

/// Markers with the copula: "12 doğru cevaptır".
const COPULA_MARKERS: &[&str] = &["cevaptir", "cevapdir", "yanittir", "sonuctur", "cozumdur"];

/// Words that may precede a choice word to make it a marker: "doğru şık", "correct option".
const CORRECT: &[&str] = &["dogru", "correct", "right"];

/// Words between a marker and its value: "the answer is exactly 7", "cevap da 12".
const FILLERS: &[&str] = &[
    "is",
    "was",
    "will",
    "would",
    "should",
    "must",
    "be",
    "equals",
    "exactly",
    "just",
    "simply",
    "then",
    "therefore",
    "thus",
    "clearly",
    "probably",
    "approximately",
    "about",
    "around",
    "ise",
    "su",
    "tam",
    "yaklasik",
    "kesinlikle",
    "de",
    "da",
];

/// Words that may close a result: "x = 4 olur", "cevap 12 çıkar".
const TAIL_WORDS: &[&str] = &[
    "olur",
    "olmali",
    "olmalidir",
    "olacak",
    "olacaktir",
    "oluyor",
    "eder",
    "bulunur",
    "cikar",
    "gelir",
    "dir",
    "dur",
    "tir",
    "tur",
    "idir",
    "udur",
    "elde",
    "edilir",
    "is",
];

/// Short words that never close a result: "x = 4 ise", "x = 4 mü?".
const NOT_TAIL: &[&str] = &[
    "ise", "mi", "mu", "ve", "ya", "ile", "ki", "de", "da", "if", "or", "and", "for", "but",
];

/// True when token `i` announces a result: a marker word, or a choice word after "doğru" /
/// "correct".
pub(super) fn is_marker(scan: &Scan, i: usize) -> bool {
    let Some(word) = scan.word(i) else {
        return false;
    };
    MARKERS.contains(&word)
        || (is_choice_word(word) && i > 0 && scan.word(i - 1).is_some_and(|w| CORRECT.contains(&w)))
}

/// True when `word` is a marker with the copula ("cevaptır").
pub(super) fn is_copula_marker(word: &str) -> bool {
    COPULA_MARKERS.contains(&word)
}

/// True when `word` is one of [`CORRECT`].
pub(super) fn is_correct(word: &str) -> bool {
    CORRECT.contains(&word)
}

/// The first token from `i` on that is not a filler word or `:`, `"`, `→`, or a `-` that
/// is not a sign. A comma is not a filler: "as a result, 3 apples" is no statement.
pub(super) fn skip_fillers(scan: &Scan, mut i: usize) -> usize {
    while i < scan.len() {
        let sign = scan.sym(i) == Some('-') && scan.is_number(i + 1) && scan.glued(i + 1);
        let filler = scan.word(i).is_some_and(|w| FILLERS.contains(&w))
            || (!sign && scan.sym(i).is_some_and(|c| ":-\"→⇒".contains(c)));
        if !filler {
            break;
        }
        i += 1;
    }
    i
}

/// The index after the words that may close a result starting at `i`: an apostrophe
/// suffix ("'dir"), then at most two closing words ([`TAIL_WORDS`], or short words such as
/// units: "cm", "TL").
pub(super) fn skip_tail(scan: &Scan, mut i: usize) -> usize {
    if scan.sym(i) == Some('\'') && scan.is_suffix(i + 1) {
        i += 2;
    }
    for _ in 0..2 {
        let closes = scan.word(i).is_some_and(|w| {
            TAIL_WORDS.contains(&w) || (w.chars().count() <= 3 && !NOT_TAIL.contains(&w))
        });
        if !closes {
            break;
        }
        i += 1;
    }
    i
}

/// True when `word` only closes a result ("olur", "dir"), for trimming a solution.
pub(super) fn is_tail_word(word: &str) -> bool {
    TAIL_WORDS.contains(&word)
}
