//! Words spelled out letter by letter: "k-l-o-r-o-f-i-l", "İ Z M İ R", "k.l.o.r.o.f.i.l",
//! "A_N_K_A_R_A". Such a run, read as one word, is the word.

use super::lexer::Scan;

/// What may stand between two spelled letters, besides one space.
const SEPARATORS: &str = "-._*/|+~";

/// Fewer letters than this in a row are initials or variables ("x y").
const MIN_LETTERS: usize = 3;

/// The text of `scan` with each spelled-out word joined ("k-l-o-r" → "klor"), or `None`
/// when it spells nothing out.
pub(super) fn joined(scan: &Scan) -> Option<String> {
    let mut out = String::with_capacity(scan.text.len());
    let mut copied = 0;
    let mut changed = false;
    let mut i = 0;
    while i < scan.len() {
        let run = run_at(scan, i);
        if run.len() < MIN_LETTERS {
            i += 1;
            continue;
        }
        out.push_str(&scan.text[copied..scan.tokens[i].start]);
        out.extend(run.iter().map(|&k| scan.raw(k)));
        let last = *run.last().unwrap_or(&i);
        copied = scan.tokens[last].end;
        changed = true;
        i = last + 1;
    }
    out.push_str(&scan.text[copied..]);
    changed.then_some(out)
}

/// The tokens of the single letters spelled from `i` on, one separator throughout: each
/// next letter after one space, or after the same glued separator.
fn run_at(scan: &Scan, i: usize) -> Vec<usize> {
    let mut run = Vec::new();
    if scan.single_letter(i).is_none() || (scan.glued(i) && scan.word(i - 1).is_some()) {
        return run;
    }
    run.push(i);
    let mut separator: Option<Option<char>> = None;
    let mut k = i;
    loop {
        let by_space = scan.single_letter(k + 1).is_some()
            && &scan.text[scan.tokens[k].end..scan.tokens[k + 1].start] == " ";
        let by_symbol = scan
            .sym(k + 1)
            .filter(|c| SEPARATORS.contains(*c))
            .filter(|_| {
                scan.glued(k + 1) && scan.glued(k + 2) && scan.single_letter(k + 2).is_some()
            });
        let (this, next) = if by_space {
            (None, k + 1)
        } else if let Some(symbol) = by_symbol {
            (Some(symbol), k + 2)
        } else {
            break;
        };
        if separator.is_some_and(|s| s != this) {
            break;
        }
        separator = Some(this);
        run.push(next);
        k = next;
    }
    // "k-l-o-r-o-f-i-l'dir" ends the word; "a-b-cd" spells nothing.
    let glued_after = scan.glued(k + 1) && scan.word(k + 1).is_some();
    if glued_after { Vec::new() } else { run }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(text: &str) -> Option<String> {
        joined(&Scan::new(text))
    }

    #[test]
    fn spelled_words_are_joined() {
        assert_eq!(
            join("Adı k-l-o-r-o-f-i-l diye").as_deref(),
            Some("Adı klorofil diye")
        );
        assert_eq!(join("Şehir İ Z M İ R.").as_deref(), Some("Şehir İZMİR."));
        assert_eq!(
            join("k.l.o.r.o.f.i.l maddesi").as_deref(),
            Some("klorofil maddesi")
        );
        assert_eq!(join("A_N_K_A_R_A'dır").as_deref(), Some("ANKARA'dır"));
        assert_eq!(join("N-i-l-e."), Some("Nile.".to_owned()));
    }

    #[test]
    fn initials_variables_and_words_are_not() {
        for text in [
            "x y ile",
            "A ile B",
            "x-y düzlemi",
            "a-b-cd",
            "O bir kitap",
            "3 x 4",
        ] {
            assert_eq!(join(text), None, "{text}");
        }
    }
}
