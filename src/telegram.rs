//! The Telegram Bot API calls gigabot uses, and their types.
//!
//! Names follow the Bot API docs (`sendMessage`, `Update`, `reply_parameters`), so the docs
//! explain this file. Types hold only the fields the bot reads; unknown fields and unknown
//! update kinds are ignored, as new ones appear with every Bot API version.
//!
//! Every request URL contains the bot token, so errors name the API method and never the
//! URL, and any text that could hold the URL goes through [`Telegram::redact`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::{Value, json};
use ureq::Timeout;

use crate::config::{Secret, TelegramConfig};
use crate::net::{self, Limits};

mod error;
mod files;
mod photo;
mod redact;
mod retry;
mod types;
pub use error::{Error, ErrorKind};
pub use files::MAX_DOWNLOAD_BYTES;
pub use photo::{CAPTION_LIMIT, MAX_PHOTO_BYTES};
pub use redact::{host_of, redact_token};
use retry::{
    MAX_RETRY_AFTER_SECS, minutes_seconds, never_sent, pause_before_retry, retry_delay,
    time_to_say_again,
};
pub use types::{
    CallbackQuery, Chat, File, Message, MessageEntity, Update, User, Voice, entity_bytes,
    entity_text,
};

#[derive(Deserialize)]
struct WebhookInfo {
    #[serde(default)]
    url: String,
}

/// The `{ok, result, description, error_code, parameters}` envelope of every answer.
#[derive(Deserialize)]
struct Envelope {
    ok: bool,
    result: Option<Value>,
    description: Option<String>,
    error_code: Option<u16>,
    parameters: Option<ResponseParameters>,
}

#[derive(Deserialize)]
struct ResponseParameters {
    retry_after: Option<u64>,
    migrate_to_chat_id: Option<i64>,
}

/// A message to send; `reply_to` makes it a reply, `keyboard` adds inline buttons.
pub struct OutgoingMessage<'a> {
    pub chat_id: i64,
    pub text: &'a str,
    pub html: bool,
    pub reply_to: Option<i64>,
    pub keyboard: Option<&'a Value>,
}

/// What a call does when Telegram's flood control answers 429 with `retry_after`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OnFlood {
    /// Wait it out and send again, if it is at most a minute (`retry::MAX_FLOOD_WAIT_SECS`): the chat's own
    /// answer needs that wait. A longer one gives the message up.
    Wait,
    /// Return the 429 at once: for notices, not worth holding the loop (and every other
    /// chat) for. Network trouble is still retried, as for any call.
    GiveUp,
}

/// The Bot API client: one ureq agent, so connections are kept alive between calls.
/// Clones share the agent and its connection pool.
#[derive(Clone)]
pub struct Telegram {
    agent: ureq::Agent,
    api_url: String,
    token: Secret,
    poll_timeout_secs: u64,
    limits: Limits,
    stop: &'static AtomicBool,
}

impl Telegram {
    /// `stop` is checked between retries, so a shutdown is not held up by a dead network.
    pub fn new(config: &TelegramConfig, stop: &'static AtomicBool) -> Telegram {
        // The wait for an answer must outlast the long poll, or every idle poll would be an
        // error.
        let limits =
            Limits { connect: 15, send: 30, answer: config.poll_timeout_secs + 15, body: 60 };
        Telegram::with_limits(config, stop, limits)
    }

    /// For `gigabot check`, which makes no long poll: a hanging Telegram is reported within
    /// seconds, not after the 45 s a poll may take.
    pub fn for_check(config: &TelegramConfig) -> Telegram {
        // check makes single calls, never retried: there is nothing for a stop to cut short.
        static NEVER: AtomicBool = AtomicBool::new(false);
        let limits = Limits { connect: 5, send: 5, answer: 10, body: 10 };
        Telegram::with_limits(config, &NEVER, limits)
    }

    fn with_limits(config: &TelegramConfig, stop: &'static AtomicBool, limits: Limits) -> Telegram {
        let token = config
            .token
            .clone()
            .expect("config::load requires a token for the commands that talk to Telegram");
        // Telegram's certificate is a public CA's, in the system trust store.
        let agent = net::agent(limits, ureq::tls::RootCerts::PlatformVerifier);
        Telegram {
            agent,
            api_url: config.api_url.clone(),
            token,
            poll_timeout_secs: config.poll_timeout_secs,
            limits,
            stop,
        }
    }

    /// A transport error in words: which phase ran out of time, with its real limit, or
    /// ureq's own text without the token.
    fn detail(&self, err: &ureq::Error) -> String {
        let host = host_of(&self.api_url);
        let l = self.limits;
        match err {
            ureq::Error::Timeout(Timeout::Resolve | Timeout::Connect) => {
                format!("could not connect to {host} within {} s", l.connect)
            }
            ureq::Error::Timeout(Timeout::SendRequest | Timeout::SendBody) => {
                format!("sending to {host} took longer than {} s", l.send)
            }
            ureq::Error::Timeout(Timeout::RecvBody) => {
                format!("the answer from {host} did not finish within {} s", l.body)
            }
            ureq::Error::Timeout(_) => format!("no answer from {host} within {} s", l.answer),
            _ => self.redact(&err.to_string()),
        }
    }

    /// A request that got no answer: not done if it never left, else most likely done.
    fn unanswered(&self, err: &ureq::Error) -> ErrorKind {
        match never_sent(err) {
            true => ErrorKind::Transient(self.detail(err)),
            false => ErrorKind::Lost(self.detail(err)),
        }
    }

    /// Removes the token from a text that may contain a request URL.
    pub fn redact(&self, text: &str) -> String {
        redact_token(text, self.token.expose())
    }

    /// One HTTP call: sends `params` as JSON and unpacks the envelope.
    fn call_once<T: DeserializeOwned>(
        &self,
        method: &'static str,
        params: &Value,
    ) -> Result<T, Error> {
        let body = serde_json::to_vec(params).expect("serde_json::Value always serializes");
        self.post_once(method, "application/json", &body)
    }

    /// One HTTP call with a body of this type (JSON, or a multipart form); unpacks the envelope.
    fn post_once<T: DeserializeOwned>(
        &self,
        method: &'static str,
        content_type: &str,
        body: &[u8],
    ) -> Result<T, Error> {
        let fail = |kind| Error { method, kind };
        let url = format!("{}/bot{}/{method}", self.api_url, self.token.expose());
        let request = self.agent.post(&url).header("Content-Type", content_type);
        let mut response = request.send(body).map_err(|err| fail(self.unanswered(&err)))?;
        let status = response.status().as_u16();
        let retry_header = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        // nginx in front of Telegram answers 502 with an HTML page, a proxy on the way a 4xx
        // one: not done. A 2xx that does not read, or a gateway that timed out waiting for
        // Telegram (504), may well have been done.
        let unreadable = |detail: String| match status {
            200..=299 | 504 => ErrorKind::Lost(detail),
            _ => ErrorKind::Server(detail),
        };
        let body = response.body_mut().with_config().limit(64 * 1024 * 1024);
        let bytes = body.read_to_vec().map_err(|err| fail(unreadable(self.detail(&err))))?;
        let Ok(envelope) = serde_json::from_slice::<Envelope>(&bytes) else {
            let detail =
                format!("unreadable answer (HTTP {status}, {} bytes, not JSON)", bytes.len());
            return Err(fail(unreadable(detail)));
        };
        if envelope.ok {
            let result = envelope.result.unwrap_or(Value::Null);
            return serde_json::from_value(result)
                .map_err(|err| fail(ErrorKind::Lost(format!("unexpected result: {err}"))));
        }
        let code = envelope.error_code.unwrap_or(status);
        let description = envelope.description.unwrap_or_else(|| format!("error {code}"));
        let params = envelope.parameters;
        let kind = match code {
            429 => ErrorKind::RetryAfter(
                params
                    .as_ref()
                    .and_then(|p| p.retry_after)
                    .or(retry_header)
                    .unwrap_or(5)
                    .min(MAX_RETRY_AFTER_SECS),
            ),
            401 => ErrorKind::Unauthorized,
            // A malformed token: api.telegram.org answers "Not Found" for every method.
            404 if description == "Not Found" => ErrorKind::Unauthorized,
            409 => ErrorKind::Conflict(description),
            504 => ErrorKind::Lost(format!("{description} ({code})")),
            500.. => ErrorKind::Server(format!("{description} ({code})")),
            _ => ErrorKind::Rejected {
                code,
                description,
                migrate_to_chat_id: params.and_then(|p| p.migrate_to_chat_id),
            },
        };
        Err(fail(kind))
    }

    /// A call that waits out network trouble, 5xx, 429 and 409, with exponential backoff
    /// (1 s doubling to 10 s, with jitter: the bot answers again within about 12 s of
    /// Telegram coming back). A call about one chat gives up on a 5xx after a few tries and
    /// on a 429 longer than a minute (`retry::pause_before_retry`). It logs when trouble
    /// starts, again after 1 and 5 minutes and then every 15, and when it ends. Returns at
    /// once on 401 and on refusals, which retrying cannot fix.
    pub fn call<T: DeserializeOwned>(
        &self,
        method: &'static str,
        params: &Value,
    ) -> Result<T, Error> {
        self.call_with(method, params, OnFlood::Wait)
    }

    /// [`Telegram::call`], with a choice of what a 429 does.
    fn call_with<T: DeserializeOwned>(
        &self,
        method: &'static str,
        params: &Value,
        on_flood: OnFlood,
    ) -> Result<T, Error> {
        let mut failures = 0u32;
        let mut since: Option<Instant> = None;
        let mut previous = Duration::ZERO;
        loop {
            let err = match self.call_once(method, params) {
                Ok(result) => {
                    if let Some(since) = since {
                        log::info!(
                            "telegram {method}: works again after {failures} failed tries in {}",
                            minutes_seconds(since.elapsed())
                        );
                    }
                    return Ok(result);
                }
                Err(err) => err,
            };
            let Some(wait) = pause_before_retry(method, &err.kind, on_flood, failures) else {
                return Err(err);
            };
            failures += 1;
            let elapsed = since.get_or_insert_with(Instant::now).elapsed();
            if failures == 1 {
                match &err.kind {
                    ErrorKind::Conflict(_) => log::error!(
                        "{err}: another copy of this bot is running with the same token, or a webhook is set; stop the other copy. Retrying"
                    ),
                    _ => log::warn!("{err}; retrying"),
                }
            } else if time_to_say_again(previous, elapsed) {
                log::warn!(
                    "{err}; still failing after {}: check the network and telegram.api_url ({}); `gigabot check` tests the connection. Retrying",
                    minutes_seconds(elapsed),
                    host_of(&self.api_url)
                );
            } else {
                log::debug!("{err}; try {failures}, next in {} ms", wait.as_millis());
            }
            previous = elapsed;
            if !self.sleep(wait) {
                return Err(Error { method, kind: ErrorKind::Stopped });
            }
        }
    }

    /// Sleeps unless a stop is requested; false when stopping.
    fn sleep(&self, duration: Duration) -> bool {
        let until = Instant::now() + duration;
        while !self.stop.load(Ordering::SeqCst) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
        false
    }

    /// Checks the token and learns the bot's id and @username. Waits out network trouble
    /// (the bot may start before the network), but a wrong token returns at once.
    pub fn get_me(&self) -> Result<User, Error> {
        self.call("getMe", &json!({}))
    }

    /// [`Telegram::get_me`] without retries, for `check`.
    pub fn get_me_once(&self) -> Result<User, Error> {
        self.call_once("getMe", &json!({}))
    }

    /// Deletes a webhook left from another setup: getUpdates does not work while one is set.
    pub fn remove_webhook_if_set(&self) -> Result<bool, Error> {
        let info: WebhookInfo = self.call("getWebhookInfo", &json!({}))?;
        if info.url.is_empty() {
            return Ok(false);
        }
        let _: bool = self.call("deleteWebhook", &json!({}))?;
        Ok(true)
    }

    /// The command menu users see next to the text field.
    pub fn set_my_commands(&self, commands: &[(&str, &str)]) -> Result<(), Error> {
        let commands: Vec<Value> = commands
            .iter()
            .map(|(command, description)| json!({"command": command, "description": description}))
            .collect();
        self.call("setMyCommands", &json!({ "commands": commands })).map(|_: bool| ())
    }

    /// Long-polls for updates after `offset`. An update that does not parse is logged and
    /// returned empty (only its id), so the loop still moves past it. Telegram has no reason
    /// to refuse a poll (a 400, say, from a proxy in between): such a refusal is logged and
    /// waited out like network trouble, since the bot can do nothing without updates.
    pub fn get_updates(&self, offset: i64) -> Result<Vec<Update>, Error> {
        let params = json!({
            "offset": offset,
            "timeout": self.poll_timeout_secs,
            "allowed_updates": ["message", "callback_query"],
        });
        let mut refusals = 0;
        loop {
            match self.call::<Vec<Value>>("getUpdates", &params) {
                Ok(raw) => return Ok(raw.into_iter().filter_map(parse_update).collect()),
                Err(err) if matches!(err.kind, ErrorKind::Rejected { .. }) => {
                    let delay = retry_delay(refusals);
                    if refusals == 0 {
                        log::error!("{err}; polling again with growing pauses");
                    } else {
                        log::debug!("{err}; next poll in {} s", delay.as_secs());
                    }
                    refusals += 1;
                    if !self.sleep(delay) {
                        return Err(Error { method: "getUpdates", kind: ErrorKind::Stopped });
                    }
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Sends a message (link previews off: answers are full of links). `on_flood` says
    /// whether a 429 is waited out (a chat's own answer) or returned at once (a notice).
    pub fn send_message(
        &self,
        message: &OutgoingMessage,
        on_flood: OnFlood,
    ) -> Result<Message, Error> {
        let mut params = text_params(message.chat_id, message.text, message.html, message.keyboard);
        if let Some(id) = message.reply_to {
            params["reply_parameters"] =
                json!({"message_id": id, "allow_sending_without_reply": true});
        }
        self.call_with("sendMessage", &params, on_flood)
    }

    /// Shows the answer being written as a draft (private chats only): ephemeral, it
    /// lasts 30 s or until the message itself is sent. One try: a draft that fails is
    /// only a preview that did not show, and the next one comes later.
    pub fn send_message_draft(
        &self,
        chat_id: i64,
        draft_id: i64,
        text: &str,
        html: bool,
    ) -> Result<(), Error> {
        let mut params = json!({"chat_id": chat_id, "draft_id": draft_id, "text": text});
        if html {
            params["parse_mode"] = json!("HTML");
        }
        self.call_once("sendMessageDraft", &params).map(|_: bool| ())
    }

    /// Shows "typing…" for up to 5 s. Best effort: a failure is logged by the caller.
    pub fn send_typing(&self, chat_id: i64) -> Result<(), Error> {
        let params = json!({"chat_id": chat_id, "action": "typing"});
        self.call_once("sendChatAction", &params).map(|_: bool| ())
    }

    /// Stops the spinner on a pressed button, with a short toast.
    pub fn answer_callback_query(&self, id: &str, text: &str) -> Result<(), Error> {
        let params = json!({"callback_query_id": id, "text": text});
        self.call("answerCallbackQuery", &params).map(|_: bool| ())
    }

    /// Replaces a message's text (and keyboard). "Not modified" counts as success.
    pub fn edit_message_text(
        &self,
        chat_id: i64,
        message_id: i64,
        text: &str,
        html: bool,
        keyboard: Option<&Value>,
    ) -> Result<(), Error> {
        let mut params = text_params(chat_id, text, html, keyboard);
        params["message_id"] = json!(message_id);
        match self.call::<IgnoredAny>("editMessageText", &params) {
            Err(err) if err.is_not_modified() => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Confirms handled updates without waiting: used on shutdown.
    pub fn confirm(&self, offset: i64) -> Result<(), Error> {
        let params = json!({"offset": offset, "limit": 1, "timeout": 0});
        self.call_once("getUpdates", &params).map(|_: Vec<IgnoredAny>| ())
    }
}

/// The text of a message to send or edit: Telegram HTML if `html`, inline buttons if any,
/// link previews off.
fn text_params(chat_id: i64, text: &str, html: bool, keyboard: Option<&Value>) -> Value {
    let mut params = json!({
        "chat_id": chat_id,
        "text": text,
        "link_preview_options": {"is_disabled": true},
    });
    if html {
        params["parse_mode"] = json!("HTML");
    }
    if let Some(keyboard) = keyboard {
        params["reply_markup"] = keyboard.clone();
    }
    params
}

/// Parses one update; a broken one keeps only its id and is logged.
fn parse_update(raw: Value) -> Option<Update> {
    let id = raw.get("update_id").and_then(Value::as_i64);
    match serde_json::from_value::<Update>(raw) {
        Ok(update) => Some(update),
        Err(err) => match id {
            Some(update_id) => {
                let err = without_strings(&err.to_string());
                log::warn!("update {update_id}: cannot read it ({err}); skipped");
                Some(Update { update_id, ..Update::default() })
            }
            None => {
                log::warn!("an update without update_id was skipped ({err})");
                None
            }
        },
    }
}

/// serde's messages quote the values they choke on (`invalid type: string "Привет"`); a
/// message text must not reach the log that way.
fn without_strings(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, part) in text.split('"').enumerate() {
        if i > 0 {
            out.push('"');
        }
        out.push_str(if i % 2 == 1 { "…" } else { part });
    }
    out
}

#[cfg(test)]
mod tests;
