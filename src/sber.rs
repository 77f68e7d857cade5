//! What GigaChat and SaluteSpeech share as Sber's services: the agent, whose TLS is always
//! verified (against `gigachat.ca_bundle_file`, since the Russian Trusted Root CA signs
//! both, else the system trust store); the OAuth token for a key and a scope, cached; the
//! one way an API call is made with it ([`Client::send`]: a refused token renewed once,
//! any status but 200 an [`Error`], which names the service and says what to do).

use std::path::PathBuf;

use serde::Deserialize;
use ureq::Body;
use ureq::http::Response;

use crate::clock::unix_now_ms;
use crate::config::Secret;
use crate::net::{self, Limits};

mod failure;

pub use failure::{Api, Error, Failure, Service, timeout_text};
use failure::{is_certificate_error, status_failure, tls_advice};

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
fn connect_secs(timeout_secs: u64) -> u64 {
    timeout_secs.min(15)
}

/// One service's client: its agent and OAuth token, and what its errors name.
pub struct Client {
    pub service: Service,
    pub agent: ureq::Agent,
    pub oauth: OAuth,
    /// The longest body read from this service (OAuth's and an error's too).
    pub max_body: u64,
    /// The limit of each phase of a call, as the agent has it.
    pub timeout_secs: u64,
    /// The setting a GigaChat timeout names as the limit that applied.
    pub timeout_name: &'static str,
    /// Where the key came from, for "check …" in an authorization error.
    pub key_origin: String,
    /// `gigachat.ca_bundle_file`, which GigaChat's TLS advice names.
    pub ca_bundle_file: Option<PathBuf>,
}

/// One call to an API with the access token, made again as it is after a refused token.
pub struct Request<'a> {
    /// What the log calls it: "chat", "file upload", "recognize"…
    pub what: &'static str,
    pub api: Api<'a>,
    pub url: String,
    /// The answer wanted: JSON, an event stream, a JPEG.
    pub accept: &'static str,
    /// The body and its `Content-Type`; none for a GET.
    pub body: Option<(&'a str, &'a [u8])>,
    /// GigaChat's `X-Session-ID`: a conversation's requests share it, so the service caches
    /// their common prompt (cached tokens are not billed).
    pub session: Option<&'a str>,
}

impl Client {
    /// The access token, from the cache while it has more than a minute to live, else a
    /// new one from OAuth, cached: the lesson's request (RqUID, the key as Basic, the scope).
    pub fn token(&mut self) -> Result<Secret, Error> {
        if let Some(token) = self.oauth.cached() {
            return Ok(token);
        }
        let rq_uid = uuid::Uuid::new_v4().to_string();
        let result = self
            .agent
            .post(&self.oauth.auth_url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .header("RqUID", &rq_uid)
            .header("Authorization", &format!("Basic {}", self.oauth.key.expose()))
            .send(format!("scope={}", self.oauth.scope).as_bytes());
        let mut response = result.map_err(|err| self.transport_error(err))?;
        let status = response.status().as_u16();
        if status != 200 {
            let message = error_message(&self.error_body(&mut response)?);
            log::warn!("{} oauth: HTTP {status} {message} (RqUID {rq_uid})", self.service);
            return Err(self.error(status_failure(Api::OAuth, status, message, &self.key_origin)));
        }
        let body = self.text(&mut response)?;
        let token = self.oauth.keep(&body).map_err(|bad| self.error(Failure::BadResponse(bad)))?;
        let valid_ms = self.oauth.expires_at_ms().unwrap_or_default().saturating_sub(unix_now_ms());
        log::debug!("{} oauth: new token, valid for {} s", self.service, valid_ms / 1000);
        Ok(token)
    }

    /// Makes `request` with the access token. A 401 to a cached token (revoked, or expired
    /// early) gets one new token and one retry; any other status than 200 is an error,
    /// logged with the server's message. Returns the 200 response with its body unread (a
    /// stream is read as it comes) and the request's id (the server's, else the one sent).
    pub fn send(&mut self, request: &Request) -> Result<(Response<Body>, String), Error> {
        let had_token = self.oauth.token.is_some();
        let token = self.token()?;
        match self.send_once(request, &token) {
            Err(Error { failure: Failure::Auth { status: 401, .. }, .. }) if had_token => {
                let (service, what) = (self.service, request.what);
                log::info!(
                    "{service} {what}: the access token was refused (401); getting a new one"
                );
                self.oauth.token = None;
                let token = self.token()?;
                self.send_once(request, &token)
            }
            other => other,
        }
    }

    /// [`Client::send`], and the whole body of the answer.
    pub fn call(&mut self, request: &Request) -> Result<String, Error> {
        let (mut response, _) = self.send(request)?;
        self.text(&mut response)
    }

    fn send_once(
        &self,
        request: &Request,
        token: &Secret,
    ) -> Result<(Response<Body>, String), Error> {
        let sent_id = uuid::Uuid::new_v4().to_string();
        let bearer = format!("Bearer {}", token.expose());
        let result = match request.body {
            Some((content_type, body)) => {
                let post = self.agent.post(&request.url).header("Content-Type", content_type);
                let post = post.header("Accept", request.accept).header("Authorization", &bearer);
                let post = post.header("X-Request-ID", &sent_id);
                match request.session {
                    Some(session) => post.header("X-Session-ID", session).send(body),
                    None => post.send(body),
                }
            }
            None => self
                .agent
                .get(&request.url)
                .header("Accept", request.accept)
                .header("Authorization", &bearer)
                .header("X-Request-ID", &sent_id)
                .call(),
        };
        let mut response = result.map_err(|err| self.transport_error(err))?;
        let header = response.headers().get("x-request-id").and_then(|v| v.to_str().ok());
        let id = header.map_or(sent_id, str::to_string);
        let status = response.status().as_u16();
        if status == 200 {
            return Ok((response, id));
        }
        let message = error_message(&self.error_body(&mut response)?);
        // Info: the caller says what the failure means (a 403 on /balance is no failure at all).
        log::info!("{} {}: HTTP {status} {message} (request {id})", self.service, request.what);
        Err(self.error(status_failure(request.api, status, message, &self.key_origin)))
    }

    /// The body of a 200, at most `max_body` bytes of UTF-8.
    pub fn text(&self, response: &mut Response<Body>) -> Result<String, Error> {
        let body = response.body_mut().with_config().limit(self.max_body);
        body.read_to_string().map_err(|err| self.transport_error(err))
    }

    /// The body of an error: whatever its bytes, the status says what went wrong.
    fn error_body(&self, response: &mut Response<Body>) -> Result<String, Error> {
        let body = response.body_mut().with_config().limit(self.max_body).read_to_vec();
        let bytes = body.map_err(|err| self.transport_error(err))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// A call that got no answer, or lost it midway, in words a person can act on.
    pub fn transport_error(&self, err: ureq::Error) -> Error {
        let (text, service) = (err.to_string(), self.service);
        let failure = match err {
            ureq::Error::Timeout(phase) => {
                Failure::Timeout(timeout_text(service, phase, self.timeout_secs, self.timeout_name))
            }
            ureq::Error::BodyExceedsLimit(limit) => Failure::BadResponse(match service {
                Service::GigaChat => format!("an answer longer than {} MiB", limit >> 20),
                Service::SaluteSpeech => format!("an answer over {} MiB", limit >> 20),
            }),
            _ if is_certificate_error(&text) => {
                Failure::Tls(tls_advice(service, &text, self.ca_bundle_file.as_deref()))
            }
            _ => Failure::Network(text),
        };
        self.error(failure)
    }

    /// This service's error.
    pub fn error(&self, failure: Failure) -> Error {
        Error { service: self.service, failure }
    }
}

/// Error bodies: `{"status", "message"}` from the APIs, `{"code", "message"}` from OAuth.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
}

/// The `message` of an error body, or its length when it has none.
fn error_message(body: &str) -> String {
    let message = serde_json::from_str::<ErrorBody>(body).map(|b| b.message).unwrap_or_default();
    if message.is_empty() { format!("({} bytes, no message)", body.len()) } else { message }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Secret,
    expires_at: u64,
}

/// One service's OAuth: its endpoint, key and scope, and the access token while it lives.
pub struct OAuth {
    auth_url: String,
    key: Secret,
    scope: String,
    /// The access token and when it expires (Unix ms).
    token: Option<(Secret, u64)>,
}

impl OAuth {
    /// No token yet: the first call fetches one.
    pub fn new(auth_url: &str, key: Secret, scope: &str) -> OAuth {
        OAuth { auth_url: auth_url.into(), key, scope: scope.into(), token: None }
    }

    /// The cached token while it has more than a minute to live.
    fn cached(&self) -> Option<Secret> {
        let (token, expires_at_ms) = self.token.as_ref()?;
        (*expires_at_ms > unix_now_ms() + TOKEN_MARGIN_MS).then(|| token.clone())
    }

    /// Caches the token of a 200's body; why it is not one, in words.
    fn keep(&mut self, body: &str) -> Result<Secret, String> {
        let parsed: TokenResponse =
            serde_json::from_str(body).map_err(|err| format!("oauth: {err}"))?;
        // It goes into a header: a token that cannot must not be cached and reused.
        let token = parsed.access_token.expose();
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("oauth: the access token is not a token".into());
        }
        // The docs once showed seconds here; the service sends milliseconds.
        let at = parsed.expires_at;
        let expires_at_ms = if at < 100_000_000_000 { at * 1000 } else { at };
        self.token = Some((parsed.access_token.clone(), expires_at_ms));
        Ok(parsed.access_token)
    }

    /// When the cached token expires (Unix ms), for `check`.
    pub fn expires_at_ms(&self) -> Option<u64> {
        self.token.as_ref().map(|(_, at)| *at)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};

    use super::*;

    type Answers = Arc<Mutex<Vec<(u16, &'static [u8])>>>;

    /// A plain HTTP server on 127.0.0.1 that gives `answers` in turn, a thread per
    /// connection; its URL, and the record of each request: method, path, Authorization.
    fn serve(mut answers: Vec<(u16, &'static [u8])>) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        answers.reverse();
        let (answers, asked): (Answers, _) = (Arc::new(Mutex::new(answers)), Arc::default());
        let record = Arc::clone(&asked);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let (answers, record) = (Arc::clone(&answers), Arc::clone(&record));
                std::thread::spawn(move || answer(stream.unwrap(), &answers, &record));
            }
        });
        (url, asked)
    }

    /// Answers the requests of one connection until it closes or the answers run out.
    fn answer(stream: TcpStream, answers: &Answers, record: &Mutex<Vec<String>>) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        loop {
            let (mut head, mut line) = (Vec::new(), String::new());
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                head.push(std::mem::take(&mut line));
            }
            let Some(first) = head.first() else { return };
            let field = |name: &str| {
                let prefix = format!("{name}: ");
                head.iter().find_map(|h| h.strip_prefix(&prefix)).map(|v| v.trim().to_string())
            };
            let length = field("content-length").map_or(0, |n| n.parse().unwrap());
            reader.read_exact(&mut vec![0; length]).unwrap();
            let request: Vec<&str> = first.split(' ').take(2).collect();
            let auth = field("authorization").unwrap_or_default();
            record.lock().unwrap().push(format!("{} {auth}", request.join(" ")));
            let Some((status, body)) = answers.lock().unwrap().pop() else { return };
            let head = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n\r\n", body.len());
            writer.write_all(&[head.as_bytes(), body].concat()).unwrap();
        }
    }

    fn client(url: &str) -> Client {
        let key = serde_json::from_str("\"KEY\"").unwrap();
        Client {
            service: Service::GigaChat,
            agent: agent(&[], 5),
            oauth: OAuth::new(&format!("{url}/oauth"), key, "SCOPE"),
            max_body: 1 << 20,
            timeout_secs: 5,
            timeout_name: "gigachat.timeout_secs",
            key_origin: "GIGACHAT_CREDENTIALS".into(),
            ca_bundle_file: None,
        }
    }

    fn models(client: &mut Client, url: &str) -> Result<String, Error> {
        let url = format!("{url}/models");
        let accept = "application/json";
        let api = Api::Chat("M");
        client.call(&Request { what: "models", api, url, accept, body: None, session: None })
    }

    const TOKEN_1: &[u8] = br#"{"access_token":"t1","expires_at":4102444800000}"#;
    const TOKEN_2: &[u8] = br#"{"access_token":"t2","expires_at":4102444800000}"#;

    #[test]
    fn a_refused_cached_token_is_renewed_once() {
        let (one, two, refused) = ((200, &b"one"[..]), (200, &b"two"[..]), (401, &b"{}"[..]));
        let (url, asked) = serve(vec![
            (200, TOKEN_1),
            one,
            refused,
            (200, TOKEN_2),
            two,
            refused,
            (200, TOKEN_1),
            refused,
        ]);
        let mut client = client(&url);
        assert_eq!(models(&mut client, &url).unwrap(), "one");
        assert_eq!(models(&mut client, &url).unwrap(), "two");
        // A fresh token refused too is the key's fault: no third token.
        let err = models(&mut client, &url).unwrap_err();
        assert_eq!(err.kind(), "auth 401");
        let (oauth, t1, t2) =
            ("POST /oauth Basic KEY", "GET /models Bearer t1", "GET /models Bearer t2");
        let expected = [oauth, t1, t1, oauth, t2, t2, oauth, t1];
        assert_eq!(*asked.lock().unwrap(), expected.map(String::from));
    }

    #[test]
    fn a_new_token_refused_is_not_tried_again() {
        let (url, asked) = serve(vec![(200, TOKEN_1), (401, br#"{"message":"scope"}"#)]);
        let err = models(&mut client(&url), &url).unwrap_err();
        let text = "gigachat: authorization failed (401 scope): check GIGACHAT_CREDENTIALS";
        assert_eq!(err.to_string(), text);
        assert_eq!(asked.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_status_is_its_error_whatever_the_body() {
        let refused = br#"{"code":6,"message":"credentials doesn't match db data"}"#;
        let (url, asked) = serve(vec![(401, refused), (200, TOKEN_1), (503, b"\xff\xfe")]);
        let mut client = client(&url);
        assert_eq!(
            models(&mut client, &url).unwrap_err().to_string(),
            "gigachat: authorization failed (401 credentials doesn't match db data): check GIGACHAT_CREDENTIALS"
        );
        let err = models(&mut client, &url).unwrap_err();
        assert_eq!(
            (err.kind(), err.to_string()),
            ("server 503".into(), "gigachat: server error (503)".into())
        );
        assert_eq!(asked.lock().unwrap().len(), 3);
    }

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
