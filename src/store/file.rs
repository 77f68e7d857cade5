//! The database file under the store: its schema, the lock that keeps a second bot off it,
//! the checks that keep the bot off a file that is not its own, and `backup`. WAL mode with
//! `synchronous = FULL`: every commit is on the disk before the loop polls past its update
//! (NORMAL would save one fsync per update, but a power cut could then undo an update whose
//! answer the user already has, and it would be answered again).

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OpenFlags};

use crate::clock::unix_now;

/// The schema this binary writes (`PRAGMA user_version`). 2 added `meta.unsent_sent` (the
/// progress of an answer going out) and `uploads` (files to delete from GigaChat); 3 added
/// `unsent.rich` (a part of an answer that goes as a rich message); 4 added `chats.session`
/// (the conversation's GigaChat session id) and `meta.cached_tokens`; 5 added
/// `meta.balance_warned` (the day the admins were last warned about the balance); 6 added
/// the reference desk's `documents` and `passages`, and `meta.embedding_tokens`.
const SCHEMA_VERSION: i64 = 6;
/// "gigb" (`PRAGMA application_id`): tells our database from any other SQLite file.
pub(super) const APPLICATION_ID: i64 = 0x6769_6762;

const SCHEMA: &str = "
CREATE TABLE meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_update_id INTEGER NOT NULL,
    answers INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    unsent_sent INTEGER NOT NULL DEFAULT 0,
    cached_tokens INTEGER NOT NULL DEFAULT 0,
    balance_warned TEXT NOT NULL DEFAULT ''
);
INSERT INTO meta (id, last_update_id, answers, tokens) VALUES (1, 0, 0, 0);
CREATE TABLE chats (
    id INTEGER PRIMARY KEY,
    style TEXT,
    last_question TEXT,
    last_active INTEGER NOT NULL,
    session TEXT
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
CREATE TABLE unsent (
    n INTEGER PRIMARY KEY,
    chat_id INTEGER NOT NULL,
    chunk TEXT NOT NULL,
    rich INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE uploads (id TEXT PRIMARY KEY) WITHOUT ROWID;
";

const PRAGMAS: &str =
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA cache_size = -1024;";

/// From schema 1 (gigabot 0.2) to 2, from 2 to 3, and so on: a database of schema `n` runs
/// the migrations from the `n`th on.
const MIGRATIONS: [&str; 5] = [
    "ALTER TABLE meta ADD COLUMN unsent_sent INTEGER NOT NULL DEFAULT 0;
     CREATE TABLE uploads (id TEXT PRIMARY KEY) WITHOUT ROWID;",
    "ALTER TABLE unsent ADD COLUMN rich INTEGER NOT NULL DEFAULT 0;",
    "ALTER TABLE chats ADD COLUMN session TEXT;
     ALTER TABLE meta ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0;",
    "ALTER TABLE meta ADD COLUMN balance_warned TEXT NOT NULL DEFAULT '';",
    DOCUMENTS,
];
/// The reference desk's index: each document (its path under `knowledge.dir`) with the
/// fingerprint of what was embedded, and its passages with their vectors (f32, little-endian);
/// the tokens embedding cost. A new database gets it after `SCHEMA`.
const DOCUMENTS: &str = "
ALTER TABLE meta ADD COLUMN embedding_tokens INTEGER NOT NULL DEFAULT 0;
CREATE TABLE documents (path TEXT PRIMARY KEY, fingerprint TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE passages (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    heading TEXT NOT NULL,
    text TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX passages_by_path ON passages (path);
";

/// The path with every symlink resolved (of its folder, if the file is not there yet), so
/// that the lock, the database and its -wal and -shm are found by one name.
pub(super) fn canonical(path: &Path) -> Result<PathBuf> {
    if let Ok(real) = fs::canonicalize(path) {
        return Ok(real);
    }
    let shown = path.display();
    let Some(name) = path.file_name() else {
        bail!("the state file {shown} names no file: give a file name such as gigabot.db");
    };
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let folder = fs::canonicalize(folder).with_context(|| {
        format!("the folder of the state file {shown} cannot be opened: create it first")
    })?;
    Ok(folder.join(name))
}

/// The state file is not one the bot may use (broken, another program's, another user's):
/// a person must look at it, so `main` exits as for a configuration error, and systemd does
/// not restart a bot that would only stop again.
#[derive(Debug)]
pub struct Unusable(pub String);

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unusable {}

/// The lock file beside the database, held for as long as the process lives.
pub(super) fn lock(path: &Path) -> Result<File> {
    let lock_path = with_suffix(path, ".lock");
    make_private(&lock_path, false)?;
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
    let mut options = OpenOptions::new();
    let file =
        options.read(true).write(true).create(true).truncate(false).mode(0o600).open(path)?;
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// Opens (or creates, 0600 like its -wal and -shm) our database and updates an older schema.
pub(super) fn connect(path: &Path) -> Result<Connection> {
    let context = || format!("cannot open the state file {}", path.display());
    ["-wal", "-shm"].iter().try_for_each(|c| make_private(&with_suffix(path, c), false))?;
    private_file(path).with_context(context)?;
    make_private(path, true)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let db = Connection::open_with_flags(path, flags).with_context(context)?;
    db.execute_batch(PRAGMAS).with_context(context)?;
    // Every statement the bot runs stays prepared (the default keeps 16).
    db.set_prepared_statement_cache_capacity(40);
    let version: i64 = db.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let upgrade = match version {
        0 => format!("{SCHEMA} {DOCUMENTS} PRAGMA application_id = {APPLICATION_ID};"),
        1..SCHEMA_VERSION => MIGRATIONS[version as usize - 1..].concat(),
        _ => String::new(),
    };
    if !upgrade.is_empty() {
        let batch = format!("BEGIN; {upgrade} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;");
        db.execute_batch(&batch).with_context(context)?;
    }
    ["-wal", "-shm"].iter().try_for_each(|c| make_private(&with_suffix(path, c), false))?;
    Ok(db)
}

/// A state file (or its -wal, -shm) must be ours and only ours: one another user planted in
/// a shared folder, or one that cannot be made 0600, would let others read the questions.
/// A missing file is fine unless `must_exist`.
fn make_private(path: &Path, must_exist: bool) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && !must_exist => return Ok(()),
        Err(err) => bail!("cannot read {} ({err})", path.display()),
        Ok(meta) => meta,
    };
    // Our own user id is the owner of our /proc entry (not there: the check is skipped).
    if let Ok(me) = fs::metadata("/proc/self").map(|m| m.uid())
        && meta.uid() != me
    {
        return Err(Unusable(format!(
            "{} belongs to another user (uid {}, the bot runs as uid {me}): the bot would share its state with them; remove the file or run the bot as its owner",
            path.display(),
            meta.uid()
        ))
        .into());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(|err| {
        Unusable(format!(
            "cannot make {} private (chmod 600: {err}): fix its owner or permissions",
            path.display()
        ))
        .into()
    })
}

/// Why the file at `path` cannot be our database (a missing or empty file is a fresh start).
pub(super) fn check_file(path: &Path) -> Result<()> {
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
    let pages = u64::from(u32::from_be_bytes([header[28], header[29], header[30], header[31]]));
    if page_size * pages > size {
        bail!("is cut short ({size} bytes of {})", page_size * pages);
    }
    let db = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let pragma = |name: &str| db.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0));
    let broken = |err: rusqlite::Error| anyhow::anyhow!("is broken ({err})");
    let tables: i64 =
        db.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0)).map_err(broken)?;
    match (pragma("application_id")?, pragma("user_version")?) {
        (0, 0) if tables == 0 => return Ok(()),
        (APPLICATION_ID, version) if version > SCHEMA_VERSION => bail!(
            "was written by a newer gigabot (schema {version}, this one knows {SCHEMA_VERSION}): run the newer version"
        ),
        (APPLICATION_ID, _) => {}
        _ => bail!("is an SQLite database of another program, not gigabot's"),
    }
    let check: String = db.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(broken)?;
    if check != "ok" {
        bail!("is broken ({check})");
    }
    Ok(())
}

/// A file that cannot be our database (`err` says why) stops the bot, unless `reset`
/// (`--reset-state`): then it and its -wal and -shm move to `<name>.broken-<time>`.
pub(super) fn refuse_or_move_aside(path: &Path, err: anyhow::Error, reset: bool) -> Result<()> {
    if !reset {
        return Err(Unusable(format!(
            "the state file {} {err:#}; it was left untouched. Restore it from a backup, or start with --reset-state to move it aside and begin with empty memory",
            path.display()
        ))
        .into());
    }
    let aside = with_suffix(path, &format!(".broken-{}", unix_now()));
    fs::rename(path, &aside)
        .with_context(|| format!("cannot move the broken state file {} aside", path.display()))?;
    for wal_file in ["-wal", "-shm"] {
        let from = with_suffix(path, wal_file);
        if from.exists() {
            let _ = fs::rename(&from, with_suffix(&aside, wal_file));
        }
    }
    let (path, aside) = (path.display(), aside.display());
    log::warn!("the state file {path} {err:#}; moved it to {aside} and started fresh");
    Ok(())
}

/// `path` with `suffix` added to its name: `gigabot.db` → `gigabot.db-wal`.
pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The state opened to read only, without the lock, also while the bot runs. A stopped bot
/// leaves no -wal file; then nothing writes, and the file is read as it is (nothing created
/// beside it that the bot's user could not open later).
fn read_only(path: &Path) -> rusqlite::Result<Connection> {
    let running = with_suffix(path, "-wal").exists();
    let uri =
        format!("file:{}?mode=ro{}", path.display(), if running { "" } else { "&immutable=1" });
    Connection::open_with_flags(uri, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI)
}

/// The reference desk's index, for `check`: its documents (path, fingerprint) and how many
/// passages; None without a state file or an index in it.
pub fn index_summary(path: &Path) -> Option<(Vec<(String, String)>, usize)> {
    let db = read_only(path).ok()?;
    let mut statement = db.prepare("SELECT path, fingerprint FROM documents ORDER BY path").ok()?;
    let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).ok()?;
    let documents = rows.collect::<rusqlite::Result<_>>().ok()?;
    let passages: i64 = db.query_row("SELECT count(*) FROM passages", [], |r| r.get(0)).ok()?;
    Some((documents, passages.max(0) as usize))
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
    let db = read_only(path)
        .with_context(|| format!("cannot open the state file {}", path.display()))?;
    private_file(into).with_context(|| format!("cannot create {}", into.display()))?;
    db.execute("VACUUM INTO ?1", [into.display().to_string()])
        .with_context(|| format!("cannot copy the state to {}", into.display()))?;
    Ok(())
}
