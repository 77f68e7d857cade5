//! SaluteSpeech, speech to text for voice notes: the OAuth token (its own key and scope,
//! cached like GigaChat's) and synchronous recognition (`POST {url}/speech:recognize`, the
//! raw OGG/Opus bytes of a Telegram voice note, at most 2 MB and one minute).
//!
//! TLS is verified like GigaChat's: against the certificates of `gigachat.ca_bundle_file`
//! (the same Russian Trusted Root CA signs both services), else the system trust store.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::clock::unix_now_ms;
use crate::config::{SaluteSpeechConfig, Secret};

/// The service's limits for synchronous recognition.
pub const MAX_VOICE_SECS: u64 = 60;
pub const MAX_VOICE_BYTES: u64 = 2_000_000;

/// Refresh this long before `expires_at` (the token lives 30 minutes).
const TOKEN_MARGIN_MS: u64 = 60_000;
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
struct TokenResponse {
    access_token: Secret,
    expires_at: u64,
}

#[derive(Deserialize)]
struct Recognition {
    #[serde(default)]
    result: Vec<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
}

/// The SaluteSpeech client: one agent, the key, the cached token.
pub struct SaluteSpeech {
    agent: ureq::Agent,
    auth_url: String,
    url: String,
    key: Secret,
    scope: String,
    key_origin: String,
    timeout_secs: u64,
    /// The access token and when it expires (Unix ms).
    token: Option<(Secret, u64)>,
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
        let roots = if ca_certs.is_empty() {
            ureq::tls::RootCerts::PlatformVerifier
        } else {
            let certs: Vec<_> = ca_certs
                .iter()
                .map(|der| ureq::tls::Certificate::from_der(der).to_owned())
                .collect();
            ureq::tls::RootCerts::new_with_certs(&certs)
        };
        let timeout = Some(Duration::from_secs(timeout_secs));
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(timeout_secs.min(15))))
            .timeout_send_request(timeout)
            .timeout_send_body(timeout)
            .timeout_recv_response(timeout)
            .timeout_recv_body(timeout)
            .max_response_header_size(16 * 1024)
            .input_buffer_size(32 * 1024)
            .output_buffer_size(32 * 1024)
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .provider(ureq::tls::TlsProvider::NativeTls)
                    .root_certs(roots)
                    .build(),
            )
            .user_agent(concat!("gigabot/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Some(SaluteSpeech {
            agent,
            auth_url: config.auth_url.clone(),
            url: config.url.clone(),
            key,
            scope: config.scope.clone(),
            key_origin: config.key_origin.clone(),
            timeout_secs,
            token: None,
        })
    }

    /// The access token, from the cache while it has more than a minute to live, else a
    /// new one (Basic key, RqUID, scope).
    pub fn get_token(&mut self) -> Result<Secret, Error> {
        if let Some((token, expires_at_ms)) = &self.token
            && *expires_at_ms > unix_now_ms() + TOKEN_MARGIN_MS
        {
            return Ok(token.clone());
        }
        let rq_uid = uuid::Uuid::new_v4().to_string();
        let result = self
            .agent
            .post(&self.auth_url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .header("RqUID", &rq_uid)
            .header("Authorization", &format!("Basic {}", self.key.expose()))
            .send(format!("scope={}", self.scope).as_bytes());
        let (status, body) = self.read(result)?;
        if status != 200 {
            let message = error_message(&body);
            log::warn!("salutespeech oauth: HTTP {status} {message} (RqUID {rq_uid})");
            return Err(match status {
                400 | 401 | 403 => Error::Auth { status, message, check: self.key_origin.clone() },
                _ => self.status_error(status, message),
            });
        }
        let parsed: TokenResponse = serde_json::from_str(&body)
            .map_err(|err| Error::BadResponse(format!("oauth: {err}")))?;
        let token = parsed.access_token.expose();
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::BadResponse("oauth: the access token is not a token".into()));
        }
        let expires_at_ms = match parsed.expires_at < 100_000_000_000 {
            true => parsed.expires_at * 1000,
            false => parsed.expires_at,
        };
        self.token = Some((parsed.access_token.clone(), expires_at_ms));
        Ok(parsed.access_token)
    }

    /// When the cached token expires (Unix ms), for `check`.
    pub fn token_expires_at_ms(&self) -> Option<u64> {
        self.token.as_ref().map(|(_, at)| *at)
    }

    /// The text of a voice note (OGG/Opus bytes as Telegram sends them): the recognized
    /// sentences joined by spaces, empty if nothing was recognized. A 401 with a cached
    /// token gets one new token and one retry.
    pub fn recognize(&mut self, ogg: &[u8]) -> Result<String, Error> {
        let had_token = self.token.is_some();
        let token = self.get_token()?;
        match self.post_audio(&token, ogg) {
            Err(Error::Auth { status: 401, .. }) if had_token => {
                log::info!("salutespeech: the access token was refused (401); getting a new one");
                self.token = None;
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
        let (status, body) = self.read(result)?;
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

    /// Status and body of a response, or the transport error in words (never the URL's
    /// secrets: these URLs hold none, and the key is only in a header).
    fn read(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, String), Error> {
        let mut response = result.map_err(|err| self.transport_error(err))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_string()
            .map_err(|err| self.transport_error(err))?;
        Ok((status, body))
    }

    fn transport_error(&self, err: ureq::Error) -> Error {
        let text = err.to_string();
        let secs = self.timeout_secs;
        match err {
            ureq::Error::Timeout(ureq::Timeout::Resolve | ureq::Timeout::Connect) => {
                Error::Timeout(format!(
                    "could not connect within {} s: check the network and salutespeech.auth_url / salutespeech.url",
                    secs.min(15)
                ))
            }
            ureq::Error::Timeout(_) => Error::Timeout(format!("no answer within {secs} s")),
            ureq::Error::BodyExceedsLimit(_) => Error::BadResponse("an answer over 1 MiB".into()),
            _ if text.to_lowercase().contains("certificate") => Error::Tls(text),
            _ => Error::Network(text),
        }
    }
}

/// The `message` of an error body, or its length when it has none.
fn error_message(body: &str) -> String {
    let message = serde_json::from_str::<ErrorBody>(body).map(|b| b.message).unwrap_or_default();
    match message.is_empty() {
        true => format!("({} bytes, no message)", body.len()),
        false => message,
    }
}
