//! A strict fake of SaluteSpeech (speech to text) over real TLS, its own throwaway CA: the
//! OAuth endpoint (as GigaChat's, with the SaluteSpeech scopes and its own key) and the
//! synchronous `POST /rest/v1/speech:recognize` (shared/reference/gigachat-media.md §4).
//!
//! Strict like the reference: a live Bearer token, `Content-Type: audio/ogg;codecs=opus`,
//! raw OGG bytes (they start with `OggS`), at most 2 MB (413) and 1 minute of audio (the
//! last OGG page's granule position, at Opus's 48 kHz), a known `language`. The answer is
//! `{"result":[…],"emotions":[…],"status":200}` with the text set by `set_text`; tests can
//! queue failures (`fail_next`), which replace only the answer to a valid request: a
//! malformed one is refused first, so a scripted fault never hides it.

#![allow(dead_code)] // a toolbox: not every test uses every part

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openssl::ssl::{SslAcceptor, SslMethod};
use serde_json::json;

use crate::fake_gigachat::{
    base64_encode, fresh_temp_dir, make_ca, make_server_cert, random_token,
};
use crate::http::{Request, Responder, Server, Stream};

const SCOPES: [&str; 4] =
    ["SALUTE_SPEECH_PERS", "SALUTE_SPEECH_CORP", "SALUTE_SPEECH_B2B", "SBER_SPEECH"];
/// The limits of synchronous recognition.
pub const MAX_BYTES: usize = 2_000_000;
pub const MAX_SECS: u64 = 60;

/// One request the fake answered: path, headers, query, body length, status.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub query: String,
    pub body_len: usize,
    pub status: u16,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::http::header(&self.headers, name)
    }
}

struct State {
    key: String,
    scope: String,
    tokens: HashMap<String, u64>,
    text: Vec<String>,
    faults: VecDeque<(u16, String)>,
    oauth: Vec<Recorded>,
    recognitions: Vec<Recorded>,
}

/// The fake server; dropping it stops it and removes its certificate files.
pub struct FakeSaluteSpeech {
    state: Arc<Mutex<State>>,
    server: Server,
    dir: PathBuf,
}

impl FakeSaluteSpeech {
    pub fn start() -> FakeSaluteSpeech {
        let (ca, ca_key) = make_ca("gigabot SaluteSpeech test CA");
        let (cert, key) = make_server_cert(&ca, &ca_key, None);
        let dir = fresh_temp_dir();
        fs::write(dir.join("ca.pem"), ca.to_pem().expect("CA to PEM")).expect("write ca.pem");
        let mut acceptor =
            SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).expect("TLS acceptor");
        acceptor.set_private_key(&key).expect("server key");
        acceptor.set_certificate(&cert).expect("server certificate");
        let acceptor = acceptor.build();
        let state = Arc::new(Mutex::new(State {
            key: base64_encode(b"salute-client-id:salute-client-secret"),
            scope: "SALUTE_SPEECH_PERS".into(),
            tokens: HashMap::new(),
            text: vec!["Привет, что такое закон Ома?".into()],
            faults: VecDeque::new(),
            oauth: Vec::new(),
            recognitions: Vec::new(),
        }));
        let server = {
            let state = state.clone();
            Server::start(
                move |tcp| {
                    let tls =
                        acceptor.accept(tcp).map_err(|e| std::io::Error::other(e.to_string()))?;
                    Ok(Box::new(tls) as Stream)
                },
                move |request, responder| handle(&state, request, responder),
            )
        };
        FakeSaluteSpeech { state, server, dir }
    }

    /// "https://127.0.0.1:PORT/api/v2/oauth"
    pub fn auth_url(&self) -> String {
        format!("https://127.0.0.1:{}/api/v2/oauth", self.server.port())
    }

    /// "https://127.0.0.1:PORT/rest/v1"
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/rest/v1", self.server.port())
    }

    /// The SaluteSpeech project's authorization key.
    pub fn credentials(&self) -> String {
        self.lock().key.clone()
    }

    /// The CA that signed this server's certificate, PEM.
    pub fn ca_pem_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A bundle of this CA and the one at `other` (GigaChat's fake's): what
    /// `gigachat.ca_bundle_file` holds for both services.
    pub fn bundle_with(&self, other: &Path) -> PathBuf {
        let mut pem = fs::read(other).expect("read the other CA");
        pem.extend(fs::read(self.ca_pem_path()).expect("read the CA"));
        let path = self.dir.join("bundle.pem");
        fs::write(&path, pem).expect("write the bundle");
        path
    }

    /// The sentences the next recognitions return (empty: nothing recognized).
    pub fn set_text(&self, sentences: &[&str]) {
        self.lock().text = sentences.iter().map(|s| s.to_string()).collect();
    }

    /// The next recognition request gets this status and body.
    pub fn fail_next(&self, status: u16, body: &str) {
        self.lock().faults.push_back((status, body.into()));
    }

    /// Every token issued so far expires now.
    pub fn expire_all_tokens(&self) {
        for expiry in self.lock().tokens.values_mut() {
            *expiry = 0;
        }
    }

    pub fn oauth_requests(&self) -> Vec<Recorded> {
        self.lock().oauth.clone()
    }

    pub fn recognitions(&self) -> Vec<Recorded> {
        self.lock().recognitions.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }
}

impl Drop for FakeSaluteSpeech {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// OGG/Opus-shaped bytes of `secs` seconds: pages starting with `OggS`, the last one's
/// granule position at 48 kHz, padded to at least `len` bytes.
pub fn ogg(secs: u64, len: usize) -> Vec<u8> {
    let page = |granule: u64, payload: &[u8]| {
        let mut page = b"OggS\0\0".to_vec();
        page.extend(granule.to_le_bytes());
        page.extend([0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        page.push(payload.len().min(255) as u8);
        page.extend(payload);
        page
    };
    let mut bytes = page(0, b"OpusHead\x01\x01\x38\x01\x80\xbb\0\0\0\0\0");
    while bytes.len() < len {
        bytes.extend(page(0, &[0x55; 200]));
    }
    bytes.extend(page(secs * 48_000, b"OpusTags"));
    bytes
}

/// The audio's length by the last OGG page's granule position; None if not OGG.
fn ogg_secs(body: &[u8]) -> Option<u64> {
    if !body.starts_with(b"OggS") {
        return None;
    }
    let last = body.windows(4).rposition(|w| w == b"OggS")?;
    let granule = body.get(last + 6..last + 14)?;
    Some(u64::from_le_bytes(granule.try_into().ok()?) / 48_000)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis() as u64
}

fn status_body(status: u16, message: &str) -> String {
    format!("{{\"status\":{status},\"message\":{}}}", json!(message))
}

fn handle(state: &Mutex<State>, request: &Request, responder: &mut Responder) {
    let mut state = state.lock().unwrap();
    let record = |status| Recorded {
        path: request.path.clone(),
        headers: request.headers.clone(),
        query: request.query.clone(),
        body_len: request.body.len(),
        status,
    };
    let (status, body) = match (request.method.as_str(), request.path.as_str()) {
        ("POST", "/api/v2/oauth") => {
            let answer = state.oauth(request);
            state.oauth.push(record(answer.0));
            answer
        }
        (method, "/rest/v1/speech:recognize") => {
            let answer = match method {
                "POST" => state.recognize(request),
                // The status is UNCONFIRMED (the docs list no other method): 405.
                _ => (405, status_body(405, "Method Not Allowed")),
            };
            state.recognitions.push(record(answer.0));
            answer
        }
        _ => (404, status_body(404, "Not Found")),
    };
    drop(state);
    let headers = [("Content-Type", "application/json")];
    responder.send(status, &headers, body.as_bytes());
}

impl State {
    fn oauth(&mut self, request: &Request) -> (u16, String) {
        let error = |status: u16, code: u8, message: &str| {
            let body = format!("{{\"code\":{code},\"message\":{}}}", json!(message));
            (status, body)
        };
        let rquid_ok = request
            .header("rquid")
            .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok_and(|id| id.get_version_num() == 4));
        if !rquid_ok {
            return (400, String::new());
        }
        let key = request.header("authorization").and_then(|v| v.strip_prefix("Basic "));
        if key.map(str::trim) != Some(self.key.as_str()) {
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
            .map_or("", |(_, value)| value);
        if !SCOPES.contains(&scope) {
            return error(400, 1, "scope data format invalid");
        }
        if scope != self.scope {
            return error(400, 7, "scope from db not fully includes consumed scope");
        }
        let token = random_token();
        let expires_at = now_ms() + Duration::from_secs(30 * 60).as_millis() as u64;
        self.tokens.insert(token.clone(), expires_at);
        let body = json!({"access_token": token, "expires_at": expires_at});
        (200, body.to_string())
    }

    /// A recognition: the request checked first (gigachat-media.md §4.2), then a queued
    /// fault if any, else the text.
    fn recognize(&mut self, request: &Request) -> (u16, String) {
        if let Err(refusal) = self.check_recognition(request) {
            return refusal;
        }
        if let Some(fault) = self.faults.pop_front() {
            return fault;
        }
        let emotions = json!([{"negative": 0.01, "neutral": 0.95, "positive": 0.04}]);
        let body = json!({"result": self.text, "emotions": emotions, "status": 200});
        (200, body.to_string())
    }

    /// What the service refuses (§4.2): no live Bearer token (401); a Content-Type other than
    /// OGG/Opus, a query parameter it does not know or a bad value, an `X-Request-ID` that
    /// is not a UUID, audio that is not OGG or is over a minute (400); over 2 MB (413). The
    /// error bodies' words are the fake's (UNCONFIRMED, reference §4.2).
    fn check_recognition(&self, request: &Request) -> Result<(), (u16, String)> {
        let refuse = |status: u16, message: &str| Err((status, status_body(status, message)));
        let token = request.header("authorization").and_then(|v| v.strip_prefix("Bearer "));
        match token.and_then(|t| self.tokens.get(t.trim())) {
            Some(&expiry) if expiry > now_ms() => {}
            _ => return refuse(401, "Unauthorized"),
        }
        let content_type = request.header("content-type").unwrap_or("");
        let content_type: String = content_type.chars().filter(|c| !c.is_whitespace()).collect();
        if !content_type.eq_ignore_ascii_case("audio/ogg;codecs=opus") {
            return refuse(400, "unsupported content type");
        }
        for pair in request.query.split('&').filter(|p| !p.is_empty()) {
            let number = |value: &str| value.parse::<u32>().is_ok_and(|n| n > 0);
            match pair.split_once('=') {
                Some(("language", "ru-RU" | "en-US" | "kk-KZ")) => {}
                Some(("model", "general" | "callcenter")) => {}
                Some(("enable_profanity_filter", "true" | "false")) => {}
                Some(("sample_rate" | "channels_count", value)) if number(value) => {}
                _ => return refuse(400, &format!("bad parameter {pair}")),
            }
        }
        let request_id = request.header("x-request-id");
        if request_id.is_some_and(|id| uuid::Uuid::parse_str(id).is_err()) {
            return refuse(400, "X-Request-ID must be a UUID");
        }
        if request.body.len() > MAX_BYTES {
            return refuse(413, "audio is too large");
        }
        match ogg_secs(&request.body) {
            None => refuse(400, "audio is not OGG/Opus"),
            Some(secs) if secs > MAX_SECS => refuse(400, "audio is longer than 1 minute"),
            Some(_) => Ok(()),
        }
    }
}
