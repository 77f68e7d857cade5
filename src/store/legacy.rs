//! The JSON state file of gigabot 0.1, imported once into a new database.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rusqlite::{Transaction, params};
use serde::Deserialize;

use super::file::{connect, with_suffix};
use crate::clock::unix_now;
use crate::facts::{Counters, Turn, UserStats};

/// A chat as the JSON state of gigabot 0.1 kept it.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub(super) struct ChatState {
    pub(super) style: Option<String>,
    pub(super) history: Vec<Turn>,
    pub(super) last_question: Option<String>,
    pub(super) last_active: u64,
}

/// The JSON state of the previous versions, imported once into the database.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Legacy {
    last_update_id: i64,
    chats: BTreeMap<i64, ChatState>,
    granted: Vec<i64>,
    denied: Vec<i64>,
    announced: Vec<i64>,
    users: BTreeMap<i64, UserStats>,
    counters: Counters,
    unsent: Option<LegacyUnsent>,
}

/// The HTML messages of an answer still to send, as the JSON state kept them.
#[derive(Deserialize)]
struct LegacyUnsent {
    chat_id: i64,
    chunks: Vec<String>,
}

/// The JSON state to import, if any: `path` itself holds JSON, or is not there yet and the old
/// default `gigabot-state.json` lies beside it. An unreadable one is the error, with its path.
pub(super) fn find(path: &Path) -> Result<Option<(PathBuf, Legacy)>, (PathBuf, anyhow::Error)> {
    let beside = path.with_file_name("gigabot-state.json");
    let (source, bytes) = match starts_with_a_brace(path) {
        Ok(true) => match fs::read(path) {
            Ok(bytes) => (path.to_path_buf(), bytes),
            Err(_) => return Ok(None),
        },
        Ok(false) => return Ok(None),
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Ok(None),
        Err(_) => match fs::read(&beside) {
            Ok(bytes) => (beside, bytes),
            Err(_) => return Ok(None),
        },
    };
    let err = match serde_json::from_slice(&bytes) {
        Ok(legacy) => return Ok(Some((source, legacy))),
        Err(err) => anyhow::anyhow!("is a JSON state of gigabot 0.1 that cannot be read ({err})"),
    };
    Err((source, err))
}

/// Whether the file's first non-blank byte is `{` (a JSON state): only its first kilobyte is
/// read, so a database of any size costs nothing to recognise.
fn starts_with_a_brace(path: &Path) -> std::io::Result<bool> {
    let mut head = Vec::with_capacity(1024);
    fs::File::open(path)?.take(1024).read_to_end(&mut head)?;
    Ok(head.trim_ascii_start().starts_with(b"{"))
}

/// Writes the JSON state into a new database at `path` in one transaction; the JSON file
/// stays as `<name>.imported`. A crash midway leaves the JSON where it was, to import again.
pub(super) fn import(path: &Path, (json_path, legacy): &(PathBuf, Legacy)) -> Result<()> {
    let building = with_suffix(path, ".importing");
    for stale in [".importing", ".importing-wal", ".importing-shm"] {
        let _ = fs::remove_file(with_suffix(path, stale));
    }
    let mut db = connect(&building)?;
    let tx = db.transaction()?;
    write_chats(&tx, legacy)?;
    write_users(&tx, legacy)?;
    tx.commit()?;
    db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    drop(db);
    let _ = fs::remove_file(with_suffix(&building, "-wal"));
    let _ = fs::remove_file(with_suffix(&building, "-shm"));
    // The JSON is kept aside first, then the database takes its place in one rename.
    let kept = with_suffix(json_path, ".imported");
    fs::copy(json_path, &kept)
        .with_context(|| format!("cannot keep the JSON state as {}", kept.display()))?;
    fs::set_permissions(&kept, fs::Permissions::from_mode(0o600))?;
    fs::rename(&building, path)
        .with_context(|| format!("cannot put the imported state at {}", path.display()))?;
    if json_path != path {
        let _ = fs::remove_file(json_path);
    }
    let (from, into, chats, kept) =
        (json_path.display(), path.display(), legacy.chats.len(), kept.display());
    log::info!(
        "imported the JSON state {from} into {into} ({chats} chats); the JSON file is kept as {kept}"
    );
    Ok(())
}

/// The bot-wide counters and offset, the chats with their memory, an unsent answer.
fn write_chats(tx: &Transaction, legacy: &Legacy) -> rusqlite::Result<()> {
    let counters = &legacy.counters;
    tx.execute(
        "UPDATE meta SET last_update_id = ?1, answers = ?2, tokens = ?3",
        params![legacy.last_update_id, counters.answers as i64, counters.tokens as i64],
    )?;
    for (id, chat) in &legacy.chats {
        tx.execute(
            "INSERT INTO chats (id, style, last_question, last_active) VALUES (?1, ?2, ?3, ?4)",
            params![id, chat.style, chat.last_question, chat.last_active as i64],
        )?;
        for (n, turn) in chat.history.iter().enumerate() {
            tx.execute(
                "INSERT INTO turns (chat_id, n, role, content) VALUES (?1, ?2, ?3, ?4)",
                params![id, n as i64, turn.role, turn.content],
            )?;
        }
    }
    for (kind, count) in &counters.failures {
        tx.execute("INSERT INTO failures VALUES (?1, ?2)", params![kind, *count as i64])?;
    }
    for (chat, chunk) in legacy.unsent.iter().flat_map(|u| u.chunks.iter().map(|c| (u.chat_id, c)))
    {
        tx.execute("INSERT INTO unsent (chat_id, chunk) VALUES (?1, ?2)", params![chat, chunk])?;
    }
    Ok(())
}

/// The users' usage and the admins' decisions.
fn write_users(tx: &Transaction, legacy: &Legacy) -> rusqlite::Result<()> {
    let now = unix_now() as i64;
    for (id, u) in &legacy.users {
        tx.execute(
            "INSERT INTO users VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, '')",
            params![
                id,
                u.name,
                u.day,
                u.requests_today as i64,
                u.tokens_today as i64,
                u.requests as i64,
                u.tokens as i64,
                now
            ],
        )?;
    }
    let decisions = legacy
        .granted
        .iter()
        .map(|id| (id, Some(true)))
        .chain(legacy.denied.iter().map(|id| (id, Some(false))))
        .chain(legacy.announced.iter().map(|id| (id, None)));
    for (id, granted) in decisions {
        tx.execute(
            "INSERT INTO access (user_id, granted, announced) VALUES (?1, ?2, 1)
             ON CONFLICT (user_id) DO UPDATE SET granted = COALESCE(?2, granted)",
            params![id, granted],
        )?;
    }
    Ok(())
}
