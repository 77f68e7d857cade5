//! How a Telegram call failed, in the kinds a caller branches on, and in words for the log; the one
//! place an answer becomes a result or such a failure; and the token out of texts: every request
//! URL holds it, so any text that could hold a URL is redacted before it is logged or shown.

use std::fmt;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::retry::MAX_RETRY_AFTER_SECS;

/// A Telegram call that failed: which method, and how (callers branch on the kind).
#[derive(Debug)]
pub struct Error {
    pub method: &'static str,
    pub kind: ErrorKind,
}

#[derive(Debug)]
pub enum ErrorKind {
    /// Network trouble before the request went out (no name, connection or TLS): worth a retry.
    Transient(String),
    /// Telegram or a proxy failed the request (500, 502, 503, a 4xx page not Telegram's JSON): most
    /// likely not done, so tried again (a few times for a call about one chat).
    Server(String),
    /// The request went out but its answer did not come back (a dropped connection, a timeout
    /// waiting, a gateway's 504, garbage): Telegram may well have done it. Tried again only for
    /// calls that may be made twice (not sendMessage: the user would get the message twice).
    Lost(String),
    /// Flood control (429): wait this many seconds.
    RetryAfter(u64),
    /// The token is wrong or was revoked (401): nothing works until the owner fixes it.
    Unauthorized,
    /// Another bot instance is polling, or a webhook is set (409).
    Conflict(String),
    /// Telegram refused this request (400, 403, …): sending it again will not help.
    Rejected { code: u16, description: String, migrate_to_chat_id: Option<i64> },
    /// The bot is shutting down; the call was abandoned.
    Stopped,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "telegram {}: ", self.method)?;
        match &self.kind {
            ErrorKind::Transient(detail) | ErrorKind::Server(detail) => f.write_str(detail),
            ErrorKind::Lost(detail) => write!(f, "sent, but no answer came back ({detail})"),
            ErrorKind::RetryAfter(secs) => write!(f, "too many requests, retry after {secs} s"),
            ErrorKind::Unauthorized => {
                f.write_str("the bot token is wrong or revoked (401): check it with @BotFather")
            }
            ErrorKind::Conflict(description) => write!(f, "{description} (409)"),
            ErrorKind::Rejected { code, description, .. } => write!(f, "{description} ({code})"),
            ErrorKind::Stopped => f.write_str("abandoned, the bot is stopping"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// The bot cannot go on: the token was revoked (401), or the bot is stopping. Any other
    /// error concerns one message, and the loop goes on to the next update.
    pub fn is_fatal(&self) -> bool {
        matches!(self.kind, ErrorKind::Unauthorized | ErrorKind::Stopped)
    }

    /// Telegram could not parse our HTML: the chunk is resent as plain text.
    pub fn is_bad_html(&self) -> bool {
        matches!(&self.kind, ErrorKind::Rejected { description, .. }
            if description.contains("can't parse entities"))
    }

    /// The edit would change nothing: the message already shows what we want.
    pub fn is_not_modified(&self) -> bool {
        matches!(&self.kind, ErrorKind::Rejected { description, .. }
            if description.contains("message is not modified"))
    }

    /// The group became a supergroup with this new id.
    pub fn migrated_to(&self) -> Option<i64> {
        match &self.kind {
            ErrorKind::Rejected { migrate_to_chat_id, .. } => *migrate_to_chat_id,
            _ => None,
        }
    }
}

/// The `{ok, result, description, error_code, parameters}` envelope of every answer.
#[derive(Deserialize)]
pub(super) struct Envelope {
    ok: bool,
    result: Option<Value>,
    pub(super) description: Option<String>,
    error_code: Option<u16>,
    parameters: Option<ResponseParameters>,
}

#[derive(Deserialize, Default)]
struct ResponseParameters {
    retry_after: Option<u64>,
    migrate_to_chat_id: Option<i64>,
}

/// An answer that is not Telegram's JSON (nginx's 502 page, a proxy's 4xx page, a cut body): not
/// done, unless it said 2xx or a gateway timed out waiting for Telegram (504): maybe done then.
pub(super) fn unreadable(status: u16, detail: String) -> ErrorKind {
    match status {
        200..=299 | 504 => ErrorKind::Lost(detail),
        _ => ErrorKind::Server(detail),
    }
}

/// An answer's result or failure: the one place a status and an envelope become an [`ErrorKind`].
pub(super) fn decode<T: DeserializeOwned>(
    method: &str,
    status: u16,
    retry_after: Option<u64>,
    bytes: &[u8],
) -> Result<T, ErrorKind> {
    let Ok(envelope) = serde_json::from_slice::<Envelope>(bytes) else {
        let detail = format!("unreadable answer (HTTP {status}, {} bytes, not JSON)", bytes.len());
        return Err(unreadable(status, detail));
    };
    if envelope.ok {
        let result = envelope.result.unwrap_or(Value::Null);
        return serde_json::from_value(result)
            .map_err(|err| ErrorKind::Lost(format!("unexpected result: {err}")));
    }
    let code = envelope.error_code.unwrap_or(status);
    let description = envelope.description.unwrap_or_else(|| format!("error {code}"));
    let params = envelope.parameters.unwrap_or_default();
    let retry_after = params.retry_after.or(retry_after).unwrap_or(5);
    Err(match code {
        429 => ErrorKind::RetryAfter(retry_after.min(MAX_RETRY_AFTER_SECS)),
        401 => ErrorKind::Unauthorized,
        // A malformed token: api.telegram.org answers "Not Found" for every method. For the
        // methods of rich messages it is an older server that does not know them (Bot API 10.1).
        404 if description == "Not Found" && !method.starts_with("sendRich") => {
            ErrorKind::Unauthorized
        }
        409 => ErrorKind::Conflict(description),
        504 => ErrorKind::Lost(format!("{description} ({code})")),
        500.. => ErrorKind::Server(format!("{description} ({code})")),
        _ => {
            ErrorKind::Rejected { code, description, migrate_to_chat_id: params.migrate_to_chat_id }
        }
    })
}

/// Replaces the token, and anything shaped like `bot<digits>:<secret>`, with `***`.
pub fn redact_token(text: &str, token: &str) -> String {
    let mut out = if token.is_empty() { text.to_string() } else { text.replace(token, "***") };
    // Belt and braces: any other token-shaped run after "/bot".
    let mut from = 0;
    while let Some(found) = out[from..].find("/bot") {
        let start = from + found + 4;
        from = start;
        let rest = &out[start..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || !rest[digits..].starts_with(':') {
            continue;
        }
        let secret = rest[digits + 1..]
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
            .count();
        out.replace_range(start..start + digits + 1 + secret, "***");
    }
    out
}

/// The host (and port) of an API URL, for messages: the path holds the bot token, and
/// the part before an `@` a user name and password.
pub fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority.rsplit_once('@').map_or(authority, |(_, host)| host)
}
