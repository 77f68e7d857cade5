//! The decisions as tables: a message (or a button press) and the facts read for it → what
//! the bot does. No store, no client, no process: the integration tests keep what crosses a
//! process or a network.

use serde_json::{Value, json};

use super::*;
use crate::config::builtin_styles;
use crate::facts::{Access, Turn, UserStats};

const BOT: i64 = 7000000001;
const IVAN: i64 = 123456789;
const ANNA: i64 = 987654321;
const GROUP: i64 = -1001234567890;
const NOW: u64 = 1_781_000_000;

fn config(toml: &str) -> Config {
    let mut config: Config = toml::from_str(toml).expect("a test config");
    config.styles = builtin_styles();
    config
}

fn me() -> User {
    let username = Some("SomeBot".into());
    User { id: BOT, first_name: "Some Bot".into(), username, supports_guest_queries: true }
}

fn facts() -> Facts {
    Facts { now: NOW, today: "2026-06-09".into(), to_midnight: 3600, ..Facts::default() }
}

fn user(id: i64) -> Value {
    json!({"id": id, "is_bot": false, "first_name": if id == IVAN { "Иван" } else { "Анна" }})
}

fn chat(id: i64) -> Value {
    match id {
        GROUP => json!({"id": GROUP, "type": "supergroup", "title": "Физика"}),
        id => json!({"id": id, "type": "private", "first_name": "Иван"}),
    }
}

/// A message in `chat` from `from` with these fields (text, entities, photo…).
fn message(chat_id: i64, from: i64, fields: Value) -> Message {
    let mut message =
        json!({"message_id": 10, "date": NOW, "chat": chat(chat_id), "from": user(from)});
    for (key, value) in fields.as_object().expect("fields") {
        message[key] = value.clone();
    }
    serde_json::from_value(message).expect("a test message")
}

fn text(chat_id: i64, from: i64, text: &str) -> Message {
    let entities: Vec<Value> = text
        .match_indices("@SomeBot")
        .map(|(at, name)| {
            let offset = text[..at].encode_utf16().count();
            json!({"type": "mention", "offset": offset, "length": name.len()})
        })
        .collect();
    let command = text.starts_with('/').then(|| {
        let length = text.split_whitespace().next().unwrap_or("").encode_utf16().count();
        json!({"type": "bot_command", "offset": 0, "length": length})
    });
    let entities: Vec<Value> = command.into_iter().chain(entities).collect();
    message(chat_id, from, json!({"text": text, "entities": entities}))
}

/// A decision in one line: its kind, then what to do (texts cut to their start).
fn summary(decision: &Decision) -> String {
    let cut = |text: &str| text.chars().take(120).collect::<String>();
    let action = match &decision.action {
        Action::Ignore(why) => format!("ignore: {why}"),
        Action::MoveChat(id) => format!("move to {id}"),
        Action::Reply(text, keyboard) => {
            format!("reply{}: {}", if keyboard.is_some() { " with buttons" } else { "" }, cut(text))
        }
        Action::Notice(text) => format!("notice: {}", cut(text)),
        Action::Refuse(user) => format!("refuse {}", user.id),
        Action::Ask(ask) => {
            let mut line = format!("ask: {}", ask.question);
            if let Some(context) = &ask.context {
                line += &format!(" (after «{}»)", cut(context));
            }
            if let Some(file) = &ask.file {
                line += &format!(" (file {} {})", file.name, file.mime);
            }
            if ask.voice.is_some() {
                line += " (voice)";
            }
            if ask.again {
                line += " (again)";
            }
            line
        }
        Action::SetStyle { id, reply } => format!("style {id}: {}", cut(reply)),
        Action::Reset => "reset".into(),
        Action::Grant { user_id, allow } => {
            format!("{} {user_id}", if *allow { "allow" } else { "deny" })
        }
        Action::Report(report) => format!("report {report:?}"),
    };
    format!("{} | {action}", decision.kind)
}

/// Decides each case and compares the summary's start with the expected one.
fn check(config: &Config, cases: Vec<(&str, Facts, Message, &str)>) {
    for (name, facts, message, expected) in cases {
        let seen = Seen { config, me: &me(), facts: &facts };
        let got = summary(&decide_message(&seen, &message));
        assert!(got.starts_with(expected), "{name}:\n  got      {got}\n  expected {expected}…");
    }
}

#[test]
#[rustfmt::skip]
fn private_messages_and_commands() {
    let config = config("");
    let with_last = Facts { last_question: Some("Что такое ток?".into()), ..facts() };
    check(
        &config,
        vec![
            ("a question", facts(), text(IVAN, IVAN, "  Что такое закон Ома? "), "text | ask: Что такое закон Ома?"),
            ("/start", facts(), text(IVAN, IVAN, "/start"), "command | reply: Здравствуйте, Иван! Я отвечаю на вопросы"),
            ("/help names the style", facts(), text(IVAN, IVAN, "/help"), "command | reply: Здравствуйте"),
            ("/mode shows buttons", facts(), text(IVAN, IVAN, "/mode"), "command | reply with buttons: Выберите стиль ответов. Сейчас: «Научный"),
            ("/mode fairy", facts(), text(IVAN, IVAN, "/mode fairy"), "command | style fairy: Теперь я отвечаю в стиле «Сказочный"),
            ("/mode FAIRY", facts(), text(IVAN, IVAN, "/mode FAIRY"), "command | style fairy"),
            ("an unknown style names no user text", facts(), text(IVAN, IVAN, "/mode pirate"), "command | reply with buttons: Такого стиля нет."),
            ("/reset", facts(), text(IVAN, IVAN, "/reset"), "command | reset"),
            ("/new", facts(), text(IVAN, IVAN, "/new"), "command | reset"),
            ("/retry", with_last, text(IVAN, IVAN, "/retry"), "command | ask: Что такое ток? (again)"),
            ("/retry with nothing", facts(), text(IVAN, IVAN, "/retry"), "command | reply: Мне нечего повторить"),
            ("an unknown command", facts(), text(IVAN, IVAN, "/foo"), "command | reply: Такой команды я не знаю."),
            ("/etc/hosts is a question", facts(), message(IVAN, IVAN, json!({"text": "/etc/hosts — что это?"})), "text | ask: /etc/hosts — что это?"),
            ("a sticker", facts(), message(IVAN, IVAN, json!({"sticker": {"file_id": "x"}})), "non-text | notice: Такое я не понимаю"),
            ("too long", facts(), text(IVAN, IVAN, &"я".repeat(4001)), "too-long | notice: Слишком длинное сообщение: 4001 символов"),
            ("4000 is not too long", facts(), text(IVAN, IVAN, &"я".repeat(4000)), "text | ask: яяя"),
            ("a group that moved", facts(), message(GROUP, IVAN, json!({"migrate_to_chat_id": -100999})), "ignored | move to -100999"),
            ("a service message", facts(), message(IVAN, IVAN, json!({})), "ignored | ignore"),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn in_a_group_only_what_is_for_the_bot() {
    let config = config("");
    let reply_to_bot = message(
        GROUP,
        ANNA,
        json!({"text": "а почему?", "reply_to_message": {"message_id": 5, "date": NOW, "chat": chat(GROUP), "from": {"id": BOT, "is_bot": true, "first_name": "Some Bot"}, "text": "Потому что."}}),
    );
    check(
        &config,
        vec![
            ("chatter", facts(), text(GROUP, ANNA, "всем привет"), "ignored | ignore: not for this bot"),
            ("a mention", facts(), text(GROUP, ANNA, "@SomeBot, что такое ток?"), "text | ask: что такое ток?"),
            ("a mention alone", facts(), text(GROUP, ANNA, "@SomeBot"), "text | notice: Напишите вопрос после обращения ко мне."),
            ("a reply to the bot", facts(), reply_to_bot, "text | ask: а почему? (after «Потому что.»)"),
            ("a command for another bot", facts(), text(GROUP, ANNA, "/mode@OtherBot"), "ignored | ignore: not for this bot"),
            ("a command for this bot", facts(), text(GROUP, ANNA, "/mode@somebot fairy"), "command | style fairy"),
            ("a known bare command", facts(), text(GROUP, ANNA, "/reset"), "command | reset"),
            ("an unknown bare command", facts(), text(GROUP, ANNA, "/roll"), "ignored | ignore: not for this bot"),
            ("a sticker in a group", facts(), message(GROUP, ANNA, json!({"sticker": {"file_id": "x"}})), "ignored | ignore"),
            ("/help in a group", facts(), text(GROUP, ANNA, "/help"), "command | reply: Здравствуйте, Анна!"),
        ],
    );
    let anonymous = message(
        GROUP,
        1087968824,
        json!({"text": "@SomeBot вопрос", "sender_chat": chat(GROUP), "entities": [{"type": "mention", "offset": 0, "length": 8}]}),
    );
    let seen = Seen { config: &config, me: &me(), facts: &facts() };
    assert!(matches!(decide_message(&seen, &anonymous).action, Action::Ask(_)));
    let denied = Facts { access: Access { granted: Some(false), announced: true }, ..facts() };
    let seen = Seen { config: &config, me: &me(), facts: &denied };
    // The sender is the group (sender_chat), not the shared placeholder account.
    assert!(matches!(decide_message(&seen, &anonymous).action, Action::Refuse(u) if u.id == GROUP));
}

#[test]
#[rustfmt::skip]
fn who_may_talk_and_how_much() {
    let open = config(&format!(
        "[bot]\nadmins = [{ANNA}]\nrequests_per_minute = 2\ndaily_tokens_per_user = 500\n"
    ));
    let denied = Facts { access: Access { granted: Some(false), announced: true }, ..facts() };
    let granted = Facts { access: Access { granted: Some(true), announced: true }, ..facts() };
    let busy = Facts {
        usage: UserStats { recent: vec![NOW - 59, NOW - 1], ..UserStats::default() },
        ..facts()
    };
    let spent = Facts {
        usage: UserStats { day: "2026-06-09".into(), tokens_today: 500, ..UserStats::default() },
        ..facts()
    };
    let spent_yesterday = Facts {
        usage: UserStats { day: "2026-06-08".into(), tokens_today: 500, ..UserStats::default() },
        ..facts()
    };
    check(
        &open,
        vec![
            ("open to all", facts(), text(IVAN, IVAN, "вопрос"), "text | ask: вопрос"),
            ("denied by /deny", denied.clone(), text(IVAN, IVAN, "вопрос"), "refused | refuse 123456789"),
            ("a denied user's button is not a message", denied, text(IVAN, IVAN, "/start"), "refused | refuse"),
            ("two in the last minute", busy.clone(), text(IVAN, IVAN, "вопрос"), "limited | notice: Слишком много вопросов: не больше 2 в минуту. Напишите снова через 1 с."),
            ("a command is not limited", busy.clone(), text(IVAN, IVAN, "/help"), "command | reply"),
            ("admins are not limited", busy, text(ANNA, ANNA, "вопрос"), "text | ask: вопрос"),
            ("the daily budget", spent, text(IVAN, IVAN, "вопрос"), "limited | notice: Ваш дневной лимит (500 токенов GigaChat) исчерпан. Напишите снова после полуночи (через 1 ч 0 мин)"),
            ("a new day", spent_yesterday, text(IVAN, IVAN, "вопрос"), "text | ask"),
            ("/allow from an admin", facts(), text(ANNA, ANNA, "/allow 42"), "command | allow 42"),
            ("/deny from an admin", facts(), text(ANNA, ANNA, "/deny 42"), "command | deny 42"),
            ("/allow without an id", facts(), text(ANNA, ANNA, "/allow кто-то"), "command | report Text(\"Укажите id пользователя: /allow 123456789\")"),
            ("/stats", facts(), text(ANNA, ANNA, "/stats"), "command | report Stats"),
            ("/users", facts(), text(ANNA, ANNA, "/users"), "command | report Users"),
            ("admin commands from others look unknown", granted, text(IVAN, IVAN, "/stats"), "command | reply: Такой команды я не знаю."),
        ],
    );
    let closed = config(&format!("[bot]\nadmins = [{ANNA}]\nallowed_users = [{IVAN}]\n"));
    let granted = Facts { access: Access { granted: Some(true), announced: true }, ..facts() };
    check(
        &closed,
        vec![
            ("in the allowlist", facts(), text(IVAN, IVAN, "вопрос"), "text | ask"),
            ("a stranger", facts(), text(555, 555, "вопрос"), "refused | refuse 555"),
            ("a stranger allowed by /allow", granted, text(555, 555, "вопрос"), "text | ask"),
            ("an admin", facts(), text(ANNA, ANNA, "вопрос"), "text | ask"),
            ("a stranger's chatter in a group is not refused", facts(), text(GROUP, 555, "привет"), "ignored"),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn replies_and_quotes_are_the_question_s_context() {
    let config = config("[bot]\nhistory_chars = 20\n");
    let replied = |text: &str, from: i64| json!({"message_id": 5, "date": NOW, "chat": chat(IVAN), "from": if from == BOT { json!({"id": BOT, "is_bot": true, "first_name": "Some Bot"}) } else { user(from) }, "text": text});
    let last_answer = Facts {
        history: vec![
            Turn { role: "user".into(), content: "Что такое ток?".into() },
            Turn {
                role: "assistant".into(), content: "**Ток** — это движение.".into()
            },
        ],
        ..facts()
    };
    check(
        &config,
        vec![
            ("a reply", facts(), message( IVAN, IVAN, json!({"text": "а это?", "reply_to_message": replied("Закон Ома", IVAN)})),
                "text | ask: а это? (after «Закон Ома»)",
            ),
            ("a quote", facts(), message( IVAN, IVAN, json!({"text": "а это?", "reply_to_message": replied("Закон Ома гласит", IVAN), "quote": {"text": "гласит", "position": 10}})),
                "text | ask: а это? (after «гласит»)",
            ),
            ("cut to history_chars", facts(), message( IVAN, IVAN, json!({"text": "?", "reply_to_message": replied("Очень длинный текст про всё на свете", IVAN)})),
                "text | ask: ? (after «Очень длинный текст…»)",
            ),
            ("the last answer is in memory already", last_answer.clone(), message( IVAN, IVAN, json!({"text": "а подробнее?", "reply_to_message": replied("Ток — это движение.", BOT)})),
                "text | ask: а подробнее?",
            ),
            ("an older answer is context", last_answer, message( IVAN, IVAN, json!({"text": "а подробнее?", "reply_to_message": replied("Напряжение — это другое.", BOT)})),
                "text | ask: а подробнее? (after «Напряжение",
            ),
            ("a photo without caption gives none", facts(), message( IVAN, IVAN, json!({"text": "что это?", "reply_to_message": {"message_id": 5, "date": NOW, "chat": chat(IVAN), "photo": [{"file_id": "p", "file_unique_id": "u", "width": 1, "height": 1}]}})),
                "text | ask: что это?",
            ),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn files_and_voice_notes() {
    let photo = |caption: Option<&str>, size: u64| {
        let mut fields = json!({"photo": [
            {"file_id": "small", "file_unique_id": "s", "width": 90, "height": 90, "file_size": 1000},
            {"file_id": "large", "file_unique_id": "l", "width": 1280, "height": 1280, "file_size": size},
        ]});
        if let Some(caption) = caption {
            fields["caption"] = json!(caption);
        }
        message(IVAN, IVAN, fields)
    };
    let document = |name: &str, mime: &str, size: u64| {
        message(
            IVAN,
            IVAN,
            json!({"document": {"file_id": "d", "file_unique_id": "d", "file_name": name, "mime_type": mime, "file_size": size}}),
        )
    };
    let voice = |secs: u64| {
        message(
            IVAN,
            IVAN,
            json!({"voice": {"file_id": "v", "file_unique_id": "v", "duration": secs, "mime_type": "audio/ogg", "file_size": 30_000}}),
        )
    };
    let with_key = config("[salutespeech]\ncredentials = \"a2V5OnNlY3JldA==\"\n");
    check(
        &with_key,
        vec![
            ("a photo with a question", facts(), photo(Some("Что на схеме?"), 200_000), "file | ask: Что на схеме? (file photo.jpg image/jpeg)"),
            ("a photo without", facts(), photo(None, 200_000), "file | ask: Что на этом изображении? Опиши и объясни. (file photo.jpg"),
            ("the largest size that fits", facts(), photo(None, 16 << 20), "file | ask: Что на этом изображении"),
            ("a pdf", facts(), document("отчёт.pdf", "application/pdf", 300_000), "file | ask: О чём этот документ? Перескажи главное. (file отчёт.pdf application/pdf)"),
            ("a docx by its type", facts(), document( "без расширения", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", 1000),
                "file | ask: О чём этот документ? Перескажи главное. (file без расширения application/vnd.openxml",
            ),
            ("an unknown format", facts(), document("song.mp3", "audio/mpeg", 1000), "file | notice: Такие файлы я не читаю"),
            ("too big", facts(), document("big.pdf", "application/pdf", 50 << 20), "file | notice: Файл слишком большой (50,0 МБ): я принимаю фото до 15 МБ"),
            ("a voice note", facts(), voice(5), "voice | ask:  (voice)"),
            ("a minute is fine", facts(), voice(60), "voice | ask:  (voice)"),
            ("over a minute", facts(), voice(61), "voice | notice: Голосовое длиннее минуты (61 с)"),
        ],
    );
    check(
        &config(""),
        vec![("no key: text only", facts(), voice(5), "non-text | notice: Такое я не понимаю")],
    );
    let lite = config("[gigachat]\nmodel = \"GigaChat-2\"\n");
    check(
        &lite,
        vec![
            ("a model that does not see images", facts(), photo(None, 1000), "file | notice: Модель «GigaChat-2» не видит изображений"),
            ("documents still go", facts(), document("a.txt", "text/plain", 10), "file | ask"),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn button_presses() {
    let config = config(&format!("[bot]\nadmins = [{ANNA}]\nallowed_users = [{IVAN}]\n"));
    let press = |from: i64, data: &str, date: u64| -> CallbackQuery {
        serde_json::from_value(json!({
            "id": "q", "from": user(from), "data": data, "chat_instance": "c",
            "message": {"message_id": 3, "date": date, "chat": chat(from), "text": "Выберите стиль"},
        }))
        .expect("a test press")
    };
    let cases: Vec<(&str, CallbackQuery, &str)> = vec![
        ("a style", press(IVAN, "style:fairy", NOW), "Style { chat_id: 123456789, message_id: 3, editable: true, style: Style { id: \"fairy\""),
        ("a style on an old message", press(IVAN, "style:fairy", 0), "Style { chat_id: 123456789, message_id: 3, editable: false"),
        ("a style that left the config", press(IVAN, "style:pirate", NOW), "Stale"),
        ("a stranger's style", press(555, "style:fairy", NOW), "Refused"),
        ("an admin's allow", press(ANNA, "allow:555", NOW), "Access { user_id: 555, allow: true }"),
        ("an admin's deny", press(ANNA, "deny:555", NOW), "Access { user_id: 555, allow: false }"),
        ("anyone else's allow", press(IVAN, "allow:555", NOW), "Stale"),
        ("a stranger allowing himself", press(555, "allow:555", NOW), "Stale"),
        ("garbage", press(IVAN, "allow:x", NOW), "Stale"),
    ];
    for (name, query, expected) in cases {
        let seen = Seen { config: &config, me: &me(), facts: &facts() };
        let got = format!("{:?}", decide_press(&seen, &query));
        assert!(got.starts_with(expected), "{name}: {got}");
    }
}

#[test]
fn parses_commands() {
    let c = parse_command("/mode@SomeBot fairy").unwrap();
    assert_eq!((c.name.as_str(), c.bot, c.args.trim()), ("mode", Some("SomeBot"), "fairy"));
    let c = parse_command("/START").unwrap();
    assert_eq!((c.name.as_str(), c.bot, c.args), ("start", None, ""));
    assert_eq!(parse_command("/etc/hosts is a file"), None);
    assert_eq!(parse_command("hello /start"), None);
    assert_eq!(parse_command("/"), None);
    assert_eq!(parse_command("/ пробел"), None);
}
