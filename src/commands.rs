//! What to do with a message or a button press: who it is for, whether its sender may talk
//! to the bot, which command it is, what to answer. Plain functions of the config, the bot
//! itself and the [`Facts`] read for the update that return a [`Decision`]; bot.rs does
//! what it says. No store, no client: the tests are tables of messages and facts.
//!
//! In a group the bot speaks only when spoken to: a mention, a reply to it, or a command for
//! it. A question that replies to a message, or quotes part of one, is asked with that text
//! (its [`reply_context`]) before it, once: memory keeps the question as typed. A photo or a
//! document is asked about with its caption, or a default question (`formats` decides which
//! file goes to GigaChat, or why none can); a voice note (with a SaluteSpeech key, up to a
//! minute) is recognized and asked like a typed question.

use serde_json::{Value, json};

use crate::config::{Config, Style};
use crate::facts::Facts;
use crate::incoming::{self, CallbackQuery, Message, User};
use crate::owner;
use crate::render;
use crate::report::Kind;
use crate::texts;

mod formats;
pub use formats::FileRef;

/// What a decision looks at: the config, the bot itself (from getMe: mentions of it and
/// replies to it address it), and the facts read for the update.
pub struct Seen<'a> {
    pub config: &'a Config,
    pub me: &'a User,
    pub facts: &'a Facts,
}

/// What to do with a message.
#[derive(Debug)]
pub enum Action {
    /// Nothing to send; the reason goes to the log.
    Ignore(&'static str),
    /// The group became a supergroup with this id: its state moves there.
    MoveChat(i64),
    /// Reply with this text, and these buttons if any.
    Reply(String, Option<Value>),
    /// A courtesy (text only, too long, over the limit): within the notice budget, not waited for.
    Notice(String),
    /// The sender may not talk to the bot: a refusal notice, and the admins asked once.
    Refuse(User),
    /// Ask GigaChat in the chat's style (the lesson's `handle_message`).
    Ask(Ask),
    /// `/mode <id>`: the chat's style changes, and the user is told.
    SetStyle { id: String, reply: String },
    /// `/reset`: the chat's memory goes.
    Reset,
    /// An admin's `/allow <id>` or `/deny <id>`.
    Grant { user_id: i64, allow: bool },
    /// An admin's report (/users, /stats): in the admin's private chat, even when asked in
    /// a group, where everyone would see names and ids.
    Report(Report),
}

/// An admin's report, made by bot.rs from what it reads for it.
#[derive(Debug, PartialEq)]
pub enum Report {
    /// This text (the usage of /allow and /deny).
    Text(String),
    /// /users: the access mode and who is allowed or denied.
    Users,
    /// /stats.
    Stats,
}

/// A question for GigaChat.
#[derive(Debug, Default, Clone)]
pub struct Ask {
    /// As typed (without a mention of the bot): what memory keeps and /retry asks again.
    /// For a voice note, what SaluteSpeech hears (bot.rs fills it in).
    pub question: String,
    /// Re-asks the last question (/retry): its old exchange leaves memory.
    pub again: bool,
    /// What the question replies to or quotes, sent with it this once.
    pub context: Option<String>,
    /// The photo or document the question is about, uploaded to GigaChat for this answer.
    pub file: Option<FileRef>,
    /// A voice note whose words are the question.
    pub voice: Option<incoming::Voice>,
}

impl Ask {
    /// The question as GigaChat gets it: after its context, if any, in the same user message
    /// (so the roles still alternate and the context stays next to what it explains).
    pub fn prompt(&self) -> String {
        match &self.context {
            Some(context) => format!("{}\n«{context}»\n\n{}", texts::REPLY_CONTEXT, self.question),
            None => self.question.clone(),
        }
    }

    /// What memory keeps: a note of the file, if any ("[фото]"), then the question.
    pub fn remembered(&self) -> String {
        match &self.file {
            Some(file) => format!("{} {}", file.note(), self.question),
            None => self.question.clone(),
        }
    }
}

/// A decision: the kind of message, for the log, and what to do.
#[derive(Debug)]
pub struct Decision {
    pub kind: Kind,
    pub action: Action,
}

fn decision(kind: Kind, action: Action) -> Decision {
    Decision { kind, action }
}

/// What to do with a message.
pub fn decide_message(cx: &Seen, message: &Message) -> Decision {
    if let Some(new_id) = message.migrate_to_chat_id {
        return decision(Kind::Ignored, Action::MoveChat(new_id));
    }
    let in_group = matches!(message.chat.kind.as_str(), "group" | "supergroup");
    let Some(sender) = message.sender().filter(|_| in_group || message.chat.kind == "private")
    else {
        let why = "not from a user in a private chat or group";
        return decision(Kind::Ignored, Action::Ignore(why));
    };
    let command = message.text.as_deref().and_then(parse_command);
    // Is this message for us at all? Only then do access rules apply.
    let for_me = match (&command, message.text.as_deref()) {
        (Some(command), _) => match command.bot {
            Some(name) => is_my_name(cx.me, name),
            // In a group a bare unknown command may be meant for another bot.
            None => !in_group || KNOWN_COMMANDS.contains(&command.name.as_str()),
        },
        (None, Some(_)) => !in_group || is_addressed(cx.me, message),
        (None, None) => {
            message.has_non_text_content() && (!in_group || is_addressed(cx.me, message))
        }
    };
    if !for_me {
        return decision(Kind::Ignored, Action::Ignore("not for this bot"));
    }
    if !owner::is_allowed(cx.config, sender.id, cx.facts.access) {
        return decision(Kind::Refused, Action::Refuse(sender));
    }
    if let Some(command) = command {
        return decide_command(cx, message, &command, &sender);
    }
    let voice = || decide_voice(cx, message, sender.id);
    if let Some(decision) = formats::decide_file(cx, message, sender.id, in_group).or_else(voice) {
        return decision;
    }
    let Some(text) = message.text.as_deref() else {
        return decision(Kind::NonText, Action::Notice(texts::NOT_TEXT.into()));
    };
    let question = match in_group {
        true => strip_mentions(cx.me, message, false),
        false => text.trim().to_string(),
    };
    if question.is_empty() {
        return decision(Kind::Text, Action::Notice(texts::EMPTY_QUESTION.into()));
    }
    if let Some(text) = too_long(cx.config, &question) {
        return decision(Kind::TooLong, Action::Notice(text));
    }
    let question = Ask { question, context: reply_context(cx, message), ..Ask::default() };
    ask(cx, sender.id, Kind::Text, question)
}

/// The notice for a question longer than `bot.max_input_chars`, if it is.
fn too_long(config: &Config, question: &str) -> Option<String> {
    let (len, max) = (question.chars().count(), config.bot.max_input_chars);
    (len > max).then(|| {
        texts::TOO_LONG.replace("{len}", &len.to_string()).replace("{max}", &max.to_string())
    })
}

/// Asks GigaChat, unless the sender is over a limit.
fn ask(cx: &Seen, sender: i64, kind: Kind, question: Ask) -> Decision {
    let facts = cx.facts;
    let today = (facts.today.as_str(), facts.to_midnight);
    match owner::over_limit(cx.config, sender, &facts.usage, facts.now, today) {
        Some(text) => decision(Kind::Limited, Action::Notice(text)),
        None => decision(kind, Action::Ask(question)),
    }
}

/// A command meant for this bot, from a sender who may talk to it.
fn decide_command(cx: &Seen, message: &Message, command: &BotCommand, sender: &User) -> Decision {
    if command.name == "retry"
        && let Some(question) = cx.facts.last_question.clone()
    {
        // Only the question is saved: what it replied to is not asked again.
        let again = Ask { question, again: true, ..Ask::default() };
        return ask(cx, sender.id, Kind::Command, again);
    }
    decision(Kind::Command, command_action(cx, message, command, sender))
}

fn command_action(cx: &Seen, message: &Message, command: &BotCommand, sender: &User) -> Action {
    if owner::is_admin(cx.config, sender.id) {
        match command.name.as_str() {
            "allow" | "deny" => {
                let allow = command.name == "allow";
                return match command.args.trim().parse::<i64>() {
                    Ok(user_id) => Action::Grant { user_id, allow },
                    Err(_) => {
                        let usage = texts::ADMIN_USAGE.replace("{cmd}", &command.name);
                        Action::Report(Report::Text(usage))
                    }
                };
            }
            "users" => return Action::Report(Report::Users),
            "stats" => return Action::Report(Report::Stats),
            _ => {}
        }
    }
    match command.name.as_str() {
        "start" | "help" => {
            let start = texts::START.replace("{name}", &sender.first_name).replace(", !", "!");
            let current = texts::CURRENT_STYLE.replace("{title}", &style_of(cx).title);
            let id = texts::YOUR_ID.replace("{id}", &sender.id.to_string());
            let mut text = format!("{start}\n{current}\n\n{}\n\n{id}", texts::COMMANDS);
            if message.chat.kind != "private" {
                text = format!("{text}\n\n{}", texts::GROUP_HINT);
            }
            Action::Reply(text, None)
        }
        "mode" => decide_mode(cx, command.args.trim()),
        "reset" | "new" => Action::Reset,
        "retry" => Action::Reply(texts::NOTHING_TO_RETRY.into(), None),
        _ => Action::Reply(format!("{}\n\n{}", texts::UNKNOWN_COMMAND, texts::COMMANDS), None),
    }
}

/// `/mode <id>` switches; `/mode` alone or an unknown id shows the buttons.
fn decide_mode(cx: &Seen, arg: &str) -> Action {
    let wanted = arg.to_lowercase();
    if let Some(style) = cx.config.styles.iter().find(|s| s.id == wanted) {
        let reply = texts::STYLE_SET.replace("{title}", &style.title);
        return Action::SetStyle { id: style.id.clone(), reply };
    }
    let current = style_of(cx);
    let text = match wanted.is_empty() {
        true => texts::CHOOSE_STYLE.replace("{title}", &current.title),
        // The user's text is not repeated: in a group it would be the bot's words.
        false => texts::NO_SUCH_STYLE.to_string(),
    };
    Action::Reply(text, Some(style_keyboard(cx.config, &current.id)))
}

/// What to do with a pressed button.
#[derive(Debug)]
pub enum Press {
    /// A button of an old message, or one that no longer means anything.
    Stale,
    /// A style button from someone who may not talk to the bot.
    Refused,
    /// A style chosen in the message `message_id` of `chat_id`; `editable` is false for
    /// old messages, which Telegram sends as stubs with date 0.
    Style { chat_id: i64, message_id: i64, editable: bool, style: Style },
    /// An admin's "Разрешить" / "Отклонить" on an access request.
    Access { user_id: i64, allow: bool },
}

/// What to do with a pressed button.
pub fn decide_press(cx: &Seen, query: &CallbackQuery) -> Press {
    let data = query.data.as_deref().unwrap_or("");
    if let Some((action, id)) = data.split_once(':')
        && matches!(action, "allow" | "deny")
    {
        return match (id.parse::<i64>(), owner::is_admin(cx.config, query.from.id)) {
            (Ok(user_id), true) => Press::Access { user_id, allow: action == "allow" },
            _ => Press::Stale,
        };
    }
    if !owner::is_allowed(cx.config, query.from.id, cx.facts.access) {
        return Press::Refused;
    }
    let style =
        data.strip_prefix("style:").and_then(|id| cx.config.styles.iter().find(|s| s.id == id));
    match (style, query.message.as_ref()) {
        (Some(style), Some(message)) => Press::Style {
            chat_id: message.chat.id,
            message_id: message.message_id,
            editable: message.date != 0,
            style: style.clone(),
        },
        _ => Press::Stale,
    }
}

/// One button per style, the current one marked; `style:<id>` is ≤ 38 bytes (ids are ≤ 32).
pub fn style_keyboard(config: &Config, current: &str) -> Value {
    let row = |style: &Style| {
        let mark = if style.id == current { "✓ " } else { "" };
        json!([{"text": format!("{mark}{}", style.title), "callback_data": format!("style:{}", style.id)}])
    };
    json!({ "inline_keyboard": config.styles.iter().map(row).collect::<Vec<_>>() })
}

/// The chat's style, or the default if the chat has none or its style left the config.
pub fn style_of<'a>(cx: &Seen<'a>) -> &'a Style {
    let styles = &cx.config.styles;
    (cx.facts.style.as_ref())
        .and_then(|id| styles.iter().find(|s| &s.id == id))
        .or_else(|| styles.iter().find(|s| s.id == cx.config.bot.default_style))
        .unwrap_or(&styles[0])
}

/// SaluteSpeech's limits for synchronous recognition: a voice note of up to a minute, and 2 MB.
pub const MAX_VOICE_SECS: u64 = 60;
pub const MAX_VOICE_BYTES: u64 = 2_000_000;

/// What to do with a voice note (None for other messages, and without a SaluteSpeech
/// key): recognize it and ask, within the sender's limits, or say why not.
fn decide_voice(cx: &Seen, message: &Message, sender: i64) -> Option<Decision> {
    let voice = message.voice.as_ref()?;
    cx.config.salutespeech.credentials.as_ref()?;
    let too_big = voice.file_size.is_some_and(|size| size > MAX_VOICE_BYTES);
    if voice.duration > MAX_VOICE_SECS || too_big {
        let text = texts::VOICE_TOO_LONG
            .replace("{secs}", &voice.duration.to_string())
            .replace("{max}", &MAX_VOICE_SECS.to_string());
        return Some(decision(Kind::Voice, Action::Notice(text)));
    }
    // The question is what SaluteSpeech hears; bot.rs fills it in (see `heard`).
    let question =
        Ask { context: reply_context(cx, message), voice: Some(voice.clone()), ..Ask::default() };
    Some(ask(cx, sender, Kind::Voice, question))
}

/// The recognized text as the question, or why not: nothing recognized, or too long.
pub fn heard(config: &Config, text: &str) -> Result<String, String> {
    let text = text.trim();
    match too_long(config, text) {
        _ if text.is_empty() => Err(texts::VOICE_EMPTY.into()),
        Some(notice) => Err(notice),
        None => Ok(text.to_string()),
    }
}

/// Is `name` this bot's @username (Telegram compares them without case)?
fn is_my_name(me: &User, name: &str) -> bool {
    me.username.as_deref().is_some_and(|mine| mine.eq_ignore_ascii_case(name))
}

/// Does the message reply to one of this bot's messages?
fn is_reply_to_me(me: &User, message: &Message) -> bool {
    let from = message.reply_to_message.as_ref().and_then(|m| m.from.as_ref());
    from.is_some_and(|from| from.id == me.id)
}

/// What a message replies to, as its question's context: the quoted part if any (also of
/// another chat's message), else the replied-to text or caption; its first `bot.history_chars`
/// characters, like memory (a user who means a later part can quote it). None for no reply,
/// blanks, no text (a sticker, a photo without caption, a service message), and for the
/// chat's last answer, which memory puts before the question anyway (an older one counts).
fn reply_context(cx: &Seen, message: &Message) -> Option<String> {
    let text = match (&message.quote, message.reply_to_message.as_deref()) {
        (Some(quote), _) => quote.text.clone(),
        (None, Some(replied)) => {
            let text = replied.text.as_ref().or(replied.caption.as_ref()).cloned();
            let text = text.or_else(|| replied.rich_message.as_ref().map(|r| r.words()))?;
            if is_reply_to_me(cx.me, message) && is_last_answer(cx, &text) {
                return None;
            }
            text
        }
        (None, None) => return None,
    };
    let text = text.trim();
    let max = cx.config.bot.history_chars;
    if text.chars().count() <= max {
        return (!text.is_empty()).then(|| text.to_string());
    }
    // Cut on a character, the "…" within the bound.
    let kept: String = text.chars().take(max.saturating_sub(1)).collect();
    let kept = kept.trim_end();
    (!kept.is_empty()).then(|| format!("{kept}…"))
}

/// Is `text`, a message of the bot, its last answer in the chat's memory (or one message of
/// it)? Telegram shows the answer rendered (as HTML or a rich message), perhaps in parts,
/// perhaps with the cut-short note; memory holds GigaChat's Markdown. Only letters and
/// digits are compared: the two renderings differ in marks (`$`, bullets, " | ").
fn is_last_answer(cx: &Seen, text: &str) -> bool {
    let Some(answer) = cx.facts.history.last().filter(|t| t.role == "assistant") else {
        return false;
    };
    let squeeze = |s: &str| s.chars().filter(|c| c.is_alphanumeric()).collect::<String>();
    let shown = |markdown: &str| {
        let chunks = render::markdown_chunks(markdown);
        squeeze(&chunks.iter().map(|c| render::visible_text(c)).collect::<Vec<_>>().join(" "))
    };
    let text = squeeze(text);
    let cut = format!("{}\n\n{}", answer.content, texts::CUT_SHORT);
    shown(&answer.content).contains(&text) || shown(&cut).contains(&text)
}

/// In a group: a reply to the bot, or its @username or text mention (in the text or a caption).
fn is_addressed(me: &User, message: &Message) -> bool {
    is_reply_to_me(me, message)
        || !my_mentions(me, message, false).is_empty()
        || !my_mentions(me, message, true).is_empty()
}

/// The message text and its entities, or its caption and theirs.
fn text_of(message: &Message, caption: bool) -> (&str, &[incoming::MessageEntity]) {
    match caption {
        true => (message.caption.as_deref().unwrap_or(""), &message.caption_entities),
        false => (message.text.as_deref().unwrap_or(""), &message.entities),
    }
}

/// Byte ranges of the mentions of this bot in the message text (or caption).
fn my_mentions(me: &User, message: &Message, caption: bool) -> Vec<(usize, usize)> {
    let (text, entities) = text_of(message, caption);
    entities
        .iter()
        .filter(|e| match e.kind.as_str() {
            "mention" => incoming::entity_text(text, e)
                .and_then(|t| t.strip_prefix('@'))
                .is_some_and(|name| is_my_name(me, name)),
            "text_mention" => e.user.as_ref().is_some_and(|u| u.id == me.id),
            _ => false,
        })
        .filter_map(|e| incoming::entity_bytes(text, e))
        .collect()
}

/// The question (or caption) without "@botname" (and the comma or colon right after it).
fn strip_mentions(me: &User, message: &Message, caption: bool) -> String {
    let (text, _) = text_of(message, caption);
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for (start, end) in my_mentions(me, message, caption) {
        if start < pos {
            continue;
        }
        out.push_str(&text[pos..start]);
        pos = end;
        if let Some(rest) = text.get(pos..)
            && rest.starts_with([',', ':'])
        {
            pos += 1;
        }
    }
    out.push_str(&text[pos..]);
    out.split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ").trim().to_string()
}

/// Commands answered in groups even without "@botname".
const KNOWN_COMMANDS: [&str; 10] =
    ["start", "help", "mode", "reset", "new", "retry", "allow", "deny", "users", "stats"];

/// A bot command in a message: `/name@bot args` (not the command line's `cli::Command`).
#[derive(Debug, PartialEq)]
pub struct BotCommand<'a> {
    pub name: String,
    pub bot: Option<&'a str>,
    pub args: &'a str,
}

/// Parses `/name`, `/name@bot` and their arguments. Text like "/etc/hosts" is not a command.
pub fn parse_command(text: &str) -> Option<BotCommand<'_>> {
    let rest = text.strip_prefix('/')?;
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (head, args) = rest.split_at(end);
    let (name, bot) = head.split_once('@').map_or((head, None), |(name, bot)| (name, Some(bot)));
    let valid = !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    valid.then(|| BotCommand { name: name.to_ascii_lowercase(), bot, args })
}

#[cfg(test)]
mod tests;
