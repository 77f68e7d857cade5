//! The saved state, in SQLite: each chat's style and memory, users and their usage, the
//! admins' access decisions, counters, and the last handled update id.
//!
//! One transaction per update holds everything the update changed together with its id,
//! so a crash, a `kill -9` or a power cut leaves the state either before or after the
//! update, and a restart answers nothing twice. An update writes only the rows it changed,
//! so its cost does not grow with the number of chats, and nothing is loaded whole at start.
//!
//! WAL mode with `synchronous = FULL`: every commit is on the disk before the loop polls
//! past its update. (NORMAL would save one fsync per update, but a power cut could then
//! undo an update whose answer the user already has, and it would be answered again.)
//!
//! A statement that fails is logged where it fails and marks the transaction: its commit
//! then rolls everything back instead of saving half an update. A file that is not our
//! database is never written to: the owner decides what to do with it.

use std::cell::Cell;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::clock::unix_now;

/// The schema this binary writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;
/// "gigb" (`PRAGMA application_id`): tells our database from any other SQLite file.
const APPLICATION_ID: i64 = 0x6769_6762;

const SCHEMA: &str = "
CREATE TABLE meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_update_id INTEGER NOT NULL,
    answers INTEGER NOT NULL,
    tokens INTEGER NOT NULL
);
INSERT INTO meta VALUES (1, 0, 0, 0);
CREATE TABLE chats (
    id INTEGER PRIMARY KEY,
    style TEXT,
    last_question TEXT,
    last_active INTEGER NOT NULL
);
CREATE TABLE turns (
    chat_id INTEGER NOT NULL,
    n INTEGER NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content TEXT NOT NULL,
    PRIMARY KEY (chat_id, n)
) WITHOUT ROWID;
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    day TEXT NOT NULL,
    requests_today INTEGER NOT NULL,
    tokens_today INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    last_active INTEGER NOT NULL,
    recent TEXT NOT NULL DEFAULT ''
);
CREATE TABLE access (
    user_id INTEGER PRIMARY KEY,
    granted INTEGER CHECK (granted IN (0, 1)),
    announced INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE failures (kind TEXT PRIMARY KEY, count INTEGER NOT NULL);
CREATE TABLE unsent (n INTEGER PRIMARY KEY, chat_id INTEGER NOT NULL, chunk TEXT NOT NULL);
";

/// A chat as the JSON state of gigabot 0.1 kept it.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(default)]
struct ChatState {
    style: Option<String>,
    history: Vec<Turn>,
    last_question: Option<String>,
    last_active: u64,
}

/// One remembered message: role "user" or "assistant".
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Turn {
    pub role: String,
    pub content: String,
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
    /// Unix seconds of the last request, to prune users silent for `forget_after_days`.
    pub last_active: u64,
    /// Unix seconds of the last requests, for `requests_per_minute`.
    pub recent: Vec<u64>,
}

/// Bot-wide counters for /stats.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Counters {
    pub answers: u64,
    pub tokens: u64,
    /// Failures by kind ("gigachat 429", "telegram send", …).
    pub failures: std::collections::BTreeMap<String, u64>,
}

/// What the admins decided about a user, and whether they were asked.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Access {
    /// Some(true): allowed by `/allow`; Some(false): refused by `/deny`.
    pub granted: Option<bool>,
    /// The admins were told about this user, so they are told once.
    pub announced: bool,
}

/// Messages of an answer still to send, as HTML chunks ready for `sendMessage`. The update
/// the answer was for counts as handled from its first message on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Unsent {
    pub chat_id: i64,
    pub chunks: Vec<String>,
}

#[derive(Default)]
struct Meta {
    changed: bool,
    answers: u64,
    tokens: u64,
}

/// The database, and the lock that keeps a second bot off it.
pub struct Store {
    db: Connection,
    /// Cached: the loop asks for it around every update.
    last_update_id: i64,
    /// What the transaction adds to the meta row, written once at its commit: an update
    /// would otherwise rewrite that row three times.
    meta: Meta,
    /// A statement of the open transaction failed; its commit rolls back.
    failed: Cell<bool>,
    _lock: File,
}

impl Store {
    /// Opens the database at `path`, creating it on the first start (from a JSON state file
    /// of the previous versions if there is one). A file that is not our database, or a
    /// newer one, stops the bot with a message naming it, unless `reset_broken` moves it
    /// aside first. A second bot on the same file stops at once.
    pub fn open(path: &Path, reset_broken: bool) -> Result<Store> {
        let lock = lock(path)?;
        let (legacy, problem) = match legacy_json(path) {
            Ok(Some(legacy)) => (Some(legacy), None),
            Ok(None) => (
                None,
                check_file(path).err().map(|err| (path.to_path_buf(), err)),
            ),
            Err(broken) => (None, Some(broken)),
        };
        if let Some((file, err)) = problem {
            if !reset_broken {
                bail!(
                    "the state file {} {err:#}; it was left untouched. Restore it from a backup, or start with --reset-state to move it aside and begin with empty memory",
                    file.display()
                );
            }
            let aside = move_aside(&file)?;
            log::warn!(
                "the state file {} {err:#}; moved it to {} and started fresh",
                file.display(),
                aside.display()
            );
        }
        if let Some(json) = &legacy {
            import(path, json)?;
        }
        let db = connect(path)?;
        let last_update_id = db
            .query_row("SELECT last_update_id FROM meta", [], |row| row.get(0))
            .with_context(|| format!("cannot read the state file {}", path.display()))?;
        Ok(Store {
            db,
            last_update_id,
            meta: Meta::default(),
            failed: Cell::new(false),
            _lock: lock,
        })
    }

    /// Starts the transaction of one update (or of one step of the loop's own work).
    pub fn begin(&mut self) {
        self.failed.set(false);
        self.run("begin", "BEGIN IMMEDIATE", []);
    }

    /// Saves everything since [`Store::begin`] at once; after a failed statement, nothing.
    pub fn commit(&mut self) -> Result<()> {
        let meta = std::mem::take(&mut self.meta);
        if meta.changed {
            self.run(
                "meta",
                "UPDATE meta SET last_update_id = ?1, answers = answers + ?2, tokens = tokens + ?3",
                params![self.last_update_id, meta.answers as i64, meta.tokens as i64],
            );
        }
        if self.failed.replace(false) {
            let _ = self.db.execute_batch("ROLLBACK");
            bail!(
                "the state was not saved: a statement failed (logged above); the update's changes are lost"
            );
        }
        self.db
            .execute_batch("COMMIT")
            .context("cannot save the state (commit)")
    }

    /// Drops everything since [`Store::begin`] (after a bug, or when the bot must stop).
    pub fn rollback(&mut self) {
        self.failed.set(false);
        self.meta = Meta::default();
        if let Err(err) = self.db.execute_batch("ROLLBACK") {
            log::debug!("state rollback: {err}");
        }
        let saved = self
            .db
            .query_row("SELECT last_update_id FROM meta", [], |r| r.get(0));
        self.last_update_id = self.checked("last update", saved);
    }

    /// The last update handled (answered or given up on for good).
    pub fn last_update_id(&self) -> i64 {
        self.last_update_id
    }

    /// Notes the update as handled; saved with the transaction.
    pub fn set_last_update_id(&mut self, id: i64) {
        self.last_update_id = id;
        self.meta.changed = true;
    }

    /// The chat's style id; None means `bot.default_style`.
    pub fn style(&self, chat_id: i64) -> Option<String> {
        let read = self
            .db
            .prepare_cached("SELECT style FROM chats WHERE id = ?1")
            .and_then(|mut s| s.query_row([chat_id], |r| r.get(0)).optional())
            .map(Option::flatten);
        self.checked("style", read)
    }

    /// Sets the chat's style.
    pub fn set_style(&mut self, chat_id: i64, style: &str, now: u64) {
        self.run(
            "style",
            "INSERT INTO chats (id, style, last_active) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET style = ?2, last_active = ?3",
            params![chat_id, style, now as i64],
        );
    }

    /// The last question asked in the chat, for /retry (kept also when memory is off).
    pub fn last_question(&self, chat_id: i64) -> Option<String> {
        let read = self
            .db
            .prepare_cached("SELECT last_question FROM chats WHERE id = ?1")
            .and_then(|mut s| s.query_row([chat_id], |r| r.get(0)).optional())
            .map(Option::flatten);
        self.checked("last question", read)
    }

    /// Notes a question asked in the chat now (for /retry and to forget silent chats).
    pub fn note_question(&mut self, chat_id: i64, question: &str, now: u64) {
        self.run(
            "question",
            "INSERT INTO chats (id, last_question, last_active) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET last_question = ?2, last_active = ?3",
            params![chat_id, question, now as i64],
        );
    }

    /// The conversation the chat remembers, oldest first.
    pub fn history(&self, chat_id: i64) -> Vec<Turn> {
        let read = self
            .turns(chat_id)
            .map(|turns| turns.into_iter().map(|(_, t)| t).collect());
        self.checked("history", read)
    }

    /// Replaces what the chat remembers. Turns that stay are not rewritten: an answer adds
    /// two rows and drops the oldest, however much the chat remembers.
    pub fn put_history(&mut self, chat_id: i64, history: &[Turn]) {
        let write = || -> rusqlite::Result<()> {
            let old = self.turns(chat_id)?;
            let (start, kept) = longest_run(&old, history);
            for (n, _) in old[..start].iter().chain(&old[start + kept..]) {
                self.db
                    .prepare_cached("DELETE FROM turns WHERE chat_id = ?1 AND n = ?2")?
                    .execute([chat_id, *n])?;
            }
            let next = old.last().map_or(0, |(n, _)| n + 1);
            for (i, turn) in history[kept..].iter().enumerate() {
                self.db
                    .prepare_cached(
                        "INSERT INTO turns (chat_id, n, role, content) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![chat_id, next + i as i64, turn.role, turn.content])?;
            }
            Ok(())
        };
        let result = write();
        self.checked("history", result);
    }

    /// `/reset`: the chat forgets its conversation and last question (its style stays).
    pub fn forget_chat(&mut self, chat_id: i64) {
        self.run(
            "forget chat",
            "DELETE FROM turns WHERE chat_id = ?1",
            [chat_id],
        );
        self.run(
            "forget chat",
            "UPDATE chats SET last_question = NULL WHERE id = ?1",
            [chat_id],
        );
    }

    /// The chat's remembered turns with their numbers, oldest first.
    fn turns(&self, chat_id: i64) -> rusqlite::Result<Vec<(i64, Turn)>> {
        self.db
            .prepare_cached("SELECT n, role, content FROM turns WHERE chat_id = ?1 ORDER BY n")?
            .query_map([chat_id], |r| {
                Ok((
                    r.get(0)?,
                    Turn {
                        role: r.get(1)?,
                        content: r.get(2)?,
                    },
                ))
            })?
            .collect()
    }

    /// A group became a supergroup: its style and memory move to the new id (replacing
    /// whatever the new id had).
    pub fn move_chat(&mut self, from: i64, to: i64) {
        let moved = || -> rusqlite::Result<()> {
            let exists = self
                .db
                .query_row("SELECT 1 FROM chats WHERE id = ?1", [from], |_| Ok(()))
                .optional()?;
            if exists.is_none() {
                return Ok(());
            }
            self.db
                .execute("DELETE FROM turns WHERE chat_id = ?1", [to])?;
            self.db.execute("DELETE FROM chats WHERE id = ?1", [to])?;
            self.db
                .execute("UPDATE chats SET id = ?2 WHERE id = ?1", [from, to])?;
            self.db.execute(
                "UPDATE turns SET chat_id = ?2 WHERE chat_id = ?1",
                [from, to],
            )?;
            Ok(())
        };
        let result = moved();
        self.checked("move chat", result);
    }

    /// How many chats have a style or memory, for /stats.
    pub fn chat_count(&self) -> usize {
        self.count("SELECT COUNT(*) FROM chats")
    }

    /// The user's usage; change it, then [`Store::put_user`].
    pub fn user(&self, user_id: i64) -> UserStats {
        let read = self
            .db
            .prepare_cached(
                "SELECT name, day, requests_today, tokens_today, requests, tokens, last_active,
                 recent FROM users WHERE id = ?1",
            )
            .and_then(|mut s| s.query_row([user_id], user_row).optional())
            .map(Option::unwrap_or_default);
        self.checked("user", read)
    }

    /// Stores the user's changed usage.
    pub fn put_user(&mut self, user_id: i64, user: &UserStats) {
        let sql = "INSERT OR REPLACE INTO users
            (id, name, day, requests_today, tokens_today, requests, tokens, last_active, recent)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
        let recent: Vec<String> = user.recent.iter().map(u64::to_string).collect();
        let written = self.db.prepare_cached(sql).and_then(|mut s| {
            s.execute(params![
                user_id,
                user.name,
                user.day,
                user.requests_today as i64,
                user.tokens_today as i64,
                user.requests as i64,
                user.tokens as i64,
                user.last_active as i64,
                recent.join(","),
            ])
        });
        self.checked("user", written);
    }

    /// How many users have asked something, for /stats.
    pub fn user_count(&self) -> usize {
        self.count("SELECT COUNT(*) FROM users")
    }

    /// The users who asked most on `day`, most first, and their usage.
    pub fn busiest(&self, day: &str, n: usize) -> Vec<(i64, UserStats)> {
        let read = self
            .db
            .prepare_cached(
                "SELECT name, day, requests_today, tokens_today, requests, tokens, last_active,
                 recent, id FROM users WHERE day = ?1 AND requests_today > 0
                 ORDER BY requests_today DESC, id LIMIT ?2",
            )
            .and_then(|mut s| {
                s.query_map(params![day, n as i64], |r| Ok((r.get(8)?, user_row(r)?)))?
                    .collect()
            });
        self.checked("busiest users", read)
    }

    /// Tokens all users spent on `day`.
    pub fn tokens_on(&self, day: &str) -> u64 {
        let read = self.db.query_row(
            "SELECT COALESCE(SUM(tokens_today), 0) FROM users WHERE day = ?1",
            [day],
            |r| r.get::<_, i64>(0),
        );
        self.checked("tokens today", read).max(0) as u64
    }

    /// What the admins decided about a user.
    pub fn access(&self, user_id: i64) -> Access {
        let read = self
            .db
            .prepare_cached("SELECT granted, announced FROM access WHERE user_id = ?1")
            .and_then(|mut s| {
                s.query_row([user_id], |r| {
                    Ok(Access {
                        granted: r.get(0)?,
                        announced: r.get(1)?,
                    })
                })
                .optional()
            })
            .map(Option::unwrap_or_default);
        self.checked("access", read)
    }

    /// Records an admin's decision (None takes it back) and that the admins know the user.
    pub fn set_access(&mut self, user_id: i64, access: Access) {
        let written = self
            .db
            .prepare_cached(
                "INSERT OR REPLACE INTO access (user_id, granted, announced) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![user_id, access.granted, access.announced]));
        self.checked("access", written);
    }

    /// The users allowed (`granted`) or refused by the admins' commands, in id order.
    pub fn decided(&self, granted: bool) -> Vec<i64> {
        let read = self
            .db
            .prepare_cached("SELECT user_id FROM access WHERE granted = ?1 ORDER BY user_id")
            .and_then(|mut s| s.query_map([granted], |r| r.get(0))?.collect());
        self.checked("access", read)
    }

    /// The bot-wide counters.
    pub fn counters(&self) -> Counters {
        let read = || -> rusqlite::Result<Counters> {
            let (answers, tokens) =
                self.db
                    .query_row("SELECT answers, tokens FROM meta", [], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                    })?;
            let failures = self
                .db
                .prepare_cached("SELECT kind, count FROM failures ORDER BY kind")?
                .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64)))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(Counters {
                answers: answers.max(0) as u64 + self.meta.answers,
                tokens: tokens.max(0) as u64 + self.meta.tokens,
                failures,
            })
        };
        self.checked("counters", read())
    }

    /// One more answer, and the tokens a GigaChat request used.
    pub fn count_answer(&mut self) {
        self.meta.changed = true;
        self.meta.answers += 1;
    }

    /// Tokens a GigaChat request used, in the bot-wide total.
    pub fn add_tokens(&mut self, tokens: u64) {
        self.meta.changed = true;
        self.meta.tokens += tokens;
    }

    /// One more failure of this kind.
    pub fn count_failure(&mut self, kind: &str) {
        let written = self.db.execute(
            "INSERT INTO failures (kind, count) VALUES (?1, 1)
             ON CONFLICT (kind) DO UPDATE SET count = count + 1",
            [kind],
        );
        self.checked("failures", written);
    }

    /// The rest of an answer a stop or a crash cut short, if any.
    pub fn unsent(&self) -> Option<Unsent> {
        let read = self
            .db
            .prepare_cached("SELECT chat_id, chunk FROM unsent ORDER BY n")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            });
        let rows = self.checked("unsent", read);
        let chat_id = rows.first()?.0;
        Some(Unsent {
            chat_id,
            chunks: rows.into_iter().map(|(_, chunk)| chunk).collect(),
        })
    }

    /// Replaces what is left to send.
    pub fn set_unsent(&mut self, unsent: Option<&Unsent>) {
        let write = || -> rusqlite::Result<()> {
            self.db.execute("DELETE FROM unsent", [])?;
            let Some(unsent) = unsent else {
                return Ok(());
            };
            for chunk in &unsent.chunks {
                self.db
                    .prepare_cached("INSERT INTO unsent (chat_id, chunk) VALUES (?1, ?2)")?
                    .execute(params![unsent.chat_id, chunk])?;
            }
            Ok(())
        };
        let result = write();
        self.checked("unsent", result);
    }

    /// Drops the memory of chats silent for `days` (their style stays) and the usage of
    /// users silent as long, so the database does not grow without bound. Returns how many
    /// chats were forgotten.
    pub fn forget_silent(&mut self, now: u64, days: u64) -> usize {
        if days == 0 {
            return 0;
        }
        let cutoff = now.saturating_sub(days.saturating_mul(86_400)) as i64;
        let forget = || -> rusqlite::Result<usize> {
            let forgotten: i64 = self.db.query_row(
                "SELECT COUNT(*) FROM chats c WHERE last_active < ?1 AND (style IS NULL
                 OR last_question IS NOT NULL OR EXISTS (SELECT 1 FROM turns WHERE chat_id = c.id))",
                [cutoff],
                |r| r.get(0),
            )?;
            self.db.execute(
                "DELETE FROM turns WHERE chat_id IN (SELECT id FROM chats WHERE last_active < ?1)",
                [cutoff],
            )?;
            self.db.execute(
                "DELETE FROM chats WHERE last_active < ?1 AND style IS NULL",
                [cutoff],
            )?;
            self.db.execute(
                "UPDATE chats SET last_question = NULL WHERE last_active < ?1",
                [cutoff],
            )?;
            self.db
                .execute("DELETE FROM users WHERE last_active < ?1", [cutoff])?;
            Ok(forgotten as usize)
        };
        let result = forget();
        self.checked("forget", result)
    }

    fn count(&self, sql: &str) -> usize {
        let read = self.db.query_row(sql, [], |r| r.get::<_, i64>(0));
        self.checked("count", read).max(0) as usize
    }

    /// Runs one statement of the transaction.
    fn run<P: rusqlite::Params>(&self, what: &str, sql: &str, params: P) {
        let result = self
            .db
            .prepare_cached(sql)
            .and_then(|mut s| s.execute(params));
        self.checked(what, result);
    }

    /// The value, or after a failure the default, with the failure logged and the
    /// transaction marked so that it is not saved half done.
    fn checked<T: Default>(&self, what: &str, result: rusqlite::Result<T>) -> T {
        result.unwrap_or_else(|err| {
            log::error!("state ({what}): {err}");
            self.failed.set(true);
            T::default()
        })
    }
}

fn user_row(r: &rusqlite::Row) -> rusqlite::Result<UserStats> {
    let n = |i: usize| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
    Ok(UserStats {
        name: r.get(0)?,
        day: r.get(1)?,
        requests_today: n(2)?,
        tokens_today: n(3)?,
        requests: n(4)?,
        tokens: n(5)?,
        last_active: n(6)?,
        recent: r
            .get::<_, String>(7)?
            .split(',')
            .filter_map(|t| t.parse().ok())
            .collect(),
    })
}

/// Where the longest run of `old` that starts `new` begins in `old`, and its length: those
/// rows stay, the others go, and `new` past the run is added after them.
fn longest_run(old: &[(i64, Turn)], new: &[Turn]) -> (usize, usize) {
    let mut best = (old.len(), 0);
    for start in 0..old.len() {
        let len = old[start..]
            .iter()
            .zip(new)
            .take_while(|((_, a), b)| a == *b)
            .count();
        if len > best.1 {
            best = (start, len);
        }
    }
    best
}

/// The lock file beside the database, held for as long as the process lives.
fn lock(path: &Path) -> Result<File> {
    let lock_path = with_suffix(path, ".lock");
    let file = private_file(&lock_path)
        .with_context(|| format!("cannot create the lock file {}", lock_path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => bail!(
            "another gigabot is running with the state file {}: stop it first (two bots on one state would answer twice and overwrite each other's memory)",
            path.display()
        ),
        Err(fs::TryLockError::Error(err)) => {
            Err(err).with_context(|| format!("cannot lock {}", lock_path.display()))
        }
    }
}

/// Creates (or opens) a file only its owner may read, whatever the umask.
fn private_file(path: &Path) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// Opens our database, creating it (0600, as its -wal and -shm files then are) if need be.
fn connect(path: &Path) -> Result<Connection> {
    let context = || format!("cannot open the state file {}", path.display());
    private_file(path).with_context(context)?;
    let db = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(context)?;
    db.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA cache_size = -1024;",
    )
    .with_context(context)?;
    // Every statement the bot runs stays prepared (the default keeps 16).
    db.set_prepared_statement_cache_capacity(40);
    let version: i64 = db.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 0 {
        db.execute_batch(&format!(
            "BEGIN; {SCHEMA} PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        ))
        .with_context(context)?;
    }
    for wal_file in ["-wal", "-shm"] {
        let _ = fs::set_permissions(
            with_suffix(path, wal_file),
            fs::Permissions::from_mode(0o600),
        );
    }
    Ok(db)
}

/// Why the file at `path` cannot be our database (a missing or empty file is a fresh start).
fn check_file(path: &Path) -> Result<()> {
    let mut header = [0u8; 100];
    let size = match fs::metadata(path) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => bail!("cannot be read ({err})"),
        Ok(meta) => meta.len(),
    };
    if size == 0 {
        return Ok(());
    }
    let read = File::open(path).and_then(|mut f| f.read_exact(&mut header));
    if read.is_err() || &header[..16] != b"SQLite format 3\0" {
        bail!("is not a gigabot database (not SQLite)");
    }
    // A cut file: the header counts more pages than there are.
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        n => u64::from(n),
    };
    let pages = u64::from(u32::from_be_bytes([
        header[28], header[29], header[30], header[31],
    ]));
    if page_size * pages > size {
        bail!("is cut short ({size} bytes of {})", page_size * pages);
    }
    let db = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let pragma = |name: &str| db.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0));
    let tables: i64 = db
        .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(|err| anyhow::anyhow!("is broken ({err})"))?;
    match (pragma("application_id")?, pragma("user_version")?) {
        (0, 0) if tables == 0 => return Ok(()),
        (APPLICATION_ID, version) if version > SCHEMA_VERSION => bail!(
            "was written by a newer gigabot (schema {version}, this one knows {SCHEMA_VERSION}): run the newer version"
        ),
        (APPLICATION_ID, _) => {}
        _ => bail!("is an SQLite database of another program, not gigabot's"),
    }
    let check: String = db
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|err| anyhow::anyhow!("is broken ({err})"))?;
    if check != "ok" {
        bail!("is broken ({check})");
    }
    Ok(())
}

/// `--reset-state`: the broken file (and its -wal and -shm) to `<name>.broken-<time>`.
fn move_aside(path: &Path) -> Result<PathBuf> {
    let aside = with_suffix(path, &format!(".broken-{}", unix_now()));
    fs::rename(path, &aside)
        .with_context(|| format!("cannot move the broken state file {} aside", path.display()))?;
    for wal_file in ["-wal", "-shm"] {
        let from = with_suffix(path, wal_file);
        if from.exists() {
            let _ = fs::rename(&from, with_suffix(&aside, wal_file));
        }
    }
    Ok(aside)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Copies the live database to `into`, safely while a bot writes to it (`gigabot backup`).
/// Read-only: the copy is made by SQLite's `VACUUM INTO`, the database is not touched.
pub fn backup(path: &Path, into: &Path) -> Result<()> {
    check_file(path).with_context(|| format!("the state file {}", path.display()))?;
    if !path.exists() {
        bail!("there is no state file {} to back up", path.display());
    }
    if into.exists() {
        bail!("{} exists already: give a new file name", into.display());
    }
    // A stopped bot leaves no -wal file; then nothing writes, and the file is read as it is
    // (nothing created beside it that the bot's user could not open later).
    let running = with_suffix(path, "-wal").exists();
    let uri = format!(
        "file:{}?mode=ro{}",
        path.display(),
        if running { "" } else { "&immutable=1" }
    );
    let db = Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
    )
    .with_context(|| format!("cannot open the state file {}", path.display()))?;
    private_file(into).with_context(|| format!("cannot create {}", into.display()))?;
    db.execute("VACUUM INTO ?1", [into.display().to_string()])
        .with_context(|| format!("cannot copy the state to {}", into.display()))?;
    Ok(())
}

// --- the JSON state file of gigabot 0.1 ---

/// The JSON state of the previous versions, imported once into the database.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Legacy {
    last_update_id: i64,
    chats: std::collections::BTreeMap<i64, ChatState>,
    granted: Vec<i64>,
    denied: Vec<i64>,
    announced: Vec<i64>,
    users: std::collections::BTreeMap<i64, UserStats>,
    counters: Counters,
    unsent: Option<Unsent>,
}

/// The JSON state to import, if any: `path` itself holds JSON, or `path` does not exist
/// yet and the previous default `gigabot-state.json` lies beside it. A JSON file that does
/// not read as one is the error, with its path.
fn legacy_json(path: &Path) -> Result<Option<(PathBuf, Legacy)>, (PathBuf, anyhow::Error)> {
    let beside = path.with_file_name("gigabot-state.json");
    let (source, bytes) = match fs::read(path) {
        Ok(bytes) if bytes.trim_ascii_start().starts_with(b"{") => (path.to_path_buf(), bytes),
        Ok(_) => return Ok(None),
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Ok(None),
        Err(_) => match fs::read(&beside) {
            Ok(bytes) => (beside, bytes),
            Err(_) => return Ok(None),
        },
    };
    match serde_json::from_slice(&bytes) {
        Ok(legacy) => Ok(Some((source, legacy))),
        Err(err) => Err((
            source,
            anyhow::anyhow!("is a JSON state of gigabot 0.1 that cannot be read ({err})"),
        )),
    }
}

/// Writes the JSON state into a new database at `path` in one transaction; the JSON file
/// stays as `<name>.imported`. A crash midway leaves the JSON where it was, to import again.
fn import(path: &Path, (json_path, legacy): &(PathBuf, Legacy)) -> Result<()> {
    let building = with_suffix(path, ".importing");
    for stale in [".importing", ".importing-wal", ".importing-shm"] {
        let _ = fs::remove_file(with_suffix(path, stale));
    }
    let mut db = connect(&building)?;
    let tx = db.transaction()?;
    let now = unix_now() as i64;
    tx.execute(
        "UPDATE meta SET last_update_id = ?1, answers = ?2, tokens = ?3",
        params![
            legacy.last_update_id,
            legacy.counters.answers as i64,
            legacy.counters.tokens as i64
        ],
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
    for (kind, count) in &legacy.counters.failures {
        tx.execute(
            "INSERT INTO failures VALUES (?1, ?2)",
            params![kind, *count as i64],
        )?;
    }
    for chunk in legacy
        .unsent
        .iter()
        .flat_map(|u| u.chunks.iter().map(move |c| (u.chat_id, c)))
    {
        tx.execute(
            "INSERT INTO unsent (chat_id, chunk) VALUES (?1, ?2)",
            params![chunk.0, chunk.1],
        )?;
    }
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
    log::info!(
        "imported the JSON state {} into {} ({} chats); the JSON file is kept as {}",
        json_path.display(),
        path.display(),
        legacy.chats.len(),
        kept.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUP: i64 = -1001234567890;

    /// A fresh folder under the system temp dir, removed when the test ends (also when it
    /// fails: the drop runs while the panic unwinds).
    struct TempDir(PathBuf);

    /// The prefix of the folders; the test process's id ends each name.
    const PREFIX: &str = "gigabot-store-";

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static SWEEP: std::sync::Once = std::sync::Once::new();
            SWEEP.call_once(remove_orphans);
            let dir = std::env::temp_dir().join(format!("{PREFIX}{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    /// Removes the folders of test runs that were killed before their drops ran (Ctrl+C, a
    /// SIGKILL): those whose process is gone. Folders of a run still going are kept.
    fn remove_orphans() {
        if !Path::new("/proc/self").exists() {
            return; // no way to tell a live process from a dead one
        }
        let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.rsplit_once('-'))
                .and_then(|(_, pid)| pid.parse::<u32>().ok());
            if let Some(pid) = pid
                && !Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }

    #[test]
    fn a_test_folder_goes_with_its_store() {
        let dir = TempDir::new("gone");
        let folder = dir.0.clone();
        let (_path, store) = sample(&dir);
        drop(store);
        drop(dir);
        assert!(!folder.exists(), "{} was left behind", folder.display());
        // A folder of a killed run (no such process) goes at the next run's first TempDir.
        let orphan = std::env::temp_dir().join(format!("{PREFIX}killed-{}", u32::MAX));
        fs::create_dir_all(&orphan).unwrap();
        remove_orphans();
        assert!(!orphan.exists(), "{} was left behind", orphan.display());
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// A chat as the tests write and read it: every column, and the history.
    fn put_chat(store: &mut Store, id: i64, chat: &ChatState) {
        store
            .db
            .execute(
                "INSERT OR REPLACE INTO chats VALUES (?1, ?2, ?3, ?4)",
                params![id, chat.style, chat.last_question, chat.last_active as i64],
            )
            .unwrap();
        store.put_history(id, &chat.history);
    }

    fn read_chat(store: &Store, id: i64) -> ChatState {
        let row = store
            .db
            .query_row(
                "SELECT style, last_question, last_active FROM chats WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?)),
            )
            .optional()
            .unwrap();
        let Some((style, last_question, last_active)) = row else {
            return ChatState::default();
        };
        ChatState {
            style,
            last_question,
            last_active: last_active as u64,
            history: store.history(id),
        }
    }

    fn turn(role: &str, content: &str) -> Turn {
        Turn {
            role: role.into(),
            content: content.into(),
        }
    }

    fn group_chat() -> ChatState {
        ChatState {
            style: Some("fairy".into()),
            history: vec![
                turn("user", "Привет 🤔 \"кавычки\""),
                turn("assistant", "Ответ"),
            ],
            last_question: Some("Привет 🤔".into()),
            last_active: 1_781_000_000,
        }
    }

    /// A store with one group chat, one user, decisions, counters and an unsent answer.
    fn sample(dir: &TempDir) -> (PathBuf, Store) {
        let path = dir.0.join("gigabot.db");
        let mut store = Store::open(&path, false).unwrap();
        store.begin();
        store.set_last_update_id(873000105);
        put_chat(&mut store, GROUP, &group_chat());
        let user = UserStats {
            name: "Иван (@ivan)".into(),
            requests: 3,
            ..UserStats::default()
        };
        store.put_user(7, &user);
        store.set_access(
            42,
            Access {
                granted: Some(true),
                announced: true,
            },
        );
        store.set_access(
            43,
            Access {
                granted: Some(false),
                announced: true,
            },
        );
        store.count_failure("gigachat 429");
        store.count_failure("gigachat 429");
        store.count_answer();
        store.add_tokens(120);
        store.commit().unwrap();
        (path, store)
    }

    #[test]
    fn what_is_committed_comes_back_after_a_restart() {
        let dir = TempDir::new("roundtrip");
        let (path, store) = sample(&dir);
        drop(store);
        let mut again = Store::open(&path, false).unwrap();
        assert_eq!(again.last_update_id(), 873000105);
        assert_eq!(read_chat(&again, GROUP), group_chat());
        assert_eq!(
            read_chat(&again, 5),
            ChatState::default(),
            "a new chat starts empty"
        );
        assert_eq!(again.user(7).requests, 3);
        assert_eq!(again.decided(true), [42]);
        assert_eq!(again.decided(false), [43]);
        assert_eq!(again.access(44), Access::default());
        let counters = again.counters();
        assert_eq!((counters.answers, counters.tokens), (1, 120));
        assert_eq!(counters.failures["gigachat 429"], 2);
        // Memory that changes keeps its order; a /reset empties it.
        again.begin();
        let mut chat = read_chat(&again, GROUP);
        chat.history.push(turn("user", "ещё"));
        put_chat(&mut again, GROUP, &chat);
        again.commit().unwrap();
        assert_eq!(read_chat(&again, GROUP).history, chat.history);
        // The oldest goes, a new one comes: the two that stay keep their rows.
        let numbers = |store: &Store| -> Vec<i64> {
            let mut select = store
                .db
                .prepare("SELECT n FROM turns WHERE chat_id = ?1 ORDER BY n")
                .unwrap();
            select
                .query_map([GROUP], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert_eq!(numbers(&again), [0, 1, 2]);
        again.begin();
        chat.history.remove(0);
        chat.history.push(turn("assistant", "ответ на «ещё»"));
        again.put_history(GROUP, &chat.history);
        again.commit().unwrap();
        assert_eq!(numbers(&again), [1, 2, 3]);
        assert_eq!(read_chat(&again, GROUP).history, chat.history);
        again.begin();
        chat.history.clear();
        put_chat(&mut again, GROUP, &chat);
        again.commit().unwrap();
        assert!(read_chat(&again, GROUP).history.is_empty());
    }

    #[test]
    fn an_update_not_committed_leaves_nothing_behind() {
        let dir = TempDir::new("uncommitted");
        let (path, mut store) = sample(&dir);
        store.begin();
        store.set_last_update_id(873000106);
        put_chat(&mut store, GROUP, &ChatState::default());
        store.count_answer();
        drop(store); // as a kill: no commit
        let mut again = Store::open(&path, false).unwrap();
        assert_eq!(again.last_update_id(), 873000105);
        assert_eq!(read_chat(&again, GROUP), group_chat());
        again.begin();
        again.count_answer();
        again.rollback();
        assert_eq!(again.counters().answers, 1);
    }

    #[test]
    fn kept_turns_are_not_rewritten() {
        let old: Vec<(i64, Turn)> = ["a", "b", "c", "d"]
            .iter()
            .enumerate()
            .map(|(i, c)| (i as i64, turn("user", c)))
            .collect();
        let new = |texts: &[&str]| texts.iter().map(|c| turn("user", c)).collect::<Vec<_>>();
        // An answer: the two oldest go, two new come; /retry: the last two are replaced.
        assert_eq!(longest_run(&old, &new(&["c", "d", "e", "f"])), (2, 2));
        assert_eq!(longest_run(&old, &new(&["a", "b", "x", "y"])), (0, 2));
        assert_eq!(longest_run(&old, &new(&[])), (4, 0));
        assert_eq!(longest_run(&[], &new(&["a"])), (0, 0));
    }

    #[test]
    fn the_files_are_private_whatever_the_umask() {
        let dir = TempDir::new("private");
        let (path, store) = sample(&dir);
        for name in ["", "-wal", "-shm", ".lock"] {
            let file = with_suffix(&path, name);
            let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", file.display());
        }
        drop(store);
    }

    #[test]
    fn a_second_store_on_the_same_file_is_refused() {
        let dir = TempDir::new("lock");
        let (path, store) = sample(&dir);
        let err = Store::open(&path, false)
            .err()
            .expect("a second store must fail");
        let text = format!("{err:#}");
        assert!(
            text.contains("another gigabot") && text.contains("gigabot.db"),
            "{text}"
        );
        drop(store);
        assert!(
            Store::open(&path, false).is_ok(),
            "the lock goes with the first"
        );
    }

    #[test]
    fn a_file_that_is_not_our_database_is_refused_and_left_untouched() {
        let dir = TempDir::new("foreign");
        let (path, store) = sample(&dir);
        drop(store);
        let good = fs::read(&path).unwrap();
        let refuse = |bytes: &[u8], expect: &str| {
            fs::write(&path, bytes).unwrap();
            let _ = fs::remove_file(with_suffix(&path, "-wal"));
            let err = Store::open(&path, false).err().expect("must be refused");
            let text = format!("{err:#}");
            assert!(text.contains(expect), "{text}");
            assert!(
                text.contains("--reset-state") && text.contains("gigabot.db"),
                "{text}"
            );
            assert_eq!(fs::read(&path).unwrap(), bytes, "the file was changed");
        };
        refuse(b"not a database at all", "not SQLite");
        refuse(&good[..good.len() / 2], "cut short");
        // Another program's database, and one of a newer gigabot.
        let other = dir.0.join("other.db");
        let db = Connection::open(&other).unwrap();
        db.execute_batch("CREATE TABLE notes (x TEXT)").unwrap();
        drop(db);
        refuse(&fs::read(&other).unwrap(), "another program");
        let newer = dir.0.join("newer.db");
        let db = Connection::open(&newer).unwrap();
        db.execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = 99; CREATE TABLE x (y)"
        ))
        .unwrap();
        drop(db);
        refuse(&fs::read(&newer).unwrap(), "newer gigabot");
        // --reset-state moves it aside and starts fresh.
        let store = Store::open(&path, true).unwrap();
        assert_eq!(store.last_update_id(), 0);
        let aside: Vec<_> = fs::read_dir(&dir.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("gigabot.db.broken-"))
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
    }

    #[test]
    fn a_json_state_of_the_previous_version_is_imported_once() {
        // Written by gigabot 0.1 itself (a few questions, a group, /allow, /deny, a 429).
        let fixture = include_bytes!("../tests/fixtures/state-v0.1.json");
        let dir = TempDir::new("import");
        let json = dir.0.join("gigabot-state.json");
        fs::write(&json, fixture).unwrap();
        let path = dir.0.join("gigabot.db");
        let store = Store::open(&path, false).unwrap();
        assert_eq!(store.last_update_id(), 873000108);
        let ivan = read_chat(&store, 123456789);
        assert_eq!(ivan.style.as_deref(), Some("fairy"));
        assert_eq!(ivan.history.len(), 4);
        assert_eq!(ivan.history[2].content, "А сила тока?");
        assert_eq!(ivan.last_question.as_deref(), Some("перегрузка"));
        assert!(
            read_chat(&store, GROUP).history[0]
                .content
                .contains("\"кавычки\" 🤔")
        );
        assert_eq!(store.decided(true), [777000222]);
        assert_eq!(store.decided(false), [555000111]);
        assert!(store.access(555000111).announced);
        assert_eq!(store.user(123456789).tokens, 84);
        let counters = store.counters();
        assert_eq!((counters.answers, counters.tokens), (3, 117));
        assert_eq!(counters.failures["gigachat rate limited 429"], 1);
        assert!(!json.exists());
        assert_eq!(
            fs::read(dir.0.join("gigabot-state.json.imported")).unwrap(),
            fixture
        );
        drop(store);
        // The second start opens the database; nothing is imported again.
        let store = Store::open(&path, false).unwrap();
        assert_eq!(read_chat(&store, 123456789).history.len(), 4);
        // A state_file that still names the JSON file (an old config) works the same.
        let dir = TempDir::new("import-in-place");
        let named = dir.0.join("gigabot-state.json");
        fs::write(&named, fixture).unwrap();
        let store = Store::open(&named, false).unwrap();
        assert_eq!(read_chat(&store, 123456789).style.as_deref(), Some("fairy"));
        assert!(fs::read(&named).unwrap().starts_with(b"SQLite format 3\0"));
        assert_eq!(fs::read(with_suffix(&named, ".imported")).unwrap(), fixture);
    }

    #[test]
    fn silent_chats_lose_memory_but_keep_style_and_silent_users_go() {
        let dir = TempDir::new("silent");
        let (_path, mut store) = sample(&dir);
        let now = 1_781_000_000 + 31 * 86_400;
        store.begin();
        let forgettable = ChatState {
            last_question: Some("забытый".into()),
            last_active: 1_781_000_000,
            ..ChatState::default()
        };
        put_chat(&mut store, 99, &forgettable);
        let recent = ChatState {
            last_question: Some("свежий".into()),
            last_active: now - 86_400,
            ..ChatState::default()
        };
        put_chat(&mut store, 100, &recent);
        let active = UserStats {
            last_active: now,
            ..UserStats::default()
        };
        store.put_user(8, &active);
        assert_eq!(store.forget_silent(now, 30), 2);
        store.commit().unwrap();
        let chat = read_chat(&store, GROUP);
        assert!(chat.history.is_empty() && chat.last_question.is_none());
        assert_eq!(chat.style.as_deref(), Some("fairy"));
        assert_eq!(store.chat_count(), 2, "chat 99 had nothing left to keep");
        assert_eq!(read_chat(&store, 100), recent);
        assert_eq!(store.user_count(), 1, "user 7 was silent");
        assert_eq!(store.forget_silent(now, u64::MAX), 0, "no overflow");
    }

    #[test]
    fn a_backup_is_a_copy_made_while_the_store_is_open() {
        let dir = TempDir::new("backup");
        let (path, store) = sample(&dir);
        let copy = dir.0.join("copy.db");
        backup(&path, &copy).unwrap();
        let mode = fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(
            backup(&path, &copy).is_err(),
            "an existing copy is not overwritten"
        );
        drop(store);
        let copied = Store::open(&copy, false).unwrap();
        assert_eq!(read_chat(&copied, GROUP), group_chat());
    }
}
