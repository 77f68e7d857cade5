//! The owner's tools: access, limits, /stats, transcripts (the systemd unit: deploy.rs).

use serde_json::{Value, json};

use crate::core::{WAIT, World};
use crate::fake_telegram::{self as tg, ANNA, CHANNEL, GROUP, IVAN};

/// Ivan is the admin (he has written to the bot before); only 555 is allowed by config.
fn restricted() -> World {
    let w = World::start_with(&format!("[bot]\nadmins = [{IVAN}]\nallowed_users = [555]\n"));
    w.tg.add_chat(tg::chat(IVAN));
    w
}

const PETR: i64 = 222333444;

fn buttons(markup: &Value) -> Vec<(String, String)> {
    markup["inline_keyboard"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter())
        .map(|b| {
            (
                b["text"].as_str().unwrap().to_string(),
                b["callback_data"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_stranger_is_refused_with_their_id_and_the_admin_is_asked_once() {
    let w = restricted();
    let first = w.tg.push_text(PETR, PETR, "Привет!");
    w.tg.wait_until(WAIT, "refused", |t| t.replies_to(first).len() == 1);
    let refusal = &w.tg.replies_to(first)[0].text;
    assert!(refusal.contains(&PETR.to_string()), "{refusal}");
    let second = w.tg.push_text(PETR, PETR, "Ну пожалуйста");
    w.tg.wait_until(WAIT, "refused again", |t| t.replies_to(second).len() == 1);
    assert!(w.gc.chat_requests().is_empty(), "no GigaChat call for a refused user");
    w.tg.wait_until(WAIT, "handled", |t| t.confirmed_offset() > second && t.polling());
    let to_admin = w.tg.sent_to(IVAN);
    assert_eq!(to_admin.len(), 1, "the admin is told once: {to_admin:#?}");
    assert!(to_admin[0].text.contains(&PETR.to_string()));
    let buttons = buttons(to_admin[0].markup.as_ref().unwrap());
    assert_eq!(
        buttons,
        [
            ("Разрешить".to_string(), format!("allow:{PETR}")),
            ("Отклонить".to_string(), format!("deny:{PETR}"))
        ]
    );
}

#[test]
fn the_admin_allows_by_button_and_the_user_is_told() {
    let w = restricted();
    let first = w.tg.push_text(PETR, PETR, "Привет!");
    w.tg.wait_until(WAIT, "admin asked", |t| t.sent_to(IVAN).len() == 1);
    let request = w.tg.sent_to(IVAN).remove(0);
    let press =
        w.tg.push(tg::callback_query(IVAN, IVAN, request.message_id, &format!("allow:{PETR}")));
    w.tg.wait_until(WAIT, "pressed", |t| t.confirmed_offset() > press && t.polling());
    let toast = w.tg.calls_of("answerCallbackQuery").pop().unwrap();
    assert_eq!(toast.status, 200);
    assert!(toast.text("text").unwrap().contains("разрешён"));
    let request = w.tg.sent_to(IVAN).remove(0);
    assert!(
        request.text.contains("разрешён"),
        "the admin's message shows the decision: {}",
        request.text
    );
    let told = w.tg.sent_to(PETR);
    assert!(told.iter().any(|m| m.text.contains("открыли доступ")), "{told:#?}");
    let again = w.tg.push_text(PETR, PETR, "Теперь можно?");
    w.tg.wait_until(WAIT, "answered", |t| t.replies_to(again).len() == 1);
    assert!(w.tg.replies_to(again)[0].text.starts_with("Ответ"));
    assert_eq!(w.tg.replies_to(first).len(), 1);
}

#[test]
fn admin_commands_grant_deny_and_list_and_survive_a_restart() {
    let w = restricted();
    let allowed = w.ask(&format!("/allow {ANNA}")).join("\n");
    assert!(allowed.contains(&ANNA.to_string()) && allowed.contains("разрешён"), "{allowed}");
    let anna = w.tg.push_text(ANNA, ANNA, "Вопрос Анны");
    w.tg.wait_until(WAIT, "answered", |t| t.replies_to(anna).len() == 1);
    assert!(w.tg.replies_to(anna)[0].text.starts_with("Ответ"));
    let users = w.ask("/users").join("\n");
    assert!(users.contains(&ANNA.to_string()) && users.contains("555"), "{users}");
    let config_user = w.ask("/deny 555").join("\n");
    assert!(config_user.contains("конфиг"), "config entries stay: {config_user}");

    let crate::core::World { tg, gc, env, bot } = w;
    let mut bot = bot;
    bot.stop();
    let _bot = env.spawn(&[]);
    let anna = tg.push_text(ANNA, ANNA, "После перезапуска");
    tg.wait_until(WAIT, "answered", |t| t.replies_to(anna).len() == 1);
    assert!(tg.replies_to(anna)[0].text.starts_with("Ответ"), "the grant survived");
    let denied = tg.push_text(IVAN, IVAN, &format!("/deny {ANNA}"));
    tg.wait_until(WAIT, "answered", |t| t.replies_to(denied).len() == 1);
    let anna = tg.push_text(ANNA, ANNA, "А теперь?");
    tg.wait_until(WAIT, "refused", |t| t.replies_to(anna).len() == 1);
    assert!(tg.replies_to(anna)[0].text.contains(&ANNA.to_string()));
    assert_eq!(gc.chat_requests().len(), 2);
}

#[test]
fn admin_commands_from_others_look_unknown() {
    let w = World::start_with(&format!("[bot]\nadmins = [{ANNA}]\n"));
    let unknown = w.ask("/weather").join("\n");
    for command in ["/stats", "/users", &format!("/allow {PETR}")] {
        assert_eq!(w.ask(command).join("\n"), unknown, "{command}");
    }
}

#[test]
fn the_rate_limit_says_when_to_write_again_and_skips_gigachat() {
    let w = World::start_with("[bot]\nrequests_per_minute = 2\n");
    w.ask("раз");
    w.ask("два");
    let limited = w.ask("три").join("\n");
    assert!(limited.contains("не больше 2 в минуту"), "{limited}");
    assert!(limited.contains(" с."), "says when: {limited}");
    assert_eq!(w.gc.chat_requests().len(), 2);
    // Admins are exempt.
    let w = World::start_with(&format!("[bot]\nrequests_per_minute = 1\nadmins = [{IVAN}]\n"));
    w.ask("раз");
    assert!(w.ask("два")[0].starts_with("Ответ"));
}

/// The limit is kept in the state, so restarting the bot does not reset it.
#[test]
fn the_rate_limit_holds_across_a_restart() {
    let w = World::start_with("[bot]\nrequests_per_minute = 2\n");
    w.ask("раз");
    w.ask("два");
    let World { tg, gc, env, bot } = w;
    let mut bot = bot;
    assert_eq!(bot.stop().code(), Some(0));
    let _bot = env.spawn(&[]);
    let id = tg.push_text(IVAN, IVAN, "три");
    tg.wait_until(WAIT, "answered", |t| t.replies_to(id).len() == 1);
    let reply = &tg.replies_to(id)[0].text;
    assert!(reply.contains("не больше 2 в минуту"), "{reply}");
    assert_eq!(gc.chat_requests().len(), 2);
}

#[test]
fn the_daily_token_budget_stops_gigachat_calls_until_midnight() {
    let w = World::start_with("[bot]\ndaily_tokens_per_user = 30\n");
    // One question spends more than 30 tokens (the fake counts four characters a token, the
    // style's prompt included), so the second is refused without asking GigaChat.
    let first = w.ask("первый вопрос подлиннее, чтобы потратить токены");
    assert!(first[0].starts_with("Ответ ("), "{first:?}");
    let limited = w.ask("второй").join("\n");
    assert!(limited.contains("30 токенов"), "{limited}");
    assert!(limited.contains("после полуночи"), "{limited}");
    assert_eq!(w.gc.chat_requests().len(), 1);
}

#[test]
fn stats_count_answers_failures_tokens_and_users() {
    let w = World::start_with(&format!("[bot]\nadmins = [{IVAN}]\n"));
    w.ask("один");
    w.ask("два");
    w.gc.push_reply(crate::fake_gigachat::Reply::Status(
        500,
        r#"{"status":500,"message":"Internal Server Error"}"#.into(),
    ));
    w.ask("три");
    let anna = w.tg.push_text(ANNA, ANNA, "вопрос Анны");
    w.tg.wait_until(WAIT, "answered", |t| t.replies_to(anna).len() == 1);
    let stats = w.ask("/stats").join("\n");
    assert!(stats.contains("Ответов: 3"), "{stats}");
    assert!(stats.contains("gigachat server 500: 1"), "{stats}");
    assert!(stats.contains("Чатов: 2, пользователей: 2"), "{stats}");
    let today: u64 = stats
        .split("Токенов сегодня: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(today > 0, "{stats}");
    assert!(stats.contains("Самые активные сегодня:\n1. "), "{stats}");
    let first = stats.lines().find(|l| l.starts_with("1. ")).unwrap();
    assert!(first.contains(&IVAN.to_string()) && first.contains("вопросов: 3"), "{stats}");
}

#[test]
fn stats_survive_a_restart() {
    let w = World::start_with(&format!("[bot]\nadmins = [{IVAN}]\n"));
    w.ask("один");
    let crate::core::World { tg, gc: _gc, env, bot } = w;
    let mut bot = bot;
    bot.stop();
    let _bot = env.spawn(&[]);
    let id = tg.push_text(IVAN, IVAN, "/stats");
    tg.wait_until(WAIT, "answered", |t| t.replies_to(id).len() == 1);
    assert!(tg.replies_to(id)[0].text.contains("Ответов: 1"));
}

#[test]
fn transcripts_keep_each_exchange_as_a_json_line() {
    let w = World::start_with("[bot]\ntranscript_dir = \"transcripts\"\n");
    w.ask("первый");
    w.ask("второй");
    let text = std::fs::read_to_string(w.env.path(&format!("transcripts/{IVAN}.jsonl"))).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["question"], "второй");
    assert_eq!(lines[1]["user_id"], IVAN);
    assert_eq!(lines[1]["style"], "professor");
    assert!(lines[1]["answer"].as_str().unwrap().contains("второй"));
    assert!(lines[1]["tokens"].as_u64().unwrap() > 0);
}

#[test]
fn message_texts_are_logged_only_when_asked() {
    let w = World::start_with("[log]\nmessages = true\n");
    w.ask("видимый вопрос");
    assert!(w.bot.log().contains("видимый вопрос"));
}

#[test]
fn an_admin_who_never_wrote_to_the_bot_is_told_on_the_next_try() {
    let w = World::start_with(&format!("[bot]\nadmins = [{IVAN}]\nallowed_users = [555]\n"));
    let first = w.tg.push_text(PETR, PETR, "Привет!");
    w.tg.wait_until(WAIT, "refused", |t| t.confirmed_offset() > first && t.polling());
    let failed = w.tg.calls_of("sendMessage").pop().unwrap();
    assert_eq!(failed.description(), Some("Bad Request: chat not found"));
    // Telegram knows him from a group now, but he has not opened the bot's chat: 403.
    w.tg.push(tg::group_text(tg::GROUP, IVAN, "Всем привет"));
    let second = w.tg.push_text(PETR, PETR, "Есть кто?");
    w.tg.wait_until(WAIT, "refused", |t| t.confirmed_offset() > second && t.polling());
    let failed = w.tg.calls_of("sendMessage").pop().unwrap();
    let cant = "Forbidden: bot can't initiate conversation with a user";
    assert_eq!((failed.int("chat_id"), failed.description()), (Some(IVAN), Some(cant)));
    assert!(w.bot.log().contains("must write /start to the bot first"), "{}", w.bot.log());
    w.tg.add_chat(tg::chat(IVAN));
    let third = w.tg.push_text(PETR, PETR, "Ау");
    w.tg.wait_until(WAIT, "refused", |t| t.confirmed_offset() > third && t.polling());
    let fourth = w.tg.push_text(PETR, PETR, "Ау!");
    w.tg.wait_until(WAIT, "refused", |t| t.confirmed_offset() > fourth && t.polling());
    assert_eq!(w.tg.sent_to(IVAN).len(), 1, "told once it could be");
    assert_eq!(w.tg.sent_to(PETR).len(), 4, "each message got the refusal");
}

/// /stats, /users, /allow and /deny name users and count their tokens: asked in a group,
/// they are answered in the admin's private chat, and the group sees only where to look.
#[test]
fn admin_reports_asked_in_a_group_are_answered_privately() {
    let w = World::start_with(&format!("[bot]\nadmins = [{ANNA}]\n"));
    w.ask("вопрос Ивана");
    // Anna never wrote to the bot: it may not write to her, so she is asked to first.
    let id = w.tg.push(tg::group_text(GROUP, ANNA, "/stats@SomeBot"));
    w.tg.wait_until(WAIT, "answered", |t| t.replies_to(id).len() == 1);
    let said = &w.tg.replies_to(id)[0].text;
    assert!(said.contains("в личные сообщения"), "{said}");
    // Telegram knows her from the group, so the refusal is 403, not "chat not found".
    let refused = w.tg.calls_of("sendMessage").into_iter().find(|c| c.int("chat_id") == Some(ANNA));
    let refused = refused.expect("the report was tried in her private chat");
    assert_eq!(
        refused.description(),
        Some("Forbidden: bot can't initiate conversation with a user")
    );
    // Once she has, the reports go there.
    w.tg.add_chat(tg::chat(ANNA));
    for command in ["/stats@SomeBot", "/users@SomeBot", &format!("/deny@SomeBot {PETR}")] {
        let id = w.tg.push(tg::group_text(GROUP, ANNA, command));
        w.tg.wait_until(WAIT, "answered", |t| t.replies_to(id).len() == 1);
        assert_eq!(w.tg.replies_to(id)[0].text, "Ответил вам в личных сообщениях.");
    }
    let private: Vec<String> = w.tg.sent_to(ANNA).into_iter().map(|m| m.text).collect();
    assert_eq!(private.len(), 3, "{private:?}");
    assert!(private[0].contains("Статистика") && private[0].contains("Иван"), "{private:?}");
    assert!(private[2].contains(&PETR.to_string()), "{private:?}");
    // Nothing about users reached the group.
    for message in w.tg.sent_to(GROUP) {
        assert!(
            !message.text.contains("Иван")
                && !message.text.contains(&IVAN.to_string())
                && !message.text.contains("токен"),
            "{:?}",
            message.text
        );
    }
}

/// A message sent on behalf of a chat (a channel writing in its discussion group, an
/// anonymous admin) comes `from` a placeholder account every such message shares
/// (@Channel_Bot, 136817688). The bot counts the chat itself as the sender: allowing or
/// denying one channel is not allowing or denying them all.
#[test]
fn messages_on_behalf_of_a_chat_are_that_chat_s_not_the_placeholder_s() {
    const CHANNEL_BOT: i64 = 136817688;
    const OTHER_CHANNEL: i64 = -1005556667778;
    let on_behalf = |channel: i64, title: &str, text: &str| {
        let mut update = tg::group_text(GROUP, CHANNEL_BOT, text);
        let message = &mut update["message"];
        message["from"] = json!({"id": CHANNEL_BOT, "is_bot": true, "first_name": "Channel", "username": "Channel_Bot"});
        message["sender_chat"] = json!({"id": channel, "title": title, "type": "channel"});
        update
    };
    let w = World::start_with(&format!("[bot]\nadmins = [{IVAN}]\nallowed_users = [{IVAN}]\n"));
    w.tg.add_chat(tg::chat(IVAN)); // the admin has started the bot
    // A channel nobody allowed is refused, with its own id to pass on.
    let id = w.tg.push(on_behalf(CHANNEL, "News Channel", "@SomeBot привет"));
    w.tg.wait_until(WAIT, "refused", |t| t.replies_to(id).len() == 1);
    let refusal = &w.tg.replies_to(id)[0].text;
    assert!(refusal.contains(&CHANNEL.to_string()), "{refusal}");
    // The admin is asked about that channel, by name (right after the refusal).
    w.tg.wait_until(WAIT, "the admin is asked", |t| !t.sent_to(IVAN).is_empty());
    let asked = w.tg.sent_to(IVAN).pop().unwrap();
    assert!(
        asked.text.contains("News Channel") && asked.text.contains(&CHANNEL.to_string()),
        "{}",
        asked.text
    );
    // Allowing it allows that channel only.
    w.ask(&format!("/allow {CHANNEL}"));
    let id = w.tg.push(on_behalf(CHANNEL, "News Channel", "@SomeBot что такое ток?"));
    w.tg.wait_until(WAIT, "answered", |t| t.replies_to(id).len() == 1);
    assert!(w.tg.replies_to(id)[0].text.starts_with("Ответ ("));
    let id = w.tg.push(on_behalf(OTHER_CHANNEL, "Other", "@SomeBot а мне?"));
    w.tg.wait_until(WAIT, "refused", |t| t.replies_to(id).len() == 1);
    assert!(w.tg.replies_to(id)[0].text.contains(&OTHER_CHANNEL.to_string()));
    assert_eq!(w.gc.chat_requests().len(), 1, "only the allowed channel's question");
}

/// A stranger who presses a style button (on any message of the bot's they can see) is
/// refused, and the chat's style stays: the allowlist holds for buttons too. (Deleting that
/// check kept every other test green.)
#[test]
fn a_stranger_s_button_press_changes_nothing() {
    let w = restricted();
    let first = w.tg.push_text(PETR, PETR, "Привет!");
    w.tg.wait_until(WAIT, "refused", |t| t.replies_to(first).len() == 1);
    let message = w.tg.replies_to(first)[0].message_id;
    let press = w.tg.push(tg::callback_query(PETR, PETR, message, "style:fairy"));
    w.tg.wait_until(WAIT, "pressed", |t| t.confirmed_offset() > press && t.polling());
    let toast = w.tg.calls_of("answerCallbackQuery").pop().unwrap();
    assert!(toast.text("text").unwrap().contains("только для приглашённых"), "{toast:?}");
    let db = crate::harness::open_state(&w.env.path("gigabot.db"));
    let styled: i64 = db
        .query_row("SELECT COUNT(*) FROM chats WHERE style IS NOT NULL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(styled, 0, "a stranger set a style");
}

/// Only an admin's press of "Разрешить" grants access: a stranger who sends the button's
/// data himself gets a stale-button toast and stays refused. (Letting that check always
/// pass kept every other test green: anyone could let themselves in.)
#[test]
fn only_an_admin_s_press_grants_access() {
    let w = restricted();
    let first = w.tg.push_text(PETR, PETR, "Привет!");
    w.tg.wait_until(WAIT, "refused", |t| t.replies_to(first).len() == 1);
    let message = w.tg.replies_to(first)[0].message_id;
    let press = w.tg.push(tg::callback_query(PETR, PETR, message, &format!("allow:{PETR}")));
    w.tg.wait_until(WAIT, "pressed", |t| t.confirmed_offset() > press && t.polling());
    let toast = w.tg.calls_of("answerCallbackQuery").pop().unwrap();
    assert!(toast.text("text").unwrap().contains("устарела"), "{toast:?}");
    let again = w.tg.push_text(PETR, PETR, "Теперь можно?");
    w.tg.wait_until(WAIT, "refused again", |t| t.replies_to(again).len() == 1);
    assert!(w.tg.replies_to(again)[0].text.contains("только для приглашённых"));
    assert!(w.gc.chat_requests().is_empty());
}
