//! The marketplace's time formats, converted to Unix seconds (UTC) without a
//! calendar dependency: `yyyyMMddHHmmss` (expireTime, createTime),
//! `yyyyMMddHHmmssSSS` (V1 timeStamp) and `yyyy-MM-dd HH:mm:ss[ z]`
//! (getLicenseAsync's effectiveTime).

/// The current Unix time in milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

fn number(digits: &str) -> Option<u32> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Unix seconds of a UTC date and time, if it is a real one.
fn unix_seconds(fields: [&str; 6]) -> Option<i64> {
    let [year, month, day, hour, minute, second] = fields.map(number);
    let (year, month, day) = (i64::from(year?), month?, day?);
    let (hour, minute, second) = (hour?, minute?, second?);
    let valid = (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && hour < 24
        && minute < 60
        && second < 60;
    valid.then(|| {
        days_from_civil(year, month, day) * 86_400 + i64::from(hour * 3600 + minute * 60 + second)
    })
}

/// `yyyyMMddHHmmss`, UTC.
pub fn parse_compact(text: &str) -> Option<i64> {
    if text.len() != 14 || !text.is_ascii() {
        return None;
    }
    unix_seconds([
        &text[0..4],
        &text[4..6],
        &text[6..8],
        &text[8..10],
        &text[10..12],
        &text[12..14],
    ])
}

/// `yyyyMMddHHmmssSSS` (the V1 timeStamp), UTC, to milliseconds.
pub fn parse_compact_millis(text: &str) -> Option<i64> {
    if text.len() != 17 || !text.is_ascii() {
        return None;
    }
    let millis = i64::from(number(&text[14..])?);
    Some(parse_compact(&text[..14])? * 1000 + millis)
}

/// `yyyy-MM-dd HH:mm:ss`, optionally followed by ` z`/`Z`, or `yyyyMMddHHmmss`.
pub fn parse_flexible(text: &str) -> Option<i64> {
    let trimmed = text.trim();
    if let Some(seconds) = parse_compact(trimmed) {
        return Some(seconds);
    }
    let base = trimmed
        .strip_suffix(['z', 'Z'])
        .map(str::trim_end)
        .unwrap_or(trimmed);
    let bytes = base.as_bytes();
    let shaped = base.len() == 19
        && base.is_ascii()
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && (bytes[10] == b' ' || bytes[10] == b'T')
        && bytes[13] == b':'
        && bytes[16] == b':';
    if !shaped {
        return None;
    }
    unix_seconds([
        &base[0..4],
        &base[5..7],
        &base[8..10],
        &base[11..13],
        &base[14..16],
        &base[17..19],
    ])
}

/// Unix seconds as `yyyyMMddHHmmss` (UTC), for answers such as usage times.
pub fn format_compact(unix_seconds: i64) -> String {
    let days = unix_seconds.div_euclid(86_400);
    let secs = unix_seconds.rem_euclid(86_400);
    // Inverse of days_from_civil (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(parse_compact("19700101000000"), Some(0));
        assert_eq!(parse_compact("20221224194509"), Some(1_671_911_109));
        assert_eq!(parse_compact("20240229235959"), Some(1_709_251_199));
        assert_eq!(
            parse_compact_millis("20200727073711903"),
            Some(1_595_835_431_903)
        );
        assert_eq!(parse_flexible("2023-10-27 10:30:15 z"), Some(1_698_402_615));
        assert_eq!(parse_flexible("2023-10-27T10:30:15Z"), Some(1_698_402_615));
        assert_eq!(parse_flexible("20231027103015"), Some(1_698_402_615));
    }

    #[test]
    fn impossible_dates_and_shapes_are_refused() {
        for bad in [
            "",
            "2022122419450",
            "202212241945090",
            "20230229000000",
            "20221324000000",
            "20221200000000",
            "20221224240000",
            "20221224196000",
            "2022122419450x",
            "+0221224194509",
            "２０２２１２２４",
            "2023-10-27 10:30",
            "2023/10/27 10:30:15",
        ] {
            assert_eq!(parse_compact(bad).or(parse_flexible(bad)), None, "{bad}");
        }
    }

    #[test]
    fn formatting_inverts_parsing() {
        for text in [
            "19700101000000",
            "20240229235959",
            "20991231000001",
            "20000301120000",
        ] {
            let seconds = parse_compact(text).expect(text);
            assert_eq!(format_compact(seconds), text);
        }
    }
}
