//! What went wrong with a call to GigaChat or SaluteSpeech, in words a person can act on: the one
//! [`Error`] of both services, what a status means ([`status_failure`]), and the words of the
//! transport's failures (OpenSSL's for an untrusted certificate, the phase that ran out of time).

use std::fmt;
use std::path::Path;

use ureq::Timeout;

use super::connect_secs;

/// Which service failed: the first word of its errors, in the log and in `check`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Service {
    GigaChat,
    SaluteSpeech,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Service::GigaChat => "gigachat",
            Service::SaluteSpeech => "salutespeech",
        })
    }
}

/// A failed call to one of Sber's services; the bot gives each failure its own reply.
#[derive(Debug)]
pub struct Error {
    pub service: Service,
    pub failure: Failure,
}

/// How a call failed.
#[derive(Debug)]
pub enum Failure {
    /// OAuth refused the key or scope, or the API a fresh token; `check`: where the key came from.
    Auth { status: u16, message: String, check: String },
    /// 429: GigaChat's personal tier allows one request at a time.
    RateLimited,
    /// 402 (GigaChat's chat): the paid tokens are used up.
    PaymentRequired,
    /// 404 (GigaChat's chat): the configured model does not exist for this key.
    UnknownModel(String),
    /// 413: the request (a conversation, a file, a voice note) is too large; its message.
    TooLarge(String),
    /// 5xx.
    Server(u16),
    /// Another 4xx (400, 422…): the service refused the request as made.
    Refused { status: u16, message: String },
    /// A phase of the call took too long: which one, and its limit, in words.
    Timeout(String),
    /// The server's certificate is not trusted: why, and what to do.
    Tls(String),
    /// DNS, connection refused or reset…
    Network(String),
    /// A 200 whose body is not what the service sends.
    BadResponse(String),
    /// GigaChat's answer stream broke off before its end.
    Interrupted(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let service = self.service;
        match &self.failure {
            Failure::Auth { status, message, check } => {
                write!(f, "{service}: authorization failed ({status} {message}): check {check}")
            }
            Failure::RateLimited => write!(f, "{service}: too many requests (429)"),
            Failure::PaymentRequired => {
                write!(f, "{service}: payment required (402): the token package is used up")
            }
            Failure::UnknownModel(model) => write!(
                f,
                "{service}: no such model {model:?} (404): set gigachat.model to a model `gigabot check` lists"
            ),
            // A voice note is all SaluteSpeech is sent; its 413 says nothing more.
            Failure::TooLarge(_) if service == Service::SaluteSpeech => {
                write!(f, "{service}: the audio is too large (413)")
            }
            Failure::TooLarge(message) => write!(f, "{service}: request too large (413 {message})"),
            Failure::Server(status) => write!(f, "{service}: server error ({status})"),
            Failure::Refused { status, message } => {
                write!(f, "{service}: request refused ({status} {message})")
            }
            Failure::Timeout(what) | Failure::Tls(what) => write!(f, "{service}: {what}"),
            Failure::Network(detail) => write!(f, "{service}: cannot connect: {detail}"),
            Failure::BadResponse(detail) => write!(f, "{service}: unreadable answer: {detail}"),
            Failure::Interrupted(detail) => write!(f, "{service}: the answer broke off: {detail}"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// A short name of the failure, for the log line and the /stats counters.
    pub fn kind(&self) -> String {
        match &self.failure {
            Failure::Auth { status, .. } => format!("auth {status}"),
            Failure::RateLimited => "rate limited 429".into(),
            Failure::PaymentRequired => "payment required 402".into(),
            Failure::UnknownModel(_) => "unknown model 404".into(),
            Failure::TooLarge(_) => "too large 413".into(),
            Failure::Server(status) => format!("server {status}"),
            Failure::Refused { status, .. } => format!("refused {status}"),
            Failure::Timeout(_) => "timeout".into(),
            Failure::Tls(_) => "tls".into(),
            Failure::Network(_) => "network".into(),
            Failure::BadResponse(_) => "bad response".into(),
            Failure::Interrupted(_) => "interrupted".into(),
        }
    }
}

/// Which API answered: what a status means depends on it.
#[derive(Clone, Copy, Debug)]
pub enum Api<'a> {
    /// OAuth: 400, 401 and 403 all mean the key or the scope was refused.
    OAuth,
    /// GigaChat's chat and model list, for this model: 402 is the token package, 404 the model.
    Chat(&'a str),
    /// GigaChat's file storage: 403 is a file of another client, refused like a 404.
    Files,
    /// GigaChat's embeddings: a 404 is `knowledge.model`, not the chat model.
    Embeddings,
    /// SaluteSpeech's recognition.
    Speech,
}

/// What a status other than 200 means; `check` names the settings the key came from.
pub fn status_failure(api: Api, status: u16, message: String, check: &str) -> Failure {
    match (api, status) {
        (_, 401) | (Api::OAuth, 400 | 403) | (Api::Chat(_) | Api::Speech, 403) => {
            Failure::Auth { status, message, check: check.to_string() }
        }
        (Api::Chat(_), 402) => Failure::PaymentRequired,
        (Api::Chat(model), 404) => Failure::UnknownModel(model.to_string()),
        (_, 413) => Failure::TooLarge(message),
        (_, 429) => Failure::RateLimited,
        (_, 500..) => Failure::Server(status),
        _ => Failure::Refused { status, message },
    }
}

/// OpenSSL's words for "I do not trust this certificate".
pub fn is_certificate_error(text: &str) -> bool {
    let text = text.to_lowercase();
    [
        "certificate verify failed",
        "unable to get local issuer",
        "self-signed certificate",
        "self signed certificate",
        "certificate has expired",
        "hostname mismatch",
        "ip address mismatch",
        "certificate is not yet valid",
        "certificate is not trusted",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// What to do about an untrusted certificate (OpenSSL's `detail`): GigaChat's advice tells
/// a wrong host, a wrong clock and a missing CA apart (`ca_bundle_file`: the configured one).
pub fn tls_advice(service: Service, detail: &str, ca_bundle_file: Option<&Path>) -> String {
    if service == Service::SaluteSpeech {
        return format!(
            "the server's TLS certificate is not trusted ({detail}): put the Russian Trusted Root CA (https://www.gosuslugi.ru/crt) into gigachat.ca_bundle_file"
        );
    }
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
    match ca_bundle_file {
        None => format!(
            "the server's TLS certificate is not trusted ({detail}): download the Russian Trusted Root CA from https://www.gosuslugi.ru/crt and set gigachat.ca_bundle_file (GIGACHAT_CA_BUNDLE_FILE) to it"
        ),
        Some(path) => format!(
            "the server's TLS certificate is not signed by a certificate in gigachat.ca_bundle_file {} ({detail}): download the Russian Trusted Root CA from https://www.gosuslugi.ru/crt and point gigachat.ca_bundle_file at it",
            path.display()
        ),
    }
}

/// Which phase ran out of time, with the limit that applied to it (`secs`, the setting
/// `name`): a connect that hangs is a 15 s connect, not the 120 s answer timeout.
pub fn timeout_text(service: Service, phase: Timeout, secs: u64, name: &str) -> String {
    let connect = connect_secs(secs);
    match (service, phase) {
        (Service::GigaChat, Timeout::Resolve | Timeout::Connect) => format!(
            "could not connect within {connect} s (DNS, TCP and TLS): check the network and gigachat.auth_url / gigachat.base_url"
        ),
        (Service::SaluteSpeech, Timeout::Resolve | Timeout::Connect) => format!(
            "could not connect within {connect} s: check the network and salutespeech.auth_url / salutespeech.url"
        ),
        (Service::SaluteSpeech, _) => format!("no answer within {secs} s"),
        (_, Timeout::SendRequest | Timeout::SendBody) => {
            format!("sending the request took longer than {secs} s ({name})")
        }
        (_, Timeout::RecvBody) => format!("the answer did not finish within {secs} s ({name})"),
        _ => format!("no answer within {secs} s ({name})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each API's statuses as the two services' clients read them before they shared one
    /// table: (status, the kind, the error text).
    #[test]
    fn a_status_means_what_its_api_says() {
        let text = |service, api, status| {
            let failure = status_failure(api, status, "msg".into(), "KEY");
            let error = Error { service, failure };
            (error.kind(), error.to_string())
        };
        let gigachat = |api, status| text(Service::GigaChat, api, status);
        let auth =
            |status: u16| format!("gigachat: authorization failed ({status} msg): check KEY");
        let chat = Api::Chat("GigaChat-2-Max");
        for status in [400, 401, 403] {
            assert_eq!(gigachat(Api::OAuth, status), (format!("auth {status}"), auth(status)));
        }
        for status in [401, 403] {
            assert_eq!(gigachat(chat, status), (format!("auth {status}"), auth(status)));
        }
        assert_eq!(gigachat(chat, 400).0, "refused 400");
        assert_eq!(
            gigachat(chat, 402).1,
            "gigachat: payment required (402): the token package is used up"
        );
        assert_eq!(
            gigachat(chat, 404),
            (
                "unknown model 404".into(),
                "gigachat: no such model \"GigaChat-2-Max\" (404): set gigachat.model to a model `gigabot check` lists".into()
            )
        );
        assert_eq!(
            gigachat(chat, 413),
            ("too large 413".into(), "gigachat: request too large (413 msg)".into())
        );
        assert_eq!(
            gigachat(chat, 429),
            ("rate limited 429".into(), "gigachat: too many requests (429)".into())
        );
        assert_eq!(
            gigachat(chat, 503),
            ("server 503".into(), "gigachat: server error (503)".into())
        );
        assert_eq!(
            gigachat(chat, 422),
            ("refused 422".into(), "gigachat: request refused (422 msg)".into())
        );
        // Files: a 403 or a 404 is about the file, a 402 is not the chat's token package.
        assert_eq!(gigachat(Api::Files, 401).0, "auth 401");
        for status in [402, 403, 404, 415] {
            assert_eq!(gigachat(Api::Files, status).0, format!("refused {status}"));
        }
        assert_eq!(gigachat(Api::Files, 413).0, "too large 413");

        let salute = |api, status| text(Service::SaluteSpeech, api, status);
        let auth = |status: u16| {
            (
                format!("auth {status}"),
                format!("salutespeech: authorization failed ({status} msg): check KEY"),
            )
        };
        for status in [400, 401, 403] {
            assert_eq!(salute(Api::OAuth, status), auth(status));
        }
        assert_eq!(salute(Api::Speech, 401), auth(401));
        assert_eq!(salute(Api::Speech, 403), auth(403));
        assert_eq!(
            salute(Api::Speech, 413),
            ("too large 413".into(), "salutespeech: the audio is too large (413)".into())
        );
        assert_eq!(salute(Api::Speech, 429).1, "salutespeech: too many requests (429)");
        assert_eq!(salute(Api::OAuth, 502).1, "salutespeech: server error (502)");
        for status in [400, 402, 404] {
            assert_eq!(salute(Api::Speech, status).0, format!("refused {status}"));
        }
    }

    #[test]
    fn recognises_openssl_certificate_errors() {
        let unknown = "native-tls: error:0A000086:SSL routines:tls_post_process_server_certificate:certificate verify failed:ssl/statem/statem_clnt.c:1889: (unable to get local issuer certificate)";
        assert!(is_certificate_error(unknown));
        assert!(!is_certificate_error("io: Connection refused (os error 111)"));
        assert!(tls_advice(Service::GigaChat, unknown, None).contains("GIGACHAT_CA_BUNDLE_FILE"));
        let expired = tls_advice(Service::GigaChat, "certificate has expired", None);
        assert!(expired.contains("`date`"), "{expired}");
        assert!(
            tls_advice(Service::SaluteSpeech, "certificate has expired", None).starts_with(
                "the server's TLS certificate is not trusted (certificate has expired)"
            )
        );
    }

    #[test]
    fn a_timeout_names_its_phase_and_limit() {
        let gigachat = |phase| timeout_text(Service::GigaChat, phase, 120, "gigachat.timeout_secs");
        assert!(gigachat(Timeout::Connect).starts_with("could not connect within 15 s (DNS"));
        assert_eq!(
            gigachat(Timeout::RecvBody),
            "the answer did not finish within 120 s (gigachat.timeout_secs)"
        );
        assert_eq!(
            gigachat(Timeout::RecvResponse),
            "no answer within 120 s (gigachat.timeout_secs)"
        );
        let salute = |phase| timeout_text(Service::SaluteSpeech, phase, 8, "gigachat.timeout_secs");
        assert!(salute(Timeout::Resolve).starts_with("could not connect within 8 s: check"));
        assert_eq!(salute(Timeout::RecvBody), "no answer within 8 s");
    }
}
