//! SaluteSpeech, speech to text for voice notes: the OAuth token (its own key and scope,
//! cached like GigaChat's) and synchronous recognition (`POST {url}/speech:recognize`, the
//! raw OGG/Opus bytes of a Telegram voice note, at most 2 MB and one minute). The token and
//! TLS are Sber's, as GigaChat's (`sber`): TLS is verified against the certificates of
//! `gigachat.ca_bundle_file` (one Russian Trusted Root CA signs both), else the system's.

use serde::Deserialize;

use crate::config::{SaluteSpeechConfig, Secret};
use crate::sber::{self, Api, Client, OAuth, Request, Service};

pub use crate::sber::{Error, Failure};

/// A recognition result is a few sentences; anything near this is not one.
const MAX_BODY_BYTES: u64 = 1 << 20;

#[derive(Deserialize)]
struct Recognition {
    #[serde(default)]
    result: Vec<String>,
}

/// The SaluteSpeech client: Sber's client with its own key, and the recognition URL.
pub struct SaluteSpeech {
    sber: Client,
    url: String,
}

impl SaluteSpeech {
    /// The client, or None without a key. `ca_certs` are `gigachat.ca_bundle_file`'s
    /// (DER); `timeout_secs` (`gigachat.timeout_secs`) applies to each phase of a call.
    pub fn new(
        config: &SaluteSpeechConfig,
        ca_certs: &[Vec<u8>],
        timeout_secs: u64,
    ) -> Option<SaluteSpeech> {
        let key = config.credentials.clone()?;
        let sber = Client {
            service: Service::SaluteSpeech,
            agent: sber::agent(ca_certs, timeout_secs),
            oauth: OAuth::new(&config.auth_url, key, &config.scope),
            max_body: MAX_BODY_BYTES,
            timeout_secs,
            // Its texts name neither the limit's setting nor the CA file.
            timeout_name: "gigachat.timeout_secs",
            key_origin: config.key_origin.clone(),
            ca_bundle_file: None,
        };
        Some(SaluteSpeech { sber, url: config.url.clone() })
    }

    /// The access token, cached while it has over a minute to live (Basic key, RqUID, scope).
    pub fn get_token(&mut self) -> Result<Secret, Error> {
        self.sber.token()
    }

    /// When the cached token expires (Unix ms), for `check`.
    pub fn token_expires_at_ms(&self) -> Option<u64> {
        self.sber.oauth.expires_at_ms()
    }

    /// A voice note's text (OGG/Opus bytes as Telegram sends them): the recognized sentences
    /// joined by spaces, empty if none. A 401 on a cached token gets one new token and one retry.
    pub fn recognize(&mut self, ogg: &[u8]) -> Result<String, Error> {
        let body = self.sber.call(&Request {
            what: "recognize",
            api: Api::Speech,
            url: format!("{}/speech:recognize?language=ru-RU", self.url),
            accept: "application/json",
            body: Some(("audio/ogg;codecs=opus", ogg)),
            session: None,
        })?;
        let parsed: Recognition = serde_json::from_str(&body)
            .map_err(|err| self.sber.error(Failure::BadResponse(err.to_string())))?;
        let sentences: Vec<&str> =
            parsed.result.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).collect();
        Ok(sentences.join(" "))
    }
}
