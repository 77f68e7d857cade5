//! The saved chat state: each chat's style and memory, and the last handled update id.
//!
//! The file is replaced atomically: the new state goes to a temporary file in the same
//! folder, is flushed to disk, and is renamed over the old one. A crash or `kill -9` at any
//! moment leaves either the old or the new state, never a broken file. A file that cannot
//! be read is never overwritten: the owner decides what to do with it.
//!
//! Chats and users are kept in memory as their JSON text, exactly as in the file: a chat is
//! read out ([`Store::chat`]), changed, and put back ([`Store::put_chat`]). That keeps memory
//! near the size of the file, and a save after one message writes the other chats' text
//! as it is instead of serializing them all again.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Everything that survives a restart.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// The last update handled (answered or given up on for good); the next poll starts after it.
    pub last_update_id: i64,
    /// Per chat, by chat id: a [`ChatState`] as JSON.
    chats: BTreeMap<i64, Box<RawValue>>,
    /// Access given (`/allow`) and taken (`/deny`) by admins' commands and buttons.
    pub granted: BTreeSet<i64>,
    pub denied: BTreeSet<i64>,
    /// Users the admins were already told about, so they are told once.
    pub announced: BTreeSet<i64>,
    /// Per user, by user id: a [`UserStats`] as JSON.
    users: BTreeMap<i64, Box<RawValue>>,
    pub counters: Counters,
    /// The rest of an answer of several messages whose sending a stop or a crash cut
    /// short: sent before anything else at the next start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsent: Option<Unsent>,
}

/// Messages of an answer still to send, as HTML chunks ready for `sendMessage`. The update
/// the answer was for counts as handled (`last_update_id`) from the first message on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Unsent {
    pub chat_id: i64,
    pub chunks: Vec<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
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
}

/// Bot-wide counters for /stats.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Counters {
    pub answers: u64,
    pub tokens: u64,
    /// Failures by kind ("gigachat 429", "telegram 403", …).
    pub failures: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ChatState {
    /// The chat's style id; None means `bot.default_style`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub style: Option<String>,
    /// The remembered conversation, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Turn>,
    /// The last question asked, for /retry (also when memory is off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_question: Option<String>,
    /// Unix seconds of the last message, to forget silent chats.
    pub last_active: u64,
}

/// One remembered message: role "user" or "assistant".
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Turn {
    pub role: String,
    pub content: String,
}

/// The state and its file.
pub struct Store {
    path: PathBuf,
    pub state: State,
}

impl Store {
    /// Loads the state file; a missing file is a fresh start. A broken file stops the bot
    /// with a message naming it, unless `reset_broken` moves it aside first.
    pub fn open(path: &Path, reset_broken: bool) -> Result<Store> {
        let state = match fs::read(path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(err) => bail!(
                "cannot read the state file {}: {err}: fix its permissions or set bot.state_file",
                path.display()
            ),
            Ok(bytes) => match parse(&bytes) {
                Ok(state) => state,
                Err(err) if reset_broken => {
                    let aside = broken_name(path);
                    fs::rename(path, &aside).with_context(|| {
                        format!("cannot move the broken state file {} aside", path.display())
                    })?;
                    log::warn!(
                        "the state file {} was broken ({err}); moved it to {} and started fresh",
                        path.display(),
                        aside.display()
                    );
                    State::default()
                }
                Err(err) => bail!(
                    "the state file {} is broken ({err}); it was left untouched. Restore it from a backup, or start with --reset-state to move it aside and begin with empty memory",
                    path.display()
                ),
            },
        };
        Ok(Store {
            path: path.to_path_buf(),
            state,
        })
    }

    /// Writes the state: temporary file, flush to disk, rename over the old one.
    pub fn save(&self) -> Result<()> {
        let tmp = tmp_name(&self.path);
        let write = || -> std::io::Result<()> {
            let mut out = BufWriter::with_capacity(64 * 1024, File::create(&tmp)?);
            serde_json::to_writer(&mut out, &self.state)?;
            out.write_all(b"\n")?;
            let file = out.into_inner().map_err(|err| err.into_error())?;
            // The data is on disk before the rename makes it the state. (The folder is not
            // flushed: after a power cut the rename may be lost, which leaves the old state,
            // still whole.)
            file.sync_data()?;
            fs::rename(&tmp, &self.path)
        };
        write().with_context(|| format!("cannot write the state file {}", self.path.display()))
    }

    /// A copy of the chat's state (empty for a new chat); change it, then [`Store::put_chat`].
    pub fn chat(&self, chat_id: i64) -> ChatState {
        read(self.state.chats.get(&chat_id).map(|json| &**json))
    }

    /// Stores the chat's changed state (saved with the next [`Store::save`]).
    pub fn put_chat(&mut self, chat_id: i64, chat: &ChatState) {
        self.state.chats.insert(chat_id, write(chat));
    }

    /// A copy of the user's usage; change it, then [`Store::put_user`].
    pub fn user(&self, user_id: i64) -> UserStats {
        read(self.state.users.get(&user_id).map(|json| &**json))
    }

    /// Stores the user's changed usage (saved with the next [`Store::save`]).
    pub fn put_user(&mut self, user_id: i64, user: &UserStats) {
        self.state.users.insert(user_id, write(user));
    }

    /// Every user's usage, for /stats.
    pub fn users(&self) -> impl Iterator<Item = (i64, UserStats)> + '_ {
        self.state
            .users
            .iter()
            .map(|(id, json)| (*id, read(Some(json))))
    }

    /// How many chats have a style or memory, for /stats.
    pub fn chat_count(&self) -> usize {
        self.state.chats.len()
    }

    /// How many users have asked something, for /stats.
    pub fn user_count(&self) -> usize {
        self.state.users.len()
    }

    /// A group became a supergroup: its style and memory move to the new id.
    pub fn move_chat(&mut self, from: i64, to: i64) {
        if let Some(chat) = self.state.chats.remove(&from) {
            self.state.chats.insert(to, chat);
        }
    }

    /// Drops the memory of chats silent for `days` (their style stays), so the file does
    /// not grow without bound. Returns how many chats were forgotten.
    pub fn forget_silent(&mut self, now: u64, days: u64) -> usize {
        if days == 0 {
            return 0;
        }
        let cutoff = now.saturating_sub(days * 86_400);
        let mut forgotten = 0;
        let ids: Vec<i64> = self.state.chats.keys().copied().collect();
        for id in ids {
            let mut chat = self.chat(id);
            if chat.last_active >= cutoff {
                continue;
            }
            if chat.style.is_none() {
                // Nothing left to keep: the chat needs no entry.
                self.state.chats.remove(&id);
            } else if !chat.history.is_empty() || chat.last_question.is_some() {
                chat.history.clear();
                chat.last_question = None;
                self.put_chat(id, &chat);
            } else {
                continue;
            }
            forgotten += 1;
        }
        forgotten
    }
}

/// Parses the file, and checks that every chat and user in it reads as one.
fn parse(bytes: &[u8]) -> serde_json::Result<State> {
    let state: State = serde_json::from_slice(bytes)?;
    for json in state.chats.values() {
        serde_json::from_str::<ChatState>(json.get())?;
    }
    for json in state.users.values() {
        serde_json::from_str::<UserStats>(json.get())?;
    }
    Ok(state)
}

fn read<T: DeserializeOwned + Default>(json: Option<&RawValue>) -> T {
    // Every entry was checked at load or written by `write`.
    json.and_then(|json| serde_json::from_str(json.get()).ok())
        .unwrap_or_default()
}

fn write<T: Serialize>(value: &T) -> Box<RawValue> {
    let text = serde_json::to_string(value).expect("state values always serialize");
    RawValue::from_string(text).expect("serde_json writes valid JSON")
}

fn tmp_name(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

fn broken_name(path: &Path) -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".broken-{stamp}"));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUP: i64 = -1001234567890;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gigabot-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn group_chat() -> ChatState {
        ChatState {
            style: Some("fairy".into()),
            history: vec![Turn {
                role: "user".into(),
                content: "Привет 🤔 \"кавычки\"".into(),
            }],
            last_question: Some("Привет 🤔".into()),
            last_active: 1_781_000_000,
        }
    }

    /// A store in a fresh folder with one group chat and one user.
    fn sample(name: &str) -> (PathBuf, Store) {
        let path = temp_dir(name).join("state.json");
        let mut store = Store::open(&path, false).unwrap();
        store.state.last_update_id = 873000105;
        store.state.granted.insert(42);
        store.put_chat(GROUP, &group_chat());
        let user = UserStats {
            name: "Иван (@ivan)".into(),
            requests: 3,
            ..UserStats::default()
        };
        store.put_user(7, &user);
        store
            .state
            .counters
            .failures
            .insert("gigachat 429".into(), 2);
        (path, store)
    }

    #[test]
    fn saves_and_loads_the_same_state() {
        let (path, mut store) = sample("roundtrip");
        store.save().unwrap();
        assert!(!tmp_name(&path).exists());
        let again = Store::open(&path, false).unwrap();
        assert_eq!(again.chat(GROUP), group_chat());
        assert_eq!(again.user(7).requests, 3);
        assert_eq!(again.state.last_update_id, 873000105);
        assert_eq!(again.state.counters, store.state.counters);
        assert_eq!(
            again.chat(5),
            ChatState::default(),
            "a new chat starts empty"
        );
        let mut chat = again.chat(GROUP);
        chat.history.clear();
        store.put_chat(GROUP, &chat);
        store.save().unwrap();
        assert!(
            Store::open(&path, false)
                .unwrap()
                .chat(GROUP)
                .history
                .is_empty()
        );
        // The file is plain JSON with the chats inside.
        let text = fs::read_to_string(&path).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["chats"][GROUP.to_string()]["style"], "fairy");
    }

    #[test]
    fn a_truncated_file_is_refused_and_left_untouched() {
        let (path, store) = sample("truncated");
        store.save().unwrap();
        let full = fs::read(&path).unwrap();
        for cut in [1, full.len() / 3, full.len() / 2, full.len() - 3] {
            fs::write(&path, &full[..cut]).unwrap();
            let err = Store::open(&path, false)
                .err()
                .expect("a truncated file must be refused");
            let text = format!("{err:#}");
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(text.contains("--reset-state"), "{text}");
            assert_eq!(
                fs::read(&path).unwrap(),
                &full[..cut],
                "the file was changed"
            );
        }
        // Valid JSON whose chat is not a chat is refused too.
        fs::write(&path, r#"{"chats": {"1": {"history": 5}}}"#).unwrap();
        assert!(Store::open(&path, false).is_err());
    }

    #[test]
    fn reset_moves_the_broken_file_aside() {
        let dir = temp_dir("reset");
        let path = dir.join("state.json");
        fs::write(&path, b"{\"chats\": {").unwrap();
        let store = Store::open(&path, true).unwrap();
        assert_eq!(store.state.last_update_id, 0);
        assert_eq!(store.chat_count(), 0);
        let aside: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("state.json.broken-"))
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
        assert_eq!(fs::read(dir.join(&aside[0])).unwrap(), b"{\"chats\": {");
    }

    #[test]
    fn silent_chats_lose_memory_but_keep_style() {
        let (path, mut store) = sample("silent");
        let forgettable = ChatState {
            last_question: Some("забытый".into()),
            last_active: 1_781_000_000,
            ..ChatState::default()
        };
        store.put_chat(99, &forgettable);
        let recent = ChatState {
            last_question: Some("свежий".into()),
            last_active: 1_781_000_000 + 30 * 86_400,
            ..ChatState::default()
        };
        store.put_chat(100, &recent);
        let now = 1_781_000_000 + 31 * 86_400;
        assert_eq!(store.forget_silent(now, 30), 2);
        let chat = store.chat(GROUP);
        assert!(chat.history.is_empty());
        assert_eq!(chat.style.as_deref(), Some("fairy"));
        assert_eq!(store.chat_count(), 2, "chat 99 had nothing left to keep");
        assert_eq!(store.chat(100), recent);
        store.save().unwrap();
        assert_eq!(Store::open(&path, false).unwrap().chat(GROUP), chat);
    }
}
