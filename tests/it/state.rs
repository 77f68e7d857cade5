//! The saved state as an owner meets it: one SQLite file (`gigabot.db`) that only the bot's
//! user can read, one bot per file, a backup while the bot runs, and the JSON state of the
//! previous version imported on the first start. Also time: limits lift, budgets start
//! again and silent chats are forgotten by the state's clock, so the tests move time by
//! rewriting the state between two runs of the bot (the rules themselves, with any clock,
//! are unit tests in owner.rs and store.rs).

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::core::{WAIT, World};
use crate::fake_gigachat::FakeGigaChat;
use crate::fake_telegram::{ANNA, FakeTelegram, IVAN};
use crate::harness::{BotEnv, open_state, text};

#[test]
fn a_second_bot_on_the_same_state_exits_at_once_and_says_why() {
    let w = World::start();
    w.ask("первый");
    let started = std::time::Instant::now();
    let output = w.env.run(&[]);
    let (_, err) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("another gigabot is running") && err.contains("gigabot.db"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "it waited");
    // The second one polled nothing and the first one goes on.
    assert_eq!(w.tg.calls_of("getMe").len(), 1);
    assert_eq!(w.ask("второй").len(), 1);
}

#[test]
fn the_state_files_and_transcripts_are_private_whatever_the_umask() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let mut env = BotEnv::new(&tg, &gc);
    env.config("[telegram]\npoll_timeout_secs = 10\n[bot]\ntranscript_dir = \"transcripts\"\n");
    // A transcript left world-readable by an older version is closed at the next line.
    std::fs::create_dir(env.path("transcripts")).unwrap();
    let folder = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(env.path("transcripts"), folder).unwrap();
    let old = env.path(&format!("transcripts/{IVAN}.jsonl"));
    std::fs::write(&old, "").unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _bot = env.spawn_with_umask("000", &[]);
    tg.wait_until(WAIT, "the bot polls", |t| t.polling());
    let id = tg.push_text(IVAN, IVAN, "Привет");
    tg.wait_until(WAIT, "answered", |t| t.replies_to(id).len() == 1);
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&env.dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("gigabot.db") {
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name} is {mode:o}");
            seen.push(name);
        }
    }
    seen.sort();
    assert_eq!(seen, ["gigabot.db", "gigabot.db-shm", "gigabot.db-wal", "gigabot.db.lock"]);
    // The transcript folder and file are closed too (deleting those chmods kept every other
    // test green).
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    tg.wait_until(WAIT, "the transcript line", |_| {
        std::fs::read_to_string(&old).is_ok_and(|t| !t.is_empty())
    });
    assert_eq!(mode(&env.path("transcripts")), 0o700);
    assert_eq!(mode(&old), 0o600);
}

/// In a shared folder, a -wal file another user planted (world-writable) is refused: the
/// bot would keep the questions in a file others can read. Needs root (to plant a file of
/// another user); said so when it cannot run.
#[test]
fn a_wal_file_of_another_user_is_refused() {
    if !crate::harness::is_root() {
        eprintln!("a_wal_file_of_another_user_is_refused: not run, it needs root to chown");
        return;
    }
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let env = BotEnv::new(&tg, &gc);
    let wal = env.path("gigabot.db-wal");
    std::fs::write(&wal, "").unwrap();
    std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::os::unix::fs::chown(&wal, Some(65534), Some(65534)).unwrap();
    let output = env.run(&[]);
    let (_, err) = crate::harness::text(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains("gigabot.db-wal") && err.contains("another user"), "{err}");
}

#[test]
fn a_backup_made_while_the_bot_runs_holds_the_memory() {
    let w = World::start_with("");
    w.ask("/mode fairy");
    w.ask("Что такое закон Ома?");
    let output = w.env.run(&["backup", "copy.db"]);
    let (out, err) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{out}{err}");
    let copy = w.env.path("copy.db");
    let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let db = open_state(&copy);
    let (style, turns): (String, i64) = db
        .query_row(
            "SELECT style, (SELECT COUNT(*) FROM turns WHERE chat_id = ?1) FROM chats WHERE id = ?1",
            [IVAN],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((style.as_str(), turns), ("fairy", 2));
    // An existing file is not overwritten; the bot goes on answering.
    let output = w.env.run(&["backup", "copy.db"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output).1.contains("exists already"));
    assert_eq!(w.ask("И ещё").len(), 1);
}

#[test]
fn the_json_state_of_the_previous_version_is_imported_on_the_first_start() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let mut env = BotEnv::new(&tg, &gc);
    // The fixture's chats were last active on 2026-12-01: never forgotten in this test.
    env.config("[telegram]\npoll_timeout_secs = 10\n[bot]\nforget_after_days = 0\n");
    let fixture = include_bytes!("../fixtures/state-v0.1.json");
    std::fs::write(env.path("gigabot-state.json"), fixture).unwrap();
    let bot = env.spawn(&[]);
    tg.wait_until(WAIT, "the bot polls", |t| t.polling());
    assert!(bot.log().contains("imported the JSON state"), "{}", bot.log());
    assert_eq!(std::fs::read(env.path("gigabot-state.json.imported")).unwrap(), fixture);
    // Ivan's style and memory came along.
    let id = tg.push_text(IVAN, IVAN, "А напряжение?");
    tg.wait_until(WAIT, "answered", |t| t.replies_to(id).len() == 1);
    // The offset of the old state holds: the bot asked for updates after 873000108.
    let polled = tg.calls_of("getUpdates");
    assert_eq!(polled[0].int("offset"), Some(873000109));
    let request = gc.chat_requests().pop().unwrap();
    assert_eq!(request.system(), Some("Отвечай как сказочный персонаж"));
    assert_eq!(request.messages.len(), 6, "four remembered messages and the question");
    assert_eq!(request.messages[3].content, "А сила тока?");
    // So did the admins' decisions: user 555000111 was refused with /deny in an open bot.
    let denied = tg.push_text(555_000_111, 555_000_111, "а мне?");
    tg.wait_until(WAIT, "refused", |t| t.replies_to(denied).len() == 1);
    assert!(tg.replies_to(denied)[0].text.contains("только для приглашённых"));
    let anna = tg.push_text(ANNA, ANNA, "/start");
    tg.wait_until(WAIT, "answered", |t| t.replies_to(anna).len() == 1);
}

/// Stops the bot, rewrites its saved state with `sql` (as time passing would have left it),
/// and starts it again: the clock of limits and forgetting is the state's, so moving the
/// state moves the clock.
fn restart_after(w: World, sql: &str) -> World {
    let World { tg, gc, env, bot } = w;
    let mut bot = bot;
    assert_eq!(bot.stop().code(), Some(0));
    let db = rusqlite::Connection::open(env.path("gigabot.db")).unwrap();
    db.execute_batch(sql).unwrap();
    drop(db);
    let bot = env.spawn(&[]);
    tg.wait_until(WAIT, "the bot polls again", |t| t.polling());
    World { tg, gc, env, bot }
}

#[test]
fn the_per_minute_limit_lifts_a_minute_after_the_requests() {
    let w = World::start_with("[bot]\nrequests_per_minute = 1\n");
    w.ask("раз");
    assert!(w.ask("два")[0].contains("не больше 1 в минуту"));
    let w = restart_after(w, "UPDATE users SET recent = CAST(unixepoch() - 61 AS TEXT)");
    assert!(w.ask("три")[0].starts_with("Ответ ("));
    assert_eq!(w.gc.chat_requests().len(), 2);
}

#[test]
fn the_daily_budget_starts_again_the_next_day() {
    let w = World::start_with("[bot]\ndaily_tokens_per_user = 30\n");
    w.ask("первый вопрос, который тратит весь дневной лимит токенов");
    assert!(w.ask("второй")[0].contains("30 токенов"));
    let w = restart_after(w, "UPDATE users SET day = '2000-01-01'");
    assert!(w.ask("третий")[0].starts_with("Ответ ("));
    assert_eq!(w.gc.chat_requests().len(), 2);
}

#[test]
fn the_running_bot_forgets_chats_silent_for_forget_after_days() {
    let w = World::start_with("[bot]\nforget_after_days = 30\n");
    w.ask("/mode fairy");
    w.ask("запомни это");
    let anna = w.tg.push_text(ANNA, ANNA, "и это");
    w.tg.wait_until(WAIT, "answered", |t| t.replies_to(anna).len() == 1);
    // Ivan was silent for 31 days, Anna for 29.
    let w = restart_after(
        w,
        &format!(
            "UPDATE chats SET last_active = unixepoch() - 31 * 86400 WHERE id = {IVAN};
             UPDATE chats SET last_active = unixepoch() - 29 * 86400 WHERE id = {ANNA};"
        ),
    );
    w.ask("что я просил запомнить?");
    let request = w.gc.chat_requests().pop().unwrap();
    assert_eq!(request.messages.len(), 2, "Ivan's memory is forgotten");
    assert_eq!(request.system(), Some("Отвечай как сказочный персонаж"), "his style is kept");
    assert!(w.bot.log().contains("forgot the memory of 1 chat(s)"), "{}", w.bot.log());
    let anna = w.tg.push_text(ANNA, ANNA, "а я?");
    w.tg.wait_until(WAIT, "answered", |t| t.replies_to(anna).len() == 1);
    assert_eq!(w.gc.chat_requests().pop().unwrap().messages.len(), 4, "Anna remembers");
}

/// The same for a lock file planted by another user (with root the bot could take it over).
#[test]
fn a_lock_file_of_another_user_is_refused() {
    if !crate::harness::is_root() {
        eprintln!("a_lock_file_of_another_user_is_refused: not run, it needs root to chown");
        return;
    }
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let env = BotEnv::new(&tg, &gc);
    let lock = env.path("gigabot.db.lock");
    std::fs::write(&lock, "").unwrap();
    std::os::unix::fs::chown(&lock, Some(65534), Some(65534)).unwrap();
    let output = env.run(&[]);
    let (_, err) = crate::harness::text(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains("gigabot.db.lock") && err.contains("another user"), "{err}");
}

/// Every `sqlite3 gigabot.db "…"` the README and docs/lesson.md print runs on a state file
/// the bot wrote (a wrong column fails here, not for an owner), and the README's list of
/// tables is the database's.
#[test]
fn the_sqlite3_examples_of_the_docs_run_on_a_state_the_bot_wrote() {
    let w = World::start();
    w.ask("Что такое закон Ома?");
    let db = open_state(&w.env.path("gigabot.db"));
    let root = env!("CARGO_MANIFEST_DIR");
    let mut examples = Vec::new();
    for doc in ["README.md", "docs/lesson.md"] {
        let text = std::fs::read_to_string(format!("{root}/{doc}")).unwrap();
        // An example may be wrapped over lines in the prose: joined, then cut at quotes.
        let text = text.replace("\n  ", " ");
        for (at, _) in text.match_indices("sqlite3 gigabot.db \"") {
            let rest = &text[at + "sqlite3 gigabot.db \"".len()..];
            let sql = rest.split('"').next().unwrap().to_string();
            examples.push((doc, sql));
        }
    }
    assert!(examples.len() >= 3, "{examples:?}");
    let tables: Vec<String> = {
        let mut select = db
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        select.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    for (doc, sql) in &examples {
        if sql == ".tables" {
            continue; // a dot-command of the sqlite3 shell: the table list is checked below
        }
        let mut select = db.prepare(sql).unwrap_or_else(|err| panic!("{doc}: {sql}: {err}"));
        let rows = select.query_map([], |_| Ok(())).unwrap().count();
        assert!(rows > 0 || !sql.contains("turns"), "{doc}: {sql} found nothing");
    }
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let listed = readme.split("Таблицы:").nth(1).expect("README lists the tables");
    let listed = listed.split("\n\n").next().unwrap().split(". ").next().unwrap();
    for table in &tables {
        assert!(
            listed.contains(&format!("`{table}`")),
            "README's table list lacks {table}: {listed}"
        );
    }
}
