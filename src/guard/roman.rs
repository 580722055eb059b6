//! Roman numerals ("XIX. yüzyıl", "II. Mehmet", "chapter XII"), looked for only when the
//! answer is a small integer: most words in capitals are not numerals, and the few that are
//! (a century, a chapter, a sultan) number small things.

use super::lexer::Scan;

/// The largest answer looked for in Roman numerals.
pub(super) const MAX_ANSWER: i128 = 100;

const DIGITS: [(u32, &str); 13] = [
    (1000, "M"),
    (900, "CM"),
    (500, "D"),
    (400, "CD"),
    (100, "C"),
    (90, "XC"),
    (50, "L"),
    (40, "XL"),
    (10, "X"),
    (9, "IX"),
    (5, "V"),
    (4, "IV"),
    (1, "I"),
];

/// The value of `raw` as a Roman numeral in its one standard spelling ("XIX", not "XVIIII"
/// or "IXX"), up to 3999.
pub(super) fn value(raw: &str) -> Option<u32> {
    if raw.is_empty() || raw.len() > 15 || !raw.bytes().all(|b| b"IVXLCDM".contains(&b)) {
        return None;
    }
    let mut rest = raw;
    let mut total = 0;
    for (amount, digits) in DIGITS {
        // At most three of a kind ("III"), one of a subtractive pair ("IX").
        let most = if digits.len() == 1 { 3 } else { 1 };
        for _ in 0..most {
            match rest.strip_prefix(digits) {
                Some(after) => {
                    rest = after;
                    total += amount;
                }
                None => break,
            }
        }
    }
    (rest.is_empty() && encode(total) == raw).then_some(total)
}

fn encode(mut n: u32) -> String {
    let mut out = String::new();
    for (amount, digits) in DIGITS {
        while n >= amount {
            out.push_str(digits);
            n -= amount;
        }
    }
    out
}

/// Every Roman numeral of `scan` in capitals, as (value, token): two letters or more, or a
/// single letter used as an ordinal ("V. Mehmet"); a lone "I", "C" or "X" is a word, a
/// choice or a variable.
pub(super) fn numerals(scan: &Scan) -> Vec<(u32, usize)> {
    (0..scan.len())
        .filter(|&i| scan.word(i).is_some())
        .filter_map(|i| {
            let raw = scan.raw(i);
            let ordinal =
                scan.sym(i + 1) == Some('.') && scan.glued(i + 1) && scan.word(i + 2).is_some();
            let value = value(raw)?;
            (raw.len() >= 2 || ordinal).then_some((value, i))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_spellings_only() {
        assert_eq!(value("XIX"), Some(19));
        assert_eq!(value("XX"), Some(20));
        assert_eq!(value("IV"), Some(4));
        assert_eq!(value("MCMXXIII"), Some(1923));
        for raw in ["IIII", "IXX", "VV", "IC", "xix", "XIXI", "", "ABC"] {
            assert_eq!(value(raw), None, "{raw}");
        }
    }

    #[test]
    fn numerals_in_text() {
        let found = |text: &str| {
            numerals(&Scan::new(text))
                .into_iter()
                .map(|(v, _)| v)
                .collect::<Vec<_>>()
        };
        assert_eq!(found("XIX. yüzyıl ve II. Mehmet"), [19, 2]);
        assert_eq!(found("V. Mehmet"), [5]);
        assert_eq!(found("I think C is X"), Vec::<u32>::new());
        assert_eq!(found("Ⅻ. bölüm"), [12], "NFKC reads the numeral signs");
    }
}
