//! What comes in from Telegram: updates, and the messages, users, files and button presses
//! in them — the Bot API types, named as the Bot API docs name them, apart from the client
//! (`telegram.rs`) so that decisions read them without importing a client. Only the fields
//! the bot uses; unknown fields and update kinds are ignored, as every Bot API version adds
//! some. Entity offsets are in UTF-16 units, as Telegram counts them.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

/// getFile refuses files over this (the cloud Bot API's `MAX_DOWNLOAD_FILE_SIZE`, 20 MiB).
pub const MAX_DOWNLOAD_BYTES: u64 = 20 << 20;

#[derive(Debug, Deserialize, Clone)]
pub struct User {
    pub id: i64,
    #[serde(default)]
    pub first_name: String,
    pub username: Option<String>,
    /// getMe: the owner enabled guest mode in @BotFather.
    #[serde(default)]
    pub supports_guest_queries: bool,
}

#[derive(Debug, Deserialize, Clone)]
pub struct Chat {
    pub id: i64,
    /// "private", "group", "supergroup" or "channel".
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Groups and channels have a title, and public ones a @username.
    pub title: Option<String>,
    pub username: Option<String>,
}

#[derive(Debug, Deserialize, Clone)]
pub struct MessageEntity {
    #[serde(rename = "type")]
    pub kind: String,
    /// In UTF-16 code units, as everywhere in the Bot API.
    pub offset: usize,
    pub length: usize,
    pub user: Option<User>,
}

#[derive(Debug, Deserialize)]
pub struct TextQuote {
    pub text: String,
}

#[derive(Debug, Deserialize)]
pub struct Message {
    pub message_id: i64,
    pub from: Option<User>,
    /// Set when the message is sent on behalf of a chat: a channel, or a group's anonymous
    /// admin. `from` is then a placeholder account shared by all such messages.
    pub sender_chat: Option<Chat>,
    pub chat: Chat,
    #[serde(default)]
    pub date: i64,
    pub text: Option<String>,
    #[serde(default)]
    pub entities: Vec<MessageEntity>,
    pub caption: Option<String>,
    /// A rich message's blocks (Bot API 10.1): the bot's own answers, as a reply quotes them.
    pub rich_message: Option<RichMessage>,
    /// Set on a guest message: the query its one answer goes to (`answerGuestQuery`).
    pub guest_query_id: Option<String>,
    /// Mentions and the like in the caption (a photo's "@bot, что это?").
    #[serde(default)]
    pub caption_entities: Vec<MessageEntity>,
    pub reply_to_message: Option<Box<Message>>,
    /// The part of the replied-to message the user quoted (of an `external_reply` too).
    pub quote: Option<TextQuote>,
    pub migrate_to_chat_id: Option<i64>,
    // Content a text bot cannot read; each gets a polite "text only" reply. Public, so
    // that a branch can tell one from another (a voice note, say).
    pub sticker: Option<IgnoredAny>,
    /// A voice note: recognized through SaluteSpeech when it is configured.
    pub voice: Option<Voice>,
    /// A photo in several sizes, and a file: the bot reads both (through GigaChat).
    pub photo: Option<Vec<PhotoSize>>,
    pub document: Option<Document>,
    audio: Option<IgnoredAny>,
    video: Option<IgnoredAny>,
    video_note: Option<IgnoredAny>,
    animation: Option<IgnoredAny>,
    location: Option<IgnoredAny>,
    contact: Option<IgnoredAny>,
    poll: Option<IgnoredAny>,
    dice: Option<IgnoredAny>,
}

/// Bot API `RichMessage`: its blocks are read for their words only.
#[derive(Debug, Deserialize)]
pub struct RichMessage {
    blocks: Vec<Value>,
}

impl RichMessage {
    /// The words its blocks show, a line per block: every string of a `text` or `expression`
    /// (formulas as LaTeX), table cells apart by " | ".
    pub fn words(&self) -> String {
        let mut out = String::new();
        for block in &self.blocks {
            words(block, &mut out);
            out.push('\n');
        }
        out.trim().to_string()
    }
}

fn words(value: &Value, out: &mut String) {
    match value {
        Value::String(text) => out.push_str(text),
        Value::Array(parts) => parts.iter().for_each(|part| words(part, out)),
        Value::Object(fields) => {
            ["text", "expression"]
                .iter()
                .filter_map(|k| fields.get(*k))
                .for_each(|t| words(t, out));
            for block in
                ["blocks", "items"].iter().filter_map(|k| fields.get(*k)?.as_array()).flatten()
            {
                words(block, out);
                out.push('\n');
            }
            for row in fields.get("cells").and_then(Value::as_array).into_iter().flatten() {
                for (i, cell) in row.as_array().into_iter().flatten().enumerate() {
                    out.push_str(if i > 0 { " | " } else { "" });
                    words(cell, out);
                }
                out.push('\n');
            }
        }
        _ => {}
    }
}

impl Message {
    /// Who wrote the message, as access, limits and usage count them: the user, or for a
    /// message sent on behalf of a chat that chat (its id, its title), never the shared
    /// placeholder account in `from` (a channel's @Channel_Bot, @GroupAnonymousBot).
    pub fn sender(&self) -> Option<User> {
        match &self.sender_chat {
            Some(chat) => Some(User {
                id: chat.id,
                first_name: chat.title.clone().unwrap_or_default(),
                username: chat.username.clone(),
                supports_guest_queries: false,
            }),
            None => self.from.clone(),
        }
    }

    /// True for a sticker, photo, voice… — content a user sent that the bot cannot read.
    /// Service messages (members joining, pins) are not content and give false.
    pub fn has_non_text_content(&self) -> bool {
        let unread = [&self.sticker, &self.audio, &self.video, &self.video_note, &self.animation];
        let more = [&self.location, &self.contact, &self.poll, &self.dice];
        let unread = unread.iter().chain(&more).any(|field| field.is_some());
        self.photo.is_some() || self.document.is_some() || self.voice.is_some() || unread
    }
}

/// One size of a photo: `Message.photo` lists several.
#[derive(Debug, Deserialize, Clone)]
pub struct PhotoSize {
    pub file_id: String,
    #[serde(default)]
    pub width: u64,
    #[serde(default)]
    pub height: u64,
    pub file_size: Option<u64>,
}

/// A file sent as a file; its name and type as the sender's app gave them.
#[derive(Debug, Deserialize, Clone)]
pub struct Document {
    pub file_id: String,
    pub file_name: Option<String>,
    pub mime_type: Option<String>,
    pub file_size: Option<u64>,
}

/// A voice note (OGG/Opus); `duration` in seconds, as the sender's app gave it.
#[derive(Debug, Deserialize, Clone)]
pub struct Voice {
    pub file_id: String,
    #[serde(default)]
    pub duration: u64,
    pub file_size: Option<u64>,
}

/// A file ready to download (getFile); `file_path` is missing for files over 20 MB.
#[derive(Debug, Deserialize)]
pub struct File {
    pub file_size: Option<u64>,
    pub file_path: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    pub id: String,
    pub from: User,
    /// The message with the button; for old messages Telegram sends a stub with `date: 0`.
    pub message: Option<Message>,
    pub data: Option<String>,
}

/// One incoming update. Kinds we do not handle parse to all-`None` and are skipped.
#[derive(Debug, Deserialize, Default)]
pub struct Update {
    pub update_id: i64,
    pub message: Option<Message>,
    pub edited_message: Option<IgnoredAny>,
    pub callback_query: Option<CallbackQuery>,
    /// `@bot вопрос` in a chat the bot is not a member of (guest mode, Bot API 10.0).
    pub guest_message: Option<Message>,
}

/// Bot API `MessageGenerationStopped` (10.3): the Stop button of a draft was pressed. The
/// loop skips these updates; only a streaming answer looks for them (`Telegram::peek_stops`).
#[derive(Debug, Deserialize, Clone)]
pub struct GenerationStopped {
    pub chat: Chat,
    pub draft_id: i64,
}

impl Update {
    /// The chat and message an answer would go to, if any (for an apology after a bug).
    pub fn origin(&self) -> Option<(i64, Option<i64>)> {
        if let Some(message) = &self.message {
            return Some((message.chat.id, Some(message.message_id)));
        }
        let query = self.callback_query.as_ref()?;
        Some((query.message.as_ref().map_or(query.from.id, |m| m.chat.id), None))
    }
}

/// The part of `text` an entity covers (offsets in UTF-16 units); None if it does not fit.
pub fn entity_text<'a>(text: &'a str, entity: &MessageEntity) -> Option<&'a str> {
    let (start, end) = entity_bytes(text, entity)?;
    text.get(start..end)
}

/// An entity's byte range in `text`; None if it does not fit (or its numbers overflow).
pub fn entity_bytes(text: &str, entity: &MessageEntity) -> Option<(usize, usize)> {
    let end = entity.offset.checked_add(entity.length)?;
    utf16_range_to_bytes(text, entity.offset, end)
}

/// A UTF-16 range as byte offsets of `text`; None off character boundaries or past the end.
pub fn utf16_range_to_bytes(text: &str, from: usize, to: usize) -> Option<(usize, usize)> {
    let mut units = 0;
    let mut start = None;
    for (byte, ch) in text.char_indices() {
        if units == from {
            start = Some(byte);
        }
        if units == to {
            return Some((start?, byte));
        }
        units += ch.len_utf16();
    }
    if units == to {
        return Some((start.or((units == from).then_some(text.len()))?, text.len()));
    }
    None
}
