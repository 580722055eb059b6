//! Number words of Turkish and English, one word at a time: each word's value and place in a
//! number (unit, ten, hundred, scale), ordinals ("dokuzuncu", "nineteenth"), the endings a
//! Turkish number word carries ("dördü", "beşte", "yirmidir") and joined spellings
//! ("ondört", "üçyüzaltmış"). Words are compared folded (lower case, no accents, `ı` → `i`),
//! then checked against their real spelling so that "ön" (front) is not "on" (ten).

use super::phrase;
use crate::prompts::fold;
use Place::{Hundred, Scale, Teen, Ten, Unit};
use Sense::{Article, Foreign, Inflects};

/// The language of a number word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tongue {
    Tr,
    En,
}

/// Where a number word sits in a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    /// 0 to 9.
    Unit,
    /// English ten to nineteen: the tens and the units at once.
    Teen,
    /// Twenty to ninety, and Turkish "on" (ten), which a unit may follow.
    Ten,
    Hundred,
    /// A thousand, a million, a billion, a trillion.
    Scale,
}

/// One number morpheme: "on" and "dört" in "ondört".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Atom {
    pub place: Place,
    pub value: i128,
}

/// How a Turkish number word ends after its stem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    None,
    /// "-(i)nci": an ordinal ("dokuzuncu").
    Ordinal,
    /// "-de/-da/-te/-ta": a denominator ("beşte iki"), "yüzde".
    Locative,
    /// A copula ("yirmidir"): still a stated value.
    Copula,
    /// A possessive, maybe with a copula ("ikisi", "kırkıdır"): a value, as in "beşte ikisi".
    Possessive,
    /// Any other case ending ("otuzdan", "ikiye", "yediyle"): an operand or a bound.
    Case,
}

/// Why a number word may not be a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sense {
    /// Always a number: "iki", "forty".
    Number,
    /// Also an article or a pronoun ("bir", "one") or a plain word ("first", "second"):
    /// alone, a number only where it closes a statement.
    Article,
    /// Inflected alone, another word: "onu" (him), "yüzden" (because), "altında" (under),
    /// "binde"; a number bare, as an ordinal or inside a longer number.
    Inflects,
    /// Also a word of the other language: "on" and "bin" in English text, "ten" (skin) and
    /// "nine" (grandmother) in Turkish text.
    Foreign,
}

/// A word read as a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NumberWord {
    pub atoms: Vec<Atom>,
    pub tongue: Tongue,
    pub ending: Ending,
    pub ordinal: bool,
    /// An English plural ordinal ("fifths"): only a denominator.
    pub plural: bool,
    /// The senses of its first morpheme (the only one of a single-morpheme word).
    pub senses: &'static [Sense],
}

struct Entry {
    folded: &'static str,
    /// The spelling with its accents, lower-cased the Turkish way.
    proper: &'static str,
    atom: Atom,
    senses: &'static [Sense],
}

const fn entry(
    folded: &'static str,
    proper: &'static str,
    place: Place,
    value: i128,
    senses: &'static [Sense],
) -> Entry {
    Entry {
        folded,
        proper,
        atom: Atom { place, value },
        senses,
    }
}

const PLAIN: &[Sense] = &[Sense::Number];

/// Turkish stems, with "dörd" (softened "dört" before a vowel: "dördü", "dördüncü").
const TURKISH: &[Entry] = &[
    entry("sifir", "sıfır", Unit, 0, PLAIN),
    entry("bir", "bir", Unit, 1, &[Article, Inflects]),
    entry("iki", "iki", Unit, 2, PLAIN),
    entry("uc", "üç", Unit, 3, PLAIN),
    entry("dort", "dört", Unit, 4, PLAIN),
    entry("dord", "dörd", Unit, 4, PLAIN),
    entry("bes", "beş", Unit, 5, PLAIN),
    entry("alti", "altı", Unit, 6, &[Inflects]),
    entry("yedi", "yedi", Unit, 7, PLAIN),
    entry("sekiz", "sekiz", Unit, 8, PLAIN),
    entry("dokuz", "dokuz", Unit, 9, PLAIN),
    entry("on", "on", Ten, 10, &[Inflects, Foreign]),
    entry("yirmi", "yirmi", Ten, 20, PLAIN),
    entry("otuz", "otuz", Ten, 30, PLAIN),
    entry("kirk", "kırk", Ten, 40, PLAIN),
    entry("elli", "elli", Ten, 50, PLAIN),
    entry("altmis", "altmış", Ten, 60, PLAIN),
    entry("yetmis", "yetmiş", Ten, 70, PLAIN),
    entry("seksen", "seksen", Ten, 80, PLAIN),
    entry("doksan", "doksan", Ten, 90, PLAIN),
    entry("yuz", "yüz", Hundred, 100, &[Inflects]),
    entry("bin", "bin", Scale, 1_000, &[Inflects, Foreign]),
    entry("milyon", "milyon", Scale, 1_000_000, PLAIN),
    entry("milyar", "milyar", Scale, 1_000_000_000, PLAIN),
    entry("trilyon", "trilyon", Scale, 1_000_000_000_000, PLAIN),
];

const ENGLISH: &[Entry] = &[
    entry("zero", "zero", Unit, 0, PLAIN),
    entry("one", "one", Unit, 1, &[Article]),
    entry("two", "two", Unit, 2, PLAIN),
    entry("three", "three", Unit, 3, PLAIN),
    entry("four", "four", Unit, 4, PLAIN),
    entry("five", "five", Unit, 5, PLAIN),
    entry("six", "six", Unit, 6, PLAIN),
    entry("seven", "seven", Unit, 7, PLAIN),
    entry("eight", "eight", Unit, 8, PLAIN),
    entry("nine", "nine", Unit, 9, &[Foreign]),
    entry("ten", "ten", Teen, 10, &[Foreign]),
    entry("eleven", "eleven", Teen, 11, PLAIN),
    entry("twelve", "twelve", Teen, 12, PLAIN),
    entry("thirteen", "thirteen", Teen, 13, PLAIN),
    entry("fourteen", "fourteen", Teen, 14, PLAIN),
    entry("fifteen", "fifteen", Teen, 15, PLAIN),
    entry("sixteen", "sixteen", Teen, 16, PLAIN),
    entry("seventeen", "seventeen", Teen, 17, PLAIN),
    entry("eighteen", "eighteen", Teen, 18, PLAIN),
    entry("nineteen", "nineteen", Teen, 19, PLAIN),
    entry("twenty", "twenty", Ten, 20, PLAIN),
    entry("thirty", "thirty", Ten, 30, PLAIN),
    entry("forty", "forty", Ten, 40, PLAIN),
    entry("fifty", "fifty", Ten, 50, PLAIN),
    entry("sixty", "sixty", Ten, 60, PLAIN),
    entry("seventy", "seventy", Ten, 70, PLAIN),
    entry("eighty", "eighty", Ten, 80, PLAIN),
    entry("ninety", "ninety", Ten, 90, PLAIN),
    entry("hundred", "hundred", Hundred, 100, PLAIN),
    entry("thousand", "thousand", Scale, 1_000, PLAIN),
    entry("million", "million", Scale, 1_000_000, PLAIN),
    entry("billion", "billion", Scale, 1_000_000_000, PLAIN),
    entry("trillion", "trillion", Scale, 1_000_000_000_000, PLAIN),
];

/// English ordinals; "first" and "second" are more often plain words.
const ENGLISH_ORDINALS: &[Entry] = &[
    entry("first", "first", Unit, 1, &[Article]),
    entry("second", "second", Unit, 2, &[Article]),
    entry("third", "third", Unit, 3, PLAIN),
    entry("fourth", "fourth", Unit, 4, PLAIN),
    entry("fifth", "fifth", Unit, 5, PLAIN),
    entry("sixth", "sixth", Unit, 6, PLAIN),
    entry("seventh", "seventh", Unit, 7, PLAIN),
    entry("eighth", "eighth", Unit, 8, PLAIN),
    entry("ninth", "ninth", Unit, 9, PLAIN),
    entry("tenth", "tenth", Teen, 10, PLAIN),
    entry("eleventh", "eleventh", Teen, 11, PLAIN),
    entry("twelfth", "twelfth", Teen, 12, PLAIN),
    entry("thirteenth", "thirteenth", Teen, 13, PLAIN),
    entry("fourteenth", "fourteenth", Teen, 14, PLAIN),
    entry("fifteenth", "fifteenth", Teen, 15, PLAIN),
    entry("sixteenth", "sixteenth", Teen, 16, PLAIN),
    entry("seventeenth", "seventeenth", Teen, 17, PLAIN),
    entry("eighteenth", "eighteenth", Teen, 18, PLAIN),
    entry("nineteenth", "nineteenth", Teen, 19, PLAIN),
    entry("twentieth", "twentieth", Ten, 20, PLAIN),
    entry("thirtieth", "thirtieth", Ten, 30, PLAIN),
    entry("fortieth", "fortieth", Ten, 40, PLAIN),
    entry("fiftieth", "fiftieth", Ten, 50, PLAIN),
    entry("sixtieth", "sixtieth", Ten, 60, PLAIN),
    entry("seventieth", "seventieth", Ten, 70, PLAIN),
    entry("eightieth", "eightieth", Ten, 80, PLAIN),
    entry("ninetieth", "ninetieth", Ten, 90, PLAIN),
    entry("hundredth", "hundredth", Hundred, 100, PLAIN),
    entry("thousandth", "thousandth", Scale, 1_000, PLAIN),
    entry("millionth", "millionth", Scale, 1_000_000, PLAIN),
];

/// Longest words looked at: no number word is longer, joined spellings included.
const MAX_WORD: usize = 64;

/// The number that the word token `raw` (folded: `folded`) writes, if it writes one.
pub(super) fn read(folded: &str, raw: &str) -> Option<NumberWord> {
    if folded.len() > MAX_WORD {
        return None;
    }
    english(folded).or_else(|| turkish(folded, raw))
}

fn english(folded: &str) -> Option<NumberWord> {
    let word = |entry: &Entry, ordinal: bool, plural: bool| NumberWord {
        atoms: vec![entry.atom],
        tongue: Tongue::En,
        ending: Ending::None,
        ordinal,
        plural,
        senses: entry.senses,
    };
    if let Some(entry) = ENGLISH.iter().find(|e| e.folded == folded) {
        return Some(word(entry, false, false));
    }
    if let Some(entry) = ENGLISH_ORDINALS.iter().find(|e| e.folded == folded) {
        return Some(word(entry, true, false));
    }
    // "fifths", "thirds": denominators ("seconds" and "firsts" are not).
    let singular = folded.strip_suffix('s')?;
    ENGLISH_ORDINALS
        .iter()
        .filter(|e| e.atom.value >= 3)
        .find(|e| e.folded == singular)
        .map(|entry| word(entry, true, true))
}

fn turkish(folded: &str, raw: &str) -> Option<NumberWord> {
    let mut atoms = Vec::new();
    let mut proper = String::new();
    let mut senses: &'static [Sense] = PLAIN;
    let mut rest = folded;
    let ending = loop {
        let entry = stem_at(rest)?;
        if atoms.is_empty() {
            senses = entry.senses;
        }
        atoms.push(entry.atom);
        proper.push_str(entry.proper);
        rest = &rest[entry.folded.len()..];
        if rest.is_empty() {
            break Ending::None;
        }
        if stem_at(rest).is_some() {
            continue;
        }
        let after_vowel = entry.folded.ends_with(['a', 'e', 'i', 'o', 'u']);
        break ending_of(rest, after_vowel)?;
    };
    if !spelled_as(raw, &proper) {
        return None;
    }
    Some(NumberWord {
        atoms,
        tongue: Tongue::Tr,
        ordinal: ending == Ending::Ordinal,
        ending,
        plural: false,
        senses,
    })
}

/// True when the word `raw` starts with `proper` written with its own accents or with none
/// ("ön" (front) and "uç" (tip) are not "on" and "üç"), and its ending has no letter an
/// ending never has ("yarışı", the race, is not "yarısı", its half).
fn spelled_as(raw: &str, proper: &str) -> bool {
    let lower = fold(raw, false);
    let stem = proper.chars().count();
    let accents_fit = lower.starts_with(proper) || raw.chars().take(stem).all(|c| c.is_ascii());
    accents_fit && !lower.chars().skip(stem).any(|c| "şğö".contains(c))
}

/// The ending of a Turkish word that is `stem` (folded; `proper` with its accents) plus
/// an ending: "yarısı" is "yarı" with a possessive, "çeyreği" softened "çeyreğ" with one.
pub(super) fn ending_after(folded: &str, raw: &str, stem: &str, proper: &str) -> Option<Ending> {
    let rest = folded.strip_prefix(stem)?;
    if !spelled_as(raw, proper) {
        return None;
    }
    if rest.is_empty() {
        return Some(Ending::None);
    }
    ending_of(rest, stem.ends_with(['a', 'e', 'i', 'o', 'u']))
}

/// The longest Turkish stem at the start of `rest`; the softened "dörd" only before a vowel.
fn stem_at(rest: &str) -> Option<&'static Entry> {
    TURKISH
        .iter()
        .filter(|e| rest.starts_with(e.folded))
        .filter(|e| {
            e.folded != "dord" || rest[e.folded.len()..].starts_with(['a', 'e', 'i', 'o', 'u'])
        })
        .max_by_key(|e| e.folded.len())
}

/// How the letters after a Turkish number stem end it; `None` when they make another word
/// ("üçgen", "ikiz", "birer") or a plural ("onlar", "binlerce": vague, not a number).
fn ending_of(rest: &str, after_vowel: bool) -> Option<Ending> {
    let ordinal: &[&str] = if after_vowel {
        &["nci", "ncu"]
    } else {
        &["inci", "uncu"]
    };
    if let Some(tail) = ordinal.iter().find_map(|o| rest.strip_prefix(o))
        && (tail.is_empty() || phrase::is_suffix_chain(tail))
    {
        return Some(Ending::Ordinal);
    }
    if matches!(rest, "de" | "da" | "te" | "ta") {
        return Some(Ending::Locative);
    }
    if phrase::is_copula(rest) {
        return Some(Ending::Copula);
    }
    let possessive: &[&str] = if after_vowel {
        &["si", "su"]
    } else {
        &["i", "u"]
    };
    if let Some(tail) = possessive.iter().find_map(|p| rest.strip_prefix(p))
        && (tail.is_empty() || phrase::is_copula(tail))
    {
        return Some(Ending::Possessive);
    }
    let plural = rest.starts_with("ler") || rest.starts_with("lar");
    (!plural && phrase::is_suffix_chain(rest)).then_some(Ending::Case)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(word: &str) -> Option<(Vec<i128>, Ending)> {
        read(&fold(word, true), word).map(|w| (w.atoms.iter().map(|a| a.value).collect(), w.ending))
    }

    #[test]
    fn turkish_words_their_endings_and_joined_spellings() {
        assert_eq!(value("dört"), Some((vec![4], Ending::None)));
        assert_eq!(value("dördüncü"), Some((vec![4], Ending::Ordinal)));
        assert_eq!(value("dokuzuncu"), Some((vec![9], Ending::Ordinal)));
        assert_eq!(value("altıncı"), Some((vec![6], Ending::Ordinal)));
        assert_eq!(value("beşte"), Some((vec![5], Ending::Locative)));
        assert_eq!(value("yirmidir"), Some((vec![20], Ending::Copula)));
        assert_eq!(value("kırkıdır"), Some((vec![40], Ending::Possessive)));
        assert_eq!(value("ikisi"), Some((vec![2], Ending::Possessive)));
        assert_eq!(value("otuzdan"), Some((vec![30], Ending::Case)));
        assert_eq!(value("ikiye"), Some((vec![2], Ending::Case)));
        assert_eq!(value("ondört"), Some((vec![10, 4], Ending::None)));
        assert_eq!(value("üçyüzaltmış"), Some((vec![3, 100, 60], Ending::None)));
        assert_eq!(value("ELLİ"), Some((vec![50], Ending::None)));
        assert_eq!(value("KIRK"), Some((vec![40], Ending::None)));
        assert_eq!(
            value("yetmis"),
            Some((vec![70], Ending::None)),
            "written without accents"
        );
    }

    #[test]
    fn words_that_only_look_like_numbers() {
        for word in [
            "ön", "uç", "üçgen", "ikiz", "birer", "onlar", "binlerce", "dörtlü", "beşik",
            "yedirmek",
        ] {
            assert_eq!(value(word), None, "{word}");
        }
    }

    #[test]
    fn english_words() {
        assert_eq!(value("forty"), Some((vec![40], Ending::None)));
        let fifths = read("fifths", "fifths").unwrap();
        assert!(fifths.ordinal && fifths.plural);
        assert_eq!(value("seconds"), None);
        assert_eq!(read("one", "one").unwrap().senses, [Sense::Article]);
    }
}
