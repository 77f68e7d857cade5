//! SaluteSpeech, speech to text for voice notes: the OAuth token (its own key and scope,
//! cached like GigaChat's) and synchronous recognition (`POST {url}/speech:recognize`, the
//! raw OGG/Opus bytes of a Telegram voice note, at most 2 MB and one minute).
//!
//! The token and TLS are Sber's, as GigaChat's (`sber`): TLS is verified against the
//! certificates of `gigachat.ca_bundle_file` (the same Russian Trusted Root CA signs both
//! services), else the system trust store.

use std::fmt;

use serde::Deserialize;

use crate::config::{SaluteSpeechConfig, Secret};
use crate::sber::{self, OAuth, TokenError, error_message};

/// The service's limits for synchronous recognition.
pub const MAX_VOICE_SECS: u64 = 60;
pub const MAX_VOICE_BYTES: u64 = 2_000_000;

/// A recognition result is a few sentences; anything near this is not one.
const MAX_BODY_BYTES: u64 = 1 << 20;

/// What went wrong; the bot gives each kind its own sentence.
#[derive(Debug)]
pub enum Error {
    /// OAuth refused the key or scope (or the service a fresh token): check these settings.
    Auth { status: u16, message: String, check: String },
    /// 413: the audio is too large.
    TooLarge,
    /// 429: too many recognitions at once.
    RateLimited,
    /// 5xx.
    Server(u16),
    /// Another 4xx (400: the audio or the request as made).
    Refused { status: u16, message: String },
    /// A phase of the call took too long.
    Timeout(String),
    /// The server's certificate is not trusted.
    Tls(String),
    /// DNS, connection refused or reset…
    Network(String),
    /// A 200 whose body is not the JSON SaluteSpeech sends.
    BadResponse(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Auth { status, message, check } => {
                write!(f, "salutespeech: authorization failed ({status} {message}): check {check}")
            }
            Error::TooLarge => write!(f, "salutespeech: the audio is too large (413)"),
            Error::RateLimited => write!(f, "salutespeech: too many requests (429)"),
            Error::Server(status) => write!(f, "salutespeech: server error ({status})"),
            Error::Refused { status, message } => {
                write!(f, "salutespeech: request refused ({status} {message})")
            }
            Error::Timeout(what) => write!(f, "salutespeech: {what}"),
            Error::Tls(detail) => write!(
                f,
                "salutespeech: the server's TLS certificate is not trusted ({detail}): put the Russian Trusted Root CA (https://www.gosuslugi.ru/crt) into gigachat.ca_bundle_file"
            ),
            Error::Network(detail) => write!(f, "salutespeech: cannot connect: {detail}"),
            Error::BadResponse(detail) => write!(f, "salutespeech: unreadable answer: {detail}"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// A short name of the failure, for the log line and the /stats counters.
    pub fn kind(&self) -> String {
        match self {
            Error::Auth { status, .. } => format!("auth {status}"),
            Error::TooLarge => "too large 413".into(),
            Error::RateLimited => "rate limited 429".into(),
            Error::Server(status) => format!("server {status}"),
            Error::Refused { status, .. } => format!("refused {status}"),
            Error::Timeout(_) => "timeout".into(),
            Error::Tls(_) => "tls".into(),
            Error::Network(_) => "network".into(),
            Error::BadResponse(_) => "bad response".into(),
        }
    }
}

#[derive(Deserialize)]
struct Recognition {
    #[serde(default)]
    result: Vec<String>,
}

/// The SaluteSpeech client: one agent, the key, the cached token.
pub struct SaluteSpeech {
    agent: ureq::Agent,
    oauth: OAuth,
    url: String,
    key_origin: String,
    timeout_secs: u64,
}

impl SaluteSpeech {
    /// The client, or None without a key. `ca_certs` are `gigachat.ca_bundle_file`'s
    /// (DER); `timeout_secs` applies to each phase of a call.
    pub fn new(
        config: &SaluteSpeechConfig,
        ca_certs: &[Vec<u8>],
        timeout_secs: u64,
    ) -> Option<SaluteSpeech> {
        let key = config.credentials.clone()?;
        Some(SaluteSpeech {
            agent: sber::agent(ca_certs, timeout_secs),
            oauth: OAuth::new("salutespeech", &config.auth_url, key, &config.scope),
            url: config.url.clone(),
            key_origin: config.key_origin.clone(),
            timeout_secs,
        })
    }

    /// The access token, from the cache while it has more than a minute to live, else a
    /// new one (Basic key, RqUID, scope).
    pub fn get_token(&mut self) -> Result<Secret, Error> {
        if let Some(token) = self.oauth.cached() {
            return Ok(token);
        }
        self.oauth.fetch(&self.agent, MAX_BODY_BYTES).map_err(|err| match err {
            TokenError::Transport(err) => self.transport_error(err),
            TokenError::Auth(status, message) => {
                Error::Auth { status, message, check: self.key_origin.clone() }
            }
            TokenError::Status(status, message) => self.status_error(status, message),
            TokenError::Bad(detail) => Error::BadResponse(detail),
        })
    }

    /// When the cached token expires (Unix ms), for `check`.
    pub fn token_expires_at_ms(&self) -> Option<u64> {
        self.oauth.expires_at_ms()
    }

    /// The text of a voice note (OGG/Opus bytes as Telegram sends them): the recognized
    /// sentences joined by spaces, empty if nothing was recognized. A 401 with a cached
    /// token gets one new token and one retry.
    pub fn recognize(&mut self, ogg: &[u8]) -> Result<String, Error> {
        let had_token = self.oauth.has_token();
        let token = self.get_token()?;
        match self.post_audio(&token, ogg) {
            Err(Error::Auth { status: 401, .. }) if had_token => {
                log::info!("salutespeech: the access token was refused (401); getting a new one");
                self.oauth.forget();
                let token = self.get_token()?;
                self.post_audio(&token, ogg)
            }
            other => other,
        }
    }

    fn post_audio(&self, token: &Secret, ogg: &[u8]) -> Result<String, Error> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let result = self
            .agent
            .post(&format!("{}/speech:recognize", self.url))
            .query("language", "ru-RU")
            .header("Content-Type", "audio/ogg;codecs=opus")
            .header("Accept", "application/json")
            .header("Authorization", &format!("Bearer {}", token.expose()))
            .header("X-Request-ID", &request_id)
            .send(ogg);
        let (status, body) =
            sber::read(result, MAX_BODY_BYTES).map_err(|err| self.transport_error(err))?;
        if status != 200 {
            let message = error_message(&body);
            log::warn!("salutespeech recognize: HTTP {status} {message} (request {request_id})");
            return Err(match status {
                401 | 403 => Error::Auth { status, message, check: self.key_origin.clone() },
                _ => self.status_error(status, message),
            });
        }
        let parsed: Recognition =
            serde_json::from_str(&body).map_err(|err| Error::BadResponse(err.to_string()))?;
        let sentences: Vec<&str> =
            parsed.result.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).collect();
        Ok(sentences.join(" "))
    }

    fn status_error(&self, status: u16, message: String) -> Error {
        match status {
            413 => Error::TooLarge,
            429 => Error::RateLimited,
            500.. => Error::Server(status),
            _ => Error::Refused { status, message },
        }
    }

    fn transport_error(&self, err: ureq::Error) -> Error {
        let text = err.to_string();
        let secs = self.timeout_secs;
        match err {
            ureq::Error::Timeout(ureq::Timeout::Resolve | ureq::Timeout::Connect) => {
                Error::Timeout(format!(
                    "could not connect within {} s: check the network and salutespeech.auth_url / salutespeech.url",
                    sber::connect_secs(secs)
                ))
            }
            ureq::Error::Timeout(_) => Error::Timeout(format!("no answer within {secs} s")),
            ureq::Error::BodyExceedsLimit(_) => Error::BadResponse("an answer over 1 MiB".into()),
            _ if text.to_lowercase().contains("certificate") => Error::Tls(text),
            _ => Error::Network(text),
        }
    }
}
