//! A strict fake of the Telegram Bot API, for driving the real bot binary in tests.
//!
//! Strict on purpose: a fake that accepts anything proves nothing. It routes
//! `/bot{token}/{method}` like the real server (method names case-insensitive; parameters from
//! the query string, a form or JSON), answers with the `{ok, result}` / `{ok, error_code,
//! description, parameters}` envelope with HTTP status = `error_code`, and uses the exact error
//! strings of the reference (shared/reference/telegram-api.md §1–§5, §9, §12). HTML is parsed
//! by `tg_html` as TDLib does, text length is counted in code points after parsing and
//! trimming, and `getUpdates` long-polls on a condition variable and confirms by offset.
//!
//! Tests script it (`push` updates built with the functions at the bottom, `fail_next` faults,
//! `fail_for` outages that last a time, seeded `set_random_faults`, a `set_kill_hook` that
//! crashes the bot in a chosen call, `end_polls` that ends a parked long poll as its timeout
//! would, `press_stop` on a draft, `set_old_server` without the rich methods) and observe it
//! (`calls`, each with its arrival and answer times, `in_flight`, `sent_to`, `replies_to`,
//! `drafts_to`, `polls` and `peeks`, `stop_presses`, `rich_media`, `confirmed_offset`),
//! waiting with `wait_until`, which polls the record with a deadline. Like the server, it
//! slows a client that retries without a pause (getUpdates conflicts and repeated polls,
//! reference §2).
//!
//! Rich messages and the Stop button (Bot API 10.1–10.3, shared/reference/telegram-10x.md):
//! `sendRichMessage` and `sendRichMessageDraft` read `rich_message.html` with `tg_rich` and
//! keep the `RichBlock`s (`SentMessage::blocks`, `SentDraft::blocks`); drafts keep
//! `can_stop`, `keep_on_stop` and whether they show "Thinking…". Where the reference says
//! UNCONFIRMED the fake takes the stricter reading, so that a wrong guess fails in a test.
//!
//! Guest mode (Bot API 10.0, telegram-10x.md "Guest mode"): `getMe` says
//! `supports_guest_queries` (`set_guest_mode`), `push_guest` queues a `guest_message` with
//! a `guest_query_id`, and `answerGuestQuery` takes one article result per query, read as
//! sendMessage or sendRichMessage reads its text (`guest_answers`). The guest chat is not a
//! chat the bot is a member of: sending there is 403, unless the same id is a chat the bot
//! knows (a guest chat may share its id with another chat of the bot's, the spec warns).
//!
//! Order of checks, where several could fail: first what the Bot API server checks while
//! reading parameters (text length, empty text, parse mode and HTML, markup and reply
//! parameters, `chat_id`), then what TDLib knows (chat, message length after trimming, reply
//! target, message to edit), then what only Telegram's servers know (blocked, kicked,
//! `BUTTON_DATA_INVALID`, "message is not modified").

#![allow(dead_code)] // a toolbox: not every test uses every part

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::http::{Request, Responder, Server};
use crate::tg_html;

// Declared here, not in main.rs: the benchmark (examples/bench.rs) includes this file by
// path, and it must find the reader of rich messages with it.
#[path = "tg_rich.rs"]
pub mod tg_rich;

/// The bot the fake plays, as in the fixtures.
pub const BOT_ID: i64 = 7000000001;
pub const BOT_USERNAME: &str = "SomeBot";
pub const BOT_FIRST_NAME: &str = "Some Bot";
/// A realistic 46-character token for the bot.
pub const TOKEN: &str = "7000000001:AAHk3fJ9xQ2mV8pL5rT1wZ6yB4nC7dE0gHs";

/// The cast of the fixtures: a private user, a group user, a supergroup, a channel.
pub const IVAN: i64 = 123456789;
pub const ANNA: i64 = 987654321;
pub const GROUP: i64 = -1001234567890;
pub const CHANNEL: i64 = -1009876543210;

const FIRST_UPDATE_ID: i64 = 873000101;
const FIRST_CALLBACK_QUERY_ID: u64 = 530276453942312085;
/// A draft shows this long unless it is sent again (the Bot API docs: "a temporary
/// 30-second preview").
const DRAFT_LIFETIME: Duration = Duration::from_secs(30);
/// Telegram forgets a callback query this long after the press (reference §2: the server
/// keeps a `callback_query` update 150 s, and answering later gets "query is too old").
const CALLBACK_QUERY_LIFETIME: Duration = Duration::from_secs(150);
/// How long a guest query stays answerable: UNCONFIRMED (telegram-10x.md; inline queries
/// expire in seconds). A minute lets a slow model answer in tests; `set_guest_query_lifetime`
/// shortens it to test the bot's handling of "query is too old".
const GUEST_QUERY_LIFETIME: Duration = Duration::from_secs(60);
/// The server answers a getUpdates conflict (409) at most once this often; a conflicting
/// request that comes sooner is held this long before it fails (reference §2, "409
/// Conflict": `fail_query_conflict`).
const CONFLICT_HOLD: Duration = Duration::from_secs(3);
const MAX_TEXT_BYTES: usize = 32768;
const MAX_TEXT_CHARS: usize = 4096;
/// Bots may download files up to 20 MiB (the server's `MAX_DOWNLOAD_FILE_SIZE = 20 << 20`).
pub const MAX_DOWNLOAD: u64 = 20 << 20;

const METHODS: [&str; 17] = [
    "getMe",
    "getFile",
    "getUpdates",
    "getWebhookInfo",
    "deleteWebhook",
    "setMyCommands",
    "sendMessage",
    "sendPhoto",
    "sendChatAction",
    "answerCallbackQuery",
    "editMessageText",
    "editMessageReplyMarkup",
    "deleteMessage",
    "sendMessageDraft",
    "sendRichMessage",
    "sendRichMessageDraft",
    "answerGuestQuery",
];

/// The methods of rich messages (Bot API 10.1), which an older server does not know.
const RICH_METHODS: [&str; 2] = ["sendRichMessage", "sendRichMessageDraft"];
/// What `Fault::RichRejected` answers (400). UNCONFIRMED: how Telegram words a refused rich
/// message is not known (telegram-10x.md: "expect a 400 `Bad Request: …`"); this is the
/// prefix the fake's own refusals of rich HTML carry (`tg_rich`).
pub const RICH_REJECTED: &str = "Bad Request: can't parse rich message: RICH_MESSAGE_INVALID";
/// Update kinds Telegram leaves out unless `allowed_updates` lists them (the docs: "all update
/// types except chat_member, message_reaction, and message_reaction_count"). Whether
/// `stopped_message_generation` (Bot API 10.3) is in the default set is UNCONFIRMED
/// (telegram-10x.md: "list it explicitly"), so the fake delivers it only when listed; so is
/// whether `guest_message` (Bot API 10.0) is, and the fake treats it alike.
const NOT_BY_DEFAULT: [&str; 5] = [
    "chat_member",
    "message_reaction",
    "message_reaction_count",
    "stopped_message_generation",
    "guest_message",
];

const CHAT_ACTIONS: [&str; 11] = [
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
];

/// Inline keyboard button kinds: a button has exactly one.
const BUTTON_KINDS: [&str; 10] = [
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
];

const NOT_MODIFIED: &str = "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message";
const QUERY_TOO_OLD: &str = "query is too old and response timeout expired or query ID is invalid";
const CANT_INITIATE: &str = "Forbidden: bot can't initiate conversation with a user";
const CONFLICT_OTHER_POLL: &str = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running";
const CONFLICT_WEBHOOK: &str = "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first";
const CONFLICT_SET_WEBHOOK: &str = "Conflict: terminated by setWebhook request";
const NGINX_504: &str = "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n";
const NGINX_502: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n";

/// A fault to inject into the next call of a method.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and JSON body (an envelope of your choice).
    Status(u16, Value),
    /// 429 `Too Many Requests: retry after N`, with `parameters.retry_after` and `Retry-After`.
    TooManyRequests(u64),
    /// 502 with nginx's HTML page, as the front-end proxy sometimes sends.
    BadGatewayHtml,
    /// Read the request, then close the connection without answering (it is not handled).
    Drop,
    /// Handle the request, then close the connection without the answer: Telegram did it,
    /// the bot never heard (a "lost response").
    DropAfter,
    /// Handle the request, then answer nginx's 504 page: the gateway gave up waiting while
    /// Telegram did it (the bot cannot tell, and must not send it again).
    GatewayTimeoutAfter,
    /// Wait, then handle the call normally.
    Delay(Duration),
    /// 200 with a body that is not JSON.
    Garbage,
    /// Answer with this status and exactly these bytes as an `application/json` body: any
    /// bytes, JSON or not, UTF-8 or not (robustness tests; see `properties`). With a 2xx
    /// status the call is handled first, as a server that says 200 has done it (a poll is
    /// answered at once, not held).
    Body(u16, Vec<u8>),
    /// 400 `RICH_REJECTED`: Telegram refuses a rich message (queue it for sendRichMessage
    /// or sendRichMessageDraft), so that a test sees the bot send the answer another way.
    RichRejected,
}

/// Rates (0.0–1.0) of the seeded random faults for soak tests.
#[derive(Debug, Clone, Copy)]
pub struct FaultRates {
    /// 500 `Internal Server Error: restart` or 502 HTML, on any method.
    pub server_error: f64,
    /// A dropped connection, on any method (after the message was sent, for sendMessage).
    pub dropped: f64,
    /// 429 with `retry_after`, on sendMessage only.
    pub too_many_requests: f64,
    /// The `retry_after` of those 429s, in seconds.
    pub retry_after: u64,
}

/// Telegram's flood control, as its FAQ puts it (reference §4 "Rate limits"): "in a single
/// chat, avoid sending more than one message per second. We may allow short bursts …", and
/// "in a group, bots are not able to send more than 20 messages per minute". Past it a send
/// gets 429 with `retry_after`. What counts is what puts a message in the chat or changes
/// one: sendMessage, sendPhoto, editMessageText, editMessageReplyMarkup (that edits count
/// is the fake's choice: the FAQ names messages, and edits are observed to hit 429 alike).
/// Drafts and chat actions do not: they are ephemeral statuses (the server sends both as
/// MTProto typing actions), not messages.
#[derive(Debug, Clone, Copy)]
pub struct FloodLimits {
    /// A private chat takes this many messages in any window of as many seconds.
    pub private_burst: usize,
    /// A group takes this many messages in any 60 s.
    pub group_per_minute: usize,
}

impl Default for FloodLimits {
    fn default() -> Self {
        FloodLimits { private_burst: 5, group_per_minute: 20 }
    }
}

/// One request as the fake saw and answered it.
#[derive(Debug, Clone)]
pub struct Call {
    /// Canonical Bot API casing ("sendMessage"), or the path segment if unknown.
    pub method: String,
    /// All parameters merged; JSON-encoded object parameters of a form are decoded.
    pub params: Value,
    /// HTTP status sent; 0 for a dropped connection.
    pub status: u16,
    /// The body sent: the JSON envelope, a string for a non-JSON body, `null` if none.
    pub response: Value,
    /// When the request arrived.
    pub at: Instant,
    /// When the answer went out (or the connection was closed): the pause a client made
    /// before its next call is that call's `at` minus this.
    pub answered: Instant,
}

impl Poll {
    /// A look for updates that does not wait: `timeout` 0 or absent (the bot's check for a
    /// Stop press while it streams). The server may still hold it: see `get_updates`.
    pub fn is_peek(&self) -> bool {
        self.timeout.unwrap_or(0) <= 0
    }

    fn of(call: &Call) -> Poll {
        let ids = call.response["result"].as_array().into_iter().flatten();
        Poll {
            offset: call.int("offset"),
            timeout: call.int("timeout"),
            limit: call.int("limit"),
            allowed_updates: call.params.get("allowed_updates").cloned(),
            status: call.status,
            update_ids: ids.filter_map(|u| u["update_id"].as_i64()).collect(),
            at: call.at,
            answered: call.answered,
        }
    }
}

impl Call {
    /// A parameter as a string, whether it came as a JSON number or a form string.
    pub fn text(&self, name: &str) -> Option<String> {
        self.params.as_object().and_then(|p| text_param(p, name))
    }

    /// A parameter as an integer, whether it came as a JSON number or a form string.
    pub fn int(&self, name: &str) -> Option<i64> {
        self.params.as_object().and_then(|p| int_param(p, name))
    }

    /// The `description` of the answer, for errors.
    pub fn description(&self) -> Option<&str> {
        self.response.get("description").and_then(Value::as_str)
    }
}

/// How a message or draft was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// sendMessage (or sendMessageDraft, editMessageText) without a parse mode.
    Plain,
    /// The same with `parse_mode` HTML.
    Html,
    /// sendPhoto: `text` and `html` are its caption.
    Photo,
    /// sendRichMessage or sendRichMessageDraft: `html` is `rich_message.html`, `text` the
    /// text a user reads (a line per block, see `tg_rich::block_text`).
    Rich,
}

/// A message the bot sent, as the user now sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SentMessage {
    pub chat_id: i64,
    pub message_id: i64,
    /// How it was sent (a rich message is a message like any other to the user).
    pub kind: Kind,
    /// What the user sees: the parsed, trimmed text, after the latest edit.
    pub text: String,
    /// The raw `text` parameter (of a rich message: its `html`) of the latest send or edit.
    pub html: String,
    pub parse_mode: Option<String>,
    pub entities: Vec<Value>,
    pub reply_to: Option<i64>,
    /// The inline keyboard, if any.
    pub markup: Option<Value>,
    /// Successful editMessageText and editMessageReplyMarkup calls.
    pub edits: usize,
    pub deleted: bool,
    /// The bytes of a photo the bot uploaded (sendPhoto); `text` and `html` are its caption.
    pub photo: Option<Vec<u8>>,
    /// Of a rich message: the `blocks` of its `rich_message` (`RichBlock`s, see `tg_rich`);
    /// empty for the others.
    pub blocks: Vec<Value>,
}

impl SentMessage {
    /// Its rich blocks of one type, nested ones too ("heading", "table", "pre", "list",
    /// "mathematical_expression" of `<tg-math-block>`, …): `tg_rich::find_blocks`.
    pub fn blocks_of(&self, kind: &str) -> Vec<Value> {
        tg_rich::find_blocks(&self.blocks, kind)
    }

    /// Its inline rich text of one type ("mathematical_expression" of `<tg-math>`, "bold",
    /// "url", …), anywhere in its blocks: `tg_rich::find_inline`.
    pub fn inline_of(&self, kind: &str) -> Vec<Value> {
        tg_rich::find_inline(&self.blocks, kind)
    }
}

/// A draft the bot streamed (`sendMessageDraft` or `sendRichMessageDraft` that succeeded).
#[derive(Debug, Clone, PartialEq)]
pub struct SentDraft {
    pub chat_id: i64,
    pub message_thread_id: Option<i64>,
    pub draft_id: i64,
    /// Plain, Html or Rich.
    pub kind: Kind,
    /// What the user sees: the parsed, trimmed text ("" shows "Thinking…"); of a rich draft,
    /// the text a user reads.
    pub text: String,
    /// The raw `text` (of a rich draft: `rich_message.html`).
    pub html: String,
    pub parse_mode: Option<String>,
    /// Sent with `can_stop`: the user sees a Stop button (Bot API 10.3).
    pub can_stop: bool,
    /// Sent with `keep_on_stop`: the draft stays a while after Stop is pressed.
    pub keep_on_stop: bool,
    /// Sent after the user pressed Stop on this draft_id: Telegram shows it no more.
    pub after_stop: bool,
    /// It shows "Thinking…": an empty text (sendMessageDraft, Bot API 10.0) or a
    /// `<tg-thinking>` block (sendRichMessageDraft).
    pub thinking: bool,
    /// Of a rich draft: its `RichBlock`s (a `<tg-thinking>` block is of type "thinking").
    pub blocks: Vec<Value>,
    /// When it arrived.
    pub at: Instant,
}

impl SentDraft {
    /// Its rich blocks of one type, nested ones too (`tg_rich::find_blocks`).
    pub fn blocks_of(&self, kind: &str) -> Vec<Value> {
        tg_rich::find_blocks(&self.blocks, kind)
    }
}

/// A press of the Stop button on a draft (`FakeTelegram::press_stop`).
#[derive(Debug, Clone, PartialEq)]
pub struct StopPress {
    pub chat_id: i64,
    pub draft_id: i64,
    /// The update_id of its `stopped_message_generation` update.
    pub update_id: i64,
    /// Whether the update was queued: `allowed_updates` listed `stopped_message_generation`
    /// (else Telegram drops it when it is made).
    pub delivered: bool,
    pub at: Instant,
}

/// A successful answerGuestQuery: the message the bot posted as a guest, as users read it.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestAnswer {
    pub guest_query_id: String,
    /// The `inline_message_id` the fake returned.
    pub inline_message_id: String,
    /// The guest chat and the user who summoned the bot (from the guest message).
    pub chat_id: i64,
    pub from_id: i64,
    /// The guest message answered.
    pub message_id: i64,
    /// Plain or Html (`InputTextMessageContent`), or Rich (`InputRichMessageContent`).
    pub kind: Kind,
    /// What a user reads: the parsed, trimmed text; of a rich answer, a line per block.
    pub text: String,
    /// The raw `message_text`, or `rich_message.html`.
    pub html: String,
    pub parse_mode: Option<String>,
    /// The entities of a text answer after parsing.
    pub entities: Vec<Value>,
    /// The article's `id` and `title` (the title is not shown in the chat).
    pub result_id: String,
    pub title: String,
    /// The inline keyboard, if any.
    pub markup: Option<Value>,
    /// Of a rich answer: its `RichBlock`s (see `tg_rich`).
    pub blocks: Vec<Value>,
    pub at: Instant,
}

impl GuestAnswer {
    /// Its rich blocks of one type, nested ones too (`tg_rich::find_blocks`).
    pub fn blocks_of(&self, kind: &str) -> Vec<Value> {
        tg_rich::find_blocks(&self.blocks, kind)
    }

    /// Its inline rich text of one type, anywhere in its blocks (`tg_rich::find_inline`).
    pub fn inline_of(&self, kind: &str) -> Vec<Value> {
        tg_rich::find_inline(&self.blocks, kind)
    }
}

/// A getUpdates call, from the record (`FakeTelegram::polls`).
#[derive(Debug, Clone, PartialEq)]
pub struct Poll {
    /// The parameters as the bot sent them (`None`: not sent).
    pub offset: Option<i64>,
    pub timeout: Option<i64>,
    pub limit: Option<i64>,
    pub allowed_updates: Option<Value>,
    /// HTTP status answered (0: dropped).
    pub status: u16,
    /// The update_ids returned.
    pub update_ids: Vec<i64>,
    pub at: Instant,
    pub answered: Instant,
}

/// A media block the bot tried to send in a rich message (refused by the fake: Telegram
/// would fetch its URL, and the bot must never send one).
#[derive(Debug, Clone, PartialEq)]
pub struct RichMedia {
    pub method: &'static str,
    /// The `chat_id` parameter, if it was an integer.
    pub chat_id: Option<i64>,
    /// The tag (`img`, …), or "media" for `rich_message.media`.
    pub tag: String,
    pub url: Option<String>,
}

/// The fake server. Dropping it stops it and ends any parked long poll.
pub struct FakeTelegram {
    shared: Arc<Shared>,
    server: Server,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when an update is pushed, a poll is superseded, or the fake stops.
    wake: Condvar,
}

#[derive(Default)]
struct State {
    next_update_id: i64,
    /// Unconfirmed updates, oldest first.
    queue: VecDeque<Value>,
    /// Every update ever pushed (also those dropped by allowed_updates), by id.
    pushed: HashMap<i64, Value>,
    confirmed_offset: i64,
    allowed_updates: Option<Vec<String>>,
    /// Bumped by each getUpdates that parks; a parked poll that sees it change was
    /// superseded.
    poll_generation: u64,
    /// Bumped by `end_polls`: a parked poll that sees it change ends as at its timeout.
    polls_ended: u64,
    /// The offset and arrival of the last getUpdates, for the server's anti-hammering.
    last_poll: Option<(i64, Instant)>,
    /// Before this, a getUpdates conflict (409) is held `CONFLICT_HOLD` before it goes out.
    next_conflict_at: Option<Instant>,
    parked_polls: usize,
    webhook_url: Option<String>,
    stopped: bool,
    /// Plays a Bot API server older than 10.1 (`set_old_server`).
    old_server: bool,
    stop_presses: Vec<StopPress>,
    rich_media: Vec<RichMedia>,
    /// The bot has guest mode on (`set_guest_mode`): getMe says so, guest messages come.
    guest_mode: bool,
    /// Chats the bot was summoned in as a guest, by id. It is not a member of them: a send
    /// there fails unless the id is also in `chats` (another chat sharing the identifier).
    guest_chats: HashMap<i64, GuestChat>,
    guest_queries: HashMap<String, GuestQuery>,
    guest_query_lifetime: Duration,
    guest_answers: Vec<GuestAnswer>,
    next_inline_message: u64,

    chats: HashMap<i64, Chat>,
    callback_queries: HashMap<String, CallbackQuery>,
    next_callback_query: u64,
    callback_query_lifetime: Duration,
    commands: Vec<(String, String)>,
    /// Orders the bot's messages across chats.
    next_seq: u64,

    faults: HashMap<String, VecDeque<Fault>>,
    /// Outages by method (lower case): the fault every call gets until the instant.
    outages: HashMap<String, (Fault, Instant)>,
    random: Option<(SplitMix, FaultRates)>,
    kill_hook: Option<KillHook>,
    calls: Vec<Call>,
    record_calls: bool,
    flood: Option<FloodLimits>,
    /// When each chat was last sent a message, for the flood control.
    sends: HashMap<i64, VecDeque<Instant>>,
    /// Files users sent, by file_id: registered when a message with them is pushed.
    files: HashMap<String, FakeFile>,
    /// Downloads (`/file/bot<token>/<path>`): the path and the status answered.
    downloads: Vec<(String, u16)>,
    /// Calls being handled now (arrived, not yet answered), by method.
    in_flight: HashMap<&'static str, usize>,
}

/// A callback to run in place of one call; see [`FakeTelegram::set_kill_hook`].
struct KillHook {
    /// Lower case, as fault queues are keyed.
    method: String,
    /// Calls of `method` still to let through before the hook's one.
    pass: usize,
    hook: Box<dyn FnOnce() + Send>,
}

struct Chat {
    object: Value,
    /// A private chat the user opened (wrote, pressed, or a test said so with `add_chat`);
    /// false for a user the bot has only seen elsewhere (in a group): sending there is
    /// "bot can't initiate conversation with a user" (reference §3).
    started: bool,
    next_message_id: i64,
    blocked: bool,
    migrated_to: Option<i64>,
    messages: BTreeMap<i64, Stored>,
    /// Every draft streamed to the chat, oldest first.
    drafts: Vec<SentDraft>,
    /// Whether a message came after the last draft (it replaces the draft on screen).
    draft_replaced: bool,
    /// Stop pressed on this draft_id (and whether the draft stays: its `keep_on_stop`),
    /// until a message or a draft with another id.
    stop: Option<(i64, bool)>,
}

/// A message in a chat, from a pushed update or sent by the bot.
struct Stored {
    /// The Message object as Telegram would send it now.
    message: Value,
    from_bot: bool,
    html: String,
    parse_mode: Option<String>,
    reply_to: Option<i64>,
    edits: usize,
    deleted: bool,
    seq: u64,
    /// An uploaded photo's bytes.
    photo: Option<Vec<u8>>,
    /// A rich message: the text a user reads.
    rich_text: Option<String>,
}

struct CallbackQuery {
    pushed: Instant,
    answered: bool,
    expired: bool,
}

/// A chat seen only through guest messages: its own message ids, nothing stored, since the
/// bot can neither read its history nor reply into it.
struct GuestChat {
    object: Value,
    next_message_id: i64,
}

/// A guest message waiting for its answer.
struct GuestQuery {
    chat_id: i64,
    from_id: i64,
    message_id: i64,
    pushed: Instant,
    answered: bool,
    expired: bool,
}

/// An error answer: `error_code` (= HTTP status), description, optional parameters.
struct ApiError {
    code: u16,
    description: String,
    parameters: Option<Value>,
}

/// A file on Telegram's servers.
struct FakeFile {
    file_unique_id: String,
    size: u64,
    path: String,
    /// The bytes, if a test set them; else `size` made-up bytes (a JPEG's magic first for photos).
    bytes: Option<Vec<u8>>,
    /// Gone from the file server: getFile still answers, the download gets 404.
    lost: bool,
}

impl FakeFile {
    fn bytes(&self) -> Vec<u8> {
        if let Some(bytes) = &self.bytes {
            return bytes.clone();
        }
        let mut bytes: Vec<u8> = (0..self.size).map(|i| (i % 251) as u8).collect();
        if self.path.ends_with(".jpg") {
            for (i, b) in [0xFF, 0xD8, 0xFF, 0xE0].iter().enumerate() {
                if let Some(slot) = bytes.get_mut(i) {
                    *slot = *b;
                }
            }
        }
        bytes
    }
}

fn bad_request(detail: impl std::fmt::Display) -> ApiError {
    ApiError { code: 400, description: format!("Bad Request: {detail}"), parameters: None }
}

fn required(name: &str) -> ApiError {
    bad_request(format!("parameter \"{name}\" is required"))
}

fn ok(result: Value) -> Value {
    json!({"ok": true, "result": result})
}

impl FakeTelegram {
    pub fn start() -> FakeTelegram {
        let state = State {
            next_update_id: FIRST_UPDATE_ID,
            next_callback_query: FIRST_CALLBACK_QUERY_ID,
            callback_query_lifetime: CALLBACK_QUERY_LIFETIME,
            guest_mode: true,
            guest_query_lifetime: GUEST_QUERY_LIFETIME,
            record_calls: true,
            flood: Some(FloodLimits::default()),
            ..State::default()
        };
        let shared = Arc::new(Shared { state: Mutex::new(state), wake: Condvar::new() });
        let server = {
            let shared = shared.clone();
            Server::plain(move |request, responder| handle(&shared, request, responder))
        };
        FakeTelegram { shared, server }
    }

    /// The `api_url` for the bot: "http://127.0.0.1:PORT".
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port())
    }

    pub fn token(&self) -> &'static str {
        TOKEN
    }

    /// Sets the flood control (on by default with Telegram's documented rates; `None` turns
    /// it off, for benchmarks that send thousands of messages to a few chats).
    pub fn set_flood_limits(&self, limits: Option<FloodLimits>) {
        self.lock().flood = limits;
    }

    /// Whether calls are recorded from now on (off for benchmarks of tens of thousands of
    /// answers; the chats and their messages are kept either way).
    pub fn record_calls(&self, record: bool) {
        self.lock().record_calls = record;
    }

    /// TCP connections accepted so far (keep-alive checks).
    pub fn connections(&self) -> usize {
        self.server.connections()
    }

    // --- scripting ---

    /// Queues an update built by the functions below. Assigns `update_id`, the message id
    /// (per chat), and the callback query id; makes its chat known; fills a reply's or a
    /// callback's message from what the fake stored; wakes a parked getUpdates. Returns the
    /// update_id. Updates of kinds excluded by `allowed_updates` are dropped, as Telegram does.
    /// A `guest_message` is registered as `push_guest_with` says.
    pub fn push(&self, update: Value) -> i64 {
        let mut state = self.lock();
        if let Some(problem) = state.guest_problem(&update) {
            // Unlocked first: a panic holding the lock would poison it for the server too.
            drop(state);
            panic!("{problem}");
        }
        let id = state.push(update);
        drop(state);
        self.shared.wake.notify_all();
        id
    }

    /// Pushes a guest message (`guest_message`): `text` from `from_user_id` in `chat`, a
    /// Chat object of a private chat, group or supergroup the bot was summoned in. Returns
    /// the update_id and the `guest_query_id` to answer.
    pub fn push_guest(&self, chat: Value, from_user_id: i64, text: &str) -> (i64, String) {
        self.push_guest_with(guest_message(chat, from_user_id, text))
    }

    /// Pushes `message` (a Message, e.g. from `guest_message` with a `reply_to_message` the
    /// test added) as `{"update_id", "guest_message"}`. The fake assigns a message_id (per
    /// guest chat) if it has none and a `guest_query_id` if it has none; it keeps the chat
    /// as a guest chat, apart from the chats the bot is a member of, and stores no message
    /// (the bot cannot reply into that chat). Delivered only if `allowed_updates` lists
    /// `guest_message` (see `NOT_BY_DEFAULT`). Panics if guest mode is off or the
    /// guest_query_id was pushed before. Returns the update_id and the guest_query_id.
    pub fn push_guest_with(&self, message: Value) -> (i64, String) {
        let update_id = self.push(json!({"guest_message": message}));
        let update = self.update(update_id).expect("pushed above");
        let query = update["guest_message"]["guest_query_id"].as_str().expect("set by push");
        (update_id, query.to_string())
    }

    /// Turns the bot's guest mode on (the default) or off, as its owner does in @BotFather:
    /// getMe's `supports_guest_queries` follows, and off, pushing a guest message panics
    /// (Telegram would not make one).
    pub fn set_guest_mode(&self, on: bool) {
        self.lock().guest_mode = on;
    }

    /// How long a guest query can be answered (60 s by default, UNCONFIRMED): after that,
    /// answerGuestQuery is "query is too old…".
    pub fn set_guest_query_lifetime(&self, lifetime: Duration) {
        self.lock().guest_query_lifetime = lifetime;
    }

    /// Makes every guest query pushed so far too old to answer.
    pub fn expire_guest_queries(&self) {
        for query in self.lock().guest_queries.values_mut() {
            query.expired = true;
        }
    }

    /// Pushes a text message from `user_id` in `chat_id` (a private chat when they're equal).
    pub fn push_text(&self, chat_id: i64, user_id: i64, text: &str) -> i64 {
        self.push(text_message(chat_id, user_id, text))
    }

    /// Queues `updates` (any JSON values) exactly as given and all at once, so that a parked
    /// getUpdates returns them together: for robustness tests. No id is assigned, no chat or
    /// message registered, `allowed_updates` is not applied, and `update`, `message_of` and
    /// `replies_to` do not know them. Give each an id from `next_update_id`, or none at all
    /// (the next getUpdates with a positive offset drops one without an integer id).
    pub fn push_raw(&self, updates: Vec<Value>) {
        let mut state = self.lock();
        // The queue's tail is its highest id, as on the real server.
        let highest = updates.iter().filter_map(|u| u["update_id"].as_i64()).max();
        if let Some(highest) = highest {
            state.next_update_id = state.next_update_id.max(highest.saturating_add(1));
        }
        state.queue.extend(updates);
        drop(state);
        self.shared.wake.notify_all();
    }

    /// Takes the update_id `push` would assign next, for an update queued with `push_raw`.
    pub fn next_update_id(&self) -> i64 {
        let mut state = self.lock();
        state.next_update_id += 1;
        state.next_update_id - 1
    }

    /// Makes a chat known without an update (a Chat object, e.g. from `chat(id)`).
    pub fn add_chat(&self, chat: Value) {
        self.lock().register_chat(&chat);
    }

    /// The user blocked the bot (private chat) or the bot was kicked (group): sends get 403.
    pub fn set_blocked(&self, chat_id: i64, blocked: bool) {
        let mut state = self.lock();
        let chat = state.chats.get_mut(&chat_id).expect("set_blocked: unknown chat");
        chat.blocked = blocked;
    }

    /// Ends the parked getUpdates now with no updates, as its timeout would: for tests that
    /// need the bot's next poll (a fault queued for it, a line logged after it) and would
    /// otherwise wait out the long poll.
    pub fn end_polls(&self) {
        self.lock().polls_ended += 1;
        self.shared.wake.notify_all();
    }

    /// Plays (or stops playing) a local Bot API server older than 10.1: sendRichMessage and
    /// sendRichMessageDraft get 404 "Not Found: method not found", as any unknown method
    /// (reference §1, §3); `can_stop` and `keep_on_stop` are unknown parameters, ignored;
    /// no draft has a Stop button.
    pub fn set_old_server(&self, old: bool) {
        self.lock().old_server = old;
    }

    /// Sets a webhook, so getUpdates answers 409 until deleteWebhook.
    pub fn set_webhook(&self, url: &str) {
        self.lock().webhook_url = Some(url.to_string());
        self.shared.wake.notify_all();
    }

    /// Makes every callback query pushed so far older than Telegram keeps them: the bot
    /// still gets the presses, but answering them is "query is too old".
    pub fn expire_callback_queries(&self) {
        for query in self.lock().callback_queries.values_mut() {
            query.expired = true;
        }
    }

    /// How long a button press lives (150 s, reference §2): after that answering it is
    /// "query is too old…", and a press not yet delivered is dropped from the queue.
    pub fn set_callback_query_lifetime(&self, lifetime: Duration) {
        self.lock().callback_query_lifetime = lifetime;
    }

    /// Queues a fault for the next call of `method` (any case); one is used per call.
    pub fn fail_next(&self, method: &str, fault: Fault) {
        let mut state = self.lock();
        state.faults.entry(method.to_ascii_lowercase()).or_default().push_back(fault);
    }

    /// An outage of `method` (any case) lasting `lasting` from now: every call that arrives
    /// meanwhile gets `fault` (after any `fail_next` faults). Real trouble lasts a time, not
    /// a number of calls, so a client that retries without a pause makes many calls in it,
    /// each in the record (`at`, `answered`), and one that backs off makes few.
    pub fn fail_for(&self, method: &str, fault: Fault, lasting: Duration) {
        let until = Instant::now() + lasting;
        self.lock().outages.insert(method.to_ascii_lowercase(), (fault, until));
    }

    /// Random faults from a seeded generator: the same seed and calls give the same faults.
    pub fn set_random_faults(&self, seed: u64, rates: FaultRates) {
        self.lock().random = Some((SplitMix(seed), rates));
    }

    pub fn clear_random_faults(&self) {
        self.lock().random = None;
    }

    /// Crashes the bot at a chosen moment: when the `nth` call of `method` from now arrives
    /// (1 = the next one), the fake runs `hook` before looking at the call, then closes the
    /// connection without an answer (recorded with status 0). The hook is meant to SIGKILL
    /// the bot and wait for it to exit, so the call is never handled: the bot dies blocked on
    /// the network, where a crash most often finds a bot. The hook runs on the connection's
    /// thread with the fake unlocked (it may look at the fake). One hook at a time; a new one
    /// replaces one that has not fired.
    pub fn set_kill_hook(&self, method: &str, nth: usize, hook: impl FnOnce() + Send + 'static) {
        assert!(nth >= 1, "set_kill_hook: calls are counted from 1");
        self.lock().kill_hook = Some(KillHook {
            method: method.to_ascii_lowercase(),
            pass: nth - 1,
            hook: Box::new(hook),
        });
    }

    /// Whether a kill hook is set and has not fired yet.
    pub fn kill_hook_pending(&self) -> bool {
        self.lock().kill_hook.is_some()
    }

    /// Registers a file (or replaces its bytes), as if a user had sent it.
    pub fn add_file(&self, file_id: &str, path: &str, bytes: Vec<u8>) {
        let file = FakeFile {
            file_unique_id: unique_id(file_id),
            size: bytes.len() as u64,
            path: path.into(),
            bytes: Some(bytes),
            lost: false,
        };
        self.lock().files.insert(file_id.into(), file);
    }

    /// Forgets a file's bytes, as Telegram's storage may: getFile still answers, the
    /// download gets 404.
    pub fn lose_file(&self, file_id: &str) {
        if let Some(file) = self.lock().files.get_mut(file_id) {
            file.lost = true;
        }
    }

    /// The downloads so far: the file path and the status answered (0: dropped).
    pub fn downloads(&self) -> Vec<(String, u16)> {
        self.lock().downloads.clone()
    }

    // --- observation ---

    /// Every request so far, in the order they were answered.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The calls of one method (any case).
    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        let calls = self.lock().calls.clone();
        calls.into_iter().filter(|c| c.method.eq_ignore_ascii_case(method)).collect()
    }

    /// Every message the bot sent, in sending order.
    pub fn sent(&self) -> Vec<SentMessage> {
        let state = self.lock();
        let mut sent: Vec<(u64, SentMessage)> = state
            .chats
            .iter()
            .flat_map(|(&chat_id, chat)| {
                chat.messages
                    .iter()
                    .filter(|(_, m)| m.from_bot)
                    .map(move |(&id, m)| (m.seq, sent_message(chat_id, id, m)))
            })
            .collect();
        sent.sort_by_key(|(seq, _)| *seq);
        sent.into_iter().map(|(_, m)| m).collect()
    }

    /// The bot's messages in one chat, in sending order.
    pub fn sent_to(&self, chat_id: i64) -> Vec<SentMessage> {
        self.sent().into_iter().filter(|m| m.chat_id == chat_id).collect()
    }

    /// The bot's messages that reply (reply_parameters.message_id) to the message of a
    /// pushed update.
    pub fn replies_to(&self, update_id: i64) -> Vec<SentMessage> {
        let Some((chat_id, message_id)) = self.message_of(update_id) else {
            return Vec::new();
        };
        let replies = self.sent_to(chat_id);
        replies.into_iter().filter(|m| m.reply_to == Some(message_id)).collect()
    }

    /// The drafts streamed to a chat, oldest first.
    pub fn drafts_to(&self, chat_id: i64) -> Vec<SentDraft> {
        let state = self.lock();
        state.chats.get(&chat_id).map_or(Vec::new(), |chat| chat.drafts.clone())
    }

    /// The draft a user sees now: the last one, unless a message came after it, it is
    /// older than Telegram keeps one, or the user pressed Stop on it (and it was not sent
    /// with `keep_on_stop`). Drafts sent after Stop are not shown.
    pub fn draft_showing(&self, chat_id: i64) -> Option<SentDraft> {
        self.lock().chats.get(&chat_id)?.showing().cloned()
    }

    /// The user presses Stop on the draft `draft_id` showing in `chat_id` (Bot API 10.3):
    /// queues `{"stopped_message_generation": {"chat": Chat, "message_thread_id"?,
    /// "draft_id"}}`, which Telegram makes only if `allowed_updates` lists it (see
    /// `NOT_BY_DEFAULT`), and stops showing the draft unless it was sent with
    /// `keep_on_stop`. Returns the update_id (whether queued or dropped: see `stop_presses`).
    /// An error for the test if there is no such button: no draft showing, another draft
    /// showing, a draft sent without `can_stop`, Stop already pressed, an older server.
    pub fn press_stop(&self, chat_id: i64, draft_id: i64) -> Result<i64, String> {
        let mut state = self.lock();
        if state.old_server {
            return Err("an older Bot API server: drafts have no Stop button".into());
        }
        let chat = state.chats.get(&chat_id).ok_or(format!("no chat {chat_id}"))?;
        let Some(draft) = chat.showing() else {
            return Err(format!("no draft is showing in chat {chat_id}"));
        };
        if draft.draft_id != draft_id {
            let showing = draft.draft_id;
            return Err(format!("draft {showing} is showing in chat {chat_id}, not {draft_id}"));
        }
        if !draft.can_stop {
            return Err(format!("draft {draft_id} in chat {chat_id} was sent without can_stop"));
        }
        if chat.stop.is_some() {
            return Err(format!("Stop was already pressed on draft {draft_id} in chat {chat_id}"));
        }
        let mut stopped = json!({"chat": chat.object, "draft_id": draft_id});
        if let Some(thread) = draft.message_thread_id {
            stopped["message_thread_id"] = json!(thread);
        }
        let keep = draft.keep_on_stop;
        state.chats.get_mut(&chat_id).expect("found above").stop = Some((draft_id, keep));
        let update_id = state.push(json!({"stopped_message_generation": stopped}));
        let delivered = state.queue.back().is_some_and(|u| u["update_id"] == update_id);
        let at = Instant::now();
        state.stop_presses.push(StopPress { chat_id, draft_id, update_id, delivered, at });
        drop(state);
        self.shared.wake.notify_all();
        Ok(update_id)
    }

    /// Presses Stop on whatever draft is showing in `chat_id` (see `press_stop`).
    pub fn press_stop_on_showing_draft(&self, chat_id: i64) -> Result<i64, String> {
        let draft = self.draft_showing(chat_id);
        let draft = draft.ok_or(format!("no draft is showing in chat {chat_id}"))?;
        self.press_stop(chat_id, draft.draft_id)
    }

    /// Every press of Stop so far, in order.
    pub fn stop_presses(&self) -> Vec<StopPress> {
        self.lock().stop_presses.clone()
    }

    /// Every getUpdates call so far, in the order they arrived: offset, timeout, limit,
    /// allowed_updates as sent, and what came back when (to check how often a bot peeks).
    pub fn polls(&self) -> Vec<Poll> {
        let mut polls: Vec<Poll> = self.calls_of("getUpdates").iter().map(Poll::of).collect();
        polls.sort_by_key(|poll| poll.at);
        polls
    }

    /// The getUpdates calls that did not ask to wait (`Poll::is_peek`), in order.
    pub fn peeks(&self) -> Vec<Poll> {
        self.polls().into_iter().filter(Poll::is_peek).collect()
    }

    /// Every successful answerGuestQuery, in order.
    pub fn guest_answers(&self) -> Vec<GuestAnswer> {
        self.lock().guest_answers.clone()
    }

    /// The answer to one guest query, if it got one (a query is answered at most once).
    pub fn guest_answer(&self, guest_query_id: &str) -> Option<GuestAnswer> {
        let answers = self.guest_answers();
        answers.into_iter().find(|a| a.guest_query_id == guest_query_id)
    }

    /// Every answerGuestQuery call for one query, refused ones too (a second answer, one
    /// too late), in the order they were answered.
    pub fn guest_attempts(&self, guest_query_id: &str) -> Vec<Call> {
        let calls = self.calls_of("answerGuestQuery");
        let id = Some(guest_query_id.to_string());
        calls.into_iter().filter(|call| call.text("guest_query_id") == id).collect()
    }

    /// The media blocks the bot tried to send in rich messages (each refused): a test
    /// asserts this is empty.
    pub fn rich_media(&self) -> Vec<RichMedia> {
        self.lock().rich_media.clone()
    }

    /// A pushed update as the fake completed it (ids assigned).
    pub fn update(&self, update_id: i64) -> Option<Value> {
        self.lock().pushed.get(&update_id).cloned()
    }

    /// (chat_id, message_id) of a pushed message update.
    pub fn message_of(&self, update_id: i64) -> Option<(i64, i64)> {
        let update = self.update(update_id)?;
        let message = ["message", "edited_message", "channel_post", "edited_channel_post"]
            .iter()
            .find_map(|kind| update.get(kind))?;
        Some((message["chat"]["id"].as_i64()?, message["message_id"].as_i64()?))
    }

    /// The commands of the last successful setMyCommands for the default scope.
    pub fn commands(&self) -> Vec<(String, String)> {
        self.lock().commands.clone()
    }

    /// The highest offset a getUpdates confirmed with: updates below it are handled.
    pub fn confirmed_offset(&self) -> i64 {
        self.lock().confirmed_offset
    }

    /// Updates queued and not yet confirmed.
    pub fn pending_updates(&self) -> usize {
        self.lock().queue.len()
    }

    /// Calls of `method` (canonical casing) that arrived and are not answered yet: held by
    /// a `Delay` fault, say, or a parked getUpdates.
    pub fn in_flight(&self, method: &str) -> usize {
        self.lock().in_flight.get(method).copied().unwrap_or(0)
    }

    /// Whether a getUpdates is parked waiting for updates (the bot is idle).
    pub fn polling(&self) -> bool {
        self.lock().parked_polls > 0
    }

    /// Polls `cond` every few milliseconds; panics with `what` and the recent calls if it
    /// doesn't hold within `timeout`.
    pub fn wait_until(&self, timeout: Duration, what: &str, cond: impl Fn(&FakeTelegram) -> bool) {
        crate::http::wait_until(timeout, what, || cond(self), || self.dump());
    }

    /// The last calls, one line each, for failure messages.
    pub fn dump(&self) -> String {
        let calls = self.calls();
        let mut out = format!("fake Telegram: {} calls, last ones:\n", calls.len());
        for call in calls.iter().skip(calls.len().saturating_sub(30)) {
            let mut params = call.params.to_string();
            if params.len() > 300 {
                let cut = (0..=300).rev().find(|&i| params.is_char_boundary(i)).unwrap_or(0);
                params.truncate(cut);
                params.push('…');
            }
            let outcome = call.description().unwrap_or(if call.status == 200 { "ok" } else { "-" });
            let _ = writeln!(out, "  {} {} {params} -> {outcome}", call.status, call.method);
        }
        out
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.stopped = true;
        }
        self.shared.wake.notify_all();
    }
}

// --- serving ---

fn handle(shared: &Shared, request: &Request, responder: &mut Responder) {
    if let Some(rest) = request.path.strip_prefix("/file/bot") {
        return download(shared, request, rest, responder);
    }
    let at = Instant::now();
    let mut params = Map::new();
    let rich = !shared.state.lock().unwrap().old_server;
    let (method, wire) = match route(request, rich) {
        Err((method, error)) => (method, Wire::error(error)),
        Ok(method) => match parse_params(request) {
            Err(error) => (method.to_string(), Wire::error(error)),
            Ok(parsed) => {
                params = parsed;
                let hook = {
                    let mut state = shared.state.lock().unwrap();
                    *state.in_flight.entry(method).or_default() += 1;
                    state.due_kill_hook(method)
                };
                let wire = match hook {
                    // The bot is gone by now; the call is never handled.
                    Some(hook) => {
                        hook();
                        Wire::Drop
                    }
                    None => answer(shared, method, &params),
                };
                *shared.state.lock().unwrap().in_flight.entry(method).or_default() -= 1;
                (method.to_string(), wire)
            }
        },
    };
    // Recorded before it is written: a test that saw the answer also sees the record.
    let (status, response) = wire.recorded();
    let answered = Instant::now();
    let call = Call { method, params: Value::Object(params), status, response, at, answered };
    let mut state = shared.state.lock().unwrap();
    if state.record_calls {
        state.calls.push(call);
    }
    drop(state);
    wire.write(responder);
}

/// `GET /file/bot<token>/<file_path>`: the bytes, or the JSON 404 Telegram answers for an
/// unknown path (or token). Faults queued for "download" apply (Drop, Status, Delay).
fn download(shared: &Shared, request: &Request, rest: &str, responder: &mut Responder) {
    let path = rest
        .split_once('/')
        .filter(|(token, _)| *token == TOKEN)
        .map(|(_, path)| percent_decode(path));
    let mut state = shared.state.lock().unwrap();
    let fault = state.faults.get_mut("download").and_then(VecDeque::pop_front);
    let found = path.as_ref().and_then(|path| {
        let file = state.files.values().find(|f| &f.path == path && !f.lost)?;
        (request.method == "GET").then(|| file.bytes())
    });
    let recorded = path.clone().unwrap_or_else(|| "(wrong token)".into());
    let not_found = json!({"ok": false, "error_code": 404, "description": "Not Found"});
    let status = match (&fault, &found) {
        (Some(Fault::Drop | Fault::DropAfter), _) => 0,
        (Some(Fault::Status(status, _)), _) => *status,
        (_, Some(_)) => 200,
        (_, None) => 404,
    };
    state.downloads.push((recorded, status));
    drop(state);
    if let Some(Fault::Delay(delay)) = &fault {
        thread::sleep(*delay);
    }
    match (fault, found) {
        (Some(Fault::Drop | Fault::DropAfter), _) => responder.drop_connection(),
        (Some(Fault::Status(status, body)), _) => responder.send(
            status,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        ),
        (_, Some(bytes)) => {
            responder.send(200, &[("Content-Type", "application/octet-stream")], &bytes)
        }
        (_, None) => responder.send(
            404,
            &[("Content-Type", "application/json")],
            not_found.to_string().as_bytes(),
        ),
    }
}

/// The answer to a call; a getUpdates conflict (409, real or injected) goes out as the
/// real server lets it: at once if it is the first in 3 s, else after 3 s (reference §2).
fn answer(shared: &Shared, method: &str, params: &Map<String, Value>) -> Wire {
    let wire = answer_now(shared, method, params);
    if method == "getUpdates" && matches!(wire, Wire::Json(409, _)) {
        let hold = shared.state.lock().unwrap().conflict_hold();
        thread::sleep(hold);
    }
    wire
}

/// A fault queued or drawn for this call, else the method's answer.
fn answer_now(shared: &Shared, method: &str, params: &Map<String, Value>) -> Wire {
    let fault = shared.state.lock().unwrap().next_fault(method);
    match fault {
        Some(Fault::Delay(delay)) => thread::sleep(delay),
        Some(Fault::DropAfter) => {
            let _ = dispatch(shared, method, params);
            return Wire::Drop;
        }
        Some(Fault::GatewayTimeoutAfter) => {
            let _ = dispatch(shared, method, params);
            return Wire::Raw(504, NGINX_504.as_bytes().to_vec());
        }
        Some(Fault::Body(status @ 200..=299, bytes)) if method != "getUpdates" => {
            let _ = dispatch(shared, method, params);
            return Wire::Raw(status, bytes);
        }
        Some(fault) => return Wire::fault(fault),
        None => {}
    }
    match dispatch(shared, method, params) {
        Ok(body) => Wire::Json(200, body),
        Err(error) => Wire::error(error),
    }
}

/// An answer ready to go out.
enum Wire {
    /// An envelope; a `parameters.retry_after` in it also becomes a `Retry-After` header.
    Json(u16, Value),
    /// nginx's 502 page.
    BadGateway,
    /// 200 with a body that is not JSON.
    Garbage,
    /// No answer: the connection is closed.
    Drop,
    /// This status and these bytes, as `application/json`.
    Raw(u16, Vec<u8>),
}

const GARBAGE: &str = "<<not json>> {\"ok\":tru";

impl Wire {
    fn error(error: ApiError) -> Wire {
        let mut body =
            json!({"ok": false, "error_code": error.code, "description": error.description});
        if let Some(parameters) = error.parameters {
            body["parameters"] = parameters;
        }
        Wire::Json(error.code, body)
    }

    fn fault(fault: Fault) -> Wire {
        match fault {
            Fault::Status(status, body) => Wire::Json(status, body),
            Fault::TooManyRequests(seconds) => Wire::error(ApiError {
                code: 429,
                description: format!("Too Many Requests: retry after {seconds}"),
                parameters: Some(json!({"retry_after": seconds})),
            }),
            Fault::BadGatewayHtml => Wire::BadGateway,
            Fault::Garbage => Wire::Garbage,
            Fault::Drop => Wire::Drop,
            Fault::Body(status, bytes) => Wire::Raw(status, bytes),
            Fault::RichRejected => Wire::Json(
                400,
                json!({"ok": false, "error_code": 400, "description": RICH_REJECTED}),
            ),
            Fault::Delay(_) | Fault::DropAfter | Fault::GatewayTimeoutAfter => {
                unreachable!("handled by the caller")
            }
        }
    }

    /// Status and body for the record: 0 and `null` for a dropped connection, a string for a
    /// body that isn't JSON.
    fn recorded(&self) -> (u16, Value) {
        match self {
            Wire::Json(status, body) => (*status, body.clone()),
            Wire::BadGateway => (502, Value::String(NGINX_502.into())),
            Wire::Garbage => (200, Value::String(GARBAGE.into())),
            Wire::Drop => (0, Value::Null),
            Wire::Raw(status, bytes) => (
                *status,
                serde_json::from_slice(bytes)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into())),
            ),
        }
    }

    fn write(self, responder: &mut Responder) {
        match self {
            Wire::Json(status, body) => {
                let bytes = serde_json::to_vec(&body).expect("a JSON value serializes");
                let retry_after = body["parameters"]["retry_after"].as_u64().map(|s| s.to_string());
                let mut headers = vec![("Content-Type", "application/json")];
                if let Some(seconds) = &retry_after {
                    headers.push(("Retry-After", seconds));
                }
                responder.send(status, &headers, &bytes);
            }
            Wire::BadGateway => {
                let headers = [("Content-Type", "text/html"), ("Server", "nginx/1.18.0")];
                responder.send(502, &headers, NGINX_502.as_bytes());
            }
            Wire::Garbage => {
                responder.send(200, &[("Content-Type", "application/json")], GARBAGE.as_bytes())
            }
            Wire::Drop => responder.drop_connection(),
            Wire::Raw(status, bytes) => {
                responder.send(status, &[("Content-Type", "application/json")], &bytes)
            }
        }
    }
}

/// Finds the canonical method name in `/bot{token}/{method}`; without `rich`, the methods of
/// rich messages are unknown, as to a server older than Bot API 10.1.
fn route(request: &Request, rich: bool) -> Result<&'static str, (String, ApiError)> {
    let not_found = |method: &str, description: &str| {
        Err((
            method.to_string(),
            ApiError { code: 404, description: description.into(), parameters: None },
        ))
    };
    let Some(rest) = request.path.strip_prefix("/bot") else {
        return not_found(&request.path, "Not Found");
    };
    let Some((token, method)) = rest.split_once('/') else {
        return not_found(&request.path, "Not Found");
    };
    if token != TOKEN {
        // api.telegram.org: a malformed token is "Not Found", a well-formed wrong one
        // "Unauthorized" (reference §1 "Token problems", §3).
        if !well_formed_token(token) {
            return not_found(method, "Not Found");
        }
        let error = ApiError { code: 401, description: "Unauthorized".into(), parameters: None };
        return Err((method.to_string(), error));
    }
    let known = METHODS.iter().find(|m| m.eq_ignore_ascii_case(method));
    match known.filter(|m| rich || !RICH_METHODS.contains(m)) {
        Some(method) => Ok(method),
        None => not_found(method, "Not Found: method not found"),
    }
}

/// `<digits>:<[A-Za-z0-9_-]+>`, the shape of every bot token @BotFather issues.
fn well_formed_token(token: &str) -> bool {
    token.split_once(':').is_some_and(|(id, secret)| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && !secret.is_empty()
            && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

fn dispatch(shared: &Shared, method: &str, p: &Map<String, Value>) -> Result<Value, ApiError> {
    if method == "getUpdates" {
        return get_updates(shared, p);
    }
    let mut state = shared.state.lock().unwrap();
    match method {
        "getMe" => Ok(ok(get_me(state.guest_mode))),
        "getFile" => state.get_file(p),
        "getWebhookInfo" => Ok(ok(json!({
            "url": state.webhook_url.clone().unwrap_or_default(),
            "has_custom_certificate": false,
            "pending_update_count": state.queue.len(),
        }))),
        "deleteWebhook" => {
            if bool_param(p, "drop_pending_updates") {
                state.queue.clear();
            }
            let description = match state.webhook_url.take() {
                Some(_) => "Webhook was deleted",
                None => "Webhook is already deleted",
            };
            Ok(json!({"ok": true, "result": true, "description": description}))
        }
        "setMyCommands" => state.set_my_commands(p),
        "sendMessage" => state.send_message(p),
        "sendPhoto" => state.send_photo(p),
        "sendChatAction" => state.send_chat_action(p),
        "answerCallbackQuery" => state.answer_callback_query(p),
        "editMessageText" => state.edit_message_text(p),
        "editMessageReplyMarkup" => state.edit_message_reply_markup(p),
        "deleteMessage" => state.delete_message(p),
        "sendMessageDraft" => state.send_message_draft(p),
        "sendRichMessage" => state.send_rich_message(p),
        "sendRichMessageDraft" => state.send_rich_message_draft(p),
        "answerGuestQuery" => state.answer_guest_query(p),
        other => unreachable!("{other} is in METHODS but not dispatched"),
    }
}

/// getUpdates: confirm by offset, answer at once if updates are queued (or with `timeout`
/// 0), else park until an update arrives, the timeout passes, or a newer poll that parks
/// supersedes this one (409). As on the real server (reference §2), a poll that answers at
/// once supersedes nothing, and the same offset again within 3 s gets a timeout of at least
/// 3 s, within 0.5 s a limit of 1: a tight polling loop is slowed down. So a peek (timeout
/// 0, the same offset) returns pending updates at once and confirms none of them, but an
/// empty one is held 3 s and, parked, ends a parked long poll with 409 (the server's
/// `process_get_updates_query` does the same).
fn get_updates(shared: &Shared, p: &Map<String, Value>) -> Result<Value, ApiError> {
    let offset = int_param(p, "offset").unwrap_or(0);
    let mut limit = int_param(p, "limit").unwrap_or(100).clamp(1, 100) as usize;
    let mut timeout = Duration::from_secs(int_param(p, "timeout").unwrap_or(0).clamp(0, 50) as u64);
    let allowed = object_param(p, "allowed_updates", "allowed updates")?;

    let mut state = shared.state.lock().unwrap();
    if state.webhook_url.is_some() {
        return Err(ApiError { code: 409, description: CONFLICT_WEBHOOK.into(), parameters: None });
    }
    if let Some(allowed) = allowed {
        let kinds: Vec<String> = allowed
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str())
            .map(String::from)
            .collect();
        state.allowed_updates = if kinds.is_empty() { None } else { Some(kinds) };
    }
    let now = Instant::now();
    if let Some((_, at)) = state.last_poll.filter(|(previous, _)| *previous == offset) {
        if now < at + Duration::from_secs(3) {
            timeout = timeout.max(Duration::from_secs(3));
        }
        if now < at + Duration::from_millis(500) {
            limit = 1;
        }
    }
    state.last_poll = Some((offset, now));
    state.confirm(offset);

    let deadline = now + timeout;
    let ended = state.polls_ended;
    let mut generation = None;
    loop {
        if generation.is_some_and(|g| g != state.poll_generation) {
            let description = CONFLICT_OTHER_POLL.into();
            return Err(ApiError { code: 409, description, parameters: None });
        }
        state.forget_expired_presses();
        if !state.queue.is_empty() {
            let updates: Vec<Value> = state.queue.iter().take(limit).cloned().collect();
            return Ok(ok(Value::Array(updates)));
        }
        if state.webhook_url.is_some() {
            let description = CONFLICT_SET_WEBHOOK.into();
            return Err(ApiError { code: 409, description, parameters: None });
        }
        let now = Instant::now();
        if state.stopped || now >= deadline || state.polls_ended != ended {
            return Ok(ok(json!([])));
        }
        if generation.is_none() {
            state.poll_generation += 1;
            generation = Some(state.poll_generation);
            shared.wake.notify_all(); // a parked older poll now ends with 409
        }
        state.parked_polls += 1;
        state = shared.wake.wait_timeout(state, deadline - now).unwrap().0;
        state.parked_polls -= 1;
    }
}

// --- parameters ---

/// Object parameters that a form or query string carries JSON-encoded.
const JSON_PARAMS: [&str; 9] = [
    "reply_markup",
    "reply_parameters",
    "link_preview_options",
    "allowed_updates",
    "commands",
    "scope",
    "entities",
    "rich_message",
    "result",
];

/// Merges the query string and the body (form or JSON) into one map.
fn parse_params(request: &Request) -> Result<Map<String, Value>, ApiError> {
    let mut params = Map::new();
    for (name, value) in form_pairs(&request.query) {
        params.insert(name, Value::String(value));
    }
    if !request.body.is_empty() {
        let content_type = request.header("content-type").unwrap_or("").to_ascii_lowercase();
        if content_type.starts_with("application/json") {
            match serde_json::from_slice(&request.body) {
                Ok(Value::Object(body)) => params.extend(body),
                _ => return Err(bad_request("can't parse JSON encoded request")),
            }
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            for (name, value) in form_pairs(&String::from_utf8_lossy(&request.body)) {
                params.insert(name, Value::String(value));
            }
        } else if content_type.starts_with("multipart/form-data") {
            // A file part becomes {filename, content_type, base64}; text parts are strings.
            let raw = request.header("content-type").unwrap_or("");
            let boundary = raw
                .split(';')
                .find_map(|p| p.trim().strip_prefix("boundary="))
                .map(|b| b.trim_matches('"').to_string())
                .unwrap_or_default();
            let Some(parts) = crate::fake_gigachat::parse_multipart(&request.body, &boundary)
            else {
                return Err(bad_request("can't parse multipart/form-data request"));
            };
            for part in parts {
                let value = match &part.filename {
                    Some(filename) => json!({
                        "filename": filename,
                        "content_type": part.content_type,
                        "base64": crate::fake_gigachat::base64_encode(&part.body),
                    }),
                    None => match String::from_utf8(part.body) {
                        Ok(text) => Value::String(text),
                        Err(_) => return Err(bad_request("a form field is not UTF-8")),
                    },
                };
                params.insert(part.name, value);
            }
        } else {
            return Err(bad_request(format!(
                "the fake doesn't accept Content-Type \"{content_type}\""
            )));
        }
    }
    for name in JSON_PARAMS {
        if let Some(Value::String(encoded)) = params.get(name)
            && let Ok(decoded) = serde_json::from_str::<Value>(encoded)
            && (decoded.is_object() || decoded.is_array())
        {
            params.insert(name.to_string(), decoded);
        }
    }
    Ok(params)
}

fn form_pairs(encoded: &str) -> Vec<(String, String)> {
    encoded
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |i: usize| bytes.get(i).and_then(|&b| (b as char).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'+', _, _) => out.push(b' '),
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 2;
            }
            (byte, _, _) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A parameter as text: strings as they are, numbers and booleans printed, objects as JSON.
fn text_param(p: &Map<String, Value>, name: &str) -> Option<String> {
    match p.get(name)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn int_param(p: &Map<String, Value>, name: &str) -> Option<i64> {
    match p.get(name)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn bool_param(p: &Map<String, Value>, name: &str) -> bool {
    match p.get(name) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.as_str(), "true" | "True" | "1"),
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    }
}

/// An object or array parameter; a string that isn't JSON of one is an error.
fn object_param(p: &Map<String, Value>, name: &str, what: &str) -> Result<Option<Value>, ApiError> {
    match p.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(value @ (Value::Object(_) | Value::Array(_))) => Ok(Some(value.clone())),
        Some(_) => Err(bad_request(format!("can't parse {what} JSON object"))),
    }
}

/// The raw `text` checks the server makes before anything else.
fn check_raw_text(text: &str) -> Result<(), ApiError> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(bad_request("text is too long"));
    }
    if text.is_empty() {
        return Err(bad_request("message text is empty"));
    }
    Ok(())
}

/// Parses the text for the parse mode: Ok(true) for HTML, Ok(false) for plain text.
fn parse_mode(p: &Map<String, Value>) -> Result<bool, ApiError> {
    let mode = text_param(p, "parse_mode").unwrap_or_default().to_ascii_lowercase();
    match mode.as_str() {
        "" | "none" => Ok(false),
        "html" => Ok(true),
        "markdown" | "markdownv2" => {
            Err(bad_request("unsupported parse_mode (the fake implements only HTML)"))
        }
        _ => Err(bad_request("unsupported parse_mode")),
    }
}

fn parse_text(raw: &str, html: bool) -> Result<(String, Vec<tg_html::Entity>), ApiError> {
    if !html {
        return Ok((raw.to_string(), Vec::new()));
    }
    tg_html::parse(raw).map_err(|detail| bad_request(format!("can't parse entities: {detail}")))
}

/// What TDLib does to the parsed text before sending: trim, then check it's 1–4096 chars.
fn finish_text(parsed: &(String, Vec<tg_html::Entity>)) -> Result<(String, Vec<Value>), ApiError> {
    let (text, entities) = tg_html::trim(&parsed.0, &parsed.1);
    if text.is_empty() {
        return Err(bad_request("text must be non-empty"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(bad_request("message is too long"));
    }
    Ok((text, entities.iter().map(tg_html::Entity::to_json).collect()))
}

/// Checks the structure of `reply_markup` (the server's part; button data is checked later).
fn markup_param(p: &Map<String, Value>) -> Result<Option<Value>, ApiError> {
    let Some(markup) = object_param(p, "reply_markup", "reply keyboard markup")? else {
        return Ok(None);
    };
    let Some(fields) = markup.as_object() else {
        return Err(bad_request("can't parse reply keyboard markup JSON object"));
    };
    let Some(rows) = fields.get("inline_keyboard") else {
        let reply_keyboard =
            ["keyboard", "remove_keyboard", "force_reply"].iter().any(|k| fields.contains_key(*k));
        return match reply_keyboard {
            true => Ok(Some(markup)),
            false => Err(bad_request("can't parse reply keyboard markup JSON object")),
        };
    };
    let not_rows = || {
        bad_request(
            "field \"inline_keyboard\" of the InlineKeyboardMarkup should be an Array of Arrays",
        )
    };
    for row in rows.as_array().ok_or_else(not_rows)? {
        for button in row.as_array().ok_or_else(not_rows)? {
            check_button(button)?;
        }
    }
    Ok(Some(markup))
}

fn check_button(button: &Value) -> Result<(), ApiError> {
    let invalid = |why: &str| bad_request(format!("can't parse inline keyboard button: {why}"));
    if !button["text"].is_string() {
        return Err(invalid("Field \"text\" must be of type String"));
    }
    let kinds: Vec<&str> =
        BUTTON_KINDS.iter().copied().filter(|k| button.get(*k).is_some()).collect();
    match kinds.as_slice() {
        [] => return Err(invalid("Text buttons are unallowed in the inline keyboard")),
        [_] => {}
        _ => {
            return Err(invalid(
                "exactly one of the optional fields must be used (the fake's rule)",
            ));
        }
    }
    if button.get("callback_data").is_some_and(|d| !d.is_string()) {
        return Err(invalid("Field \"callback_data\" must be of type String"));
    }
    if let Some(url) = button.get("url") {
        let url = url.as_str().unwrap_or("");
        let valid = ["http://", "https://", "tg://"]
            .iter()
            .any(|scheme| url.strip_prefix(scheme).is_some_and(|rest| !rest.is_empty()));
        if !valid {
            return Err(bad_request("BUTTON_URL_INVALID"));
        }
    }
    Ok(())
}

/// Telegram's own check of callback data: 1–64 bytes.
fn check_button_data(markup: &Option<Value>) -> Result<(), ApiError> {
    let rows = markup.as_ref().and_then(|m| m["inline_keyboard"].as_array());
    for button in rows.into_iter().flatten().filter_map(Value::as_array).flatten() {
        if let Some(data) = button["callback_data"].as_str()
            && (data.is_empty() || data.len() > 64)
        {
            return Err(bad_request("BUTTON_DATA_INVALID"));
        }
    }
    Ok(())
}

/// The inline keyboard, as it appears in a Message; reply keyboards don't.
fn inline_markup(markup: &Option<Value>) -> Option<Value> {
    markup.clone().filter(|m| m.get("inline_keyboard").is_some())
}

/// reply_parameters, or the legacy reply_to_message_id when reply_parameters is absent:
/// (message_id, allow_sending_without_reply).
fn reply_param(p: &Map<String, Value>) -> Result<Option<(i64, bool)>, ApiError> {
    if let Some(reply) = object_param(p, "reply_parameters", "reply parameters")? {
        let Some(message_id) = reply["message_id"].as_i64() else {
            return Err(bad_request("can't parse reply parameters JSON object"));
        };
        let allow = reply["allow_sending_without_reply"].as_bool().unwrap_or(false);
        return Ok(Some((message_id, allow)));
    }
    match int_param(p, "reply_to_message_id") {
        Some(id) if id != 0 => Ok(Some((id, bool_param(p, "allow_sending_without_reply")))),
        _ => Ok(None),
    }
}

/// What a guest answer shows, as read from its `input_message_content`.
struct GuestContent {
    kind: Kind,
    text: String,
    html: String,
    parse_mode: Option<String>,
    entities: Vec<Value>,
    blocks: Vec<Value>,
}

/// The fields of an InlineQueryResultArticle (Bot API 10.1).
const ARTICLE_FIELDS: [&str; 10] = [
    "type",
    "id",
    "title",
    "input_message_content",
    "reply_markup",
    "url",
    "description",
    "thumbnail_url",
    "thumbnail_width",
    "thumbnail_height",
];

/// An InlineQueryResultArticle's own fields: `type` "article" (the only result type the fake
/// reads), `id` of 1–64 bytes (Telegram's RESULT_ID_INVALID otherwise), a non-empty `title`,
/// typed optional fields, no unknown field (the fake's rule: Telegram would ignore a
/// misspelt one). Returns the id and title. The words of the parse errors are the fake's.
fn check_article(fields: &Map<String, Value>) -> Result<(String, String), ApiError> {
    let invalid = |why: String| bad_request(format!("can't parse inline query result: {why}"));
    let string = |name: &str| {
        let value = fields.get(name).and_then(Value::as_str);
        value.ok_or_else(|| invalid(format!("Field \"{name}\" must be of type String")))
    };
    match string("type")? {
        "article" => {}
        other => {
            return Err(invalid(format!("the fake reads only type \"article\", not \"{other}\"")));
        }
    }
    if let Some(other) = fields.keys().find(|k| !ARTICLE_FIELDS.contains(&k.as_str())) {
        return Err(invalid(format!("unknown field \"{other}\" (the fake's rule)")));
    }
    let id = string("id")?;
    if id.is_empty() || id.len() > 64 {
        return Err(bad_request("RESULT_ID_INVALID"));
    }
    let title = string("title")?;
    if title.trim().is_empty() {
        return Err(invalid("Field \"title\" must be non-empty (the fake's rule)".into()));
    }
    for name in ["url", "description", "thumbnail_url"] {
        if fields.get(name).is_some_and(|v| !v.is_string()) {
            return Err(invalid(format!("Field \"{name}\" must be of type String")));
        }
    }
    for name in ["thumbnail_width", "thumbnail_height"] {
        if fields.get(name).is_some_and(|v| !v.is_i64()) {
            return Err(invalid(format!("Field \"{name}\" must be of type Integer")));
        }
    }
    Ok((id.to_string(), title.to_string()))
}

/// The `reply_markup` of an inline result: an inline keyboard only (the spec's type).
fn guest_markup(fields: &Map<String, Value>) -> Result<Option<Value>, ApiError> {
    let markup = markup_param(fields)?;
    if markup.as_ref().is_some_and(|m| m.get("inline_keyboard").is_none()) {
        return Err(bad_request("can't parse inline keyboard markup JSON object"));
    }
    Ok(markup)
}

/// An InputTextMessageContent, checked as sendMessage checks its text: 1–4096 characters
/// after parsing and trimming, parse_mode HTML read by `tg_html`, link_preview_options an
/// object. `entities` is refused, as the fake reads only the HTML parse mode.
fn text_content(content: &Map<String, Value>) -> Result<GuestContent, ApiError> {
    let known = ["message_text", "parse_mode", "link_preview_options"];
    if let Some(other) = content.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(unknown_content_field(other));
    }
    let Some(raw) = content.get("message_text").and_then(Value::as_str) else {
        return Err(bad_request(
            "can't parse input message content: Field \"message_text\" must be of type String",
        ));
    };
    check_raw_text(raw)?;
    let html = parse_mode(content)?;
    let parsed = parse_text(raw, html)?;
    object_param(content, "link_preview_options", "link preview options")?;
    let (text, entities) = finish_text(&parsed)?;
    Ok(GuestContent {
        kind: if html { Kind::Html } else { Kind::Plain },
        text,
        html: raw.to_string(),
        parse_mode: text_param(content, "parse_mode").filter(|m| !m.is_empty()),
        entities,
        blocks: Vec::new(),
    })
}

fn unknown_content_field(name: &str) -> ApiError {
    bad_request(format!(
        "can't parse input message content: unknown field \"{name}\" (the fake's rule; it \
         reads message_text with parse_mode HTML, or rich_message)"
    ))
}

/// Where a draft goes and how it shows (`State::draft_target`).
struct DraftTarget {
    chat_id: i64,
    message_thread_id: Option<i64>,
    draft_id: i64,
    can_stop: bool,
    keep_on_stop: bool,
}

impl DraftTarget {
    fn draft(
        self,
        kind: Kind,
        text: String,
        html: String,
        parse_mode: Option<String>,
        blocks: Vec<Value>,
    ) -> SentDraft {
        let thinking = match kind {
            Kind::Rich => blocks.iter().any(|block| block["type"] == "thinking"),
            _ => text.is_empty(),
        };
        SentDraft {
            chat_id: self.chat_id,
            message_thread_id: self.message_thread_id,
            draft_id: self.draft_id,
            kind,
            text,
            html,
            parse_mode,
            can_stop: self.can_stop,
            keep_on_stop: self.keep_on_stop,
            after_stop: false,
            thinking,
            blocks,
            at: Instant::now(),
        }
    }
}

/// A Boolean parameter, strictly: JSON true/false/1/0, or a string the server reads (its
/// `to_bool`: "true", "yes", "1", any case, are true). The server takes anything else as
/// false; the fake refuses it (its rule), as a bot that sends it means something else.
fn strict_bool(p: &Map<String, Value>, name: &str) -> Result<bool, ApiError> {
    let text = match p.get(name) {
        None | Some(Value::Null) => return Ok(false),
        Some(Value::Bool(value)) => return Ok(*value),
        Some(Value::String(text)) => text.trim().to_ascii_lowercase(),
        Some(other) => other.to_string(),
    };
    match text.as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" | "" => Ok(false),
        _ => Err(bad_request(format!(
            "parameter \"{name}\" must be a Boolean (the fake's rule: the server would take \
             it as false)"
        ))),
    }
}

/// The fields of an InputRichMessage: exactly one of html, markdown (and 10.2's blocks);
/// Booleans is_rtl, skip_entity_detection; media (10.2); nothing else (the fake's rule).
fn check_rich_fields(fields: &Map<String, Value>) -> Result<(), ApiError> {
    let invalid = |why: String| bad_request(format!("can't parse InputRichMessage: {why}"));
    for (name, value) in fields {
        match name.as_str() {
            "html" | "markdown" if !value.is_string() && !value.is_null() => {
                return Err(invalid(format!("Field \"{name}\" must be of type String")));
            }
            "is_rtl" | "skip_entity_detection" if !value.is_boolean() => {
                return Err(invalid(format!("Field \"{name}\" must be of type Boolean")));
            }
            "html" | "markdown" | "blocks" | "media" | "is_rtl" | "skip_entity_detection" => {}
            other => {
                return Err(invalid(format!("unknown field \"{other}\" (the fake's rule)")));
            }
        }
    }
    let given = ["html", "markdown", "blocks"];
    let given = given.iter().filter(|f| fields.get(**f).is_some_and(|v| !v.is_null()));
    if given.count() != 1 {
        return Err(bad_request("exactly one of the fields html or markdown must be used"));
    }
    Ok(())
}

// --- methods ---

impl State {
    /// getFile: a known file_id gets its File (without `file_path` over 20 MB, which the
    /// server refuses: "file is too big").
    fn get_file(&mut self, p: &Map<String, Value>) -> Result<Value, ApiError> {
        let file_id = text_param(p, "file_id").ok_or_else(|| required("file_id"))?;
        let Some(file) = self.files.get(&file_id) else {
            return Err(bad_request("invalid file_id"));
        };
        if file.size > MAX_DOWNLOAD {
            return Err(bad_request("file is too big"));
        }
        Ok(ok(json!({
            "file_id": file_id,
            "file_unique_id": file.file_unique_id,
            "file_size": file.size,
            "file_path": file.path,
        })))
    }

    /// The files of a pushed message (photo sizes, a document, a voice, a sticker), so that
    /// getFile knows them; a file_id already known keeps its bytes.
    fn register_files(&mut self, message: &Value) {
        let mut found: Vec<(&Value, &str)> = Vec::new();
        for size in message["photo"].as_array().into_iter().flatten() {
            found.push((size, "photos"));
        }
        for (field, folder) in
            [("document", "documents"), ("voice", "voice"), ("sticker", "stickers")]
        {
            if message[field].is_object() {
                found.push((&message[field], folder));
            }
        }
        for (file, folder) in found {
            let Some(file_id) = file["file_id"].as_str() else {
                continue;
            };
            if self.files.contains_key(file_id) {
                continue;
            }
            let extension = match folder {
                "photos" => "jpg".to_string(),
                "voice" => "oga".into(),
                "stickers" => "webp".into(),
                _ => file["file_name"]
                    .as_str()
                    .and_then(|n| n.rsplit_once('.'))
                    .map_or("bin".into(), |(_, e)| e.to_ascii_lowercase()),
            };
            let path = format!("{folder}/file_{}.{extension}", self.files.len());
            let fake = FakeFile {
                file_unique_id: file["file_unique_id"]
                    .as_str()
                    .map_or_else(|| unique_id(file_id), String::from),
                size: file["file_size"].as_u64().unwrap_or(0),
                path,
                bytes: None,
                lost: false,
            };
            self.files.insert(file_id.to_string(), fake);
        }
    }

    fn send_message(&mut self, p: &Map<String, Value>) -> Result<Value, ApiError> {
        let raw = text_param(p, "text").unwrap_or_default();
        check_raw_text(&raw)?;
        let html = parse_mode(p)?;
        let parsed = parse_text(&raw, html)?;
        object_param(p, "link_preview_options", "link preview options")?;
        let markup = markup_param(p)?;
        let reply = reply_param(p)?;
        let chat_id = self.resolve_chat(p)?;
        let (text, entities) = finish_text(&parsed)?;
        let reply_to = self.reply_target(chat_id, reply)?;
        self.check_reachable(chat_id)?;
        check_button_data(&markup)?;
        self.flood_check(chat_id)?;

        let seq = self.next_seq();
        let chat = self.chats.get_mut(&chat_id).expect("resolved above");
        let message_id = chat.next_message_id;
        chat.next_message_id += 1;
        let mut message = json!({
            "message_id": message_id,
            "from": bot_user(),
            "chat": chat.object,
            "date": unix_now(),
            "text": text,
        });
        if !entities.is_empty() {
            message["entities"] = Value::Array(entities);
        }
        if let Some(id) = reply_to {
            message["reply_to_message"] = reply_object(&chat.messages[&id].message);
        }
        if let Some(markup) = inline_markup(&markup) {
            message["reply_markup"] = markup;
        }
        let stored = Stored {
            message: message.clone(),
            from_bot: true,
            html: raw,
            parse_mode: text_param(p, "parse_mode").filter(|m| !m.is_empty()),
            reply_to,
            edits: 0,
            deleted: false,
            seq,
            photo: None,
            rich_text: None,
        };
        chat.messages.insert(message_id, stored);
        chat.draft_replaced = true;
        chat.stop = None;
        Ok(ok(message))
    }

    /// sendPhoto as an upload: the `photo` part (a file part: a file_id or URL string is
    /// not served by this fake), a caption of 0–1024 characters after parsing, the usual
    /// HTML, chat, reply and reachability checks. The error texts are the server's
    /// (reference §5.2).
    fn send_photo(&mut self, p: &Map<String, Value>) -> Result<Value, ApiError> {
        let bytes = match p.get("photo") {
            Some(Value::Object(file)) => file
                .get("base64")
                .and_then(Value::as_str)
                .and_then(crate::fake_gigachat::base64_decode)
                .filter(|b| !b.is_empty()),
            Some(Value::String(_)) => {
                return Err(bad_request("wrong file identifier/HTTP URL specified"));
            }
            _ => None,
        };
        let Some(bytes) = bytes else {
            return Err(bad_request("there is no photo in the request"));
        };
        if bytes.len() > 10 << 20 || !bytes.starts_with(&[0xFF, 0xD8]) {
            return Err(bad_request("IMAGE_PROCESS_FAILED"));
        }
        let raw = text_param(p, "caption").unwrap_or_default();
        let html = parse_mode(p)?;
        let parsed = parse_text(&raw, html)?;
        let reply = reply_param(p)?;
        let chat_id = self.resolve_chat(p)?;
        let (caption, entities) = tg_html::trim(&parsed.0, &parsed.1);
        if caption.chars().count() > 1024 {
            return Err(bad_request("message caption is too long"));
        }
        let reply_to = self.reply_target(chat_id, reply)?;
        self.check_reachable(chat_id)?;
        self.flood_check(chat_id)?;

        let seq = self.next_seq();
        let chat = self.chats.get_mut(&chat_id).expect("resolved above");
        let message_id = chat.next_message_id;
        chat.next_message_id += 1;
        let unique = format!("photo{chat_id}x{message_id}");
        let mut message = json!({
            "message_id": message_id,
            "from": bot_user(),
            "chat": chat.object,
            "date": unix_now(),
            "photo": [{
                "file_id": format!("AgAC{unique}"),
                "file_unique_id": unique,
                "width": 1024,
                "height": 1024,
                "file_size": bytes.len(),
            }],
        });
        if !caption.is_empty() {
            message["caption"] = json!(caption);
            let entities: Vec<Value> = entities.iter().map(tg_html::Entity::to_json).collect();
            if !entities.is_empty() {
                message["caption_entities"] = Value::Array(entities);
            }
        }
        if let Some(id) = reply_to {
            message["reply_to_message"] = reply_object(&chat.messages[&id].message);
        }
        let stored = Stored {
            message: message.clone(),
            from_bot: true,
            html: raw,
            parse_mode: text_param(p, "parse_mode").filter(|m| !m.is_empty()),
            reply_to,
            edits: 0,
            deleted: false,
            seq,
            photo: Some(bytes),
            rich_text: None,
        };
        chat.messages.insert(message_id, stored);
        chat.draft_replaced = true;
        chat.stop = None;
        Ok(ok(message))
    }

    /// sendMessageDraft: private chats only, a non-zero draft_id, 0–4096 characters after
    /// parsing (empty shows "Thinking…", whitespace alone is refused), the usual HTML errors,
    /// `can_stop` and `keep_on_stop` Booleans (`draft_target`).
    fn send_message_draft(&mut self, p: &Map<String, Value>) -> Result<Value, ApiError> {
        let raw = text_param(p, "text").unwrap_or_default();
        if raw.len() > MAX_TEXT_BYTES {
            return Err(bad_request("text is too long"));
        }
        let html = parse_mode(p)?;
        let parsed = parse_text(&raw, html)?;
        let target = self.draft_target(p)?;
        let (text, _) = tg_html::trim(&parsed.0, &parsed.1);
        if text.is_empty() && !raw.is_empty() {
            return Err(bad_request("text must be non-empty"));
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(bad_request("message is too long"));
        }
        self.check_reachable(target.chat_id)?;
        let kind = if html { Kind::Html } else { Kind::Plain };
        let parse_mode = text_param(p, "parse_mode").filter(|m| !m.is_empty());
        self.record_draft(target.draft(kind, text, raw, parse_mode, Vec::new()));
        Ok(ok(json!(true)))
    }

    /// sendRichMessageDraft (Bot API 10.1): what sendMessageDraft checks of the draft, with a
    /// `rich_message` for content (`rich_param`), where `<tg-thinking>` is allowed.
    fn send_rich_message_draft(&mut self, p: &Map<String, Value>) -> Result<Value, ApiError> {
        let (html, rich, _) = self.rich_param(p, "sendRichMessageDraft")?;
        let target = self.draft_target(p)?;
        self.check_reachable(target.chat_id)?;
        self.record_draft(target.draft(Kind::Rich, rich.text, html, None, rich.blocks));
        Ok(ok(json!(true)))
    }

    /// The chat and draft of a draft: a non-zero draft_id, `can_stop` and `keep_on_stop`
    /// (Bot API 10.3; parameters an older server ignores), a private chat. The descriptions
    /// for a zero draft_id and a non-private chat are the fake's wording of the documented
    /// rules (TDLib's RPC error for the chat is TEXTDRAFT_PEER_INVALID). `chat_id` is an
    /// Integer in the spec; the server still looks an "@username" up, which finds only
    /// supergroups and channels (not private: TEXTDRAFT_PEER_INVALID) and bots, so a user's
    /// "@username" gets "chat not found" (`resolve_chat`).
    fn draft_target(&self, p: &Map<String, Value>) -> Result<DraftTarget, ApiError> {
        let draft_id = int_param(p, "draft_id").ok_or_else(|| required("draft_id"))?;
        if draft_id == 0 {
            return Err(bad_request("draft_id must be non-zero"));
        }
        let (can_stop, keep_on_stop) = match self.old_server {
            true => (false, false),
            false => (strict_bool(p, "can_stop")?, strict_bool(p, "keep_on_stop")?),
        };
        let chat_id = self.resolve_chat(p)?;
        if self.chats[&chat_id].object["type"] != "private" {
            return Err(bad_request("TEXTDRAFT_PEER_INVALID"));
        }
        let message_thread_id = int_param(p, "message_thread_id");
        Ok(DraftTarget { chat_id, message_thread_id, draft_id, can_stop, keep_on_stop })
    }

    /// Keeps a draft; one with the draft_id the user stopped is kept as sent after Stop.
    fn record_draft(&mut self, mut draft: SentDraft) {
        let chat = self.chats.get_mut(&draft.chat_id).expect("a checked chat");
        match chat.stop {
            Some((stopped, _)) if stopped == draft.draft_id => draft.after_stop = true,
            _ => {
                chat.stop = None;
                chat.draft_replaced = false;
            }
        }
        chat.drafts.push(draft);
    }

    /// sendRichMessage (Bot API 10.1): a `rich_message` (`rich_param`) to any chat, with
    /// the reply, markup, reachability and flood checks of sendMessage. The sent Message
    /// carries `rich_message: {blocks, is_rtl?}`.
    fn send_rich_message(&mut self, p: &Map<String, Value>) -> Result<Value, ApiError> {
        let (html, rich, is_rtl) = self.rich_param(p, "sendRichMessage")?;
        let markup = markup_param(p)?;
        let reply = reply_param(p)?;
        let chat_id = self.resolve_chat(p)?;
        let reply_to = self.reply_target(chat_id, reply)?;
        self.check_reachable(chat_id)?;
        check_button_data(&markup)?;
        self.flood_check(chat_id)?;

        let seq = self.next_seq();
        let chat = self.chats.get_mut(&chat_id).expect("resolved above");
        let message_id = chat.next_message_id;
        chat.next_message_id += 1;
        let mut rich_message = json!({"blocks": rich.blocks});
        if is_rtl {
            rich_message["is_rtl"] = json!(true);
        }
        let mut message = json!({
            "message_id": message_id,
            "from": bot_user(),
            "chat": chat.object,
            "date": unix_now(),
            "rich_message": rich_message,
        });
        if let Some(id) = reply_to {
            message["reply_to_message"] = reply_object(&chat.messages[&id].message);
        }
        if let Some(markup) = inline_markup(&markup) {
            message["reply_markup"] = markup;
        }
        let stored = Stored {
            message: message.clone(),
            from_bot: true,
            html,
            parse_mode: None,
            reply_to,
            edits: 0,
            deleted: false,
            seq,
            photo: None,
            rich_text: Some(rich.text),
        };
        chat.messages.insert(message_id, stored);
        chat.draft_replaced = true;
        chat.stop = None;
        Ok(ok(message))
    }

    /// The `rich_message` parameter, an InputRichMessage: "exactly one of the fields html or
    /// markdown must be used" (10.2 adds `blocks`), `is_rtl` and `skip_entity_detection`
    /// Booleans; its `html` read by `tg_rich` (`<tg-thinking>` in drafts only). Returns the
    /// html, what it shows, and `is_rtl`. The fake's own rules, where the reference leaves
    /// Telegram's answer open (UNCONFIRMED): an unknown field is refused (a misspelt one
    /// would be ignored by Telegram); `markdown` and `blocks` are refused, as the fake reads
    /// only `html` (as it reads only the HTML parse mode); media (`media`, `<img>`, …) are
    /// refused and recorded (`rich_media`), because Telegram would fetch their URLs.
    fn rich_param(
        &mut self,
        p: &Map<String, Value>,
        method: &'static str,
    ) -> Result<(String, tg_rich::Rich, bool), ApiError> {
        let input = object_param(p, "rich_message", "rich message")?
            .ok_or_else(|| required("rich_message"))?;
        let Some(fields) = input.as_object() else {
            return Err(bad_request("can't parse rich message JSON object"));
        };
        check_rich_fields(fields)?;
        let chat_id = int_param(p, "chat_id");
        if let Some(media) = fields.get("media").filter(|m| !m.is_null()) {
            let url = media.pointer("/0/media").and_then(Value::as_str).map(String::from);
            self.rich_media.push(RichMedia { method, chat_id, tag: "media".into(), url });
            return Err(bad_request(
                "can't parse rich message: the fake refuses media, whose URLs Telegram would fetch",
            ));
        }
        let Some(Value::String(html)) = fields.get("html") else {
            return Err(bad_request(
                "can't parse rich message: the fake implements only the field html",
            ));
        };
        if html.is_empty() {
            return Err(bad_request("message text is empty"));
        }
        let rich = tg_rich::parse(html, method == "sendRichMessageDraft").map_err(|refusal| {
            if let tg_rich::Refusal::Media { tag, url, .. } = &refusal {
                let (tag, url) = (tag.clone(), url.clone());
                self.rich_media.push(RichMedia { method, chat_id, tag, url });
            }
            ApiError { code: 400, description: refusal.description(), parameters: None }
        })?;
        // Nothing to read (no blocks, or only empty ones) is refused as an empty text is;
        // a "Thinking…" block shows without text.
        let thinking = !tg_rich::find_blocks(&rich.blocks, "thinking").is_empty();
        if rich.text.is_empty() && !thinking {
            return Err(bad_request("text must be non-empty"));
        }
        Ok((html.clone(), rich, fields.get("is_rtl") == Some(&json!(true))))
    }

    fn edit_message_text(&mut self, p: &Map<String, Value>) -> Result<Value, ApiError> {
        let raw = text_param(p, "text").unwrap_or_default();
        check_raw_text(&raw)?;
        let html = parse_mode(p)?;
        let parsed = parse_text(&raw, html)?;
        object_param(p, "link_preview_options", "link preview options")?;
        let markup = markup_param(p)?;
        let (chat_id, message_id) = self.message_to_edit(p)?;
        let (text, entities) = finish_text(&parsed)?;
        let stored = &self.chats[&chat_id].messages[&message_id].message;
        let entities = Value::Array(entities);
        let same_text = stored["text"] == json!(text)
            && *stored.get("entities").unwrap_or(&json!([])) == entities;
        if same_text && stored.get("reply_markup").cloned() == inline_markup(&markup) {
            return Err(bad_request(NOT_MODIFIED));
        }
        self.check_reachable(chat_id)?;
        check_button_data(&markup)?;
        self.flood_check(chat_id)?;

        let stored = self.stored_mut(chat_id, message_id);
        let message = stored.message.as_object_mut().expect("a stored message is an object");
        message.insert("text".into(), json!(text));
        match entities.as_array().is_some_and(|e| !e.is_empty()) {
            true => message.insert("entities".into(), entities),
            false => message.remove("entities"),
        };
        set_markup(message, inline_markup(&markup));
        message.insert("edit_date".into(), json!(unix_now()));
        message.remove("rich_message"); // a rich message edited with text is a text message
        stored.html = raw;
        stored.parse_mode = text_param(p, "parse_mode").filter(|m| !m.is_empty());
        stored.rich_text = None;
        stored.edits += 1;
        Ok(ok(stored.message.clone()))
    }

    fn edit_message_reply_markup(&mut self, p: &Map<String, Value>) -> Result<Value, ApiError> {
        let markup = markup_param(p)?;
        let (chat_id, message_id) = self.message_to_edit(p)?;
        let stored = &self.chats[&chat_id].messages[&message_id].message;
        if stored.get("reply_markup").cloned() == inline_markup(&markup) {
            return Err(bad_request(NOT_MODIFIED));
        }
        self.check_reachable(chat_id)?;
        check_button_data(&markup)?;
        self.flood_check(chat_id)?;

        let stored = self.stored_mut(chat_id, message_id);
        let message = stored.message.as_object_mut().expect("a stored message is an object");
        set_markup(message, inline_markup(&markup));
        message.insert("edit_date".into(), json!(unix_now()));
        stored.edits += 1;
        Ok(ok(stored.message.clone()))
    }

    /// The chat and id of a message the bot may edit.
    fn message_to_edit(&self, p: &Map<String, Value>) -> Result<(i64, i64), ApiError> {
        if p.contains_key("inline_message_id") {
            return Err(bad_request("MESSAGE_ID_INVALID")); // the fake has no inline messages
        }
        let chat_id = self.resolve_chat(p)?;
        let message_id = int_param(p, "message_id").ok_or_else(|| required("message_id"))?;
        let stored = self.live_message(chat_id, message_id);
        match stored {
            None => Err(bad_request("message to edit not found")),
            Some(stored) if !stored.from_bot => Err(bad_request("message can't be edited")),
            Some(_) => Ok((chat_id, message_id)),
        }
    }

    fn delete_message(&mut self, p: &Map<String, Value>) -> Result<Value, ApiError> {
        let chat_id = self.resolve_chat(p)?;
        let message_id = int_param(p, "message_id").ok_or_else(|| required("message_id"))?;
        if self.live_message(chat_id, message_id).is_none() {
            return Err(bad_request("message to delete not found"));
        }
        self.stored_mut(chat_id, message_id).deleted = true;
        Ok(ok(json!(true)))
    }

    /// sendChatAction: a known action, in any chat but a channel ("Channel chats … aren't
    /// supported", the spec; reference §9). The channel error's words are the fake's own
    /// (UNCONFIRMED), from the spec's sentence.
    fn send_chat_action(&mut self, p: &Map<String, Value>) -> Result<Value, ApiError> {
        let action = text_param(p, "action").ok_or_else(|| required("action"))?;
        if !CHAT_ACTIONS.contains(&action.as_str()) {
            return Err(bad_request("wrong parameter action in request"));
        }
        let chat_id = self.resolve_chat(p)?;
        if self.chats[&chat_id].object["type"] == "channel" {
            return Err(bad_request("channel chats aren't supported"));
        }
        self.check_reachable(chat_id)?;
        Ok(ok(json!(true)))
    }

    fn answer_callback_query(&mut self, p: &Map<String, Value>) -> Result<Value, ApiError> {
        let id = text_param(p, "callback_query_id").ok_or_else(|| required("callback_query_id"))?;
        let lifetime = self.callback_query_lifetime;
        let query = self.callback_queries.get_mut(&id);
        let Some(query) =
            query.filter(|q| !q.answered && !q.expired && q.pushed.elapsed() < lifetime)
        else {
            return Err(bad_request(QUERY_TOO_OLD));
        };
        if text_param(p, "text").is_some_and(|t| t.chars().count() > 200) {
            return Err(bad_request("MESSAGE_TOO_LONG"));
        }
        query.answered = true;
        Ok(ok(json!(true)))
    }

    /// answerGuestQuery (Bot API 10.0): one `result`, an article (`check_article`) whose
    /// `input_message_content` is read as sendMessage reads a text or sendRichMessage a
    /// rich message (`guest_content`). As for inline queries, the server reads the result
    /// first and Telegram then checks the query: unknown, answered before or too old are
    /// all "query is too old…" (a query is answered at most once: the fake's reading of an
    /// UNCONFIRMED rule). Returns a SentGuestMessage.
    fn answer_guest_query(&mut self, p: &Map<String, Value>) -> Result<Value, ApiError> {
        let query_id = text_param(p, "guest_query_id").filter(|id| !id.is_empty());
        let query_id = query_id.ok_or_else(|| required("guest_query_id"))?;
        let result =
            object_param(p, "result", "inline query result")?.ok_or_else(|| required("result"))?;
        let Some(fields) = result.as_object() else {
            return Err(bad_request("can't parse inline query result JSON object"));
        };
        let (result_id, title) = check_article(fields)?;
        let markup = guest_markup(fields)?;
        let content = self.guest_content(fields)?;
        check_button_data(&markup)?;
        let lifetime = self.guest_query_lifetime;
        let query = self.guest_queries.get_mut(&query_id);
        let Some(query) =
            query.filter(|q| !q.answered && !q.expired && q.pushed.elapsed() < lifetime)
        else {
            return Err(bad_request(QUERY_TOO_OLD));
        };
        query.answered = true;
        let (chat_id, from_id, message_id) = (query.chat_id, query.from_id, query.message_id);
        self.next_inline_message += 1;
        // Opaque and unique per answer, in base64url characters as Telegram's are (the bot
        // must only keep it, never parse it).
        let inline_message_id =
            format!("AQAAA{:08x}{:x}AAAGbHVlc3Q", self.next_inline_message, message_id);
        self.guest_answers.push(GuestAnswer {
            guest_query_id: query_id,
            inline_message_id: inline_message_id.clone(),
            chat_id,
            from_id,
            message_id,
            kind: content.kind,
            text: content.text,
            html: content.html,
            parse_mode: content.parse_mode,
            entities: content.entities,
            result_id,
            title,
            markup: inline_markup(&markup),
            blocks: content.blocks,
            at: Instant::now(),
        });
        Ok(ok(json!({"inline_message_id": inline_message_id})))
    }

    /// The `input_message_content` of a guest answer: exactly one of an
    /// InputTextMessageContent (`message_text`) and an InputRichMessageContent
    /// (`rich_message`). Which one wins when both are given is not documented; the fake
    /// refuses both (its rule), as it refuses a field it does not know.
    fn guest_content(&mut self, fields: &Map<String, Value>) -> Result<GuestContent, ApiError> {
        let Some(Value::Object(content)) = fields.get("input_message_content") else {
            return Err(bad_request(
                "can't parse inline query result: Field \"input_message_content\" must be of \
                 type Object",
            ));
        };
        match (content.contains_key("message_text"), content.contains_key("rich_message")) {
            (true, false) => text_content(content),
            (false, true) => {
                if let Some(other) = content.keys().find(|k| *k != "rich_message") {
                    return Err(unknown_content_field(other));
                }
                let (html, rich, _) = self.rich_param(content, "answerGuestQuery")?;
                Ok(GuestContent {
                    kind: Kind::Rich,
                    text: rich.text,
                    html,
                    parse_mode: None,
                    entities: Vec::new(),
                    blocks: rich.blocks,
                })
            }
            _ => Err(bad_request(
                "can't parse input message content: exactly one of the fields message_text or \
                 rich_message must be used (the fake's rule)",
            )),
        }
    }

    fn set_my_commands(&mut self, p: &Map<String, Value>) -> Result<Value, ApiError> {
        let commands =
            object_param(p, "commands", "bot commands")?.ok_or_else(|| required("commands"))?;
        let Some(commands) = commands.as_array() else {
            return Err(bad_request("can't parse bot commands JSON object"));
        };
        if commands.len() > 100 {
            return Err(bad_request("BOT_COMMANDS_TOO_MUCH"));
        }
        let mut parsed = Vec::new();
        for command in commands {
            let (Some(name), Some(description)) =
                (command["command"].as_str(), command["description"].as_str())
            else {
                return Err(bad_request("can't parse BotCommand JSON object"));
            };
            let name_ok = (1..=32).contains(&name.len())
                && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !name_ok {
                return Err(bad_request("BOT_COMMAND_INVALID"));
            }
            if !(1..=256).contains(&description.chars().count()) {
                return Err(bad_request("BOT_COMMAND_DESCRIPTION_INVALID"));
            }
            parsed.push((name.to_string(), description.to_string()));
        }
        let default_scope =
            object_param(p, "scope", "bot command scope")?.is_none_or(|s| s["type"] == "default");
        let language = text_param(p, "language_code").unwrap_or_default();
        if default_scope && language.is_empty() {
            self.commands = parsed;
        }
        Ok(ok(json!(true)))
    }

    // --- helpers of the methods ---

    /// The message a send replies to: the one named, if it is there; none if it is gone and
    /// `allow_sending_without_reply`; else "message to be replied not found".
    fn reply_target(
        &self,
        chat_id: i64,
        reply: Option<(i64, bool)>,
    ) -> Result<Option<i64>, ApiError> {
        match reply {
            None => Ok(None),
            Some((id, allow)) => match self.live_message(chat_id, id) {
                Some(_) => Ok(Some(id)),
                None if allow => Ok(None),
                None => Err(bad_request("message to be replied not found")),
            },
        }
    }

    /// `chat_id` as a known chat: an integer, or the "@username" of a supergroup or channel
    /// (the server looks a username up only for those and for bots: a user's gives "chat
    /// not found", `TdOnCheckChatCallback`). An id the bot never saw is "chat not found"
    /// (reference §3); a user it saw elsewhere has a chat, maybe not started.
    fn resolve_chat(&self, p: &Map<String, Value>) -> Result<i64, ApiError> {
        let raw = text_param(p, "chat_id").unwrap_or_default();
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(bad_request("chat_id is empty"));
        }
        let id = match raw.strip_prefix('@') {
            Some(username) => self
                .chats
                .iter()
                .find(|(_, chat)| {
                    ["supergroup", "channel"].contains(&chat.object["type"].as_str().unwrap_or(""))
                        && chat.object["username"]
                            .as_str()
                            .is_some_and(|u| u.eq_ignore_ascii_case(username))
                })
                .map(|(id, _)| *id),
            None => raw.parse().ok(),
        };
        let Some((id, chat)) = id.and_then(|id| Some((id, self.chats.get(&id)?))) else {
            return Err(self.not_a_chat(id));
        };
        if let Some(new_id) = chat.migrated_to {
            return Err(ApiError {
                code: 400,
                description: "Bad Request: group chat was upgraded to a supergroup chat".into(),
                parameters: Some(json!({"migrate_to_chat_id": new_id})),
            });
        }
        Ok(id)
    }

    /// The error for a chat_id that is no chat of the bot's: a chat it was only summoned in
    /// as a guest is known but closed to it, 403 (for a private one, as for a user who never
    /// wrote: the bot cannot start that chat); any other id is "chat not found".
    fn not_a_chat(&self, id: Option<i64>) -> ApiError {
        let Some(guest) = id.and_then(|id| self.guest_chats.get(&id)) else {
            return bad_request("chat not found");
        };
        let description = match guest.object["type"].as_str().unwrap_or("group") {
            "private" => CANT_INITIATE.to_string(),
            kind => format!("Forbidden: bot is not a member of the {kind} chat"),
        };
        ApiError { code: 403, description, parameters: None }
    }

    /// Counts a message to `chat_id`, or answers 429 if the chat has had its share.
    fn flood_check(&mut self, chat_id: i64) -> Result<(), ApiError> {
        let Some(limits) = self.flood else {
            return Ok(());
        };
        let private = self.chats[&chat_id].object["type"] == "private";
        let (allowed, window) = match private {
            true => (limits.private_burst, Duration::from_secs(limits.private_burst as u64)),
            false => (limits.group_per_minute, Duration::from_secs(60)),
        };
        let now = Instant::now();
        let sent = self.sends.entry(chat_id).or_default();
        while sent.front().is_some_and(|t| now - *t >= window) {
            sent.pop_front();
        }
        if sent.len() >= allowed.max(1) {
            let free = *sent.front().expect("at least one send") + window - now;
            let seconds = free.as_secs() + u64::from(free.subsec_nanos() > 0);
            return Err(ApiError {
                code: 429,
                description: format!("Too Many Requests: retry after {seconds}"),
                parameters: Some(json!({"retry_after": seconds})),
            });
        }
        sent.push_back(now);
        Ok(())
    }

    /// 403 if the user never opened the chat, blocked the bot, or the bot was removed from
    /// the group.
    fn check_reachable(&self, chat_id: i64) -> Result<(), ApiError> {
        let chat = &self.chats[&chat_id];
        if !chat.started {
            return Err(ApiError {
                code: 403,
                description: CANT_INITIATE.into(),
                parameters: None,
            });
        }
        if !chat.blocked {
            return Ok(());
        }
        let description = match chat.object["type"].as_str() {
            Some("private") => "Forbidden: bot was blocked by the user".to_string(),
            Some(kind) => format!("Forbidden: bot was kicked from the {kind} chat"),
            None => "Forbidden: bot was kicked from the chat".to_string(),
        };
        Err(ApiError { code: 403, description, parameters: None })
    }

    fn live_message(&self, chat_id: i64, message_id: i64) -> Option<&Stored> {
        self.chats.get(&chat_id)?.messages.get(&message_id).filter(|m| !m.deleted)
    }

    fn stored_mut(&mut self, chat_id: i64, message_id: i64) -> &mut Stored {
        let chat = self.chats.get_mut(&chat_id).expect("a checked chat");
        chat.messages.get_mut(&message_id).expect("a checked message")
    }

    fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Forgets updates below `offset`; a negative offset keeps only the last -offset updates.
    fn confirm(&mut self, offset: i64) {
        if offset < 0 {
            let keep = offset.unsigned_abs() as usize;
            while self.queue.len() > keep {
                self.queue.pop_front();
            }
        } else if offset > 0 && offset <= self.next_update_id.saturating_add(10) {
            // An offset further in the future is ignored, as by the real server.
            self.queue.retain(|u| u["update_id"].as_i64().is_some_and(|id| id >= offset));
            self.confirmed_offset = self.confirmed_offset.max(offset);
        }
    }

    /// How long a getUpdates conflict waits before it fails: nothing for the first in
    /// `CONFLICT_HOLD`, which starts the next such span; `CONFLICT_HOLD` for the others.
    fn conflict_hold(&mut self) -> Duration {
        let now = Instant::now();
        match self.next_conflict_at {
            Some(next) if now < next => CONFLICT_HOLD,
            _ => {
                self.next_conflict_at = Some(now + CONFLICT_HOLD);
                Duration::ZERO
            }
        }
    }

    /// Drops the button presses that waited in the queue longer than a press lives.
    fn forget_expired_presses(&mut self) {
        let (lifetime, presses) = (self.callback_query_lifetime, &self.callback_queries);
        self.queue.retain(|update| {
            let id = update["callback_query"]["id"].as_str();
            id.and_then(|id| presses.get(id)).is_none_or(|q| q.pushed.elapsed() < lifetime)
        });
    }

    /// The kill hook, if this call of `method` is the one it waits for.
    fn due_kill_hook(&mut self, method: &str) -> Option<Box<dyn FnOnce() + Send>> {
        let armed = self.kill_hook.as_mut()?;
        if !armed.method.eq_ignore_ascii_case(method) {
            return None;
        }
        if armed.pass > 0 {
            armed.pass -= 1;
            return None;
        }
        self.kill_hook.take().map(|armed| armed.hook)
    }

    fn next_fault(&mut self, method: &str) -> Option<Fault> {
        let queued =
            self.faults.get_mut(&method.to_ascii_lowercase()).and_then(VecDeque::pop_front);
        if queued.is_some() {
            return queued;
        }
        let outage = self.outages.get(&method.to_ascii_lowercase());
        if let Some((fault, _)) = outage.filter(|(_, until)| Instant::now() < *until) {
            return Some(fault.clone());
        }
        let (rng, rates) = self.random.as_mut()?;
        let roll = rng.unit();
        if roll < rates.server_error {
            return Some(match rng.next() % 2 {
                0 => Fault::Status(
                    500,
                    json!({"ok": false, "error_code": 500, "description": "Internal Server Error: restart"}),
                ),
                _ => Fault::BadGatewayHtml,
            });
        }
        if roll < rates.server_error + rates.dropped {
            // A dropped sendMessage was done (Telegram "has usually delivered it", and the
            // bot does not send it twice); other calls are dropped before being done.
            return Some(match method {
                "sendMessage" | "sendRichMessage" => Fault::DropAfter,
                _ => Fault::Drop,
            });
        }
        let throttled = roll < rates.server_error + rates.dropped + rates.too_many_requests;
        if matches!(method, "sendMessage" | "sendRichMessage") && throttled {
            return Some(Fault::TooManyRequests(rates.retry_after));
        }
        None
    }

    // --- pushing updates ---

    fn push(&mut self, mut update: Value) -> i64 {
        let kind = update
            .as_object()
            .and_then(|u| u.keys().find(|k| *k != "update_id").cloned())
            .expect("an update has a payload field");
        let payload = update.get_mut(&kind).expect("the payload is there");
        match kind.as_str() {
            "message" | "channel_post" => self.register_message(payload),
            "edited_message" | "edited_channel_post" => self.register_edit(payload),
            "callback_query" => self.register_callback_query(payload),
            "my_chat_member" => self.register_member_change(payload),
            "guest_message" => self.register_guest(payload),
            _ => {}
        }
        if let Some(from) = payload.get("from").cloned() {
            self.register_user(&from);
        }
        let id = self.next_update_id;
        self.next_update_id += 1;
        update["update_id"] = json!(id);
        self.pushed.insert(id, update.clone());
        let allowed = match &self.allowed_updates {
            Some(kinds) => kinds.contains(&kind),
            None => !NOT_BY_DEFAULT.contains(&kind.as_str()),
        };
        if allowed {
            self.queue.push_back(update);
        }
        id
    }

    /// Why `update` cannot be pushed, if it is a guest message that cannot be: guest mode
    /// is off, or its guest_query_id was pushed before.
    fn guest_problem(&self, update: &Value) -> Option<String> {
        let message = update.get("guest_message")?;
        if !self.guest_mode {
            return Some(
                "push_guest: guest mode is off (set_guest_mode(false)), so Telegram makes no \
                 guest_message"
                    .into(),
            );
        }
        let id = message["guest_query_id"].as_str().filter(|id| !id.is_empty())?;
        self.guest_queries
            .contains_key(id)
            .then(|| format!("push_guest: guest_query_id {id:?} was pushed before"))
    }

    /// A guest message: its chat kept apart from the bot's own chats (`guest_chats`), a
    /// message_id and guest_query_id given if missing, its query made answerable. A
    /// `reply_to_message` given by the test is kept (without its own reply, as Telegram
    /// nests no further), in the guest chat unless it names another.
    fn register_guest(&mut self, message: &mut Value) {
        let chat_id = message["chat"]["id"].as_i64().expect("a guest message has a chat id");
        let object = message["chat"].clone();
        let guest = self
            .guest_chats
            .entry(chat_id)
            .or_insert_with(|| GuestChat { object, next_message_id: 1 });
        if message["message_id"].as_i64().unwrap_or(0) == 0 {
            message["message_id"] = json!(guest.next_message_id);
        }
        let message_id = message["message_id"].as_i64().expect("set above");
        guest.next_message_id = guest.next_message_id.max(message_id + 1);
        if message["guest_query_id"].as_str().is_none_or(str::is_empty) {
            message["guest_query_id"] = json!(fresh_guest_query_id());
        }
        if let Some(replied) = message.get_mut("reply_to_message").and_then(Value::as_object_mut) {
            replied.remove("reply_to_message");
            replied.entry("chat").or_insert_with(|| guest.object.clone());
        }
        let query = GuestQuery {
            chat_id,
            from_id: message["from"]["id"].as_i64().unwrap_or(0),
            message_id,
            pushed: Instant::now(),
            answered: false,
            expired: false,
        };
        let id = message["guest_query_id"].as_str().expect("set above").to_string();
        self.guest_queries.insert(id, query);
    }

    fn register_chat(&mut self, chat: &Value) -> i64 {
        let id = chat["id"].as_i64().expect("a chat has an integer id");
        self.chats.entry(id).or_insert_with(|| Chat::new(chat.clone())).started = true;
        id
    }

    /// A user the bot saw (`from` of an update): the bot knows their private chat, which
    /// stays unstarted until they write there. Bots and the anonymous senders have none.
    fn register_user(&mut self, user: &Value) {
        let Some(id) = user["id"].as_i64().filter(|id| *id > 0 && user["is_bot"] != true) else {
            return;
        };
        let mut chat = json!({"id": id, "type": "private"});
        for field in ["first_name", "last_name", "username"] {
            if let Some(value) = user.get(field) {
                chat[field] = value.clone();
            }
        }
        self.chats.entry(id).or_insert_with(|| Chat { started: false, ..Chat::new(chat) });
    }

    fn register_message(&mut self, message: &mut Value) {
        let chat_id = self.register_chat(&message["chat"]);
        self.register_files(message);
        let reply_to = message.get("reply_to_message").and_then(|r| r["message_id"].as_i64());
        if let Some(reply_to) = reply_to {
            message["reply_to_message"] = match self.live_message(chat_id, reply_to) {
                Some(stored) => reply_object(&stored.message),
                None => {
                    json!({"message_id": reply_to, "chat": message["chat"], "date": unix_now()})
                }
            };
        }
        if message.get("quote").is_some() {
            check_quote(message);
        }
        if let Some(new_id) = message["migrate_to_chat_id"].as_i64() {
            let title = message["chat"]["title"].clone();
            self.register_chat(&json!({"id": new_id, "title": title, "type": "supergroup"}));
            self.chats.get_mut(&chat_id).expect("registered above").migrated_to = Some(new_id);
        }
        let chat = self.chats.get_mut(&chat_id).expect("registered above");
        let message_id = chat.next_message_id;
        chat.next_message_id += 1;
        message["message_id"] = json!(message_id);
        let stored = Stored {
            message: message.clone(),
            from_bot: false,
            html: String::new(),
            parse_mode: None,
            reply_to,
            edits: 0,
            deleted: false,
            seq: 0,
            photo: None,
            rich_text: None,
        };
        chat.messages.insert(message_id, stored);
    }

    fn register_edit(&mut self, message: &mut Value) {
        let chat_id = self.register_chat(&message["chat"]);
        let message_id = message["message_id"].as_i64().expect("an edit names its message");
        let chat = self.chats.get_mut(&chat_id).expect("registered above");
        if let Some(stored) = chat.messages.get_mut(&message_id) {
            message["date"] = stored.message["date"].clone();
            stored.message = message.clone();
        }
    }

    fn register_callback_query(&mut self, query: &mut Value) {
        if query["id"].as_str().is_none_or(str::is_empty) {
            query["id"] = json!(self.next_callback_query.to_string());
            self.next_callback_query += 1;
        }
        let chat_id = self.register_chat(&query["message"]["chat"]);
        let message_id =
            query["message"]["message_id"].as_i64().expect("a callback names its message");
        query["message"] = match self.live_message(chat_id, message_id) {
            Some(stored) => stored.message.clone(),
            None => json!({"chat": query["message"]["chat"], "message_id": message_id, "date": 0}),
        };
        let id = query["id"].as_str().expect("set above").to_string();
        self.callback_queries
            .insert(id, CallbackQuery { pushed: Instant::now(), answered: false, expired: false });
    }

    fn register_member_change(&mut self, change: &mut Value) {
        let chat_id = self.register_chat(&change["chat"]);
        let status = change["new_chat_member"]["status"].as_str().unwrap_or("");
        let chat = self.chats.get_mut(&chat_id).expect("registered above");
        chat.blocked = matches!(status, "kicked" | "left");
    }
}

impl Chat {
    /// The draft a user sees (`FakeTelegram::draft_showing`).
    fn showing(&self) -> Option<&SentDraft> {
        let last = self.drafts.iter().rev().find(|d| !d.after_stop)?;
        let stopped = self.stop.is_some_and(|(id, keep)| id == last.draft_id && !keep);
        let shown = !self.draft_replaced && !stopped && last.at.elapsed() < DRAFT_LIFETIME;
        shown.then_some(last)
    }

    fn new(object: Value) -> Chat {
        Chat {
            object,
            started: true,
            next_message_id: 1,
            blocked: false,
            migrated_to: None,
            messages: BTreeMap::new(),
            drafts: Vec::new(),
            draft_replaced: false,
            stop: None,
        }
    }
}

fn set_markup(message: &mut Map<String, Value>, markup: Option<Value>) {
    match markup {
        Some(markup) => message.insert("reply_markup".into(), markup),
        None => message.remove("reply_markup"),
    };
}

/// A quote is a part of the replied-to message, as Telegram's apps only let a user select
/// one: checked against its text or caption, and its `position` (UTF-16) set. The quote of
/// an `external_reply` (another chat's message, which the fake does not hold) is taken as is.
fn check_quote(message: &mut Value) {
    let quote = message["quote"]["text"].as_str().expect("a quote has text");
    assert!(!quote.trim().is_empty(), "Telegram sends no empty quote");
    let replied = &message["reply_to_message"];
    // A rich message's text is what its blocks show (a quote selects from that).
    let blocks = replied["rich_message"]["blocks"].as_array();
    let rich = blocks.map(|b| b.iter().map(tg_rich::block_text).collect::<Vec<_>>().join("\n"));
    let Some(whole) = replied["text"].as_str().or(replied["caption"].as_str()).or(rich.as_deref())
    else {
        assert!(
            message.get("external_reply").is_some(),
            "a quote of a message without text: {message}"
        );
        return;
    };
    let at = whole
        .find(quote)
        .unwrap_or_else(|| panic!("the quote {quote:?} is not a part of {whole:?}"));
    let position = whole[..at].encode_utf16().count();
    message["quote"]["position"] = json!(position);
}

/// A message as it appears in `reply_to_message`: without its own reply.
fn reply_object(message: &Value) -> Value {
    let mut message = message.clone();
    if let Some(fields) = message.as_object_mut() {
        fields.remove("reply_to_message");
    }
    message
}

fn sent_message(chat_id: i64, message_id: i64, stored: &Stored) -> SentMessage {
    let message = &stored.message;
    let html = stored.parse_mode.as_deref().is_some_and(|m| m.eq_ignore_ascii_case("html"));
    let kind = match (&stored.rich_text, &stored.photo) {
        (Some(_), _) => Kind::Rich,
        (None, Some(_)) => Kind::Photo,
        (None, None) if html => Kind::Html,
        (None, None) => Kind::Plain,
    };
    SentMessage {
        chat_id,
        message_id,
        kind,
        text: stored
            .rich_text
            .as_deref()
            .unwrap_or_else(|| {
                message["text"].as_str().or(message["caption"].as_str()).unwrap_or_default()
            })
            .to_string(),
        html: stored.html.clone(),
        parse_mode: stored.parse_mode.clone(),
        entities: message["entities"].as_array().cloned().unwrap_or_default(),
        reply_to: stored.reply_to,
        markup: message.get("reply_markup").cloned(),
        edits: stored.edits,
        deleted: stored.deleted,
        photo: stored.photo.clone(),
        blocks: message["rich_message"]["blocks"].as_array().cloned().unwrap_or_default(),
    }
}

fn get_me(guest_mode: bool) -> Value {
    json!({
        "id": BOT_ID,
        "is_bot": true,
        "first_name": BOT_FIRST_NAME,
        "username": BOT_USERNAME,
        "can_join_groups": true,
        "can_read_all_group_messages": false,
        "supports_inline_queries": false,
        "supports_guest_queries": guest_mode,
        "can_connect_to_business": false,
        "has_main_web_app": false,
        "has_topics_enabled": false,
        "allows_users_to_create_topics": false,
        "can_manage_bots": false,
    })
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs() as i64
}

/// splitmix64: a tiny deterministic generator for reproducible random faults (also used by
/// the GigaChat fake and the soak test, so that one seed drives a whole run).
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n), for n > 0 (the modulo bias is negligible for small n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

// --- update builders ---
//
// Each returns an Update without update_id; `push` assigns the ids (message ids are 0 until
// then). Shapes follow shared/reference/telegram-fixtures/.

/// The bot as a User, as in messages it sent.
pub fn bot_user() -> Value {
    json!({"id": BOT_ID, "is_bot": true, "first_name": BOT_FIRST_NAME, "username": BOT_USERNAME})
}

/// A user: the fixtures' Ivan and Anna by their ids, anyone else made up.
pub fn user(id: i64) -> Value {
    match id {
        IVAN => json!({
            "id": IVAN, "is_bot": false, "first_name": "Иван", "last_name": "Петров",
            "username": "ivan_petrov", "language_code": "ru",
        }),
        ANNA => json!({
            "id": ANNA, "is_bot": false, "first_name": "Anna", "username": "anna_k",
            "language_code": "en", "is_premium": true,
        }),
        BOT_ID => bot_user(),
        _ => {
            json!({"id": id, "is_bot": false, "first_name": format!("User {id}"), "language_code": "ru"})
        }
    }
}

/// A Chat: positive ids are private chats with that user; -100… ids supergroups (the fixtures'
/// group and channel by their ids); other negative ids basic groups.
pub fn chat(id: i64) -> Value {
    match id {
        GROUP => json!({"id": GROUP, "title": "Test Group", "type": "supergroup"}),
        CHANNEL => json!({
            "id": CHANNEL, "title": "News Channel", "username": "news_channel_example", "type": "channel",
        }),
        _ if id > 0 => {
            let user = user(id);
            let mut chat = json!({"id": id, "type": "private"});
            for field in ["first_name", "last_name", "username"] {
                if let Some(value) = user.get(field) {
                    chat[field] = value.clone();
                }
            }
            chat
        }
        _ if id <= -1_000_000_000_000 => {
            json!({"id": id, "title": format!("Group {id}"), "type": "supergroup"})
        }
        _ => json!({"id": id, "title": format!("Group {id}"), "type": "group"}),
    }
}

/// A guest message (Bot API 10.0), as a Message, not an Update: `text` from `from_id` in
/// `chat` (a Chat object, e.g. `chat(GROUP)`: any private chat, group or supergroup where
/// the bot is not a member), with a fresh `guest_query_id` and the entities Telegram detects
/// (the `mention` of @SomeBot that summoned the bot). Add a `reply_to_message` if the test
/// wants one, then give it to `FakeTelegram::push_guest_with`, which assigns the message_id.
pub fn guest_message(chat: Value, from_id: i64, text: &str) -> Value {
    let mut message = json!({
        "message_id": 0,
        "from": user(from_id),
        "chat": chat,
        "date": unix_now(),
        "text": text,
        "guest_query_id": fresh_guest_query_id(),
    });
    let entities = detect_entities(text);
    if !entities.is_empty() {
        message["entities"] = Value::Array(entities);
    }
    message
}

/// A guest_query_id no other guest message of this process has: a long decimal, as the ids
/// of inline and callback queries are (the format of guest ones is UNCONFIRMED).
fn fresh_guest_query_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    (4_810_276_453_942_312_085u64 + n * 7919).to_string()
}

/// The start of a message from `user_id` in `chat_id`.
fn message_base(chat_id: i64, user_id: i64) -> Value {
    json!({"message_id": 0, "from": user(user_id), "chat": chat(chat_id), "date": unix_now()})
}

/// A text message, with `bot_command` and `mention` entities where Telegram would put them.
pub fn text_message(chat_id: i64, user_id: i64, text: &str) -> Value {
    let mut message = message_base(chat_id, user_id);
    message["text"] = json!(text);
    let entities = detect_entities(text);
    if !entities.is_empty() {
        message["entities"] = Value::Array(entities);
    }
    json!({"message": message})
}

/// A text message in a private chat (chat id = user id).
pub fn private_text(user_id: i64, text: &str) -> Value {
    text_message(user_id, user_id, text)
}

/// A text message in a group or supergroup.
pub fn group_text(chat_id: i64, user_id: i64, text: &str) -> Value {
    text_message(chat_id, user_id, text)
}

/// A reply to one of the bot's messages; `push` fills in the replied-to message.
pub fn reply_to(chat_id: i64, user_id: i64, message_id: i64, text: &str) -> Value {
    let mut update = text_message(chat_id, user_id, text);
    update["message"]["reply_to_message"] = json!({"message_id": message_id});
    update
}

/// A reply to message `message_id` that quotes `quote`, a part of it (`push` checks that
/// and sets the quote's position).
pub fn reply_quoting(
    chat_id: i64,
    user_id: i64,
    message_id: i64,
    quote: &str,
    text: &str,
) -> Value {
    let mut update = reply_to(chat_id, user_id, message_id, text);
    update["message"]["quote"] = json!({"text": quote, "position": 0, "is_manual": true});
    update
}

/// A reply to post `message_id` of channel `from_chat`: `external_reply` instead of
/// `reply_to_message`, and it holds no text, so a quoted part (`quote`) is all the bot gets
/// of that post.
pub fn external_reply(
    chat_id: i64,
    user_id: i64,
    from_chat: i64,
    message_id: i64,
    quote: Option<&str>,
    text: &str,
) -> Value {
    let mut update = text_message(chat_id, user_id, text);
    let origin = chat(from_chat);
    assert_eq!(origin["type"], "channel", "a post of a channel");
    update["message"]["external_reply"] = json!({
        "origin": {"type": "channel", "chat": origin, "message_id": message_id, "date": unix_now()},
        "chat": origin,
        "message_id": message_id,
    });
    if let Some(quote) = quote {
        update["message"]["quote"] = json!({"text": quote, "position": 0, "is_manual": true});
    }
    update
}

/// A press on an inline button of a bot message; `push` assigns the query id and fills in
/// the message as it is now.
pub fn callback_query(chat_id: i64, user_id: i64, message_id: i64, data: &str) -> Value {
    json!({"callback_query": {
        "id": "",
        "from": user(user_id),
        "message": {"message_id": message_id, "chat": chat(chat_id)},
        "chat_instance": "-6912402370493813027",
        "data": data,
    }})
}

pub fn sticker(chat_id: i64, user_id: i64) -> Value {
    let mut message = message_base(chat_id, user_id);
    message["sticker"] = json!({
        "width": 512, "height": 512, "emoji": "😂", "set_name": "HotCherry",
        "is_animated": true, "is_video": false, "type": "regular",
        "thumbnail": {
            "file_id": "AAMCAgADGQEAAi1kZnE3cmVzZWFyY2hfdGh1bWJfZmlsZV9pZAAC2wADVp29CqLkVb8N5mMeAQAHbQADNQQ",
            "file_unique_id": "AQAD2wADVp29CnI", "file_size": 5416, "width": 128, "height": 128,
        },
        "file_id": "CAACAgIAAxkBAAItZGZxN3Jlc2VhcmNoX3N0aWNrZXJfZmlsZV9pZAAC2wADVp29CqLkVb8N5mMeNQQ",
        "file_unique_id": "AgAD2wADVp29Cg", "file_size": 25024,
    });
    json!({"message": message})
}

/// A photo (four sizes, largest last) with an optional caption.
pub fn photo(chat_id: i64, user_id: i64, caption: Option<&str>) -> Value {
    let mut message = message_base(chat_id, user_id);
    let sizes: Vec<Value> = [(90, 68, 1322, 'x'), (320, 240, 17880, 'm'), (800, 600, 76211, 'y'), (1280, 960, 138559, 'z')]
        .iter()
        .map(|&(width, height, size, tag)| {
            json!({
                "file_id": format!("AgACAgIAAxkBAAItZWZxN3Jlc2VhcmNoX3Bob3RvX2lkAAJ7xzEbZ2ZxYwABBwADAgAD{tag}QADNQQ"),
                "file_unique_id": format!("AQADe8cxG2dmcW{tag}"),
                "file_size": size, "width": width, "height": height,
            })
        })
        .collect();
    message["photo"] = Value::Array(sizes);
    if let Some(caption) = caption {
        message["caption"] = json!(caption);
        let entities = detect_entities(caption);
        if !entities.is_empty() {
            message["caption_entities"] = Value::Array(entities);
        }
    }
    json!({"message": message})
}

/// A photo in the given sizes (width, height, file_size), smallest first as Telegram sends
/// them; each size gets its own file_id, derived from `tag`.
pub fn photo_sized(
    chat_id: i64,
    user_id: i64,
    tag: &str,
    sizes: &[(u64, u64, u64)],
    caption: Option<&str>,
) -> Value {
    let mut update = photo(chat_id, user_id, caption);
    let sizes: Vec<Value> = sizes
        .iter()
        .enumerate()
        .map(|(i, &(width, height, size))| {
            let file_id = format!("AgACAgIAAxkBAAIt{tag}{i}x{width}QADNQQ");
            json!({
                "file_id": file_id, "file_unique_id": unique_id(&file_id),
                "file_size": size, "width": width, "height": height,
            })
        })
        .collect();
    update["message"]["photo"] = Value::Array(sizes);
    update
}

/// A document with this name, MIME type (None: the app sent none) and size, and a caption.
pub fn document_file(
    chat_id: i64,
    user_id: i64,
    file_name: &str,
    mime_type: Option<&str>,
    file_size: u64,
    caption: Option<&str>,
) -> Value {
    let mut message = message_base(chat_id, user_id);
    let file_id = format!("BQACAgIAAxkBAAIt{}x{file_size}NQQ", file_name.len());
    let file_id: String = file_id.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let file_id =
        format!("{file_id}{}", file_name.bytes().map(|b| format!("{b:02x}")).collect::<String>());
    message["document"] = json!({
        "file_name": file_name,
        "file_id": file_id,
        "file_unique_id": unique_id(&file_id),
        "file_size": file_size,
    });
    if let Some(mime) = mime_type {
        message["document"]["mime_type"] = json!(mime);
    }
    if let Some(caption) = caption {
        message["caption"] = json!(caption);
        let entities = detect_entities(caption);
        if !entities.is_empty() {
            message["caption_entities"] = Value::Array(entities);
        }
    }
    json!({"message": message})
}

/// A file_unique_id made from a file_id (short, as Telegram's are).
fn unique_id(file_id: &str) -> String {
    let sum = file_id.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    format!("AgAD{sum:x}")
}

pub fn voice(chat_id: i64, user_id: i64) -> Value {
    let mut message = message_base(chat_id, user_id);
    message["voice"] = json!({
        "duration": 4, "mime_type": "audio/ogg",
        "file_id": "AwACAgIAAxkBAAItZmZxN3Jlc2VhcmNoX3ZvaWNlX2lkAALQVAACZ2ZxY0yJ4Y0N5mMeNQQ",
        "file_unique_id": "AgAD0FQAAmdmcWM", "file_size": 15032,
    });
    json!({"message": message})
}

/// A voice note of `duration` seconds and `file_size` bytes; its file_id is derived from
/// `tag`, so that a test can register its bytes with `add_file` first.
pub fn voice_of(chat_id: i64, user_id: i64, tag: &str, duration: u64, file_size: u64) -> Value {
    let mut message = message_base(chat_id, user_id);
    let file_id = voice_file_id(tag);
    message["voice"] = json!({
        "duration": duration, "mime_type": "audio/ogg",
        "file_id": file_id, "file_unique_id": unique_id(&file_id), "file_size": file_size,
    });
    json!({"message": message})
}

/// The file_id of `voice_of(…, tag, …)`.
pub fn voice_file_id(tag: &str) -> String {
    format!("AwACAgIAAxkBAAIt{tag}ZmZxN3Jlc2VhcmNoX3ZvaWNlNQQ")
}

pub fn document(chat_id: i64, user_id: i64, file_name: &str) -> Value {
    let mut message = message_base(chat_id, user_id);
    message["document"] = json!({
        "file_name": file_name, "mime_type": "application/pdf",
        "file_id": "BQACAgIAAxkBAAItaGZxN3Jlc2VhcmNoX2RvY3VtZW50X2lkAAJxVQACZ2ZxY0yJ4Y0N5mMeNQQ",
        "file_unique_id": "AgADcVUAAmdmcWM", "file_size": 48213,
    });
    json!({"message": message})
}

/// The user edited an earlier message (by its id); `push` keeps the original date.
pub fn edited_text(chat_id: i64, user_id: i64, message_id: i64, text: &str) -> Value {
    let mut update = text_message(chat_id, user_id, text);
    let mut message = update["message"].take();
    message["message_id"] = json!(message_id);
    message["edit_date"] = json!(unix_now());
    json!({"edited_message": message})
}

/// A post in a channel: no `from`, `sender_chat` = the channel.
pub fn channel_post(chat_id: i64, text: &str) -> Value {
    let channel = chat(chat_id);
    json!({"channel_post": {
        "message_id": 0, "sender_chat": channel, "chat": channel, "date": unix_now(), "text": text,
    }})
}

/// The bot's membership changed, e.g. "member" → "kicked" when a user blocks it. `push` marks
/// the chat blocked for "kicked" and "left", unblocked otherwise.
pub fn my_chat_member(chat_id: i64, user_id: i64, old_status: &str, new_status: &str) -> Value {
    let member = |status: &str| {
        let mut member = json!({"user": bot_user(), "status": status});
        if status == "kicked" {
            member["until_date"] = json!(0);
        }
        member
    };
    json!({"my_chat_member": {
        "chat": chat(chat_id),
        "from": user(user_id),
        "date": unix_now(),
        "old_chat_member": member(old_status),
        "new_chat_member": member(new_status),
    }})
}

/// The user blocked the bot in their private chat.
pub fn blocked_by(user_id: i64) -> Value {
    my_chat_member(user_id, user_id, "member", "kicked")
}

/// The service message of a basic group that became a supergroup; `push` makes later sends
/// to the old id fail with `migrate_to_chat_id`.
pub fn migrated_to_supergroup(old_chat_id: i64, new_chat_id: i64, user_id: i64) -> Value {
    let mut message = message_base(old_chat_id, user_id);
    message["migrate_to_chat_id"] = json!(new_chat_id);
    json!({"message": message})
}

/// `bot_command` and `mention` entities as Telegram detects them, with UTF-16 offsets.
pub fn detect_entities(text: &str) -> Vec<Value> {
    let chars: Vec<char> = text.chars().collect();
    let mut utf16_at = Vec::with_capacity(chars.len() + 1);
    let mut offset = 0;
    for c in &chars {
        utf16_at.push(offset);
        offset += c.len_utf16();
    }
    utf16_at.push(offset);
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let run = |from: usize| (from..chars.len()).take_while(|&i| name(chars[i])).count();
    let mut entities = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let before = if i == 0 { None } else { Some(chars[i - 1]) };
        let found = match chars[i] {
            '/' if before.is_none_or(|c| !word(c) && !"/<>".contains(c)) => {
                let mut end = i + 1 + run(i + 1);
                let command_len = end - i - 1;
                if chars.get(end) == Some(&'@') && (3..=32).contains(&run(end + 1)) {
                    end += 1 + run(end + 1);
                }
                let after_ok = chars.get(end).is_none_or(|&c| !word(c) && !"/<>".contains(c));
                ((1..=64).contains(&command_len) && after_ok).then_some(("bot_command", end))
            }
            '@' if before.is_none_or(|c| !word(c)) => {
                let end = i + 1 + run(i + 1);
                let after_ok = chars.get(end).is_none_or(|&c| !word(c));
                ((2..=32).contains(&(end - i - 1)) && after_ok).then_some(("mention", end))
            }
            _ => None,
        };
        match found {
            Some((kind, end)) => {
                let (start, stop) = (utf16_at[i], utf16_at[end]);
                entities.push(json!({"offset": start, "length": stop - start, "type": kind}));
                i = end;
            }
            None => i += 1,
        }
    }
    entities
}
