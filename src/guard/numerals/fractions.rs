//! What may follow a number's words: a numerator after a Turkish locative ("beşte iki",
//! "yüzde kırk"), "buçuk", decimals ("virgül yedi", "point seven"), English denominators
//! ("two fifths", "and a half"), "percent", "over"; one-word fractions ("yarım", "çeyrek",
//! "half"); and digits with words ("2 milyon", "3 buçuk", "4'te 3").

use super::super::lexicon::{self, Ending, Place, Sense, Tongue};
use super::super::numbers::{self, Convention, Rational};
use super::{Integer, Reader, Reading, plain, with};

impl Reader<'_> {
    /// What may follow a Turkish integer: a numerator after a locative ("beşte iki", "yüzde
    /// kırk"), "buçuk", "virgül …", "tam …" (a mixed number).
    pub(super) fn after_turkish(&self, n: Integer) -> Reading {
        let whole = Rational::integer(n.value);
        let next = n.last + 1;
        if n.ending == Ending::Locative
            && let Some(reading) = self.over(n, next)
        {
            return reading;
        }
        if n.ending != Ending::None {
            return plain(n);
        }
        if let Some(word) = self.scan.word(next)
            && let Some(ending) =
                [("bucuk", "buçuk"), ("bucug", "buçuğ")]
                    .iter()
                    .find_map(|(stem, proper)| {
                        lexicon::ending_after(word, self.scan.raw(next), stem, proper)
                    })
        {
            return with(n, add(whole, half()), next, ending);
        }
        if self.is(next, &["virgul", "nokta"])
            && let Some((fraction, last, ending)) = self.decimals(next + 1)
        {
            return with(n, add(whole, fraction), last, ending);
        }
        if self.is(next, &["tam"])
            && let Some(denominator) = self.integer(next + 1)
            && denominator.ending == Ending::Locative
            && let Some(fraction) = self.over(denominator, denominator.last + 1)
        {
            let values = fraction.values.iter().filter_map(|f| whole.checked_add(*f));
            return Reading {
                values: values.collect(),
                first: n.first,
                ..fraction
            };
        }
        plain(n)
    }

    /// "beşte iki" (2/5), "yüzde kırk" (40 and 2/5), "4'te 3": the numerator at token `at`
    /// over `denominator`.
    fn over(&self, denominator: Integer, at: usize) -> Option<Reading> {
        let (numerator, last, ending) = self.numerator(at)?;
        let den = Rational::integer(denominator.value);
        let mut values: Vec<Rational> = numerator.checked_div(den).into_iter().collect();
        if denominator.value == 100 {
            values.insert(0, numerator);
        }
        Some(Reading {
            values,
            first: denominator.first,
            last,
            ending,
            single: None,
        })
    }

    /// A Turkish numerator at `at`: words ("ikisi", "biri") or digits ("yüzde 40").
    fn numerator(&self, at: usize) -> Option<(Rational, usize, Ending)> {
        if self.scan.is_number(at) {
            let value = *numbers::ordered(self.scan.raw(at), Convention::Turkish).first()?;
            let suffixed = self.scan.sym(at + 1) == Some('\'') && self.scan.is_suffix(at + 2);
            let last = if suffixed { at + 2 } else { at };
            return Some((value, last, Ending::None));
        }
        let n = self
            .integer(at)
            .filter(|n| n.tongue == Tongue::Tr && !n.ordinal)?;
        Some((Rational::integer(n.value), n.last, n.ending))
    }

    /// The digits after a decimal word: Turkish reads them as a number after any zeros
    /// ("virgül sıfır beş" = ,05; "virgül on dört" = ,14), English one by one ("point one
    /// four"), or as a number ("point fourteen").
    fn decimals(&self, at: usize) -> Option<(Rational, usize, Ending)> {
        let mut digits = String::new();
        let mut k = at;
        let mut last = None;
        let mut ending = Ending::None;
        while let Some(word) = self.word(k)
            && let [atom] = word.atoms[..]
            && atom.place == Place::Unit
            && !word.ordinal
            && (atom.value == 0 || word.tongue == Tongue::En)
            && digits.len() < 30
        {
            digits.push(char::from(b'0' + u8::try_from(atom.value).ok()?));
            ending = word.ending;
            last = Some(k);
            k += 1;
            if word.ending != Ending::None {
                break;
            }
        }
        if ending == Ending::None
            && let Some(n) = self.integer(k).filter(|n| !n.ordinal)
        {
            digits.push_str(&n.value.to_string());
            last = Some(n.last);
            ending = n.ending;
        }
        let scale = 10i128.checked_pow(u32::try_from(digits.len()).ok()?)?;
        let fraction = Rational::new(numbers::parse_int(&digits)?, scale)?;
        Some((fraction, last?, ending))
    }

    /// What may follow an English integer: a denominator ("two fifths", "three quarters"),
    /// "and a half", "point …", "percent", "over …".
    pub(super) fn after_english(&self, n: Integer) -> Reading {
        let whole = Rational::integer(n.value);
        let mut next = n.last + 1;
        if self.scan.sym(next) == Some('-') && self.scan.glued(next) && self.scan.glued(next + 1) {
            next += 1;
        }
        if let Some((den, last)) = self.denominator(next) {
            let value = whole.checked_div(Rational::integer(den));
            return with(n, value, last, Ending::None);
        }
        if self.is(next, &["and"])
            && let Some((fraction, last)) = self.english_fraction(next + 1)
        {
            return with(n, add(whole, fraction), last, Ending::None);
        }
        if self.is(next, &["point"])
            && let Some((fraction, last, _)) = self.decimals(next + 1)
        {
            return with(n, add(whole, fraction), last, Ending::None);
        }
        let percent = if self.is(next, &["percent"]) {
            Some(next)
        } else if self.is(next, &["per"]) && self.is(next + 1, &["cent"]) {
            Some(next + 1)
        } else {
            None
        };
        if let Some(last) = percent {
            return Reading {
                values: percents(whole),
                first: n.first,
                last,
                ending: Ending::None,
                single: None,
            };
        }
        if self.is(next, &["over"])
            && let Some(m) = self.integer(next + 1).filter(|m| !m.ordinal)
        {
            let value = whole.checked_div(Rational::integer(m.value));
            return with(n, value, m.last, Ending::None);
        }
        plain(n)
    }

    /// An English denominator at `at`: "half", "halves", "quarter(s)", or an ordinal from
    /// three up ("fifths", "tenth", "hundredths"); its value and last token.
    fn denominator(&self, at: usize) -> Option<(i128, usize)> {
        match self.scan.word(at)? {
            "half" | "halves" => return Some((2, at)),
            "quarter" | "quarters" => return Some((4, at)),
            _ => {}
        }
        let ordinal = self.integer(at)?;
        (ordinal.ordinal && ordinal.tongue == Tongue::En && ordinal.value >= 3)
            .then_some((ordinal.value, ordinal.last))
    }

    /// "a half", "one third", "three quarters" at `at`.
    fn english_fraction(&self, at: usize) -> Option<(Rational, usize)> {
        let (numerator, next) = if self.is(at, &["a", "an"]) {
            (1, at + 1)
        } else {
            let n = self
                .integer(at)
                .filter(|n| n.tongue == Tongue::En && !n.ordinal)?;
            (n.value, n.last + 1)
        };
        let (den, last) = self.denominator(next)?;
        Some((Rational::new(numerator, den)?, last))
    }

    /// Fractions written as one word ("yarım", "yarısı", "çeyreği", "half", "a quarter"),
    /// and English decimals without a whole part ("point five").
    pub(super) fn fraction_word_at(&self, i: usize) -> Option<Reading> {
        let word = self.scan.word(i)?;
        let raw = self.scan.raw(i);
        let one = |value: Rational, last: usize, ending: Ending| Reading {
            values: vec![value],
            first: i,
            last,
            ending,
            single: None,
        };
        for (stem, proper, value) in [
            ("yarim", "yarım", half()),
            ("yari", "yarı", half()),
            ("ceyrek", "çeyrek", Rational::new(1, 4)?),
            ("ceyreg", "çeyreğ", Rational::new(1, 4)?),
        ] {
            if let Some(ending) = lexicon::ending_after(word, raw, stem, proper) {
                return Some(one(value, i, ending));
            }
        }
        match word {
            "half" => return Some(one(half(), i, Ending::None)),
            "quarter" => return Some(one(Rational::new(1, 4)?, i, Ending::None)),
            _ => {}
        }
        if self.is(i, &["a", "an"])
            && let Some((fraction, last)) = self.english_fraction(i)
        {
            return Some(one(fraction, last, Ending::None));
        }
        // "is point five", "= point five"; not "at this point two things matter".
        let opens = i == 0
            || self.scan.word(i - 1).is_none()
            || self.is(
                i - 1,
                &["is", "be", "equals", "get", "gives", "makes", "to"],
            );
        if word == "point"
            && opens
            && let Some((fraction, last, _)) = self.decimals(i + 1)
        {
            return Some(one(fraction, last, Ending::None));
        }
        None
    }

    /// Digits with words that change them: "2 milyon", "1,5 million", "3 buçuk", "40
    /// percent", "4'te 3". Digits alone are not read here.
    pub(super) fn digits_at(&self, i: usize) -> Option<Reading> {
        if self.scan.glued(i) && self.scan.word(i - 1).is_some() {
            return None;
        }
        let values = numbers::ordered(self.scan.raw(i), Convention::Turkish);
        let next = i + 1;
        let reading = |values: Vec<Rational>, last: usize, ending: Ending| Reading {
            values,
            first: i,
            last,
            ending,
            single: None,
        };
        if let Some(word) = self.word(next)
            && let [atom] = word.atoms[..]
            && atom.place == Place::Scale
            && !word.ordinal
        {
            let scale = Rational::integer(atom.value);
            let scaled = values.iter().filter_map(|v| v.checked_mul(scale)).collect();
            return Some(reading(scaled, next, word.ending));
        }
        if self.is(next, &["bucuk"]) {
            let plus = values
                .iter()
                .filter_map(|v| v.checked_add(half()))
                .collect();
            return Some(reading(plus, next, Ending::None));
        }
        if self.is(next, &["percent"]) {
            let all = values.iter().flat_map(|v| percents(*v)).collect();
            return Some(reading(all, next, Ending::None));
        }
        if self.scan.sym(next) == Some('\'')
            && self.scan.is_suffix(next + 1)
            && self.is(next + 1, &["de", "da", "te", "ta"])
            && let Some(&whole) = values.first()
            && whole.denom() == 1
        {
            let denominator = Integer {
                value: whole.numer(),
                first: i,
                last: next + 1,
                ending: Ending::Locative,
                ordinal: false,
                plural: false,
                tongue: Tongue::Tr,
                senses: &[Sense::Number],
            };
            return self.over(denominator, next + 2);
        }
        None
    }
}

pub(super) fn half() -> Rational {
    Rational::new(1, 2).unwrap_or(Rational::integer(0))
}

fn add(a: Rational, b: Rational) -> Option<Rational> {
    a.checked_add(b)
}

/// A percentage's values: the number itself (as "%40" is read) and its fraction.
fn percents(value: Rational) -> Vec<Rational> {
    let mut out = vec![value];
    out.extend(value.checked_div(Rational::integer(100)));
    out
}
