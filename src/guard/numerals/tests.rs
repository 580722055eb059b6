//! The number words read whole, one spelling at a time.

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
    assert_eq!(weak("her iki taraftan"), [("iki".to_owned(), true)]);
}
