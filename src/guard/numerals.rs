//! Numbers written in words, alone or with digits: cardinals up to the trillions ("üç yüz
//! altmış", "iki milyon üç yüz bin", "one hundred and five"), ordinals ("on dokuzuncu",
//! "nineteenth"), fractions ("beşte iki", "yarım", "çeyrek", "two fifths", "half"), decimals
//! ("üç buçuk", "üç virgül yedi", "three point seven"), percentages ("yüzde kırk", "forty
//! percent", "yüzde 40"), signs ("eksi yedi", "minus seven") and scales after digits
//! ("2 milyon"). Digits alone are `numbers.rs`'s.

use super::lexer::Scan;
use super::lexicon::{self, Atom, Ending, NumberWord, Place, Sense, Tongue};
use super::numbers::{self, Convention, NumberMatch, Rational};

/// Longest phrase read: no number is written with more tokens.
const MAX_TOKENS: usize = 40;

/// Words that tell English text from Turkish, for the words both spell alike ("on", "bin").
const ENGLISH_WORDS: &[&str] = &[
    "the", "is", "are", "a", "an", "of", "to", "and", "you", "your", "it", "this", "that", "what",
    "how", "with", "for", "by", "from", "then", "can", "will", "be", "find", "think", "add", "try",
    "look", "if", "so", "there", "in", "at",
];
const TURKISH_WORDS: &[&str] = &[
    "ve", "bu", "su", "icin", "ile", "de", "da", "mi", "mu", "ne", "gibi", "daha", "sonra", "once",
    "her", "ama", "olarak", "olan", "kac", "nasil", "degil", "var", "yok", "cunku", "yani",
    "kadar", "simdi", "bunu", "dikkat", "et", "bul", "kere", "kez", "tane", "olur", "eder",
];

/// English nouns after which an ordinal labels the hint's own parts: "the first step".
const ENGLISH_LABELS: &[&str] = &["step", "steps", "question", "part", "line", "page", "row"];

/// Every number `scan` writes with words, each read whole ("on dört" is 14, not 10 and 4).
pub(super) fn matches(scan: &Scan) -> Vec<NumberMatch> {
    let reader = Reader {
        scan,
        english: is_english(scan),
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < scan.len() {
        match reader.phrase_at(i) {
            Some(found) => {
                i = found.last + 1;
                out.push(found);
            }
            None => i += 1,
        }
    }
    out
}

/// True when `scan` reads as English rather than Turkish.
fn is_english(scan: &Scan) -> bool {
    let (mut english, mut turkish) = (0usize, 0usize);
    for i in 0..scan.len() {
        if let Some(word) = scan.word(i) {
            english += usize::from(ENGLISH_WORDS.contains(&word));
            turkish += usize::from(TURKISH_WORDS.contains(&word));
        }
    }
    if scan.text.chars().any(|c| "çğıöşüÇĞİÖŞÜ".contains(c)) {
        turkish += 2;
    }
    english > turkish
}

/// The places a number has filled so far, to tell "on dört" (one number) from "iki üç" (two).
#[derive(Debug, Clone, Copy, Default)]
struct Composer {
    total: i128,
    group: i128,
    hundreds: bool,
    tens: bool,
    units: bool,
    scale: Option<i128>,
}

impl Composer {
    /// Adds `atom`; `false` (and no change) when it cannot continue this number.
    fn push(&mut self, atom: Atom) -> bool {
        let mut next = *self;
        let fits = next.apply(atom).is_some();
        if fits {
            *self = next;
        }
        fits
    }

    fn apply(&mut self, atom: Atom) -> Option<()> {
        let v = atom.value;
        match atom.place {
            Place::Unit if !self.units => self.group += v,
            Place::Teen if !self.tens && !self.units => {
                self.group += v;
                self.tens = true;
            }
            Place::Ten if !self.tens && !self.units => {
                self.group += v;
                self.tens = true;
                return Some(());
            }
            Place::Hundred if !self.hundreds && !self.tens => {
                self.group = if self.units { self.group * 100 } else { 100 };
                self.hundreds = true;
                self.units = false;
                return Some(());
            }
            Place::Scale if self.scale.is_none_or(|s| s > v) => {
                let times = if self.group == 0 { 1 } else { self.group };
                self.total = self.total.checked_add(times.checked_mul(v)?)?;
                *self = Self {
                    total: self.total,
                    scale: Some(v),
                    ..Self::default()
                };
                return Some(());
            }
            _ => return None,
        }
        self.units = true;
        Some(())
    }

    fn value(&self) -> Option<i128> {
        self.total.checked_add(self.group)
    }

    /// Right after "hundred" or a scale, where English puts "and": "one hundred and five".
    fn awaits_and(&self) -> bool {
        (self.hundreds || self.scale.is_some()) && !self.tens && !self.units
    }
}

/// An integer read from words.
#[derive(Debug, Clone, Copy)]
struct Integer {
    value: i128,
    first: usize,
    last: usize,
    ending: Ending,
    ordinal: bool,
    plural: bool,
    tongue: Tongue,
    /// The senses of a number written as one word of one morpheme; plain for longer ones.
    senses: &'static [Sense],
}

/// A reading before it is weighed: its values, its tokens, how it ends, and, for a number of
/// one plain word, that word.
struct Reading {
    values: Vec<Rational>,
    first: usize,
    last: usize,
    ending: Ending,
    single: Option<Integer>,
}

struct Reader<'a> {
    scan: &'a Scan,
    english: bool,
}

impl Reader<'_> {
    fn word(&self, i: usize) -> Option<NumberWord> {
        lexicon::read(self.scan.word(i)?, self.scan.raw(i))
    }

    fn is(&self, i: usize, words: &[&str]) -> bool {
        self.scan.word(i).is_some_and(|w| words.contains(&w))
    }

    /// The number starting at token `i`, with its sign.
    fn phrase_at(&self, i: usize) -> Option<NumberMatch> {
        if self.is_sign(i)
            && let Some(mut reading) = self.unsigned_at(i + 1)
        {
            reading.values = reading
                .values
                .into_iter()
                .filter_map(Rational::neg)
                .collect();
            reading.first = i;
            reading.single = None;
            return self.weigh(reading);
        }
        self.unsigned_at(i).and_then(|reading| self.weigh(reading))
    }

    /// "eksi", "minus" before a number and after no operand ("x eksi 3" subtracts);
    /// "negative" always.
    fn is_sign(&self, i: usize) -> bool {
        if self.is(i, &["negative"]) {
            return true;
        }
        if !self.is(i, &["eksi", "minus"]) {
            return false;
        }
        let Some(prev) = i.checked_sub(1) else {
            return true;
        };
        let operand = self.scan.is_number(prev)
            || self.scan.single_letter(prev).is_some()
            || self.scan.sym(prev) == Some(')')
            || self.word(prev).is_some();
        !operand
    }

    /// Decides what a reading is: dropped when a word alone that is a number only bare
    /// ("onu", "yüzden") carries an ending; weak for an article or a foreign word alone.
    fn weigh(&self, reading: Reading) -> Option<NumberMatch> {
        let mut weak = false;
        if let Some(single) = reading.single {
            let inflected = !matches!(
                single.ending,
                Ending::None | Ending::Ordinal | Ending::Copula
            );
            if single.senses.contains(&Sense::Inflects) && inflected {
                return None;
            }
            let foreign = (single.tongue == Tongue::Tr) == self.english;
            weak = single.senses.contains(&Sense::Article)
                || (single.senses.contains(&Sense::Foreign) && foreign);
        }
        let mut values: Vec<Rational> = Vec::with_capacity(reading.values.len());
        for value in reading.values {
            if !values.contains(&value) {
                values.push(value);
            }
        }
        (!values.is_empty()).then_some(NumberMatch {
            values,
            first: reading.first,
            last: reading.last,
            weak,
            governed: matches!(reading.ending, Ending::Case | Ending::Locative),
        })
    }

    fn unsigned_at(&self, i: usize) -> Option<Reading> {
        if let Some(reading) = self.fraction_word_at(i) {
            return Some(reading);
        }
        if self.scan.is_number(i) {
            return self.digits_at(i);
        }
        let integer = self.integer(i)?;
        if integer.ordinal {
            return self.ordinal(integer);
        }
        match integer.tongue {
            Tongue::Tr => Some(self.after_turkish(integer)),
            Tongue::En => Some(self.after_english(integer)),
        }
    }

    /// The integer written from token `i` on: "iki milyon üç yüz bin", "forty-two", "one
    /// hundred and five", "a thousand", "ondört". A word with an ending ends it.
    fn integer(&self, i: usize) -> Option<Integer> {
        let mut composer = Composer::default();
        let mut k = i;
        let mut found: Option<Integer> = None;
        let mut words = 0;
        // "a hundred", "a million".
        if self.is(i, &["a", "an"])
            && let Some(next) = self.word(i + 1)
            && next.tongue == Tongue::En
            && matches!(next.atoms.first()?.place, Place::Hundred | Place::Scale)
        {
            composer.push(Atom {
                place: Place::Unit,
                value: 1,
            });
            k = i + 1;
            words = 1;
        }
        while k < self.scan.len() && k - i <= MAX_TOKENS {
            let Some(word) = self.word(k) else { break };
            if found.is_some_and(|f| f.tongue != word.tongue) {
                break;
            }
            let mut next = composer;
            if !word.atoms.iter().all(|&atom| next.push(atom)) {
                break;
            }
            composer = next;
            words += 1;
            found = Some(Integer {
                value: composer.value()?,
                first: i,
                last: k,
                ending: word.ending,
                ordinal: word.ordinal,
                plural: word.plural,
                tongue: word.tongue,
                senses: if words == 1 && word.atoms.len() == 1 {
                    word.senses
                } else {
                    &[Sense::Number]
                },
            });
            if word.ending != Ending::None || word.ordinal {
                break;
            }
            k += 1;
            if word.tongue == Tongue::En {
                let hyphen =
                    self.scan.sym(k) == Some('-') && self.scan.glued(k) && self.scan.glued(k + 1);
                if hyphen || (self.is(k, &["and"]) && composer.awaits_and()) {
                    k += 1;
                }
            }
        }
        found
    }

    /// An ordinal, unless it labels the hint's own parts ("ikinci adım", "the first step").
    fn ordinal(&self, integer: Integer) -> Option<Reading> {
        let next = self.scan.word(integer.last + 1).unwrap_or_default();
        let label = numbers::ORDINAL_NOUNS.iter().any(|n| next.starts_with(n))
            || ENGLISH_LABELS.contains(&next);
        (!label && !integer.plural).then(|| plain(integer))
    }

    /// What may follow a Turkish integer: a numerator after a locative ("beşte iki", "yüzde
    /// kırk"), "buçuk", "virgül …", "tam …" (a mixed number).
    fn after_turkish(&self, n: Integer) -> Reading {
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
    fn after_english(&self, n: Integer) -> Reading {
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
    fn fraction_word_at(&self, i: usize) -> Option<Reading> {
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
    fn digits_at(&self, i: usize) -> Option<Reading> {
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

fn half() -> Rational {
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

/// An integer as it stands.
fn plain(n: Integer) -> Reading {
    Reading {
        values: vec![Rational::integer(n.value)],
        first: n.first,
        last: n.last,
        ending: n.ending,
        single: Some(n),
    }
}

/// `n` read on to token `last` as `value`.
fn with(n: Integer, value: Option<Rational>, last: usize, ending: Ending) -> Reading {
    Reading {
        values: value.into_iter().collect(),
        first: n.first,
        last,
        ending,
        single: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each number of `text` as (its text, its values).
    fn read(text: &str) -> Vec<(String, Vec<String>, bool)> {
        let scan = Scan::new(text);
        matches(&scan)
            .into_iter()
            .map(|m| {
                let values = m.values.iter().map(ToString::to_string).collect();
                (scan.slice(m.first, m.last).to_owned(), values, m.weak)
            })
            .collect()
    }

    fn values(text: &str) -> Vec<Vec<String>> {
        read(text).into_iter().map(|(_, v, _)| v).collect()
    }

    #[test]
    fn turkish_cardinals() {
        assert_eq!(values("on dört"), [["14"]]);
        assert_eq!(values("otuz beş"), [["35"]]);
        assert_eq!(values("üç yüz altmış"), [["360"]]);
        assert_eq!(values("iki milyon üç yüz bin"), [["2300000"]]);
        assert_eq!(values("bin dokuz yüz yirmi üç"), [["1923"]]);
        assert_eq!(values("yüz yirmi üç bin dört yüz elli altı"), [["123456"]]);
        assert_eq!(values("ondört ve üçyüzaltmış"), [["14"], ["360"]]);
        assert_eq!(values("iki üç gün"), [["2"], ["3"]], "two numbers");
        assert_eq!(values("on altıya eşittir"), [["16"]]);
        assert_eq!(values("2 milyon kişi"), [["2000000"]]);
        assert_eq!(values("1,5 milyon"), [["1500000"]]);
    }

    #[test]
    fn turkish_fractions_decimals_percentages_signs_ordinals() {
        assert_eq!(values("beşte ikisi"), [["2/5"]]);
        assert_eq!(values("üçte biri"), [["1/3"]]);
        assert_eq!(
            values("yarım elma, yarısı, çeyreği"),
            [["1/2"], ["1/2"], ["1/4"]]
        );
        assert_eq!(values("üç buçuk"), [["7/2"]]);
        assert_eq!(values("3 buçuk"), [["7/2"]]);
        assert_eq!(values("üç virgül yedi"), [["37/10"]]);
        assert_eq!(values("sıfır virgül sıfır beş"), [["1/20"]]);
        assert_eq!(values("iki tam üçte bir"), [["7/3"]]);
        assert_eq!(values("yüzde kırkı"), [["40", "2/5"]]);
        assert_eq!(values("yüzde 40"), [["40", "2/5"]]);
        assert_eq!(values("4'te 3'ü"), [["3/4"]]);
        assert_eq!(values("x, eksi yedi"), [["-7"]]);
        assert_eq!(values("on eksi üç"), [["10"], ["3"]], "a subtraction");
        assert_eq!(values("on dokuzuncu yüzyıl"), [["19"]]);
        assert!(values("ikinci adımda").is_empty(), "a label");
    }

    #[test]
    fn english_numbers() {
        assert_eq!(values("forty-two"), [["42"]]);
        assert_eq!(values("one hundred and five"), [["105"]]);
        assert_eq!(values("a thousand"), [["1000"]]);
        assert_eq!(values("two fifths, three quarters"), [["2/5"], ["3/4"]]);
        assert_eq!(values("two and a half"), [["5/2"]]);
        assert_eq!(values("three point one four"), [["157/50"]]);
        assert_eq!(values("it is point five"), [["1/2"]]);
        assert_eq!(values("forty percent"), [["40", "2/5"]]);
        assert_eq!(values("three over four"), [["3/4"]]);
        assert_eq!(values("x is minus seven"), [["-7"]]);
        assert_eq!(values("the nineteenth century"), [["19"]]);
        assert!(values("the first step").is_empty());
        assert_eq!(values("at this point two things"), [["2"]]);
    }

    #[test]
    fn words_that_are_numbers_only_sometimes() {
        let weak = |text: &str| {
            read(text)
                .into_iter()
                .map(|(t, _, w)| (t, w))
                .collect::<Vec<_>>()
        };
        assert_eq!(weak("bir sayı"), [("bir".to_owned(), true)]);
        assert_eq!(weak("on bir"), [("on bir".to_owned(), false)]);
        assert_eq!(weak("one of them"), [("one".to_owned(), true)]);
        assert_eq!(weak("focus on the units"), [("on".to_owned(), true)]);
        assert_eq!(weak("on elma"), [("on".to_owned(), false)]);
        for text in [
            "bu yüzden",
            "onu gör",
            "çizginin altında",
            "birim",
            "binlerce",
            "yarın",
        ] {
            assert!(values(text).is_empty(), "{text}");
        }
        assert_eq!(values("iki yüzü"), [["200"]], "inside a longer number");
    }
}
