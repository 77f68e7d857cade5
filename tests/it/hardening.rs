//! Hardening, second round (issue 20): what a hostile user, a full disk or a flaky network
//! did to the bot. Each test reproduces a finding through the fakes and the real binary,
//! and fails against the bot before its fix.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::core::{WAIT, World};
use crate::fake_gigachat::Reply;
use crate::fake_telegram::{self as tg, ANNA, Fault, IVAN};
use crate::harness::{open_state, sigkill, text};

/// Pushes `updates` and waits until the bot has handled them all; returns their ids.
fn push_all(w: &World, updates: Vec<serde_json::Value>) -> Vec<i64> {
    let ids: Vec<i64> = updates.into_iter().map(|u| w.tg.push(u)).collect();
    let last = *ids.last().expect("at least one update");
    w.tg.wait_until(WAIT, "all updates handled", |t| t.confirmed_offset() > last && t.polling());
    ids
}

/// Anna asks a question now and is answered within `within` (far below the wait a stalled
/// loop would make her sit through; not a measurement).
fn anna_is_answered_within(w: &World, within: Duration) {
    let pushed = Instant::now();
    let id = w.tg.push_text(ANNA, ANNA, "Что такое ток?");
    w.tg.wait_until(within, "Anna is answered", |t| !t.replies_to(id).is_empty());
    assert!(pushed.elapsed() < within);
    assert!(w.tg.replies_to(id)[0].text.starts_with("Ответ ("), "{}", w.tg.dump());
}

// --- 1. Nested Markdown: linear, bounded ---

/// GigaChat answering 12 KB of nested list markers: a few messages (not thousands), and the
/// next question is answered. Before, the renderer's output was quadratic in the depth: the
/// bot sat for seconds at hundreds of MiB, or was killed, on every restart.
#[test]
fn twelve_kilobytes_of_nested_lists_come_as_a_message_and_the_next_question_is_answered() {
    let w = World::start();
    w.gc.push_reply(Reply::Text(format!("{}x", "- ".repeat(6000))));
    let answer = w.ask("Сделай список");
    assert!(answer.len() <= 2, "{} messages", answer.len());
    assert!(answer.last().unwrap().ends_with('x'), "{answer:?}");
    let next = w.ask("А теперь коротко");
    assert_eq!(next.len(), 1);
}

// --- 2. One chat's trouble never holds the others ---

/// Telegram answers Ivan's answer with 500 again and again: after a few tries the message
/// is given up (and counted), and Anna, who asked meanwhile, is answered. Before, a 5xx was
/// retried forever, with pauses growing to 10 s.
#[test]
fn a_send_failing_with_5xx_is_given_up_after_a_few_tries_and_others_are_answered() {
    let w = World::start();
    w.tg.set_flood_limits(None);
    let restart =
        json!({"ok": false, "error_code": 500, "description": "Internal Server Error: restart"});
    // Four tries, all refused; a bot that tried a fifth time would get its answer out.
    for _ in 0..4 {
        w.tg.fail_next("sendRichMessage", Fault::Status(500, restart.clone()));
    }
    let ivan = w.tg.push_text(IVAN, IVAN, "Что такое закон Ома?");
    w.tg.wait_until(Duration::from_secs(20), "Ivan's answer given up", |t| {
        t.confirmed_offset() > ivan
    });
    let tries = w.tg.calls_of("sendRichMessage").iter().filter(|c| c.status == 500).count();
    assert_eq!(tries, 4, "{}", w.tg.dump());
    assert!(w.tg.replies_to(ivan).is_empty());
    anna_is_answered_within(&w, Duration::from_secs(10));
    assert!(w.bot.log().contains("giving up on this message"), "{}", w.bot.log());
}

/// A 429 asking for an hour: the message is given up, not waited for an hour with every
/// other chat. And a `retry_after` past any clock (1e19 s) is no panic.
#[test]
fn a_flood_wait_over_a_minute_gives_the_message_up_and_others_are_answered() {
    let w = World::start();
    w.tg.fail_next("sendRichMessage", Fault::TooManyRequests(3600));
    let ivan = w.tg.push_text(IVAN, IVAN, "Что такое закон Ома?");
    w.tg.wait_until(WAIT, "Ivan's answer given up", |t| t.confirmed_offset() > ivan);
    assert!(w.tg.replies_to(ivan).is_empty());
    anna_is_answered_within(&w, Duration::from_secs(10));

    let huge = json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 10000000000000000000",
        "parameters": {"retry_after": 10_000_000_000_000_000_000u64}});
    w.tg.fail_next("sendRichMessage", Fault::Status(429, huge));
    let ivan = w.tg.push_text(IVAN, IVAN, "И ещё раз");
    w.tg.wait_until(WAIT, "the huge wait given up", |t| t.confirmed_offset() > ivan);
    anna_is_answered_within(&w, Duration::from_secs(10));
    assert!(!w.bot.log().contains("bug:"), "{}", w.bot.log());
}

/// `/help` forty times from one user: a handful of replies (the chat's notice budget), and
/// another user's question is not held up by Telegram's flood control on them. Before,
/// command replies had no budget and waited out every 429.
#[test]
fn forty_help_commands_get_a_handful_of_replies_and_never_hold_up_another_user() {
    let w = World::start();
    let ids = push_all(&w, (0..40).map(|_| tg::private_text(IVAN, "/help")).collect());
    let replied = ids.iter().filter(|&&id| !w.tg.replies_to(id).is_empty()).count();
    assert!((1..=10).contains(&replied), "40 /help got {replied} replies");
    assert!(
        w.tg.calls_of("sendMessage").iter().all(|c| c.status != 429 || c.params["chat_id"] == IVAN)
    );
    anna_is_answered_within(&w, Duration::from_secs(10));
}

/// In allowlist mode a stranger's message makes the bot ask the admin; a 429 on that
/// message is not waited out (the stranger's next message asks again). Before, the loop
/// slept through it while an allowed user waited.
#[test]
fn asking_the_admin_about_a_stranger_never_waits_out_a_429() {
    const PETR: i64 = 222333444;
    let w = World::start_with(&format!("[bot]\nadmins = [{IVAN}]\nallowed_users = [{ANNA}]\n"));
    w.tg.add_chat(tg::chat(IVAN));
    // The refusal to Petr and the message to the admin both meet "retry after 30".
    w.tg.fail_next("sendMessage", Fault::TooManyRequests(30));
    w.tg.fail_next("sendMessage", Fault::TooManyRequests(30));
    let petr = w.tg.push_text(PETR, PETR, "Пустите");
    anna_is_answered_within(&w, Duration::from_secs(10));
    w.tg.wait_until(WAIT, "Petr's message handled", |t| t.confirmed_offset() > petr);
    // Not told, so asked again at Petr's next message.
    let again = w.tg.push_text(PETR, PETR, "Пустите, пожалуйста");
    w.tg.wait_until(WAIT, "the admin is asked", |t| {
        t.confirmed_offset() > again && t.sent_to(IVAN).len() == 1
    });
    assert!(w.tg.sent_to(IVAN)[0].text.contains(&PETR.to_string()));
}

/// A 5xx on polling is retried with a pause, not in a tight loop (a mutation that dropped
/// the pause kept every other test green).
#[test]
fn polling_errors_are_retried_after_a_pause() {
    let w = World::start();
    let restart =
        json!({"ok": false, "error_code": 500, "description": "Internal Server Error: restart"});
    for _ in 0..3 {
        w.tg.fail_next("getUpdates", Fault::Status(500, restart.clone()));
    }
    w.tg.push_text(IVAN, IVAN, "Вопрос");
    w.tg.wait_until(WAIT, "three failed polls", |t| {
        t.calls_of("getUpdates").iter().filter(|c| c.status == 500).count() == 3
    });
    let id = w.tg.push_text(IVAN, IVAN, "Ещё вопрос");
    w.tg.wait_until(WAIT, "polling again after the errors", |t| !t.replies_to(id).is_empty());
    let polls = w.tg.calls_of("getUpdates");
    let failed: Vec<_> = polls.iter().enumerate().filter(|(_, c)| c.status == 500).collect();
    let statuses: Vec<u16> = polls.iter().map(|c| c.status).collect();
    assert_eq!(failed.len(), 3, "{statuses:?}\n{}", w.bot.log());
    for (i, call) in failed {
        let next = &polls[i + 1];
        let gap = next.at - call.at;
        assert!(gap >= Duration::from_millis(900), "retried {gap:?} after a 500");
    }
}

// --- 3. Exactly once, truthfully ---

/// An answer that is being sent again after a restart is not cut short by a SIGTERM: the
/// bot finishes the message in flight, saves that it went out, and then stops; the next
/// start sends only what is left. Before, the start-up counted as idle and a stop exited at
/// once, so the message in flight came twice.
#[test]
fn a_stop_during_the_resend_after_a_restart_waits_for_the_message_in_flight() {
    let w = World::start();
    w.tg.set_flood_limits(None);
    w.gc.push_reply(Reply::Text(long_answer(3)));
    // Killed at the answer's second message: the rest is recorded.
    let pid = w.bot.pid();
    w.tg.set_kill_hook("sendRichMessage", 2, move || sigkill(pid));
    let id = w.tg.push_text(IVAN, IVAN, "Расскажи подробно");
    w.tg.wait_until(WAIT, "the kill", |t| !t.kill_hook_pending());
    assert_eq!(w.tg.replies_to(id).len(), 1);
    let World { tg, gc, env, bot } = w;
    drop(bot);
    // The restart sends the second message slowly; a SIGTERM comes meanwhile.
    tg.fail_next("sendRichMessage", Fault::Delay(Duration::from_millis(1500)));
    let mut bot = env.spawn(&[]);
    bot.wait_log("sending the last 2 message(s)", WAIT);
    // The resend is in flight (the fake holds it 1.5 s) when the stop comes.
    tg.wait_until(WAIT, "the resend held by the fake", |t| t.in_flight("sendRichMessage") == 1);
    bot.signal("TERM");
    let status = bot.wait_exit(WAIT).expect("the bot stops");
    assert!(status.success(), "{}", bot.log());
    // The message in flight went out (and the rest with it, or after the next start).
    assert!(tg.sent_to(IVAN).len() >= 2, "{}\n{}", tg.dump(), bot.log());
    let bot = env.spawn(&[]);
    tg.wait_until(WAIT, "polling again", |t| t.polling());
    tg.wait_until(WAIT, "the rest", |t| t.sent_to(IVAN).len() >= 3);
    let next = tg.push_text(IVAN, IVAN, "Спасибо");
    tg.wait_until(WAIT, "the next answer", |t| !t.replies_to(next).is_empty());
    let texts: Vec<String> = tg.sent_to(IVAN).iter().map(|m| m.text.clone()).collect();
    let mut unique = texts.clone();
    unique.dedup();
    assert_eq!((texts.len(), unique.len()), (4, 4), "{texts:#?}\n{}", bot.log());
    drop(gc);
}

/// A gateway's 504 after Telegram took the message (the gateway gave up waiting, Telegram
/// did not): the bot does not send it again, and the user reads it once. A 502 (not done)
/// is sent again, once. Before, both were retried, so the 504 brought the answer twice.
#[test]
fn a_gateway_timeout_after_telegram_took_the_message_is_not_sent_again() {
    let w = World::start();
    w.tg.fail_next("sendRichMessage", Fault::GatewayTimeoutAfter);
    let answer = w.ask("Что такое закон Ома?");
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert_eq!(w.tg.calls_of("sendRichMessage").len(), 1);
    assert!(w.bot.log().contains("it has most likely arrived"), "{}", w.bot.log());
    w.tg.fail_next("sendRichMessage", Fault::BadGatewayHtml);
    let answer = w.ask("А сила тока?");
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert_eq!(w.tg.calls_of("sendRichMessage").len(), 3);
}

/// An answer of about `messages` Telegram messages.
fn long_answer(messages: usize) -> String {
    (0..messages)
        // About 20 000 characters each: one rich message holds one part, not two.
        .map(|i| format!("Часть {i}. {}", "Слово за словом, ровно и спокойно. ".repeat(570)))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// A SIGTERM while the answer waits out flood control, then a restart: the transcript has
/// the exchange once. Before, the line was written before the answer went out, and again
/// when the restarted bot answered.
#[test]
fn the_transcript_has_an_exchange_once_after_a_stop_during_a_flood_wait() {
    let w = World::start_with("[bot]\ntranscript_dir = \"transcripts\"\n");
    w.tg.fail_next("sendRichMessage", Fault::TooManyRequests(20));
    let id = w.tg.push_text(IVAN, IVAN, "Что такое закон Ома?");
    w.tg.wait_until(WAIT, "the 429", |t| {
        t.calls_of("sendRichMessage").iter().any(|c| c.status == 429)
    });
    let World { tg, gc, env, mut bot } = w;
    assert!(bot.stop().success(), "{}", bot.log());
    let _bot = env.spawn(&[]);
    tg.wait_until(WAIT, "answered after the restart", |t| {
        t.replies_to(id).len() == 1 && t.confirmed_offset() > id
    });
    let path = env.path(&format!("transcripts/{IVAN}.jsonl"));
    let lines = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(lines.lines().count(), 1, "{lines}");
    drop(gc);
}

// --- 4. Errors that say what happened ---

/// `check` with a Telegram host name that does not resolve says so: nothing was sent.
/// Before, a failed name lookup was worded "sent, but no answer came back".
#[test]
fn check_says_a_name_that_does_not_resolve_was_not_sent() {
    let w = World::start();
    let mut env = crate::harness::BotEnv::new(&w.tg, &w.gc);
    env.set("TELEGRAM_API_URL", "http://gigabot-test.invalid");
    let output = env.run(&["check"]);
    let (out, _) = text(&output);
    let line = out.lines().find(|l| l.contains("telegram")).unwrap_or("").to_string();
    assert!(out.contains("✗ telegram"), "{out}");
    assert!(!out.contains("sent, but no answer"), "{out}");
    assert!(out.contains("lookup") || out.contains("resolve"), "{line}");
}

// --- 5. Fail closed when the state cannot be saved or read ---

/// Writes into `path` until the disk is full.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).expect("create the filler");
    let block = vec![0u8; 64 * 1024];
    while file.write_all(&block).and_then(|()| file.sync_all()).is_ok() {}
}

/// The state on a small disk of the bot's own (a tmpfs in a mount namespace), filled up
/// while it runs: an admin's /deny is confirmed but cannot be saved, so the bot takes no
/// more updates (the denied user's questions wait, GigaChat is not asked, whatever the
/// rate limit), and once there is room again it handles the /deny again, saves it, and
/// refuses the user. Before, the update was confirmed unsaved and the user was answered.
#[test]
fn a_full_disk_stops_the_loop_until_the_state_can_be_saved_and_no_decision_is_lost() {
    let tg = crate::fake_telegram::FakeTelegram::start();
    let gc = crate::fake_gigachat::FakeGigaChat::start();
    let mut env = crate::harness::BotEnv::new(&tg, &gc);
    std::fs::create_dir(env.path("state")).unwrap();
    env.config(&format!(
        "[telegram]\npoll_timeout_secs = 10\n[bot]\nstate_file = \"state/gigabot.db\"\nadmins = [{ANNA}]\nrequests_per_minute = 2\n"
    ));
    let state = env.path("state").display().to_string();
    let mount = format!("mount -t tmpfs -o size=2m tmpfs '{state}'");
    let bot = env.spawn_after(&["unshare", "-rm"], &mount, &[]);
    tg.wait_until(WAIT, "the bot polls", |t| t.polling());
    // The folder as the bot sees it, with its own mount.
    let inside = std::path::PathBuf::from(format!("/proc/{}/root{state}", bot.pid()));
    let warm_up = tg.push_text(IVAN, IVAN, "разминка");
    tg.wait_until(WAIT, "the warm-up", |t| t.confirmed_offset() > warm_up && t.polling());
    fill(&inside.join("filler"));
    let deny = tg.push_text(ANNA, ANNA, &format!("/deny {IVAN}"));
    bot.wait_log("cannot save the state", WAIT);
    assert_eq!(tg.replies_to(deny).len(), 1, "the admin was told");
    let questions: Vec<i64> =
        (0..4).map(|i| tg.push_text(IVAN, IVAN, &format!("вопрос {i}"))).collect();
    // Absence can only be seen by waiting: two seconds of a bot that takes nothing.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(gc.chat_requests().len(), 1, "GigaChat was asked while nothing could be saved");
    assert!(questions.iter().all(|&q| tg.replies_to(q).is_empty()), "{}", tg.dump());
    std::fs::remove_file(inside.join("filler")).unwrap();
    let last = *questions.last().unwrap();
    tg.wait_until(Duration::from_secs(40), "the questions handled", |t| {
        t.confirmed_offset() > last && t.polling()
    });
    assert_eq!(gc.chat_requests().len(), 1, "a denied user was answered");
    let refused = tg.replies_to(questions[0]);
    assert!(refused[0].text.contains("только для приглашённых"), "{}", tg.dump());
    // SQLite resolves /proc/PID/root to the host's root: read a copy of the bot's files.
    for name in ["gigabot.db", "gigabot.db-wal"] {
        std::fs::copy(inside.join(name), env.path(name)).unwrap();
    }
    let db = open_state(&env.path("gigabot.db"));
    let granted: Option<bool> = db
        .query_row("SELECT granted FROM access WHERE user_id = ?1", [IVAN], |r| r.get(0))
        .unwrap();
    assert_eq!(granted, Some(false));
    assert!(bot.log().contains("the state can be saved again"), "{}", bot.log());
}

// --- 5. A failed read ---

/// The `access` table cannot be read (another program dropped it): a user an admin denied
/// is not let in on a default, nothing is sent, and once the state reads again the user is
/// refused. Before, a failed read returned "no decision", which in an open bot means "allowed".
#[test]
fn a_state_that_cannot_be_read_lets_no_denied_user_in() {
    let w = World::start_with(&format!("[bot]\nadmins = [{ANNA}]\n"));
    let deny = w.tg.push_text(ANNA, ANNA, &format!("/deny {IVAN}"));
    w.tg.wait_until(WAIT, "denied", |t| t.confirmed_offset() > deny && t.polling());
    let db = open_state(&w.env.path("gigabot.db"));
    drop(db);
    let writer = rusqlite::Connection::open(w.env.path("gigabot.db")).unwrap();
    writer.busy_timeout(Duration::from_secs(5)).unwrap();
    let saved: (Option<bool>, bool) = writer
        .query_row("SELECT granted, announced FROM access WHERE user_id = ?1", [IVAN], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    writer.execute_batch("ALTER TABLE access RENAME TO access_away").unwrap();
    let asked = w.gc.chat_requests().len();
    let id = w.tg.push_text(IVAN, IVAN, "Можно вопрос?");
    w.bot.wait_log("state (access)", WAIT);
    std::thread::sleep(Duration::from_millis(500));
    assert!(w.tg.replies_to(id).is_empty(), "{}", w.tg.dump());
    assert_eq!(w.gc.chat_requests().len(), asked, "GigaChat was asked");
    writer.execute_batch("ALTER TABLE access_away RENAME TO access").unwrap();
    w.tg.wait_until(Duration::from_secs(20), "Ivan refused", |t| !t.replies_to(id).is_empty());
    assert!(w.tg.replies_to(id)[0].text.contains("только для приглашённых"), "{}", w.tg.dump());
    assert_eq!(w.gc.chat_requests().len(), asked);
    assert_eq!(saved, (Some(false), true));
}

// --- 8. The low ones ---

/// A group's chatter (not for the bot) costs no disk write per message: the WAL does not
/// grow with it. Before, each ignored message was its own synced transaction (8 KiB).
#[test]
fn a_group_s_chatter_costs_no_write_per_message() {
    let w = World::start();
    w.ask("разминка");
    let wal = w.env.path("gigabot.db-wal");
    let before = std::fs::metadata(&wal).unwrap().len();
    let chatter: Vec<_> =
        (0..40).map(|i| tg::group_text(tg::GROUP, ANNA, &format!("болтовня {i}"))).collect();
    push_all(&w, chatter);
    let grew = std::fs::metadata(&wal).unwrap().len().saturating_sub(before);
    assert!(grew <= 16 * 1024, "the WAL grew {grew} bytes for 40 ignored messages");
    // What the bot does answer is still saved at once.
    w.ask("вопрос");
    let saved = crate::harness::saved_update_id(&w.env.path("gigabot.db"));
    assert_eq!(saved, w.tg.next_update_id() - 1);
}

/// A second bot whose `state_file` is a symlink to the first one's database is refused: the
/// lock goes by the file, not by the name. Before, it ran on the same database.
#[test]
fn a_second_bot_through_a_symlinked_state_file_is_refused() {
    let w = World::start();
    w.ask("первый");
    let mut second = crate::harness::BotEnv::new(&w.tg, &w.gc);
    let link = second.path("link.db");
    std::os::unix::fs::symlink(w.env.path("gigabot.db"), &link).unwrap();
    second.config("[telegram]\npoll_timeout_secs = 10\n[bot]\nstate_file = \"link.db\"\n");
    let output = second.run(&[]);
    let (_, err) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("another gigabot is running"), "{err}");
    assert_eq!(w.ask("второй").len(), 1);
}

/// A state file of gigabytes that is not a database is recognised by its first bytes and
/// refused with its name, without reading it whole (here under a 512 MiB memory limit).
/// Before, the check for a JSON state read the whole file into memory first.
#[test]
fn a_huge_state_file_is_refused_without_reading_it_whole() {
    let w = World::start();
    let env = crate::harness::BotEnv::new(&w.tg, &w.gc);
    let path = env.path("gigabot.db");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(2 << 30).unwrap(); // sparse: 2 GiB of zeros, no disk used
    drop(file);
    let output = env.run_after("ulimit -v 524288", &[]);
    let (_, err) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains("gigabot.db") && err.contains("not a gigabot database"), "{err}");
}
