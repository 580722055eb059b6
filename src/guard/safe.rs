//! Generic hints that never leak, for when a generated hint is refused.

use serde::{Deserialize, Serialize};

/// The language of a hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Tr,
    En,
}

/// A generic, encouraging hint for `level`: 1 points at the concept, 2 at the method and the
/// next step, 3 at the step before the result. Levels below 1 count as 1, above 3 as 3.
pub fn safe_hint(level: u8, language: Lang) -> &'static str {
    match (level.clamp(1, 3), language) {
        (1, Lang::Tr) => {
            "Önce sorunun hangi konuyla ilgili olduğunu düşün: burada hangi kavram ya da kural \
             işine yarar? Verilenleri ve istenenleri ayrı ayrı yazmak harika bir başlangıç olur."
        }
        (2, Lang::Tr) => {
            "Şimdi bir yöntem seç: verilenlerle kurabileceğin bir denklem, tablo ya da şema var \
             mı? İlk adımı yaz ve oradan ilerle; doğru yoldasın!"
        }
        (_, Lang::Tr) => {
            "Sona çok yaklaştın! Şimdiye kadar bulduğun ara adımları bir kez daha kontrol et, \
             son işlemi de kendin yap. Bunu başarabilirsin!"
        }
        (1, Lang::En) => {
            "Start by asking which concept or rule this question is about. Writing down what \
             is given and what is asked is a great first step."
        }
        (2, Lang::En) => {
            "Now pick a method: can you set up an equation, a table or a diagram from what is \
             given? Write the first step and build from there; you are on the right track!"
        }
        (_, Lang::En) => {
            "You are very close! Double-check the steps you have so far, then do the last \
             calculation yourself. You can do it!"
        }
    }
}
