//! Quota periods: a day ends at local midnight, a month on the 1st, in the configured time zone
//! (Europe/Istanbul by default; the zone database ships inside the binary).

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// `(next local midnight, next 1st of the month at midnight)` after `now`, as Unix ms.
pub fn next_resets(now: Timestamp, tz: &TimeZone) -> (i64, i64) {
    let local = now.to_zoned(tz.clone());
    let today = local.date();
    let midnight = |date: jiff::civil::Date| {
        date.to_zoned(tz.clone())
            .map(|z| z.timestamp().as_millisecond())
            .unwrap_or_else(|_| now.as_millisecond() + 86_400_000)
    };
    let tomorrow = today.checked_add(1.day()).unwrap_or(today);
    let next_month = today
        .first_of_month()
        .checked_add(1.month())
        .unwrap_or(today);
    (midnight(tomorrow), midnight(next_month))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istanbul_days_end_at_local_midnight_and_months_on_the_first() {
        let tz = TimeZone::get("Europe/Istanbul").unwrap();
        // 2026-11-27 22:30 UTC is 01:30 on the 28th in Istanbul (UTC+3).
        let now: Timestamp = "2026-11-27T22:30:00Z".parse().unwrap();
        let (day, month) = next_resets(now, &tz);
        assert_eq!(
            Timestamp::from_millisecond(day).unwrap().to_string(),
            "2026-11-28T21:00:00Z"
        );
        assert_eq!(
            Timestamp::from_millisecond(month).unwrap().to_string(),
            "2026-11-30T21:00:00Z"
        );
        // 20:59 UTC on the 30th is still November there; 21:00 is December.
        let late: Timestamp = "2026-12-31T20:59:59Z".parse().unwrap();
        let (day, month) = next_resets(late, &tz);
        assert_eq!(
            Timestamp::from_millisecond(day).unwrap().to_string(),
            "2026-12-31T21:00:00Z"
        );
        assert_eq!(
            Timestamp::from_millisecond(month).unwrap().to_string(),
            "2026-12-31T21:00:00Z"
        );
    }
}
