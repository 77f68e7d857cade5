//! Rich messages, as configured by default (`telegram.rich_messages = true`, Bot API 10.1):
//! formulas, tables, headings, task lists and code reach the user as rich blocks; "Thinking…"
//! before GigaChat's first word; the Stop button stops GigaChat; a refused or unknown rich
//! message goes the HTML way, once. Everything through the strict fakes.

use std::time::{Duration, Instant};

use crate::core::{WAIT, World};
use crate::fake_gigachat::Reply;
use crate::fake_telegram::{self as tg, ANNA, Fault, GROUP, IVAN, Kind};
use crate::harness::sigkill;

/// An answer as GigaChat writes one for «научный сотрудник».
const SCIENTIST: &str = "# Закон Ома

Сила тока: $I = U/R$, а мощность — \\(P = UI\\).

$$P = I^2 R$$

| Величина | Обозначение | Единица |
|---|:-:|--:|
| Ток | I | А |
| Напряжение | U | В |

- Цепь
  - последовательная
  - параллельная

Задачи:

- [x] измерить ток
- [ ] записать результат

```python
print(220 / 50)
```
";

/// A Markdown answer of about `chars` characters, in paragraphs.
fn paragraphs(chars: usize) -> String {
    let paragraph =
        "Электрический ток — это **упорядоченное** движение заряженных частиц. ".repeat(5);
    vec![paragraph.trim_end(); chars / paragraph.chars().count() + 1].join("\n\n")
}

#[test]
fn formulas_tables_headings_lists_and_code_arrive_as_rich_blocks() {
    let w = World::start();
    w.gc.push_reply(Reply::Text(SCIENTIST.into()));
    let id = w.tg.push_text(IVAN, IVAN, "Расскажи про закон Ома");
    w.answer_to(id);
    let sent = w.tg.replies_to(id);
    assert_eq!(sent.len(), 1, "{}", w.tg.dump());
    let m = &sent[0];
    assert_eq!(m.kind, Kind::Rich, "{m:?}");
    assert_eq!(m.blocks_of("heading")[0]["size"], 1);
    let inline: Vec<_> = m.inline_of("mathematical_expression");
    let inline: Vec<_> = inline.iter().map(|f| f["expression"].as_str().unwrap()).collect();
    assert_eq!(inline, ["I = U/R", "P = UI"]);
    assert_eq!(m.blocks_of("mathematical_expression")[0]["expression"], "P = I^2 R");
    let table = &m.blocks_of("table")[0];
    assert_eq!(tg::tg_rich::table_columns(table), 3);
    assert!(m.text.contains("Ток | I | А"), "{}", m.text);
    let lists = m.blocks_of("list");
    assert!(lists.len() >= 3, "a list, its nested list, a task list: {lists:#?}");
    let tasks = lists.iter().find(|l| l["items"][0]["has_checkbox"] == true).expect("a task list");
    assert_eq!(
        (&tasks["items"][0]["is_checked"], tasks["items"][1].get("is_checked")),
        (&true.into(), None)
    );
    assert_eq!(m.blocks_of("pre")[0]["language"], "python");
    assert!(!m.text.contains('$') && !m.text.contains("\\("), "LaTeX shown raw: {}", m.text);
}

#[test]
fn a_long_answer_arrives_whole_as_several_rich_messages_in_order() {
    let w = World::start();
    let text = paragraphs(40_000);
    w.gc.push_reply(Reply::Text(text.clone()));
    let id = w.tg.push_text(IVAN, IVAN, "Подробно");
    w.answer_to(id);
    let sent = w.tg.sent_to(IVAN);
    assert!(sent.len() >= 2 && sent.iter().all(|m| m.kind == Kind::Rich), "{}", w.tg.dump());
    let read: Vec<&str> = sent.iter().flat_map(|m| m.text.lines()).collect();
    let want: Vec<String> = text.split("\n\n").map(|p| p.replace("**", "")).collect();
    assert_eq!(read, want, "every paragraph once, in order");
}

#[test]
fn a_table_of_25_columns_is_readable_and_a_model_cannot_send_media() {
    let w = World::start();
    let head: Vec<String> = (1..=25).map(|i| format!("к{i}")).collect();
    let table =
        format!("| {} |\n|{}\n| {} |", head.join(" | "), "---|".repeat(25), head.join(" | "));
    let answer = format!(
        "Таблица:\n\n{table}\n\nКартинка ![x](http://evil.example/a.png) и <img src=\"http://evil.example/b.png\">.\n\nКонец."
    );
    w.gc.push_reply(Reply::Text(answer));
    let id = w.tg.push_text(IVAN, IVAN, "Таблица");
    w.answer_to(id);
    let sent = w.tg.sent_to(IVAN);
    let all: String = sent.iter().map(|m| m.text.as_str()).collect::<Vec<_>>().join("\n");
    assert!(all.contains(&head.join(" | ")), "the 25 columns, readable: {all}");
    assert!(all.starts_with("Таблица:") && all.ends_with("Конец."), "{all}");
    assert!(
        all.contains("<img src=\"http://evil.example/b.png\">"),
        "raw HTML shown as text: {all}"
    );
    assert!(w.tg.rich_media().is_empty(), "a media block was sent: {:?}", w.tg.rich_media());
    assert!(sent.iter().all(|m| m.blocks_of("image").is_empty() && !m.html.contains("<img")));
}

#[test]
fn a_refused_rich_message_goes_as_html_once() {
    let w = World::start();
    w.tg.fail_next("sendRichMessage", Fault::RichRejected);
    w.gc.push_reply(Reply::Text("Ответ: $x^2$ и **жирный**.".into()));
    let id = w.tg.push_text(IVAN, IVAN, "Вопрос");
    w.answer_to(id);
    let sent = w.tg.replies_to(id);
    assert_eq!(sent.len(), 1, "{}", w.tg.dump());
    assert_eq!((sent[0].kind, sent[0].text.as_str()), (Kind::Html, "Ответ: $x^2$ и жирный."));
    // Only that message: the next answer is rich again.
    w.gc.push_reply(Reply::Text("Снова $y$.".into()));
    let id = w.tg.push_text(IVAN, IVAN, "Ещё");
    w.answer_to(id);
    assert_eq!(w.tg.replies_to(id)[0].kind, Kind::Rich);
}

#[test]
fn a_server_without_rich_messages_gets_html_from_then_on_with_one_log_line() {
    let w = World::start();
    w.tg.set_old_server(true);
    // A 404 there is not a wrong token: the bot goes on answering.
    for question in ["Первый", "Второй", "Третий"] {
        w.gc.push_reply(Reply::Text(format!("# {question}\n\nОтвет $x$.")));
        let id = w.tg.push_text(IVAN, IVAN, question);
        w.answer_to(id);
        let sent = w.tg.replies_to(id);
        assert_eq!(sent.len(), 1, "{}", w.tg.dump());
        assert_eq!(sent[0].kind, Kind::Html);
        assert!(sent[0].text.starts_with(question), "{}", sent[0].text);
    }
    let log = w.bot.log();
    assert_eq!(log.matches("from now on answers go as HTML").count(), 1, "{log}");
    assert_eq!(w.tg.calls_of("sendRichMessage").len(), 1, "asked once, not per answer");
}

#[test]
fn thinking_shows_before_gigachats_first_word_and_drafts_carry_stop() {
    let w = World::start_with("[bot]\ndraft_interval_ms = 300\n");
    w.gc.set_first_event_delay(Duration::from_millis(1500));
    w.gc.set_stream_speed(400.0, None);
    w.gc.push_reply(Reply::Text(paragraphs(800)));
    let id = w.tg.push_text(IVAN, IVAN, "Вопрос");
    w.answer_to(id);
    let asked = w.gc.chat_requests()[0].at;
    let drafts = w.tg.drafts_to(IVAN);
    assert!(drafts.len() >= 3, "{drafts:#?}");
    let (thinking, rest) = drafts.split_first().unwrap();
    assert!(thinking.thinking && thinking.kind == Kind::Rich, "{thinking:?}");
    assert!(thinking.at < asked + Duration::from_millis(500), "Thinking… came late");
    assert!(rest.iter().all(|d| d.kind == Kind::Rich
        && !d.thinking
        && d.at > asked + Duration::from_millis(1400)));
    assert!(drafts.iter().all(|d| d.can_stop), "every draft shows Stop");
    assert_eq!(w.tg.replies_to(id)[0].kind, Kind::Rich);
}

#[test]
fn stop_ends_the_answer_within_a_second_closes_the_stream_and_is_remembered() {
    let w = World::start_with("[bot]\ndraft_interval_ms = 200\n");
    w.ask("разминка"); // an update handled before: the loop's offset is the question's id
    w.gc.set_stream_speed(200.0, None); // 8 000 characters: 40 s if nobody stopped it
    w.gc.push_reply(Reply::Text(paragraphs(8000)));
    let id = w.tg.push_text(IVAN, IVAN, "Расскажи длинно");
    w.tg.wait_until(WAIT, "a few drafts", |t| t.drafts_to(IVAN).len() >= 4);
    let pressed = Instant::now();
    w.tg.press_stop_on_showing_draft(IVAN).expect("Stop is shown");
    w.tg.wait_until(WAIT, "the answer", |t| !t.replies_to(id).is_empty());
    assert!(pressed.elapsed() < Duration::from_millis(1500), "{:?} after Stop", pressed.elapsed());
    let sent = w.tg.replies_to(id);
    assert_eq!(sent.len(), 1, "{}", w.tg.dump());
    let text = &sent[0].text;
    assert!(text.ends_with("(Остановлено по вашей просьбе.)") && text.len() < 6000, "{text}");
    w.gc.wait_until(WAIT, "the stream closed", |g| g.in_flight() == 0);
    assert_eq!(w.gc.chat_requests()[1].status, 0, "GigaChat streamed to the end");
    // At most one look a second, each answered at once (never held by Telegram as an empty
    // poll would be) and confirming nothing unhandled: the question's update is still there.
    let peeks = w.tg.peeks();
    let apart = |p: &[tg::Poll]| p[1].at - p[0].at >= Duration::from_millis(900);
    assert!(!peeks.is_empty() && peeks.windows(2).all(apart), "{peeks:#?}");
    let quick = |p: &tg::Poll| p.answered - p.at < Duration::from_millis(500);
    assert!(peeks.iter().all(|p| quick(p) && p.offset <= Some(id)), "{peeks:#?}");
    // Memory keeps what the user saw, with the note.
    w.gc.push_reply(Reply::Text("Хорошо.".into()));
    w.ask("Продолжи");
    let remembered = &w.gc.chat_requests()[2].messages;
    let last = &remembered[remembered.len() - 2];
    assert_eq!(last.role, "assistant");
    assert!(last.content.ends_with("_(Остановлено по вашей просьбе.)_"), "{}", last.content);
}

#[test]
fn a_stop_after_the_answer_does_nothing() {
    let w = World::start_with("[bot]\ndraft_interval_ms = 100\n");
    w.gc.set_stream_speed(400.0, None);
    w.gc.push_reply(Reply::Text(paragraphs(600)));
    let id = w.tg.push_text(IVAN, IVAN, "Вопрос");
    w.tg.wait_until(WAIT, "a draft", |t| t.drafts_to(IVAN).len() >= 2);
    let draft_id = w.tg.drafts_to(IVAN)[0].draft_id;
    w.answer_to(id);
    assert!(w.tg.press_stop(IVAN, draft_id).is_err(), "no Stop button once the answer is out");
    let before = w.tg.sent_to(IVAN).len();
    w.gc.push_reply(Reply::Text("Второй ответ.".into()));
    assert_eq!(w.ask("Ещё"), ["Второй ответ."]);
    assert_eq!(w.tg.sent_to(IVAN).len(), before + 1);
}

#[test]
fn a_group_gets_typing_and_one_rich_message() {
    let w = World::start();
    w.gc.push_reply(Reply::Text(SCIENTIST.into()));
    let id = w.tg.push(tg::group_text(GROUP, ANNA, "@SomeBot, что такое закон Ома?"));
    w.tg.wait_until(WAIT, "answered", |t| t.replies_to(id).len() == 1);
    let sent = w.tg.sent_to(GROUP);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].kind, Kind::Rich);
    assert!(
        w.tg.calls_of("sendRichMessageDraft").is_empty()
            && w.tg.calls_of("sendMessageDraft").is_empty()
    );
    assert!(!w.tg.calls_of("sendChatAction").is_empty());
}

#[test]
fn a_kill_during_a_rich_draft_then_a_restart_leaves_one_answer() {
    let w = World::start_with("[bot]\ndraft_interval_ms = 100\n");
    let text = paragraphs(1500);
    let answer = text.clone();
    w.gc.set_responder(move |_| Reply::Text(answer.clone()));
    w.gc.set_stream_speed(600.0, None);
    let pid = w.bot.pid();
    w.tg.set_kill_hook("sendRichMessageDraft", 3, move || sigkill(pid));
    let World { tg, gc, env, bot } = w;
    let id = tg.push_text(IVAN, IVAN, "Что такое ток?");
    tg.wait_until(WAIT, "the kill", |t| !t.kill_hook_pending());
    drop(bot);
    assert!(tg.sent_to(IVAN).is_empty(), "a half answer stayed in the chat");
    let _bot = env.spawn(&[]);
    tg.wait_until(WAIT, "the answer after the restart", |t| {
        t.confirmed_offset() > id && t.polling()
    });
    let sent = tg.sent_to(IVAN);
    assert_eq!(sent.len(), 1, "{}", tg.dump());
    assert_eq!(sent[0].kind, Kind::Rich);
    assert_eq!(sent[0].text, text.replace("**", "").replace("\n\n", "\n"));
    drop(gc);
}
