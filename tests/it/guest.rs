//! Guest mode (Bot API 10.0): `@SomeBot вопрос` in a chat the bot is not a member of, answered
//! once through answerGuestQuery, as its sender's question, without any chat's memory.

use std::time::Duration;

use serde_json::json;

use crate::core::{WAIT, World};
use crate::fake_gigachat::Reply;
use crate::fake_telegram::{self as tg, ANNA, IVAN, Kind};
use crate::harness::{self, BotEnv, sigkill};

/// A basic group the bot is not a member of.
const FRIENDS: i64 = -4242;

/// Waits until update `id` is handled; returns the guest answers so far.
fn handled(w: &World, id: i64) -> Vec<tg::GuestAnswer> {
    w.tg.wait_until(WAIT, "the guest message handled", |t| {
        t.confirmed_offset() > id && t.polling()
    });
    w.tg.guest_answers()
}

/// Nothing went into any chat by the ways a member would send.
fn nothing_sent(w: &World) {
    for method in [
        "sendMessage",
        "sendRichMessage",
        "sendChatAction",
        "sendMessageDraft",
        "sendRichMessageDraft",
    ] {
        assert!(w.tg.calls_of(method).is_empty(), "{method}: {}", w.tg.dump());
    }
}

#[test]
fn a_guest_question_is_answered_once_with_its_formula() {
    let w = World::start();
    w.gc.push_reply(Reply::Text("Энергия покоя: $E = mc^2$.".into()));
    let (id, query) = w.tg.push_guest(tg::chat(FRIENDS), ANNA, "@SomeBot что такое E=mc²?");
    let answers = handled(&w, id);
    assert_eq!(answers.len(), 1, "{}", w.tg.dump());
    let answer = &answers[0];
    assert_eq!((answer.guest_query_id.as_str(), answer.kind), (query.as_str(), Kind::Rich));
    assert_eq!(answer.inline_of("mathematical_expression")[0]["expression"], "E = mc^2");
    // The question reached GigaChat without the mention, alone with the style.
    let request = w.gc.chat_requests().pop().unwrap();
    assert_eq!(request.messages.len(), 2, "{:?}", request.messages);
    assert_eq!(request.last_user(), Some("что такое E=mc²?"));
    nothing_sent(&w);
}

#[test]
fn a_reply_is_context_and_a_long_answer_is_cut_with_a_link() {
    let w = World::start();
    let long = vec!["Абзац про ток. ".repeat(300); 10].join("\n\n"); // about 45 000 characters
    w.gc.push_reply(Reply::Text(long));
    let mut message = tg::guest_message(tg::chat(FRIENDS), ANNA, "@SomeBot это много?");
    message["reply_to_message"] = json!({
        "message_id": 7, "date": 1, "chat": tg::chat(FRIENDS), "from": {"id": IVAN, "is_bot": false, "first_name": "Иван"},
        "text": "Курс: 100 рублей",
    });
    let (id, _) = w.tg.push_guest_with(message);
    let answers = handled(&w, id);
    let prompt = w.gc.chat_requests().pop().unwrap().last_user().unwrap().to_string();
    assert!(prompt.contains("Курс: 100 рублей") && prompt.ends_with("это много?"), "{prompt}");
    assert_eq!(answers.len(), 1, "{}", w.tg.dump());
    assert!(answers[0].text.contains("Абзац про ток."), "{}", answers[0].text);
    assert!(
        answers[0].text.ends_with("t.me/SomeBot — и я пришлю его целиком.)"),
        "{}",
        answers[0].text
    );
    nothing_sent(&w);
}

#[test]
fn a_stranger_is_refused_and_the_rate_limit_holds_for_the_sender() {
    let w =
        World::start_with(&format!("[bot]\nallowed_users = [{IVAN}]\nrequests_per_minute = 1\n"));
    let (id, _) = w.tg.push_guest(tg::chat(FRIENDS), ANNA, "@SomeBot вопрос");
    let answers = handled(&w, id);
    assert!(answers[0].text.contains(&format!("Ваш id: {ANNA}")), "{}", answers[0].text);
    assert!(w.gc.chat_requests().is_empty(), "GigaChat asked for a stranger");
    // Ivan may ask, once a minute: the second question gets the limit's text.
    let (first, _) = w.tg.push_guest(tg::chat(FRIENDS), IVAN, "@SomeBot первый");
    handled(&w, first);
    let (second, _) = w.tg.push_guest(tg::chat(FRIENDS), IVAN, "@SomeBot второй");
    let answers = handled(&w, second);
    assert_eq!(answers.len(), 3);
    assert!(answers[2].text.starts_with("Слишком много вопросов"), "{}", answers[2].text);
    assert_eq!(w.gc.chat_requests().len(), 1);
    nothing_sent(&w);
}

#[test]
fn a_guest_chat_with_a_known_chats_id_leaves_that_chat_alone() {
    let w = World::start();
    w.ask("/mode fairy");
    w.ask("Первый вопрос в личке");
    let sent_before = w.tg.sent_to(IVAN).len();
    // Anna summons the bot in a chat that Telegram numbers like Ivan's private chat.
    let chat = json!({"id": IVAN, "type": "private", "first_name": "Анна"});
    let (id, _) = w.tg.push_guest(chat, ANNA, "@SomeBot вопрос Анны");
    let answers = handled(&w, id);
    assert_eq!(answers.len(), 1);
    let guest = w.gc.chat_requests().pop().unwrap();
    assert_eq!(guest.messages.len(), 2, "Ivan's memory went into Anna's question");
    assert!(!guest.system().unwrap_or("").contains("сказ"), "Ivan's style: {:?}", guest.system());
    assert_eq!(w.tg.sent_to(IVAN).len(), sent_before, "something went into Ivan's chat");
    // Ivan's chat goes on as before: its style, and memory without Anna's question.
    w.ask("Второй вопрос в личке");
    let ivan = w.gc.chat_requests().pop().unwrap();
    assert_eq!(ivan.messages.len(), 4, "{:?}", ivan.messages);
    assert!(ivan.messages.iter().all(|m| !m.content.contains("вопрос Анны")));
    assert_eq!(ivan.system(), w.gc.chat_requests()[0].system(), "Ivan's style changed");
    assert!(ivan.system().unwrap_or("").contains("сказоч"), "{:?}", ivan.system());
}

#[test]
fn an_expired_query_is_logged_and_counted_and_nothing_else_is_sent() {
    let w = World::start_with(&format!("[bot]\nadmins = [{IVAN}]\n"));
    w.tg.set_guest_query_lifetime(Duration::ZERO);
    let (id, _) = w.tg.push_guest(tg::chat(FRIENDS), ANNA, "@SomeBot вопрос");
    let answers = handled(&w, id);
    assert!(answers.is_empty());
    assert_eq!(w.tg.calls_of("answerGuestQuery").len(), 1, "tried again: {}", w.tg.dump());
    nothing_sent(&w);
    let log = w.bot.log();
    assert_eq!(log.matches("guest query").count(), 1, "{log}");
    let stats = w.ask("/stats").join("\n");
    assert!(stats.contains("guest query not answered"), "{stats}");
}

#[test]
fn a_kill_before_the_answer_then_a_restart_answers_once() {
    let w = World::start();
    let pid = w.bot.pid();
    w.tg.set_kill_hook("answerGuestQuery", 1, move || sigkill(pid));
    let (id, query) = w.tg.push_guest(tg::chat(FRIENDS), ANNA, "@SomeBot вопрос");
    w.tg.wait_until(WAIT, "the kill", |t| !t.kill_hook_pending());
    let World { tg, gc, env, bot } = w;
    drop(bot);
    let bot = env.spawn(&[]);
    let w = World { tg, gc, env, bot };
    let answers = handled(&w, id);
    assert_eq!(answers.len(), 1, "{}", w.tg.dump());
    assert_eq!(answers[0].guest_query_id, query);
}

#[test]
fn check_says_whether_guest_mode_is_on() {
    let w = World::start();
    let env = BotEnv::new(&w.tg, &w.gc);
    let (out, _) = harness::text(&env.run(&["check"]));
    assert!(out.contains("• гостевой режим: включён"), "{out}");
    w.tg.set_guest_mode(false);
    let (out, _) = harness::text(&env.run(&["check"]));
    assert!(out.contains("• гостевой режим: выключен — включите его у @BotFather"), "{out}");
}
