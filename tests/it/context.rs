//! Replies and quotes as context (issue 15, item 1): the text a question replies to, or the
//! part of it the user quoted, goes to GigaChat before the question, once, at most
//! `bot.history_chars` characters; memory keeps the question as typed.
//!
//! The context and the question are one user message (`«context»`, a blank line, the
//! question), so the roles GigaChat gets still alternate; `quoted` reads the context back.

use crate::core::{WAIT, World};
use crate::fake_gigachat::{ChatRequest, Reply};
use crate::fake_telegram::{self as tg, ANNA, CHANNEL, GROUP, IVAN};

/// Waits until update `id` is handled, whether or not the bot answered it.
fn handled(w: &World, id: i64) {
    w.tg.wait_until(WAIT, "the update is handled", |t| t.confirmed_offset() > id && t.polling());
}

/// The message id update `id` got in its chat.
fn message_id(w: &World, id: i64) -> i64 {
    w.tg.message_of(id).expect("a message update").1
}

/// The id of the bot's (first) answer to update `id`.
fn answer_id(w: &World, id: i64) -> i64 {
    w.answer_to(id);
    w.tg.replies_to(id)[0].message_id
}

/// The last request's last message: the question GigaChat got, with any context.
fn asked(w: &World) -> String {
    let request = w.gc.chat_requests().pop().expect("GigaChat was asked");
    let last = request.messages.last().expect("a message");
    assert_eq!(last.role, "user", "{:?}", request.messages);
    last.content.clone()
}

/// The context before the question in `asked`: between « and the last », which ends it
/// and is followed by a blank line and the question.
fn quoted(asked: &str, question: &str) -> Option<String> {
    let before = asked.strip_suffix(question)?.strip_suffix("»\n\n")?;
    let (_, context) = before.split_once('«')?;
    Some(context.to_string())
}

fn roles(request: &ChatRequest) -> Vec<&str> {
    request.messages.iter().map(|m| m.role.as_str()).collect()
}

#[test]
fn a_reply_to_an_earlier_message_puts_its_text_before_the_question() {
    let w = World::start();
    let first = w.tg.push_text(IVAN, IVAN, "Закон Ома: U = I·R");
    w.answer_to(first);
    w.ask("Что такое ампер?");
    let reply = w.tg.push(tg::reply_to(IVAN, IVAN, message_id(&w, first), "А что здесь R?"));
    let answer = w.answer_to(reply);
    assert_eq!(answer.len(), 1, "answered, as a reply: {answer:?}");
    let sent = asked(&w);
    assert_eq!(quoted(&sent, "А что здесь R?").as_deref(), Some("Закон Ома: U = I·R"), "{sent}");
    // One user message for context and question: the roles still alternate.
    let request = w.gc.chat_requests().pop().unwrap();
    assert_eq!(roles(&request), ["system", "user", "assistant", "user", "assistant", "user"]);
}

#[test]
fn a_quote_puts_only_the_quoted_part_before_the_question() {
    let w = World::start();
    w.gc.push_reply(Reply::Text("Первое: медь. Второе: алюминий. Третье: серебро.".into()));
    let question = w.tg.push_text(IVAN, IVAN, "Какие металлы проводят ток?");
    let answer = answer_id(&w, question);
    // A quote of the bot's last answer: that answer is in memory, but the quote says which
    // part the question is about.
    let reply = w.tg.push(tg::reply_quoting(IVAN, IVAN, answer, "Второе: алюминий.", "Почему он?"));
    w.answer_to(reply);
    let sent = asked(&w);
    assert_eq!(quoted(&sent, "Почему он?").as_deref(), Some("Второе: алюминий."), "{sent}");
    assert!(!sent.contains("медь"), "not the whole message: {sent}");
}

#[test]
fn a_quote_of_another_chats_post_is_the_context_and_without_one_there_is_none() {
    let w = World::start();
    let quoting = w.tg.push(tg::external_reply(
        IVAN,
        IVAN,
        CHANNEL,
        42,
        Some("Курс: 100 рублей"),
        "Это много?",
    ));
    w.answer_to(quoting);
    let sent = asked(&w);
    assert_eq!(quoted(&sent, "Это много?").as_deref(), Some("Курс: 100 рублей"), "{sent}");
    // external_reply has no text of its own: without a quote, only the question.
    let plain = w.tg.push(tg::external_reply(IVAN, IVAN, CHANNEL, 43, None, "А это что?"));
    assert_eq!(w.answer_to(plain).len(), 1);
    assert_eq!(asked(&w), "А это что?");
}

#[test]
fn in_a_group_a_reply_to_a_member_that_mentions_the_bot_carries_that_message() {
    let w = World::start();
    w.tg.add_chat(tg::chat(GROUP));
    let anna = w.tg.push(tg::group_text(GROUP, ANNA, "Собрание перенесли на пятницу, 15:00"));
    handled(&w, anna);
    assert!(w.tg.replies_to(anna).is_empty(), "not for the bot");
    let anna = message_id(&w, anna);
    let ivan = w.tg.push(tg::reply_to(GROUP, IVAN, anna, "@SomeBot когда собрание?"));
    w.tg.wait_until(WAIT, "answered", |t| t.replies_to(ivan).len() == 1);
    let sent = asked(&w);
    assert_eq!(
        quoted(&sent, "когда собрание?").as_deref(),
        Some("Собрание перенесли на пятницу, 15:00"),
        "Anna's message, then the question without the mention: {sent}"
    );
    // A reply to a member that does not address the bot is not for it.
    let asks = w.gc.chat_requests().len();
    let aside = w.tg.push(tg::reply_to(GROUP, IVAN, anna, "Понял, спасибо"));
    handled(&w, aside);
    assert!(w.tg.replies_to(aside).is_empty());
    assert_eq!(w.gc.chat_requests().len(), asks, "GigaChat not asked");
}

#[test]
fn a_long_replied_to_text_is_bounded_by_history_chars() {
    let w = World::start_with("[bot]\nhistory_chars = 50\n");
    let long = format!("Начало: {} конец.", "ж".repeat(300));
    let first = w.tg.push_text(IVAN, IVAN, &long);
    w.answer_to(first);
    let reply = w.tg.push(tg::reply_to(IVAN, IVAN, message_id(&w, first), "О чём это?"));
    w.answer_to(reply);
    let sent = asked(&w);
    let context = quoted(&sent, "О чём это?").unwrap_or_else(|| panic!("no context: {sent}"));
    assert!(context.chars().count() <= 50, "{context}");
    assert!(
        context.starts_with("Начало: жжж") && context.ends_with('…'),
        "the beginning, marked as cut: {context}"
    );
    assert!(!sent.contains("конец"), "{sent}");

    // No room at all: the question alone.
    let w = World::start_with("[bot]\nhistory_chars = 0\n");
    let first = w.tg.push_text(IVAN, IVAN, "Закон Ома");
    w.answer_to(first);
    let reply = w.tg.push(tg::reply_to(IVAN, IVAN, message_id(&w, first), "О чём это?"));
    w.answer_to(reply);
    assert_eq!(asked(&w), "О чём это?");
}

#[test]
fn a_replied_to_caption_is_the_context_and_media_without_text_give_none() {
    let w = World::start();
    // Many messages to one chat within seconds; Telegram's pacing is not what this checks.
    w.tg.set_flood_limits(None);
    let photo = w.tg.push(tg::photo(IVAN, IVAN, Some("Схема подключения лампы")));
    handled(&w, photo);
    let reply = w.tg.push(tg::reply_to(IVAN, IVAN, message_id(&w, photo), "Что тут не так?"));
    w.answer_to(reply);
    let sent = asked(&w);
    assert_eq!(
        quoted(&sent, "Что тут не так?").as_deref(),
        Some("Схема подключения лампы"),
        "{sent}"
    );
    // A sticker, a photo without caption, a message the bot never saw (deleted, a service
    // message): nothing to add, and the question is still answered.
    let sticker = w.tg.push(tg::sticker(IVAN, IVAN));
    handled(&w, sticker);
    let bare = w.tg.push(tg::photo(IVAN, IVAN, None));
    handled(&w, bare);
    for (to, question) in [
        (message_id(&w, sticker), "Что это за стикер?"),
        (message_id(&w, bare), "Что на фото?"),
        (999, "А это?"),
    ] {
        let reply = w.tg.push(tg::reply_to(IVAN, IVAN, to, question));
        assert_eq!(w.answer_to(reply).len(), 1, "{question}");
        assert_eq!(asked(&w), question);
    }
}

#[test]
fn the_context_is_sent_once_and_memory_keeps_the_question_as_typed() {
    let w = World::start();
    // Not the default answer, which repeats what it was asked.
    w.gc.push_reply(Reply::Text("Смотря с чем сравнивать.".into()));
    let quoting = w.tg.push(tg::external_reply(
        IVAN,
        IVAN,
        CHANNEL,
        42,
        Some("Курс: 100 рублей"),
        "Это много?",
    ));
    w.answer_to(quoting);
    assert!(asked(&w).contains("Курс: 100 рублей"));
    w.ask("А в прошлом году?");
    let request = w.gc.chat_requests().pop().unwrap();
    assert!(request.messages.iter().all(|m| !m.content.contains("Курс")), "{:?}", request.messages);
    let users: Vec<&str> =
        request.messages.iter().filter(|m| m.role == "user").map(|m| m.content.as_str()).collect();
    assert_eq!(users, ["Это много?", "А в прошлом году?"]);
}

#[test]
fn a_reply_to_the_bots_last_answer_is_not_repeated_but_to_an_older_one_is_sent() {
    // Memory large enough to hold an answer of two rich messages.
    let w = World::start_with("[bot]\nrequests_per_minute = 0\nhistory_chars = 100000\n");
    // Many messages to one chat within seconds; Telegram's pacing is not what this checks.
    w.tg.set_flood_limits(None);
    // Telegram shows the rendered answer ("Закон Ома: …"); memory holds the Markdown.
    w.gc.push_reply(Reply::Text(
        "**Закон Ома**: сила тока равна *U/R*.\n\n- для участка цепи".into(),
    ));
    let first = w.tg.push_text(IVAN, IVAN, "Что такое закон Ома?");
    let first = answer_id(&w, first);
    let reply = w.tg.push(tg::reply_to(IVAN, IVAN, first, "А пример?"));
    w.answer_to(reply);
    assert_eq!(asked(&w), "А пример?", "the last answer is right above it");
    let request = w.gc.chat_requests().pop().unwrap();
    let copies = request.messages.iter().filter(|m| m.content.contains("сила тока")).count();
    assert_eq!(copies, 1, "{:?}", request.messages);

    // No longer the last answer: the reply says which one the question is about.
    w.ask("Что такое ампер?");
    let back = w.tg.push(tg::reply_to(IVAN, IVAN, first, "А для переменного тока?"));
    w.answer_to(back);
    let sent = asked(&w);
    let context =
        quoted(&sent, "А для переменного тока?").unwrap_or_else(|| panic!("no context: {sent}"));
    assert!(context.starts_with("Закон Ома: сила тока равна U/R."), "{context}");

    // A long answer comes as two messages (two rich ones of up to 32 768 characters): a reply
    // to either is to the last answer too.
    for (part, question) in [(0, "Короче?"), (1, "И что?")] {
        let paragraph = "слово ".repeat(3300); // 19 800 characters: one rich message each
        w.gc.push_reply(Reply::Text(format!("{paragraph}\n\n{paragraph}")));
        let long = w.tg.push_text(IVAN, IVAN, "Длинно, пожалуйста");
        w.answer_to(long);
        let first = w.tg.replies_to(long)[0].message_id;
        let sent = w.tg.sent_to(IVAN);
        let at = sent.iter().position(|m| m.message_id == first).unwrap();
        assert_eq!(sent.len(), at + 2, "two messages: {sent:?}");
        let reply = w.tg.push(tg::reply_to(IVAN, IVAN, sent[at + part].message_id, question));
        w.answer_to(reply);
        assert_eq!(asked(&w), question);
    }
    // Cut short: Telegram shows the answer with a note that memory does not hold.
    w.gc.push_reply(Reply::Finish("Ток течёт от плюса".into(), "length"));
    let cut = w.tg.push_text(IVAN, IVAN, "Куда течёт ток?");
    let cut = answer_id(&w, cut);
    let reply = w.tg.push(tg::reply_to(IVAN, IVAN, cut, "А дальше?"));
    w.answer_to(reply);
    assert_eq!(asked(&w), "А дальше?");
}

#[test]
fn retry_asks_the_question_again_without_its_context() {
    let w = World::start();
    let quoting = w.tg.push(tg::external_reply(
        IVAN,
        IVAN,
        CHANNEL,
        42,
        Some("Курс: 100 рублей"),
        "Это много?",
    ));
    w.answer_to(quoting);
    assert!(asked(&w).contains("Курс: 100 рублей"));
    // Only the question is saved for /retry, so the context is not there to send again.
    assert_eq!(w.ask("/retry").len(), 1);
    assert_eq!(asked(&w), "Это много?");
}
