//! When a failed call is tried again, and when long trouble is reported again.

use std::time::Duration;

use super::{ErrorKind, OnFlood};

/// Calls that must not be made twice: a message sent again is a message the user reads
/// twice. (Polls, edits, drafts, "typing…" and button answers do no harm repeated.)
pub(super) const NOT_TWICE: [&str; 4] =
    ["sendMessage", "sendRichMessage", "sendPhoto", "answerGuestQuery"];

/// Calls the bot cannot go on without (polling, and the start-up calls before it): trouble
/// with them is waited out for as long as it lasts. Every other call concerns one chat, and
/// gives up after [`TRIES`] tries, so that one chat's trouble never holds the others.
pub(super) const WAITED_OUT: [&str; 5] =
    ["getUpdates", "getMe", "getWebhookInfo", "deleteWebhook", "setMyCommands"];

/// Calls tried once: a failed draft or "typing…" is only a preview that did not show.
pub(super) const ONE_TRY: [&str; 3] =
    ["sendMessageDraft", "sendRichMessageDraft", "sendChatAction"];

/// Tries of a call about one chat when Telegram answers 5xx: 1 + 2 + 4 s of pauses, about
/// 8 s with jitter, then the message is given up (and counted).
pub(super) const TRIES: u32 = 4;

/// The longest flood-control pause (429 `retry_after`) a chat's answer waits out. A longer
/// one gives that message up: the loop, and every other chat, would wait as long.
pub(super) const MAX_FLOOD_WAIT_SECS: u64 = 60;

/// Any `retry_after` above this (an hour) is taken as this: it must never overflow a clock.
pub(super) const MAX_RETRY_AFTER_SECS: u64 = 3600;

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
        ureq::Error::Io(io) => {
            matches!(
                io.kind(),
                Io::ConnectionRefused
                    | Io::NotFound
                    | Io::AddrNotAvailable
                    | Io::NetworkUnreachable
                    | Io::HostUnreachable
            ) || is_name_lookup_failure(io)
        }
        _ => false,
    }
}

/// A name that did not resolve: the standard library reports getaddrinfo's failure as an
/// uncategorized error with this text, and nothing was sent anywhere.
fn is_name_lookup_failure(io: &std::io::Error) -> bool {
    io.to_string().starts_with("failed to lookup address information")
}

/// How long to wait before trying `method` again after it failed this way for the
/// `failures + 1`-th time in a row, or None to give up and return the error now.
pub(super) fn pause_before_retry(
    method: &str,
    kind: &ErrorKind,
    on_flood: OnFlood,
    failures: u32,
) -> Option<Duration> {
    let waited_out = WAITED_OUT.contains(&method);
    if ONE_TRY.contains(&method) {
        return None;
    }
    let backoff = || {
        let delay = retry_delay(failures);
        Some(delay + jitter(delay))
    };
    match kind {
        ErrorKind::RetryAfter(_) if on_flood == OnFlood::GiveUp => None,
        ErrorKind::RetryAfter(secs) if waited_out => {
            Some(Duration::from_secs((*secs).min(MAX_FLOOD_WAIT_SECS)))
        }
        ErrorKind::RetryAfter(secs) if *secs > MAX_FLOOD_WAIT_SECS => None,
        ErrorKind::RetryAfter(secs) => Some(Duration::from_secs(*secs)),
        ErrorKind::Lost(_) if NOT_TWICE.contains(&method) => None,
        ErrorKind::Server(_) | ErrorKind::Conflict(_) if !waited_out && failures + 1 >= TRIES => {
            None
        }
        ErrorKind::Transient(_) | ErrorKind::Server(_) | ErrorKind::Conflict(_) => backoff(),
        ErrorKind::Lost(_) => backoff(),
        // A refused poll (a proxy in between): the bot can do nothing without updates.
        ErrorKind::Rejected { .. } if method == "getUpdates" => backoff(),
        _ => None,
    }
}

/// Says what failed, as the trouble goes on: at the first failure, again once it has lasted
/// a minute, five, then every fifteen (`time_to_say_again`); in between only at debug.
pub(super) fn say_trouble(
    err: &super::Error,
    failures: u32,
    previous: Duration,
    elapsed: Duration,
    wait: Duration,
    host: &str,
) {
    if failures == 1 {
        match &err.kind {
            ErrorKind::Conflict(_) => log::error!(
                "{err}: another copy of this bot is running with the same token, or a webhook is set; stop the other copy. Retrying"
            ),
            ErrorKind::Rejected { .. } => log::error!("{err}; polling again with growing pauses"),
            _ => log::warn!("{err}; retrying"),
        }
    } else if time_to_say_again(previous, elapsed) {
        log::warn!(
            "{err}; still failing after {}: check the network and telegram.api_url ({host}); `gigabot check` tests the connection. Retrying",
            minutes_seconds(elapsed)
        );
    } else {
        log::debug!("{err}; try {failures}, next in {} ms", wait.as_millis());
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
