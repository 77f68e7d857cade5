//! Streaming on the HTML path (`rich_messages = false`; rich drafts are in `rich.rs`): in a
//! private chat "Thinking…" at once, then the answer grows in a native draft
//! (`sendMessageDraft`) and arrives as one message; in a group the chat shows "typing…" and
//! then the answer. Drafts never hold the loop up, and every answer arrives exactly once,
//! complete and rendered, also across a kill.

use std::time::Duration;

use serde_json::json;

use crate::core::{HTML, WAIT, World};
use crate::fake_gigachat::Reply;
use crate::fake_telegram::{self as tg, ANNA, FakeTelegram, Fault, GROUP, IVAN};
use crate::harness::sigkill;

/// GigaChat's pace in the fake, in characters per second (about what GigaChat streams).
const CHARS_PER_SEC: f64 = 240.0;

fn streaming(config: &str) -> World {
    World::start_with(&format!("{HTML}{config}"))
}

/// A Markdown answer of about `chars` characters, in paragraphs of four sentences.
fn answer(chars: usize) -> String {
    let sentence = "Электрический ток — это **упорядоченное** движение заряженных частиц.";
    let paragraph = [sentence; 4].join(" ");
    let count = chars / paragraph.chars().count() + 1;
    vec![paragraph; count].join("\n\n")
}

/// What the user should finally see for `markdown`: the bold markers gone.
fn visible(markdown: &str) -> String {
    markdown.replace("**", "")
}

fn count(tg: &FakeTelegram, method: &str) -> usize {
    tg.calls_of(method).len()
}

#[test]
fn drafts_grow_then_the_whole_answer_arrives_as_one_message() {
    let w = streaming("[bot]\ndraft_interval_ms = 700\n");
    let text = answer(1200); // about 5 s at GigaChat's pace, after 1.5 s of thinking
    w.gc.push_reply(Reply::Text(text.clone()));
    w.gc.set_stream_speed(CHARS_PER_SEC, None);
    w.gc.set_first_event_delay(Duration::from_millis(1500));
    let id = w.tg.push_text(IVAN, IVAN, "Что такое ток?");
    let parts = w.answer_to(id);
    assert_eq!(parts, [visible(&text)], "one message, the whole answer, rendered");
    let message = &w.tg.replies_to(id)[0];
    assert_eq!(message.parse_mode.as_deref(), Some("HTML"));
    assert!(message.entities.iter().any(|e| e["type"] == "bold"));

    // "Thinking…" (an empty draft) at once, with the Stop button like every draft, once in
    // 1.5 s of thinking (it is repeated every 4 s), instead of "typing…".
    let (thinking, drafts): (Vec<_>, Vec<_>) =
        w.tg.drafts_to(IVAN).into_iter().partition(|d| d.thinking);
    let asked = w.gc.chat_requests()[0].at;
    assert_eq!(thinking.len(), 1, "{thinking:#?}");
    let thinking = &thinking[0];
    assert!(thinking.text.is_empty() && thinking.at < asked + Duration::from_millis(500));
    assert!(thinking.at < drafts[0].at && count(&w.tg, "sendChatAction") == 0);
    assert!(drafts.iter().all(|d| d.can_stop && d.draft_id == thinking.draft_id));
    assert!(drafts.len() >= 3, "the answer grew in drafts: {drafts:#?}");
    let whole = visible(&text);
    for (i, draft) in drafts.iter().enumerate() {
        assert_eq!(draft.draft_id, drafts[0].draft_id, "one draft, animated");
        // A draft is the answer's beginning (an unclosed "**" shows as typed).
        let shown = draft.text.replace('*', "");
        assert!(whole.starts_with(shown.trim_end()), "draft {i}: {shown:?}");
        if i > 0 {
            assert!(draft.text.len() > drafts[i - 1].text.len(), "draft {i} did not grow");
            let gap = draft.at - drafts[i - 1].at;
            assert!(gap >= Duration::from_millis(600), "drafts {gap:?} apart, set 700 ms");
        }
    }
    let sends = w.tg.calls_of("sendMessage");
    let answered_at = sends.last().expect("the answer").at;
    assert!(
        answered_at - drafts[0].at >= Duration::from_secs(2),
        "the first draft came long before the answer"
    );
    // The first draft as soon as the words come.
    assert!(drafts[0].at - asked >= Duration::from_millis(1400), "a draft before the words");
    assert!(drafts[0].at - asked < Duration::from_millis(3000), "the first draft came late");
    // No live view to edit; the draft is gone.
    assert_eq!(count(&w.tg, "editMessageText"), 0);
    assert_eq!(w.tg.sent_to(IVAN).len(), 1);
    assert_eq!(w.tg.draft_showing(IVAN), None);
}

#[test]
fn a_draft_that_is_not_due_is_skipped_and_the_answer_is_not_held_back() {
    let w = streaming("[bot]\ndraft_interval_ms = 20000\n");
    let text = answer(480); // about 2 s
    w.gc.push_reply(Reply::Text(text.clone()));
    w.gc.set_stream_speed(CHARS_PER_SEC, None);
    let id = w.tg.push_text(IVAN, IVAN, "Вопрос");
    assert_eq!(w.answer_to(id), [visible(&text)]);
    let asked = w.gc.chat_requests()[0].at;
    let answered = w.tg.calls_of("sendMessage")[0].at;
    let stream = Duration::from_secs_f64(text.chars().count() as f64 / CHARS_PER_SEC);
    assert!(
        answered - asked < stream + Duration::from_millis(1500),
        "the answer came {:?} after the question for a {stream:?} stream",
        answered - asked
    );
    let drafts = w.tg.drafts_to(IVAN);
    assert_eq!(drafts.len(), 2, "Thinking…, then only the first words were due: {drafts:#?}");
    assert!(drafts[0].thinking && !drafts[1].thinking);
}

#[test]
fn a_429_on_a_draft_stops_drafts_until_retry_after_but_not_the_answer() {
    let w = streaming("[bot]\ndraft_interval_ms = 200\n");
    // 1 s streams, and Telegram asks for 5 s of quiet at the first draft.
    let text = answer(240);
    w.gc.set_responder(move |_| Reply::Text(text.clone()));
    w.gc.set_stream_speed(CHARS_PER_SEC, None);
    // The first draft of the answer meets the 429 (after "Thinking…").
    w.tg.fail_next("sendMessageDraft", Fault::Delay(Duration::ZERO));
    w.tg.fail_next("sendMessageDraft", Fault::TooManyRequests(5));
    let whole = visible(&answer(240));
    let id = w.tg.push_text(IVAN, IVAN, "Вопрос");
    assert_eq!(w.answer_to(id), std::slice::from_ref(&whole));
    let refused = w.tg.calls_of("sendMessageDraft")[1].clone();
    assert_eq!(refused.status, 429);
    let answered = w.tg.calls_of("sendMessage")[0].at;
    assert!(
        answered - refused.at < Duration::from_millis(3500),
        "the answer waited {:?} after the 429 with retry_after 5",
        answered - refused.at
    );
    // The next question in the same chat gets its answer, and no draft before the pause ends.
    assert_eq!(w.ask("Ещё"), std::slice::from_ref(&whole));
    let quiet = refused.at + Duration::from_millis(4900);
    let early: Vec<_> = w.tg.calls_of("sendMessageDraft")[2..]
        .iter()
        .filter(|c| c.at < quiet)
        .map(|c| c.at - refused.at)
        .collect();
    assert!(early.is_empty(), "drafts {early:?} after a 429 with retry_after 3");
    // Once it is over, drafts come again.
    w.tg.wait_until(WAIT, "retry_after passes", |_| refused.at.elapsed() > Duration::from_secs(5));
    assert_eq!(w.ask("И ещё"), [whole]);
    assert!(!w.tg.drafts_to(IVAN).is_empty(), "{}", w.tg.dump());
}

#[test]
fn a_draft_telegram_refuses_does_not_lose_the_answer() {
    let w = streaming("[bot]\ndraft_interval_ms = 100\n");
    let text = answer(600);
    w.gc.set_stream_speed(CHARS_PER_SEC * 2.0, None);
    // Refused for good (after "Thinking…"): no more drafts for this answer, the answer still
    // comes.
    w.tg.fail_next("sendMessageDraft", Fault::Delay(Duration::ZERO));
    w.tg.fail_next(
        "sendMessageDraft",
        Fault::Status(
            400,
            json!({"ok": false, "error_code": 400, "description": "Bad Request: TEXTDRAFT_PEER_INVALID"}),
        ),
    );
    w.gc.push_reply(Reply::Text(text.clone()));
    assert_eq!(w.ask("Первый"), [visible(&text)]);
    assert_eq!(count(&w.tg, "sendMessageDraft"), 2);
    // HTML refused (after "Thinking…", which has none): the drafts go on as plain text, the
    // answer is still HTML.
    w.tg.fail_next("sendMessageDraft", Fault::Delay(Duration::ZERO));
    w.tg.fail_next(
        "sendMessageDraft",
        Fault::Status(
            400,
            json!({"ok": false, "error_code": 400, "description": "Bad Request: can't parse entities: Unsupported start tag \"x\" at byte offset 0"}),
        ),
    );
    w.gc.push_reply(Reply::Text(text.clone()));
    assert_eq!(w.ask("Второй"), [visible(&text)]);
    let drafts = w.tg.drafts_to(IVAN);
    assert!(drafts.len() >= 2, "{drafts:#?}");
    assert!(drafts.iter().all(|d| d.parse_mode.is_none()));
    let last = w.tg.sent_to(IVAN).pop().unwrap();
    assert_eq!(last.parse_mode.as_deref(), Some("HTML"));
}

#[test]
fn a_kill_mid_stream_then_a_restart_leaves_exactly_one_answer() {
    let w = streaming("[bot]\ndraft_interval_ms = 100\n");
    let text = answer(1200);
    w.gc.set_responder(move |_| Reply::Text(text.clone()));
    w.gc.set_stream_speed(CHARS_PER_SEC * 2.0, None);
    let pid = w.bot.pid();
    w.tg.set_kill_hook("sendMessageDraft", 3, move || sigkill(pid));
    let World { tg, gc, env, bot } = w;
    let id = tg.push_text(IVAN, IVAN, "Что такое ток?");
    tg.wait_until(WAIT, "the kill", |t| !t.kill_hook_pending());
    drop(bot);
    assert!(tg.sent_to(IVAN).is_empty(), "a half answer stayed in the chat");

    let _bot = env.spawn(&[]);
    tg.wait_until(WAIT, "the answer after the restart", |t| {
        t.confirmed_offset() > id && t.polling()
    });
    let whole = visible(&answer(1200));
    let replies = tg.replies_to(id);
    assert_eq!(replies.len(), 1, "{}", tg.dump());
    assert_eq!(replies[0].text, whole);
    assert_eq!(tg.sent_to(IVAN).len(), 1, "one message in the chat");
    // Asked once more after the restart (a 429 first, while the killed bot's stream was
    // still going, is asked again after a pause).
    let answered = gc.chat_requests().iter().filter(|r| r.status == 200).count();
    assert_eq!(answered, 1, "{}", gc.dump());
}

#[test]
fn an_answer_of_several_messages_cut_by_a_kill_is_finished_once_after_the_restart() {
    let w = streaming("");
    let text = answer(9000); // three messages
    w.gc.push_reply(Reply::Text(text.clone()));
    let pid = w.bot.pid();
    // The second message of the answer never arrives: the bot dies while sending it.
    w.tg.set_kill_hook("sendMessage", 2, move || sigkill(pid));
    let World { tg, gc, env, bot } = w;
    let id = tg.push_text(IVAN, IVAN, "Расскажи подробно");
    tg.wait_until(WAIT, "the kill", |t| !t.kill_hook_pending());
    drop(bot);
    assert_eq!(tg.sent_to(IVAN).len(), 1, "the first message went out");

    let bot = env.spawn(&[]);
    tg.wait_until(WAIT, "the rest of the answer", |t| {
        t.sent_to(IVAN).len() >= 3 && t.confirmed_offset() > id && t.polling()
    });
    let parts: Vec<String> = tg.sent_to(IVAN).into_iter().map(|m| m.text).collect();
    assert_eq!(parts.len(), 3, "{parts:#?}\n{}", bot.log());
    assert_eq!(parts.join("\n\n"), visible(&text), "each part once, in order");
    assert_eq!(tg.replies_to(id).len(), 1, "the first part replies to the question");
    assert_eq!(gc.chat_requests().len(), 1, "GigaChat was not asked (and paid) again");
    // The update counts as handled: a later question is answered, the old one is not.
    let next = tg.push_text(IVAN, IVAN, "Спасибо");
    tg.wait_until(WAIT, "answered", |t| t.replies_to(next).len() == 1);
    assert_eq!(tg.sent_to(IVAN).len(), 4);
}

#[test]
fn a_group_sees_typing_then_the_whole_answer_and_no_draft() {
    let w = streaming("");
    let text = answer(400);
    w.gc.push_reply(Reply::Delay(Duration::from_millis(1500), Box::new(Reply::Text(text.clone()))));
    let id = w.tg.push(tg::group_text(GROUP, ANNA, "@SomeBot, что такое ток?"));
    // The fake keeps the message as it answers, and the call once its answer is out.
    w.tg.wait_until(WAIT, "answered", |t| {
        t.replies_to(id).len() == 1 && !t.calls_of("sendMessage").is_empty()
    });
    let sent = w.tg.sent_to(GROUP);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].text, visible(&text));
    assert_eq!(count(&w.tg, "sendMessageDraft"), 0, "drafts are for private chats");
    assert_eq!(count(&w.tg, "editMessageText"), 0);
    let typing = w.tg.calls_of("sendChatAction");
    let answered = w.tg.calls_of("sendMessage")[0].at;
    assert!(
        !typing.is_empty()
            && typing.iter().all(|c| c.at < answered && c.int("chat_id") == Some(GROUP)),
        "{}",
        w.tg.dump()
    );
}

#[test]
fn streamed_answers_reuse_the_connection_to_gigachat() {
    let w = streaming("[bot]\nrequests_per_minute = 0\n");
    // Many messages to one chat within seconds; Telegram's pacing is not what this checks.
    w.tg.set_flood_limits(None);
    w.ask("разминка");
    let before = w.gc.connections();
    for i in 0..5 {
        w.ask(&format!("вопрос {i}"));
    }
    assert_eq!(w.gc.chat_requests().len(), 6);
    assert!(w.gc.chat_requests().iter().all(|r| r.stream));
    assert_eq!(w.gc.connections(), before, "a new connection for a streamed answer");
}

#[test]
fn a_stream_over_a_mebibyte_is_a_bad_answer_and_nothing_of_it_is_sent() {
    let w = streaming("");
    w.gc.set_stream_piece_chars(4096);
    w.gc.push_reply(Reply::Text("x".repeat(1_100_000)));
    let answer = w.ask("Бесконечный ответ");
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert!(answer[0].contains("Не удалось получить корректный ответ"), "{answer:?}");
    assert!(w.bot.log().contains("longer than 1 MiB"), "{}", w.bot.log());
    // Not remembered; the bot goes on.
    w.gc.set_stream_piece_chars(32);
    w.ask("Дальше");
    assert_eq!(w.gc.chat_requests().pop().unwrap().messages.len(), 2);
}

#[test]
fn memory_limits_and_stats_work_the_same_when_streaming() {
    let w = streaming("");
    w.ask("первый");
    let answer = w.ask("второй");
    assert_eq!(answer.len(), 1);
    assert!(answer[0].contains("[сообщений: 4]"), "{answer:?}");
}

#[test]
fn a_stream_cut_in_the_middle_keeps_what_the_draft_showed_and_says_so() {
    let w = streaming("");
    let text = answer(400);
    w.gc.push_reply(Reply::StreamCut(text.clone(), 5));
    w.gc.set_stream_speed(800.0, None);
    let id = w.tg.push_text(IVAN, IVAN, "Вопрос");
    let parts = w.answer_to(id);
    assert_eq!(parts.len(), 2, "{parts:?}");
    assert!(
        visible(&text).starts_with(&parts[0]) && !parts[0].is_empty(),
        "the part that came: {:?}",
        parts[0]
    );
    assert!(parts[0].chars().count() < visible(&text).chars().count());
    assert!(parts[1].contains("оборвался"), "{}", parts[1]);
    // A broken answer is not remembered.
    w.ask("дальше");
    assert_eq!(w.gc.chat_requests().pop().unwrap().messages.len(), 2);
}

#[test]
fn a_blacklisted_stream_ends_with_the_refusal() {
    let w = streaming("");
    w.gc.push_reply(Reply::Finish(
        "Не люблю менять тему разговора, но вот сейчас тот самый случай.".into(),
        "blacklist",
    ));
    let id = w.tg.push_text(IVAN, IVAN, "Запретная тема");
    let parts = w.answer_to(id);
    assert_eq!(parts.len(), 1, "{parts:?}");
    assert!(parts[0].contains("не отвечает на вопросы на эту тему"), "{parts:?}");
}

#[test]
fn a_streamed_answer_past_4096_characters_goes_out_in_several_messages() {
    let w = streaming("");
    let text = answer(9000);
    w.gc.push_reply(Reply::Text(text.clone()));
    w.gc.set_stream_speed(8000.0, None);
    let id = w.tg.push_text(IVAN, IVAN, "Длинно");
    let parts = w.answer_to(id);
    assert!(parts.len() >= 3, "{}", parts.len());
    for part in &parts {
        assert!(part.chars().count() <= 4096);
    }
    assert!(parts.join("\n\n") == visible(&text), "the parts add up to the answer");
    for draft in w.tg.drafts_to(IVAN) {
        assert!(draft.text.chars().count() <= 4096);
    }
}

#[test]
fn garbage_instead_of_an_event_stream_is_an_unreadable_answer() {
    let w = streaming("");
    w.gc.push_reply(Reply::Garbage("{\"oops\": ".into()));
    let answer = w.ask("Вопрос").join("\n");
    assert!(answer.contains("Не удалось получить корректный ответ"), "{answer}");
}

/// Telegram's flood control answers a long answer's later parts with 429: each is sent again
/// after `retry_after`, not before (ignored) and not over and over (a hot loop), and every
/// part arrives once.
#[test]
fn a_long_answer_under_flood_control_waits_out_retry_after_once_per_part() {
    let w = streaming("");
    w.tg.set_flood_limits(Some(tg::FloodLimits { private_burst: 1, group_per_minute: 20 }));
    let text = answer(9000); // three messages
    w.gc.push_reply(Reply::Text(text.clone()));
    let id = w.tg.push_text(IVAN, IVAN, "Длинно");
    let parts = w.answer_to(id);
    assert_eq!(parts.join("\n\n"), visible(&text), "every part once");
    let sends = w.tg.calls_of("sendMessage");
    let refused: Vec<usize> = (0..sends.len()).filter(|&i| sends[i].status == 429).collect();
    assert!(!refused.is_empty(), "the fake paced nothing: {}", w.tg.dump());
    assert!(refused.len() <= 2 * (parts.len() - 1), "retried hot: {} × 429", refused.len());
    for &i in &refused {
        let wait = sends[i].response["parameters"]["retry_after"].as_u64().unwrap();
        let next = &sends[i + 1];
        let gap = next.at - sends[i].at;
        assert!(
            gap >= Duration::from_millis(wait * 1000 - 100),
            "sent again {gap:?} after a 429 with retry_after {wait}"
        );
    }
}
