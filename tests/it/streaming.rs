//! Streaming: the user sees the answer grow, edits are paced, and every answer still
//! arrives exactly once, complete and rendered.

use std::time::{Duration, Instant};

use crate::core::{WAIT, World};
use crate::fake_gigachat::Reply;
use crate::fake_telegram::{Call, Fault, IVAN};

fn streaming() -> World {
    World::start_with("")
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

fn edits_of(calls: &[Call], message_id: i64) -> Vec<Instant> {
    calls
        .iter()
        .filter(|c| c.method == "editMessageText" && c.int("message_id") == Some(message_id))
        .map(|c| c.at)
        .collect()
}

#[test]
fn the_first_words_come_fast_edits_are_paced_and_the_final_text_is_complete() {
    let w = streaming();
    let text = answer(600);
    w.gc.push_reply(Reply::Text(text.clone()));
    w.gc.set_stream_speed(60.0, Some((25, Duration::from_millis(400))));
    let asked = Instant::now();
    let id = w.tg.push_text(IVAN, IVAN, "Что такое ток?");
    w.tg.wait_until(WAIT, "the first words", |t| !t.replies_to(id).is_empty());
    let first = asked.elapsed();
    assert!(
        first < Duration::from_millis(1500),
        "first text after {first:?}"
    );
    let shown_first = w.tg.replies_to(id)[0].text.clone();
    assert!(
        shown_first.len() < text.len(),
        "the first message is only the beginning"
    );

    let parts = w.answer_to(id);
    assert_eq!(
        parts,
        [visible(&text)],
        "the final message is the whole answer, rendered"
    );
    let message = &w.tg.replies_to(id)[0];
    assert_eq!(message.parse_mode.as_deref(), Some("HTML"));
    assert!(message.entities.iter().any(|e| e["type"] == "bold"));
    let edits = edits_of(&w.tg.calls(), message.message_id);
    assert!(
        edits.len() >= 2,
        "the message grew in steps: {} edits",
        edits.len()
    );
    for pair in edits.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_millis(950), "edits {gap:?} apart");
    }
    // No edit that changed nothing.
    let not_modified =
        w.tg.calls_of("editMessageText")
            .iter()
            .filter(|c| c.status == 400)
            .count();
    assert_eq!(not_modified, 0);
    // "typing…" came before the first words, and not after them.
    let calls = w.tg.calls();
    let first_send = calls
        .iter()
        .position(|c| c.method == "sendMessage")
        .unwrap();
    let typing: Vec<usize> = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| c.method == "sendChatAction")
        .map(|(i, _)| i)
        .collect();
    assert!(
        !typing.is_empty() && typing.iter().all(|&i| i < first_send),
        "{typing:?} vs {first_send}"
    );
}

#[test]
fn memory_limits_and_stats_work_the_same_when_streaming() {
    let w = streaming();
    w.ask("первый");
    let answer = w.ask("второй");
    assert_eq!(answer.len(), 1);
    assert!(answer[0].contains("[сообщений: 4]"), "{answer:?}");
}

#[test]
fn a_429_on_an_edit_is_not_waited_out_mid_stream() {
    let w = streaming();
    let text = answer(900);
    w.gc.push_reply(Reply::Text(text.clone()));
    w.gc.set_stream_speed(60.0, None);
    w.tg.fail_next("editMessageText", Fault::TooManyRequests(2));
    let id = w.tg.push_text(IVAN, IVAN, "Вопрос");
    let parts = w.answer_to(id);
    assert_eq!(parts, [visible(&text)]);
    let calls = w.tg.calls_of("editMessageText");
    let refused = calls
        .iter()
        .position(|c| c.status == 429)
        .expect("the 429 happened");
    let next = &calls[refused + 1];
    assert!(
        next.at - calls[refused].at >= Duration::from_millis(1950),
        "an edit came {:?} after the 429",
        next.at - calls[refused].at
    );
    assert_eq!(w.tg.replies_to(id).len(), 1, "exactly one message");
}

#[test]
fn a_stream_cut_in_the_middle_keeps_what_came_and_says_so() {
    let w = streaming();
    let text = answer(400);
    w.gc.push_reply(Reply::StreamCut(text.clone(), 20));
    w.gc.set_stream_speed(200.0, None);
    let id = w.tg.push_text(IVAN, IVAN, "Вопрос");
    let parts = w.answer_to(id);
    assert_eq!(parts.len(), 2, "{parts:?}");
    assert!(
        visible(&text).starts_with(&parts[0]),
        "the part that came: {:?}",
        parts[0]
    );
    assert!(parts[0].len() < text.len());
    assert!(parts[1].contains("оборвался"), "{}", parts[1]);
    // A broken answer is not remembered.
    w.ask("дальше");
    assert_eq!(w.gc.chat_requests().pop().unwrap().messages.len(), 2);
}

#[test]
fn a_blacklisted_stream_ends_with_the_refusal() {
    let w = streaming();
    w.gc.push_reply(Reply::Finish(
        "Не люблю менять тему разговора, но вот сейчас тот самый случай.".into(),
        "blacklist",
    ));
    let id = w.tg.push_text(IVAN, IVAN, "Запретная тема");
    let parts = w.answer_to(id);
    assert_eq!(parts.len(), 1, "{parts:?}");
    assert!(
        parts[0].contains("не отвечает на вопросы на эту тему"),
        "{parts:?}"
    );
}

#[test]
fn a_streamed_answer_past_4096_characters_goes_on_in_new_messages() {
    let w = streaming();
    let text = answer(9000);
    w.gc.push_reply(Reply::Text(text.clone()));
    w.gc.set_stream_speed(2000.0, None);
    let id = w.tg.push_text(IVAN, IVAN, "Длинно");
    let parts = w.answer_to(id);
    assert!(parts.len() >= 3, "{}", parts.len());
    for part in &parts {
        assert!(part.chars().count() <= 4096);
    }
    assert!(
        parts.join("\n\n") == visible(&text),
        "the parts add up to the answer"
    );
}

#[test]
fn garbage_instead_of_an_event_stream_is_an_unreadable_answer() {
    let w = streaming();
    w.gc.push_reply(Reply::Garbage("{\"oops\": ".into()));
    let answer = w.ask("Вопрос").join("\n");
    assert!(
        answer.contains("Не удалось получить корректный ответ"),
        "{answer}"
    );
}
