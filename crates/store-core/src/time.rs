//! UTC timestamps for file names and messages, without a calendar dependency.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A UTC calendar time to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UtcTime {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl UtcTime {
    /// The calendar time of `time`; times before 1970 are clamped to the epoch.
    pub fn from_system_time(time: SystemTime) -> UtcTime {
        let seconds = time
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let days = (seconds / 86_400) as i64;
        let second_of_day = seconds % 86_400;
        let (year, month, day) = civil_from_days(days);
        UtcTime {
            year,
            month,
            day,
            hour: (second_of_day / 3600) as u32,
            minute: (second_of_day / 60 % 60) as u32,
            second: (second_of_day % 60) as u32,
        }
    }

    /// `20261121T215103Z`: sorts in time order and is safe in a file name on every platform.
    pub fn compact(&self) -> String {
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `2026-11-21T21:51:03Z` (RFC 3339), for messages.
    pub fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day), proleptic
/// Gregorian.
fn civil_from_days(days_since_epoch: i64) -> (i64, u32, u32) {
    let shifted = days_since_epoch + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> UtcTime {
        UtcTime::from_system_time(UNIX_EPOCH + Duration::from_secs(seconds))
    }

    #[test]
    fn known_instants_format_as_calendar_dates() {
        assert_eq!(at(0).rfc3339(), "1970-01-01T00:00:00Z");
        // `date -u -d @951782400` = Tue Feb 29 00:00:00 UTC 2000 (a leap day in a century year).
        assert_eq!(at(951_782_400).rfc3339(), "2000-02-29T00:00:00Z");
        // `date -u -d @1795297863` = Sat Nov 21 21:51:03 UTC 2026.
        assert_eq!(at(1_795_297_863).compact(), "20261121T215103Z");
        assert_eq!(at(4_102_444_799).rfc3339(), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn compact_form_sorts_in_time_order() {
        let instants = [0, 59, 3600, 86_399, 86_400, 951_782_400, 1_795_297_863];
        let stamps: Vec<_> = instants.iter().map(|s| at(*s).compact()).collect();
        let mut sorted = stamps.clone();
        sorted.sort();
        assert_eq!(stamps, sorted);
    }
}
