//! What happened with one update: what its handler returns, and the log line made of it.

use std::fmt;

/// What kind of update it was.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub enum Kind {
    Text,
    TooLong,
    Command,
    Callback,
    NonText,
    /// A photo or a document, asked about through GigaChat.
    File,
    /// A voice note, recognized through SaluteSpeech.
    Voice,
    Refused,
    Limited,
    #[default]
    Ignored,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Text => "text",
            Kind::TooLong => "too-long",
            Kind::Command => "command",
            Kind::Callback => "callback",
            Kind::NonText => "non-text",
            Kind::File => "file",
            Kind::Voice => "voice",
            Kind::Refused => "refused",
            Kind::Limited => "limited",
            Kind::Ignored => "ignored",
        })
    }
}

/// What a GigaChat call cost: how long it took, and its tokens: in all, of the prompt, of the
/// answer, and of the prompt those GigaChat had cached (not billed).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Asked {
    pub ms: u128,
    pub tokens: u64,
    pub prompt: u64,
    pub completion: u64,
    pub cached: u64,
}

/// How the update ended.
#[derive(Debug, Default, Clone, PartialEq)]
pub enum Outcome {
    /// Nothing happened (yet).
    #[default]
    Nothing,
    /// Nothing to do, and why.
    Ignored(&'static str),
    /// The group became a supergroup with this id.
    Moved(i64),
    /// One of our own texts was sent.
    Replied,
    /// GigaChat answered, at this cost, and nothing was sent (what a failed send had before it).
    Asked(Asked),
    /// GigaChat's answer was sent in this many messages.
    Answered(usize, Asked),
    /// A notice was not sent: the chat's notice budget is spent.
    NoticeSuppressed,
    /// A notice met Telegram's flood control and was dropped, not waited for.
    NoticeDropped(String),
    /// GigaChat failed this way (the user was told).
    GigaChatFailed(String, Asked),
    /// GigaChat's storage refused the user's file this way (the user was told).
    UploadFailed(String),
    /// The user's file could not be fetched from Telegram (the user was told).
    FileFailed(String),
    /// SaluteSpeech did not recognize the voice note, and why (the user was told).
    RecognitionFailed(String),
    /// GigaChat refused the topic (finish_reason "blacklist").
    Blacklisted(Asked),
    /// GigaChat answered nothing a user could see.
    EmptyAnswer(String, Asked),
    /// An admin's report went to the admin's private chat.
    AnsweredPrivately,
    /// A style button set the chat's style.
    StyleSet(String),
    /// A button that means nothing any more.
    StaleButton,
    /// A button from someone who may not talk to the bot.
    ButtonRefused,
    /// An admin allowed (true) or denied a user by button.
    AdminDecided(i64, bool),
    /// Telegram refused to take what was to be sent; what had happened before, and why.
    NotSent(Box<Outcome>, String),
    /// The state could not be read for this update: nothing was done, and it comes again.
    StateUnreadable,
}

impl Outcome {
    /// What the GigaChat call of the update cost, if there was one.
    fn asked(&self) -> Option<Asked> {
        match self {
            Outcome::Asked(asked)
            | Outcome::Answered(_, asked)
            | Outcome::GigaChatFailed(_, asked)
            | Outcome::Blacklisted(asked)
            | Outcome::EmptyAnswer(_, asked) => Some(*asked),
            Outcome::NotSent(before, _) => before.asked(),
            _ => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Nothing | Outcome::Asked(_) => f.write_str("nothing"),
            Outcome::Ignored(why) => f.write_str(why),
            Outcome::Moved(id) => write!(f, "group moved to {id}"),
            Outcome::Replied => f.write_str("replied"),
            Outcome::Answered(n, _) => write!(f, "answered in {n} message(s)"),
            Outcome::NoticeSuppressed => {
                f.write_str("notice suppressed: the user's notice budget is spent")
            }
            Outcome::NoticeDropped(err) => write!(f, "notice dropped: {err}"),
            Outcome::GigaChatFailed(kind, _) => write!(f, "gigachat error: {kind}"),
            Outcome::UploadFailed(kind) => write!(f, "gigachat error: upload {kind}"),
            Outcome::FileFailed(why) => write!(f, "file not fetched: {why}"),
            Outcome::RecognitionFailed(why) => write!(f, "voice not recognized: {why}"),
            Outcome::Blacklisted(_) => f.write_str("refused by gigachat (blacklist)"),
            Outcome::EmptyAnswer(request, _) => write!(f, "empty answer (request {request})"),
            Outcome::AnsweredPrivately => f.write_str("answered the admin privately"),
            Outcome::StyleSet(id) => write!(f, "style set to {id}"),
            Outcome::StaleButton => f.write_str("stale button"),
            Outcome::ButtonRefused => f.write_str("button from a user without access"),
            Outcome::AdminDecided(id, true) => write!(f, "admin allow {id}"),
            Outcome::AdminDecided(id, false) => write!(f, "admin deny {id}"),
            Outcome::NotSent(before, err) => match **before {
                Outcome::Nothing | Outcome::Asked(_) => write!(f, "not sent: {err}"),
                _ => write!(f, "{before}; not sent: {err}"),
            },
            Outcome::StateUnreadable => f.write_str("not handled: the state could not be read"),
        }
    }
}

/// One update's log line: who, what kind, in which style, and how it ended.
#[derive(Debug, Default)]
pub struct Report {
    pub chat_id: i64,
    pub user_id: i64,
    pub kind: Kind,
    pub style: String,
    pub outcome: Outcome,
    /// The message text, only with `log.messages = true`.
    pub text: Option<String>,
}

impl Report {
    /// The log line of update `update_id`.
    pub fn line(&self, update_id: i64) -> String {
        let asked = self.outcome.asked();
        let latency = asked.map_or("-".to_string(), |a| a.ms.to_string());
        let a = asked.unwrap_or_default();
        let tokens = format!(
            "{} prompt={} completion={} cached={}",
            a.tokens, a.prompt, a.completion, a.cached
        );
        let text = self.text.as_ref().map_or(String::new(), |t| format!(" text={t:?}"));
        let (chat, user, kind, style) = (self.chat_id, self.user_id, self.kind, &self.style);
        let outcome = self.outcome.to_string();
        format!(
            "update={update_id} chat={chat} user={user} kind={kind} style={style} gigachat_ms={latency} tokens={tokens} outcome={outcome:?}{text}"
        )
    }
}
