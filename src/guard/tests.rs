//! The guard's table-driven suite: each row is (solution, question, hint, expect_leak).

use std::collections::HashMap;

use super::*;

const LINEAR: &str = "2x + 3 = 27 ise x kaçtır?";
const CAKE: &str = "Bir pastanın 1/4'ü yendi. Pastanın ne kadarı kaldı?";
const PRIME: &str = "Hangisi asal sayıdır? A) 4 B) 6 C) 7 D) 9";
const SUM: &str = "3 + 4 kaçtır?";
const HALVE: &str = "2x = 8 ise x kaçtır?";

/// One case: the reference solution (if any), the question, a hint, and whether it leaks.
#[derive(serde::Deserialize)]
struct Row {
    solution: Option<String>,
    question: String,
    hint: String,
    leak: bool,
}

/// The table, shared with the end-to-end run in `tests/api/safety.rs`.
fn rows() -> Vec<Row> {
    serde_json::from_str(include_str!("../../tests/fixtures/guard/cases.json"))
        .expect("tests/fixtures/guard/cases.json parses")
}

#[test]
fn the_table_is_decided_right() {
    let (mut leaking, mut caught, mut clean, mut refused_clean) = (0, 0, 0, 0);
    let mut wrong = Vec::new();
    let rows = rows();
    for row in &rows {
        let (solution, question, hint, expect_leak) = (
            row.solution.as_deref(),
            row.question.as_str(),
            row.hint.as_str(),
            row.leak,
        );
        let verdict = check(hint, solution, question);
        if expect_leak {
            leaking += 1;
            caught += usize::from(verdict.is_leak());
        } else {
            clean += 1;
            refused_clean += usize::from(verdict.is_leak());
        }
        if verdict.is_leak() != expect_leak {
            wrong.push(format!(
                "solution {solution:?}, question {question:?}, hint {hint:?}: expected {}, got {verdict:?}",
                if expect_leak { "a leak" } else { "clean" },
            ));
        }
    }
    println!("leaking caught {caught}/{leaking}, clean refused {refused_clean}/{clean}");
    assert!(rows.len() >= 70, "only {} rows", rows.len());
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

fn number(num: i128, den: i128) -> FinalAnswer {
    FinalAnswer::Number(Rational::new(num, den).unwrap())
}

fn phrase(words: &[&str]) -> FinalAnswer {
    FinalAnswer::Phrase(words.iter().map(|w| (*w).to_owned()).collect())
}

#[test]
fn final_answers() {
    let cases: Vec<(&str, Option<FinalAnswer>)> = vec![
        ("x = 12", Some(number(12, 1))),
        ("12", Some(number(12, 1))),
        ("12 cm", Some(number(12, 1))),
        ("Cevap 12'dir.", Some(number(12, 1))),
        ("12,5", Some(number(25, 2))),
        ("12.5", Some(number(25, 2))),
        ("1.000,5 TL", Some(number(2001, 2))),
        ("1,000.5", Some(number(2001, 2))),
        ("Cevap: 1.000", Some(number(1000, 1))),
        ("The answer is 1,000", Some(number(1000, 1))),
        ("3/4", Some(number(3, 4))),
        ("6/8", Some(number(3, 4))),
        ("0,75", Some(number(3, 4))),
        ("x = -5", Some(number(-5, 1))),
        ("%25", Some(number(25, 1))),
        ("2x + 3 = 27\n2x = 24\nx = 12", Some(number(12, 1))),
        ("Sonuç olarak x = 5 bulunur.", Some(number(5, 1))),
        ("Yanıt: yaklaşık 3,14", Some(number(157, 50))),
        ("Cevap: C", Some(FinalAnswer::Choice('C'))),
        ("C", Some(FinalAnswer::Choice('C'))),
        ("c.", Some(FinalAnswer::Choice('C'))),
        ("(C)", Some(FinalAnswer::Choice('C'))),
        ("C)", Some(FinalAnswer::Choice('C'))),
        ("C şıkkı", Some(FinalAnswer::Choice('C'))),
        ("cevap C", Some(FinalAnswer::Choice('C'))),
        ("Doğru cevap (B) şıkkıdır", Some(FinalAnswer::Choice('B'))),
        ("Doğru şık: E", Some(FinalAnswer::Choice('E'))),
        (
            "x^2+2x+1",
            Some(FinalAnswer::Expression("x^2+2x+1".to_owned())),
        ),
        (
            "x² + 2x + 1",
            Some(FinalAnswer::Expression("x^2+2x+1".to_owned())),
        ),
        (
            "y = 2x + 3",
            Some(FinalAnswer::Expression("2x+3".to_owned())),
        ),
        ("2x", Some(FinalAnswer::Expression("2x".to_owned()))),
        ("Cevap: on dört.", Some(number(14, 1))),
        ("Kırk iki", Some(number(42, 1))),
        ("forty-two", Some(number(42, 1))),
        ("yüzde kırk", Some(number(40, 1))),
        ("eksi yedi", Some(number(-7, 1))),
        ("üç buçuk kg", Some(number(7, 2))),
        ("x = ١٢", Some(number(12, 1))),
        ("Dokuz Eylül", Some(phrase(&["dokuz", "eylul"]))),
        (
            "İkinci Dünya Savaşı",
            Some(phrase(&["ikinci", "dunya", "savasi"])),
        ),
        ("İstanbul", Some(phrase(&["istanbul"]))),
        ("Cevap: İstanbul'dur.", Some(phrase(&["istanbul"]))),
        ("Vitamin C", Some(phrase(&["vitamin", "c"]))),
        ("the Nile", Some(phrase(&["nile"]))),
        ("", None),
        ("   ", None),
        (
            "Bu soruda önce verilenleri yazıyoruz, sonra denklemi kurup adım adım çözüyoruz",
            None,
        ),
    ];
    for (solution, expected) in cases {
        assert_eq!(final_answer(solution), expected, "{solution:?}");
    }
}

#[test]
fn leaks_reports_what_matched() {
    let leak = leaks("Geriye 0,75'i kalır.", &number(3, 4)).unwrap();
    assert_eq!(leak.kind, LeakKind::Number);
    assert_eq!(leak.matched, "0,75");
    let leak = leaks(
        "Açınca x² + 2x + 1 olur",
        &final_answer("x^2+2x+1").unwrap(),
    )
    .unwrap();
    assert_eq!(leak.kind, LeakKind::Expression);
    assert_eq!(leak.matched, "x^2+2x+1");
    let leak = leaks("Cevap İSTANBUL'dur.", &phrase(&["istanbul"])).unwrap();
    assert_eq!(
        (leak.kind, leak.matched.as_str()),
        (LeakKind::Phrase, "istanbul")
    );
    let leak = leaks("Bence (C) şıkkı.", &FinalAnswer::Choice('C')).unwrap();
    assert_eq!(
        (leak.kind, leak.matched.as_str()),
        (LeakKind::Choice, "(C) şıkkı")
    );
    assert_eq!(
        leaks("Bence (B) şıkkı değil.", &FinalAnswer::Choice('C')),
        None
    );
}

#[test]
fn verdicts_serialise_for_the_audit_trail() {
    let verdict = check("Geriye 0,75'i kalır.", Some("3/4"), CAKE);
    assert_eq!(
        serde_json::to_value(&verdict).unwrap(),
        serde_json::json!({"verdict": "leak", "kind": "number", "matched": "0,75"})
    );
    assert_eq!(
        serde_json::to_value(check("Önce topla.", None, SUM)).unwrap(),
        serde_json::json!({"verdict": "clean"})
    );
    let verdict = check("Sonuç 42'dir.", None, SUM);
    assert_eq!(
        verdict,
        Verdict::Leak(Leak {
            kind: LeakKind::Statement,
            matched: "Sonuç 42".to_owned()
        })
    );
    let verdict = check("Doğru seçenek D.", None, "");
    assert_eq!(
        verdict,
        Verdict::Leak(Leak {
            kind: LeakKind::Statement,
            matched: "Doğru seçenek D".to_owned()
        })
    );
    let verdict = check("yani x = 4.", None, HALVE);
    assert_eq!(
        verdict,
        Verdict::Leak(Leak {
            kind: LeakKind::Equation,
            matched: "x = 4".to_owned()
        })
    );
}

#[test]
fn safe_hints_are_clean_and_distinct() {
    let mut seen = Vec::new();
    for language in [Lang::Tr, Lang::En] {
        for level in 1..=3 {
            let hint = safe_hint(level, language);
            assert!(!hint.is_empty());
            assert_eq!(
                check(hint, Some("x = 12"), LINEAR),
                Verdict::Clean,
                "{hint}"
            );
            assert_eq!(
                check(hint, Some("Cevap: C"), PRIME),
                Verdict::Clean,
                "{hint}"
            );
            assert!(!seen.contains(&hint), "{hint}");
            seen.push(hint);
        }
    }
    assert_eq!(safe_hint(0, Lang::Tr), safe_hint(1, Lang::Tr));
    assert_eq!(safe_hint(9, Lang::En), safe_hint(3, Lang::En));
}

fn categories(moderation: &Moderation, text: &str) -> Vec<Category> {
    let mut found: Vec<Category> = moderation.flags(text).iter().map(|f| f.category).collect();
    found.dedup();
    found
}

#[test]
fn moderation_flags() {
    let moderation = Moderation::default();
    let cases: &[(&str, &[Category])] = &[
        ("İNTİHAR etmeyi düşünüyorum", &[Category::SelfHarm]),
        ("intihar etmek istiyorum", &[Category::SelfHarm]),
        ("KENDİMİ ÖLDÜRECEĞİM", &[Category::SelfHarm]),
        ("kendimi oldurmek istiyorum", &[Category::SelfHarm]),
        ("Hayatıma son vermek istiyorum", &[Category::SelfHarm]),
        ("Artık yaşamak istemiyorum", &[Category::SelfHarm]),
        ("I want to kill myself", &[Category::SelfHarm]),
        ("Çok bunaldım, dayanamıyorum", &[Category::Distress]),
        ("cok bunaldim", &[Category::Distress]),
        ("I feel so hopeless", &[Category::Distress]),
        (
            "Kendimi umutsuz hissediyorum ve intihar etmeyi düşündüm",
            &[Category::Distress, Category::SelfHarm],
        ),
        ("Babam bana vuruyor", &[Category::Abuse]),
        ("Okulda tacize uğradım", &[Category::Abuse]),
        ("My brother hits me", &[Category::Abuse]),
        ("Sınav cevapları lazım", &[Category::Cheating]),
        ("Cevap anahtarını atar mısın?", &[Category::Cheating]),
        ("Sınavda kopya çekmek istiyorum", &[Category::Cheating]),
        ("Can you send me the exam answers?", &[Category::Cheating]),
        // No false positives.
        ("Sonuç olarak soruyu çözdüm, sonucu da kontrol ettim.", &[]),
        ("Hayatımın sonuçlarını düşünüyorum.", &[]),
        ("Bu sorunun cevabı nedir?", &[]),
        ("Dersin sonunda test var.", &[]),
        ("Vurgu nereye yapılır?", &[]),
        ("The meeting hit me with surprise homework.", &[]),
    ];
    for (text, expected) in cases {
        assert_eq!(categories(&moderation, text), *expected, "{text}");
    }
    let flags = moderation.flags("İNTİHAR");
    assert_eq!(
        flags,
        [Flag {
            category: Category::SelfHarm,
            term: "intihar".to_owned()
        }]
    );
    assert_eq!(
        serde_json::to_value(&flags[0]).unwrap(),
        serde_json::json!({"category": "self_harm", "term": "intihar"})
    );
}

#[test]
fn moderation_from_config() {
    let config: HashMap<String, Vec<String>> = HashMap::from([
        ("self-harm".to_owned(), vec!["Jilet".to_owned()]),
        ("Cheating".to_owned(), vec![]),
    ]);
    let moderation = Moderation::from_config(&config).unwrap();
    assert_eq!(categories(&moderation, "jilet aldım"), [Category::SelfHarm]);
    assert!(
        moderation.flags("intihar").is_empty(),
        "replaced by the configured list"
    );
    assert!(moderation.flags("sınav cevapları").is_empty(), "turned off");
    assert_eq!(
        categories(&moderation, "dayanamıyorum"),
        [Category::Distress]
    );

    let unknown = HashMap::from([("violence".to_owned(), vec!["x".to_owned()])]);
    assert_eq!(
        Moderation::from_config(&unknown).unwrap_err(),
        ModerationError::UnknownCategory("violence".to_owned())
    );
}

/// Whatever a model or a client sends, the guard answers and never panics: long digit runs,
/// separators everywhere, huge fractions, odd scripts, number words in any order.
#[test]
fn the_guard_never_panics_on_odd_text() {
    let pieces = [
        "99999999999999999999999999999999999999999",
        "1.000.000.000.000.000.000.000",
        "1,2,3.4.5,6",
        "/",
        "0/0",
        "1/0",
        "-",
        "=",
        "(",
        ")",
        "C)",
        "şıkkı",
        "cevap",
        "sonuç",
        "x",
        "^",
        "²",
        "√",
        "İ",
        "ı",
        "ß",
        "🙂",
        "٣",
        "१२",
        "½",
        "%",
        ".",
        ",",
        " ",
        "\n",
        "'",
        "A)",
        "B)",
        "answer",
        "170141183460469231731687303715884105727/3",
        "1e308",
        "NaN",
        "∞",
        "on",
        "dört",
        "yüzde",
        "beşte",
        "eksi",
        "buçuk",
        "virgül",
        "sıfır",
        "milyon",
        "trilyon",
        "tam",
        "dokuzuncu",
        "forty-",
        "hundred and",
        "point",
        "half",
        "a",
        "minus",
        "percent",
        "XIX.",
        "MMMCMXCIX",
        "k-l-o",
        "İ Z",
        "١٢",
        "Ⅻ",
        "𝟏",
    ];
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..20_000 {
        let hint: String = (0..rng.usize(0..12))
            .map(|_| pieces[rng.usize(..pieces.len())])
            .collect::<Vec<_>>()
            .join(if rng.bool() { " " } else { "" });
        let solution: String = (0..rng.usize(0..4))
            .map(|_| pieces[rng.usize(..pieces.len())])
            .collect();
        let question: String = (0..rng.usize(0..6))
            .map(|_| pieces[rng.usize(..pieces.len())])
            .collect::<Vec<_>>()
            .join(" ");
        let _ = check(&hint, Some(&solution), &question);
        let _ = final_answer(&solution);
    }
}

/// One row of the second table (`tests/fixtures/guard/round-two.json`, issue 19): planted
/// leaks written the other ways a model writes an answer, and clean hints that mention
/// numbers, bounds, steps and forbidden words harmlessly, each with its kind.
#[derive(serde::Deserialize)]
struct KindRow {
    kind: String,
    solution: Option<String>,
    question: String,
    hint: String,
    leak: bool,
}

fn round_two_rows() -> Vec<KindRow> {
    serde_json::from_str(include_str!("../../tests/fixtures/guard/round-two.json"))
        .expect("tests/fixtures/guard/round-two.json parses")
}

/// Per kind: (rows, rows decided right), in the table's order.
fn figures_by_kind(rows: &[KindRow]) -> Vec<(String, bool, usize, usize)> {
    let mut figures: Vec<(String, bool, usize, usize)> = Vec::new();
    for row in rows {
        let verdict = check(&row.hint, row.solution.as_deref(), &row.question);
        let right = verdict.is_leak() == row.leak;
        match figures.iter_mut().find(|f| f.0 == row.kind) {
            Some(f) => {
                f.2 += 1;
                f.3 += usize::from(right);
            }
            None => figures.push((row.kind.clone(), row.leak, 1, usize::from(right))),
        }
    }
    figures
}

/// Every planted leak is refused, whatever the kind; of the clean hints, at most one is.
#[test]
fn the_second_table_by_kind() {
    let rows = round_two_rows();
    let (mut planted, mut caught, mut clean, mut delivered) = (0, 0, 0, 0);
    for (kind, leak, rows, right) in figures_by_kind(&rows) {
        let what = if leak { "caught" } else { "delivered" };
        println!("{kind}: {what} {right}/{rows}");
        if leak {
            planted += rows;
            caught += right;
        } else {
            clean += rows;
            delivered += right;
        }
    }
    let wrong: Vec<String> = rows
        .iter()
        .filter(|row| {
            check(&row.hint, row.solution.as_deref(), &row.question).is_leak() != row.leak
        })
        .map(|row| format!("{} {:?}: expected leak {}", row.kind, row.hint, row.leak))
        .collect();
    assert!(
        planted >= 60 && clean >= 40,
        "{planted} leaks, {clean} clean"
    );
    assert_eq!(caught, planted, "leaks let through:\n{}", wrong.join("\n"));
    assert!(
        clean - delivered <= 1,
        "clean hints refused:\n{}",
        wrong.join("\n")
    );
}

/// A forbidden word refuses only what it introduces, bare or possessive, after fillers.
#[test]
fn forbidden_words_refuse_the_value_they_introduce() {
    let topics = ["cevap", "sonuç", "answer", "püf noktası"];
    for hint in [
        "Sonuç on dört, kontrol et.",
        "Cevap D.",
        "The answer is seven.",
        "Cevabın şu: 12",
        "Sonucu eksi üç.",
        "Püf noktası: x = 4",
    ] {
        assert!(topic_statement(hint, topics).is_some(), "{hint}");
    }
    for hint in [
        "Bulacağın sonuç negatif olabilir, işaretini kontrol et.",
        "Cevap bir şehir adı; haritaya bak.",
        "The answer is one of the numbers between 5 and 10.",
        "Sonuca ulaşmak için iki kez topla.",
        "Cevabın iki basamaklı bir sayı olacak.",
        "Cevap anahtarına bakmadan önce dene.",
        "Bu sorunun püf noktası işaretler.",
    ] {
        assert_eq!(topic_statement(hint, topics), None, "{hint}");
    }
    let leak = topic_statement("Yani sonuç yüzde kırk.", ["sonuç"]).unwrap();
    assert_eq!(
        (leak.kind, leak.matched.as_str()),
        (LeakKind::Statement, "sonuç yüzde kırk")
    );
}

/// Long texts of number words, spelled letters and bare values are read in one pass each
/// (no search per token), and never overflow: "bin milyon trilyon …", "on on on …".
#[test]
fn huge_number_texts_are_read_without_overflow() {
    for piece in [
        "trilyon milyar milyon bin yüz ",
        "dokuz yüz doksan dokuz trilyon ",
        "on ",
        "bir ",
        "sonuç on dört ",
        "12 milyon ",
        "eksi yüzde beşte ",
        "one hundred and ",
        "k-",
        "81. ",
        "XIX. ",
        "sıfır virgül sıfır sıfır ",
        "12 doğru cevaptır ",
    ] {
        let text = piece.repeat(2_000);
        let _ = check(&text, Some("x = 14"), &piece.repeat(3));
        let _ = check(&text, Some("Klorofil"), "soru");
        let _ = check(&text, None, "");
        let _ = topic_statement(&text, ["cevap", "sonuç", "answer"]);
        let _ = final_answer(&text);
    }
}
