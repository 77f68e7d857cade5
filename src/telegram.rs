//! The Telegram Bot API calls gigabot uses, and their types. Names follow the Bot API docs
//! (`sendMessage`, `Update`, `reply_parameters`), so the docs explain this file. Types hold
//! only the fields the bot reads; unknown fields and update kinds are ignored, as new ones
//! appear with every Bot API version. Every request URL contains the bot token, so errors
//! name the API method and never the URL, and any text that could hold the URL goes through
//! [`Telegram::redact`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::{Value, json};
use ureq::Timeout;

use crate::config::{Secret, TelegramConfig};
use crate::incoming::{GenerationStopped, Message, Update, User};
use crate::net::{self, FilePart, Limits, multipart};

mod error;
mod files;
mod retry;
pub use error::{Error, ErrorKind};
use error::{decode, unreadable};
pub use error::{host_of, redact_token};
use retry::{minutes_seconds, never_sent, pause_before_retry, say_trouble};

#[derive(Deserialize)]
struct WebhookInfo {
    #[serde(default)]
    url: String,
}

/// The updates the bot asks for. Telegram leaves out kinds a bot does not list, and whether
/// the Stop button's `stopped_message_generation` (Bot API 10.3) and guest mode's
/// `guest_message` (10.0) are sent unlisted is not documented: listed, so they work either way.
const ALLOWED_UPDATES: [&str; 4] =
    ["message", "callback_query", "stopped_message_generation", "guest_message"];

/// The largest photo a bot may upload (Bot API "Sending files": 10 MB for photos).
pub const MAX_PHOTO_BYTES: usize = 10 << 20;

/// Telegram's limit on a caption's visible text, in Unicode code points, after parsing.
pub const CAPTION_LIMIT: usize = 1024;

/// A message to send; `reply_to` makes it a reply, `keyboard` adds inline buttons.
pub struct OutgoingMessage<'a> {
    pub chat_id: i64,
    pub text: &'a str,
    pub markup: Markup,
    pub reply_to: Option<i64>,
    pub keyboard: Option<&'a Value>,
}

/// How Telegram reads a text: rich HTML (a rich message, Bot API 10.1), Telegram HTML, or as
/// it is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Markup {
    Rich,
    Html,
    Plain,
}

/// What a call does when Telegram's flood control answers 429 with `retry_after`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OnFlood {
    /// Wait it out and send again, if at most a minute (`retry::MAX_FLOOD_WAIT_SECS`): the chat's
    /// own answer needs that wait. A longer one gives the message up.
    Wait,
    /// Return the 429 at once: for notices, not worth holding the loop (and every other
    /// chat) for. Network trouble is still retried, as for any call.
    GiveUp,
}

/// The Bot API client: one ureq agent (shared by clones), so connections are kept alive.
#[derive(Clone)]
pub struct Telegram {
    agent: ureq::Agent,
    api_url: String,
    token: Secret,
    poll_timeout_secs: u64,
    limits: Limits,
    stop: &'static AtomicBool,
    /// False for `check`: every call is tried once, its failure said at once.
    retries: bool,
}

impl Telegram {
    /// `stop` is checked between retries, so a shutdown is not held up by a dead network.
    pub fn new(config: &TelegramConfig, stop: &'static AtomicBool) -> Telegram {
        // The wait for an answer must outlast the long poll, or every idle poll would be an
        // error.
        let limits =
            Limits { connect: 15, send: 30, answer: config.poll_timeout_secs + 15, body: 60 };
        Telegram::with_limits(config, stop, limits, true)
    }

    /// For `gigabot check` (no long poll): a hanging Telegram is told in seconds, not after 45 s.
    pub fn for_check(config: &TelegramConfig) -> Telegram {
        // check makes single calls, never retried: there is nothing for a stop to cut short.
        static NEVER: AtomicBool = AtomicBool::new(false);
        let limits = Limits { connect: 5, send: 5, answer: 10, body: 10 };
        Telegram::with_limits(config, &NEVER, limits, false)
    }

    fn with_limits(
        config: &TelegramConfig,
        stop: &'static AtomicBool,
        limits: Limits,
        retries: bool,
    ) -> Telegram {
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
            retries,
        }
    }

    /// A transport error in words: the phase that timed out and its limit, or ureq's redacted text.
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
        let detail = self.detail(err);
        if never_sent(err) { ErrorKind::Transient(detail) } else { ErrorKind::Lost(detail) }
    }

    /// Removes the token from a text that may contain a request URL.
    pub fn redact(&self, text: &str) -> String {
        redact_token(text, self.token.expose())
    }

    /// One HTTP exchange with a JSON or multipart body; unpacks the envelope (`error::decode`).
    fn post<T: DeserializeOwned>(
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
        let header = response.headers().get("retry-after").and_then(|v| v.to_str().ok());
        let retry_after = header.and_then(|v| v.trim().parse::<u64>().ok());
        let body = response.body_mut().with_config().limit(64 * 1024 * 1024);
        let bytes =
            body.read_to_vec().map_err(|err| fail(unreadable(status, self.detail(&err))))?;
        decode(method, status, retry_after, &bytes).map_err(fail)
    }

    /// The one way a call goes: `params` as JSON; after a failure, as `retry::pause_before_retry`
    /// says for the method, a pause and another try: network trouble, 5xx, 429 and 409 are
    /// waited out (1 s doubling to 10 s, with jitter: the bot answers again within about 12 s of
    /// Telegram coming back); a call about one chat gives up on a 5xx after a few tries and on a
    /// 429 over a minute; drafts and "typing…" get one try. Trouble is logged as it starts,
    /// after 1, 5 and every 15 minutes, and as it ends. A 401 and refusals return at once.
    fn call<T: DeserializeOwned>(
        &self,
        method: &'static str,
        params: &Value,
        on_flood: OnFlood,
    ) -> Result<T, Error> {
        let body = serde_json::to_vec(params).expect("serde_json::Value always serializes");
        let (mut failures, mut since, mut previous) = (0u32, None, Duration::ZERO);
        loop {
            let err = match self.post(method, "application/json", &body) {
                Ok(result) => {
                    if let Some(since) = since {
                        let took = minutes_seconds(Instant::elapsed(&since));
                        log::info!(
                            "telegram {method}: works again after {failures} failed tries in {took}"
                        );
                    }
                    return Ok(result);
                }
                Err(err) => err,
            };
            let pause =
                self.retries.then(|| pause_before_retry(method, &err.kind, on_flood, failures));
            let Some(wait) = pause.flatten() else {
                return Err(err);
            };
            failures += 1;
            let elapsed = since.get_or_insert_with(Instant::now).elapsed();
            say_trouble(&err, failures, previous, elapsed, wait, host_of(&self.api_url));
            previous = elapsed;
            if !self.pause(wait) {
                return Err(Error { method, kind: ErrorKind::Stopped });
            }
        }
    }

    /// Sleeps unless a stop is requested (checked every 100 ms); false when stopping. For
    /// the loop's own pauses too, which a stop must cut short as well.
    pub fn pause(&self, duration: Duration) -> bool {
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
        self.call("getMe", &json!({}), OnFlood::Wait)
    }

    /// Deletes a webhook left from another setup: getUpdates does not work while one is set.
    pub fn remove_webhook_if_set(&self) -> Result<bool, Error> {
        let info: WebhookInfo = self.call("getWebhookInfo", &json!({}), OnFlood::Wait)?;
        if info.url.is_empty() {
            return Ok(false);
        }
        let _: bool = self.call("deleteWebhook", &json!({}), OnFlood::Wait)?;
        Ok(true)
    }

    /// The command menu users see next to the text field.
    pub fn set_my_commands(&self, commands: &[(&str, &str)]) -> Result<(), Error> {
        let menu = commands.iter().map(|(c, d)| json!({"command": c, "description": d}));
        let params = json!({ "commands": menu.collect::<Vec<_>>() });
        self.call("setMyCommands", &params, OnFlood::Wait).map(|_: bool| ())
    }

    /// Long-polls for updates after `offset`. One that does not parse is logged and returned
    /// empty (only its id), so the loop moves past it. Any trouble (a proxy's refusal too) is
    /// waited out, as the bot can do nothing without updates; only a 401 or a stop ends it.
    pub fn get_updates(&self, offset: i64) -> Result<Vec<Update>, Error> {
        let params = json!({
            "offset": offset,
            "timeout": self.poll_timeout_secs,
            "allowed_updates": ALLOWED_UPDATES,
        });
        let raw: Vec<Value> = self.call("getUpdates", &params, OnFlood::Wait)?;
        Ok(raw.into_iter().filter_map(parse_update).collect())
    }

    /// The Stop buttons pressed in the updates waiting from `offset` (the loop's: nothing
    /// unhandled is confirmed), to see one while an answer streams. One try, no wait: Telegram
    /// holds an empty getUpdates at an offset asked for under 3 s ago, but the update being
    /// answered is itself still waiting, so a peek is never empty.
    pub fn peek_stops(&self, offset: i64) -> Result<Vec<GenerationStopped>, Error> {
        let params = json!({"offset": offset, "timeout": 0, "allowed_updates": ALLOWED_UPDATES});
        let body = serde_json::to_vec(&params).expect("serde_json::Value always serializes");
        let raw: Vec<Value> = self.post("getUpdates", "application/json", &body)?;
        let stop =
            |u: &Value| serde_json::from_value(u.get("stopped_message_generation")?.clone()).ok();
        Ok(raw.iter().filter_map(stop).collect())
    }

    /// Sends a message (link previews off: answers are full of links), a rich one with
    /// `Markup::Rich`. `on_flood` says whether a 429 is waited out (a chat's own answer) or
    /// returned at once (a notice).
    pub fn send_message(&self, msg: &OutgoingMessage, on_flood: OnFlood) -> Result<Message, Error> {
        let mut params = text_params(msg.chat_id, msg.text, msg.markup, msg.keyboard);
        if let Some(id) = msg.reply_to {
            params["reply_parameters"] = reply_to(id);
        }
        let rich = msg.markup == Markup::Rich;
        self.call(if rich { "sendRichMessage" } else { "sendMessage" }, &params, on_flood)
    }

    /// Sends a JPEG as a photo, with `caption` (Telegram HTML, at most 1024 visible characters) if
    /// any, as a reply to `reply_to`. One try: a photo that fails is reported, and the caller sends
    /// the text on its own, so nothing is lost and no picture comes twice.
    pub fn send_photo(
        &self,
        chat_id: i64,
        reply_to: Option<i64>,
        jpeg: &[u8],
        caption: Option<&str>,
    ) -> Result<Message, Error> {
        let chat_id = chat_id.to_string();
        let mut fields = vec![("chat_id", chat_id.as_str())];
        if let Some(caption) = caption {
            fields.extend([("caption", caption), ("parse_mode", "HTML")]);
        }
        let reply = reply_to.map(|id| self::reply_to(id).to_string());
        if let Some(reply) = &reply {
            fields.push(("reply_parameters", reply));
        }
        let photo = FilePart { field: "photo", name: "image.jpg", mime: "image/jpeg", bytes: jpeg };
        let (content_type, body) = multipart(&fields, &photo);
        self.post("sendPhoto", &content_type, &body)
    }

    /// The answer being written as a draft (private chats only; it lasts 30 s or until the message
    /// is sent), with a Stop button (Bot API 10.3); an empty text shows "Thinking…". One try: a
    /// failed draft is only a preview that did not show; the next comes later.
    pub fn send_message_draft(
        &self,
        chat_id: i64,
        draft_id: i64,
        text: &str,
        markup: Markup,
    ) -> Result<(), Error> {
        let mut params = json!({"chat_id": chat_id, "draft_id": draft_id, "can_stop": true});
        match markup {
            Markup::Rich => params["rich_message"] = json!({"html": text}),
            Markup::Html => params["parse_mode"] = json!("HTML"),
            Markup::Plain => {}
        }
        if markup != Markup::Rich {
            params["text"] = json!(text);
        }
        let method =
            if markup == Markup::Rich { "sendRichMessageDraft" } else { "sendMessageDraft" };
        self.call(method, &params, OnFlood::GiveUp).map(|_: bool| ())
    }

    /// Answers a guest message (guest mode, Bot API 10.0) with one article whose content is
    /// `text`: rich HTML, or Telegram HTML. Sent once, as a message is.
    pub fn answer_guest_query(
        &self,
        query_id: &str,
        text: &str,
        markup: Markup,
    ) -> Result<(), Error> {
        let content = match markup {
            Markup::Rich => json!({"rich_message": {"html": text}}),
            _ => {
                json!({"message_text": text, "parse_mode": "HTML", "link_preview_options": {"is_disabled": true}})
            }
        };
        let result = json!({"type": "article", "id": "answer", "title": "GigaChat", "input_message_content": content});
        let params = json!({"guest_query_id": query_id, "result": result});
        self.call("answerGuestQuery", &params, OnFlood::Wait).map(|_: IgnoredAny| ())
    }

    /// Shows "typing…" for up to 5 s. Best effort: a failure is logged by the caller.
    pub fn send_typing(&self, chat_id: i64) -> Result<(), Error> {
        let params = json!({"chat_id": chat_id, "action": "typing"});
        self.call("sendChatAction", &params, OnFlood::GiveUp).map(|_: bool| ())
    }

    /// Stops the spinner on a pressed button, with a short toast.
    pub fn answer_callback_query(&self, id: &str, text: &str) -> Result<(), Error> {
        let params = json!({"callback_query_id": id, "text": text});
        self.call("answerCallbackQuery", &params, OnFlood::Wait).map(|_: bool| ())
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
        let markup = if html { Markup::Html } else { Markup::Plain };
        let mut params = text_params(chat_id, text, markup, keyboard);
        params["message_id"] = json!(message_id);
        match self.call::<IgnoredAny>("editMessageText", &params, OnFlood::Wait) {
            Err(err) if err.is_not_modified() => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Confirms handled updates without waiting: used on shutdown.
    pub fn confirm(&self, offset: i64) -> Result<(), Error> {
        let params = json!({"offset": offset, "limit": 1, "timeout": 0});
        self.call("getUpdates", &params, OnFlood::GiveUp).map(|_: Vec<IgnoredAny>| ())
    }
}

/// A reply to `message_id`, sent even if that message is gone meanwhile.
fn reply_to(message_id: i64) -> Value {
    json!({"message_id": message_id, "allow_sending_without_reply": true})
}

/// A message's text to send or edit, read as `markup`, buttons if any, no link previews.
fn text_params(chat_id: i64, text: &str, markup: Markup, keyboard: Option<&Value>) -> Value {
    let mut params = json!({"chat_id": chat_id});
    match markup {
        Markup::Rich => params["rich_message"] = json!({"html": text}),
        _ => {
            params["text"] = json!(text);
            params["link_preview_options"] = json!({"is_disabled": true});
        }
    }
    if markup == Markup::Html {
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
    let err = match serde_json::from_value::<Update>(raw) {
        Ok(update) => return Some(update),
        Err(err) => err,
    };
    let Some(update_id) = id else {
        log::warn!("an update without update_id was skipped ({err})");
        return None;
    };
    let err = without_strings(&err.to_string());
    log::warn!("update {update_id}: cannot read it ({err}); skipped");
    Some(Update { update_id, ..Update::default() })
}

/// serde's messages quote what they choke on (`string "Привет"`): no message text into the log.
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
