//! Moderation flags for student messages: distress, self-harm, abuse and cheating, from
//! term lists matched as whole-word phrases, folded (Turkish casing, accents ignored).
//!
//! The last word of a term also matches its longer forms when it is long enough to be
//! specific (five letters, or three in a multi-word term): "intihar" matches "intiharı",
//! "kendimi öldür" matches "kendimi öldüreceğim", "kopya çek" matches "kopya çekmek"; a short
//! word such as "son" never matches "sonuç".

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::phrase;
use crate::prompts::words;

/// What a flag is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Distress,
    SelfHarm,
    Abuse,
    Cheating,
}

impl Category {
    /// Every category, in reporting order.
    pub const ALL: [Category; 4] = [
        Category::Distress,
        Category::SelfHarm,
        Category::Abuse,
        Category::Cheating,
    ];

    /// The configuration name: `distress`, `self_harm`, `abuse`, `cheating`.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Distress => "distress",
            Category::SelfHarm => "self_harm",
            Category::Abuse => "abuse",
            Category::Cheating => "cheating",
        }
    }

    fn defaults(self) -> &'static [&'static str] {
        match self {
            Category::Distress => DISTRESS,
            Category::SelfHarm => SELF_HARM,
            Category::Abuse => ABUSE,
            Category::Cheating => CHEATING,
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Category {
    type Err = ModerationError;

    /// Accepts the configuration names in any case, with `-` or a space for `_`.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let key = name.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == key)
            .ok_or_else(|| ModerationError::UnknownCategory(name.to_owned()))
    }
}

/// A moderation configuration error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModerationError {
    #[error("unknown moderation category `{0}`; expected distress, self_harm, abuse or cheating")]
    UnknownCategory(String),
}

/// One matched term.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flag {
    pub category: Category,
    /// The term as configured, e.g. "kendimi öldür".
    pub term: String,
}

const DISTRESS: &[&str] = &[
    "çok bunaldım",
    "bunaldım",
    "dayanamıyorum",
    "umutsuz",
    "çaresiz",
    "tükendim",
    "kimse beni anlamıyor",
    "değersiz hissediyorum",
    "hopeless",
    "helpless",
    "overwhelmed",
    "can't take it anymore",
    "i can't cope",
    "i feel worthless",
];

const SELF_HARM: &[&str] = &[
    "intihar",
    "kendimi öldür",
    "canıma kıy",
    "hayatıma son",
    "yaşamak istemiyorum",
    "ölmek istiyorum",
    "kendime zarar",
    "kill myself",
    "suicide",
    "suicidal",
    "end my life",
    "want to die",
    "self harm",
    "hurt myself",
];

const ABUSE: &[&str] = &[
    "bana vuruyor",
    "beni dövüyor",
    "bana şiddet",
    "taciz",
    "istismar",
    "hits me",
    "beats me",
    "abuses me",
    "molested",
    "harassed",
];

const CHEATING: &[&str] = &[
    "sınavda kopya",
    "kopya çek",
    "sınav cevapları",
    "sınav soruları",
    "cevap anahtarı",
    "ödevimi sen yap",
    "exam answers",
    "answer key",
    "cheat on the exam",
    "cheat in the exam",
    "leaked exam",
    "do my homework",
];

/// A term, pre-folded into words.
#[derive(Debug, Clone)]
struct Term {
    category: Category,
    original: String,
    words: Vec<String>,
}

/// Term lists per category, matched against text with [`Moderation::flags`].
#[derive(Debug, Clone)]
pub struct Moderation {
    terms: Vec<Term>,
}

impl Default for Moderation {
    /// The built-in Turkish and English lists.
    fn default() -> Self {
        Self::new(
            Category::ALL
                .into_iter()
                .flat_map(|c| c.defaults().iter().map(move |t| (c, *t))),
        )
    }
}

impl Moderation {
    /// Builds a filter from (category, term) pairs; terms without words are skipped.
    pub fn new<I, S>(terms: I) -> Self
    where
        I: IntoIterator<Item = (Category, S)>,
        S: AsRef<str>,
    {
        let terms = terms
            .into_iter()
            .map(|(category, term)| Term {
                category,
                original: term.as_ref().trim().to_owned(),
                words: words(term.as_ref(), true),
            })
            .filter(|term| !term.words.is_empty())
            .collect();
        Self { terms }
    }

    /// Builds a filter from configuration: category name → terms. A category in `config`
    /// replaces its built-in list (an empty list turns it off); a category missing from
    /// `config` keeps the built-in list. Unknown category names are an error.
    pub fn from_config(config: &HashMap<String, Vec<String>>) -> Result<Self, ModerationError> {
        let mut configured: HashMap<Category, &[String]> = HashMap::new();
        for (name, terms) in config {
            configured.insert(name.parse()?, terms);
        }
        let mut pairs: Vec<(Category, String)> = Vec::new();
        for category in Category::ALL {
            match configured.get(&category) {
                Some(terms) => pairs.extend(terms.iter().map(|t| (category, t.clone()))),
                None => pairs.extend(
                    category
                        .defaults()
                        .iter()
                        .map(|t| (category, (*t).to_owned())),
                ),
            }
        }
        Ok(Self::new(pairs))
    }

    /// Every term that occurs in `text`, once each, in category order.
    pub fn flags(&self, text: &str) -> Vec<Flag> {
        let text_words = words(text, true);
        let mut flags: Vec<Flag> = Vec::new();
        for term in &self.terms {
            let multi_word = term.words.len() > 1;
            let found = phrase::find(&text_words, &term.words, |word, last| {
                let min_len = if multi_word { 3 } else { 5 };
                word == last || (last.chars().count() >= min_len && word.starts_with(last))
            });
            if found.is_none()
                || flags
                    .iter()
                    .any(|f| f.category == term.category && f.term == term.original)
            {
                continue;
            }
            flags.push(Flag {
                category: term.category,
                term: term.original.clone(),
            });
        }
        flags.sort_by_key(|flag| flag.category);
        flags
    }
}
