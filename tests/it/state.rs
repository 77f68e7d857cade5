//! The saved state as an owner meets it: one SQLite file (`gigabot.db`) that only the bot's
//! user can read, one bot per file, a backup while the bot runs, and the JSON state of the
//! previous version imported on the first start.

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
    assert!(
        err.contains("another gigabot is running") && err.contains("gigabot.db"),
        "{err}"
    );
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
    assert_eq!(
        seen,
        [
            "gigabot.db",
            "gigabot.db-shm",
            "gigabot.db-wal",
            "gigabot.db.lock"
        ]
    );
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
    assert!(
        bot.log().contains("imported the JSON state"),
        "{}",
        bot.log()
    );
    assert_eq!(
        std::fs::read(env.path("gigabot-state.json.imported")).unwrap(),
        fixture
    );
    // Ivan's style and memory came along.
    let id = tg.push_text(IVAN, IVAN, "А напряжение?");
    tg.wait_until(WAIT, "answered", |t| t.replies_to(id).len() == 1);
    // The offset of the old state holds: the bot asked for updates after 873000108.
    let polled = tg.calls_of("getUpdates");
    assert_eq!(polled[0].int("offset"), Some(873000109));
    let request = gc.chat_requests().pop().unwrap();
    assert_eq!(request.system(), Some("Отвечай как сказочный персонаж"));
    assert_eq!(
        request.messages.len(),
        6,
        "four remembered messages and the question"
    );
    assert_eq!(request.messages[3].content, "А сила тока?");
    // So did the admins' decisions: user 555000111 was refused with /deny in an open bot.
    let denied = tg.push_text(555_000_111, 555_000_111, "а мне?");
    tg.wait_until(WAIT, "refused", |t| t.replies_to(denied).len() == 1);
    assert!(
        tg.replies_to(denied)[0]
            .text
            .contains("только для приглашённых")
    );
    let anna = tg.push_text(ANNA, ANNA, "/start");
    tg.wait_until(WAIT, "answered", |t| t.replies_to(anna).len() == 1);
}
