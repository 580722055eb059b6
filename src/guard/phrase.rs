//! Whole-word phrase occurrence over folded words, allowing Turkish inflection on the last
//! word: "fotosentez" occurs in "fotosentezin", "kitap" in "kitabı", "İstanbul" in
//! "İSTANBUL'dur" (the apostrophe already separates words).

/// Suffix groups in the order Turkish stacks them, folded (`ı`, `ü` → `i`, `u`).
const PLURAL: &[&str] = &["ler", "lar"];
const POSSESSIVE: &[&str] = &[
    "i", "u", "si", "su", "in", "un", "im", "um", "imiz", "umuz", "iniz", "unuz", "leri", "lari",
];
const CASE: &[&str] = &[
    "i", "u", "yi", "yu", "ni", "nu", "e", "a", "ye", "ya", "ne", "na", "de", "da", "te", "ta",
    "nde", "nda", "den", "dan", "ten", "tan", "nden", "ndan", "in", "un", "nin", "nun", "le", "la",
    "yle", "yla", "ce", "ca",
];
const COPULA: &[&str] = &[
    "dir", "dur", "tir", "tur", "ki", "di", "du", "ti", "tu", "ydi", "ydu", "mis", "mus", "ymis",
    "ymus",
];
const GROUPS: [&[&str]; 4] = [PLURAL, POSSESSIVE, CASE, COPULA];

/// True when `rest` is a chain of inflectional suffixes: plural, possessive, case, copula,
/// each optional, in that order ("ler" + "i" + "nde" + "ki").
pub(super) fn is_suffix_chain(rest: &str) -> bool {
    fn chain(rest: &str, group: usize) -> bool {
        if rest.is_empty() {
            return true;
        }
        let Some(suffixes) = GROUPS.get(group) else {
            return false;
        };
        chain(rest, group + 1)
            || suffixes
                .iter()
                .any(|s| rest.strip_prefix(s).is_some_and(|r| chain(r, group + 1)))
    }
    !rest.is_empty() && chain(rest, 0)
}

/// True when `rest` is a copula ending: "dir", "dur", "ydi", "miş"…
pub(super) fn is_copula(rest: &str) -> bool {
    COPULA.contains(&rest)
}

/// True when `word` is `stem` or `stem` with Turkish suffixes, including the softened final
/// consonant (p → b, t → d, k → ğ). Stems shorter than three letters must match exactly.
pub(super) fn inflects(word: &str, stem: &str) -> bool {
    if word == stem {
        return true;
    }
    stem.chars().count() >= 3 && rest_after(word, stem).is_some_and(is_suffix_chain)
}

/// True when `word` is `stem` bare or with a possessive ending ("sonucu", "cevabın",
/// "yanıtımız"): the forms a word takes when its own value follows ("sonucu 14").
pub(super) fn possessive_of(word: &str, stem: &str) -> bool {
    word == stem || rest_after(word, stem).is_some_and(|rest| POSSESSIVE.contains(&rest))
}

/// What follows `stem` in `word`, the stem's last consonant maybe softened before a vowel
/// ("kitap" in "kitabı").
fn rest_after<'w>(word: &'w str, stem: &str) -> Option<&'w str> {
    if let Some(rest) = word.strip_prefix(stem) {
        return Some(rest);
    }
    let last = stem.chars().last()?;
    let soft = match last {
        'p' => 'b',
        't' => 'd',
        'k' => 'g',
        _ => return None,
    };
    let softened = format!("{}{soft}", &stem[..stem.len() - last.len_utf8()]);
    word.strip_prefix(softened.as_str())
        .filter(|rest| rest.starts_with(['a', 'e', 'i', 'o', 'u']))
}

/// Where `phrase` occurs in `words` as consecutive whole words, the last one matched by
/// `last_matches(text_word, phrase_word)`; the index of its first word.
pub(super) fn find(
    words: &[String],
    phrase: &[String],
    last_matches: impl Fn(&str, &str) -> bool,
) -> Option<usize> {
    let (last, init) = phrase.split_last()?;
    if phrase.len() > words.len() {
        return None;
    }
    (0..=words.len() - phrase.len()).find(|&at| {
        words[at..at + init.len()] == *init && last_matches(&words[at + init.len()], last)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turkish_inflection() {
        for word in [
            "fotosentez",
            "fotosentezin",
            "fotosentezdir",
            "fotosentezlerde",
        ] {
            assert!(inflects(word, "fotosentez"), "{word}");
        }
        assert!(inflects("kitabi", "kitap"));
        assert!(inflects("agaci", "agac"));
        assert!(inflects("rengi", "renk"));
        assert!(!inflects("katsayi", "kat"));
        assert!(!inflects("sonuc", "son"));
        assert!(!inflects("onu", "on"));
        assert!(possessive_of("sonucu", "sonuc"));
        assert!(possessive_of("cevabin", "cevap"));
        assert!(
            !possessive_of("sonuca", "sonuc"),
            "a dative introduces no value"
        );
        assert!(!possessive_of("cevapsiz", "cevap"));
    }
}
