//! Every Unicode decimal digit read as its ASCII digit, so that "١٢", "१२", "১২" and "12" are
//! one number to the guard. NFKC (in the lexer) already folds full-width and mathematical
//! digits; the digits of other scripts have no compatibility mapping, hence this table.

/// The zero of every run of ten decimal digits (General_Category Nd), ascending. Unicode 16.0,
/// read from the UCD's Nd ranges: every Nd code point is one of ten consecutive code points
/// whose first is the digit zero, so a code point's value is its distance from its run's zero.
const ZEROS: [u32; 76] = [
    0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66,
    0xDE6, 0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
    0x104A0, 0x10D30, 0x10D40, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0,
    0x11650, 0x116C0, 0x116D0, 0x116DA, 0x11730, 0x118E0, 0x11950, 0x11BF0, 0x11C50, 0x11D50,
    0x11DA0, 0x11F50, 0x16130, 0x16A60, 0x16AC0, 0x16B50, 0x16D70, 0x1CCF0, 0x1D7CE, 0x1D7D8,
    0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E4F0, 0x1E5F1, 0x1E950, 0x1FBF0,
];

/// The ASCII digit that `ch` writes, if `ch` is a decimal digit of any script.
pub(super) fn ascii_digit(ch: char) -> Option<char> {
    if ch.is_ascii() {
        return ch.is_ascii_digit().then_some(ch);
    }
    let code = u32::from(ch);
    let run = ZEROS.partition_point(|&zero| zero <= code).checked_sub(1)?;
    let value = u8::try_from(code - ZEROS[run]).ok().filter(|&v| v < 10)?;
    Some(char::from(b'0' + value))
}

/// The Arabic decimal and thousands separators and percent sign, written the Turkish way.
pub(super) fn arabic_punctuation(ch: char) -> Option<char> {
    match ch {
        '\u{66B}' => Some(','),
        '\u{66C}' => Some('.'),
        '\u{66A}' => Some('%'),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_ordered_and_every_run_is_numeric() {
        assert!(ZEROS.windows(2).all(|w| w[0] + 10 <= w[1]));
        for zero in ZEROS {
            for value in 0..10 {
                let ch = char::from_u32(zero + value).unwrap();
                assert!(ch.is_numeric(), "U+{:X}", zero + value);
                assert_eq!(ascii_digit(ch), char::from_digit(value, 10));
            }
        }
    }

    #[test]
    fn digits_of_other_scripts() {
        let read = |text: &str| {
            text.chars()
                .map(|c| ascii_digit(c).unwrap_or(c))
                .collect::<String>()
        };
        assert_eq!(read("٣/٤"), "3/4");
        assert_eq!(read("۸۱"), "81");
        assert_eq!(read("३५"), "35");
        assert_eq!(read("৭ ๗ ១២"), "7 7 12");
        assert_eq!(read("\u{16D71}\u{16D72}"), "12", "Kirat Rai, Unicode 16");
        assert_eq!(ascii_digit('x'), None);
        assert_eq!(ascii_digit('½'), None, "not Nd: NFKC reads it");
        assert_eq!(ascii_digit('\u{1D7CF}'), Some('1'), "mathematical bold one");
    }
}
