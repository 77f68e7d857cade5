//! The core bot (issue: the lesson's bot done right): answering, rendering, splitting,
//! commands, non-text messages, and every GigaChat and Telegram failure.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::fake_gigachat::{FakeGigaChat, Reply};
use crate::fake_telegram::{self as tg, FakeTelegram, Fault, IVAN};
use crate::harness::{BotEnv, BotProcess};

pub const WAIT: Duration = Duration::from_secs(15);

/// The config of a test of the HTML path: rich messages (the default) off.
pub const HTML: &str = "[telegram]\npoll_timeout_secs = 10\nrich_messages = false\n";

/// Both fakes and a running bot that has finished starting (polling).
pub struct World {
    pub tg: FakeTelegram,
    pub gc: FakeGigaChat,
    pub env: BotEnv,
    pub bot: BotProcess,
}

impl World {
    /// Starts with the given extra config (TOML appended to the test defaults).
    pub fn start_with(config: &str) -> World {
        let tg = FakeTelegram::start();
        let gc = FakeGigaChat::start();
        let mut env = BotEnv::new(&tg, &gc);
        if !config.contains("[telegram]") {
            env.config(&format!("[telegram]\npoll_timeout_secs = 10\n{config}"));
        } else {
            env.config(config);
        }
        let bot = env.spawn(&[]);
        tg.wait_until(WAIT, "the bot polls", |t| t.polling());
        World { tg, gc, env, bot }
    }

    /// The default configuration, as users run it (streaming on).
    pub fn start() -> World {
        World::start_with("")
    }

    /// Sends a private text from Ivan and waits for the bot to answer it (any number of
    /// messages); returns the texts the user sees, in order.
    pub fn ask(&self, text: &str) -> Vec<String> {
        let id = self.tg.push_text(IVAN, IVAN, text);
        self.answer_to(id)
    }

    /// Waits until update `id` is handled (the bot polls past it) and returns the texts of
    /// the messages sent since it was pushed to its chat.
    pub fn answer_to(&self, id: i64) -> Vec<String> {
        self.tg.wait_until(WAIT, "the update is handled", |t| {
            t.confirmed_offset() > id && t.polling()
        });
        let (chat, message_id) = self.tg.message_of(id).expect("a message update");
        let sent = self.tg.sent_to(chat);
        let first = sent.iter().position(|m| m.reply_to == Some(message_id)).unwrap_or_else(|| {
            panic!("no reply to update {id}; sent: {sent:#?}\n{}", self.bot.log())
        });
        sent[first..].iter().map(|m| m.text.clone()).collect()
    }
}

#[test]
fn a_private_question_gets_a_styled_answer_as_a_reply() {
    let w = World::start();
    let answer = w.ask("Что такое закон Ома?");
    assert_eq!(
        answer,
        ["Ответ (Отвечай как научный сотрудник): Что такое закон Ома? [сообщений: 2]"]
    );
    // "Thinking…" first, then the answer; the lesson's headers on the GigaChat side.
    let methods: Vec<String> = w.tg.calls().iter().map(|c| c.method.clone()).collect();
    let typing = methods.iter().position(|m| m == "sendRichMessageDraft").unwrap();
    let answer_at = methods.iter().rposition(|m| m == "sendRichMessage").unwrap();
    assert!(typing < answer_at, "{methods:?}");
    let request = &w.gc.chat_requests()[0];
    assert_eq!(request.model, "GigaChat-2-Max");
    assert_eq!(request.body["profanity_check"], json!(true));
    assert!(request.header("x-request-id").is_some());
    let oauth = &w.gc.oauth_requests()[0];
    assert_eq!(oauth.body, "scope=GIGACHAT_API_PERS");
    assert!(oauth.header("rquid").is_some());
    assert_eq!(
        oauth.header("authorization"),
        Some(format!("Basic {}", w.gc.credentials()).as_str())
    );
}

/// A slow answer keeps "typing…" on screen (it lasts 5 s, so it is resent every 4 s), and
/// none comes after the answer, which would make the bot look busy when it is not. In a
/// private chat "Thinking…" (a draft) takes its place, at the same pace.
#[test]
fn typing_is_repeated_while_gigachat_thinks_and_stops_with_the_answer() {
    for (config, method) in [("", "sendRichMessageDraft"), (STREAM_OFF, "sendChatAction")] {
        typing_is_repeated(config, method);
    }
}

const STREAM_OFF: &str = "[gigachat]\nstream = false\n";

fn typing_is_repeated(config: &str, method: &str) {
    let w = World::start_with(config);
    w.gc.push_reply(Reply::Delay(
        Duration::from_millis(6000),
        Box::new(Reply::Text("не спеша".into())),
    ));
    let answer = w.ask("Подумай как следует");
    assert_eq!(answer, ["не спеша"]);
    let typing = |t: &FakeTelegram| t.calls_of(method);
    let before = typing(&w.tg);
    // "The status is set for 5 seconds or less": to stay on screen through a 6 s wait it
    // must be sent again before 5 s have passed, and not hammered meanwhile.
    assert!(before.len() >= 2, "{}", w.tg.dump());
    for pair in before.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_secs(2) && gap < Duration::from_secs(5), "{gap:?}");
    }
    // None after the answer: a late one would make the bot look busy for 5 s. Absence is
    // seen only by waiting, here one status period past the answer.
    let answered = w.tg.calls_of("sendRichMessage").pop().unwrap().at;
    assert!(w.tg.calls_of("sendMessageDraft").is_empty(), "no other draft before the answer");
    std::thread::sleep(
        (answered + Duration::from_secs(5)).saturating_duration_since(Instant::now()),
    );
    let after: Vec<_> =
        typing(&w.tg).iter().filter(|c| c.at > answered).map(|c| c.at - answered).collect();
    assert!(after.is_empty(), "typing {after:?} after the answer");
}

#[test]
fn the_token_is_reused_across_messages() {
    let w = World::start();
    for question in ["один", "два", "три"] {
        w.ask(question);
    }
    assert_eq!(w.gc.chat_requests().len(), 3);
    assert_eq!(w.gc.oauth_requests().len(), 1, "one OAuth request per token lifetime");
}

#[test]
fn start_names_the_style_and_lists_the_commands() {
    let w = World::start();
    let text = w.ask("/start").join("\n");
    assert!(text.contains("Научный сотрудник"), "{text}");
    for command in ["/mode", "/reset", "/retry", "/help"] {
        assert!(text.contains(command), "{command} missing in {text}");
    }
    assert!(w.gc.chat_requests().is_empty(), "no GigaChat call for /start");
    let commands = w.tg.commands();
    assert!(commands.iter().any(|(c, _)| c == "mode"), "{commands:?}");
}

#[test]
fn an_unknown_command_gets_the_list() {
    let w = World::start();
    let text = w.ask("/weather").join("\n");
    assert!(text.contains("не знаю"), "{text}");
    assert!(text.contains("/mode"), "{text}");
    assert!(w.gc.chat_requests().is_empty());
}

#[test]
fn stickers_and_voice_get_a_polite_refusal_photos_and_documents_an_answer() {
    let w = World::start();
    for update in [tg::sticker(IVAN, IVAN), tg::voice(IVAN, IVAN)] {
        let id = w.tg.push(update);
        let answer = w.answer_to(id);
        assert_eq!(answer.len(), 1);
        // Whatever the words, the reply asks for text.
        assert!(answer[0].to_lowercase().contains("текст"), "{answer:?}");
    }
    assert!(w.gc.chat_requests().is_empty());
    // Photos and documents are read (tests/it/files.rs has the details).
    for update in
        [tg::photo(IVAN, IVAN, Some("Что на схеме?")), tg::document(IVAN, IVAN, "report.pdf")]
    {
        let id = w.tg.push(update);
        assert_eq!(w.answer_to(id).len(), 1);
    }
    assert_eq!(w.gc.chat_requests().len(), 2);
    assert_eq!(w.gc.files().len(), 2);
}

#[test]
fn edited_messages_and_channel_posts_are_ignored() {
    let w = World::start();
    let id = w.tg.push_text(IVAN, IVAN, "Привет");
    w.answer_to(id);
    let (_, message_id) = w.tg.message_of(id).unwrap();
    w.tg.add_chat(tg::chat(tg::CHANNEL));
    w.tg.push(tg::edited_text(IVAN, IVAN, message_id, "Привет!"));
    w.tg.push(tg::channel_post(tg::CHANNEL, "Новый выпуск"));
    let answer = w.ask("Следующий вопрос");
    assert_eq!(answer.len(), 1);
    assert_eq!(w.tg.sent().len(), 2, "only the two questions were answered");
    assert_eq!(w.gc.chat_requests().len(), 2);
}

#[test]
fn a_message_over_the_limit_is_refused_without_a_gigachat_call() {
    let w = World::start_with("[bot]\nmax_input_chars = 100\n");
    let answer = w.ask(&"я".repeat(101)).join("\n");
    assert!(answer.contains("101"), "{answer}");
    assert!(answer.contains("100"), "{answer}");
    assert!(w.gc.chat_requests().is_empty());
    // A 20 000-character message with the default limit (4000).
    let w = World::start();
    let answer = w.ask(&"ж".repeat(20_000)).join("\n");
    assert!(answer.contains("20000") && answer.contains("4000"), "{answer}");
    assert!(w.gc.chat_requests().is_empty());
}

#[test]
fn markdown_with_code_and_special_characters_is_rendered() {
    let markdown = "**Закон Ома**: I = U / R, где U < 10 & R > 0.\n\n```python\nif a < b and c > d:\n    print(\"&\")\n```\n\n- первый\n- второй";
    // As a rich message (the default): the same text, line by line, the code with its language.
    let w = World::start();
    w.gc.push_reply(Reply::Text(markdown.into()));
    let answer = w.ask("Расскажи").join("\n");
    let want = "Закон Ома: I = U / R, где U < 10 & R > 0.\nif a < b and c > d:\nprint(\"&\")\n• первый\n• второй";
    assert_eq!(answer, want, "(the fake reads a block's lines trimmed)");
    let sent = w.tg.sent_to(IVAN).pop().unwrap();
    let code = &sent.blocks_of("pre")[0];
    assert_eq!(code["language"], "python");
    assert_eq!(tg::tg_rich::plain(&code["text"]), "if a < b and c > d:\n    print(\"&\")");
    assert_eq!(sent.inline_of("bold").len(), 1, "{:?}", sent.blocks);

    let w = World::start_with(HTML);
    w.gc.push_reply(Reply::Text(markdown.into()));
    let id = w.tg.push_text(IVAN, IVAN, "Расскажи");
    w.answer_to(id);
    let sent = w.tg.sent_to(IVAN);
    let answer = sent.last().unwrap();
    assert_eq!(answer.parse_mode.as_deref(), Some("HTML"));
    assert_eq!(
        answer.text,
        "Закон Ома: I = U / R, где U < 10 & R > 0.\n\nif a < b and c > d:\n    print(\"&\")\n\n• первый\n• второй"
    );
    let kinds: Vec<&str> = answer.entities.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(kinds.contains(&"bold") && kinds.contains(&"pre"), "{kinds:?}");
}

#[test]
fn a_long_answer_with_emoji_is_split_at_paragraphs() {
    let w = World::start_with(HTML); // rich messages hold 32 768 characters: see rich.rs
    let paragraph = format!("{} 🙂🚀", "Абзац про физику и немного эмодзи.".repeat(20));
    let long: Vec<String> = (0..15).map(|i| format!("Часть {i}: {paragraph}")).collect();
    let long = long.join("\n\n");
    assert!(long.chars().count() > 10_000);
    w.gc.push_reply(Reply::Text(long.clone()));
    let parts = w.ask("Длинно, пожалуйста");
    assert!(parts.len() >= 3, "{}", parts.len());
    for part in &parts {
        assert!(part.chars().count() <= 4096);
        assert!(part.ends_with("🙂🚀"), "cut inside a paragraph: …{:?}", &part[part.len() - 20..]);
    }
    assert!(parts.join("\n\n") == long, "the parts do not add up to the answer");
}

#[test]
fn html_telegram_refuses_is_resent_as_plain_text_once() {
    let w = World::start();
    w.tg.fail_next(
        "sendMessage",
        Fault::Status(
            400,
            json!({"ok": false, "error_code": 400, "description": "Bad Request: can't parse entities: Unsupported start tag \"x\" at byte offset 0"}),
        ),
    );
    w.gc.push_reply(Reply::Text("**жирный** ответ".into()));
    let answer = w.ask("Вопрос");
    assert_eq!(answer, ["жирный ответ"]);
    let sent = w.tg.sent_to(IVAN);
    assert_eq!(sent.len(), 1, "the answer arrives exactly once");
    assert_eq!(sent[0].parse_mode, None);
}

fn gigachat_failure(reply: Reply) -> String {
    let w = World::start();
    w.gc.push_reply(reply);
    let answer = w.ask("Вопрос").join("\n");
    // Memory is not touched by a failed call: the next question carries no history.
    w.ask("Ещё вопрос");
    let last = w.gc.chat_requests().pop().unwrap();
    assert_eq!(last.messages.len(), 2, "a failed exchange entered memory");
    answer
}

#[test]
fn each_gigachat_failure_gets_its_own_reply() {
    let cases: Vec<(Reply, &str)> = vec![
        (
            Reply::Status(402, r#"{"status":402,"message":"Payment Required"}"#.into()),
            "закончились токены",
        ),
        (
            Reply::Status(404, r#"{"status":404,"message":"No such model"}"#.into()),
            "GigaChat-2-Max",
        ),
        (Reply::Status(500, r#"{"status":500,"message":"Internal Server Error"}"#.into()), "500"),
        (
            Reply::Status(422, r#"{"status":422,"message":"Invalid params"}"#.into()),
            "Ошибка при получении ответа от GigaChat API: 422",
        ),
        (
            Reply::Garbage("<html>oops</html>".into()),
            "Не удалось получить корректный ответ от GigaChat API.",
        ),
        (Reply::Drop, "Не удалось связаться с GigaChat"),
        (
            Reply::Finish("Не люблю менять тему разговора".into(), "blacklist"),
            "не отвечает на вопросы на эту тему",
        ),
    ];
    for (reply, expected) in cases {
        let label = format!("{reply:?}");
        let answer = gigachat_failure(reply);
        assert!(answer.contains(expected), "{label}: {answer}");
    }
}

/// The personal tier serves one request at a time: a 429 (say, while the stream of a bot
/// killed mid-answer is still running) is asked again after a pause, a few times, never in
/// a hot loop; then the user is told.
#[test]
fn a_busy_gigachat_is_asked_again_a_few_times_then_the_user_is_told() {
    let busy = || Reply::Status(429, r#"{"status":429,"message":"Too many requests"}"#.into());
    let w = World::start();
    w.gc.push_reply(busy());
    let answer = w.ask("Вопрос");
    assert!(answer[0].starts_with("Ответ ("), "{answer:?}");
    assert_eq!(w.gc.chat_requests().len(), 2);
    for _ in 0..10 {
        w.gc.push_reply(busy());
    }
    let answer = w.ask("Ещё вопрос").join("\n");
    assert!(answer.contains("GigaChat перегружен, повторите через минуту."), "{answer}");
    let asked: Vec<_> = w.gc.chat_requests()[2..].iter().map(|r| r.at).collect();
    assert!((2..=5).contains(&asked.len()), "{} tries", asked.len());
    for pair in asked.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(400),
            "tries {:?} apart",
            pair[1] - pair[0]
        );
    }
}

#[test]
fn an_answer_cut_by_max_tokens_is_sent_with_a_note() {
    let w = World::start();
    w.gc.push_reply(Reply::Finish("Начало длинного ответа".into(), "length"));
    let answer = w.ask("Вопрос").join("\n");
    assert!(answer.starts_with("Начало длинного ответа"), "{answer}");
    assert!(answer.contains("Ответ обрезан"), "{answer}");
}

#[test]
fn a_timeout_is_reported() {
    let w = World::start_with("[gigachat]\ntimeout_secs = 1\n");
    w.gc.push_reply(Reply::Delay(Duration::from_secs(3), Box::new(Reply::Text("поздно".into()))));
    let answer = w.ask("Вопрос").join("\n");
    assert!(answer.contains("не ответил вовремя"), "{answer}");
}

#[test]
fn an_expired_token_is_renewed_once_and_the_user_gets_the_answer() {
    let w = World::start();
    w.ask("первый");
    w.gc.expire_all_tokens();
    let answer = w.ask("второй");
    assert!(answer[0].contains("второй"), "{answer:?}");
    assert_eq!(w.gc.oauth_requests().len(), 2);
}

#[test]
fn a_token_near_expiry_is_renewed_before_use() {
    let w = World::start();
    // Tokens that live 30 s are within the 60 s margin: each message gets a fresh one.
    w.gc.set_token_ttl(Duration::from_secs(30));
    w.ask("первый");
    w.ask("второй");
    let statuses: Vec<u16> = w.gc.chat_requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200], "no 401 was needed");
    assert_eq!(w.gc.oauth_requests().len(), 2);
}

#[test]
fn a_wrong_gigachat_key_says_authorization_failed_and_is_not_retried_in_a_loop() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let mut env = BotEnv::new(&tg, &gc);
    env.set("GIGACHAT_CREDENTIALS", "d3Jvbmc6a2V5");
    let bot = env.spawn(&[]);
    tg.wait_until(WAIT, "the bot polls", |t| t.polling());
    let w = World { tg, gc, env, bot };
    let answer = w.ask("Вопрос");
    assert_eq!(answer, ["Ошибка авторизации в GigaChat API."]);
    assert_eq!(w.gc.oauth_requests().len(), 1);
    assert!(w.gc.chat_requests().is_empty());
    w.ask("Ещё");
    assert_eq!(w.gc.oauth_requests().len(), 2, "the next message tries again, once");
}

#[test]
fn telegram_faults_are_retried_and_nothing_is_lost_or_doubled() {
    let w = World::start();
    // Answered by Telegram without the message sent (a 502 page, a 429): sent again.
    w.tg.fail_next("sendMessage", Fault::BadGatewayHtml);
    w.tg.fail_next("sendMessage", Fault::TooManyRequests(1));
    let answer = w.ask("Вопрос");
    assert_eq!(answer.len(), 1);
    assert!(answer[0].contains("Вопрос"));
    // getUpdates faults: 5xx, a dropped connection, garbage; the next message still arrives.
    w.tg.fail_next("getUpdates", Fault::Status(500, json!({"ok": false, "error_code": 500, "description": "Internal Server Error: restart"})));
    w.tg.fail_next("getUpdates", Fault::Drop);
    w.tg.fail_next("getUpdates", Fault::Garbage);
    let answer = w.ask("Второй");
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert_eq!(w.gc.chat_requests().len(), 2);
}

/// Telegram down for seconds (every poll a 502 page until it is back): the bot pauses
/// between its tries, 1 s and longer, instead of hammering, and answers once it is back.
#[test]
fn a_telegram_outage_is_waited_out_without_hammering() {
    let w = World::start();
    w.tg.fail_for("getUpdates", Fault::BadGatewayHtml, Duration::from_secs(4));
    // The poll parked before the outage brings this one; the polls after it fail.
    assert_eq!(w.ask("Первый").len(), 1);
    let second = w.tg.push_text(IVAN, IVAN, "Второй");
    w.tg.wait_until(WAIT, "answered after the outage", |t| t.replies_to(second).len() == 1);
    let polls = w.tg.calls_of("getUpdates");
    let failed: Vec<_> = polls.iter().filter(|c| c.status == 502).collect();
    assert!((2..=5).contains(&failed.len()), "{} tries in 4 s\n{}", failed.len(), w.tg.dump());
    for pair in failed.windows(2) {
        let pause = pair[1].at - pair[0].answered;
        assert!(pause >= Duration::from_millis(900), "a try {pause:?} after the last one");
    }
}

/// The connection drops after Telegram sent the message: the bot cannot know that it did,
/// but it usually has, so the message is not sent again (the user would read it twice).
#[test]
fn a_message_whose_answer_was_lost_is_not_sent_twice() {
    let w = World::start();
    w.tg.fail_next("sendRichMessage", Fault::DropAfter);
    let id = w.tg.push_text(IVAN, IVAN, "Вопрос");
    w.tg.wait_until(WAIT, "handled", |t| t.confirmed_offset() > id && t.polling());
    assert_eq!(w.tg.replies_to(id).len(), 1, "{}", w.tg.dump());
    assert_eq!(w.tg.calls_of("sendRichMessage").len(), 1, "sent again");
    assert!(w.bot.log().contains("not sent again"), "{}", w.bot.log());
    // Polls are made again, lost or not: nothing is lost there either.
    w.tg.fail_next("getUpdates", Fault::DropAfter);
    assert_eq!(w.ask("Второй").len(), 1);
}

#[test]
fn a_blocked_user_does_not_stall_the_loop() {
    let w = World::start();
    w.tg.add_chat(tg::chat(IVAN));
    w.tg.set_blocked(IVAN, true);
    let id = w.tg.push_text(IVAN, IVAN, "Вопрос");
    w.tg.wait_until(WAIT, "the update is handled", |t| t.confirmed_offset() > id && t.polling());
    // Nor sent again as HTML: a 403 is no refusal of the rich message's form.
    assert!(w.tg.calls_of("sendMessage").is_empty());
    let refused = w.tg.calls_of("sendRichMessage");
    assert_eq!(refused.len(), 1, "403 is not retried");
    assert_eq!(refused[0].status, 403);
    w.tg.set_blocked(IVAN, false);
    assert_eq!(w.ask("Снова").len(), 1);
}

/// What the owner sets reaches GigaChat as the API names it (reference §2).
#[test]
fn temperature_max_tokens_and_the_profanity_filter_reach_the_request() {
    let w = World::start_with(
        "[gigachat]\ntemperature = 0.3\nmax_tokens = 512\nprofanity_check = false\n",
    );
    w.ask("Вопрос");
    let request = &w.gc.chat_requests()[0];
    assert_eq!(request.temperature, Some(0.3));
    assert_eq!(request.max_tokens, Some(512));
    assert_eq!(request.body["profanity_check"], json!(false));
    // Unset, they are left to the model's defaults: not sent at all.
    let w = World::start();
    w.ask("Вопрос");
    let body = &w.gc.chat_requests()[0].body;
    assert!(body.get("temperature").is_none() && body.get("max_tokens").is_none(), "{body}");
}

/// A key of one scope used with another: OAuth answers 400 (code 7); the user gets the
/// lesson's text, the log names the setting to fix, and the OAuth request is not retried in
/// a loop.
#[test]
fn a_scope_that_does_not_match_the_key_is_reported_with_the_setting_to_fix() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let mut env = BotEnv::new(&tg, &gc);
    env.set("GIGACHAT_SCOPE", "GIGACHAT_API_B2B");
    let bot = env.spawn(&[]);
    tg.wait_until(WAIT, "the bot polls", |t| t.polling());
    let id = tg.push_text(IVAN, IVAN, "Вопрос");
    tg.wait_until(WAIT, "answered", |t| t.replies_to(id).len() == 1);
    assert_eq!(tg.replies_to(id)[0].text, "Ошибка авторизации в GigaChat API.");
    let log = bot.log();
    assert!(
        log.contains("scope from db not fully includes consumed scope")
            && log.contains("GIGACHAT_SCOPE"),
        "{log}"
    );
    assert_eq!(gc.oauth_requests().len(), 1);
    assert_eq!(gc.oauth_requests()[0].status, 400);
}

/// A chat completion whose answer got lost may still have been generated, and paid for:
/// it is not asked for again; the user is told to ask again.
#[test]
fn a_gigachat_answer_that_got_lost_is_not_asked_for_again() {
    let w = World::start();
    w.gc.push_reply(Reply::Drop);
    let answer = w.ask("Вопрос").join("\n");
    assert!(answer.contains("Не удалось связаться с GigaChat"), "{answer}");
    assert_eq!(w.gc.chat_requests().len(), 1, "asked (and paid) twice");
}
