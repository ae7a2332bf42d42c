//! Points in time as a person writes and reads them: RFC 3339 (`2026-12-02T02:00:00Z`,
//! `2026-12-02T03:00:00.5+01:00`) or a duration ago (`10m ago`), in and out of the
//! microseconds since the Unix epoch that the broker stores.

use std::time::{SystemTime, UNIX_EPOCH};

const MICROS_PER_SECOND: i64 = 1_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// Parses a time flag's value into microseconds since the epoch.
pub(crate) fn parse_time(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Some(ago) = text.strip_suffix("ago") {
        let ago = crate::parse_duration(ago.trim())?;
        let ago = i64::try_from(ago.as_micros()).map_err(|_| "too long ago".to_owned())?;
        return Ok(now_us().saturating_sub(ago));
    }
    parse_rfc3339(text).ok_or_else(|| {
        format!("{text:?} is not a time: expected RFC 3339 (2026-12-02T02:00:00Z) or \"10m ago\"")
    })
}

/// Microseconds since the epoch as RFC 3339 in UTC, to the microsecond.
pub(crate) fn format_time(us: i64) -> String {
    let seconds = us.div_euclid(MICROS_PER_SECOND);
    let micros = us.rem_euclid(MICROS_PER_SECOND);
    let (days, second_of_day) = (
        seconds.div_euclid(SECONDS_PER_DAY),
        seconds.rem_euclid(SECONDS_PER_DAY),
    );
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

fn now_us() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
}

/// `YYYY-MM-DD(T|t| )HH:MM:SS[.fraction](Z|z|±HH:MM)`.
fn parse_rfc3339(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || !matches!(bytes[10], b'T' | b't' | b' ') {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(i, c)| bytes[i] != c) {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut micros = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        // Digits past the sixth are below a microsecond: cut.
        let kept = &fraction[..digits.min(6)];
        micros = kept.parse::<i64>().ok()? * 10_i64.pow(6 - kept.len() as u32);
        rest = &fraction[digits..];
    }
    let offset = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let d = |i: usize| i64::from(digits[i] - b'0');
            let (hours, minutes) = (d(0) * 10 + d(1), d(2) * 10 + d(3));
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = (hours * 60 + minutes) * 60;
            if *sign == b'-' {
                -offset
            } else {
                offset
            }
        }
        _ => return None,
    };
    let seconds =
        days_from_civil(year, month, day) * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second
            - offset;
    Some(seconds * MICROS_PER_SECOND + micros)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y.rem_euclid(400);
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_reads_and_writes() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        let t = 1_795_419_953_426_096;
        assert_eq!(format_time(t), "2026-11-23T07:45:53.426096Z");
        assert_eq!(parse_time("2026-11-23T07:45:53.426096Z"), Ok(t));
        assert_eq!(parse_time("2026-11-23T08:45:53.426096+01:00"), Ok(t));
        assert_eq!(parse_time("2026-11-23 07:45:53.4260961234z"), Ok(t));
        assert_eq!(
            parse_time("2024-02-29T00:00:00Z").map(format_time).unwrap(),
            "2024-02-29T00:00:00.000000Z"
        );
        assert_eq!(format_time(-1), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn ago_is_before_now() {
        let before = now_us();
        let t = parse_time("10m ago").unwrap();
        let ten_minutes = 600 * MICROS_PER_SECOND;
        assert!(
            t <= before - ten_minutes + MICROS_PER_SECOND
                && t >= before - ten_minutes - 60 * MICROS_PER_SECOND
        );
    }

    #[test]
    fn nonsense_is_refused() {
        for bad in [
            "",
            "yesterday",
            "2026-02-30T00:00:00Z",
            "2026-11-22T04:25:53",
            "2026-11-22T24:00:00Z",
            "2026-11-22T04:25:53.Z",
            "2026-11-22T04:25:53+1:00",
            "２０２６-11-22T04:25:53Z",
            "ten ago",
        ] {
            assert!(parse_time(bad).is_err(), "{bad:?}");
        }
    }
}
