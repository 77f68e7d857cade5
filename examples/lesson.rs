//! The lesson's bot, line for line: the Python bot in Rust, with ureq and serde_json. One
//! message at a time, one fixed style, no memory; the product's environment variables, so the
//! tests' fakes serve it too. `cargo run --example lesson`; what gigabot adds: docs/lesson.md.

use serde_json::{Value, json};
use std::error::Error;
use std::time::Duration;
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider::NativeTls};
use ureq::{Agent, Body, http::Response};

const SYSTEM_PROMPT: &str = "Отвечай как научный сотрудник"; // the lesson's style
const POLL_SECONDS: u64 = 30; // how long one getUpdates waits for messages (a long poll)
const MESSAGE_LIMIT: usize = 4096; // characters in one Telegram message, at most

/// The lesson's global variables: the environment's value, else the real service's.
fn setting(name: &str) -> String {
    let default = match name {
        "TELEGRAM_API_URL" => "https://api.telegram.org",
        "GIGACHAT_SCOPE" => "GIGACHAT_API_PERS",
        "GIGACHAT_MODEL" => "GigaChat-2-Max", // the lesson's GigaChat-Max is the older one
        "GIGACHAT_AUTH_URL" => "https://ngw.devices.sberbank.ru:9443/api/v2/oauth",
        "GIGACHAT_BASE_URL" => "https://gigachat.devices.sberbank.ru/api/v1",
        _ => "", // TELEGRAM_TOKEN, GIGACHAT_CREDENTIALS, GIGACHAT_CA_BUNDLE_FILE
    };
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value.trim().to_string(),
        _ => default.to_string(),
    }
}

/// The lesson's get_gigachat_token(): a new access token (it lives 30 minutes).
fn get_gigachat_token(gigachat: &Agent) -> Result<String, Box<dyn Error>> {
    let key = format!("Basic {}", setting("GIGACHAT_CREDENTIALS"));
    let response = gigachat
        .post(&setting("GIGACHAT_AUTH_URL"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "application/json")
        .header("RqUID", &uuid::Uuid::new_v4().to_string())
        .header("Authorization", &key)
        .send(format!("scope={}", setting("GIGACHAT_SCOPE")));
    let token = read(response)?["access_token"].as_str().map(String::from);
    token.ok_or_else(|| "no access_token in the answer".into())
}

/// The lesson's handle_message(): the user's question to GigaChat; what to answer the user.
fn handle_message(gigachat: &Agent, user_text: &str) -> String {
    // A new token for every message, as in the lesson (gigabot keeps one for 30 minutes).
    let token = get_gigachat_token(gigachat).map_err(|err| eprintln!("gigachat oauth: {err}"));
    let Ok(token) = token else {
        return "Ошибка авторизации в GigaChat API.".into();
    };
    let payload = json!({"model": setting("GIGACHAT_MODEL"), "profanity_check": true, "messages": [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user_text},
    ]});
    let url = format!("{}/chat/completions", setting("GIGACHAT_BASE_URL"));
    let response = gigachat
        .post(&url)
        .header("Content-Type", "application/json")
        .header("Authorization", &format!("Bearer {token}"))
        .send(payload.to_string());
    let Ok(body) = read(response).map_err(|err| eprintln!("gigachat chat: {err}")) else {
        return "Ошибка при получении ответа от GigaChat API.".into();
    };
    match body["choices"][0]["message"]["content"].as_str() {
        Some(answer) if !answer.trim().is_empty() => answer.into(),
        _ => "Не удалось получить корректный ответ от GigaChat API.".into(),
    }
}

/// update.message.reply_text(): plain text, cut to what one Telegram message holds.
fn reply_text(telegram: &Agent, message: &Value, text: &str) {
    let text: String = text.chars().take(MESSAGE_LIMIT).collect();
    let params = json!({"chat_id": message["chat"]["id"], "text": text, "reply_parameters":
        {"message_id": message["message_id"], "allow_sending_without_reply": true}});
    if let Err(err) = call(telegram, "sendMessage", &params) {
        eprintln!("{err}");
    }
}

/// One Bot API call: its `result`, or an error line (never with the token in it).
fn call(telegram: &Agent, method: &str, params: &Value) -> Result<Value, String> {
    let token = setting("TELEGRAM_TOKEN");
    let url = format!("{}/bot{token}/{method}", setting("TELEGRAM_API_URL"));
    let request = telegram.post(&url).content_type("application/json");
    match read(request.send(params.to_string())) {
        Ok(body) => Ok(body["result"].clone()),
        Err(err) => Err(format!("telegram {method}: {err}").replace(&token, "***")),
    }
}

/// The JSON body of a 200 answer, else an error: the status and the body, on one line.
fn read(response: Result<Response<Body>, ureq::Error>) -> Result<Value, Box<dyn Error>> {
    let mut response = response?;
    let text = response.body_mut().read_to_string()?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    match response.status().as_u16() {
        200 => Ok(body),
        _ => Err(format!("HTTP {} {body}", response.status()).into()),
    }
}

/// The lesson's main(): the settings and the clients, then the loop run_polling() hides.
fn main() -> Result<(), String> {
    for name in ["TELEGRAM_TOKEN", "GIGACHAT_CREDENTIALS"] {
        if setting(name).is_empty() {
            return Err(format!("{name} is not set"));
        }
    }
    // TLS always checked, never verify=False: the CA file (PEM or DER), else the system's.
    let roots = match setting("GIGACHAT_CA_BUNDLE_FILE") {
        path if path.is_empty() => RootCerts::PlatformVerifier,
        path => {
            let ca = std::fs::read(&path).map_err(|err| format!("{path}: {err}"))?;
            let cert = Certificate::from_pem(&ca).unwrap_or(Certificate::from_der(&ca).to_owned());
            RootCerts::new_with_certs(&[cert])
        }
    };
    let telegram = agent(RootCerts::PlatformVerifier, POLL_SECONDS + 15); // outlasts a poll
    let gigachat = agent(roots, 120);
    println!("Бот запущен...");
    let mut offset: i64 = 0; // the update after the last one handled: Telegram forgets the rest
    loop {
        let params = json!({"offset": offset, "timeout": POLL_SECONDS});
        let updates = call(&telegram, "getUpdates", &params).unwrap_or_else(|err| {
            eprintln!("{err}");
            std::thread::sleep(Duration::from_secs(5)); // don't hammer a service that is down
            Value::Null
        });
        for update in updates.as_array().into_iter().flatten() {
            offset = offset.max(update["update_id"].as_i64().unwrap_or(0).saturating_add(1));
            let message = &update["message"];
            // MessageHandler(filters.TEXT & ~filters.COMMAND, handle_message)
            if let Some(text) = message["text"].as_str().filter(|t| !t.starts_with('/')) {
                reply_text(&telegram, message, &handle_message(&gigachat, text));
            }
        }
    }
}

/// An HTTP client that trusts `roots` and gives up after `seconds`.
fn agent(roots: RootCerts, seconds: u64) -> Agent {
    let tls = TlsConfig::builder().provider(NativeTls).root_certs(roots);
    Agent::config_builder()
        .http_status_as_error(false) // an error's body says what went wrong: read it
        .timeout_global(Some(Duration::from_secs(seconds)))
        .tls_config(tls.build())
        .build()
        .into()
}
