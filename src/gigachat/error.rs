//! What went wrong, in words a person can act on: the [`Error`] kinds, and the pieces they
//! are made of (OpenSSL's words for an untrusted certificate, the phase that ran out of
//! time; an error body's message is `sber::error_message`).

use std::fmt;

use crate::sber::connect_secs;

/// What went wrong; the bot gives each kind its own reply.
#[derive(Debug)]
pub enum Error {
    /// OAuth refused the key or scope, or the API refused a fresh token; `check` names the
    /// settings the key came from.
    Auth { status: u16, message: String, check: String },
    /// 429: the personal tier allows one request at a time.
    RateLimited,
    /// 402: the paid tokens are used up.
    PaymentRequired,
    /// 404: the configured model does not exist for this key.
    UnknownModel(String),
    /// 413: the request (usually the conversation) is too large.
    TooLarge(String),
    /// 5xx.
    Server(u16),
    /// Another 4xx (400, 422…): GigaChat refused the request as made.
    Refused { status: u16, message: String },
    /// A phase of the call took too long: which one, and its limit, in words.
    Timeout(String),
    /// The server's certificate is not trusted.
    Tls(String),
    /// DNS, connection refused or reset…
    Network(String),
    /// A 200 whose body is not the JSON GigaChat sends.
    BadResponse(String),
    /// The answer stream broke off before its end.
    Interrupted(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Auth { status, message, check } => {
                write!(f, "gigachat: authorization failed ({status} {message}): check {check}")
            }
            Error::RateLimited => write!(f, "gigachat: too many requests (429)"),
            Error::PaymentRequired => {
                write!(f, "gigachat: payment required (402): the token package is used up")
            }
            Error::UnknownModel(model) => write!(
                f,
                "gigachat: no such model {model:?} (404): set gigachat.model to a model `gigabot check` lists"
            ),
            Error::TooLarge(message) => write!(f, "gigachat: request too large (413 {message})"),
            Error::Server(status) => write!(f, "gigachat: server error ({status})"),
            Error::Refused { status, message } => {
                write!(f, "gigachat: request refused ({status} {message})")
            }
            Error::Timeout(what) => write!(f, "gigachat: {what}"),
            Error::Tls(detail) => write!(f, "gigachat: {detail}"),
            Error::Network(detail) => write!(f, "gigachat: cannot connect: {detail}"),
            Error::BadResponse(detail) => write!(f, "gigachat: unreadable answer: {detail}"),
            Error::Interrupted(detail) => write!(f, "gigachat: the answer broke off: {detail}"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// A short name of the failure, for the log line and the /stats counters.
    pub fn kind(&self) -> String {
        match self {
            Error::Auth { status, .. } => format!("auth {status}"),
            Error::RateLimited => "rate limited 429".into(),
            Error::PaymentRequired => "payment required 402".into(),
            Error::UnknownModel(_) => "unknown model 404".into(),
            Error::TooLarge(_) => "too large 413".into(),
            Error::Server(status) => format!("server {status}"),
            Error::Refused { status, .. } => format!("refused {status}"),
            Error::Timeout(_) => "timeout".into(),
            Error::Tls(_) => "tls".into(),
            Error::Network(_) => "network".into(),
            Error::BadResponse(_) => "bad response".into(),
            Error::Interrupted(_) => "interrupted".into(),
        }
    }
}

/// OpenSSL's words for "I do not trust this certificate".
pub(super) fn is_certificate_error(text: &str) -> bool {
    let text = text.to_lowercase();
    [
        "certificate verify failed",
        "unable to get local issuer",
        "self-signed certificate",
        "self signed certificate",
        "certificate has expired",
        "hostname mismatch",
        "ip address mismatch",
        "certificate is not yet valid",
        "certificate is not trusted",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// Which phase ran out of time, with the limit that applied to it: a connect that hangs
/// is reported as a 15 s connect, not as the 120 s answer timeout.
pub(super) fn timeout_text(phase: ureq::Timeout, secs: u64, name: &str) -> String {
    match phase {
        ureq::Timeout::Resolve | ureq::Timeout::Connect => format!(
            "could not connect within {} s (DNS, TCP and TLS): check the network and gigachat.auth_url / gigachat.base_url",
            connect_secs(secs)
        ),
        ureq::Timeout::SendRequest | ureq::Timeout::SendBody => {
            format!("sending the request took longer than {secs} s ({name})")
        }
        ureq::Timeout::RecvBody => {
            format!("the answer did not finish within {secs} s ({name})")
        }
        _ => format!("no answer within {secs} s ({name})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_openssl_certificate_errors() {
        assert!(is_certificate_error(
            "native-tls: error:0A000086:SSL routines:tls_post_process_server_certificate:certificate verify failed:ssl/statem/statem_clnt.c:1889: (unable to get local issuer certificate)"
        ));
        assert!(!is_certificate_error("io: Connection refused (os error 111)"));
    }
}
