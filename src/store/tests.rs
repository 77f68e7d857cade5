//! The store's tests, each on a database of its own in a temporary folder.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::file::{APPLICATION_ID, with_suffix};
use super::legacy::ChatState;
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
            "INSERT OR REPLACE INTO chats (id, style, last_question, last_active)
             VALUES (?1, ?2, ?3, ?4)",
            params![id, chat.style, chat.last_question, chat.last_active as i64],
        )
        .unwrap();
    store.put_history(id, &chat.history);
}

fn read_chat(store: &Store, id: i64) -> ChatState {
    let row = store
        .db
        .query_row("SELECT style, last_question, last_active FROM chats WHERE id = ?1", [id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?))
        })
        .optional()
        .unwrap();
    let Some((style, last_question, last_active)) = row else {
        return ChatState::default();
    };
    ChatState { style, last_question, last_active: last_active as u64, history: store.history(id) }
}

fn turn(role: &str, content: &str) -> Turn {
    Turn { role: role.into(), content: content.into() }
}

fn group_chat() -> ChatState {
    ChatState {
        style: Some("fairy".into()),
        history: vec![turn("user", "Привет 🤔 \"кавычки\""), turn("assistant", "Ответ")],
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
    let user = UserStats { name: "Иван (@ivan)".into(), requests: 3, ..UserStats::default() };
    store.put_user(7, &user);
    store.set_access(42, Access { granted: Some(true), announced: true });
    store.set_access(43, Access { granted: Some(false), announced: true });
    store.count_failure("gigachat 429");
    store.count_failure("gigachat 429");
    store.count_answer();
    store.add_tokens(120, 20);
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
    assert_eq!(read_chat(&again, 5), ChatState::default(), "a new chat starts empty");
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
        let mut select =
            store.db.prepare("SELECT n FROM turns WHERE chat_id = ?1 ORDER BY n").unwrap();
        select.query_map([GROUP], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
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
    let old: Vec<(i64, Turn)> =
        ["a", "b", "c", "d"].iter().enumerate().map(|(i, c)| (i as i64, turn("user", c))).collect();
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
    let err = Store::open(&path, false).err().expect("a second store must fail");
    let text = format!("{err:#}");
    assert!(text.contains("another gigabot") && text.contains("gigabot.db"), "{text}");
    drop(store);
    assert!(Store::open(&path, false).is_ok(), "the lock goes with the first");
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
        assert!(text.contains("--reset-state") && text.contains("gigabot.db"), "{text}");
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
    let fixture = include_bytes!("../../tests/fixtures/state-v0.1.json");
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
    assert!(read_chat(&store, GROUP).history[0].content.contains("\"кавычки\" 🤔"));
    assert_eq!(store.decided(true), [777000222]);
    assert_eq!(store.decided(false), [555000111]);
    assert!(store.access(555000111).announced);
    assert_eq!(store.user(123456789).tokens, 84);
    let counters = store.counters();
    assert_eq!((counters.answers, counters.tokens), (3, 117));
    assert_eq!(counters.failures["gigachat rate limited 429"], 1);
    assert!(!json.exists());
    assert_eq!(fs::read(dir.0.join("gigabot-state.json.imported")).unwrap(), fixture);
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
    // An answer 0.1 had not finished sending is sent after the import.
    let dir = TempDir::new("import-unsent");
    let named = dir.0.join("gigabot-state.json");
    fs::write(&named, r#"{"unsent": {"chat_id": 5, "chunks": ["a", "b"]}}"#).unwrap();
    let unsent = Store::open(&named, false).unwrap().unsent().unwrap();
    let html = |text: &str| Chunk::Html(text.into());
    assert_eq!((unsent.chat_id, unsent.chunks), (5, vec![html("a"), html("b")]));
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
    let active = UserStats { last_active: now, ..UserStats::default() };
    store.put_user(8, &active);
    assert_eq!(store.forget_silent(now, 30), 2);
    store.commit().unwrap();
    let chat = read_chat(&store, GROUP);
    assert!(chat.history.is_empty() && chat.last_question.is_none());
    assert_eq!(chat.style.as_deref(), Some("fairy"));
    assert_eq!(store.stats("", 0).chats, 2, "chat 99 had nothing left to keep");
    assert_eq!(read_chat(&store, 100), recent);
    assert_eq!(store.stats("", 0).users, 1, "user 7 was silent");
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
    assert!(backup(&path, &copy).is_err(), "an existing copy is not overwritten");
    drop(store);
    let copied = Store::open(&copy, false).unwrap();
    assert_eq!(read_chat(&copied, GROUP), group_chat());
}

#[test]
fn every_commit_is_on_the_disk_before_the_loop_goes_on() {
    let dir = TempDir::new("synced");
    let (_path, store) = sample(&dir);
    // FULL (2): a power cut cannot undo an update whose answer the user already has.
    let synchronous: i64 = store.db.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
    assert_eq!(synchronous, 2);
}

/// The size of the database's write-ahead log: what commits wrote since the last checkpoint.
fn wal_len(path: &Path) -> u64 {
    fs::metadata(with_suffix(path, "-wal")).map_or(0, |m| m.len())
}

#[test]
fn a_long_answer_is_written_once_then_only_its_progress() {
    let dir = TempDir::new("unsent");
    let (path, mut store) = sample(&dir);
    let text = |i: usize| format!("{i} {}", "ж".repeat(4000));
    let chunks: Vec<Chunk> = (0..30)
        .map(|i| if i % 2 == 0 { Chunk::Html(text(i)) } else { Chunk::Rich(text(i)) })
        .collect();
    store.begin();
    store.set_unsent(&Unsent { chat_id: GROUP, chunks: chunks.clone() });
    store.commit().unwrap();
    let recorded = wal_len(&path);
    for sent in 1..=3 {
        store.begin();
        store.unsent_progress();
        store.commit().unwrap();
        let rest = store.unsent().unwrap();
        assert_eq!(rest.chunks, chunks[sent..], "after {sent} sent");
    }
    // Each message costs a page or two, not the rest of the answer again (about 230 KB).
    let per_message = (wal_len(&path) - recorded) / 3;
    assert!(per_message <= 2 * 4120, "{per_message} bytes per message");
    drop(store);
    let mut again = Store::open(&path, false).unwrap();
    assert_eq!(again.unsent().unwrap().chunks, chunks[3..]);
    again.begin();
    again.clear_unsent();
    again.commit().unwrap();
    assert_eq!(again.unsent(), None);
}

#[test]
fn an_update_that_changed_nothing_writes_nothing_until_it_must() {
    let dir = TempDir::new("quiet");
    let (path, mut store) = sample(&dir);
    let before = wal_len(&path);
    for id in 873000106..873000146 {
        store.begin();
        store.set_last_update_id(id);
        store.commit().unwrap();
    }
    assert_eq!(wal_len(&path), before, "40 ignored updates wrote to the disk");
    assert_eq!(store.last_update_id(), 873000145, "handled, and confirmed to Telegram");
    // An update that sent a message is saved at once.
    store.begin();
    store.set_last_update_id(873000146);
    store.must_save();
    store.commit().unwrap();
    drop(store);
    assert_eq!(Store::open(&path, false).unwrap().last_update_id(), 873000146);
}

#[test]
fn a_failed_save_is_not_confirmed() {
    let dir = TempDir::new("failed");
    let (path, mut store) = sample(&dir);
    store.begin();
    store.set_last_update_id(873000106);
    store.set_style(GROUP, "professor", 1);
    store.run("test", "INSERT INTO no_such_table VALUES (1)", []);
    assert!(store.failed(), "a failed statement is seen before anything is acted on");
    assert!(store.commit().is_err());
    // The update goes back to Telegram: the next poll asks for it again.
    assert_eq!(store.last_update_id(), 873000105);
    assert_eq!(read_chat(&store, GROUP).style.as_deref(), Some("fairy"));
    assert!(store.probe().is_ok(), "the store works again");
    drop(store);
    assert_eq!(Store::open(&path, false).unwrap().last_update_id(), 873000105);
}

#[test]
fn uploads_stay_in_the_state_until_deleted() {
    let dir = TempDir::new("uploads");
    let (path, mut store) = sample(&dir);
    store.begin();
    store.note_upload("3727db23-91a3");
    store.commit().unwrap();
    drop(store);
    let mut again = Store::open(&path, false).unwrap();
    assert_eq!(again.uploads(), ["3727db23-91a3"]);
    again.begin();
    again.forget_upload("3727db23-91a3");
    again.commit().unwrap();
    assert!(again.uploads().is_empty());
}

#[test]
fn older_databases_are_brought_up_to_date() {
    // Each schema's additions taken away, the newest first.
    let to5 =
        "ALTER TABLE meta DROP COLUMN embedding_tokens; DROP TABLE passages; DROP TABLE documents;";
    let to4 = format!("{to5} ALTER TABLE meta DROP COLUMN balance_warned;");
    let to3 = format!(
        "{to4} ALTER TABLE chats DROP COLUMN session; ALTER TABLE meta DROP COLUMN cached_tokens;"
    );
    let to2 = format!("{to3} ALTER TABLE unsent DROP COLUMN rich;");
    let to1 = format!("{to2} ALTER TABLE meta DROP COLUMN unsent_sent; DROP TABLE uploads;");
    let unsent = "INSERT INTO unsent (chat_id, chunk) VALUES (5, '<b>html</b>');";
    let older = [
        format!("{to1} PRAGMA user_version = 1;"),
        format!("{to2} {unsent} PRAGMA user_version = 2;"),
        format!("{to3} {unsent} PRAGMA user_version = 3;"),
        format!("{to4} {unsent} PRAGMA user_version = 4;"),
        format!("{to5} {unsent} PRAGMA user_version = 5;"),
    ];
    for (i, downgrade) in older.iter().enumerate() {
        let dir = TempDir::new(&format!("schema{}", i + 1));
        let (path, store) = sample(&dir);
        store.db.execute_batch(downgrade).unwrap();
        drop(store);
        let again = Store::open(&path, false).unwrap();
        let version: i64 = again.db.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, 6);
        assert_eq!(again.balance_warned(), "");
        assert!(again.documents().is_empty() && again.load_index().ids.is_empty());
        assert_eq!(again.last_update_id(), 873000105);
        assert_eq!(read_chat(&again, GROUP), group_chat());
        let unsent = again.unsent().map(|u| u.chunks);
        let left = (i > 0).then(|| vec![Chunk::Html("<b>html</b>".into())]);
        assert!(again.uploads().is_empty() && unsent == left, "{unsent:?}");
    }
}

#[test]
fn a_chats_session_lasts_until_its_conversation_starts_over() {
    let dir = TempDir::new("session");
    let (path, mut store) = sample(&dir);
    store.begin();
    let first = store.session(GROUP, 1);
    assert_eq!(store.session(GROUP, 2), first);
    assert_ne!(store.session(5, 2), first, "another chat");
    assert!(!first.contains(&GROUP.unsigned_abs().to_string()), "{first}");
    store.commit().unwrap();
    drop(store);
    let mut again = Store::open(&path, false).unwrap();
    again.begin();
    assert_eq!(again.session(GROUP, 3), first, "after a restart");
    again.forget_chat(GROUP);
    let after_reset = again.session(GROUP, 4);
    assert_ne!(after_reset, first, "/reset starts a new conversation");
    again.set_style(GROUP, "fairy", 5);
    assert_ne!(again.session(GROUP, 6), after_reset, "so does another style");
    again.commit().unwrap();
}

#[test]
fn a_document_is_replaced_whole_and_vectors_of_another_length_are_left_out() {
    let dir = TempDir::new("passages");
    let (_, mut store) = sample(&dir);
    let passage = |text: &str| crate::knowledge::Passage { heading: "H".into(), text: text.into() };
    store.begin();
    store.put_document("a.md", "f1", &[(passage("one"), vec![1.0, 0.0, 0.0])]);
    store.put_document("b.md", "f2", &[(passage("two"), vec![0.0, 1.0, 0.0])]);
    store.put_document("a.md", "f3", &[(passage("new"), vec![0.0, 0.0, 1.0])]);
    store.put_document("c.md", "f4", &[(passage("old model"), vec![1.0, 0.0])]);
    store.commit().unwrap();
    let documents: Vec<String> =
        store.documents().into_iter().map(|(p, f)| format!("{p}={f}")).collect();
    assert_eq!(documents, ["a.md=f3", "b.md=f2", "c.md=f4"]);
    let index = store.load_index();
    assert_eq!(index.ids.len(), 2, "the 2-long vector is left out");
    let found = index.search(&[0.0, 0.0, 1.0], 1, 0.5);
    let (path, text) = store.passage(found[0].0).map(|(p, x)| (p, x.text)).unwrap();
    assert_eq!((path.as_str(), text.as_str()), ("a.md", "new"));
    store.begin();
    store.forget_document("a.md");
    store.commit().unwrap();
    assert_eq!(store.load_index().ids.len(), 1);
}
