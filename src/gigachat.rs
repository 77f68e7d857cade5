//! GigaChat: the OAuth token (cached), chat completions (a stream is read in `sse`), the
//! model list, TLS roots, the CA report; what can go wrong is in `error`.
//!
//! The lesson fetched a new token for every message and turned TLS verification off
//! (`verify=False`). Here the token is kept until a minute before it expires, and TLS is
//! always verified: against the system trust store, or against `ca_bundle_file` (where the
//! Russian Trusted Root CA of the Ministry of Digital Development goes).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::clock::unix_now_ms;
use crate::config::{GigaChatConfig, Secret};
use crate::sber::{self, OAuth, TokenError, error_message};

mod error;
mod sse;
mod storage;

pub use error::Error;
use error::{is_certificate_error, timeout_text};
use sse::read_events;
pub use storage::{MAX_IMAGE_BYTES, MAX_TEXT_FILE_BYTES, drawn_picture, sees_images};

/// The longest answer the bot takes (about 250 Telegram messages), streamed or not.
const MAX_ANSWER_BYTES: usize = 1 << 20;
/// One event may carry the whole answer, JSON-escaped.
const MAX_EVENT_BYTES: usize = 2 * MAX_ANSWER_BYTES;
/// The whole event stream: the answer's events with their JSON around the text.
const MAX_STREAM_BYTES: usize = 8 * MAX_ANSWER_BYTES;

/// One message of a conversation, as the API wants it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
    /// Ids of files uploaded with [`GigaChat::upload_file`] that this message asks about.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<String>,
}

impl ChatMessage {
    /// A message with this role ("system", "user" or "assistant").
    pub fn new(role: &str, content: &str) -> ChatMessage {
        ChatMessage {
            role: role.to_string(),
            content: content.to_string(),
            attachments: Vec::new(),
        }
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub total_tokens: u64,
}

/// A finished answer. `finish_reason` is "stop", "length" (cut by max_tokens) or
/// "blacklist" (GigaChat refused the topic); the caller decides what the user sees.
#[derive(Debug)]
pub struct Completion {
    pub content: String,
    pub finish_reason: String,
    pub usage: Usage,
    pub request_id: String,
}

#[derive(Deserialize)]
struct ChatResponse {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Usage,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct ChoiceMessage {
    #[serde(default)]
    content: String,
}

#[derive(Deserialize)]
struct ModelList {
    data: Vec<Model>,
}

#[derive(Deserialize)]
pub struct Model {
    pub id: String,
    #[serde(rename = "type", default)]
    pub kind: String,
}

pub struct GigaChat {
    agent: ureq::Agent,
    oauth: OAuth,
    base_url: String,
    pub model: String,
    profanity_check: bool,
    temperature: Option<f64>,
    max_tokens: Option<u32>,
    /// GigaChat may draw: every request says `function_call: auto`.
    pub images: bool,
    timeout_secs: u64,
    timeout_name: &'static str,
    ca_bundle_file: Option<PathBuf>,
    key_origin: String,
}

impl GigaChat {
    /// The client: one agent (kept-alive connections) trusting the configured roots.
    pub fn new(config: &GigaChatConfig) -> GigaChat {
        GigaChat::with_timeout(config, config.timeout_secs, "gigachat.timeout_secs")
    }

    /// For `gigabot check`: at most 10 s per phase, so a hanging server is reported soon.
    pub fn for_check(config: &GigaChatConfig) -> GigaChat {
        let secs = config.timeout_secs.min(10);
        GigaChat::with_timeout(config, secs, "the limit of `gigabot check`")
    }

    /// `timeout_name` is what a timeout message names as the limit that applied.
    fn with_timeout(
        config: &GigaChatConfig,
        timeout_secs: u64,
        timeout_name: &'static str,
    ) -> GigaChat {
        let key = config.credentials.clone().expect("config::load always settles the credentials");
        GigaChat {
            agent: sber::agent(&config.ca_certs, timeout_secs),
            oauth: OAuth::new("gigachat", &config.auth_url, key, &config.scope),
            base_url: config.base_url.clone(),
            model: config.model.clone(),
            profanity_check: config.profanity_check,
            temperature: config.temperature,
            max_tokens: config.max_tokens,
            images: config.images,
            timeout_secs,
            timeout_name,
            ca_bundle_file: config.ca_bundle_file.clone(),
            key_origin: config.key_origin.clone(),
        }
    }

    /// The access token, from the cache while it has more than a minute to live, else
    /// a new one from the OAuth endpoint (the lesson's function of the same name).
    pub fn get_gigachat_token(&mut self) -> Result<Secret, Error> {
        if let Some(token) = self.oauth.cached() {
            return Ok(token);
        }
        let token = self
            .oauth
            .fetch(&self.agent, MAX_STREAM_BYTES as u64)
            .map_err(|err| self.token_error(err))?;
        let valid_ms = self.oauth.expires_at_ms().unwrap_or_default().saturating_sub(unix_now_ms());
        log::debug!("gigachat oauth: new token, valid for {} s", valid_ms / 1000);
        Ok(token)
    }

    /// OAuth's statuses mean less than the API's: no 402, 404 or 413 of their own.
    fn token_error(&self, err: TokenError) -> Error {
        match err {
            TokenError::Transport(err) => self.transport_error(err),
            TokenError::Auth(status, message) => {
                Error::Auth { status, message, check: self.key_origin.clone() }
            }
            TokenError::Status(429, _) => Error::RateLimited,
            TokenError::Status(status @ 500.., _) => Error::Server(status),
            TokenError::Status(status, message) => Error::Refused { status, message },
            TokenError::Bad(detail) => Error::BadResponse(detail),
        }
    }

    /// When the cached token expires (Unix ms), for `check`.
    pub fn token_expires_at_ms(&self) -> Option<u64> {
        self.oauth.expires_at_ms()
    }

    /// Asks for one answer. A 401 with a cached token gets one new token and one retry.
    /// A 429 (the personal tier's one request at a time is taken, say by the stream of a
    /// bot that was killed mid-answer and just restarted) is tried again after 0.5, 1 and
    /// 2 s: GigaChat refused the request, so nothing was paid for, and every other user
    /// would get the same 429 meanwhile. With `on_text` the answer is streamed: `on_text`
    /// gets each piece as it arrives, and after a failure the caller still has the pieces
    /// that came.
    pub fn chat(
        &mut self,
        messages: &[ChatMessage],
        mut on_text: Option<&mut dyn FnMut(&str)>,
    ) -> Result<Completion, Error> {
        let mut pauses = [500, 1000, 2000].into_iter().map(Duration::from_millis);
        loop {
            let on_text = on_text.as_mut().map(|f| &mut **f as &mut dyn FnMut(&str));
            match self.chat_once(messages, on_text) {
                Err(Error::RateLimited) => match pauses.next() {
                    Some(pause) => {
                        log::info!(
                            "gigachat: busy (429); asking again in {} ms",
                            pause.as_millis()
                        );
                        std::thread::sleep(pause);
                    }
                    None => return Err(Error::RateLimited),
                },
                other => return other,
            }
        }
    }

    fn chat_once(
        &mut self,
        messages: &[ChatMessage],
        mut on_text: Option<&mut dyn FnMut(&str)>,
    ) -> Result<Completion, Error> {
        let had_token = self.oauth.has_token();
        let token = self.get_gigachat_token()?;
        let first_try = on_text.as_mut().map(|f| &mut **f as &mut dyn FnMut(&str));
        match self.post_chat(&token, messages, first_try) {
            Err(Error::Auth { status: 401, .. }) if had_token => {
                log::info!("gigachat: the access token was refused (401); getting a new one");
                self.oauth.forget();
                let token = self.get_gigachat_token()?;
                self.post_chat(&token, messages, on_text)
            }
            other => other,
        }
    }

    fn post_chat(
        &self,
        token: &Secret,
        messages: &[ChatMessage],
        on_text: Option<&mut dyn FnMut(&str)>,
    ) -> Result<Completion, Error> {
        let stream = on_text.is_some();
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "profanity_check": self.profanity_check,
        });
        if let Some(t) = self.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(n) = self.max_tokens {
            body["max_tokens"] = json!(n);
        }
        if stream {
            body["stream"] = json!(true);
        }
        if self.images {
            body["function_call"] = json!("auto");
        }
        let request_id = uuid::Uuid::new_v4().to_string();
        let accept = if stream { "text/event-stream" } else { "application/json" };
        let result = self
            .agent
            .post(&format!("{}/chat/completions", self.base_url))
            .header("Content-Type", "application/json")
            .header("Accept", accept)
            .header("Authorization", &format!("Bearer {}", token.expose()))
            .header("X-Request-ID", &request_id)
            .send(serde_json::to_vec(&body).expect("a JSON value serializes").as_slice());
        let mut response = result.map_err(|err| self.transport_error(err))?;
        let status = response.status().as_u16();
        let request_id = header(&response, "x-request-id").unwrap_or(request_id);
        if status != 200 {
            let text = self.body_text(&mut response)?;
            let message = error_message(&text);
            log::warn!("gigachat chat: HTTP {status} {message} (request {request_id})");
            return Err(self.status_error(status, message));
        }
        if let Some(on_text) = on_text {
            let content_type = header(&response, "content-type").unwrap_or_default();
            if !content_type.starts_with("text/event-stream") {
                // Not a stream (a buffering proxy?): a whole JSON answer is still an answer.
                log::warn!(
                    "gigachat chat: asked for a stream, got {content_type:?} (request {request_id})"
                );
                let text = self.body_text(&mut response)?;
                let completion = parse_completion(&text, request_id)?;
                on_text(&completion.content);
                return Ok(completion);
            }
            let reader = std::io::BufReader::new(response.body_mut().as_reader());
            return read_events(reader, on_text, request_id.clone(), self.timeout_secs)
                .inspect_err(|err| {
                    log::warn!("gigachat chat stream: {err} (request {request_id})")
                });
        }
        let text = self.body_text(&mut response)?;
        parse_completion(&text, request_id)
    }

    fn status_error(&self, status: u16, message: String) -> Error {
        match status {
            401 | 403 => Error::Auth { status, message, check: self.key_origin.clone() },
            402 => Error::PaymentRequired,
            404 => Error::UnknownModel(self.model.clone()),
            413 => Error::TooLarge(message),
            429 => Error::RateLimited,
            500.. => Error::Server(status),
            _ => Error::Refused { status, message },
        }
    }

    /// The models this key may use (`GET /models`), for `check`.
    pub fn models(&mut self) -> Result<Vec<Model>, Error> {
        let token = self.get_gigachat_token()?;
        let result = self
            .agent
            .get(&format!("{}/models", self.base_url))
            .header("Accept", "application/json")
            .header("Authorization", &format!("Bearer {}", token.expose()))
            .call();
        let (status, text) = self.read(result)?;
        if status != 200 {
            return Err(self.status_error(status, error_message(&text)));
        }
        let list: ModelList =
            serde_json::from_str(&text).map_err(|err| Error::BadResponse(err.to_string()))?;
        Ok(list.data)
    }

    /// Status and body of a response, or the transport error turned into something a
    /// person can act on.
    fn read(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, String), Error> {
        sber::read(result, MAX_STREAM_BYTES as u64).map_err(|err| self.transport_error(err))
    }

    fn body_text(&self, response: &mut ureq::http::Response<ureq::Body>) -> Result<String, Error> {
        response
            .body_mut()
            .with_config()
            .limit(MAX_STREAM_BYTES as u64)
            .read_to_string()
            .map_err(|err| self.transport_error(err))
    }

    fn transport_error(&self, err: ureq::Error) -> Error {
        let text = err.to_string();
        match err {
            ureq::Error::Timeout(phase) => {
                Error::Timeout(timeout_text(phase, self.timeout_secs, self.timeout_name))
            }
            ureq::Error::BodyExceedsLimit(limit) => {
                Error::BadResponse(format!("an answer longer than {} MiB", limit >> 20))
            }
            _ if is_certificate_error(&text) => Error::Tls(self.tls_advice(&text)),
            _ => Error::Network(text),
        }
    }

    fn tls_advice(&self, detail: &str) -> String {
        let lower = detail.to_lowercase();
        if lower.contains("hostname mismatch") || lower.contains("ip address mismatch") {
            // The certificate is trusted, but names another host: a wrong URL or a proxy.
            return format!(
                "the server's TLS certificate is for another host name ({detail}): check gigachat.auth_url and gigachat.base_url, the hosts must be the ones GigaChat's certificate names"
            );
        }
        if lower.contains("expired") || lower.contains("not yet valid") {
            return format!(
                "the server's TLS certificate is out of its validity dates ({detail}): check this machine's clock (`date`)"
            );
        }
        match &self.ca_bundle_file {
            None => format!(
                "the server's TLS certificate is not trusted ({detail}): download the Russian Trusted Root CA from https://www.gosuslugi.ru/crt and set gigachat.ca_bundle_file (GIGACHAT_CA_BUNDLE_FILE) to it"
            ),
            Some(path) => format!(
                "the server's TLS certificate is not signed by a certificate in gigachat.ca_bundle_file {} ({detail}): download the Russian Trusted Root CA from https://www.gosuslugi.ru/crt and point gigachat.ca_bundle_file at it",
                path.display()
            ),
        }
    }
}

/// A whole (non-streamed) answer.
fn parse_completion(text: &str, request_id: String) -> Result<Completion, Error> {
    let parsed: ChatResponse = serde_json::from_str(text).map_err(|err| {
        log::warn!("gigachat chat: unreadable JSON ({err}) (request {request_id})");
        Error::BadResponse(err.to_string())
    })?;
    let Some(choice) = parsed.choices.into_iter().next() else {
        return Err(Error::BadResponse("no choices".into()));
    };
    if choice.message.content.len() > MAX_ANSWER_BYTES {
        return Err(Error::BadResponse(format!(
            "an answer longer than {} MiB",
            MAX_ANSWER_BYTES >> 20
        )));
    }
    Ok(Completion {
        content: choice.message.content,
        finish_reason: choice.finish_reason.unwrap_or_else(|| "stop".into()),
        usage: parsed.usage,
        request_id,
    })
}

fn header(response: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// SHA-256 of the Russian Trusted Root CA (НУЦ Минцифры), as `check` prints fingerprints.
pub const RUSSIAN_TRUSTED_ROOT_SHA256: &str = "D2:6D:2D:02:31:B7:C3:9F:92:CC:73:85:12:BA:54:10:35:19:E4:40:5D:68:B5:BD:70:3E:97:88:CA:8E:CF:31";

/// What `check` says about a CA certificate.
pub struct CaReport {
    pub subject: String,
    pub sha256: String,
    pub is_russian_trusted_root: bool,
}

/// Subject and SHA-256 fingerprint of a DER certificate (already validated at config load).
pub fn describe_ca(der: &[u8]) -> Option<CaReport> {
    let cert = openssl::x509::X509::from_der(der).ok()?;
    let subject = cert
        .subject_name()
        .entries()
        .map(|entry| {
            let key = entry.object().nid().short_name().unwrap_or("?");
            let value = entry.data().to_string().unwrap_or_default();
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ");
    let digest = cert.digest(openssl::hash::MessageDigest::sha256()).ok()?;
    let sha256 = digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
    Some(CaReport {
        is_russian_trusted_root: sha256 == RUSSIAN_TRUSTED_ROOT_SHA256,
        subject,
        sha256,
    })
}
