//! Exact numbers in digits: Turkish and English separators, fractions, signs and percentages;
//! with [`matches`], every number of a text, those written in words too (`numerals.rs`).
//!
//! `1.000,5` (Turkish) and `1,000.5` (English) are both 2001/2. A lone separator followed by
//! exactly three digits is ambiguous (`1.000` is 1000 in Turkish and 1 in English), so a
//! number in a hint has every plausible reading; a solution's number has one, chosen by the
//! solution's language (see [`Convention`]).

use std::collections::HashSet;

use super::lexer::Scan;
use super::numerals;
pub(super) use super::rational::Rational;

/// Which separator convention to prefer when a number could be read either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Convention {
    /// `.` groups thousands, `,` marks decimals.
    Turkish,
    /// `,` groups thousands, `.` marks decimals.
    English,
}

impl Convention {
    /// English when the text reads as English (no Turkish letters, an English word such as
    /// "answer" or "the"); Turkish otherwise, as the platform is Turkish.
    pub fn of(text: &str) -> Self {
        if text.chars().any(|c| "çğıöşüÇĞİÖŞÜ".contains(c)) {
            return Self::Turkish;
        }
        let english = crate::prompts::words(text, true).iter().any(|w| {
            matches!(
                w.as_str(),
                "the" | "answer" | "result" | "is" | "equals" | "solution" | "so" | "therefore"
            )
        });
        if english {
            Self::English
        } else {
            Self::Turkish
        }
    }
}

/// What the separators of a number do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Plain,
    Grouped(char),
    Decimal(char),
}

impl Role {
    fn fits(self, convention: Convention) -> bool {
        match (self, convention) {
            (Role::Plain, _) => true,
            (Role::Grouped(c), Convention::Turkish) | (Role::Decimal(c), Convention::English) => {
                c == '.'
            }
            (Role::Grouped(c), Convention::English) | (Role::Decimal(c), Convention::Turkish) => {
                c == ','
            }
        }
    }
}

const MAX_DIGITS: usize = 30;

/// Parses a run of ASCII digits; `None` for an empty or over-long run.
pub(super) fn parse_int(digits: &str) -> Option<i128> {
    if digits.is_empty() || digits.len() > MAX_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    digits.parse().ok()
}

fn decimal(int: &str, frac: &str) -> Option<Rational> {
    let scale = 10i128.checked_pow(u32::try_from(frac.len()).ok()?)?;
    let whole = parse_int(int)?.checked_mul(scale)?;
    Rational::new(whole.checked_add(parse_int(frac)?)?, scale)
}

/// `1.000.000`: a first group of one to three digits (no leading zero), then groups of three.
fn grouped(groups: &[&str]) -> Option<Rational> {
    let (first, rest) = groups.split_first()?;
    let ok = !rest.is_empty()
        && (1..=3).contains(&first.len())
        && !first.starts_with('0')
        && rest.iter().all(|g| g.len() == 3);
    if ok {
        parse_int(&groups.concat()).map(Rational::integer)
    } else {
        None
    }
}

/// Every plausible reading of a number token (digits with `.`/`,` between them); empty
/// when the separators fit no convention ("12.05.2023", "3,4,5").
fn readings(raw: &str) -> Vec<(Rational, Role)> {
    let groups: Vec<&str> = raw.split(['.', ',']).collect();
    let seps: Vec<char> = raw.chars().filter(|c| matches!(c, '.' | ',')).collect();
    let mut out = Vec::new();
    let Some(&last_sep) = seps.last() else {
        return parse_int(raw)
            .map(|n| vec![(Rational::integer(n), Role::Plain)])
            .unwrap_or_default();
    };
    if seps.iter().all(|&c| c == last_sep) {
        if let Some(value) = grouped(&groups) {
            out.push((value, Role::Grouped(last_sep)));
        }
        if let [int, frac] = groups[..]
            && let Some(value) = decimal(int, frac)
        {
            out.push((value, Role::Decimal(last_sep)));
        }
    } else if seps[..seps.len() - 1].iter().all(|&c| c != last_sep)
        && let Some((frac, int_groups)) = groups.split_last()
        && grouped(int_groups).is_some()
        && let Some(value) = decimal(&int_groups.concat(), frac)
    {
        out.push((value, Role::Decimal(last_sep)));
    }
    out
}

/// The readings of `raw`, those that fit `convention` first.
pub(super) fn ordered(raw: &str, convention: Convention) -> Vec<Rational> {
    let all = readings(raw);
    let fitting = all.iter().filter(|(_, role)| role.fits(convention));
    let others = all.iter().filter(|(_, role)| !role.fits(convention));
    let mut values: Vec<Rational> = Vec::new();
    for (value, _) in fitting.chain(others) {
        if !values.contains(value) {
            values.push(*value);
        }
    }
    values
}

/// A number found in a text: its readings (preferred first) and its tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NumberMatch {
    pub values: Vec<Rational>,
    pub first: usize,
    pub last: usize,
    /// Written with a word that is a number only sometimes ("bir", "one", "first"): a value
    /// where it closes a statement ("cevap bir."), never by itself a sign of the answer.
    pub weak: bool,
    /// Its last word carries a case ending ("otuzdan büyük", "ikiye böl"): an operand or a
    /// bound, not a stated value.
    pub governed: bool,
}

impl NumberMatch {
    /// A number written in digits, tokens `first..=last`.
    fn digits(values: Vec<Rational>, first: usize, last: usize) -> Self {
        Self {
            values,
            first,
            last,
            weak: false,
            governed: false,
        }
    }
}

/// Words after which a number is a label, not a quantity: "adım 2", "step 3".
const LABEL_WORDS: &[&str] = &[
    "adim", "soru", "sorunun", "madde", "sayfa", "satir", "step", "question", "page", "line",
];

/// Nouns after which `N.` is an ordinal: "2. adım", "3. soru".
pub(super) const ORDINAL_NOUNS: &[&str] = &[
    "adim", "soru", "kisim", "basamak", "satir", "sayfa", "madde", "bolum", "asama", "sinif",
];

/// The numbers that label the items of a numbered list ("1. Önce topla\n2. Sonra böl", "1)
/// Topla. 2) Böl."): a number opening a line or a sentence with a glued "." or ")", whose
/// neighbour (one less or one more) opens another the same way, or a "1." that starts one
/// (a streamed hint shows its first item before the second). Any other number opening a
/// hint so ("81. Çünkü …") is no label: it states the result.
fn list_labels(scan: &Scan) -> HashSet<usize> {
    let opens = |i: usize| {
        i == 0 || scan.tokens[i].line_start || scan.sym(i - 1).is_some_and(|c| ".!?;".contains(c))
    };
    let heads: Vec<(usize, i128)> = (0..scan.len())
        .filter(|&i| opens(i) && matches!(scan.sym(i + 1), Some('.' | ')')) && scan.glued(i + 1))
        .filter_map(|i| Some((i, parse_int(scan.raw(i))?)))
        .collect();
    let values: HashSet<i128> = heads.iter().map(|&(_, n)| n).collect();
    heads
        .iter()
        .filter(|&&(i, n)| {
            (n == 1 && scan.word(i + 2).is_some())
                || n.checked_sub(1).is_some_and(|p| values.contains(&p))
                || n.checked_add(1).is_some_and(|q| values.contains(&q))
        })
        .map(|&(i, _)| i)
        .collect()
}

/// True when the number at `i` is not a quantity: a subscript ("x2", "B12"), an exponent
/// ("x^2"), a list label (see [`list_labels`]) or an ordinal ("2. adım").
fn is_label(scan: &Scan, i: usize, lists: &HashSet<usize>) -> bool {
    if lists.contains(&i) {
        return true;
    }
    if scan.glued(i) && scan.word(i - 1).is_some() {
        return true;
    }
    if i > 0 && scan.sym(i - 1) == Some('^') {
        return true;
    }
    if i > 0 && scan.word(i - 1).is_some_and(|w| LABEL_WORDS.contains(&w)) {
        return true;
    }
    if matches!(scan.sym(i + 1), Some('.' | ')')) && scan.glued(i + 1) {
        let next_word = scan.word(i + 2);
        if next_word.is_some_and(|w| ORDINAL_NOUNS.iter().any(|n| w.starts_with(n))) {
            return true;
        }
    }
    false
}

/// True when a `-` right before the number at `i` is its sign: "x = -5", "cevap -5", but
/// not "x-5" or "3-5".
fn has_sign(scan: &Scan, i: usize) -> bool {
    if i == 0 || scan.sym(i - 1) != Some('-') || !scan.glued(i) {
        return false;
    }
    let minus = i - 1;
    minus == 0 || scan.tokens[minus].space_before || scan.sym(minus - 1).is_some_and(|c| c != ')')
}

/// Every number in `scan`, readings ordered for `convention`.
pub(super) fn matches(scan: &Scan, convention: Convention) -> Vec<NumberMatch> {
    let lists = list_labels(scan);
    let mut out = Vec::new();
    let mut i = 0;
    while i < scan.len() {
        if !scan.is_number(i) || is_label(scan, i, &lists) {
            i += 1;
            continue;
        }
        let mut values = ordered(scan.raw(i), convention);
        if values.is_empty() {
            // "12.05.2023", "3,4,5": each digit run on its own.
            for part in scan.raw(i).split(['.', ',']) {
                if let Some(n) = parse_int(part) {
                    out.push(NumberMatch::digits(vec![Rational::integer(n)], i, i));
                }
            }
            i += 1;
            continue;
        }
        let mut first = i;
        let mut last = i;
        if has_sign(scan, i) {
            first = i - 1;
            values = values.into_iter().filter_map(Rational::neg).collect();
        }
        if scan.sym(i + 1) == Some('/') && scan.is_number(i + 2) && !is_label(scan, i + 2, &lists) {
            let denominators = ordered(scan.raw(i + 2), convention);
            let tight = scan.glued(i + 1) && scan.glued(i + 2);
            if !tight {
                // "12 / 4" is also two numbers.
                out.push(NumberMatch::digits(values.clone(), first, i));
                out.push(NumberMatch::digits(denominators.clone(), i + 2, i + 2));
            }
            values = values
                .iter()
                .flat_map(|n| denominators.iter().filter_map(|d| n.checked_div(*d)))
                .collect();
            last = i + 2;
        }
        let percent_before = first > 0 && scan.sym(first - 1) == Some('%') && scan.glued(first);
        let percent_after = scan.sym(last + 1) == Some('%');
        if percent_before {
            first -= 1;
        } else if percent_after {
            last += 1;
        }
        if percent_before || percent_after {
            let hundred = Rational::integer(100);
            let fractions: Vec<Rational> = values
                .iter()
                .filter_map(|v| v.checked_div(hundred))
                .collect();
            values.extend(fractions);
        }
        let mut unique: Vec<Rational> = Vec::with_capacity(values.len());
        for value in values {
            if !unique.contains(&value) {
                unique.push(value);
            }
        }
        let values = unique;
        if !values.is_empty() {
            out.push(NumberMatch::digits(values, first, last));
        }
        i = last + 1;
    }
    out.extend(space_grouped(scan, &lists));
    // A number read with its words is read whole: "2 milyon" is not also 2, "eksi 7" not 7.
    let spelled = numerals::matches(scan);
    let mut owner: Vec<Option<usize>> = vec![None; scan.len()];
    for (k, s) in spelled.iter().enumerate() {
        owner[s.first..=s.last].fill(Some(k));
    }
    out.retain(|m| owner[m.first].is_none() || owner[m.first] != owner[m.last]);
    out.extend(spelled);
    out
}

/// The numbers of a text, and for each token the first of them (in [`matches`]'s order)
/// that covers it, starts at it or ends at it: looked up once per token, not searched.
pub(super) struct Found {
    covering: Vec<Option<usize>>,
    starting: Vec<Option<usize>>,
    ending: Vec<Option<usize>>,
    all: Vec<NumberMatch>,
}

impl Found {
    pub fn new(scan: &Scan, convention: Convention) -> Self {
        let all = matches(scan, convention);
        let mut covering = vec![None; scan.len()];
        let mut starting = vec![None; scan.len()];
        let mut ending = vec![None; scan.len()];
        for (k, m) in all.iter().enumerate() {
            for slot in &mut covering[m.first..=m.last] {
                slot.get_or_insert(k);
            }
            starting[m.first].get_or_insert(k);
            ending[m.last].get_or_insert(k);
        }
        Self {
            covering,
            starting,
            ending,
            all,
        }
    }

    fn get(&self, index: &[Option<usize>], i: usize) -> Option<&NumberMatch> {
        index.get(i).copied().flatten().map(|k| &self.all[k])
    }

    /// The number that covers token `i`.
    pub fn covering(&self, i: usize) -> Option<&NumberMatch> {
        self.get(&self.covering, i)
    }

    /// The number whose first token is `i`.
    pub fn starting_at(&self, i: usize) -> Option<&NumberMatch> {
        self.get(&self.starting, i)
    }

    /// The number whose last token is `i`.
    pub fn ending_at(&self, i: usize) -> Option<&NumberMatch> {
        self.get(&self.ending, i)
    }
}

/// "1 000 000": a group of one to three digits, then groups of three after single spaces.
fn space_grouped(scan: &Scan, lists: &HashSet<usize>) -> Vec<NumberMatch> {
    let plain = |i: usize| scan.is_number(i) && scan.raw(i).bytes().all(|b| b.is_ascii_digit());
    let mut out = Vec::new();
    for i in 0..scan.len() {
        let raw = scan.raw(i);
        let head = plain(i)
            && (1..=3).contains(&raw.len())
            && !raw.starts_with('0')
            && !(i > 0 && scan.is_number(i - 1))
            && !is_label(scan, i, lists);
        if !head {
            continue;
        }
        let mut last = i;
        let mut digits = raw.to_owned();
        while plain(last + 1)
            && scan.raw(last + 1).len() == 3
            && &scan.text[scan.tokens[last].end..scan.tokens[last + 1].start] == " "
        {
            last += 1;
            digits.push_str(scan.raw(last));
        }
        if last > i
            && let Some(n) = parse_int(&digits)
        {
            out.push(NumberMatch::digits(vec![Rational::integer(n)], i, last));
        }
    }
    out
}

/// Every value a text mentions, read as broadly as possible: all readings of every number
/// (labels and exponents included), and both parts of every fraction. Used to excuse
/// numbers that a hint merely repeats from the question.
pub(super) fn all_values(scan: &Scan) -> HashSet<Rational> {
    let mut values: HashSet<Rational> = HashSet::new();
    for i in 0..scan.len() {
        if !scan.is_number(i) {
            continue;
        }
        let raw = scan.raw(i);
        values.extend(readings(raw).into_iter().map(|(v, _)| v));
        values.extend(
            raw.split(['.', ','])
                .filter_map(parse_int)
                .map(Rational::integer),
        );
    }
    // A question's "bir" is an article, not a datum that would excuse the answer 1.
    for found in matches(scan, Convention::Turkish) {
        if !found.weak {
            values.extend(found.values);
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<Vec<String>> {
        let scan = Scan::new(text);
        matches(&scan, Convention::Turkish)
            .into_iter()
            .map(|m| m.values.iter().map(ToString::to_string).collect())
            .collect()
    }

    #[test]
    fn separators_are_read_every_plausible_way() {
        assert_eq!(values("1.000"), [["1000", "1"]]);
        assert_eq!(values("1,000"), [["1", "1000"]]);
        assert_eq!(values("1.5"), [["3/2"]]);
        assert_eq!(values("1,5"), [["3/2"]]);
        assert_eq!(values("1.000,5"), [["2001/2"]]);
        assert_eq!(values("1,000.5"), [["2001/2"]]);
        assert_eq!(values("1.000.000"), [["1000000"]]);
        assert_eq!(values("0,750"), [["3/4"]]);
        assert_eq!(values("12.05.2023"), [["12"], ["5"], ["2023"]]);
    }

    #[test]
    fn fractions_signs_percentages() {
        assert_eq!(values("3/4"), [["3/4"]]);
        assert_eq!(values("12 / 4"), [vec!["12"], vec!["4"], vec!["3"]]);
        assert_eq!(values("x = -5"), [["-5"]]);
        assert_eq!(values("x-5"), [["5"]]);
        assert_eq!(values("%25"), [["25", "1/4"]]);
        assert_eq!(values("25 %"), [["25", "1/4"]]);
        assert_eq!(
            values("1 000 000"),
            [vec!["1"], vec!["0"], vec!["0"], vec!["1000000"]]
        );
    }

    #[test]
    fn labels_are_not_quantities() {
        assert!(values("x^2 ve B12 vitamini").is_empty());
        assert!(values("1. Önce topla\n2. Sonra böl").is_empty());
        assert!(values("2. adımda dikkat").is_empty());
        assert_eq!(values("x = 2."), [["2"]]);
    }

    #[test]
    fn the_convention_follows_the_language() {
        assert_eq!(Convention::of("The answer is 1,000"), Convention::English);
        assert_eq!(Convention::of("Cevap 1,5"), Convention::Turkish);
        assert_eq!(Convention::of("1,000"), Convention::Turkish);
    }
}
