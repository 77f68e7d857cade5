//! What the bot knows, as plain values: what the store keeps of a chat and a user, read once
//! per update into [`Facts`] for the decisions (`commands.rs`, `owner.rs`), which so import
//! neither the store nor a client, and are tested with tables of values.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One remembered message: role "user" or "assistant".
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Turn {
    pub role: String,
    pub content: String,
}

/// A user's usage, for the limits and /stats.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct UserStats {
    /// First name and @username, for /stats and the admins' messages.
    pub name: String,
    /// The local day the `*_today` counters are for, as "YYYY-MM-DD".
    pub day: String,
    pub requests_today: u64,
    pub tokens_today: u64,
    pub requests: u64,
    pub tokens: u64,
    /// Unix seconds of the last request, to prune users silent for `forget_after_days`.
    pub last_active: u64,
    /// Unix seconds of the last requests, for `requests_per_minute`.
    pub recent: Vec<u64>,
}

/// Bot-wide counters for /stats.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Counters {
    pub answers: u64,
    pub tokens: u64,
    /// Of `tokens`, those GigaChat had cached (not billed).
    pub cached_tokens: u64,
    /// Tokens of the reference desk's embeddings, apart from the chat's.
    pub embedding_tokens: u64,
    /// Failures by kind ("gigachat 429", "telegram send", …).
    pub failures: BTreeMap<String, u64>,
}

/// What the admins decided about a user, and whether they were asked.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Access {
    /// Some(true): allowed by `/allow`; Some(false): refused by `/deny`.
    pub granted: Option<bool>,
    /// The admins were told about this user, so they are told once.
    pub announced: bool,
}

/// What the decisions about one update look at: the clock, the chat, its sender.
#[derive(Debug, Default, Clone)]
pub struct Facts {
    /// Unix seconds.
    pub now: u64,
    /// Today's local date ("2026-12-07"), and the seconds until the next local midnight.
    pub today: String,
    pub to_midnight: u64,
    pub uptime_secs: u64,
    /// The chat's style id, if it chose one (else `bot.default_style`).
    pub style: Option<String>,
    /// The chat's last question, for /retry.
    pub last_question: Option<String>,
    /// The chat's memory, oldest first.
    pub history: Vec<Turn>,
    /// What the admins decided about the sender, and the sender's usage.
    pub access: Access,
    pub usage: UserStats,
}

/// What /stats shows, read when an admin asks for it.
#[derive(Debug, Default)]
pub struct Stats {
    pub uptime_secs: u64,
    pub counters: Counters,
    pub tokens_today: u64,
    pub chats: usize,
    pub users: usize,
    /// The users who asked most today, most first.
    pub busiest: Vec<(i64, UserStats)>,
}
