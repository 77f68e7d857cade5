//! What GigaChat and SaluteSpeech share as Sber's services: the agent, whose TLS is always
//! verified (against `gigachat.ca_bundle_file`, since the Russian Trusted Root CA signs
//! both, else the system trust store); the OAuth token for a key and a scope, cached; the
//! message of an error body. Each service words its own errors.

use serde::Deserialize;

use crate::clock::unix_now_ms;
use crate::config::Secret;
use crate::net::{self, Limits};

/// Refresh this long before `expires_at` (a token lives 30 minutes), as the official SDK does.
const TOKEN_MARGIN_MS: u64 = 60_000;

/// The agent of one service: kept-alive connections, `timeout_secs` per phase, and TLS
/// verified against `ca_certs` (DER, from `gigachat.ca_bundle_file`) or, if none, the system.
pub fn agent(ca_certs: &[Vec<u8>], timeout_secs: u64) -> ureq::Agent {
    let roots = if ca_certs.is_empty() {
        // The system trust store, where the lesson tells students to install the CA.
        ureq::tls::RootCerts::PlatformVerifier
    } else {
        let certs: Vec<_> =
            ca_certs.iter().map(|der| ureq::tls::Certificate::from_der(der).to_owned()).collect();
        ureq::tls::RootCerts::new_with_certs(&certs)
    };
    // The answer must start within timeout_secs, and all of it (a stream included) arrive
    // within timeout_secs more.
    let t = timeout_secs;
    net::agent(Limits { connect: connect_secs(t), send: t, answer: t, body: t }, roots)
}

/// How long connecting may take: 15 s, or less if the whole timeout is shorter.
pub fn connect_secs(timeout_secs: u64) -> u64 {
    timeout_secs.min(15)
}

/// Status and body of a response, the body cut off (an error) past `max` bytes.
pub fn read(
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    max: u64,
) -> Result<(u16, String), ureq::Error> {
    let mut response = result?;
    let body = response.body_mut().with_config().limit(max).read_to_string()?;
    Ok((response.status().as_u16(), body))
}

/// Error bodies: `{"status", "message"}` from the APIs, `{"code", "message"}` from OAuth.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
}

/// The `message` of an error body, or its length when it has none.
pub fn error_message(body: &str) -> String {
    let message = serde_json::from_str::<ErrorBody>(body).map(|b| b.message).unwrap_or_default();
    if message.is_empty() { format!("({} bytes, no message)", body.len()) } else { message }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Secret,
    expires_at: u64,
}

/// Why OAuth gave no token; the service turns it into its own `Error`.
pub enum TokenError {
    /// The call failed below HTTP (a timeout, TLS, the network, a body past the limit).
    Transport(ureq::Error),
    /// 400, 401 or 403: the key or the scope was refused (the message already logged).
    Auth(u16, String),
    /// Another status than 200 (the message already logged).
    Status(u16, String),
    /// A 200 without a token that can be used, in words.
    Bad(String),
}

/// One service's OAuth: its endpoint, key and scope, and the access token while it lives.
pub struct OAuth {
    /// "gigachat" or "salutespeech", as the log names the service.
    service: &'static str,
    auth_url: String,
    key: Secret,
    scope: String,
    /// The access token and when it expires (Unix ms).
    token: Option<(Secret, u64)>,
}

impl OAuth {
    /// No token yet: the first call fetches one.
    pub fn new(service: &'static str, auth_url: &str, key: Secret, scope: &str) -> OAuth {
        OAuth { service, auth_url: auth_url.into(), key, scope: scope.into(), token: None }
    }

    /// The cached token while it has more than a minute to live.
    pub fn cached(&self) -> Option<Secret> {
        match &self.token {
            Some((token, expires_at_ms)) if *expires_at_ms > unix_now_ms() + TOKEN_MARGIN_MS => {
                Some(token.clone())
            }
            _ => None,
        }
    }

    /// A new token from the OAuth endpoint, cached: the lesson's request (RqUID, the key
    /// as Basic, the scope). `max_body` is the service's limit for any answer.
    pub fn fetch(&mut self, agent: &ureq::Agent, max_body: u64) -> Result<Secret, TokenError> {
        let rq_uid = uuid::Uuid::new_v4().to_string();
        let result = agent
            .post(&self.auth_url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .header("RqUID", &rq_uid)
            .header("Authorization", &format!("Basic {}", self.key.expose()))
            .send(format!("scope={}", self.scope).as_bytes());
        let (status, body) = read(result, max_body).map_err(TokenError::Transport)?;
        if status != 200 {
            let message = error_message(&body);
            log::warn!("{} oauth: HTTP {status} {message} (RqUID {rq_uid})", self.service);
            return Err(match status {
                400 | 401 | 403 => TokenError::Auth(status, message),
                _ => TokenError::Status(status, message),
            });
        }
        let parsed: TokenResponse =
            serde_json::from_str(&body).map_err(|err| TokenError::Bad(format!("oauth: {err}")))?;
        // It goes into a header: a token that cannot must not be cached and reused.
        let token = parsed.access_token.expose();
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::Bad("oauth: the access token is not a token".into()));
        }
        // The docs once showed seconds here; the service sends milliseconds.
        let expires_at_ms = if parsed.expires_at < 100_000_000_000 {
            parsed.expires_at * 1000
        } else {
            parsed.expires_at
        };
        self.token = Some((parsed.access_token.clone(), expires_at_ms));
        Ok(parsed.access_token)
    }

    /// Is a token cached, live or not? A 401 then means it was refused: worth one retry.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Drops the cached token, which the service refused.
    pub fn forget(&mut self) {
        self.token = None;
    }

    /// When the cached token expires (Unix ms), for `check`.
    pub fn expires_at_ms(&self) -> Option<u64> {
        self.token.as_ref().map(|(_, at)| *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_come_from_both_body_shapes() {
        assert_eq!(
            error_message(r#"{"status":429,"message":"Too many requests"}"#),
            "Too many requests"
        );
        assert_eq!(
            error_message(r#"{"code":6,"message":"credentials doesn't match db data"}"#),
            "credentials doesn't match db data"
        );
        assert_eq!(error_message("<html>"), "(6 bytes, no message)");
    }
}
