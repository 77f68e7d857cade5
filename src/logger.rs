//! A small stderr logger over the `log` facade: one line per event, our own records only:
//! ureq logs request URLs, and every Telegram URL holds the bot token, so records from other
//! crates are dropped here whatever the level.

use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::clock;

struct Logger {
    /// Under systemd journald stamps each line itself.
    timestamps: bool,
}

static LOGGER: std::sync::OnceLock<Logger> = std::sync::OnceLock::new();

/// Installs the logger at `info`; [`set_level`] changes the level once the config is read.
pub fn init() {
    let logger =
        LOGGER.get_or_init(|| Logger { timestamps: std::env::var_os("JOURNAL_STREAM").is_none() });
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
            format!("{} {level} {}\n", clock::utc_timestamp(clock::unix_now()), record.args())
        } else {
            format!("{level} {}\n", record.args())
        };
        // One write per line, so lines from a panic hook never interleave mid-line.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}
