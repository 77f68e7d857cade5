//! The saved chat state: each chat's style and memory, and the last handled update id.
//!
//! The file is replaced atomically: the new state goes to a temporary file in the same
//! folder, is flushed to disk, and is renamed over the old one. A crash or `kill -9` at any
//! moment leaves either the old or the new state, never a broken file. A file that cannot
//! be read is never overwritten: the owner decides what to do with it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// Everything that survives a restart.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct State {
    /// The last update handled (answered or given up on for good); the next poll starts after it.
    pub last_update_id: i64,
    /// Per chat, by chat id.
    pub chats: BTreeMap<i64, ChatState>,
    /// Access given (`/allow`) and taken (`/deny`) by admins' commands and buttons.
    pub granted: BTreeSet<i64>,
    pub denied: BTreeSet<i64>,
    /// Users the admins were already told about, so they are told once.
    pub announced: BTreeSet<i64>,
    /// Per user, by user id: usage for limits and /stats.
    pub users: BTreeMap<i64, UserStats>,
    pub counters: Counters,
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
            Ok(bytes) => match serde_json::from_slice::<State>(&bytes) {
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
            let file = File::create(&tmp)?;
            let mut writer = BufWriter::new(file);
            serde_json::to_writer(&mut writer, &self.state)?;
            writer.write_all(b"\n")?;
            let file = writer.into_inner().map_err(|err| err.into_error())?;
            file.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            // The rename itself is durable only once the folder is flushed.
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().with_context(|| format!("cannot write the state file {}", self.path.display()))
    }

    /// The chat's state, created on first use.
    pub fn chat(&mut self, chat_id: i64) -> &mut ChatState {
        self.state.chats.entry(chat_id).or_default()
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
        for chat in self.state.chats.values_mut() {
            if chat.last_active < cutoff
                && (!chat.history.is_empty() || chat.last_question.is_some())
            {
                chat.history.clear();
                chat.last_question = None;
                forgotten += 1;
            }
        }
        // A chat with nothing left to remember needs no entry.
        self.state.chats.retain(|_, chat| {
            chat.style.is_some() || !chat.history.is_empty() || chat.last_question.is_some()
        });
        forgotten
    }
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

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gigabot-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn sample() -> State {
        let mut state = State {
            last_update_id: 873000105,
            ..State::default()
        };
        state.chats.insert(
            -1001234567890,
            ChatState {
                style: Some("fairy".into()),
                history: vec![Turn {
                    role: "user".into(),
                    content: "Привет 🤔".into(),
                }],
                last_question: Some("Привет 🤔".into()),
                last_active: 1_781_000_000,
            },
        );
        state
    }

    #[test]
    fn saves_and_loads_the_same_state() {
        let dir = temp_dir("roundtrip");
        let path = dir.join("state.json");
        let mut store = Store::open(&path, false).unwrap();
        assert_eq!(store.state, State::default());
        store.state = sample();
        store.save().unwrap();
        assert!(!tmp_name(&path).exists());
        let again = Store::open(&path, false).unwrap();
        assert_eq!(again.state, sample());
    }

    #[test]
    fn a_truncated_file_is_refused_and_left_untouched() {
        let dir = temp_dir("truncated");
        let path = dir.join("state.json");
        let mut store = Store::open(&path, false).unwrap();
        store.state = sample();
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
    }

    #[test]
    fn reset_moves_the_broken_file_aside() {
        let dir = temp_dir("reset");
        let path = dir.join("state.json");
        fs::write(&path, b"{\"chats\": {").unwrap();
        let store = Store::open(&path, true).unwrap();
        assert_eq!(store.state, State::default());
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
        let mut store = Store {
            path: PathBuf::new(),
            state: sample(),
        };
        let chat_id = -1001234567890;
        let now = 1_781_000_000 + 31 * 86_400;
        assert_eq!(store.forget_silent(now, 30), 1);
        let chat = &store.state.chats[&chat_id];
        assert!(chat.history.is_empty());
        assert_eq!(chat.style.as_deref(), Some("fairy"));
    }
}
