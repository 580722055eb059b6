//! The guard's table-driven suite: each row is (solution, question, hint, expect_leak).

use std::collections::HashMap;

use super::*;

type Row = (Option<&'static str>, &'static str, &'static str, bool);

const LINEAR: &str = "2x + 3 = 27 ise x kaçtır?";
const HALF: &str = "25'in yarısı kaçtır?";
const SHARE: &str = "Ali 2.001 TL'yi kardeşiyle eşit paylaşırsa kişi başı kaç TL düşer?";
const DOUBLE: &str = "500'ün 2 katı kaçtır?";
const CAKE: &str = "Bir pastanın 1/4'ü yendi. Pastanın ne kadarı kaldı?";
const SQUARE: &str = "(x+1)^2 ifadesini aç.";
const LINE: &str = "Eğimi 2 ve y-kesişimi 3 olan doğrunun denklemi nedir?";
const PRIME: &str = "Hangisi asal sayıdır? A) 4 B) 6 C) 7 D) 9";
const CAPITAL: &str = "Türkiye'nin başkenti neresidir? A) İstanbul B) Ankara C) İzmir";
const CITY: &str = "Türkiye'nin en kalabalık şehri hangisidir?";
const PLANT: &str = "Bitkiler besinlerini hangi olayla üretir?";
const RIVER: &str = "Which is the longest river in Africa?";
const SUM: &str = "3 + 4 kaçtır?";
const HALVE: &str = "2x = 8 ise x kaçtır?";
const MINUS: &str = "x + 3 = 0 ise x kaçtır?";
const DISCOUNT: &str = "Bir ürünün fiyatı 100 TL'den 80 TL'ye indi. İndirim yüzde kaçtır?";
const SPLIT: &str = "What is 5 divided by 2?";
const TOTAL: &str = "A school has 1,000 girls and 250 boys. How many students are there?";
const PRODUCT: &str = "6 ile 2'nin çarpımı kaçtır?";
const EVEN_PRIME: &str = "Hangi sayı hem çift hem asaldır?";
const SQUARE_ROOT: &str = "Karesi 4 olan pozitif sayı hangisidir?";
const TIMES: &str = "4 ile 3'ün çarpımı kaçtır?";
const FIVE: &str = "5 + x = 10 ise x kaçtır?";
const BOOK: &str = "Okuduğun şeyin adı nedir?";

#[rustfmt::skip]
const ROWS: &[Row] = &[
    // Integers.
    (Some("x = 12"), LINEAR, "Her iki taraftan 3 çıkar, sonra 2'ye böl; x'in 12 olduğunu göreceksin.", true),
    (Some("x = 12"), LINEAR, "Önce her iki taraftan 3 çıkar, sonra 2'ye böl.", false),
    (Some("x = 12"), LINEAR, "Cevabı bulmak için önce 27'den 3'ü çıkar.", false),
    (Some("x = 12"), LINEAR, "2x = 24 olduğunu bul, sonra iki tarafı 2'ye böl.", false),
    (Some("x = 12"), LINEAR, "x'i yalnız bırakınca x=12 çıkıyor, kontrol et.", true),
    (Some("x = 12"), LINEAR, "Bulacağın sayı 120 değil, çok daha küçük.", false),
    (Some("x = 12"), LINEAR, "1,2 gibi ondalıklı bir sayı çıkmayacak.", false),
    (Some("5"), FIVE, "5'i eşitliğin diğer tarafına geçir.", false),
    (Some("5"), FIVE, "Yani x = 5.", true),
    (Some("7"), SUM, "3'e 4 daha eklersen kaç olur?", false),
    (Some("7"), SUM, "Parmaklarınla say: 3, sonra 4 daha; toplam 7 parmak.", true),
    (Some("12"), PRODUCT, "6'yı 2 kere topla: 6 + 6 = 12.", true),
    (Some("12"), PRODUCT, "6'yı iki kez toplamayı dene.", false),
    (Some("12"), TIMES, "B12 vitamininden değil, çarpmadan söz ediyoruz: 4'ü 3 kez topla.", false),
    (Some("2"), EVEN_PRIME, "1. adım: çift sayıları listele.\n2. adım: asal olanları seç.", false),
    (Some("2"), EVEN_PRIME, "En küçük asal sayı 2'dir, çift mi diye bak.", true),
    (Some("2"), SQUARE_ROOT, "Bir sayının karesi x^2 diye yazılır; hangi sayının karesi 4 eder?", false),
    (Some("x = -3"), MINUS, "Bu durumda x = -3 olur.", true),
    (Some("x = -3"), MINUS, "3'ü eşitliğin diğer tarafına geçirirken işaretine dikkat et.", false),
    (Some("x = -3"), MINUS, "Sağ tarafta −3 kalır.", true),
    // Decimals with a comma or a point.
    (Some("12,5"), HALF, "Yarısı 12.5 eder.", true),
    (Some("12,5"), HALF, "25'i 2'ye bölmeyi dene.", false),
    (Some("12,5"), HALF, "Bulacağın değer 12 ile 13 arasında.", false),
    (Some("Cevap: 2,5 kg"), "5 kg unun yarısı kaç kg eder?", "5'i 2'ye böldüğünde 2,5 kalır.", true),
    (Some("2.5"), SPLIT, "It comes out to 2,5.", true),
    (Some("2.5"), SPLIT, "Split 5 into 2 equal parts.", false),
    (Some("2.5"), SPLIT, "It is 5/2 as a fraction.", true),
    // Thousands separators.
    (Some("1.000,5 TL"), SHARE, "Kişi başı 1000,5 TL düşer.", true),
    (Some("1.000,5 TL"), SHARE, "Each gets 1,000.5 TL.", true),
    (Some("1.000,5 TL"), SHARE, "Önce 2.001'i 2'ye bölmeyi dene.", false),
    (Some("1.000,5 TL"), SHARE, "Küsuratlı bir sonuç çıkabilir, 0,5'lik kısmı unutma.", false),
    (Some("Cevap 1.000"), DOUBLE, "İki katı demek 1 000 demektir.", true),
    (Some("Cevap 1.000"), DOUBLE, "Toplam 1,000 olur.", true),
    (Some("Cevap 1.000"), DOUBLE, "500'ü 2 ile çarp.", false),
    (Some("Cevap 1.000"), DOUBLE, "Sonuca ulaşmak için 500'ü kendisiyle topla.", false),
    (Some("The answer is 1,250"), TOTAL, "You get 1250 in total.", true),
    (Some("The answer is 1,250"), TOTAL, "Add 1,000 and 250 carefully.", false),
    (Some("The answer is 1,250"), TOTAL, "Count the girls and the boys and add them up.", false),
    // Fractions and equivalent decimals.
    (Some("3/4"), CAKE, "Geriye pastanın 0,75'i kalır.", true),
    (Some("3/4"), CAKE, "Bu 6/8'e eşittir.", true),
    (Some("3/4"), CAKE, "Pastanın %75'i kalır.", true),
    (Some("3/4"), CAKE, "Bütünü 4/4 olarak düşün ve yenen 1/4'ü çıkar.", false),
    (Some("3/4"), CAKE, "0,7 ile 0,8 arasında bir değer arıyorsun.", false),
    (Some("0,75"), CAKE, "Kalan kısım 3/4 olur.", true),
    (Some("0,75"), CAKE, "Kalan kısmı bulmak için bütünden yenen kısmı çıkar.", false),
    // Percentages.
    (Some("%20"), DISCOUNT, "İndirim %20 oranındadır.", true),
    (Some("%20"), DISCOUNT, "100'den 80'i çıkar ve farkı 100'e böl.", false),
    // Algebraic expressions.
    (Some("x^2+2x+1"), SQUARE, "Açınca x² + 2x + 1 elde edersin.", true),
    (Some("x^2+2x+1"), SQUARE, "(x+1)(x+1) çarpımını terim terim dağıt.", false),
    (Some("x^2+2x+1"), SQUARE, "x^2 + 2x + 10 gibi bir şey bulursan bir yerde hata var.", false),
    (Some("x^2+2x+1"), SQUARE, "Sonuç olarak x**2 + 2*x + 1 bulunur", true),
    (Some("y = 2x + 3"), LINE, "Doğrunun denklemi y = 2*x + 3 olur.", true),
    (Some("y = 2x + 3"), LINE, "y = mx + n kalıbını kullan; m eğim, n kesişim.", false),
    (Some("y = 2x + 3"), LINE, "Eğimi x'in katsayısı olarak yaz.", false),
    // Choice letters.
    (Some("Cevap: C"), PRIME, "Bence C şıkkına odaklan.", true),
    (Some("Cevap: C"), PRIME, "(C) olabilir mi, bir bak.", true),
    (Some("Cevap: C"), PRIME, "C) seçeneğini dene.", true),
    (Some("Cevap: C"), PRIME, "Cevap C.", true),
    (Some("Cevap: C"), PRIME, "The answer is C.", true),
    (Some("Cevap: C"), PRIME, "Look at option C.", true),
    (Some("Cevap: C"), PRIME, "Asal sayı yalnızca 1'e ve kendisine bölünür; seçenekleri tek tek dene.", false),
    (Some("Cevap: C"), PRIME, "C vitamini gibi düşünme; burada harfler değil sayılar önemli.", false),
    (Some("Cevap: C"), PRIME, "A) 4 ve B) 6 çift sayılardır, onları ele.", false),
    (Some("Cevap: C"), PRIME, "7'nin bölenlerini düşün.", true),
    (Some("7"), PRIME, "Bence 7 asal sayıdır.", true),
    (Some("7"), PRIME, "4, 6 ve 9 için bölenleri tek tek yaz.", false),
    (Some("Doğru cevap (B) şıkkıdır"), CAPITAL, "Başkent Ankara'dır.", true),
    (Some("Doğru cevap (B) şıkkıdır"), CAPITAL, "İstanbul en kalabalık şehir, ama başkent mi?", false),
    (Some("Doğru cevap (B) şıkkıdır"), CAPITAL, "A ile C'yi elemeye çalış.", false),
    (Some("B"), "", "B şıkkı doğru.", true),
    (Some("B"), "", "A noktasından B noktasına giden yolu düşün.", false),
    (Some("D"), "", "D seçeneği doğrudur.", true),
    (Some("cevap d"), "", "d şıkkını işaretle.", true),
    (Some("C şıkkı"), "", "Cx + D ifadesinde C bir sabittir.", false),
    // Phrases.
    (Some("İstanbul"), CITY, "Cevap İSTANBUL'dur.", true),
    (Some("İstanbul"), CITY, "Boğaz'ın iki yakasına kurulmuş şehri düşün.", false),
    (Some("İstanbul"), CITY, "istanbulun nüfusunu hatırla.", true),
    (Some("İstanbul"), CITY, "Istanbul sounds right.", true),
    (Some("Fotosentez"), PLANT, "Bu olay fotosentezdir.", true),
    (Some("Fotosentez"), PLANT, "Güneş ışığının bitkide ne işe yaradığını düşün.", false),
    (Some("the Nile"), RIVER, "It is the Nile.", true),
    (Some("the Nile"), RIVER, "Think about the river that flows through Egypt.", false),
    (Some("Kitap"), BOOK, "Elindeki kitabı düşün.", true),
    (Some("Kitap"), BOOK, "Sayfaları olan, okuduğun şeyi düşün.", false),
    // Final-result statements, with no solution.
    (None, SUM, "Cevap 7.", true),
    (None, SUM, "cevap: x = 3", true),
    (None, SUM, "Sonuç 42'dir.", true),
    (None, SUM, "The answer is 7.", true),
    (None, SUM, "Yanıt B.", true),
    (None, SUM, "3 ile 4'ü topla, sonucu kontrol etmeyi unutma!", false),
    (None, SUM, "To find the answer, first add the two numbers.", false),
    (None, HALVE, "İki tarafı 2'ye bölersen, yani x = 4.", true),
    (None, HALVE, "Cevabı bulmak için önce iki tarafı 2'ye böl.", false),
    (None, HALVE, "Sonucun 4 olması gerekir.", true),
    (None, HALVE, "Cevabın 4 olduğunu görürsün.", true),
    (None, HALVE, "Sonucu 2 ile çarparak kontrol et.", false),
    (None, HALVE, "Sonucu 8'e bölme, 2'ye böl.", false),
    (None, LINEAR, "Denklem 2x + 3 = 27; önce 3'ü karşıya at.", false),
    (None, LINEAR, "Elimizdeki eşitlik: 2x + 3 = 27", false),
    (None, LINEAR, "Önce 2x = 24 olduğunu bul, sonra iki tarafı 2'ye böl.", false),
    (None, LINEAR, "x = 12 ise eşitliği kontrol edebilir misin?", false),
    (None, LINEAR, "Toplam = 12 olur.", true),
    (None, "", "12 doğru cevaptır.", true),
    (None, "", "C şıkkı doğru.", true),
    (None, "", "C şıkkı doğru mu, kontrol et.", false),
    (None, "", "7 is the answer.", true),
    (None, "", "The result of 3 × 4 is what you need next.", false),
    (None, "", "x = 4 ve y = 5", true),
    (None, "", "x = 4'tür.", true),
    (None, "", "x = 4 mü?", false),
    (None, SUM, "Answer: 7", true),
    (None, SUM, "Sonuç: 7", true),
    (None, SUM, "Cevap 3 basamaklı bir sayı değil.", false),
    (None, SUM, "Cevabın 2 katı 14 eder mi?", false),
    (None, SUM, "As a result, 3 apples remain.", false),
    (None, SUM, "The answer is between 5 and 10.", false),
    (None, SUM, "Örneğin 2 + 2 = 4 gibi düşün.", false),
    (None, SUM, "Peki 3 + 4 = ?", false),
    (None, SUM, "Çözüm 1: önce topla, sonra kontrol et.", false),
    (None, "3 × 4 kaçtır?", "Üç kere dört: 3 × 4 = 12", true),
    (None, "", "Doğru seçenek D.", true),
    (None, "", "Correct option: D", true),
    (None, "", "Sonuca göre 3 elma kalır.", false),
    (Some("20"), DISCOUNT, "İndirim yüzde 20'dir.", true),
];

#[test]
fn the_table_is_decided_right() {
    let (mut leaking, mut caught, mut clean, mut refused_clean) = (0, 0, 0, 0);
    let mut wrong = Vec::new();
    for &(solution, question, hint, expect_leak) in ROWS {
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
    assert!(ROWS.len() >= 70, "only {} rows", ROWS.len());
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
