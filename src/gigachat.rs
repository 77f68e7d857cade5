//! GigaChat: the OAuth token (cached), chat completions (a stream is read in `sse`), the
//! model list, the CA report; files in `storage`. The calls are made, and their failures
//! worded, by the client both Sber services share (`sber`). The lesson fetched a new token
//! for every message and turned TLS verification off (`verify=False`); here the token is
//! kept until a minute before it expires, and TLS is always verified: against the system
//! trust store, or `ca_bundle_file` (where the Ministry's Russian Trusted Root CA goes).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::{GigaChatConfig, Secret};
use crate::sber::{self, Api, Client, OAuth, Request, Service};

mod sse;
mod storage;

pub use crate::sber::{Error, Failure};
use sse::read_events;
pub use storage::drawn_picture;

/// The longest answer the bot takes (about 250 Telegram messages), streamed or not.
const MAX_ANSWER_BYTES: usize = 1 << 20;
/// The `finish_reason` of an answer the user stopped (ours: GigaChat never says it).
pub const STOPPED: &str = "stopped";
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
        ChatMessage { role: role.into(), content: content.into(), attachments: Vec::new() }
    }
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    /// Of the prompt, what GigaChat had cached for the session: not billed.
    #[serde(default)]
    pub precached_prompt_tokens: u64,
}

impl Usage {
    /// What GigaChat bills: the total without the cached part of the prompt.
    pub fn billed(&self) -> u64 {
        self.total_tokens.saturating_sub(self.precached_prompt_tokens)
    }
}

/// A finished answer. `finish_reason` is "stop", "length" (cut by max_tokens) or
/// "blacklist" (GigaChat refused the topic); the caller decides what the user sees.
#[derive(Debug, Default)]
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
    sber: Client,
    base_url: String,
    pub model: String,
    profanity_check: bool,
    temperature: Option<f64>,
    max_tokens: Option<u32>,
    /// GigaChat may draw: every request says `function_call: auto`.
    pub images: bool,
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
    fn with_timeout(config: &GigaChatConfig, secs: u64, timeout_name: &'static str) -> GigaChat {
        let key = config.credentials.clone().expect("config::load always settles the credentials");
        let sber = Client {
            service: Service::GigaChat,
            agent: sber::agent(&config.ca_certs, secs),
            oauth: OAuth::new(&config.auth_url, key, &config.scope),
            max_body: MAX_STREAM_BYTES as u64,
            timeout_secs: secs,
            timeout_name,
            key_origin: config.key_origin.clone(),
            ca_bundle_file: config.ca_bundle_file.clone(),
        };
        GigaChat {
            sber,
            base_url: config.base_url.clone(),
            model: config.model.clone(),
            profanity_check: config.profanity_check,
            temperature: config.temperature,
            max_tokens: config.max_tokens,
            images: config.images,
        }
    }

    /// The access token, from the cache while it has more than a minute to live, else
    /// a new one from the OAuth endpoint (the lesson's function of the same name).
    pub fn get_gigachat_token(&mut self) -> Result<Secret, Error> {
        self.sber.token()
    }

    /// When the cached token expires (Unix ms), for `check`.
    pub fn token_expires_at_ms(&self) -> Option<u64> {
        self.sber.oauth.expires_at_ms()
    }

    /// Asks for one answer; a 401 on a cached token gets one new token and one retry. A 429
    /// (the personal tier's one request at a time is taken, say by the stream of a bot killed
    /// mid-answer and just restarted) is tried again after 0.5, 1 and 2 s: nothing was paid
    /// for, and every other user would get the same 429 meanwhile. With `on_text` the answer
    /// is streamed to it piece by piece; after a failure the caller still has what came. When
    /// `on_text` returns false (the user pressed Stop) the stream is closed and the answer so
    /// far returned, its `finish_reason` [`STOPPED`]. `session`: the conversation's
    /// `X-Session-ID`, so that GigaChat caches the prompt its requests share.
    pub fn chat(
        &mut self,
        messages: &[ChatMessage],
        session: Option<&str>,
        mut on_text: Option<&mut dyn FnMut(&str) -> bool>,
    ) -> Result<Completion, Error> {
        let mut pauses = [500, 1000, 2000].into_iter().map(Duration::from_millis);
        loop {
            let on_text = on_text.as_mut().map(|f| &mut **f as &mut dyn FnMut(&str) -> bool);
            match self.chat_once(messages, session, on_text) {
                Err(err @ Error { failure: Failure::RateLimited, .. }) => match pauses.next() {
                    Some(pause) => {
                        let ms = pause.as_millis();
                        log::info!("gigachat: busy (429); asking again in {ms} ms");
                        std::thread::sleep(pause);
                    }
                    None => return Err(err),
                },
                other => return other,
            }
        }
    }

    /// One request for an answer, streamed to `on_text` if there is one.
    fn chat_once(
        &mut self,
        messages: &[ChatMessage],
        session: Option<&str>,
        on_text: Option<&mut dyn FnMut(&str) -> bool>,
    ) -> Result<Completion, Error> {
        let stream = on_text.is_some();
        let body =
            serde_json::to_vec(&self.chat_body(messages, stream)).expect("a JSON value serializes");
        let request = Request {
            what: "chat",
            api: Api::Chat(&self.model),
            url: format!("{}/chat/completions", self.base_url),
            accept: if stream { "text/event-stream" } else { "application/json" },
            body: Some(("application/json", &body)),
            session,
        };
        let (mut response, request_id) = self.sber.send(&request)?;
        let Some(on_text) = on_text else {
            return parse_completion(&self.sber.text(&mut response)?, request_id);
        };
        let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok());
        let content_type = content_type.unwrap_or_default().to_string();
        if !content_type.starts_with("text/event-stream") {
            // Not a stream (a buffering proxy?): a whole JSON answer is still an answer.
            log::warn!(
                "gigachat chat: asked for a stream, got {content_type:?} (request {request_id})"
            );
            let completion = parse_completion(&self.sber.text(&mut response)?, request_id)?;
            on_text(&completion.content); // whole already: nothing left to stop
            return Ok(completion);
        }
        let reader = std::io::BufReader::new(response.body_mut().as_reader());
        read_events(reader, on_text, request_id.clone(), self.sber.timeout_secs)
            .inspect_err(|err| log::warn!("gigachat chat stream: {err} (request {request_id})"))
    }

    /// The request's JSON: the model, the messages and the settings that apply.
    fn chat_body(&self, messages: &[ChatMessage], stream: bool) -> serde_json::Value {
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
        body
    }

    /// The models this key may use (`GET /models`), for `check`.
    pub fn models(&mut self) -> Result<Vec<Model>, Error> {
        let request = Request {
            what: "models",
            api: Api::Chat(&self.model),
            url: format!("{}/models", self.base_url),
            accept: "application/json",
            body: None,
            session: None,
        };
        let text = self.sber.call(&request)?;
        let list: ModelList =
            serde_json::from_str(&text).map_err(|err| bad_response(err.to_string()))?;
        Ok(list.data)
    }

    /// What is left of the account's prepaid packages (`GET /balance`), tokens per package;
    /// None when the account pays as it goes (GigaChat answers 403 "Permission denied" then).
    pub fn balance(&mut self) -> Result<Option<Vec<(String, i64)>>, Error> {
        let (what, url) = ("balance", format!("{}/balance", self.base_url));
        let api = Api::Chat(&self.model);
        let request =
            Request { what, api, url, accept: "application/json", body: None, session: None };
        let text = match self.sber.call(&request) {
            Err(Error { failure: Failure::Auth { status: 403, .. }, .. }) => return Ok(None),
            other => other?,
        };
        let parsed: BalanceList =
            serde_json::from_str(&text).map_err(|err| bad_response(format!("balance: {err}")))?;
        Ok(Some(parsed.balance.into_iter().map(|p| (p.usage, p.value)).collect()))
    }

    /// The embeddings of `inputs` by embedder `model`, in order, and the tokens they cost.
    /// The vector length is the service's (not documented): read from the answer.
    pub fn embed(&mut self, model: &str, inputs: &[String]) -> Result<(Vec<Vec<f32>>, u64), Error> {
        let body = json!({"model": model, "input": inputs}).to_string();
        let request = Request {
            what: "embeddings",
            api: Api::Embeddings,
            url: format!("{}/embeddings", self.base_url),
            accept: "application/json",
            body: Some(("application/json", body.as_bytes())),
            session: None,
        };
        let text = self.sber.call(&request)?;
        let mut list: EmbeddingList = serde_json::from_str(&text)
            .map_err(|err| bad_response(format!("embeddings: {err}")))?;
        list.data.sort_by_key(|e| e.index);
        let in_order = list.data.iter().enumerate().all(|(i, e)| e.index == i);
        if list.data.len() != inputs.len() || !in_order {
            let got = list.data.len();
            return Err(bad_response(format!("{got} embeddings for {} inputs", inputs.len())));
        }
        let tokens = list.data.iter().map(|e| e.usage.prompt_tokens).sum();
        Ok((list.data.into_iter().map(|e| e.embedding).collect(), tokens))
    }
}

#[derive(Deserialize)]
struct EmbeddingList {
    data: Vec<Embedding>,
}

#[derive(Deserialize)]
struct Embedding {
    embedding: Vec<f32>,
    index: usize,
    #[serde(default)]
    usage: EmbeddingUsage,
}

#[derive(Deserialize, Default)]
struct EmbeddingUsage {
    prompt_tokens: u64,
}

#[derive(Deserialize)]
struct BalanceList {
    balance: Vec<Package>,
}

/// A prepaid package: the model (or "embeddings") and the tokens left.
#[derive(Deserialize)]
struct Package {
    usage: String,
    value: i64,
}

/// GigaChat's error, for what the client shared with SaluteSpeech cannot see.
fn error(failure: Failure) -> Error {
    Error { service: Service::GigaChat, failure }
}

/// A 200 whose body is not what GigaChat sends.
fn bad_response(detail: String) -> Error {
    error(Failure::BadResponse(detail))
}

/// A whole (non-streamed) answer.
fn parse_completion(text: &str, request_id: String) -> Result<Completion, Error> {
    let parsed: ChatResponse = serde_json::from_str(text).map_err(|err| {
        log::warn!("gigachat chat: unreadable JSON ({err}) (request {request_id})");
        bad_response(err.to_string())
    })?;
    let Some(choice) = parsed.choices.into_iter().next() else {
        return Err(bad_response("no choices".into()));
    };
    if choice.message.content.len() > MAX_ANSWER_BYTES {
        return Err(bad_response(format!("an answer longer than {} MiB", MAX_ANSWER_BYTES >> 20)));
    }
    Ok(Completion {
        content: choice.message.content,
        finish_reason: choice.finish_reason.unwrap_or_else(|| "stop".into()),
        usage: parsed.usage,
        request_id,
    })
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
    let is_russian_trusted_root = sha256 == RUSSIAN_TRUSTED_ROOT_SHA256;
    Some(CaReport { subject, sha256, is_russian_trusted_root })
}
