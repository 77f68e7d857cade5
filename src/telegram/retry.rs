//! When a failed call is tried again, and when long trouble is reported again.

use std::time::Duration;

/// Calls that must not be made twice: a message sent again is a message the user reads
/// twice. (Polls, edits, drafts, "typing…" and button answers do no harm repeated.)
pub(super) const NOT_TWICE: [&str; 1] = ["sendMessage"];

/// Whether a transport error shows that the request never left: the host was not found, the
/// connection or its TLS handshake failed. Anything later may have reached Telegram.
pub(super) fn never_sent(err: &ureq::Error) -> bool {
    use std::io::ErrorKind as Io;
    match err {
        ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::BadUri(_)
        | ureq::Error::Tls(_)
        | ureq::Error::NativeTls(_)
        | ureq::Error::Timeout(ureq::Timeout::Resolve | ureq::Timeout::Connect) => true,
        ureq::Error::Io(io) => matches!(
            io.kind(),
            Io::ConnectionRefused
                | Io::NotFound
                | Io::AddrNotAvailable
                | Io::NetworkUnreachable
                | Io::HostUnreachable
        ),
        _ => false,
    }
}

/// The pause before try `failures + 1`: 1 s doubling to 10 s. Capped low, so that the bot
/// answers again within about 12 s (with jitter) of Telegram coming back.
pub(super) fn retry_delay(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(4)).min(Duration::from_secs(10))
}

/// Whether trouble that has lasted `now` (and `previous` at the last try) is to be reported
/// again: once past a minute, once past five, then every fifteen.
pub(super) fn time_to_say_again(previous: Duration, now: Duration) -> bool {
    let marks = |d: Duration| match d.as_secs() {
        s if s < 60 => 0,
        s if s < 300 => 1,
        s => 2 + (s - 300) / 900,
    };
    marks(now) > marks(previous)
}

/// "3 min 5 s", for how long trouble lasted.
pub(super) fn minutes_seconds(d: Duration) -> String {
    let s = d.as_secs();
    match s / 60 {
        0 => format!("{s} s"),
        m => format!("{m} min {} s", s % 60),
    }
}

/// Up to a quarter of `delay`, so restarted bots do not retry in lockstep.
pub(super) fn jitter(delay: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    delay / 4 * (nanos % 1000) / 1000
}
