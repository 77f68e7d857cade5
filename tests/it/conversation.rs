//! Conversation: memory, styles by command and button, groups, and state that survives
//! restarts (the lesson's homework, done properly).

use serde_json::json;

use crate::core::{WAIT, World};
use crate::fake_gigachat::Reply;
use crate::fake_telegram::{self as tg, ANNA, GROUP, IVAN};
use crate::harness::open_state;

#[test]
fn the_bot_remembers_the_last_three_exchanges() {
    let w = World::start();
    for question in ["первый", "второй", "третий", "четвёртый", "пятый"]
    {
        w.ask(question);
    }
    let requests = w.gc.chat_requests();
    let last = requests.last().unwrap();
    let contents: Vec<&str> = last.messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(last.messages[0].role, "system");
    assert_eq!(contents.len(), 8, "system + 6 remembered + the question: {contents:?}");
    assert_eq!(contents[1], "второй", "the oldest exchange was dropped");
    assert_eq!(contents[7], "пятый");
    let roles: Vec<&str> = last.messages.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(
        roles,
        ["system", "user", "assistant", "user", "assistant", "user", "assistant", "user"]
    );
}

#[test]
fn what_did_i_just_ask_is_answerable() {
    let w = World::start();
    w.ask("Сколько планет в Солнечной системе?");
    w.ask("Что я только что спросил?");
    let last = w.gc.chat_requests().pop().unwrap();
    assert!(
        last.messages
            .iter()
            .any(|m| m.role == "user" && m.content == "Сколько планет в Солнечной системе?"),
        "{:?}",
        last.messages
    );
}

#[test]
fn memory_is_bounded_by_size_and_can_be_turned_off() {
    let w = World::start_with("[bot]\nhistory_chars = 120\n");
    w.gc.push_reply(Reply::Text("д".repeat(200)));
    w.ask("длинный ответ, пожалуйста");
    w.ask("короткий");
    w.ask("ещё");
    let last = w.gc.chat_requests().pop().unwrap();
    let remembered: usize =
        last.messages[1..last.messages.len() - 1].iter().map(|m| m.content.chars().count()).sum();
    assert!(remembered <= 120, "{remembered}");
    assert!(
        last.messages.iter().all(|m| !m.content.starts_with("ддд")),
        "the 200-char answer was dropped"
    );
    assert!(last.messages.iter().any(|m| m.content == "короткий"));

    let w = World::start_with("[bot]\nhistory_messages = 0\n");
    w.ask("раз");
    w.ask("два");
    assert_eq!(w.gc.chat_requests().pop().unwrap().messages.len(), 2);
}

#[test]
fn reset_forgets_and_retry_replaces_the_last_answer() {
    let w = World::start();
    // Many messages to one chat within seconds; Telegram's pacing is not what this checks.
    w.tg.set_flood_limits(None);
    w.ask("первый");
    let reset = w.ask("/reset").join("\n");
    assert!(reset.contains("забыл"), "{reset}");
    w.ask("второй");
    assert_eq!(
        w.gc.chat_requests().pop().unwrap().messages.len(),
        2,
        "nothing remembered after /reset"
    );

    w.gc.push_reply(Reply::Text("ответ А".into()));
    w.ask("вопрос");
    w.gc.push_reply(Reply::Text("ответ Б".into()));
    let again = w.ask("/retry");
    assert_eq!(again, ["ответ Б"]);
    let retried = w.gc.chat_requests().pop().unwrap();
    assert_eq!(retried.last_user(), Some("вопрос"));
    assert!(
        retried.messages.iter().all(|m| m.content != "ответ А"),
        "the old exchange is not sent again"
    );
    w.ask("дальше");
    let next = w.gc.chat_requests().pop().unwrap();
    let contents: Vec<&str> = next.messages.iter().map(|m| m.content.as_str()).collect();
    assert!(contents.contains(&"ответ Б") && !contents.contains(&"ответ А"), "{contents:?}");
    let nothing = World::start().ask("/retry").join("\n");
    assert!(nothing.contains("нечего повторить"), "{nothing}");
}

#[test]
fn mode_by_argument_switches_the_style_and_keeps_memory() {
    let w = World::start();
    w.ask("первый");
    let switched = w.ask("/mode fairy").join("\n");
    assert!(switched.contains("Сказочный персонаж"), "{switched}");
    let answer = w.ask("второй");
    assert!(answer[0].starts_with("Ответ (Отвечай как сказочный персонаж)"), "{answer:?}");
    assert_eq!(w.gc.chat_requests().pop().unwrap().messages.len(), 4, "memory kept");
    w.ask("/mode professor");
    let answer = w.ask("третий");
    assert!(answer[0].starts_with("Ответ (Отвечай как научный сотрудник)"), "{answer:?}");
}

fn keyboard_texts(markup: &serde_json::Value) -> Vec<String> {
    markup["inline_keyboard"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter())
        .map(|b| b["text"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn mode_buttons_switch_the_style_and_update_the_keyboard() {
    let w = World::start();
    let id = w.tg.push_text(IVAN, IVAN, "/mode");
    w.answer_to(id);
    let menu = w.tg.replies_to(id).pop().unwrap();
    let markup = menu.markup.clone().expect("an inline keyboard");
    assert_eq!(keyboard_texts(&markup), ["✓ Научный сотрудник", "Сказочный персонаж"]);
    assert_eq!(markup["inline_keyboard"][1][0]["callback_data"], json!("style:fairy"));

    let press = w.tg.push(tg::callback_query(IVAN, IVAN, menu.message_id, "style:fairy"));
    w.tg.wait_until(WAIT, "button handled", |t| t.confirmed_offset() > press && t.polling());
    let answers = w.tg.calls_of("answerCallbackQuery");
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].status, 200);
    assert!(answers[0].text("text").unwrap().contains("Сказочный персонаж"));
    let menu = w.tg.sent_to(IVAN).into_iter().find(|m| m.message_id == menu.message_id).unwrap();
    assert_eq!(menu.edits, 1);
    assert_eq!(
        keyboard_texts(menu.markup.as_ref().unwrap()),
        ["Научный сотрудник", "✓ Сказочный персонаж"]
    );
    let answer = w.ask("Привет");
    assert!(answer[0].starts_with("Ответ (Отвечай как сказочный персонаж)"), "{answer:?}");
}

#[test]
fn an_unknown_style_shows_the_buttons_and_stale_buttons_get_a_toast() {
    let w = World::start();
    let id = w.tg.push_text(IVAN, IVAN, "/mode pirate");
    w.answer_to(id);
    let reply = w.tg.replies_to(id).pop().unwrap();
    // The user's word is not repeated: in a group it would be posted in the bot's name.
    assert!(
        reply.text.contains("Такого стиля нет") && !reply.text.contains("pirate"),
        "{}",
        reply.text
    );
    assert!(reply.markup.is_some());
    let press = w.tg.push(tg::callback_query(IVAN, IVAN, reply.message_id, "style:removed"));
    w.tg.wait_until(WAIT, "button handled", |t| t.confirmed_offset() > press && t.polling());
    let toast = w.tg.calls_of("answerCallbackQuery").pop().unwrap();
    assert_eq!(toast.status, 200);
    assert!(toast.text("text").unwrap().contains("устарела"));
    // An old button whose query Telegram no longer accepts: logged, no error for the user.
    w.tg.expire_callback_queries();
    let press = w.tg.push(tg::callback_query(IVAN, IVAN, reply.message_id, "style:fairy"));
    w.tg.expire_callback_queries();
    w.tg.wait_until(WAIT, "old button handled", |t| t.confirmed_offset() > press && t.polling());
    assert_eq!(w.ask("ещё").len(), 1, "the bot goes on");
}

#[test]
fn in_a_group_the_bot_answers_mentions_replies_and_its_commands_only() {
    let w = World::start();
    w.tg.add_chat(tg::chat(GROUP));
    // Not addressed: ignored.
    let plain = w.tg.push(tg::group_text(GROUP, ANNA, "Всем привет!"));
    // A mention (after an emoji, so UTF-16 offsets matter): answered, mention stripped.
    let mention = w.tg.push(tg::group_text(GROUP, ANNA, "👋 @SomeBot, объясни закон Ома"));
    w.tg.wait_until(WAIT, "mention answered", |t| t.replies_to(mention).len() == 1);
    assert!(w.tg.replies_to(plain).is_empty());
    let asked = w.gc.chat_requests().pop().unwrap();
    assert_eq!(asked.last_user(), Some("👋 объясни закон Ома"));
    // A reply to the bot's answer: answered.
    let answer_id = w.tg.replies_to(mention)[0].message_id;
    let reply = w.tg.push(tg::reply_to(GROUP, ANNA, answer_id, "А пример с лампочкой?"));
    w.tg.wait_until(WAIT, "reply answered", |t| t.replies_to(reply).len() == 1);
    // Commands: ours with and without @, another bot's ignored.
    let other = w.tg.push(tg::group_text(GROUP, ANNA, "/mode@OtherBot fairy"));
    let ours = w.tg.push(tg::group_text(GROUP, ANNA, "/mode@SomeBot fairy"));
    w.tg.wait_until(WAIT, "command answered", |t| t.replies_to(ours).len() == 1);
    assert!(w.tg.replies_to(other).is_empty());
    let unknown = w.tg.push(tg::group_text(GROUP, ANNA, "/weather"));
    let mention = w.tg.push(tg::group_text(GROUP, IVAN, "@somebot как дела?"));
    w.tg.wait_until(WAIT, "mention answered", |t| t.replies_to(mention).len() == 1);
    assert!(w.tg.replies_to(unknown).is_empty(), "a bare unknown command may be another bot's");
    // The group shares memory and style: Ivan sees Anna's exchange and the fairy style.
    let asked = w.gc.chat_requests().pop().unwrap();
    assert_eq!(asked.system(), Some("Отвечай как сказочный персонаж"));
    assert!(asked.messages.iter().any(|m| m.content == "А пример с лампочкой?"));
    assert_eq!(w.gc.chat_requests().len(), 3);
}

#[test]
fn chats_do_not_see_each_others_memory() {
    let w = World::start();
    w.ask("секрет Ивана");
    let anna = w.tg.push_text(ANNA, ANNA, "вопрос Анны");
    w.tg.wait_until(WAIT, "answered", |t| t.replies_to(anna).len() == 1);
    let request = w.gc.chat_requests().pop().unwrap();
    assert!(request.messages.iter().all(|m| !m.content.contains("Ивана")));
    assert_eq!(request.messages.len(), 2);
}

#[test]
fn a_group_that_became_a_supergroup_keeps_its_style_and_memory() {
    let w = World::start();
    let old = -4_000_000_123;
    w.tg.add_chat(tg::chat(old));
    let id = w.tg.push(tg::group_text(old, ANNA, "/mode@SomeBot fairy"));
    w.tg.wait_until(WAIT, "answered", |t| t.replies_to(id).len() == 1);
    let id = w.tg.push(tg::group_text(old, ANNA, "@SomeBot первый вопрос"));
    w.tg.wait_until(WAIT, "answered", |t| t.replies_to(id).len() == 1);
    w.tg.push(tg::migrated_to_supergroup(old, GROUP, ANNA));
    let id = w.tg.push(tg::group_text(GROUP, ANNA, "@SomeBot второй вопрос"));
    w.tg.wait_until(WAIT, "answered", |t| t.replies_to(id).len() == 1);
    let request = w.gc.chat_requests().pop().unwrap();
    assert_eq!(request.system(), Some("Отвечай как сказочный персонаж"));
    assert!(request.messages.iter().any(|m| m.content == "первый вопрос"));
}

#[test]
fn a_restart_keeps_style_memory_and_offset_and_answers_what_came_meanwhile() {
    let w = World::start();
    w.ask("/mode fairy");
    w.ask("первый");
    // What an owner sees with `sqlite3 gigabot.db`.
    let style: String = open_state(&w.env.path("gigabot.db"))
        .query_row("SELECT style FROM chats WHERE id = ?1", [IVAN], |r| r.get(0))
        .unwrap();
    assert_eq!(style, "fairy");
    let World { tg, gc, env, bot } = w;
    let mut bot = bot;
    assert_eq!(bot.stop().code(), Some(0));
    // Messages while the bot is down.
    let down1 = tg.push_text(IVAN, IVAN, "пока тебя не было");
    let down2 = tg.push_text(ANNA, ANNA, "и я писала");
    let _bot = env.spawn(&[]);
    tg.wait_until(WAIT, "both answered", |t| {
        t.replies_to(down1).len() == 1 && t.replies_to(down2).len() == 1
    });
    let ivan = gc
        .chat_requests()
        .into_iter()
        .find(|r| r.last_user() == Some("пока тебя не было"))
        .unwrap();
    assert_eq!(ivan.system(), Some("Отвечай как сказочный персонаж"));
    assert!(ivan.messages.iter().any(|m| m.content == "первый"), "memory survived");
    // No update was answered twice.
    let mut replied: Vec<(i64, i64)> =
        tg.sent().iter().filter_map(|m| Some((m.chat_id, m.reply_to?))).collect();
    let total = replied.len();
    replied.sort();
    replied.dedup();
    assert_eq!(replied.len(), total, "an update was answered twice");
}

#[test]
fn a_broken_state_file_is_refused_never_overwritten_and_reset_moves_it_aside() {
    let w = World::start();
    w.ask("/mode fairy");
    w.ask("вопрос");
    let World { tg, gc, env, bot } = w;
    let mut bot = bot;
    bot.stop();
    let path = env.path("gigabot.db");
    let full = std::fs::read(&path).unwrap();
    for name in ["gigabot.db-wal", "gigabot.db-shm"] {
        let _ = std::fs::remove_file(env.path(name));
    }
    // A file cut short at a few points (from the seed printed on failure), then one that
    // is not a database at all.
    let seed = full.len() as u64 * 7919;
    let mut broken: Vec<Vec<u8>> = (1..=3u64)
        .map(|i| full[..((seed * i) % (full.len() as u64 - 1)) as usize + 1].to_vec())
        .collect();
    broken.push(b"{\"chats\": {".to_vec());
    for bytes in &broken {
        std::fs::write(&path, bytes).unwrap();
        let output = env.run(&[]);
        let (_, err) = crate::harness::text(&output);
        // 2, as for a config error: a person must look at the file, systemd does not restart.
        assert_eq!(output.status.code(), Some(2), "{} bytes: {err}", bytes.len());
        assert!(err.contains("gigabot.db") && err.contains("--reset-state"), "{err}");
        assert_eq!(&std::fs::read(&path).unwrap(), bytes, "the file was changed");
    }
    std::fs::write(&path, &broken[0]).unwrap();
    let _bot = env.spawn(&["run", "--reset-state"]);
    tg.wait_until(WAIT, "the bot starts again", |t| t.calls_of("getMe").len() == 2);
    let aside: Vec<_> = std::fs::read_dir(&env.dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("gigabot.db.broken-"))
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(std::fs::read(aside[0].path()).unwrap(), broken[0]);
    let id = tg.push_text(IVAN, IVAN, "с чистого листа");
    tg.wait_until(WAIT, "answered", |t| t.replies_to(id).len() == 1);
    assert_eq!(gc.chat_requests().pop().unwrap().messages.len(), 2);
}

#[test]
fn update_ids_that_restarted_below_the_saved_one_are_still_answered() {
    // Telegram picks new ids at random after a week without updates; the saved offset is
    // then "in the future" and the server sends updates from the head of its queue.
    let tg = crate::fake_telegram::FakeTelegram::start();
    let gc = crate::fake_gigachat::FakeGigaChat::start();
    let env = crate::harness::BotEnv::new(&tg, &gc);
    std::fs::write(
        env.path("gigabot-state.json"),
        r#"{"last_update_id": 999000000000, "chats": {}}"#,
    )
    .unwrap();
    let bot = env.spawn(&[]);
    tg.wait_until(WAIT, "the bot polls", |t| t.polling());
    let id = tg.push_text(IVAN, IVAN, "Привет после долгого перерыва");
    tg.wait_until(WAIT, "answered", |t| t.replies_to(id).len() == 1);
    assert!(bot.log().contains("update ids restarted"), "{}", bot.log());
    let next = tg.push_text(IVAN, IVAN, "И ещё");
    tg.wait_until(WAIT, "answered", |t| t.replies_to(next).len() == 1);
    assert_eq!(tg.replies_to(id).len(), 1);
}

/// `/new` is `/reset` by another name; `/start` with a deep-link payload (t.me/bot?start=x)
/// greets like `/start`.
#[test]
fn new_forgets_like_reset_and_start_with_a_payload_greets() {
    let w = World::start();
    w.ask("первый");
    let forgot = w.ask("/new").join("\n");
    assert!(forgot.contains("Я забыл наш разговор"), "{forgot}");
    w.ask("второй");
    assert_eq!(w.gc.chat_requests().pop().unwrap().messages.len(), 2, "memory was cleared");
    let greeting = w.ask("/start from_site").join("\n");
    assert!(greeting.contains("Здравствуйте, Иван"), "{greeting}");
    // The owner of a new bot learns there the id that bot.admins wants.
    assert!(greeting.contains(&format!("Ваш Telegram id: {IVAN} ")), "{greeting}");
    assert_eq!(w.gc.chat_requests().len(), 2, "a greeting asks no GigaChat");
}

/// A text mention (the bot picked from the member list, for users without a @username
/// match) addresses the bot like an @mention.
#[test]
fn a_text_mention_of_the_bot_in_a_group_is_answered() {
    let w = World::start();
    let mut update = tg::group_text(GROUP, ANNA, "Бот, что такое ток?");
    update["message"]["entities"] =
        json!([{"type": "text_mention", "offset": 0, "length": 3, "user": tg::bot_user()}]);
    let id = w.tg.push(update);
    w.tg.wait_until(WAIT, "answered", |t| t.replies_to(id).len() == 1);
    let request = w.gc.chat_requests().pop().unwrap();
    // The mention and the comma after it are not part of the question.
    assert_eq!(request.last_user(), Some("что такое ток?"));
    // A text mention of someone else is not for the bot.
    let mut other = tg::group_text(GROUP, ANNA, "Иван, что скажешь?");
    other["message"]["entities"] =
        json!([{"type": "text_mention", "offset": 0, "length": 4, "user": tg::user(IVAN)}]);
    let id = w.tg.push(other);
    w.tg.wait_until(WAIT, "handled", |t| t.confirmed_offset() > id && t.polling());
    assert!(w.tg.replies_to(id).is_empty());
}

/// A chat's conversation is one GigaChat session (`X-Session-ID`, so its shared prompt is
/// cached): the same id for its questions and after a restart, another for another chat, a
/// new one when the conversation starts over; and the id tells nothing of the chat.
#[test]
fn a_conversation_is_one_gigachat_session_until_it_starts_over() {
    let w = World::start();
    let last_session = |w: &World| {
        let request = w.gc.chat_requests().pop().expect("a request");
        request.header("x-session-id").expect("a session id").to_string()
    };
    w.ask("первый");
    let ivan = last_session(&w);
    w.ask("второй");
    assert_eq!(last_session(&w), ivan);
    assert!(!ivan.contains(&IVAN.to_string()) && ivan.len() >= 32, "{ivan}");
    let anna = w.tg.push_text(ANNA, ANNA, "вопрос Анны");
    w.answer_to(anna);
    assert_ne!(last_session(&w), ivan, "two chats, one session");
    let World { tg, gc, env, bot } = w;
    drop(bot);
    let bot = env.spawn(&[]);
    tg.wait_until(WAIT, "the bot polls again", |t| t.polling());
    let w = World { tg, gc, env, bot };
    w.ask("после перезапуска");
    assert_eq!(last_session(&w), ivan, "a restart is no new conversation");
    w.ask("/reset");
    w.ask("заново");
    assert_ne!(last_session(&w), ivan, "/reset starts a new conversation");
}
