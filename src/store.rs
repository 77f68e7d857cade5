//! The saved state, in SQLite: chats' styles and memory, users' usage, the admins' access
//! decisions, counters, the last handled update id. One transaction per update holds all it
//! changed with its id, so a crash, a `kill -9` or a power cut leaves the state before or
//! after the update, and a restart answers nothing twice. An update writes only the rows it
//! changed (its cost does not grow with the number of chats), and nothing is loaded whole at
//! start. A statement that fails is logged and marks the transaction, whose commit then rolls
//! it all back instead of saving half an update. A file that is not our database is never
//! written to: the owner decides. The file (schema, lock, checks, `backup`) is in `file`, the
//! import of 0.1's JSON in `legacy`.

mod file;
mod legacy;
mod passages;

use std::cell::Cell;
use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OptionalExtension, params};

pub use file::{Unusable, backup, index_summary};

use crate::facts::{Access, Counters, Stats, Turn, UserStats};
use crate::render::Chunk;
use file::{check_file, connect, lock, refuse_or_move_aside};

/// Messages of an answer still to send, as made by `render`. The update the answer was for
/// counts as handled from its first message on.
#[derive(Debug, Clone, PartialEq)]
pub struct Unsent {
    pub chat_id: i64,
    pub chunks: Vec<Chunk>,
}

/// What the transaction adds to the bot-wide counters, written once at its commit.
#[derive(Default)]
struct Meta {
    answers: u64,
    tokens: u64,
    cached_tokens: u64,
}

/// How long the id of updates that changed nothing (a group's chatter, say) may wait for the
/// next change to be saved with it. A crash meanwhile costs nothing: such an update, if
/// Telegram sends it again, is ignored again.
const SAVE_QUIET_IDS_EVERY: Duration = Duration::from_secs(60);

/// How a row becomes a value.
type Read<T> = fn(&rusqlite::Row) -> rusqlite::Result<T>;

/// The database, and the lock that keeps a second bot off it.
pub struct Store {
    db: Connection,
    /// The last update handled: what the loop confirms to Telegram. It runs ahead of the
    /// saved one only for updates that changed nothing.
    last_update_id: i64,
    /// The last update id on disk, and when it was written.
    saved_update_id: i64,
    saved_at: Instant,
    /// Written once at the commit: an update would otherwise rewrite the meta row three times.
    meta: Meta,
    /// A statement of the open transaction failed; its commit rolls back.
    failed: Cell<bool>,
    /// A statement of the open transaction wrote something.
    wrote: Cell<bool>,
    _lock: File,
}

impl Store {
    /// Opens the database at `path`, created at the first start (from the previous versions'
    /// JSON state if there is one). A file that is not our database, or a newer one, stops the
    /// bot naming it unless `reset_broken` moves it aside; a second bot on it stops at once.
    pub fn open(path: &Path, reset_broken: bool) -> Result<Store> {
        // One path for the lock and the files, whatever symlink led to them: two bots on
        // one database must meet at one lock.
        let path = &file::canonical(path)?;
        let lock = lock(path)?;
        let problem = match legacy::find(path) {
            Ok(Some(json)) => {
                legacy::import(path, &json)?;
                None
            }
            Ok(None) => check_file(path).err().map(|err| (path.to_path_buf(), err)),
            Err(broken) => Some(broken),
        };
        if let Some((broken, err)) = problem {
            refuse_or_move_aside(&broken, err, reset_broken)?;
        }
        let db = connect(path)?;
        let last_update_id = db
            .query_row("SELECT last_update_id FROM meta", [], |row| row.get(0))
            .with_context(|| format!("cannot read the state file {}", path.display()))?;
        Ok(Store {
            db,
            last_update_id,
            saved_update_id: last_update_id,
            saved_at: Instant::now(),
            meta: Meta::default(),
            failed: Cell::new(false),
            wrote: Cell::new(false),
            _lock: lock,
        })
    }

    /// Starts the transaction of one update (or of one step of the loop's own work).
    pub fn begin(&mut self) {
        self.failed.set(false);
        self.wrote.set(false);
        if let Err(err) = self.db.execute_batch("BEGIN IMMEDIATE") {
            log::error!("state (begin): {err}");
            self.failed.set(true);
        }
    }

    /// Saves everything since [`Store::begin`] with the last handled update id; after a failed
    /// statement, nothing. A transaction that wrote nothing saves the id only once a minute
    /// (`SAVE_QUIET_IDS_EVERY`), so ignored updates cost no disk write each. On failure the
    /// handled id goes back to the saved one: the update is not confirmed, and comes again.
    pub fn commit(&mut self) -> Result<()> {
        let meta = std::mem::take(&mut self.meta);
        let counted = meta.answers > 0 || meta.tokens > 0 || meta.cached_tokens > 0;
        let lagging = self.last_update_id != self.saved_update_id;
        let save_id = lagging && self.saved_at.elapsed() >= SAVE_QUIET_IDS_EVERY;
        if self.wrote.get() || counted || save_id {
            self.run(
                "meta",
                "UPDATE meta SET last_update_id = ?1, answers = answers + ?2, tokens = tokens + ?3,
                 cached_tokens = cached_tokens + ?4",
                params![
                    self.last_update_id,
                    meta.answers as i64,
                    meta.tokens as i64,
                    meta.cached_tokens as i64
                ],
            );
        }
        let written = self.wrote.replace(false);
        if self.failed.replace(false) {
            let _ = self.db.execute_batch("ROLLBACK");
            self.last_update_id = self.saved_update_id;
            bail!(
                "the state was not saved: a statement failed (logged above); the update's changes are lost"
            );
        }
        if let Err(err) = self.db.execute_batch("COMMIT") {
            // A full disk: SQLite has rolled the transaction back already.
            let _ = self.db.execute_batch("ROLLBACK");
            self.last_update_id = self.saved_update_id;
            return Err(err).context("cannot save the state (commit)");
        }
        if written {
            self.saved_update_id = self.last_update_id;
            self.saved_at = Instant::now();
        }
        Ok(())
    }

    /// Drops everything since [`Store::begin`] (after a bug, or when the bot must stop).
    pub fn rollback(&mut self) {
        self.failed.set(false);
        self.wrote.set(false);
        self.meta = Meta::default();
        if let Err(err) = self.db.execute_batch("ROLLBACK") {
            log::debug!("state rollback: {err}");
        }
        let saved = self.db.query_row("SELECT last_update_id FROM meta", [], |r| r.get(0));
        self.last_update_id = self.checked("last update", saved);
        self.saved_update_id = self.last_update_id;
    }

    /// Whether a statement of the open transaction failed: what was read is not to be
    /// trusted (an access decision, a limit), so the update is not acted on.
    pub fn failed(&self) -> bool {
        self.failed.get()
    }

    /// Whether the state can be saved again after a failed commit: one small write, as an update's.
    pub fn probe(&mut self) -> Result<()> {
        let saved = self.saved_update_id;
        self.db
            .execute_batch("BEGIN IMMEDIATE")
            .and_then(|()| self.db.execute("UPDATE meta SET last_update_id = ?1", [saved]))
            .and_then(|_| self.db.execute_batch("COMMIT"))
            .map_err(|err| {
                let _ = self.db.execute_batch("ROLLBACK");
                anyhow::Error::new(err)
            })
    }

    /// Saves this transaction with the last handled update id even if it wrote nothing: the update
    /// sent a message, which must not go out again after a restart (or the bot is stopping).
    pub fn must_save(&mut self) {
        self.wrote.set(true);
    }

    /// The last update handled (answered or given up on for good).
    pub fn last_update_id(&self) -> i64 {
        self.last_update_id
    }

    /// Notes the update as handled; saved with the transaction.
    pub fn set_last_update_id(&mut self, id: i64) {
        self.last_update_id = id;
    }

    /// The chat's style (None: `bot.default_style`) and last question (for /retry, memory or not).
    pub fn chat(&self, chat_id: i64) -> (Option<String>, Option<String>) {
        let sql = "SELECT style, last_question FROM chats WHERE id = ?1";
        self.row("chat", sql, chat_id, |r| Ok((r.get(0)?, r.get(1)?))).unwrap_or_default()
    }

    /// Sets the chat's style: a new conversation, with a new GigaChat session.
    pub fn set_style(&mut self, chat_id: i64, style: &str, now: u64) {
        let sql = "INSERT INTO chats (id, style, last_active) VALUES (?1, ?2, ?3)
                   ON CONFLICT (id) DO UPDATE SET style = ?2, last_active = ?3, session = NULL";
        self.run("style", sql, params![chat_id, style, now as i64]);
    }

    /// Notes a question asked in the chat now (for /retry and to forget silent chats).
    pub fn note_question(&mut self, chat_id: i64, question: &str, now: u64) {
        let sql = "INSERT INTO chats (id, last_question, last_active) VALUES (?1, ?2, ?3)
                   ON CONFLICT (id) DO UPDATE SET last_question = ?2, last_active = ?3";
        self.run("question", sql, params![chat_id, question, now as i64]);
    }

    /// The conversation the chat remembers, oldest first.
    pub fn history(&self, chat_id: i64) -> Vec<Turn> {
        let read = self.turns(chat_id).map(|turns| turns.into_iter().map(|(_, t)| t).collect());
        self.checked("history", read)
    }

    /// Replaces what the chat remembers. Turns that stay are not rewritten: an answer adds
    /// two rows and drops the oldest, however much the chat remembers.
    pub fn put_history(&mut self, chat_id: i64, history: &[Turn]) {
        self.wrote.set(true);
        let write = || -> rusqlite::Result<()> {
            let old = self.turns(chat_id)?;
            let (start, kept) = longest_run(&old, history);
            let delete = "DELETE FROM turns WHERE chat_id = ?1 AND n = ?2";
            for (n, _) in old[..start].iter().chain(&old[start + kept..]) {
                self.db.prepare_cached(delete)?.execute([chat_id, *n])?;
            }
            let next = old.last().map_or(0, |(n, _)| n + 1);
            let insert = "INSERT INTO turns (chat_id, n, role, content) VALUES (?1, ?2, ?3, ?4)";
            for (i, turn) in history[kept..].iter().enumerate() {
                let row = params![chat_id, next + i as i64, turn.role, turn.content];
                self.db.prepare_cached(insert)?.execute(row)?;
            }
            Ok(())
        };
        self.checked("history", write());
    }

    /// `/reset`: the chat forgets its conversation and last question (its style stays).
    pub fn forget_chat(&mut self, chat_id: i64) {
        self.run("forget chat", "DELETE FROM turns WHERE chat_id = ?1", [chat_id]);
        let sql = "UPDATE chats SET last_question = NULL, session = NULL WHERE id = ?1";
        self.run("forget chat", sql, [chat_id]);
    }

    /// The chat's GigaChat session id (`X-Session-ID`): random, so it tells nothing of the
    /// chat, and kept until the conversation starts over (/reset, /new, another style).
    pub fn session(&mut self, chat_id: i64, now: u64) -> String {
        let sql = "SELECT session FROM chats WHERE id = ?1";
        if let Some(Some(session)) = self.row("session", sql, chat_id, |r| r.get(0)) {
            return session;
        }
        let session = uuid::Uuid::new_v4().to_string();
        let sql = "INSERT INTO chats (id, session, last_active) VALUES (?1, ?2, ?3)
                   ON CONFLICT (id) DO UPDATE SET session = ?2";
        self.run("session", sql, params![chat_id, session, now as i64]);
        session
    }

    /// The chat's remembered turns with their numbers, oldest first.
    fn turns(&self, chat_id: i64) -> rusqlite::Result<Vec<(i64, Turn)>> {
        self.db
            .prepare_cached("SELECT n, role, content FROM turns WHERE chat_id = ?1 ORDER BY n")?
            .query_map([chat_id], |r| {
                Ok((r.get(0)?, Turn { role: r.get(1)?, content: r.get(2)? }))
            })?
            .collect()
    }

    /// A group became a supergroup: its style and memory move to the new id (replacing its own).
    pub fn move_chat(&mut self, from: i64, to: i64) {
        self.wrote.set(true);
        let moved = || -> rusqlite::Result<()> {
            let sql = "SELECT 1 FROM chats WHERE id = ?1";
            if self.db.query_row(sql, [from], |_| Ok(())).optional()?.is_none() {
                return Ok(());
            }
            self.db.execute("DELETE FROM turns WHERE chat_id = ?1", [to])?;
            self.db.execute("DELETE FROM chats WHERE id = ?1", [to])?;
            self.db.execute("UPDATE chats SET id = ?2 WHERE id = ?1", [from, to])?;
            self.db.execute("UPDATE turns SET chat_id = ?2 WHERE chat_id = ?1", [from, to])?;
            Ok(())
        };
        self.checked("move chat", moved());
    }

    /// The user's usage; change it, then [`Store::put_user`].
    pub fn user(&self, user_id: i64) -> UserStats {
        let sql = "SELECT name, day, requests_today, tokens_today, requests, tokens, last_active,
                   recent FROM users WHERE id = ?1";
        self.row("user", sql, user_id, user_row).unwrap_or_default()
    }

    /// Stores the user's changed usage.
    pub fn put_user(&mut self, user_id: i64, user: &UserStats) {
        let sql = "INSERT OR REPLACE INTO users
            (id, name, day, requests_today, tokens_today, requests, tokens, last_active, recent)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
        let recent: Vec<String> = user.recent.iter().map(u64::to_string).collect();
        let row = params![
            user_id,
            user.name,
            user.day,
            user.requests_today as i64,
            user.tokens_today as i64,
            user.requests as i64,
            user.tokens as i64,
            user.last_active as i64,
            recent.join(","),
        ];
        self.run("user", sql, row);
    }

    /// What /stats shows: counters, today's tokens, how many chats and users, today's top five.
    pub fn stats(&self, today: &str, uptime_secs: u64) -> Stats {
        let sql = "SELECT name, day, requests_today, tokens_today, requests, tokens, last_active,
                   recent, id FROM users WHERE day = ?1 AND requests_today > 0
                   ORDER BY requests_today DESC, id LIMIT 5";
        let busiest = self.rows("busiest users", sql, [today], |r| Ok((r.get(8)?, user_row(r)?)));
        let tokens = "SELECT COALESCE(SUM(tokens_today), 0) FROM users WHERE day = ?1";
        Stats {
            uptime_secs,
            counters: self.counters(),
            tokens_today: self.number("tokens today", tokens, [today]),
            chats: self.number("count", "SELECT COUNT(*) FROM chats", []) as usize,
            users: self.number("count", "SELECT COUNT(*) FROM users", []) as usize,
            busiest,
        }
    }

    /// What the admins decided about a user.
    pub fn access(&self, user_id: i64) -> Access {
        let sql = "SELECT granted, announced FROM access WHERE user_id = ?1";
        let access = |r: &rusqlite::Row| Ok(Access { granted: r.get(0)?, announced: r.get(1)? });
        self.row("access", sql, user_id, access).unwrap_or_default()
    }

    /// Records an admin's decision (None takes it back) and that the admins know the user.
    pub fn set_access(&mut self, user_id: i64, access: Access) {
        let sql = "INSERT OR REPLACE INTO access (user_id, granted, announced) VALUES (?1, ?2, ?3)";
        self.run("access", sql, params![user_id, access.granted, access.announced]);
    }

    /// The users allowed (`granted`) or refused by the admins' commands, in id order.
    pub fn decided(&self, granted: bool) -> Vec<i64> {
        let sql = "SELECT user_id FROM access WHERE granted = ?1 ORDER BY user_id";
        self.rows("access", sql, [granted], |r| r.get(0))
    }

    /// The bot-wide counters.
    fn counters(&self) -> Counters {
        let read = || -> rusqlite::Result<Counters> {
            let sql = "SELECT answers, tokens, cached_tokens, embedding_tokens FROM meta";
            let (answers, tokens, cached, embedding): (i64, i64, i64, i64) =
                self.db.query_row(sql, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            let failures = self
                .db
                .prepare_cached("SELECT kind, count FROM failures ORDER BY kind")?
                .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64)))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(Counters {
                answers: answers.max(0) as u64 + self.meta.answers,
                tokens: tokens.max(0) as u64 + self.meta.tokens,
                cached_tokens: cached.max(0) as u64 + self.meta.cached_tokens,
                embedding_tokens: embedding.max(0) as u64,
                failures,
            })
        };
        self.checked("counters", read())
    }

    /// One more answer, in the bot-wide count.
    pub fn count_answer(&mut self) {
        self.meta.answers += 1;
    }

    /// Tokens a GigaChat request used, in the bot-wide total.
    pub fn add_tokens(&mut self, tokens: u64, cached: u64) {
        self.meta.tokens += tokens;
        self.meta.cached_tokens += cached;
    }

    /// One more failure of this kind.
    pub fn count_failure(&mut self, kind: &str) {
        let sql = "INSERT INTO failures (kind, count) VALUES (?1, 1)
                   ON CONFLICT (kind) DO UPDATE SET count = count + 1";
        self.run("failures", sql, [kind]);
    }

    /// The rest of an answer a stop or a crash cut short, if any: its messages not yet sent.
    pub fn unsent(&self) -> Option<Unsent> {
        let sql = "SELECT chat_id, chunk, rich FROM unsent ORDER BY n
                   LIMIT -1 OFFSET (SELECT unsent_sent FROM meta)";
        let rows: Vec<(i64, Chunk)> = self.rows("unsent", sql, [], |r| {
            let chunk: String = r.get(1)?;
            Ok((r.get(0)?, if r.get(2)? { Chunk::Rich(chunk) } else { Chunk::Html(chunk) }))
        });
        let chat_id = rows.first()?.0;
        Some(Unsent { chat_id, chunks: rows.into_iter().map(|(_, chunk)| chunk).collect() })
    }

    /// Records the messages of an answer still to send, once; [`Store::unsent_progress`]
    /// then notes each one that goes out, so a long answer is written to disk once.
    pub fn set_unsent(&mut self, unsent: &Unsent) {
        self.clear_unsent();
        let sql = "INSERT INTO unsent (chat_id, chunk, rich) VALUES (?1, ?2, ?3)";
        for chunk in &unsent.chunks {
            let rich = matches!(chunk, Chunk::Rich(_));
            self.run("unsent", sql, params![unsent.chat_id, chunk.text(), rich]);
        }
    }

    /// When the admins were last warned about the balance, and of what (`owner::balance_warning`).
    pub fn balance_warned(&self) -> String {
        let sql = "SELECT balance_warned FROM meta";
        self.checked("meta", self.db.query_row(sql, [], |row| row.get(0)))
    }

    /// Remembers the warning just sent, with the update or batch being saved.
    pub fn set_balance_warned(&mut self, mark: &str) {
        self.run("meta", "UPDATE meta SET balance_warned = ?1", [mark]);
    }

    /// One more message of the recorded answer went out.
    pub fn unsent_progress(&mut self) {
        self.run("unsent", "UPDATE meta SET unsent_sent = unsent_sent + 1", []);
    }

    /// Nothing is left to send (all of it went out, or it was given up).
    pub fn clear_unsent(&mut self) {
        self.run("unsent", "DELETE FROM unsent", []);
        self.run("unsent", "UPDATE meta SET unsent_sent = 0", []);
    }

    /// Notes a file uploaded to GigaChat's storage, to delete later; kept until it is, so a
    /// kill before the deletion leaves its id for the next start.
    pub fn note_upload(&mut self, id: &str) {
        self.run("uploads", "INSERT OR IGNORE INTO uploads (id) VALUES (?1)", [id]);
    }

    /// The file is deleted from GigaChat's storage.
    pub fn forget_upload(&mut self, id: &str) {
        self.run("uploads", "DELETE FROM uploads WHERE id = ?1", [id]);
    }

    /// Files uploaded and not yet deleted (a kill or a failed deletion left them).
    pub fn uploads(&self) -> Vec<String> {
        self.rows("uploads", "SELECT id FROM uploads ORDER BY id", [], |r| r.get(0))
    }

    /// Drops the memory of chats silent for `days` (their style stays) and the usage of users
    /// silent as long, so the database cannot grow without bound; returns the chats forgotten.
    pub fn forget_silent(&mut self, now: u64, days: u64) -> usize {
        if days == 0 {
            return 0;
        }
        let cutoff = now.saturating_sub(days.saturating_mul(86_400)) as i64;
        self.wrote.set(true);
        let forget = || -> rusqlite::Result<usize> {
            let forgotten: i64 = self.db.query_row(
                "SELECT COUNT(*) FROM chats c WHERE last_active < ?1 AND (style IS NULL
                 OR last_question IS NOT NULL OR EXISTS (SELECT 1 FROM turns WHERE chat_id = c.id))",
                [cutoff],
                |r| r.get(0),
            )?;
            for sql in [
                "DELETE FROM turns WHERE chat_id IN (SELECT id FROM chats WHERE last_active < ?1)",
                "DELETE FROM chats WHERE last_active < ?1 AND style IS NULL",
                "UPDATE chats SET last_question = NULL WHERE last_active < ?1",
                "DELETE FROM users WHERE last_active < ?1",
            ] {
                self.db.execute(sql, [cutoff])?;
            }
            Ok(forgotten as usize)
        };
        self.checked("forget", forget())
    }

    /// The row `sql` selects for `id`, read by `map`; None if there is none.
    fn row<T>(&self, what: &str, sql: &str, id: i64, map: Read<T>) -> Option<T> {
        let read = self.db.prepare_cached(sql).and_then(|mut s| s.query_row([id], map).optional());
        self.checked(what, read)
    }

    /// The rows `sql` selects, each read by `map`.
    fn rows<T, P: rusqlite::Params>(
        &self,
        what: &str,
        sql: &str,
        params: P,
        map: Read<T>,
    ) -> Vec<T> {
        let read =
            self.db.prepare_cached(sql).and_then(|mut s| s.query_map(params, map)?.collect());
        self.checked(what, read)
    }

    /// The number `sql` selects (a count or a sum), never below 0.
    fn number<P: rusqlite::Params>(&self, what: &str, sql: &str, params: P) -> u64 {
        let read = self.db.query_row(sql, params, |r| r.get::<_, i64>(0));
        self.checked(what, read).max(0) as u64
    }

    /// Runs one statement of the transaction (one that writes).
    fn run<P: rusqlite::Params>(&self, what: &str, sql: &str, params: P) {
        self.wrote.set(true);
        let result = self.db.prepare_cached(sql).and_then(|mut s| s.execute(params));
        self.checked(what, result);
    }

    /// The value, or after a failure (logged) the default, the transaction marked for rollback.
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
        recent: r.get::<_, String>(7)?.split(',').filter_map(|t| t.parse().ok()).collect(),
    })
}

/// Where the longest run of `old` that starts `new` begins in `old`, and its length: those
/// rows stay, the others go, and `new` past the run is added after them.
fn longest_run(old: &[(i64, Turn)], new: &[Turn]) -> (usize, usize) {
    let mut best = (old.len(), 0);
    for start in 0..old.len() {
        let len = old[start..].iter().zip(new).take_while(|((_, a), b)| a == *b).count();
        if len > best.1 {
            best = (start, len);
        }
    }
    best
}

#[cfg(test)]
mod tests;
