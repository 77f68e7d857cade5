//! The clock: the time now, the log's UTC time, and the local day that daily token budgets
//! count in. Calendars and time zones are `jiff`'s; nothing of this crate is used here.

use std::time::{SystemTime, UNIX_EPOCH};

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Seconds since 1970 (0 for a clock set before it).
pub fn unix_now() -> u64 {
    since_1970().as_secs()
}

/// Milliseconds since 1970, for deadlines such as a GigaChat token's expiry.
pub fn unix_now_ms() -> u64 {
    u64::try_from(since_1970().as_millis()).unwrap_or(u64::MAX)
}

fn since_1970() -> std::time::Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Unix seconds as an ISO 8601 UTC time, `2026-11-26T08:30:00Z`.
pub fn utc_timestamp(unix_secs: u64) -> String {
    timestamp(unix_secs).strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Today's local date ("2026-11-26") in the system time zone (TZ, else /etc/localtime) and
/// the seconds left until the next local midnight, when daily budgets start again.
pub fn local_day(unix_secs: u64) -> (String, u64) {
    local_day_in(&TimeZone::system(), unix_secs)
}

/// [`local_day`] in `tz`. A day that daylight saving makes 23 or 25 hours long ends at its
/// real midnight (or, where the clock skips midnight, at the next day's first instant).
pub fn local_day_in(tz: &TimeZone, unix_secs: u64) -> (String, u64) {
    let now = timestamp(unix_secs).to_zoned_datetime(tz.clone());
    let next_midnight = now.tomorrow().and_then(|t| t.start_of_day()).map(|m| m.timestamp());
    let day = now.date().to_string();
    match next_midnight {
        Ok(midnight) => {
            let left = midnight.as_second().saturating_sub(now.timestamp().as_second());
            (day, u64::try_from(left).unwrap_or(0))
        }
        // Only at the end of the calendar (the year 9999): the UTC day's end will do.
        Err(_) => (day, 86_400 - unix_secs % 86_400),
    }
}

/// Unix seconds as a jiff timestamp; past the year 9999 (jiff's last), its last instant.
fn timestamp(unix_secs: u64) -> Timestamp {
    let secs = i64::try_from(unix_secs).ok();
    secs.and_then(|secs| Timestamp::from_second(secs).ok()).unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_timestamps_of_known_instants() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_timestamp(1_781_000_000), "2026-06-09T10:13:20Z");
        assert_eq!(utc_timestamp(1_796_152_443), "2026-12-01T19:14:03Z");
        assert!(utc_timestamp(u64::MAX).starts_with("9999-12-"));
    }

    #[test]
    fn now_is_after_the_code_was_written() {
        let (secs, ms) = (unix_now(), unix_now_ms());
        assert!(secs > 1_781_000_000, "{secs}");
        assert!(ms / 1000 >= secs && ms / 1000 - secs < 5, "{ms} {secs}");
    }

    #[test]
    fn the_local_day_ends_at_local_midnight() {
        let moscow = TimeZone::posix("MSK-3").unwrap();
        // 2026-06-09T10:13:20Z is 13:13:20 in Moscow: 10 h 46 min 40 s to midnight.
        assert_eq!(
            local_day_in(&moscow, 1_781_000_000),
            ("2026-06-09".into(), 10 * 3600 + 46 * 60 + 40)
        );
        // 21:00Z is already the next day in Moscow, and a whole day is left.
        assert_eq!(local_day_in(&moscow, 1_781_038_800), ("2026-06-10".into(), 86_400));
        assert_eq!(local_day_in(&moscow, 1_781_038_799), ("2026-06-09".into(), 1));
        assert_eq!(
            local_day_in(&TimeZone::UTC, 1_781_000_000),
            ("2026-06-09".into(), 13 * 3600 + 46 * 60 + 40)
        );
        let new_york = TimeZone::fixed(jiff::tz::offset(-5));
        assert_eq!(local_day_in(&new_york, 0), ("1969-12-31".into(), 5 * 3600));
    }

    #[test]
    fn a_day_of_daylight_saving_time_is_as_long_as_it_really_is() {
        let berlin = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        // 2026-03-29 in Berlin: 00:00 CET (23:00Z the day before) to 00:00 CEST, 23 hours.
        let start = 1_774_738_800;
        assert_eq!(local_day_in(&berlin, start), ("2026-03-29".into(), 23 * 3600));
        // 2026-10-25: 00:00 CEST (22:00Z the day before) to 00:00 CET, 25 hours.
        let start = 1_792_879_200;
        assert_eq!(local_day_in(&berlin, start), ("2026-10-25".into(), 25 * 3600));
    }

    /// Checked against date(1) in the same time zone, not against our own arithmetic.
    #[test]
    fn local_day_agrees_with_date_on_the_day_and_the_next_midnight() {
        let date = |args: &[&str]| {
            let out = std::process::Command::new("date").args(args).output().unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        for unix in [1_781_000_000u64, 1_781_049_599, 1_798_761_600] {
            let (day, left) = local_day(unix);
            assert_eq!(day, date(&["-d", &format!("@{unix}"), "+%F"]), "{unix}");
            let midnight: u64 = date(&["-d", &format!("{day} + 1 day"), "+%s"]).parse().unwrap();
            assert_eq!(left, midnight - unix, "{unix}");
        }
    }
}
