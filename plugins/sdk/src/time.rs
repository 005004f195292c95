//! Time helpers: the current time (through WASI's wall clock) and conversion of
//! [`Instant`] to and from the marketplace's `yyyyMMddHHmmss` (UTC) notation.

use crate::Instant;

/// The current time, from the host's wall clock.
pub fn now() -> Instant {
    let unix_seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Instant { unix_seconds }
}

/// A calendar date and time in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

/// Splits an instant into its UTC calendar fields.
pub fn to_civil(at: Instant) -> Civil {
    let days = at.unix_seconds.div_euclid(86_400);
    let secs = at.unix_seconds.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: secs / 3600,
        minute: secs / 60 % 60,
        second: secs % 60,
    }
}

/// Formats as the marketplace does: `yyyyMMddHHmmss`, UTC.
pub fn format_marketplace(at: Instant) -> String {
    let c = to_civil(at);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_marketplace() {
        // 2020-07-27 15:31:56 UTC, the expireTime of the shared V1 vector.
        assert_eq!(
            format_marketplace(Instant {
                unix_seconds: 1_595_863_916
            }),
            "20200727153156"
        );
        assert_eq!(
            format_marketplace(Instant { unix_seconds: 0 }),
            "19700101000000"
        );
    }
}
