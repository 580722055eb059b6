//! The prompt's forbidden topics ("cevap", "sonuç", "answer") on a generated hint. They guard
//! the input, where a student asks for the answer outright; on the output a forbidden word
//! states nothing by itself ("bulacağın sonuç negatif olabilir"), only a value or a choice
//! it introduces does ("sonuç 14", "cevap D", "the answer is seven").

use super::lexer::Scan;
use super::numbers::{Convention, Found};
use super::{Leak, LeakKind, markers, phrase, statement};

/// Where `hint` uses one of `topics` to introduce a value or a choice: the topic (its last
/// word bare or possessive: "sonucu", "cevabın"), filler words ("is", "şu", ":"), then a
/// number in any spelling, a choice letter or an equation.
pub(super) fn introduces_value<'t>(
    hint: &Scan,
    topics: impl IntoIterator<Item = &'t str>,
) -> Option<Leak> {
    let mut found = None;
    for topic in topics {
        let words = crate::prompts::words(topic, true);
        let Some((last, init)) = words.split_last() else {
            continue;
        };
        let found = found.get_or_insert_with(|| Found::new(hint, Convention::Turkish));
        let leak = (0..hint.len()).find_map(|i| {
            let end = i + init.len();
            let names_topic = init
                .iter()
                .enumerate()
                .all(|(k, w)| hint.word(i + k) == Some(w.as_str()))
                && hint
                    .word(end)
                    .is_some_and(|w| phrase::possessive_of(w, last));
            if !names_topic {
                return None;
            }
            let value_last =
                statement::value_at(hint, found, markers::skip_fillers(hint, end + 1))?;
            Some(Leak::new(LeakKind::Statement, hint.slice(i, value_last)))
        });
        if leak.is_some() {
            return leak;
        }
    }
    None
}
