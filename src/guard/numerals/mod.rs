//! Numbers written in words, alone or with digits: cardinals up to the trillions ("üç yüz
//! altmış", "iki milyon üç yüz bin", "one hundred and five"), ordinals ("on dokuzuncu",
//! "nineteenth"), fractions ("beşte iki", "yarım", "çeyrek", "two fifths", "half"), decimals
//! ("üç buçuk", "üç virgül yedi", "three point seven"), percentages ("yüzde kırk", "forty
//! percent", "yüzde 40"), signs ("eksi yedi", "minus seven") and scales after digits
//! ("2 milyon"). Digits alone are `numbers.rs`'s.

mod compose;
mod fractions;
#[cfg(test)]
mod tests;

use super::lexer::Scan;
use super::lexicon::{self, Atom, Ending, NumberWord, Place, Sense, Tongue};
use super::numbers::{self, NumberMatch, Rational};
use compose::Composer;

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
        let mut found = self
            .unsigned_at(i)
            .and_then(|reading| self.weigh(reading))?;
        // "her iki taraf" (both sides), "her üç sayı" (all three numbers): a group already
        // there, counted again.
        found.weak |= i > 0 && self.is(i - 1, &["her"]);
        Some(found)
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
