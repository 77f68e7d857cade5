//! A strict fake of Sber's GigaChat API over real TLS, for driving the real bot in tests.
//!
//! Real TLS because certificate trouble is the most common GigaChat failure in practice (the
//! Russian Trusted Root CA): the fake makes a throwaway CA at start, serves a certificate it
//! signed for 127.0.0.1, and writes the CA as `ca.pem` and `ca.der` (plus an unrelated
//! `other-ca.pem`) into a temp dir that goes away on drop, so tests can exercise
//! `ca_bundle_file` both ways. Nothing is ever committed.
//!
//! Strict like the reference (shared/reference/gigachat-api.md §1–§4): OAuth checks RqUID,
//! the Basic key and the scope with the documented error bodies; chat completions need a live
//! token, a known chat model and valid messages, allow one request at a time (the personal
//! tier's single stream), and answer compact JSON or SSE shaped like the recorded traffic.
//!
//! By default it answers `default_answer`, which names the style (system prompt), the last
//! user message and the number of messages, so tests can check what the bot sent and that it
//! remembers the conversation. Tests can queue `Reply`s or install a responder. For soak
//! tests it also injects seeded random faults (`set_random_faults`: 5xx and dropped
//! connections on OAuth and chat requests, tokens that expire every n requests) and can crash
//! the bot in a chosen chat request (`set_kill_hook`).
//!
//! Money and caching as the reference describes them (§4): a request with `X-Session-ID`
//! that repeats the start of its session's previous request within `set_cache_ttl` reports
//! that prefix as `precached_prompt_tokens`; `GET /balance` answers the packages of
//! `set_balance` or, by default, the 403 of a pay-as-you-go account; a package runs down by
//! the billed tokens of each answer, and a model whose package is empty answers 402.
//!
//! `POST /embeddings` (fake_embeddings.rs) is as strict: a live token, an "embedder" model,
//! at most 90 inputs of bounded length (413 beyond), and deterministic vectors in which a
//! question lands near the passage that answers it, so tests can check retrieval.

#![allow(dead_code)] // a toolbox: not every test uses every part

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslAcceptor, SslMethod};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509NameBuilder};
use serde_json::{Value, json};

use crate::fake_embeddings::{EmbeddingRequest, Embeddings};
use crate::fake_telegram::SplitMix;
use crate::http::{Request, Responder, Server, Stream};

/// The version suffix the service appends to model names in answers.
const MODEL_VERSION: &str = "2.0.28.2";
const SCOPES: [&str; 3] = ["GIGACHAT_API_PERS", "GIGACHAT_API_B2B", "GIGACHAT_API_CORP"];
const ROLES: [&str; 4] = ["system", "user", "assistant", "function"];
/// The answer to an unknown model (chat, `GET /models/{id}`, embeddings; a model of the
/// wrong type too): 41 bytes live, so probably with a trailing newline (gigachat-api.md §3).
pub(crate) const NO_SUCH_MODEL: &str = "{\"status\":404,\"message\":\"No such model\"}\n";

/// `GET /models` as recorded on 2026-01-21 (fixtures/models.json): id and type.
const MODELS: [(&str, &str); 20] = [
    ("GigaChat", "chat"),
    ("GigaChat-2", "chat"),
    ("GigaChat-2-Max", "chat"),
    ("GigaChat-2-Max-preview", "chat"),
    ("GigaChat-2-Pro", "chat"),
    ("GigaChat-2-Pro-preview", "chat"),
    ("GigaChat-2-preview", "chat"),
    ("GigaChat-Max", "chat"),
    ("GigaChat-Max-preview", "chat"),
    ("GigaChat-Plus", "chat"),
    ("GigaChat-Pro", "chat"),
    ("GigaChat-Pro-preview", "chat"),
    ("GigaChat-preview", "chat"),
    ("GigaFilter", "filter"),
    ("GigaCheckClassification", "aicheck"),
    ("GigaCheckDetection", "aicheck"),
    ("Embeddings", "embedder"),
    ("Embeddings-2", "embedder"),
    ("EmbeddingsGigaR", "embedder"),
    ("GigaEmbeddings-3B-2025-09", "embedder"),
];

/// How the fake is set up; `Default` is a personal-tier key with the recorded models.
#[derive(Debug, Clone)]
pub struct FakeGigaChatOptions {
    pub client_id: String,
    pub client_secret: String,
    /// The scope the key belongs to.
    pub scope: String,
    /// (id, type) of each model; chat completions accept the "chat" ones.
    pub models: Vec<(String, String)>,
    pub token_ttl: Duration,
    /// The only host name the server certificate names, in place of 127.0.0.1 and
    /// localhost: a trusted certificate for another host, as a wrong URL or a proxy shows.
    pub certificate_for: Option<String>,
    /// Where the API's paths begin: "/api/v1" (gigachat.devices.sberbank.ru) or "/v1"
    /// (api.giga.chat).
    pub api_prefix: String,
    /// Chat models that refuse a request with files (`attachments`): 422.
    pub no_attachments: Vec<String>,
}

impl FakeGigaChatOptions {
    /// The new host, api.giga.chat, with the free model for individuals, GigaChat-3-Ultra
    /// (gigachat-api.md §0, §5). Whether that model reads files is not known (no source
    /// says): this fake guesses not, so a test shows what a refusal looks like to a user.
    pub fn freemium() -> FakeGigaChatOptions {
        let mut options = FakeGigaChatOptions { api_prefix: "/v1".into(), ..Default::default() };
        options.models.push(("GigaChat-3-Ultra".into(), "chat".into()));
        options.no_attachments.push("GigaChat-3-Ultra".into());
        options
    }
}

impl Default for FakeGigaChatOptions {
    fn default() -> Self {
        FakeGigaChatOptions {
            client_id: "test-client-id".into(),
            client_secret: "test-client-secret".into(),
            scope: "GIGACHAT_API_PERS".into(),
            models: MODELS.iter().map(|(id, kind)| (id.to_string(), kind.to_string())).collect(),
            token_ttl: Duration::from_secs(30 * 60),
            certificate_for: None,
            api_prefix: "/api/v1".into(),
            no_attachments: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
    /// File ids the message asks about (`attachments`).
    pub attachments: Vec<String>,
}

/// A file in the fake's storage, as uploaded (`POST /files`).
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub id: String,
    pub filename: String,
    /// The part's Content-Type.
    pub mime: String,
    pub purpose: String,
    pub bytes: Vec<u8>,
    /// `X-Client-ID` of the upload ("" without one): only that client may use the file.
    pub client: String,
    pub created_at: u64,
    pub deleted: bool,
}

/// The formats and limits of the reference (gigachat-media.md §1.5): MIME → max bytes.
const TEXT_MIMES: [&str; 7] = [
    "text/plain",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/pdf",
    "application/epub",
    "application/ppt",
    "application/pptx",
];
const IMAGE_MIMES: [&str; 5] = ["image/jpeg", "image/jpg", "image/png", "image/tiff", "image/bmp"];
const AUDIO_MIMES: [&str; 10] = [
    "audio/mp4",
    "audio/mp3",
    "audio/x-m4a",
    "audio/x-wav",
    "audio/wave",
    "audio/wav",
    "audio/x-pn-wav",
    "audio/webm",
    "audio/x-ogg",
    "audio/opus",
];
pub const MAX_IMAGE: usize = 15 << 20;
pub const MAX_TEXT: usize = 40 << 20;
pub const MAX_AUDIO: usize = 35 << 20;
/// Attachments in one chat request, and the images and audio among them together.
pub const MAX_ATTACHMENTS: usize = 10;
pub const MAX_MEDIA_PER_REQUEST: usize = 80 << 20;

fn max_bytes(mime: &str) -> Option<usize> {
    if TEXT_MIMES.contains(&mime) {
        Some(MAX_TEXT)
    } else if IMAGE_MIMES.contains(&mime) {
        Some(MAX_IMAGE)
    } else if AUDIO_MIMES.contains(&mime) {
        Some(MAX_AUDIO)
    } else {
        None
    }
}

/// A request to `/chat/completions`, as the fake parsed it.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<i64>,
    pub stream: bool,
    /// `function_call` as sent ("auto" lets the model draw), if it was.
    pub function_call: Option<Value>,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    /// The raw JSON body (`null` if it wasn't JSON).
    pub body: Value,
    /// The status answered: 0 while answering or if the connection was dropped.
    pub status: u16,
    pub at: Instant,
    /// The usage the answer reported; None unless a completion was given (an error, a
    /// scripted status, garbage or a dropped connection report none).
    pub usage: Option<Usage>,
}

/// `usage` of a completion, as answered. `prompt_tokens` includes the precached ones (the
/// recording: 17 prompt, 2 of them precached) and `total_tokens` is prompt + completion
/// (gigachat-api.md §2: the arithmetic of the data, not the docs' wording).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub precached_prompt_tokens: u64,
}

impl Usage {
    /// What the account pays for: cached tokens are not billed (§4 "Prompt caching").
    pub fn billed(&self) -> u64 {
        self.total_tokens - self.precached_prompt_tokens
    }

    fn to_json(self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "precached_prompt_tokens": self.precached_prompt_tokens,
        })
    }
}

impl ChatRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::http::header(&self.headers, name)
    }

    /// The system prompt, if the first message is one.
    pub fn system(&self) -> Option<&str> {
        self.messages.first().filter(|m| m.role == "system").map(|m| m.content.as_str())
    }

    pub fn last_user(&self) -> Option<&str> {
        self.messages.iter().rev().find(|m| m.role == "user").map(|m| m.content.as_str())
    }
}

/// A request to `/oauth`.
#[derive(Debug, Clone)]
pub struct OAuthRequest {
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub status: u16,
    pub at: Instant,
}

impl OAuthRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::http::header(&self.headers, name)
    }
}

/// What to answer to a chat completion.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A normal answer, finish_reason "stop".
    Text(String),
    /// An answer with another finish_reason: "length", "blacklist", …
    Finish(String, &'static str),
    /// This status and body (JSON text, sent as application/json).
    Status(u16, String),
    /// 200 with this body, which is not JSON.
    Garbage(String),
    /// This status, Content-Type and body, byte for byte: any bytes, UTF-8 or not, and any
    /// content type, e.g. a broken `text/event-stream` (robustness tests; see `properties`).
    Bytes(u16, &'static str, Vec<u8>),
    /// Close the connection without answering.
    Drop,
    /// Wait, then answer.
    Delay(Duration, Box<Reply>),
    /// Stream this answer but close the connection after this many events, without [DONE].
    /// A non-streaming request gets a dropped connection.
    StreamCut(String, usize),
}

type ReplyFn = Arc<dyn Fn(&ChatRequest) -> Reply + Send + Sync>;

/// Seeded random faults for soak tests; each rate is 0.0–1.0.
#[derive(Debug, Clone, Copy)]
pub struct FaultRates {
    /// 500 or 503 with the service's JSON body, on OAuth and chat requests.
    pub server_error: f64,
    /// A connection closed without an answer, on OAuth and chat requests.
    pub dropped: f64,
    /// Every token issued so far expires at each n-th chat request (0: never), so the
    /// request gets 401 "Token has expired" as after the real 30 minutes.
    pub expire_tokens_every: usize,
}

/// A fault drawn for one request.
enum RandomFault {
    Status(u16),
    Drop,
}

/// A callback to run in place of a chat request; see [`FakeGigaChat::set_kill_hook`].
struct KillHook {
    /// Chat requests still to let through before the hook's one.
    pass: usize,
    hook: Box<dyn FnOnce() + Send>,
}

/// The fake server; dropping it stops it and removes its certificate files.
pub struct FakeGigaChat {
    shared: Arc<Shared>,
    server: Server,
    dir: PathBuf,
    options: FakeGigaChatOptions,
}

struct Shared {
    state: Mutex<State>,
}

struct State {
    options: FakeGigaChatOptions,
    /// Issued tokens and when they expire (Unix ms).
    tokens: HashMap<String, u64>,
    oauth_faults: VecDeque<(u16, String)>,
    replies: VecDeque<Reply>,
    responder: Option<ReplyFn>,
    in_flight: usize,
    chars_per_sec: f64,
    pause_every: Option<(usize, Duration)>,
    /// How long a stream takes from its headers to its first event (GigaChat thinking).
    first_event_delay: Duration,
    /// Characters per streamed event: about 30 in the recorded live stream
    /// (gigachat-fixtures/chat_stream.sse: 4 events for 133 characters).
    piece_chars: usize,
    random: Option<(SplitMix, FaultRates)>,
    kill_hook: Option<KillHook>,
    /// Chat requests that arrived, for `expire_tokens_every`.
    chats_arrived: usize,
    /// Answered requests are recorded without their messages, headers and body.
    light_records: bool,
    oauth_requests: Vec<OAuthRequest>,
    chat_requests: Vec<ChatRequest>,
    /// Every file uploaded, deleted ones too (marked).
    files: Vec<StoredFile>,
    /// Faults for the next uploads: status and body.
    upload_faults: VecDeque<(u16, String)>,
    /// Every `/files…` request: method, path, status.
    file_requests: Vec<(String, String, u16)>,
    /// Faults for the next downloads (`GET /files/{id}/content`): status and body.
    content_faults: VecDeque<(u16, String)>,
    /// The text around a drawing's tag, if a test set one.
    drawing_text: Option<String>,
    /// Pictures drawn so far.
    drawn: usize,
    /// How long a session's prompt stays cached after its last request.
    cache_ttl: Duration,
    /// Per `X-Session-ID`: when its last completion was given and that request's messages.
    sessions: HashMap<String, (Instant, Vec<ChatMessage>)>,
    /// Prepaid packages (usage name, tokens left); None for a pay-as-you-go account.
    balance: Option<Vec<(String, i64)>>,
    /// When each `GET /balance` arrived, answered or not.
    balance_requests: Vec<Instant>,
    embeddings: Embeddings,
}

/// About 30 s, as measured by a third party (gigachat-api.md §4 "Prompt caching").
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30);

impl FakeGigaChat {
    pub fn start() -> FakeGigaChat {
        FakeGigaChat::start_with(FakeGigaChatOptions::default())
    }

    pub fn start_with(options: FakeGigaChatOptions) -> FakeGigaChat {
        let (ca, ca_key) = make_ca("gigabot test CA");
        let (other_ca, _) = make_ca("unrelated test CA");
        let (cert, key) = make_server_cert(&ca, &ca_key, options.certificate_for.as_deref());
        let dir = fresh_temp_dir();
        fs::write(dir.join("ca.pem"), ca.to_pem().expect("CA to PEM")).expect("write ca.pem");
        fs::write(dir.join("ca.der"), ca.to_der().expect("CA to DER")).expect("write ca.der");
        fs::write(dir.join("other-ca.pem"), other_ca.to_pem().expect("CA to PEM"))
            .expect("write other-ca.pem");

        let mut acceptor =
            SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).expect("TLS acceptor");
        acceptor.set_private_key(&key).expect("server key");
        acceptor.set_certificate(&cert).expect("server certificate");
        acceptor.check_private_key().expect("key matches certificate");
        let acceptor = acceptor.build();

        let state = State {
            options: options.clone(),
            tokens: HashMap::new(),
            oauth_faults: VecDeque::new(),
            replies: VecDeque::new(),
            responder: None,
            in_flight: 0,
            chars_per_sec: 0.0,
            first_event_delay: Duration::ZERO,
            pause_every: None,
            piece_chars: 32,
            random: None,
            kill_hook: None,
            chats_arrived: 0,
            light_records: false,
            oauth_requests: Vec::new(),
            chat_requests: Vec::new(),
            files: Vec::new(),
            upload_faults: VecDeque::new(),
            file_requests: Vec::new(),
            content_faults: VecDeque::new(),
            drawing_text: None,
            drawn: 0,
            cache_ttl: DEFAULT_CACHE_TTL,
            sessions: HashMap::new(),
            balance: None,
            balance_requests: Vec::new(),
            embeddings: Embeddings::default(),
        };
        let shared = Arc::new(Shared { state: Mutex::new(state) });
        let server = {
            let shared = shared.clone();
            Server::start(
                move |tcp| {
                    let tls =
                        acceptor.accept(tcp).map_err(|e| std::io::Error::other(e.to_string()))?;
                    Ok(Box::new(tls) as Stream)
                },
                move |request, responder| handle(&shared, request, responder),
            )
        };
        FakeGigaChat { shared, server, dir, options }
    }

    /// "https://127.0.0.1:PORT/api/v2/oauth"
    pub fn auth_url(&self) -> String {
        format!("https://127.0.0.1:{}/api/v2/oauth", self.server.port())
    }

    /// "https://127.0.0.1:PORT/api/v1" (or "…/v1" for the new host)
    pub fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}{}", self.server.port(), self.options.api_prefix)
    }

    /// The CA that signed the server certificate, PEM.
    pub fn ca_pem_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The same CA, DER.
    pub fn ca_der_path(&self) -> PathBuf {
        self.dir.join("ca.der")
    }

    /// A CA that signed nothing here: trusting only it must fail the handshake.
    pub fn other_ca_pem_path(&self) -> PathBuf {
        self.dir.join("other-ca.pem")
    }

    /// The authorization key: Base64 of "client_id:client_secret".
    pub fn credentials(&self) -> String {
        base64_encode(
            format!("{}:{}", self.options.client_id, self.options.client_secret).as_bytes(),
        )
    }

    pub fn client_id(&self) -> &str {
        &self.options.client_id
    }

    pub fn client_secret(&self) -> &str {
        &self.options.client_secret
    }

    pub fn scope(&self) -> &str {
        &self.options.scope
    }

    pub fn connections(&self) -> usize {
        self.server.connections()
    }

    // --- scripting ---

    /// Lifetime of tokens issued from now on.
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.lock().options.token_ttl = ttl;
    }

    /// Every token issued so far expires now: the next call with one gets
    /// 401 "Token has expired".
    pub fn expire_all_tokens(&self) {
        self.lock().expire_tokens();
    }

    /// The next OAuth request gets this status and body instead of its answer.
    pub fn fail_next_oauth(&self, status: u16, body: &str) {
        self.lock().oauth_faults.push_back((status, body.to_string()));
    }

    /// Queues the answer to the next chat completion (before the responder and the default).
    pub fn push_reply(&self, reply: Reply) {
        self.lock().replies.push_back(reply);
    }

    /// Answers chat completions with this function when no queued reply is left.
    pub fn set_responder(&self, responder: impl Fn(&ChatRequest) -> Reply + Send + Sync + 'static) {
        self.lock().responder = Some(Arc::new(responder));
    }

    /// Streaming pace: characters of the answer per second, 0 for no delay; and optionally
    /// a pause after every n events.
    pub fn set_stream_speed(&self, chars_per_sec: f64, pause_every: Option<(usize, Duration)>) {
        let mut state = self.lock();
        state.chars_per_sec = chars_per_sec;
        state.pause_every = pause_every;
    }

    /// From now on a stream's first event comes this long after its headers, as when the
    /// model takes a while to start (0 by default).
    pub fn set_first_event_delay(&self, delay: Duration) {
        self.lock().first_event_delay = delay;
    }

    /// Characters per streamed event from now on (32 by default, as recorded).
    pub fn set_stream_piece_chars(&self, chars: usize) {
        self.lock().piece_chars = chars.max(1);
    }

    /// From now on answered chat requests are recorded without their messages, headers
    /// and body (for benchmarks of tens of thousands of answers).
    pub fn light_records(&self, light: bool) {
        self.lock().light_records = light;
    }

    /// Random faults from a seeded generator: the same seed and requests give the same faults.
    pub fn set_random_faults(&self, seed: u64, rates: FaultRates) {
        self.lock().random = Some((SplitMix(seed), rates));
    }

    pub fn clear_random_faults(&self) {
        self.lock().random = None;
    }

    /// Crashes the bot while it waits for an answer: when the `nth` chat request from now
    /// arrives (1 = the next one), the fake runs `hook` before looking at the request, then
    /// closes the connection without an answer (recorded with status 0). The hook is meant
    /// to SIGKILL the bot and wait for it to exit. It runs on the connection's thread with
    /// the fake unlocked. One hook at a time; a new one replaces one that has not fired.
    pub fn set_kill_hook(&self, nth: usize, hook: impl FnOnce() + Send + 'static) {
        assert!(nth >= 1, "set_kill_hook: requests are counted from 1");
        self.lock().kill_hook = Some(KillHook { pass: nth - 1, hook: Box::new(hook) });
    }

    /// Whether a kill hook is set and has not fired yet.
    pub fn kill_hook_pending(&self) -> bool {
        self.lock().kill_hook.is_some()
    }

    /// How long a session's prompt stays cached after its last request (30 s by default).
    pub fn set_cache_ttl(&self, ttl: Duration) {
        self.lock().cache_ttl = ttl;
    }

    /// Makes the account prepaid with these packages: (usage, tokens left), e.g.
    /// `[("GigaChat-2-Max", 1000), ("embeddings", 5000)]`. `GET /balance` lists them in this
    /// order; a chat model with a package of its own name spends it and answers 402 once
    /// it is empty, other models are not limited; embeddings spend "embeddings" alike.
    pub fn set_balance(&self, packages: &[(&str, i64)]) {
        let packages = packages.iter().map(|(usage, value)| (usage.to_string(), *value));
        self.lock().balance = Some(packages.collect());
    }

    /// Makes the account pay-as-you-go, as it is by default: `GET /balance` answers 403
    /// and chat requests are never refused for money.
    pub fn set_pay_as_you_go(&self) {
        self.lock().balance = None;
    }

    /// The next embeddings calls with a live token get these statuses and bodies, one each,
    /// in place of their answers; status 0 closes the connection without answering.
    pub fn fail_next_embeddings(&self, status: u16, body: &str) {
        self.lock().embeddings.faults.push_back((status, body.to_string()));
    }

    /// Each embeddings call from now on is answered after `delay`.
    pub fn set_embedding_delay(&self, delay: Duration) {
        self.lock().embeddings.delay = delay;
    }

    /// Characters an embeddings input may have from now on (4000 by default); a longer one
    /// gets 413, as the bot must expect of the real service's unknown limit.
    pub fn set_embedding_input_limit(&self, chars: usize) {
        self.lock().embeddings.input_limit = chars;
    }

    // --- observation ---

    pub fn oauth_requests(&self) -> Vec<OAuthRequest> {
        self.lock().oauth_requests.clone()
    }

    /// Every file uploaded, in order (deleted ones marked).
    pub fn files(&self) -> Vec<StoredFile> {
        self.lock().files.clone()
    }

    /// Every request to `/files…`: (method, path, status).
    pub fn file_requests(&self) -> Vec<(String, String, u16)> {
        self.lock().file_requests.clone()
    }

    /// The next upload gets this status and JSON body.
    /// The next download of a file's content gets this status and body.
    pub fn fail_next_content(&self, status: u16, body: &str) {
        self.lock().content_faults.push_back((status, body.to_string()));
    }

    /// The text a drawing answer has after its tag (default: "вот мой рисунок: <question>").
    pub fn set_drawing_text(&self, text: &str) {
        self.lock().drawing_text = Some(text.to_string());
    }

    pub fn fail_next_upload(&self, status: u16, body: &str) {
        self.lock().upload_faults.push_back((status, body.to_string()));
    }

    /// Every chat completion request that was answered (or dropped), in order.
    pub fn chat_requests(&self) -> Vec<ChatRequest> {
        self.lock().chat_requests.clone()
    }

    /// The usage reported to the `index`-th chat request (from 0), if it got a completion.
    pub fn usage_of(&self, index: usize) -> Option<Usage> {
        self.lock().chat_requests.get(index).and_then(|r| r.usage)
    }

    /// Every embeddings request, in order, refused or not.
    pub fn embedding_requests(&self) -> Vec<EmbeddingRequest> {
        self.lock().embeddings.requests.clone()
    }

    /// The `prompt_tokens` of every embedding answered, summed.
    pub fn embedding_tokens(&self) -> u64 {
        self.lock().embeddings.tokens
    }

    /// The packages left now (None for pay-as-you-go), to check what was spent.
    pub fn balance(&self) -> Option<Vec<(String, i64)>> {
        self.lock().balance.clone()
    }

    /// When each `GET /balance` arrived, in order: how often the bot asks.
    pub fn balance_requests(&self) -> Vec<Instant> {
        self.lock().balance_requests.clone()
    }

    /// Chat completions being answered right now.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    /// Polls `cond` every few milliseconds; panics with `what` and a summary on timeout.
    pub fn wait_until(&self, timeout: Duration, what: &str, cond: impl Fn(&FakeGigaChat) -> bool) {
        crate::http::wait_until(timeout, what, || cond(self), || self.dump());
    }

    /// The recorded requests, one line each, for failure messages.
    pub fn dump(&self) -> String {
        let state = self.lock();
        let mut out = String::from("fake GigaChat:\n");
        for oauth in &state.oauth_requests {
            out.push_str(&format!("  oauth -> {} ({})\n", oauth.status, oauth.body));
        }
        for chat in &state.chat_requests {
            let question = chat.last_user().unwrap_or("").chars().take(80).collect::<String>();
            out.push_str(&format!(
                "  chat {} {} messages, last user: {question:?} -> {}\n",
                chat.model,
                chat.messages.len(),
                chat.status
            ));
        }
        for request in &state.embeddings.requests {
            let inputs = request.inputs.len();
            out.push_str(&format!(
                "  embeddings {} {inputs} inputs -> {}\n",
                request.model, request.status
            ));
        }
        out
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }
}

impl Drop for FakeGigaChat {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The default answer: "Ответ (<system prompt or "без стиля">): <last user message>
/// [сообщений: <messages received>]".
pub fn default_answer(request: &ChatRequest) -> String {
    let style = request.system().unwrap_or("без стиля");
    let question = request.last_user().unwrap_or("");
    format!("Ответ ({style}): {question} [сообщений: {}]", request.messages.len())
}

// --- serving ---

fn handle(shared: &Shared, request: &Request, responder: &mut Responder) {
    if (request.method.as_str(), request.path.as_str()) == ("POST", "/api/v2/oauth") {
        return oauth(shared, request, responder);
    }
    let prefix = shared.state.lock().unwrap().options.api_prefix.clone();
    let path = request.path.strip_prefix(&prefix).unwrap_or("/not-the-api");
    match (request.method.as_str(), path) {
        ("POST", "/chat/completions") => chat(shared, request, responder),
        ("POST", "/embeddings") => {
            let (status, body) = shared.state.lock().unwrap().embeddings_answer(request);
            thread::sleep(shared.state.lock().unwrap().embeddings.delay);
            match status {
                0 => responder.drop_connection(),
                _ => send_json(responder, status, &body, &[]),
            }
        }
        ("GET", "/models") => models(shared, request, responder, None),
        ("GET", "/balance") => {
            let (status, body) = shared.state.lock().unwrap().balance_answer(request);
            send_json(responder, status, &body, &[]);
        }
        (_, path) if path == "/files" || path.starts_with("/files/") => {
            let rest = path["/files".len()..].trim_start_matches('/');
            let (status, body, bytes) = shared.state.lock().unwrap().files_answer(request, rest);
            shared.state.lock().unwrap().file_requests.push((
                request.method.clone(),
                request.path.clone(),
                status,
            ));
            match bytes {
                Some(bytes) => responder.send(200, &[("Content-Type", "image/jpeg")], &bytes),
                None => send_json(responder, status, &body, &[]),
            }
        }
        ("GET", path) if path.starts_with("/models/") => {
            models(shared, request, responder, Some(&path["/models/".len()..]))
        }
        _ => send_json(responder, 404, "{\"status\":404,\"message\":\"Not Found\"}", &[]),
    }
}

fn oauth(shared: &Shared, request: &Request, responder: &mut Responder) {
    let (status, body) = {
        let mut state = shared.state.lock().unwrap();
        let answer = state.oauth_answer(request);
        state.oauth_requests.push(OAuthRequest {
            headers: request.headers.clone(),
            body: String::from_utf8_lossy(&request.body).into_owned(),
            status: answer.0,
            at: Instant::now(),
        });
        answer
    };
    if status == 0 {
        responder.drop_connection();
    } else if body.is_empty() {
        responder.send(status, &[], b"");
    } else {
        let cache = ("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate");
        send_json(responder, status, &body, &[cache]);
    }
}

fn chat(shared: &Shared, request: &Request, responder: &mut Responder) {
    let mut chat = ChatRequest {
        model: String::new(),
        messages: Vec::new(),
        temperature: None,
        max_tokens: None,
        stream: false,
        function_call: None,
        headers: request.headers.clone(),
        body: serde_json::from_slice(&request.body).unwrap_or(Value::Null),
        status: 0,
        at: Instant::now(),
        usage: None,
    };
    let hook = shared.state.lock().unwrap().chat_arrived();
    if let Some(hook) = hook {
        // The bot is gone by now; the request is never handled.
        hook();
        shared.state.lock().unwrap().chat_requests.push(chat);
        return responder.drop_connection();
    }
    let admitted = shared.state.lock().unwrap().admit_chat(request, &mut chat);
    match admitted {
        Err((status, body)) => {
            chat.status = status;
            shared.state.lock().unwrap().chat_requests.push(chat);
            send_json(responder, status, &body, &[]);
        }
        Ok((queued, custom)) => {
            // The responder runs unlocked, so it may look at the fake.
            let reply = match (queued, custom) {
                (Some(reply), _) => reply,
                (None, Some(custom)) => custom(&chat),
                (None, None) => shared
                    .state
                    .lock()
                    .unwrap()
                    .drawing(request, &chat)
                    .unwrap_or_else(|| Reply::Text(default_answer(&chat))),
            };
            let index = {
                let mut state = shared.state.lock().unwrap();
                let record = match state.light_records {
                    // The status and time only: a long benchmark would keep every
                    // conversation twice over.
                    true => ChatRequest {
                        messages: Vec::new(),
                        headers: Vec::new(),
                        body: Value::Null,
                        ..chat.clone()
                    },
                    false => chat.clone(),
                };
                state.chat_requests.push(record);
                state.chat_requests.len() - 1
            };
            answer(shared, index, responder, &chat, reply);
        }
    }
}

impl Shared {
    /// The request is done: its status is final and the key's one stream is free. Called
    /// before the last bytes go out, so a client that reads the answer and asks again at
    /// once finds the slot free and the request recorded.
    fn finish(&self, index: usize, status: u16) {
        let mut state = self.state.lock().unwrap();
        state.chat_requests[index].status = status;
        state.in_flight -= 1;
    }
}

fn models(shared: &Shared, request: &Request, responder: &mut Responder, id: Option<&str>) {
    let state = shared.state.lock().unwrap();
    if let Err(body) = state.check_token(request) {
        drop(state);
        return send_json(responder, 401, &body, &[]);
    }
    let model = |(id, kind): &(String, String)| json!({"id": id, "object": "model", "owned_by": "salutedevices", "type": kind});
    let (status, body) = match id {
        None => {
            let data: Vec<Value> = state.options.models.iter().map(model).collect();
            (200, json!({"object": "list", "data": data}).to_string())
        }
        Some(id) => match state.options.models.iter().find(|(m, _)| m == id) {
            Some(found) => (200, model(found).to_string()),
            None => (404, NO_SUCH_MODEL.to_string()),
        },
    };
    drop(state);
    responder.send(status, &[("Content-Type", "application/json; charset=utf-8")], body.as_bytes());
}

impl State {
    /// `POST /embeddings`, answered by fake_embeddings with what it needs of the rest.
    fn embeddings_answer(&mut self, request: &Request) -> (u16, String) {
        let token = self.check_token(request);
        let balance = self.balance.as_mut();
        self.embeddings.answer(request, token, &self.options.models, balance)
    }

    /// `GET /balance`: a live token, then the packages of a prepaid account or the 403 the
    /// reference gives for pay-as-you-go (§3, §4). The request is recorded either way.
    fn balance_answer(&mut self, request: &Request) -> (u16, String) {
        self.balance_requests.push(Instant::now());
        if let Err(body) = self.check_token(request) {
            return (401, body);
        }
        match &self.balance {
            Some(packages) => {
                let lines: Vec<Value> = packages
                    .iter()
                    .map(|(usage, value)| json!({"usage": usage, "value": value}))
                    .collect();
                // serde_json sorts keys; "usage" before "value" is the reference's order too.
                (200, json!({"balance": lines}).to_string())
            }
            None => (403, status_body(403, "Permission denied")),
        }
    }

    /// Whether `model` has a prepaid package and it is used up: then the reference's 402
    /// (§3, "model's tokens exhausted").
    fn check_package(&self, model: &str) -> Result<(), (u16, String)> {
        match self.balance.iter().flatten().find(|(usage, _)| usage == model) {
            Some((_, left)) if *left <= 0 => Err((402, status_body(402, "Payment Required"))),
            _ => Ok(()),
        }
    }

    /// The usage of a completion of `text` for `chat` (recorded at `index`), spent from the
    /// model's package if it has one. A request with `X-Session-ID` whose session asked
    /// within the cache TTL gets the tokens of the messages both requests begin with as
    /// precached; every completion becomes its session's cache.
    fn bill(&mut self, index: usize, chat: &ChatRequest, text: &str) -> Usage {
        let prompt_chars: usize = chat.messages.iter().map(|m| m.content.chars().count()).sum();
        let prompt_tokens = tokens(prompt_chars) as u64;
        let completion_tokens = tokens(text.chars().count()) as u64;
        let now = Instant::now();
        let precached = match chat.header("x-session-id") {
            Some(session) => {
                let previous = self.sessions.insert(session.into(), (now, chat.messages.clone()));
                previous
                    .filter(|(at, _)| now.duration_since(*at) <= self.cache_ttl)
                    .map_or(0, |(_, before)| prefix_tokens(&before, &chat.messages))
            }
            None => 0,
        };
        let usage = Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            precached_prompt_tokens: precached.min(prompt_tokens),
        };
        let package = self.balance.iter_mut().flatten().find(|(usage, _)| *usage == chat.model);
        if let Some((_, left)) = package {
            // Billed whole even past the end: the package shows 0, never a debt.
            *left = (*left - usage.billed() as i64).max(0);
        }
        self.chat_requests[index].usage = Some(usage);
        usage
    }

    /// The answer to an OAuth request, checked in the order of the reference; status 0 for
    /// a dropped connection.
    fn oauth_answer(&mut self, request: &Request) -> (u16, String) {
        if let Some(fault) = self.oauth_faults.pop_front() {
            return fault;
        }
        match self.random_fault() {
            Some(RandomFault::Status(status)) => return (status, server_error_body(status)),
            Some(RandomFault::Drop) => return (0, String::new()),
            None => {}
        }
        let error = |status: u16, code: u8, message: &str| {
            (status, format!("{{\"code\":{code},\"message\":{}}}", json!(message)))
        };
        let rquid_ok = request.header("rquid").is_some_and(|id| {
            id.len() == 36 && uuid::Uuid::parse_str(id).is_ok_and(|id| id.get_version_num() == 4)
        });
        if !rquid_ok {
            return (400, String::new());
        }
        let key = request.header("authorization").and_then(|v| v.strip_prefix("Basic "));
        let Some(decoded) = key.and_then(|key| base64_decode(key.trim())) else {
            return error(400, 4, "Can't decode 'Authorization' header");
        };
        let expected = format!("{}:{}", self.options.client_id, self.options.client_secret);
        if decoded != expected.as_bytes() {
            return error(401, 6, "credentials doesn't match db data");
        }
        let form = request.header("content-type").is_some_and(|t| {
            t.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded")
        });
        let body = String::from_utf8_lossy(&request.body).into_owned();
        let scope = body
            .split('&')
            .filter(|_| form)
            .filter_map(|pair| pair.split_once('='))
            .find(|(name, _)| *name == "scope")
            .map(|(_, value)| value.to_string())
            .unwrap_or_default();
        if scope.is_empty() {
            return error(400, 5, "scope is empty");
        }
        if !SCOPES.contains(&scope.as_str()) {
            return error(400, 1, "scope data format invalid");
        }
        if scope != self.options.scope {
            return error(400, 7, "scope from db not fully includes consumed scope");
        }
        let token = random_token();
        let expires_at = now_ms() + self.options.token_ttl.as_millis() as u64;
        self.tokens.insert(token.clone(), expires_at);
        (200, json!({"access_token": token, "expires_at": expires_at}).to_string())
    }

    /// A live token issued by this fake, else the 401 body.
    fn check_token(&self, request: &Request) -> Result<(), String> {
        let token = request.header("authorization").and_then(|v| v.strip_prefix("Bearer "));
        match token.and_then(|t| self.tokens.get(t.trim())) {
            Some(&expires_at) if expires_at > now_ms() => Ok(()),
            Some(_) => Err("{\"status\":401,\"message\":\"Token has expired\"}".into()),
            None => Err("{\"status\":401,\"message\":\"Unauthorized\"}".into()),
        }
    }

    /// Checks a chat completion request and fills `chat` from it. On success the request
    /// holds the key's one stream (`in_flight`); returns a queued reply and the responder.
    fn admit_chat(
        &mut self,
        request: &Request,
        chat: &mut ChatRequest,
    ) -> Result<(Option<Reply>, Option<ReplyFn>), (u16, String)> {
        self.check_token(request).map_err(|body| (401, body))?;
        if self.in_flight > 0 {
            return Err((429, "{\"status\":429,\"message\":\"Too many requests\"}".into()));
        }
        let invalid =
            |message: &str| (422, status_body(422, &format!("Invalid params: {message}")));
        let body = json_object(request, &chat.body)?;
        let model = body.get("model").and_then(Value::as_str).unwrap_or_default();
        let chat_model = self.options.models.iter().any(|(id, kind)| id == model && kind == "chat");
        if !chat_model {
            return Err((404, NO_SUCH_MODEL.into()));
        }
        chat.model = model.to_string();
        let Some(messages) =
            body.get("messages").and_then(Value::as_array).filter(|m| !m.is_empty())
        else {
            return Err(invalid("messages must be a non-empty array"));
        };
        for (i, message) in messages.iter().enumerate() {
            let role = message["role"].as_str().unwrap_or_default();
            if !ROLES.contains(&role) {
                return Err(invalid(&format!(
                    "messages[{i}].role must be one of system, user, assistant, function"
                )));
            }
            let Some(content) = message["content"].as_str() else {
                return Err(invalid(&format!("messages[{i}].content must be a string")));
            };
            if role == "system" && i > 0 {
                return Err(invalid("system message must be the first message"));
            }
            let attachments = self.check_attachments(request, i, &message["attachments"])?;
            chat.messages.push(ChatMessage {
                role: role.into(),
                content: content.into(),
                attachments,
            });
        }
        self.check_request_attachments(&chat.messages)?;
        let files = chat.messages.iter().any(|m| !m.attachments.is_empty());
        if files && self.options.no_attachments.contains(&chat.model) {
            // UNCONFIRMED wording: no source shows this model refusing a file.
            return Err(invalid("attachments are not supported by this model"));
        }
        if let Some(temperature) = body.get("temperature") {
            match temperature.as_f64() {
                Some(t) if t > 0.0 => chat.temperature = Some(t),
                _ => return Err(invalid("temperature must be in range (0, +inf)")),
            }
        }
        if let Some(max_tokens) = body.get("max_tokens") {
            match max_tokens.as_i64() {
                Some(n) if n >= 1 => chat.max_tokens = Some(n),
                _ => return Err(invalid("max_tokens must be in range [1, +inf)")),
            }
        }
        chat.stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
        if let Some(call) = body.get("function_call") {
            let named = call.get("name").and_then(Value::as_str).is_some();
            if !(call == "auto" || call == "none" || call.is_object() && named) {
                return Err(invalid("function_call must be \"auto\", \"none\" or {\"name\": ...}"));
            }
            chat.function_call = Some(call.clone());
        }
        if let Some(functions) = body.get("functions")
            && !functions.is_array()
        {
            return Err(invalid("functions must be an array"));
        }
        self.check_package(&chat.model)?;
        self.in_flight += 1;
        // A random fault goes before queued replies, which stay queued.
        match self.random_fault() {
            Some(RandomFault::Status(status)) => {
                Ok((Some(Reply::Status(status, server_error_body(status))), None))
            }
            Some(RandomFault::Drop) => Ok((Some(Reply::Drop), None)),
            None => Ok((self.replies.pop_front(), self.responder.clone())),
        }
    }

    /// The built-in `text2image`: with `function_call: "auto"` a question that asks to draw
    /// ("нарисуй…") gets a JPEG stored under a new id for this client and the reference's
    /// answer, `<img src="ID" fuse="true"/>` then the text (finish_reason "stop").
    fn drawing(&mut self, request: &Request, chat: &ChatRequest) -> Option<Reply> {
        let question = chat.last_user()?.to_lowercase();
        if chat.function_call.as_ref()? != "auto" || !question.contains("нарису") {
            return None;
        }
        self.drawn += 1;
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
        jpeg.extend_from_slice(b"JFIF\0");
        jpeg.extend_from_slice(format!("drawn {} for {question}", self.drawn).as_bytes());
        jpeg.extend_from_slice(&[0xFF, 0xD9]);
        let stored = StoredFile {
            id: uuid4(),
            filename: "image.jpg".into(),
            mime: "image/jpeg".into(),
            purpose: "general".into(),
            bytes: jpeg,
            client: request.header("x-client-id").unwrap_or("").to_string(),
            created_at: now_ms() / 1000,
            deleted: false,
        };
        let id = stored.id.clone();
        self.files.push(stored);
        let text = self
            .drawing_text
            .clone()
            .unwrap_or_else(|| format!("вот мой рисунок: {}", chat.last_user().unwrap_or("")));
        Some(Reply::Text(format!("<img src=\"{id}\" fuse=\"true\"/> {text}")))
    }

    /// A message's `attachments`: absent, or an array of ids of files this client uploaded
    /// and has not deleted (else 403 "Access to file … is denied", the reference's answer
    /// for another client's file); at most one image per message.
    fn check_attachments(
        &self,
        request: &Request,
        i: usize,
        attachments: &Value,
    ) -> Result<Vec<String>, (u16, String)> {
        let invalid =
            |message: &str| (422, status_body(422, &format!("Invalid params: {message}")));
        if attachments.is_null() {
            return Ok(Vec::new());
        }
        let Some(ids) = attachments.as_array() else {
            return Err(invalid(&format!("messages[{i}].attachments must be an array")));
        };
        let client = request.header("x-client-id").unwrap_or("");
        let mut found = Vec::new();
        let mut images = 0;
        for id in ids {
            let Some(id) = id.as_str() else {
                return Err(invalid(&format!("messages[{i}].attachments must be strings")));
            };
            let file = self.files.iter().find(|f| f.id == id && !f.deleted && f.client == client);
            let Some(file) = file else {
                return Err((403, status_body(403, &format!("Access to file '{id}' is denied"))));
            };
            if IMAGE_MIMES.contains(&file.mime.as_str()) {
                images += 1;
            }
            found.push(id.to_string());
        }
        if images > 1 {
            // The limit is documented; the error's words are not (UNCONFIRMED).
            return Err(invalid("only one image per message is allowed"));
        }
        Ok(found)
    }

    /// The limits of a whole request (gigachat-api.md §2 `messages[].attachments`,
    /// gigachat-media.md §1.5, §2): at most 10 attachments, and images and audio under
    /// 80 MB together (text files do not count). The answers' words are UNCONFIRMED: 422
    /// "Invalid params" as for the other limits of a request, and 413 "Payload too large",
    /// the documented body for oversized input.
    fn check_request_attachments(&self, messages: &[ChatMessage]) -> Result<(), (u16, String)> {
        let ids: Vec<&String> = messages.iter().flat_map(|m| &m.attachments).collect();
        if ids.len() > MAX_ATTACHMENTS {
            let message = format!(
                "Invalid params: too many attachments: {} (at most {MAX_ATTACHMENTS} per request)",
                ids.len()
            );
            return Err((422, status_body(422, &message)));
        }
        let media: usize = self
            .files
            .iter()
            .filter(|f| {
                !f.deleted && ids.contains(&&f.id) && !TEXT_MIMES.contains(&f.mime.as_str())
            })
            .map(|f| f.bytes.len())
            .sum();
        if media >= MAX_MEDIA_PER_REQUEST {
            return Err((413, status_body(413, "Payload too large")));
        }
        Ok(())
    }

    /// `/files`: upload (multipart, strictly), list, info, content (GET only), delete.
    /// Returns status, JSON body, and the raw bytes for `content`.
    fn files_answer(&mut self, request: &Request, rest: &str) -> (u16, String, Option<Vec<u8>>) {
        if let Err(body) = self.check_token(request) {
            return (401, body, None);
        }
        let client = request.header("x-client-id").unwrap_or("").to_string();
        let object = |f: &StoredFile| {
            format!(
                "{{\"id\":{},\"object\":\"file\",\"bytes\":{},\"access_policy\":\"private\",\"created_at\":{},\"filename\":{},\"purpose\":{}}}",
                json!(f.id),
                f.bytes.len(),
                f.created_at,
                json!(f.filename),
                json!(f.purpose)
            )
        };
        let not_found = (404, status_body(404, "File not found"), None); // UNCONFIRMED shape
        match (request.method.as_str(), rest) {
            ("POST", "") => match self.upload(request, client) {
                Ok(file) => (200, object(&file), None),
                Err((status, body)) => (status, body, None),
            },
            ("GET", "") => {
                let data: Vec<String> = self
                    .files
                    .iter()
                    .rev()
                    .filter(|f| !f.deleted && f.client == client)
                    .map(object)
                    .collect();
                (200, format!("{{\"data\":[{}]}}", data.join(",")), None)
            }
            (method, rest) => {
                let (id, action) = rest.split_once('/').unwrap_or((rest, ""));
                let Some(index) = self.files.iter().position(|f| f.id == id && !f.deleted) else {
                    return not_found;
                };
                if self.files[index].client != client {
                    return (
                        403,
                        status_body(403, &format!("Access to file '{id}' is denied")),
                        None,
                    );
                }
                match (method, action) {
                    ("GET", "") => (200, object(&self.files[index]), None),
                    ("GET", "content") => match self.content_faults.pop_front() {
                        Some((status, body)) => (status, body, None),
                        None => (200, String::new(), Some(self.files[index].bytes.clone())),
                    },
                    ("POST", "delete") => {
                        self.files[index].deleted = true;
                        (
                            200,
                            format!(
                                "{{\"id\":{},\"object\":\"file\",\"deleted\":true}}",
                                json!(id)
                            ),
                            None,
                        )
                    }
                    _ => (405, status_body(405, "Method Not Allowed"), None),
                }
            }
        }
    }

    /// `POST /files`: multipart/form-data with a `purpose` field ("general" or "assistant")
    /// and a `file` part with a filename and a Content-Type of §1.5, within its limit.
    fn upload(&mut self, request: &Request, client: String) -> Result<StoredFile, (u16, String)> {
        if let Some(fault) = self.upload_faults.pop_front() {
            return Err(fault);
        }
        let bad = |message: &str| (400, status_body(400, message));
        let content_type = request.header("content-type").unwrap_or("");
        let boundary = content_type
            .strip_prefix("multipart/form-data")
            .and_then(|rest| rest.split(';').find_map(|p| p.trim().strip_prefix("boundary=")))
            .map(|b| b.trim_matches('"').to_string())
            .ok_or_else(|| bad("Content-Type must be multipart/form-data with a boundary"))?;
        let parts = parse_multipart(&request.body, &boundary)
            .ok_or_else(|| bad("malformed multipart body"))?;
        let purpose = parts
            .iter()
            .find(|p| p.name == "purpose" && p.filename.is_none())
            .map(|p| String::from_utf8_lossy(&p.body).into_owned())
            .ok_or_else(|| bad("purpose is required"))?;
        if !["general", "assistant"].contains(&purpose.as_str()) {
            return Err(bad("purpose must be one of general, assistant"));
        }
        let file =
            parts.iter().find(|p| p.name == "file").ok_or_else(|| bad("file is required"))?;
        let Some(filename) = file.filename.clone().filter(|n| !n.is_empty()) else {
            return Err(bad("file must have a filename"));
        };
        let mime = file.content_type.clone().unwrap_or_default();
        // No source shows the real answer to an unsupported type (UNCONFIRMED): 415.
        let Some(max) = max_bytes(&mime) else {
            return Err((415, status_body(415, &format!("Unsupported file type: {mime}"))));
        };
        if file.body.len() > max {
            return Err((413, status_body(413, "Payload too large")));
        }
        let stored = StoredFile {
            id: uuid4(),
            filename,
            mime,
            purpose,
            bytes: file.body.clone(),
            client,
            created_at: now_ms() / 1000,
            deleted: false,
        };
        self.files.push(stored.clone());
        Ok(stored)
    }

    /// Counts an arriving chat request, expires the tokens if it is the n-th of
    /// `expire_tokens_every`, and returns the kill hook if this is its request.
    fn chat_arrived(&mut self) -> Option<Box<dyn FnOnce() + Send>> {
        self.chats_arrived += 1;
        let every = self.random.as_ref().map_or(0, |(_, r)| r.expire_tokens_every);
        if every > 0 && self.chats_arrived.is_multiple_of(every) {
            self.expire_tokens();
        }
        let armed = self.kill_hook.as_mut()?;
        if armed.pass > 0 {
            armed.pass -= 1;
            return None;
        }
        self.kill_hook.take().map(|armed| armed.hook)
    }

    fn expire_tokens(&mut self) {
        let now = now_ms();
        for expires_at in self.tokens.values_mut() {
            *expires_at = now.min(*expires_at);
        }
    }

    fn random_fault(&mut self) -> Option<RandomFault> {
        let (rng, rates) = self.random.as_mut()?;
        let roll = rng.unit();
        if roll < rates.server_error {
            return Some(RandomFault::Status([500, 503][rng.below(2)]));
        }
        (roll < rates.server_error + rates.dropped).then_some(RandomFault::Drop)
    }
}

/// Gives the reply to the request recorded at `index`.
fn answer(
    shared: &Shared,
    index: usize,
    responder: &mut Responder,
    chat: &ChatRequest,
    reply: Reply,
) {
    match reply {
        Reply::Delay(delay, reply) => {
            thread::sleep(delay);
            answer(shared, index, responder, chat, *reply)
        }
        Reply::Text(text) => complete(shared, index, responder, chat, &text, "stop", None),
        Reply::Finish(text, reason) => {
            complete(shared, index, responder, chat, &text, reason, None)
        }
        Reply::StreamCut(text, events) if chat.stream => {
            complete(shared, index, responder, chat, &text, "stop", Some(events))
        }
        Reply::StreamCut(..) | Reply::Drop => {
            shared.finish(index, 0);
            responder.drop_connection();
        }
        Reply::Status(status, body) => {
            shared.finish(index, status);
            send_json(responder, status, &body, &[]);
        }
        Reply::Garbage(body) => {
            shared.finish(index, 200);
            responder.send(
                200,
                &[("Content-Type", "application/json; charset=utf-8")],
                body.as_bytes(),
            );
        }
        Reply::Bytes(status, content_type, body) => {
            shared.finish(index, status);
            responder.send(status, &[("Content-Type", content_type)], &body);
        }
    }
}

/// A successful completion, as one JSON body or as an SSE stream (cut after `cut` events).
fn complete(
    shared: &Shared,
    index: usize,
    responder: &mut Responder,
    chat: &ChatRequest,
    text: &str,
    finish_reason: &str,
    cut: Option<usize>,
) {
    let request_id = chat.header("x-request-id").map(String::from).unwrap_or_else(uuid4);
    let session_id = chat.header("x-session-id").map(String::from).unwrap_or_else(uuid4);
    let created = now_ms() / 1000;
    let model = format!("{}:{MODEL_VERSION}", chat.model);
    // Billed before any byte goes out, so a client that reads the answer and then asks
    // for its balance sees it spent.
    let usage = shared.state.lock().unwrap().bill(index, chat, text).to_json();
    if chat.stream {
        let headers = [
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-cache"),
            ("X-Request-Id", request_id.as_str()),
            ("X-Session-Id", session_id.as_str()),
        ];
        let piece_chars = shared.state.lock().unwrap().piece_chars;
        let chars: Vec<char> = text.chars().collect();
        let pieces: Vec<String> = match chars.is_empty() {
            true => vec![String::new()],
            false => chars.chunks(piece_chars).map(|c| c.iter().collect()).collect(),
        };
        let events = stream_events(&pieces, created, &model, finish_reason, usage);
        return send_stream(shared, index, responder, &headers, &events, &pieces, cut);
    }
    let body = json!({
        "choices": [{
            "message": {"content": text, "role": "assistant"},
            "index": 0,
            "finish_reason": finish_reason,
        }],
        "created": created,
        "model": model,
        "object": "chat.completion",
        "usage": usage,
    });
    let headers = [
        ("Content-Type", "application/json; charset=utf-8"),
        ("X-Request-Id", request_id.as_str()),
        ("X-Session-Id", session_id.as_str()),
    ];
    shared.finish(index, 200);
    responder.send(200, &headers, body.to_string().as_bytes());
}

/// The events of a stream as recorded: one per piece (the role in the first), then an
/// empty delta with the finish reason and the usage.
fn stream_events(
    pieces: &[String],
    created: u64,
    model: &str,
    finish_reason: &str,
    usage: Value,
) -> Vec<Value> {
    let mut events: Vec<Value> = pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| {
            let delta = match i {
                0 => json!({"content": piece, "role": "assistant"}),
                _ => json!({"content": piece}),
            };
            json!({"choices": [{"delta": delta, "index": 0}], "created": created, "model": model, "object": "chat.completion"})
        })
        .collect();
    events.push(json!({
        "choices": [{"delta": {"content": ""}, "index": 0, "finish_reason": finish_reason}],
        "created": created,
        "model": model,
        "object": "chat.completion",
        "usage": usage,
    }));
    events
}

/// Sends `events` as SSE at the configured pace (`pieces` give each event's characters),
/// then `[DONE]`; or closes the connection after `cut` events, without it.
fn send_stream(
    shared: &Shared,
    index: usize,
    responder: &mut Responder,
    headers: &[(&str, &str)],
    events: &[Value],
    pieces: &[String],
    cut: Option<usize>,
) {
    let (chars_per_sec, pause_every, first_event_delay) = {
        let state = shared.state.lock().unwrap();
        (state.chars_per_sec, state.pause_every, state.first_event_delay)
    };
    if responder.start_stream(200, headers).is_err() {
        return shared.finish(index, 0);
    }
    thread::sleep(first_event_delay);
    for (i, event) in events.iter().enumerate() {
        if cut == Some(i) {
            break;
        }
        if responder.chunk(format!("data: {event}\n\n").as_bytes()).is_err() {
            return shared.finish(index, 0);
        }
        if chars_per_sec > 0.0 {
            let chars = pieces.get(i).map_or(0, |p| p.chars().count());
            thread::sleep(Duration::from_secs_f64(chars as f64 / chars_per_sec));
        }
        if let Some((every, pause)) = pause_every
            && every > 0
            && (i + 1) % every == 0
        {
            thread::sleep(pause);
        }
    }
    if cut.is_some() {
        shared.finish(index, 0);
        return responder.drop_connection(); // cut before [DONE]
    }
    shared.finish(index, 200);
    let _ = responder.chunk(b"data: [DONE]\n\n").and_then(|()| responder.end_stream());
}

/// One part of a multipart/form-data body.
pub(crate) struct Part {
    pub(crate) name: String,
    pub(crate) filename: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Vec<u8>,
}

/// Where `needle` (not empty) first occurs in `hay` at or after `from`. Each candidate is
/// found by std's memchr (`skip_until`), built optimized even in a debug build: a byte-by-byte
/// search took seconds for the tens of megabytes a test uploads.
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    use std::io::BufRead;
    let mut at = from;
    loop {
        let mut rest = hay.get(at..)?;
        let skipped = rest.skip_until(needle[0]).ok()?;
        let candidate = at + skipped.checked_sub(1)?;
        if hay.get(candidate) != Some(&needle[0]) {
            return None; // read to the end without meeting it
        }
        if hay[candidate..].starts_with(needle) {
            return Some(candidate);
        }
        at = candidate + 1;
    }
}

#[test]
fn find_is_a_substring_search() {
    let hay = b"a\r\r\n--b\r";
    let cases: [(&[u8], usize, Option<usize>); 7] = [
        (b"a", 0, Some(0)),
        (b"\r\n--b", 0, Some(2)),
        (b"\r\n--b", 3, None),
        (b"\r", 3, Some(7)),
        (b"\r\n", 7, None),
        (b"x", 0, None),
        (b"a", 9, None),
    ];
    for (needle, from, expected) in cases {
        assert_eq!(find(hay, needle, from), expected, "{needle:?} from {from}");
    }
}

/// Splits a multipart body strictly: each part opens with `--boundary` CRLF, has a
/// Content-Disposition `form-data` with a name, a blank line, the body, CRLF; the last
/// boundary ends with `--`. None for anything else.
pub(crate) fn parse_multipart(body: &[u8], boundary: &str) -> Option<Vec<Part>> {
    let delimiter = format!("--{boundary}").into_bytes();
    if !body.starts_with(&delimiter) {
        return None;
    }
    let mut parts = Vec::new();
    let mut at = delimiter.len();
    loop {
        let rest = body.get(at..)?;
        if rest.starts_with(b"--") {
            return Some(parts);
        }
        let rest_at = at + 2;
        if !rest.starts_with(b"\r\n") {
            return None;
        }
        let head_end = find(body, b"\r\n\r\n", rest_at)?;
        let head = std::str::from_utf8(&body[rest_at..head_end]).ok()?;
        let mut closing = b"\r\n".to_vec();
        closing.extend_from_slice(&delimiter);
        let end = find(body, &closing, head_end + 4)?;
        let mut part = Part {
            name: String::new(),
            filename: None,
            content_type: None,
            body: body[head_end + 4..end].to_vec(),
        };
        for line in head.split("\r\n") {
            let (name, value) = line.split_once(':')?;
            match name.trim().to_ascii_lowercase().as_str() {
                "content-disposition" => {
                    let (kind, fields) = disposition(value)?;
                    if kind != "form-data" {
                        return None;
                    }
                    for (key, value) in fields {
                        match key.as_str() {
                            "name" => part.name = value,
                            "filename" => part.filename = Some(value),
                            _ => {}
                        }
                    }
                }
                "content-type" => part.content_type = Some(value.trim().to_ascii_lowercase()),
                _ => {}
            }
        }
        if part.name.is_empty() {
            return None;
        }
        parts.push(part);
        at = end + closing.len();
    }
}

/// A Content-Disposition value: its kind and its parameters (names lower-cased). A value
/// may be a token or a quoted string, which can hold `;` and `\"` (`filename="a;b.pdf"`,
/// RFC 7578 §4.2 with RFC 9110's quoted-string). None for anything malformed, such as an
/// unclosed quote or a parameter without `=`.
fn disposition(value: &str) -> Option<(String, Vec<(String, String)>)> {
    let (kind, mut rest) = value.split_once(';').unwrap_or((value, ""));
    let mut params = Vec::new();
    while !rest.trim().is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim();
        if key.is_empty() || key.contains([';', '"']) {
            return None;
        }
        let after = after.trim_start();
        let (value, remainder) = match after.strip_prefix('"') {
            Some(quoted) => {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let end = loop {
                    match chars.next()? {
                        (i, '"') => break i + 1,
                        (_, '\\') => value.push(chars.next()?.1),
                        (_, c) => value.push(c),
                    }
                };
                (value, &quoted[end..])
            }
            None => {
                let end = after.find(';').unwrap_or(after.len());
                (after[..end].trim_end().to_string(), &after[end..])
            }
        };
        params.push((key.to_ascii_lowercase(), value));
        let remainder = remainder.trim_start();
        rest = match remainder.strip_prefix(';') {
            Some(next) => next,
            None if remainder.is_empty() => "",
            None => return None,
        };
    }
    Some((kind.trim().to_ascii_lowercase(), params))
}

/// The body of a 5xx, as the service's gateway sends it.
fn server_error_body(status: u16) -> String {
    let message = match status {
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    };
    status_body(status, message)
}

/// `{"status":N,"message":"…"}` in the service's field order (serde_json would sort them).
/// A JSON request's body as an object, or the 400 the service gives for a wrong
/// `Content-Type` or a body that is not one.
pub(crate) fn json_object<'a>(
    request: &Request,
    body: &'a Value,
) -> Result<&'a serde_json::Map<String, Value>, (u16, String)> {
    let bad = |message: &str| (400, status_body(400, message));
    let json_type = request
        .header("content-type")
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/json"));
    if !json_type {
        return Err(bad("Content-Type must be application/json"));
    }
    body.as_object().ok_or_else(|| bad("request body is not a JSON object"))
}

pub(crate) fn status_body(status: u16, message: &str) -> String {
    format!("{{\"status\":{status},\"message\":{}}}", json!(message))
}

fn send_json(responder: &mut Responder, status: u16, body: &str, extra: &[(&str, &str)]) {
    let mut headers = vec![("Content-Type", "application/json")];
    headers.extend_from_slice(extra);
    responder.send(status, &headers, body.as_bytes());
}

/// About four characters per token, rounded up, at least one.
pub(crate) fn tokens(chars: usize) -> usize {
    chars.div_ceil(4).max(1)
}

/// The tokens of the whole messages (role and content) `a` and `b` begin with alike; 0 if
/// they differ from the first. Estimated like the prompt, so never more than its tokens.
fn prefix_tokens(a: &[ChatMessage], b: &[ChatMessage]) -> u64 {
    let chars: usize = a
        .iter()
        .zip(b)
        .take_while(|(x, y)| x.role == y.role && x.content == y.content)
        .map(|(m, _)| m.content.chars().count())
        .sum();
    if chars == 0 { 0 } else { tokens(chars) as u64 }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis() as u64
}

fn uuid4() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An opaque token shaped like the real ones: a JWE compact serialization of ~1230 chars.
pub(crate) fn random_token() -> String {
    let random = |len: usize| -> String {
        let bytes: Vec<u8> =
            (0..len.div_ceil(16)).flat_map(|_| *uuid::Uuid::new_v4().as_bytes()).collect();
        base64_encode(&bytes)
            .replace('+', "-")
            .replace('/', "_")
            .trim_end_matches('=')
            .chars()
            .take(len)
            .collect()
    };
    format!(
        "eyJhbGciOiJkaXIiLCJlbmMiOiJBMTI4R0NNIiwidHlwIjoiSldUIn0..{}.{}.{}",
        random(16),
        random(1140),
        random(22)
    )
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for group in bytes.chunks(3) {
        let n = group.iter().enumerate().fold(0u32, |n, (i, &b)| n | ((b as u32) << (16 - 8 * i)));
        for i in 0..4 {
            match i <= group.len() {
                true => out.push(BASE64[((n >> (18 - 6 * i)) & 63) as usize] as char),
                false => out.push('='),
            }
        }
    }
    out
}

/// Standard Base64 with optional padding; `None` if it isn't Base64.
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    if text.is_empty() || text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::new();
    let (mut bits, mut count) = (0u32, 0);
    for c in text.bytes() {
        let value = BASE64.iter().position(|&b| b == c)? as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}

// --- certificates ---

/// A throwaway CA: EC P-256, CA:TRUE, keyCertSign, valid from yesterday for 30 days.
pub(crate) fn make_ca(name: &str) -> (X509, PKey<Private>) {
    let key = new_key();
    let mut subject = X509NameBuilder::new().expect("name builder");
    subject.append_entry_by_nid(Nid::ORGANIZATIONNAME, "gigabot tests").expect("O");
    subject.append_entry_by_nid(Nid::COMMONNAME, name).expect("CN");
    let subject = subject.build();
    let mut cert = certificate_builder(&key);
    cert.set_subject_name(&subject).expect("subject");
    cert.set_issuer_name(&subject).expect("issuer");
    cert.append_extension(
        BasicConstraints::new().critical().ca().build().expect("basicConstraints"),
    )
    .expect("add basicConstraints");
    cert.append_extension(
        KeyUsage::new().critical().key_cert_sign().crl_sign().build().expect("keyUsage"),
    )
    .expect("add keyUsage");
    let ski = SubjectKeyIdentifier::new().build(&cert.x509v3_context(None, None)).expect("SKI");
    cert.append_extension(ski).expect("add SKI");
    cert.sign(&key, MessageDigest::sha256()).expect("self-sign the CA");
    (cert.build(), key)
}

/// The server certificate for 127.0.0.1 and localhost (or only for `host`), signed by `ca`.
pub(crate) fn make_server_cert(
    ca: &X509,
    ca_key: &PKey<Private>,
    host: Option<&str>,
) -> (X509, PKey<Private>) {
    let key = new_key();
    let mut subject = X509NameBuilder::new().expect("name builder");
    subject.append_entry_by_nid(Nid::COMMONNAME, "localhost").expect("CN");
    let subject = subject.build();
    let mut cert = certificate_builder(&key);
    cert.set_subject_name(&subject).expect("subject");
    cert.set_issuer_name(ca.subject_name()).expect("issuer");
    cert.append_extension(BasicConstraints::new().critical().build().expect("basicConstraints"))
        .expect("add basicConstraints");
    cert.append_extension(
        KeyUsage::new().critical().digital_signature().build().expect("keyUsage"),
    )
    .expect("add keyUsage");
    cert.append_extension(ExtendedKeyUsage::new().server_auth().build().expect("EKU"))
        .expect("add EKU");
    let context = cert.x509v3_context(Some(ca), None);
    let san = match host {
        Some(host) => SubjectAlternativeName::new().dns(host).build(&context),
        None => SubjectAlternativeName::new().ip("127.0.0.1").dns("localhost").build(&context),
    }
    .expect("SAN");
    let aki = AuthorityKeyIdentifier::new().keyid(true).build(&context).expect("AKI");
    cert.append_extension(san).expect("add SAN");
    cert.append_extension(aki).expect("add AKI");
    cert.sign(ca_key, MessageDigest::sha256()).expect("sign the server certificate");
    (cert.build(), key)
}

fn new_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
    PKey::from_ec_key(EcKey::generate(&group).expect("EC key")).expect("PKey")
}

/// A v3 certificate with a random serial, this key, valid from yesterday for 30 days.
fn certificate_builder(key: &PKey<Private>) -> openssl::x509::X509Builder {
    let mut cert = X509::builder().expect("certificate builder");
    cert.set_version(2).expect("v3");
    let mut serial = BigNum::new().expect("bignum");
    serial.rand(127, MsbOption::MAYBE_ZERO, false).expect("random serial");
    cert.set_serial_number(&serial.to_asn1_integer().expect("serial")).expect("set serial");
    let yesterday = (now_ms() / 1000) as i64 - 24 * 60 * 60;
    cert.set_not_before(&Asn1Time::from_unix(yesterday).expect("not before"))
        .expect("set not before");
    let expiry = yesterday + 30 * 24 * 60 * 60;
    cert.set_not_after(&Asn1Time::from_unix(expiry).expect("not after")).expect("set not after");
    cert.set_pubkey(key).expect("public key");
    cert
}

pub(crate) fn fresh_temp_dir() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "gigabot-fake-gigachat-{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        now_ms()
    );
    let dir = std::env::temp_dir().join(name);
    fs::create_dir_all(&dir).expect("create the certificate dir");
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        assert_eq!(
            base64_encode(b"test-client-id:test-client-secret"),
            "dGVzdC1jbGllbnQtaWQ6dGVzdC1jbGllbnQtc2VjcmV0"
        );
        for text in ["", "a", "ab", "abc", "abcd", "Привет"] {
            let encoded = base64_encode(text.as_bytes());
            if !text.is_empty() {
                assert_eq!(base64_decode(&encoded).as_deref(), Some(text.as_bytes()), "{encoded}");
            }
        }
        assert_eq!(base64_decode("not base64!"), None);
        assert_eq!(base64_decode("QQ"), Some(b"A".to_vec()), "padding is optional");
    }

    #[test]
    fn tokens_look_like_the_real_ones() {
        let token = random_token();
        assert!((1200..1300).contains(&token.len()), "{}", token.len());
        assert_eq!(token.split('.').count(), 5);
        assert_ne!(token, random_token());
    }
}
