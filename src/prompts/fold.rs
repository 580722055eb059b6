//! Turkish-aware text folding for forbidden-topic matching.
//!
//! Plain `to_lowercase` is wrong for Turkish: `I` lowers to `ı` (dotless) and `İ` to `i`, and
//! Rust's default maps `İ` to `i̇` (two code points). Diacritics are optionally dropped so that
//! `SONUC` matches `sonuç`; then `ı` also folds to `i`.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Lower-cases `text` by Turkish rules and, when `ignore_diacritics`, strips accents.
pub fn fold(text: &str, ignore_diacritics: bool) -> String {
    let mut folded = String::with_capacity(text.len());
    if ignore_diacritics {
        // One pass: decompose, drop the marks, lower-case; `I`, `İ` (`I` + dot) and `ı` all
        // end as `i`.
        for ch in text.nfd().filter(|ch| !is_combining_mark(*ch)) {
            match ch {
                'I' | 'ı' => folded.push('i'),
                _ if ch.is_ascii() => folded.push(ch.to_ascii_lowercase()),
                _ => folded.extend(ch.to_lowercase()),
            }
        }
        return folded;
    }
    for ch in text.nfc() {
        match ch {
            'I' => folded.push('ı'),
            'İ' => folded.push('i'),
            _ => folded.extend(ch.to_lowercase()),
        }
    }
    folded
}

/// Folded words of `text`: runs of letters and digits; everything else separates.
pub fn words(text: &str, ignore_diacritics: bool) -> Vec<String> {
    fold(text, ignore_diacritics)
        .split(|ch: char| !ch.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A forbidden topic, pre-folded into words so that multi-word topics match as a phrase.
#[derive(Debug, Clone)]
pub struct Topic {
    pub original: String,
    words: Vec<String>,
}

impl Topic {
    pub fn new(original: &str, ignore_diacritics: bool) -> Self {
        Self {
            original: original.to_owned(),
            words: words(original, ignore_diacritics),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// True when the topic occurs in `text_words` as whole words.
    pub fn occurs_in(&self, text_words: &[String]) -> bool {
        !self.words.is_empty()
            && text_words
                .windows(self.words.len())
                .any(|w| w == self.words)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(topic: &str, text: &str, ignore: bool) -> bool {
        Topic::new(topic, ignore).occurs_in(&words(text, ignore))
    }

    #[test]
    fn turkish_case_folding() {
        assert_eq!(fold("İSTANBUL", false), "istanbul");
        assert_eq!(fold("IŞIK", false), "ışık");
        assert_eq!(fold("Iİ", true), "ii");
        // A decomposed İ (I + combining dot above) is the same letter.
        assert_eq!(fold("I\u{307}zmir", false), "izmir");
        // Without diacritics: every accent goes, composed or not, and every i is dotted.
        assert_eq!(fold("ÇĞİÖŞÜ çğıöşü", true), "cgiosu cgiosu");
        assert_eq!(fold("I\u{307}ZMİR Işık", true), "izmir isik");
        assert_eq!(fold("Élève ÂNE", true), "eleve ane");
    }

    #[test]
    fn forbidden_topics_match_whole_words_in_any_case() {
        for text in ["cevap nedir", "CEVAP nedir", "Cevap?", "bana cevap ver"] {
            assert!(matches("cevap", text, false), "{text}");
        }
        assert!(!matches("cevap", "cevapsız kaldım", false));
        assert!(matches("sonuç", "SONUÇ ne?", false));
        assert!(!matches("sonuç", "SONUC ne?", false));
        assert!(matches("sonuç", "SONUC ne?", true));
        assert!(matches("sonuç", "sonuc", true));
        assert!(matches("answer", "the ANSWER is", true));
        assert!(matches("son cevap", "Son  cevap, lütfen", true));
        assert!(!matches("son cevap", "son olarak cevap", true));
    }

    #[test]
    fn dotless_i_is_kept_apart_unless_diacritics_are_ignored() {
        assert!(
            !matches("kitap", "KITAP", false),
            "KITAP folds to kıtap in Turkish"
        );
        assert!(matches("kitap", "KİTAP", false));
        assert!(matches("kitap", "KITAP", true));
    }
}
