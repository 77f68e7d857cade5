//! The clock: Unix time and the local day daily budgets are counted in.

/// Seconds since 1970.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Today's local date ("2026-11-26") and the seconds left until local midnight, when
/// daily budgets start again.
pub fn local_day(unix_secs: u64) -> (String, u64) {
    let time = unix_secs as libc::time_t;
    // SAFETY: localtime_r only writes the tm we own; a zeroed tm is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&time, &mut tm).is_null() };
    if !ok {
        let day = crate::logger::format_utc(unix_secs)[..10].to_string();
        return (day, 86_400 - unix_secs % 86_400);
    }
    let day = format!(
        "{:04}-{:02}-{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday
    );
    let since_midnight = (tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec) as u64;
    (day, 86_400u64.saturating_sub(since_midnight))
}
