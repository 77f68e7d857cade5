//! A small stderr logger over the `log` facade: one line per event.
//!
//! Only our own records are printed. ureq logs request URLs, and every Telegram URL holds
//! the bot token, so records from other crates are dropped here whatever the level.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Logger {
    /// Under systemd journald stamps each line itself.
    timestamps: bool,
}

static LOGGER: std::sync::OnceLock<Logger> = std::sync::OnceLock::new();

/// Installs the logger at `info`; [`set_level`] changes the level once the config is read.
pub fn init() {
    let logger = LOGGER.get_or_init(|| Logger {
        timestamps: std::env::var_os("JOURNAL_STREAM").is_none(),
    });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(LevelFilter::Info);
    }
}

/// Sets the level from `log.level` (already validated: error, warn, info or debug).
pub fn set_level(level: &str) {
    log::set_max_level(level.parse().unwrap_or(LevelFilter::Info));
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.target().starts_with("gigabot") && metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug | Level::Trace => "DEBUG",
        };
        let line = if self.timestamps {
            format!("{} {level} {}\n", utc_now(), record.args())
        } else {
            format!("{level} {}\n", record.args())
        };
        // One write per line, so lines from a panic hook never interleave mid-line.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// `2026-11-26T08:30:00Z`, without a date crate.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format_utc(secs)
}

/// Formats Unix seconds as an ISO 8601 UTC time (days-to-civil, Howard Hinnant's algorithm).
pub fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
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
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_known_instants() {
        assert_eq!(super::format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::format_utc(1_781_000_000), "2026-06-09T10:13:20Z");
    }
}
