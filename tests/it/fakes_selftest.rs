//! Tests of the fakes themselves, through real HTTP and TLS with ureq (as the bot talks).
//!
//! The bot's tests are only as good as the fakes: these pin the envelopes, status codes and
//! exact error strings of the reference, long polling, keep-alive, every fault kind, OAuth,
//! chat completions, streaming, embeddings, the TLS trust setup, and SaluteSpeech's order
//! of checks.

use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use ureq::Agent;
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

use crate::fake_embeddings as emb;
use crate::fake_gigachat::{self as gc, FakeGigaChat, Reply};
use crate::fake_salute::{self, FakeSaluteSpeech};
use crate::fake_telegram::{
    self as tg, ANNA, CHANNEL, FakeTelegram, Fault, FaultRates, GROUP, IVAN,
};
use crate::files::{FormPart, upload};

const WAIT: Duration = Duration::from_secs(5);

/// A plain-HTTP client like the bot's: errors as values, no proxy from the environment.
fn agent() -> Agent {
    Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// An HTTPS client that trusts only `cert`.
fn tls_agent(cert: Certificate<'static>) -> Agent {
    let tls = TlsConfig::builder()
        .provider(TlsProvider::NativeTls)
        .root_certs(RootCerts::new_with_certs(&[cert]))
        .build();
    Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(30)))
        .tls_config(tls)
        .build()
        .into()
}

/// An answer read whole: status, content type, a header asked for, body.
struct Answer {
    status: u16,
    content_type: String,
    header: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn read(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>, header: &str) -> Answer {
    let mut response = response.expect("an HTTP answer");
    let text =
        |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(String::from);
    let (content_type, header) = (text("content-type").unwrap_or_default(), text(header));
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().expect("a readable body");
    Answer { status, content_type, header, body }
}

// --- Telegram ---

fn method_url(fake: &FakeTelegram, method: &str) -> String {
    format!("{}/bot{}/{method}", fake.url(), fake.token())
}

/// POSTs JSON parameters; returns the status and the envelope.
fn call(agent: &Agent, fake: &FakeTelegram, method: &str, params: Value) -> (u16, Value) {
    let answer = read(
        agent
            .post(method_url(fake, method))
            .header("Content-Type", "application/json")
            .send(params.to_string()),
        "retry-after",
    );
    assert_eq!(answer.content_type, "application/json", "{method}: {}", answer.body);
    (answer.status, answer.json())
}

/// Asserts an error envelope with this status and exact description.
fn assert_error(answer: (u16, Value), status: u16, description: &str) {
    let (got_status, body) = answer;
    assert_eq!(body["description"], description, "{body}");
    assert_eq!(
        (got_status, &body["ok"], &body["error_code"]),
        (status, &json!(false), &json!(status)),
        "{body}"
    );
}

fn result(answer: (u16, Value)) -> Value {
    assert_eq!((answer.0, &answer.1["ok"]), (200, &json!(true)), "{}", answer.1);
    answer.1["result"].clone()
}

fn send(agent: &Agent, fake: &FakeTelegram, chat_id: i64, text: &str) -> (u16, Value) {
    call(
        agent,
        fake,
        "sendMessage",
        json!({"chat_id": chat_id, "text": text, "parse_mode": "HTML"}),
    )
}

#[test]
fn telegram_routes_and_envelopes_like_the_real_server() {
    let fake = FakeTelegram::start();
    let agent = agent();
    assert_eq!(fake.token().len(), 46);
    let wrong_token =
        format!("{}/bot7000000001:AAHwrongwrongwrongwrongwrongwrongwro/getMe", fake.url());
    let answer = read(agent.get(wrong_token).call(), "");
    assert_error((answer.status, answer.json()), 401, "Unauthorized");
    let answer = read(agent.get(format!("{}/favicon.ico", fake.url())).call(), "");
    assert_error((answer.status, answer.json()), 404, "Not Found");
    assert_error(call(&agent, &fake, "getMee", json!({})), 404, "Not Found: method not found");

    // Method names are case-insensitive; GET with a query string works; the record uses
    // the canonical name.
    let answer = read(agent.get(method_url(&fake, "GETME")).call(), "");
    assert_eq!(answer.json()["result"]["username"], "SomeBot");
    let me = result(call(&agent, &fake, "getMe", json!({})));
    assert_eq!(
        (me["id"].as_i64(), me["is_bot"].as_bool(), &me["first_name"]),
        (Some(tg::BOT_ID), Some(true), &json!("Some Bot"))
    );
    // The wrong-token call counts too: it names getMe.
    assert_eq!(fake.calls_of("getMe").len(), 3);
    assert_eq!(fake.calls()[3].method, "getMe");

    assert_eq!(
        result(call(&agent, &fake, "getWebhookInfo", json!({}))),
        json!({"url": "", "has_custom_certificate": false, "pending_update_count": 0})
    );
    let (status, body) = call(&agent, &fake, "deleteWebhook", json!({}));
    assert_eq!(
        (status, body),
        (200, json!({"ok": true, "result": true, "description": "Webhook is already deleted"}))
    );
    fake.set_webhook("https://example.com/hook");
    assert_eq!(
        result(call(&agent, &fake, "getWebhookInfo", json!({})))["url"],
        "https://example.com/hook"
    );
    assert_error(
        call(&agent, &fake, "getUpdates", json!({})),
        409,
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
    );
    let (_, body) = call(&agent, &fake, "deleteWebhook", json!({"drop_pending_updates": true}));
    assert_eq!(body["description"], "Webhook was deleted");
    assert_eq!(result(call(&agent, &fake, "getUpdates", json!({}))), json!([]));
}

/// api.telegram.org answers a malformed token 404 "Not Found" and a well-formed wrong one
/// 401 "Unauthorized" (reference §1 "Token problems", §3).
#[test]
fn a_malformed_token_is_not_found_and_a_wrong_one_unauthorized() {
    let fake = FakeTelegram::start();
    let agent = agent();
    let get_me = |token: &str| {
        let answer = read(agent.get(format!("{}/bot{token}/getMe", fake.url())).call(), "");
        (answer.status, answer.json())
    };
    for wrong in ["7000000001:AAHwrongwrongwrongwrongwrongwrongwro", "1:a", "42:A-b_c"] {
        assert_error(get_me(wrong), 401, "Unauthorized");
    }
    let malformed = [
        "7000000001AAHk3fJ9xQ2mV8pL5rT1wZ6yB4nC7dE0gHs",
        ":AAH",
        "7000000001:",
        "70x1:AAH",
        "1:a%20b",
    ];
    for token in malformed {
        assert_error(get_me(token), 404, "Not Found");
    }
    assert_eq!(fake.calls_of("getMe").len(), 8, "each is recorded under its method");
}

#[test]
fn long_poll_answers_when_an_update_arrives_and_confirms_by_offset() {
    let fake = FakeTelegram::start();
    let agent = agent();
    let started = Instant::now();
    let poll = {
        let (agent, url) = (agent.clone(), method_url(&fake, "getUpdates"));
        thread::spawn(move || {
            read(
                agent
                    .post(url)
                    .header("Content-Type", "application/json")
                    .send(json!({"timeout": 30}).to_string()),
                "",
            )
            .json()
        })
    };
    fake.wait_until(WAIT, "the poll is parked", |f| f.polling());
    let id = fake.push_text(IVAN, IVAN, "Привет! 🤔");
    let body = poll.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "answered at once, not at the timeout");
    let updates = body["result"].as_array().unwrap().clone();
    assert_eq!(updates.len(), 1, "{body}");
    assert_eq!((id, updates[0]["update_id"].as_i64()), (873000101, Some(873000101)));
    assert_eq!(updates[0]["message"]["text"], "Привет! 🤔");
    assert_eq!(updates[0]["message"]["chat"]["type"], "private");
    assert_eq!(fake.update(id).unwrap(), updates[0]);

    // Nothing is confirmed until a later call carries a higher offset: at-least-once.
    assert_eq!(result(call(&agent, &fake, "getUpdates", json!({}))).as_array().unwrap().len(), 1);
    assert_eq!((fake.confirmed_offset(), fake.pending_updates()), (0, 1));
    assert_eq!(result(call(&agent, &fake, "getUpdates", json!({"offset": id + 1}))), json!([]));
    assert_eq!((fake.confirmed_offset(), fake.pending_updates()), (id + 1, 0));

    // limit, and a negative offset that keeps only the newest updates.
    let ids: Vec<i64> = (0..3).map(|i| fake.push_text(IVAN, IVAN, &format!("m{i}"))).collect();
    let two = result(call(&agent, &fake, "getUpdates", json!({"limit": 2, "offset": id})));
    assert_eq!(two.as_array().unwrap().len(), 2);
    let last = result(call(&agent, &fake, "getUpdates", json!({"offset": -1})));
    assert_eq!(last[0]["update_id"].as_i64(), Some(ids[2]));
    assert_eq!(fake.pending_updates(), 1);

    // An empty long poll ends at its timeout.
    let started = Instant::now();
    let empty = json!({"offset": ids[2] + 1, "timeout": 1});
    assert_eq!(result(call(&agent, &fake, "getUpdates", empty)), json!([]));
    assert!(started.elapsed() >= Duration::from_millis(950), "{:?}", started.elapsed());
}

/// `end_polls` ends a parked poll at once, empty, as its timeout would; it leaves the
/// queue and the confirmed offset alone, and a poll that comes after it waits as usual.
#[test]
fn end_polls_ends_a_parked_poll_as_its_timeout_would() {
    let fake = FakeTelegram::start();
    let agent = agent();
    let poll = |timeout: u64| {
        let (agent, url) = (agent.clone(), method_url(&fake, "getUpdates"));
        thread::spawn(move || {
            let body = json!({"offset": 1, "timeout": timeout}).to_string();
            let started = Instant::now();
            let answer =
                read(agent.post(url).header("Content-Type", "application/json").send(body), "");
            (answer.json(), started.elapsed())
        })
    };
    let parked = poll(30);
    fake.wait_until(WAIT, "the poll is parked", |f| f.polling());
    fake.end_polls();
    let (body, took) = parked.join().unwrap();
    assert_eq!(body, json!({"ok": true, "result": []}));
    assert!(took < Duration::from_secs(5), "ended at once, not at the timeout: {took:?}");
    assert!(!fake.polling());
    // Only the polls parked then: the next one parks, and an update ends it.
    let next = poll(30);
    fake.wait_until(WAIT, "the next poll is parked", |f| f.polling());
    let id = fake.push_text(IVAN, IVAN, "Привет");
    let (body, _) = next.join().unwrap();
    assert_eq!(body["result"][0]["update_id"].as_i64(), Some(id), "{body}");
    assert_eq!((fake.confirmed_offset(), fake.pending_updates()), (1, 1));
}

/// The server slows a tight polling loop down (reference §2): the same offset again within
/// 0.5 s gets a limit of 1, within 3 s a timeout of at least 3 s.
#[test]
fn polling_the_same_offset_at_once_is_slowed_down() {
    let fake = FakeTelegram::start();
    let agent = agent();
    let ids: Vec<i64> = (0..3).map(|i| fake.push_text(IVAN, IVAN, &format!("m{i}"))).collect();
    let poll = |params: Value| result(call(&agent, &fake, "getUpdates", params));
    assert_eq!(poll(json!({"limit": 2})).as_array().unwrap().len(), 2);
    assert_eq!(poll(json!({"limit": 2})).as_array().unwrap().len(), 1, "limit 1 within 0.5 s");
    // Another offset is not the same request again.
    assert_eq!(poll(json!({"offset": ids[0], "limit": 2})).as_array().unwrap().len(), 2);
    let next = ids[2] + 1;
    assert_eq!(poll(json!({"offset": next})), json!([]));
    let started = Instant::now();
    assert_eq!(poll(json!({"offset": next, "timeout": 0})), json!([]));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(2900), "timeout 0 became 3 s: {waited:?}");
}

#[test]
fn a_newer_poll_that_waits_ends_the_parked_one_with_409() {
    let fake = FakeTelegram::start();
    let agent = agent();
    let parked = |offset: i64| {
        let (agent, url) = (agent.clone(), method_url(&fake, "getUpdates"));
        thread::spawn(move || {
            let answer = read(
                agent
                    .post(url)
                    .header("Content-Type", "application/json")
                    .send(json!({"offset": offset, "timeout": 30}).to_string()),
                "",
            );
            (answer.status, answer.json(), Instant::now())
        })
    };
    let first = parked(1);
    fake.wait_until(WAIT, "the first poll is parked", |f| f.polling());
    // A poll answered at once (timeout 0, another offset) supersedes nothing.
    assert_eq!(result(call(&agent, &fake, "getUpdates", json!({"offset": 2}))), json!([]));
    assert!(fake.polling(), "still parked");
    let conflict = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running";
    // One that waits does: the first conflict in 3 s goes out at once…
    let second = parked(3);
    let (status, body, _) = first.join().unwrap();
    assert_error((status, body), 409, conflict);
    // …the next one within 3 s is held 3 s before it fails (`fail_query_conflict`).
    fake.wait_until(WAIT, "the second poll is parked", |f| f.polling());
    let superseded = Instant::now();
    let waits = json!({"offset": 4, "timeout": 1});
    assert_eq!(result(call(&agent, &fake, "getUpdates", waits)), json!([]));
    let (status, body, at) = second.join().unwrap();
    assert_error((status, body), 409, conflict);
    let held = at - superseded;
    assert!(held >= Duration::from_millis(2900), "held {held:?}");
}

/// A client that retries a conflict without a pause is slowed to one try in 3 s; the
/// record shows each try's arrival and answer (reference §2, "409 Conflict").
#[test]
fn retrying_a_conflict_at_once_is_slowed_down() {
    let fake = FakeTelegram::start();
    let agent = agent();
    fake.set_webhook("https://example.com/hook");
    let webhook = "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first";
    for _ in 0..2 {
        assert_error(call(&agent, &fake, "getUpdates", json!({})), 409, webhook);
    }
    // An injected 409 is paced the same way: 3 s after the first, it goes out at once.
    call(&agent, &fake, "deleteWebhook", json!({}));
    let injected = json!({"ok": false, "error_code": 409, "description": webhook});
    fake.fail_next("getUpdates", Fault::Status(409, injected));
    assert_eq!(call(&agent, &fake, "getUpdates", json!({})).0, 409);
    let polls = fake.calls_of("getUpdates");
    let took: Vec<Duration> = polls.iter().map(|c| c.answered - c.at).collect();
    assert!(took[0] < Duration::from_secs(1), "the first at once: {took:?}");
    assert!(took[1] >= Duration::from_millis(2900), "the second held: {took:?}");
    assert!(took[2] < Duration::from_secs(1), "the third at once: {took:?}");
    let pause = polls[1].at - polls[0].answered;
    assert!(pause < Duration::from_millis(500), "the client did not pause: {pause:?}");
}

/// An outage lasts a time, not a number of calls: every call in it gets the fault, and the
/// client's pauses between its tries are in the record.
#[test]
fn an_outage_fails_every_call_until_it_ends() {
    let fake = FakeTelegram::start();
    let agent = agent();
    fake.fail_for("getMe", Fault::BadGatewayHtml, Duration::from_millis(600));
    fake.fail_next("getMe", Fault::TooManyRequests(1));
    let get_me = || read(agent.post(method_url(&fake, "getMe")).send_empty(), "").status;
    assert_eq!(get_me(), 429, "a queued fault comes first");
    let started = Instant::now();
    let mut statuses = Vec::new();
    while started.elapsed() < Duration::from_millis(400) {
        statuses.push(get_me());
    }
    assert!(statuses.len() > 3 && statuses.iter().all(|s| *s == 502), "{statuses:?}");
    fake.wait_until(WAIT, "the outage ends", |_| started.elapsed() > Duration::from_millis(700));
    assert_eq!(get_me(), 200);
    let calls = fake.calls_of("getMe");
    let pauses: Vec<Duration> = calls.windows(2).map(|w| w[1].at - w[0].answered).collect();
    let tight = &pauses[..statuses.len()];
    assert!(tight.iter().all(|p| *p < Duration::from_millis(100)), "{pauses:?}");
}

#[test]
fn allowed_updates_are_sticky_and_filter_new_updates() {
    let fake = FakeTelegram::start();
    let agent = agent();
    // A form body, with the array JSON-encoded, as form-encoding clients send it.
    let answer = read(
        agent
            .post(method_url(&fake, "getUpdates"))
            .send_form([("allowed_updates", r#"["message"]"#)]),
        "",
    );
    assert_eq!(answer.json()["result"], json!([]));
    assert_eq!(fake.calls_of("getUpdates")[0].params["allowed_updates"], json!(["message"]));
    fake.push(tg::callback_query(IVAN, IVAN, 1, "style:fairy"));
    let text = fake.push_text(IVAN, IVAN, "hi");
    let updates = result(call(&agent, &fake, "getUpdates", json!({})));
    assert_eq!(updates.as_array().unwrap().len(), 1);
    assert_eq!(updates[0]["update_id"].as_i64(), Some(text));
    // Still in force without the parameter; an empty list restores the default.
    fake.push(tg::callback_query(IVAN, IVAN, 1, "style:fairy"));
    assert_eq!(result(call(&agent, &fake, "getUpdates", json!({"offset": text + 1}))), json!([]));
    call(&agent, &fake, "getUpdates", json!({"allowed_updates": []}));
    let query = fake.push(tg::callback_query(IVAN, IVAN, 1, "style:fairy"));
    let updates = result(call(&agent, &fake, "getUpdates", json!({})));
    assert_eq!(updates[0]["update_id"].as_i64(), Some(query));
}

#[test]
fn send_message_returns_the_parsed_message_and_records_it() {
    let fake = FakeTelegram::start();
    let agent = agent();
    let update = fake.push_text(IVAN, IVAN, "Что такое закон Ома?");
    let question = fake.message_of(update).unwrap().1;
    let keyboard = json!({"inline_keyboard": [[{"text": "Сказочный персонаж", "callback_data": "style:fairy"}]]});
    let message = result(call(
        &agent,
        &fake,
        "sendMessage",
        json!({
            "chat_id": IVAN,
            "text": "<b>Закон Ома</b>: I = U / R",
            "parse_mode": "HTML",
            "reply_parameters": {"message_id": question, "allow_sending_without_reply": true},
            "reply_markup": keyboard,
            "link_preview_options": {"is_disabled": true},
        }),
    ));
    assert_eq!(message["text"], "Закон Ома: I = U / R");
    assert_eq!(message["entities"], json!([{"offset": 0, "length": 9, "type": "bold"}]));
    assert_eq!(message["from"], tg::bot_user());
    assert_eq!(message["chat"], tg::chat(IVAN));
    assert_eq!(message["reply_to_message"]["text"], "Что такое закон Ома?");
    assert_eq!(message["reply_markup"], keyboard);
    assert_eq!(message["message_id"].as_i64(), Some(question + 1), "message ids count per chat");

    let sent = fake.sent_to(IVAN);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].text.as_str(), sent[0].html.as_str()),
        ("Закон Ома: I = U / R", "<b>Закон Ома</b>: I = U / R")
    );
    assert_eq!(
        (sent[0].parse_mode.as_deref(), sent[0].reply_to, sent[0].edits),
        (Some("HTML"), Some(question), 0)
    );
    assert_eq!(sent[0].markup, Some(keyboard));
    assert_eq!(fake.replies_to(update), sent);

    // Form encoding, the legacy reply_to_message_id, a JSON-encoded reply_markup.
    let answer = read(
        agent.post(method_url(&fake, "sendMessage")).send_form([
            ("chat_id", IVAN.to_string().as_str()),
            ("text", "plain & <simple>"),
            ("reply_to_message_id", question.to_string().as_str()),
            (
                "reply_markup",
                r#"{"inline_keyboard":[[{"text":"Docs","url":"https://core.telegram.org"}]]}"#,
            ),
        ]),
        "",
    );
    assert_eq!(answer.json()["result"]["text"], "plain & <simple>");
    assert_eq!(fake.replies_to(update).len(), 2);
    assert_eq!(fake.calls_of("sendMessage")[1].int("chat_id"), Some(IVAN));

    // "@username" names a chat the fake knows.
    fake.push(tg::channel_post(CHANNEL, "Новый выпуск"));
    let post = result(call(
        &agent,
        &fake,
        "sendMessage",
        json!({"chat_id": "@news_channel_example", "text": "ok"}),
    ));
    assert_eq!(post["chat"]["id"].as_i64(), Some(CHANNEL));
}

#[test]
fn send_message_rejects_what_telegram_rejects() {
    let fake = FakeTelegram::start();
    let agent = agent();
    let update = fake.push_text(IVAN, IVAN, "hi");
    let bad = |text: &str, description: &str| {
        assert_error(send(&agent, &fake, IVAN, text), 400, &format!("Bad Request: {description}"));
    };
    bad("Hello<br>World", "can't parse entities: Unsupported start tag \"br\" at byte offset 5");
    bad("a < b", "can't parse entities: Unsupported start tag \"\" at byte offset 2");
    bad("<b>bold", "can't parse entities: Can't find end tag corresponding to start tag \"b\"");
    bad(&"я".repeat(4097), "message is too long");
    bad(&format!("<b>{}</b> ", "я".repeat(4097)), "message is too long");
    bad(&"x".repeat(32769), "text is too long");
    bad("", "message text is empty");
    bad("   \n ", "text must be non-empty");
    bad("<b></b>", "text must be non-empty");
    // 4096 code points pass, however many UTF-16 units or bytes they take.
    result(send(&agent, &fake, IVAN, &"😀".repeat(4096)));
    result(send(&agent, &fake, IVAN, &format!("<i>{}</i>\n\n", "я".repeat(4096))));

    assert_error(
        call(&agent, &fake, "sendMessage", json!({})),
        400,
        "Bad Request: message text is empty",
    );
    assert_error(
        call(&agent, &fake, "sendMessage", json!({"text": "x"})),
        400,
        "Bad Request: chat_id is empty",
    );
    assert_error(send(&agent, &fake, 555, "x"), 400, "Bad Request: chat not found");
    assert_error(
        call(
            &agent,
            &fake,
            "sendMessage",
            json!({"chat_id": IVAN, "text": "*x*", "parse_mode": "Markdown2"}),
        ),
        400,
        "Bad Request: unsupported parse_mode",
    );

    let reply = |message_id: i64, allow: bool| {
        let params = json!({"chat_id": IVAN, "text": "x", "reply_parameters": {"message_id": message_id, "allow_sending_without_reply": allow}});
        call(&agent, &fake, "sendMessage", params)
    };
    assert_error(reply(999, false), 400, "Bad Request: message to be replied not found");
    assert!(result(reply(999, true)).get("reply_to_message").is_none());

    let button = |data: &str| {
        let markup = json!({"inline_keyboard": [[{"text": "b", "callback_data": data}]]});
        call(
            &agent,
            &fake,
            "sendMessage",
            json!({"chat_id": IVAN, "text": "x", "reply_markup": markup}),
        )
    };
    result(button(&"d".repeat(64)));
    assert_error(button(&"d".repeat(65)), 400, "Bad Request: BUTTON_DATA_INVALID");
    assert_error(button(&"ы".repeat(33)), 400, "Bad Request: BUTTON_DATA_INVALID");
    let no_kind = json!({"inline_keyboard": [[{"text": "b"}]]});
    assert_error(
        call(
            &agent,
            &fake,
            "sendMessage",
            json!({"chat_id": IVAN, "text": "x", "reply_markup": no_kind}),
        ),
        400,
        "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
    );

    fake.set_blocked(IVAN, true);
    assert_error(send(&agent, &fake, IVAN, "x"), 403, "Forbidden: bot was blocked by the user");
    assert_eq!(fake.sent_to(IVAN).len(), 4, "failed sends store nothing");
    assert!(fake.replies_to(update).is_empty());
}

#[test]
fn drafts_follow_the_rules_of_send_message_draft() {
    let fake = FakeTelegram::start();
    let agent = agent();
    for id in [IVAN, GROUP] {
        fake.add_chat(tg::chat(id));
    }
    let draft = |params: Value| call(&agent, &fake, "sendMessageDraft", params);
    // Private chats only; draft_id required and non-zero; whitespace alone is refused.
    assert_error(
        draft(json!({"chat_id": GROUP, "draft_id": 1, "text": "x"})),
        400,
        "Bad Request: TEXTDRAFT_PEER_INVALID",
    );
    // chat_id is an Integer: the server looks "@username" up only for supergroups,
    // channels and bots, so a user's is not found and a channel's is not private.
    assert_error(
        draft(json!({"chat_id": "@ivan_petrov", "draft_id": 1, "text": "x"})),
        400,
        "Bad Request: chat not found",
    );
    fake.add_chat(tg::chat(CHANNEL));
    assert_error(
        draft(json!({"chat_id": "@news_channel_example", "draft_id": 1, "text": "x"})),
        400,
        "Bad Request: TEXTDRAFT_PEER_INVALID",
    );
    assert_error(
        draft(json!({"chat_id": IVAN, "text": "x"})),
        400,
        "Bad Request: parameter \"draft_id\" is required",
    );
    assert_error(
        draft(json!({"chat_id": IVAN, "draft_id": 0, "text": "x"})),
        400,
        "Bad Request: draft_id must be non-zero",
    );
    assert_error(
        draft(json!({"chat_id": IVAN, "draft_id": 1, "text": " \n "})),
        400,
        "Bad Request: text must be non-empty",
    );
    // 4096 characters after parsing pass, 4097 do not; bad HTML is refused as in sendMessage.
    let full = format!("<b>{}</b>", "ж".repeat(4096));
    result(draft(json!({"chat_id": IVAN, "draft_id": 1, "text": full, "parse_mode": "HTML"})));
    assert_error(
        draft(json!({"chat_id": IVAN, "draft_id": 1, "text": "ж".repeat(4097)})),
        400,
        "Bad Request: message is too long",
    );
    assert_error(
        draft(json!({"chat_id": IVAN, "draft_id": 1, "text": "a < b", "parse_mode": "HTML"})),
        400,
        "Bad Request: can't parse entities: Unsupported start tag \"\" at byte offset 2",
    );
    // Empty text is the "Thinking…" placeholder.
    assert_eq!(result(draft(json!({"chat_id": IVAN, "draft_id": 7, "text": ""}))), json!(true));
    result(draft(
        json!({"chat_id": IVAN, "draft_id": 7, "text": "<i>Растёт</i>", "parse_mode": "HTML"}),
    ));
    let drafts = fake.drafts_to(IVAN);
    let texts: Vec<&str> = drafts.iter().map(|d| d.text.as_str()).collect();
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert_eq!(texts[1..], ["", "Растёт"]);
    assert_eq!(fake.draft_showing(IVAN).map(|d| d.text), Some("Растёт".into()));
    // The message that persists the answer replaces the draft on screen.
    result(send(&agent, &fake, IVAN, "Растёт и вырос"));
    assert_eq!(fake.draft_showing(IVAN), None);
    // A user who blocked the bot gets no draft either.
    fake.set_blocked(IVAN, true);
    assert_error(
        draft(json!({"chat_id": IVAN, "draft_id": 8, "text": "x"})),
        403,
        "Forbidden: bot was blocked by the user",
    );
}

#[test]
fn edits_and_deletes_follow_the_rules() {
    let fake = FakeTelegram::start();
    let agent = agent();
    let update = fake.push_text(IVAN, IVAN, "hi");
    let (_, user_message) = fake.message_of(update).unwrap();
    let keyboard = json!({"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]});
    let sent = result(call(
        &agent,
        &fake,
        "sendMessage",
        json!({"chat_id": IVAN, "text": "<b>Ответ</b>", "parse_mode": "HTML", "reply_markup": keyboard}),
    ));
    let id = sent["message_id"].as_i64().unwrap();
    let edit = |text: &str, markup: Option<&Value>| {
        let mut params =
            json!({"chat_id": IVAN, "message_id": id, "text": text, "parse_mode": "HTML"});
        if let Some(markup) = markup {
            params["reply_markup"] = markup.clone();
        }
        call(&agent, &fake, "editMessageText", params)
    };
    let not_modified = "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message";
    assert_error(edit("<b>Ответ</b>", Some(&keyboard)), 400, not_modified);
    assert_error(edit("<strong>Ответ</strong>  ", Some(&keyboard)), 400, not_modified);
    let edited = result(edit("<i>Ответ</i>", Some(&keyboard)));
    assert_eq!(edited["entities"][0]["type"], "italic");
    assert!(edited["edit_date"].is_i64());
    result(edit("<i>Ответ</i>", None)); // dropping the keyboard is a change
    assert_error(
        edit("Hello<br>", None),
        400,
        "Bad Request: can't parse entities: Unsupported start tag \"br\" at byte offset 5",
    );
    let now = &fake.sent_to(IVAN)[0];
    assert_eq!(
        (now.text.as_str(), now.html.as_str(), now.markup.as_ref(), now.edits),
        ("Ответ", "<i>Ответ</i>", None, 2)
    );

    let markup = |markup: Value| {
        call(
            &agent,
            &fake,
            "editMessageReplyMarkup",
            json!({"chat_id": IVAN, "message_id": id, "reply_markup": markup}),
        )
    };
    result(markup(keyboard.clone()));
    assert_error(markup(keyboard.clone()), 400, not_modified);
    assert_eq!(fake.sent_to(IVAN)[0].edits, 3);

    let other = |method: &str, message_id: i64| {
        call(
            &agent,
            &fake,
            method,
            json!({"chat_id": IVAN, "message_id": message_id, "text": "new"}),
        )
    };
    assert_error(other("editMessageText", 999), 400, "Bad Request: message to edit not found");
    assert_error(
        other("editMessageText", user_message),
        400,
        "Bad Request: message can't be edited",
    );
    result(other("deleteMessage", id));
    assert!(fake.sent_to(IVAN)[0].deleted);
    assert_error(other("deleteMessage", id), 400, "Bad Request: message to delete not found");
    assert_error(other("editMessageText", id), 400, "Bad Request: message to edit not found");
}

#[test]
fn callback_queries_are_answered_once_and_expire() {
    let fake = FakeTelegram::start();
    let agent = agent();
    fake.push_text(IVAN, IVAN, "/mode");
    let keyboard = json!({"inline_keyboard": [[{"text": "Сказочный персонаж", "callback_data": "style:fairy"}]]});
    let menu = result(call(
        &agent,
        &fake,
        "sendMessage",
        json!({"chat_id": IVAN, "text": "Выберите стиль ответов:", "reply_markup": keyboard}),
    ));
    let menu_id = menu["message_id"].as_i64().unwrap();

    let update =
        fake.update(fake.push(tg::callback_query(IVAN, IVAN, menu_id, "style:fairy"))).unwrap();
    let query = &update["callback_query"];
    assert_eq!(query["id"], "530276453942312085");
    assert_eq!(query["message"]["text"], "Выберите стиль ответов:");
    assert_eq!(query["message"]["reply_markup"], keyboard);
    let answer = |id: &Value, text: &str| {
        call(&agent, &fake, "answerCallbackQuery", json!({"callback_query_id": id, "text": text}))
    };
    assert_eq!(result(answer(&query["id"], "Готово")), json!(true));
    let too_old =
        "Bad Request: query is too old and response timeout expired or query ID is invalid";
    assert_error(answer(&query["id"], ""), 400, too_old);
    assert_error(answer(&json!("42"), ""), 400, too_old);

    let second =
        fake.update(fake.push(tg::callback_query(IVAN, IVAN, menu_id, "style:fairy"))).unwrap();
    assert_error(
        answer(&second["callback_query"]["id"], &"x".repeat(201)),
        400,
        "Bad Request: MESSAGE_TOO_LONG",
    );
    fake.expire_callback_queries();
    assert_error(answer(&second["callback_query"]["id"], ""), 400, too_old);

    // A press on a message the fake never saw comes as an InaccessibleMessage.
    let lost = fake.update(fake.push(tg::callback_query(IVAN, IVAN, 999, "x"))).unwrap();
    assert_eq!(lost["callback_query"]["message"]["date"], 0);
}

/// A press lives 150 s (reference §2), here shortened: answered later it is "query is too
/// old…", and one still undelivered is dropped from the queue.
#[test]
fn a_press_older_than_its_lifetime_is_too_old_or_lost() {
    let fake = FakeTelegram::start();
    let agent = agent();
    fake.set_callback_query_lifetime(Duration::from_millis(300));
    let started = Instant::now();
    let delivered = fake.update(fake.push(tg::callback_query(IVAN, IVAN, 1, "a"))).unwrap();
    let updates = result(call(&agent, &fake, "getUpdates", json!({})));
    assert_eq!(updates[0]["callback_query"]["id"], delivered["callback_query"]["id"]);
    let lost = fake.push(tg::callback_query(IVAN, IVAN, 1, "b"));
    fake.wait_until(WAIT, "the presses are old", |_| {
        started.elapsed() > Duration::from_millis(350)
    });
    let answer = json!({"callback_query_id": delivered["callback_query"]["id"]});
    assert_error(
        call(&agent, &fake, "answerCallbackQuery", answer),
        400,
        "Bad Request: query is too old and response timeout expired or query ID is invalid",
    );
    let fresh = fake.push(tg::callback_query(IVAN, IVAN, 1, "c"));
    let updates = result(call(&agent, &fake, "getUpdates", json!({"offset": lost})));
    let ids: Vec<i64> =
        updates.as_array().unwrap().iter().filter_map(|u| u["update_id"].as_i64()).collect();
    assert_eq!(ids, [fresh], "the old undelivered press is gone");
}

#[test]
fn commands_and_chat_actions_are_validated() {
    let fake = FakeTelegram::start();
    let agent = agent();
    let commands = |list: Value| call(&agent, &fake, "setMyCommands", json!({"commands": list}));
    result(commands(
        json!([{"command": "start", "description": "Начать"}, {"command": "mode", "description": "Стиль ответов"}]),
    ));
    assert_eq!(
        fake.commands(),
        [("start".to_string(), "Начать".to_string()), ("mode".into(), "Стиль ответов".into())]
    );
    assert_error(
        commands(json!([{"command": "Start", "description": "x"}])),
        400,
        "Bad Request: BOT_COMMAND_INVALID",
    );
    assert_error(
        commands(json!([{"command": "/start", "description": "x"}])),
        400,
        "Bad Request: BOT_COMMAND_INVALID",
    );
    assert_error(
        commands(json!([{"command": "start", "description": ""}])),
        400,
        "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID",
    );
    let many: Vec<Value> =
        (0..101).map(|i| json!({"command": format!("c{i}"), "description": "d"})).collect();
    assert_error(commands(json!(many)), 400, "Bad Request: BOT_COMMANDS_TOO_MUCH");
    assert_error(
        call(&agent, &fake, "setMyCommands", json!({})),
        400,
        "Bad Request: parameter \"commands\" is required",
    );

    fake.push_text(IVAN, IVAN, "hi");
    let action = |action: &str| {
        call(&agent, &fake, "sendChatAction", json!({"chat_id": IVAN, "action": action}))
    };
    assert_eq!(result(action("typing")), json!(true));
    assert_error(action("dancing"), 400, "Bad Request: wrong parameter action in request");
    // "Channel chats … aren't supported" (the spec), by id or by @username.
    fake.push(tg::channel_post(CHANNEL, "Новый выпуск"));
    for chat_id in [json!(CHANNEL), json!("@news_channel_example")] {
        let params = json!({"chat_id": chat_id, "action": "typing"});
        assert_error(
            call(&agent, &fake, "sendChatAction", params),
            400,
            "Bad Request: channel chats aren't supported",
        );
    }
    fake.add_chat(tg::chat(GROUP));
    let in_group = json!({"chat_id": GROUP, "action": "typing"});
    assert_eq!(result(call(&agent, &fake, "sendChatAction", in_group)), json!(true));
}

/// A user the bot saw only in a group has a private chat the bot may not open: 403 "bot
/// can't initiate conversation with a user"; an id it never saw is "chat not found"
/// (reference §3). Writing to the bot, or `add_chat`, opens the chat.
#[test]
fn the_bot_cannot_start_a_private_chat() {
    let fake = FakeTelegram::start();
    let agent = agent();
    let cant = "Forbidden: bot can't initiate conversation with a user";
    assert_error(send(&agent, &fake, ANNA, "x"), 400, "Bad Request: chat not found");
    fake.push(tg::group_text(GROUP, ANNA, "Всем привет"));
    assert_error(send(&agent, &fake, ANNA, "x"), 403, cant);
    let draft = json!({"chat_id": ANNA, "draft_id": 1, "text": "x"});
    assert_error(call(&agent, &fake, "sendMessageDraft", draft), 403, cant);
    let typing = json!({"chat_id": ANNA, "action": "typing"});
    assert_error(call(&agent, &fake, "sendChatAction", typing), 403, cant);
    // A user's @username is never looked up, started chat or not.
    assert_error(send_to_username(&agent, &fake, "@anna_k"), 400, "Bad Request: chat not found");
    result(send(&agent, &fake, GROUP, "Привет, группа"));
    fake.push_text(ANNA, ANNA, "/start");
    result(send(&agent, &fake, ANNA, "Здравствуйте"));
    assert_error(send_to_username(&agent, &fake, "@anna_k"), 400, "Bad Request: chat not found");
    fake.add_chat(tg::chat(555));
    result(send(&agent, &fake, 555, "x"));
    assert_eq!(fake.sent_to(ANNA).len(), 1);
}

fn send_to_username(agent: &Agent, fake: &FakeTelegram, username: &str) -> (u16, Value) {
    call(agent, fake, "sendMessage", json!({"chat_id": username, "text": "x"}))
}

/// The flood control counts what puts a message in a chat or changes one (sends and
/// edits), not drafts or chat actions (reference §4 "Rate limits").
#[test]
fn flood_control_counts_messages_and_edits_not_drafts_or_actions() {
    let fake = FakeTelegram::start();
    let agent = agent();
    fake.set_flood_limits(Some(tg::FloodLimits { private_burst: 2, group_per_minute: 3 }));
    fake.push_text(IVAN, IVAN, "hi");
    let first = result(send(&agent, &fake, IVAN, "первое"));
    let edit = json!({"chat_id": IVAN, "message_id": first["message_id"], "text": "поправлено"});
    result(call(&agent, &fake, "editMessageText", edit));
    for i in 1..=10 {
        let draft = json!({"chat_id": IVAN, "draft_id": 1, "text": format!("черновик {i}")});
        result(call(&agent, &fake, "sendMessageDraft", draft));
        result(call(&agent, &fake, "sendChatAction", json!({"chat_id": IVAN, "action": "typing"})));
    }
    let (status, body) = send(&agent, &fake, IVAN, "третье");
    assert_eq!(status, 429, "{body}");
    let retry_after = body["parameters"]["retry_after"].as_u64().unwrap();
    assert!((1..=2).contains(&retry_after), "{body}");
    assert_eq!(body["description"], format!("Too Many Requests: retry after {retry_after}"));
    let keyboard = json!({"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]});
    let markup =
        json!({"chat_id": IVAN, "message_id": first["message_id"], "reply_markup": keyboard});
    assert_eq!(call(&agent, &fake, "editMessageReplyMarkup", markup).0, 429);

    fake.add_chat(tg::chat(GROUP));
    for i in 0..3 {
        result(send(&agent, &fake, GROUP, &format!("группе {i}")));
    }
    let (status, body) = send(&agent, &fake, GROUP, "ещё");
    assert_eq!(status, 429, "{body}");
    assert!((59..=60).contains(&body["parameters"]["retry_after"].as_u64().unwrap()), "{body}");
}

#[test]
fn every_fault_kind_is_delivered_then_calls_work_again() {
    let fake = FakeTelegram::start();
    let agent = agent();
    let server_error =
        json!({"ok": false, "error_code": 500, "description": "Internal Server Error: restart"});
    fake.fail_next("getme", Fault::Status(500, server_error.clone()));
    fake.fail_next("getMe", Fault::TooManyRequests(7));
    fake.fail_next("getMe", Fault::BadGatewayHtml);
    fake.fail_next("getMe", Fault::Drop);
    fake.fail_next("getMe", Fault::Delay(Duration::from_millis(300)));
    fake.fail_next("getMe", Fault::Garbage);
    let get_me = || read(agent.post(method_url(&fake, "getMe")).send_empty(), "retry-after");

    let answer = get_me();
    assert_eq!((answer.status, answer.json()), (500, server_error));
    let answer = get_me();
    assert_eq!((answer.status, answer.header.as_deref()), (429, Some("7")));
    assert_eq!(
        answer.json(),
        json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 7", "parameters": {"retry_after": 7}})
    );
    let answer = get_me();
    assert_eq!((answer.status, answer.content_type.as_str()), (502, "text/html"));
    assert!(answer.body.contains("<center>nginx"), "{}", answer.body);
    assert!(agent.post(method_url(&fake, "getMe")).send_empty().is_err(), "a dropped connection");
    let started = Instant::now();
    let held = thread::scope(|s| {
        let call = s.spawn(get_me);
        fake.wait_until(WAIT, "the call held", |f| f.in_flight("getMe") == 1);
        call.join().unwrap()
    });
    assert_eq!(held.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(fake.in_flight("getMe"), 0);
    let answer = get_me();
    assert_eq!(answer.status, 200);
    assert!(serde_json::from_str::<Value>(&answer.body).is_err(), "garbage: {}", answer.body);
    assert_eq!(get_me().status, 200);
    let statuses: Vec<u16> = fake.calls_of("getMe").iter().map(|c| c.status).collect();
    assert_eq!(statuses, [500, 429, 502, 0, 200, 200, 200]);
}

#[test]
fn random_faults_are_reproducible_from_the_seed() {
    let run = |seed: u64| -> Vec<u16> {
        let fake = FakeTelegram::start();
        let agent = agent();
        fake.push_text(IVAN, IVAN, "hi");
        let rates =
            FaultRates { server_error: 0.2, dropped: 0.2, too_many_requests: 0.2, retry_after: 1 };
        fake.set_random_faults(seed, rates);
        for i in 0..40 {
            let _ = agent
                .post(method_url(&fake, "sendMessage"))
                .header("Content-Type", "application/json")
                .send(json!({"chat_id": IVAN, "text": format!("m{i}")}).to_string());
        }
        fake.calls_of("sendMessage").iter().map(|c| c.status).collect()
    };
    let first = run(7);
    assert_eq!(first, run(7));
    assert_ne!(first, run(8));
    for status in [0, 200, 429] {
        assert!(first.contains(&status), "{status} in {first:?}");
    }
    assert!(first.iter().any(|s| *s >= 500), "{first:?}");
}

#[test]
fn a_kill_hook_runs_in_place_of_the_nth_call_of_its_method() {
    let fake = FakeTelegram::start();
    let agent = agent();
    fake.add_chat(tg::chat(IVAN));
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    fake.set_kill_hook("SENDMESSAGE", 2, move || flag.store(true, Ordering::SeqCst));
    assert!(fake.kill_hook_pending());
    result(send(&agent, &fake, IVAN, "первое"));
    result(call(&agent, &fake, "getMe", json!({})));
    assert!(!ran.load(Ordering::SeqCst), "other methods do not count");
    let dropped = agent
        .post(method_url(&fake, "sendMessage"))
        .header("Content-Type", "application/json")
        .send(json!({"chat_id": IVAN, "text": "второе"}).to_string());
    assert!(dropped.is_err(), "the connection is closed without an answer");
    assert!(ran.load(Ordering::SeqCst), "the hook ran");
    assert!(!fake.kill_hook_pending());
    result(send(&agent, &fake, IVAN, "третье"));
    let texts: Vec<String> = fake.sent_to(IVAN).into_iter().map(|m| m.text).collect();
    assert_eq!(texts, ["первое", "третье"], "the killed call was not handled");
    let statuses: Vec<u16> = fake.calls_of("sendMessage").iter().map(|c| c.status).collect();
    assert_eq!(statuses, [200, 0, 200]);
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let fake = FakeTelegram::start();
    let agent = agent();
    for _ in 0..5 {
        result(call(&agent, &fake, "getMe", json!({})));
    }
    assert_eq!(fake.connections(), 1);
}

#[test]
fn chunked_request_bodies_are_read() {
    let fake = FakeTelegram::start();
    fake.push_text(IVAN, IVAN, "hi");
    let body = json!({"chat_id": IVAN, "text": "чанки"}).to_string();
    let mut reader = body.as_bytes();
    let answer = read(
        agent()
            .post(method_url(&fake, "sendMessage"))
            .header("Content-Type", "application/json")
            .send(ureq::SendBody::from_reader(&mut reader)),
        "",
    );
    assert_eq!(answer.json()["result"]["text"], "чанки", "{}", answer.body);
}

#[test]
fn update_builders_follow_the_fixtures() {
    assert_eq!(
        tg::detect_entities("👋 @SomeBot, объясни закон Ома простыми словами"),
        [json!({"offset": 3, "length": 8, "type": "mention"})]
    );
    assert_eq!(
        tg::detect_entities("/mode@SomeBot fairy"),
        [json!({"offset": 0, "length": 13, "type": "bot_command"})]
    );
    assert_eq!(
        tg::detect_entities("/start"),
        [json!({"offset": 0, "length": 6, "type": "bot_command"})]
    );
    assert!(tg::detect_entities("mail a@b.c, path a/b").is_empty());

    let fake = FakeTelegram::start();
    let agent = agent();
    let command = fake.push(tg::group_text(GROUP, ANNA, "/mode@SomeBot fairy"));
    let message = &fake.update(command).unwrap()["message"];
    assert_eq!(message["chat"], json!({"id": GROUP, "title": "Test Group", "type": "supergroup"}));
    assert_eq!(message["from"]["first_name"], "Anna");
    assert_eq!(message["entities"][0]["type"], "bot_command");

    let answer = result(send(&agent, &fake, GROUP, "Закон Ома"));
    let reply = fake
        .update(fake.push(tg::reply_to(
            GROUP,
            ANNA,
            answer["message_id"].as_i64().unwrap(),
            "А пример?",
        )))
        .unwrap();
    assert_eq!(reply["message"]["reply_to_message"]["from"]["id"].as_i64(), Some(tg::BOT_ID));
    assert_eq!(reply["message"]["reply_to_message"]["text"], "Закон Ома");
    assert_eq!(reply["message"]["message_id"].as_i64(), Some(3));

    for update in [
        tg::sticker(IVAN, IVAN),
        tg::photo(IVAN, IVAN, Some("Что на схеме?")),
        tg::voice(IVAN, IVAN),
        tg::document(IVAN, IVAN, "lesson.pdf"),
    ] {
        fake.push(update);
    }
    let photo = fake.update(873000104).unwrap();
    assert_eq!(photo["message"]["photo"].as_array().unwrap().len(), 4);
    assert_eq!(photo["message"]["caption"], "Что на схеме?");
    let edited = fake.update(fake.push(tg::edited_text(IVAN, IVAN, 1, "поправил"))).unwrap();
    assert!(edited["edited_message"]["edit_date"].is_i64());
    let post = fake.update(fake.push(tg::channel_post(CHANNEL, "Новый выпуск"))).unwrap();
    assert!(post["channel_post"].get("from").is_none());
    assert_eq!(post["channel_post"]["sender_chat"]["id"].as_i64(), Some(CHANNEL));

    // A user blocking the bot and a group migrating change what sending gets.
    let blocked = fake.update(fake.push(tg::blocked_by(IVAN))).unwrap();
    assert_eq!(blocked["my_chat_member"]["new_chat_member"]["status"], "kicked");
    assert_error(send(&agent, &fake, IVAN, "x"), 403, "Forbidden: bot was blocked by the user");
    fake.push(tg::my_chat_member(IVAN, IVAN, "kicked", "member"));
    result(send(&agent, &fake, IVAN, "x"));
    fake.push(tg::migrated_to_supergroup(-4001, -1004001, ANNA));
    let (status, body) = send(&agent, &fake, -4001, "x");
    assert_eq!(
        (status, &body["description"]),
        (400, &json!("Bad Request: group chat was upgraded to a supergroup chat"))
    );
    assert_eq!(body["parameters"]["migrate_to_chat_id"].as_i64(), Some(-1004001));
    result(send(&agent, &fake, -1004001, "x"));
}

// --- Telegram: rich messages (Bot API 10.1), the Stop button and peeks (10.3) ---

/// The parameters of a sendRichMessage with this html.
fn rich_message(chat_id: i64, html: &str) -> Value {
    json!({"chat_id": chat_id, "rich_message": {"html": html}})
}

/// The parameters of a sendRichMessageDraft with this html.
fn rich_draft(chat_id: i64, draft_id: i64, html: &str) -> Value {
    json!({"chat_id": chat_id, "draft_id": draft_id, "rich_message": {"html": html}})
}

const CANT_PARSE_RICH: &str = "Bad Request: can't parse rich message: ";

#[test]
fn a_rich_message_is_kept_with_its_blocks_and_the_text_a_user_reads() {
    let fake = FakeTelegram::start();
    let agent = agent();
    fake.add_chat(tg::chat(IVAN));
    let html = "<h3>Ответ</h3><p>Пусть <tg-math>a^2+b^2</tg-math>.</p>\
        <tg-math-block>c=\\sqrt{a^2+b^2}</tg-math-block>\
        <table bordered><tr><th>x</th><th>y</th></tr><tr><td>1</td><td>2</td></tr></table>\
        <ul><li><input type=\"checkbox\" checked> купить</li>\
        <li><input type=\"checkbox\"> сварить</li></ul>\
        <pre><code class=\"language-rust\">fn main() {}</code></pre>";
    let message = result(call(&agent, &fake, "sendRichMessage", rich_message(IVAN, html)));
    let sent = fake.sent_to(IVAN);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let sent = &sent[0];
    assert_eq!((sent.kind, sent.html.as_str()), (tg::Kind::Rich, html));
    assert_eq!(message["message_id"].as_i64(), Some(sent.message_id));
    assert_eq!((&message["chat"]["id"], message.get("text")), (&json!(IVAN), None));
    assert_eq!(message["rich_message"]["blocks"], json!(sent.blocks));
    assert_eq!(
        sent.text,
        "Ответ\nПусть a^2+b^2.\nc=\\sqrt{a^2+b^2}\nx | y\n1 | 2\n• [x] купить\n• [ ] сварить\n\
         fn main() {}"
    );
    assert_eq!(sent.blocks_of("heading")[0]["size"], 3);
    let formula = sent.blocks_of("mathematical_expression");
    assert_eq!(formula[0]["expression"], "c=\\sqrt{a^2+b^2}");
    assert_eq!(sent.inline_of("mathematical_expression")[0]["expression"], "a^2+b^2");
    let table = &sent.blocks_of("table")[0];
    assert_eq!((tg::tg_rich::table_columns(table), &table["is_bordered"]), (2, &json!(true)));
    let items = &sent.blocks_of("list")[0]["items"];
    assert_eq!((&items[0]["is_checked"], &items[1]["has_checkbox"]), (&json!(true), &json!(true)));
    assert_eq!(items[1].get("is_checked"), None);
    assert_eq!(sent.blocks_of("pre")[0]["language"], "rust");
}

/// Any chat, replies and keyboards as sendMessage; the object as a JSON string in a form.
#[test]
fn a_rich_message_goes_to_any_chat_and_replies_like_send_message() {
    let fake = FakeTelegram::start();
    let agent = agent();
    fake.add_chat(tg::chat(CHANNEL));
    let update = fake.push(tg::group_text(GROUP, ANNA, "вопрос"));
    let (_, asked) = fake.message_of(update).unwrap();
    let mut params = rich_message(GROUP, "<p>ответ</p>");
    params["reply_parameters"] = json!({"message_id": asked});
    params["reply_markup"] =
        json!({"inline_keyboard": [[{"text": "Ещё", "callback_data": "more"}]]});
    let message = result(call(&agent, &fake, "sendRichMessage", params));
    assert_eq!(message["reply_to_message"]["message_id"].as_i64(), Some(asked));
    assert_eq!(message["reply_markup"]["inline_keyboard"][0][0]["callback_data"], "more");
    let replies = fake.replies_to(update);
    assert_eq!(
        (replies.len(), replies[0].kind, replies[0].text.as_str()),
        (1, tg::Kind::Rich, "ответ")
    );
    let channel = rich_message(0, "<p>новость</p>");
    let channel =
        json!({"chat_id": "@news_channel_example", "rich_message": channel["rich_message"]});
    assert_eq!(result(call(&agent, &fake, "sendRichMessage", channel))["chat"]["id"], CHANNEL);
    let form =
        [("chat_id", GROUP.to_string()), ("rich_message", r#"{"html":"<p>форма</p>"}"#.into())];
    let answer = read(agent.post(method_url(&fake, "sendRichMessage")).send_form(form), "");
    assert_eq!(
        (answer.status, answer.json()["result"]["rich_message"]["blocks"][0]["text"].clone()),
        (200, json!("форма"))
    );
    let mut missing = rich_message(GROUP, "<p>x</p>");
    missing["reply_parameters"] = json!({"message_id": asked + 100});
    assert_error(
        call(&agent, &fake, "sendRichMessage", missing),
        400,
        "Bad Request: message to be replied not found",
    );
}

#[test]
fn send_rich_message_refuses_what_the_reference_refuses() {
    let fake = FakeTelegram::start();
    let agent = agent();
    fake.add_chat(tg::chat(IVAN));
    let send = |html: &str| call(&agent, &fake, "sendRichMessage", rich_message(IVAN, html));
    let unparsable = |detail: &str| format!("{CANT_PARSE_RICH}{detail}");
    let unknown = unparsable("Unsupported start tag \"blink\" at byte offset 3");
    assert_error(send("<p><blink>x</blink></p>"), 400, &unknown);
    let unbalanced = "Unmatched end tag at byte offset 7, expected \"</b>\", found \"</p>\"";
    assert_error(send("<p><b>x</p>"), 400, &unparsable(unbalanced));
    let unclosed = unparsable("Can't find end tag corresponding to start tag \"p\"");
    assert_error(send("<p>x"), 400, &unclosed);
    let thinking = unparsable("Unsupported start tag \"tg-thinking\" at byte offset 0");
    assert_error(send("<tg-thinking>Думаю…</tg-thinking>"), 400, &thinking);
    let chars = |n: usize| format!("<p>{}</p>", "ж".repeat(n));
    result(send(&chars(32768)));
    assert_error(send(&chars(32769)), 400, "Bad Request: message is too long");
    let row = |n: usize| format!("<table><tr>{}</tr></table>", "<td>x</td>".repeat(n));
    result(send(&row(20)));
    assert_error(send(&row(21)), 400, "Bad Request: table has too many columns");
    result(send(&"<p>x</p>".repeat(500)));
    assert_error(send(&"<p>x</p>".repeat(501)), 400, "Bad Request: message has too many blocks");
    // Eight nested lists are 16 levels; a paragraph in the innermost item is the 17th.
    let nested = |inner: &str| format!("{}{inner}{}", "<ul><li>".repeat(8), "</li></ul>".repeat(8));
    result(send(&nested("x")));
    assert_error(send(&nested("<p>x</p>")), 400, "Bad Request: message is nested too deeply");
    assert_eq!(fake.sent_to(IVAN).len(), 4, "only what was accepted is in the chat");
    // Media: Telegram would fetch the URL; the fake refuses and records the attempt.
    let (status, body) = send("<p>x</p><img src=\"http://evil.example/a.png\">");
    assert_eq!(status, 400, "{body}");
    let description = body["description"].as_str().unwrap();
    assert!(description.starts_with(&unparsable("media block \"img\" at byte offset 8")), "{body}");
    let media = fake.rich_media();
    assert_eq!(media.len(), 1, "{media:?}");
    assert_eq!((media[0].method, media[0].tag.as_str()), ("sendRichMessage", "img"));
    assert_eq!(
        (media[0].chat_id, media[0].url.as_deref()),
        (Some(IVAN), Some("http://evil.example/a.png"))
    );
    for tag in ["video", "audio", "figure", "tg-map", "tg-collage", "tg-slideshow"] {
        let (status, body) = send(&format!("<{tag}></{tag}>"));
        assert_eq!(status, 400, "{tag}: {body}");
    }
    assert_eq!(fake.rich_media().len(), 7);
}

/// InputRichMessage: exactly one of html and markdown, Booleans is_rtl and
/// skip_entity_detection, nothing else; the fake reads html only.
#[test]
fn input_rich_message_takes_exactly_one_of_html_or_markdown() {
    let fake = FakeTelegram::start();
    let agent = agent();
    fake.add_chat(tg::chat(IVAN));
    let send = |rich_message: Value| {
        call(
            &agent,
            &fake,
            "sendRichMessage",
            json!({"chat_id": IVAN, "rich_message": rich_message}),
        )
    };
    let one = "Bad Request: exactly one of the fields html or markdown must be used";
    assert_error(send(json!({"html": "<p>x</p>", "markdown": "x"})), 400, one);
    assert_error(send(json!({})), 400, one);
    assert_error(send(json!({"is_rtl": true})), 400, one);
    let unknown =
        "Bad Request: can't parse InputRichMessage: unknown field \"text\" (the fake's rule)";
    assert_error(send(json!({"html": "<p>x</p>", "text": "x"})), 400, unknown);
    let not_bool =
        "Bad Request: can't parse InputRichMessage: Field \"is_rtl\" must be of type Boolean";
    assert_error(send(json!({"html": "<p>x</p>", "is_rtl": "yes"})), 400, not_bool);
    let markdown = send(json!({"markdown": "**x**"}));
    assert_eq!(markdown.0, 400, "the fake reads only html: {}", markdown.1);
    let blocks = send(json!({"blocks": []}));
    assert_eq!(blocks.0, 400, "10.2's explicit blocks are not read: {}", blocks.1);
    assert_error(send(json!({"html": ""})), 400, "Bad Request: message text is empty");
    assert_error(send(json!({"html": "<p> </p>"})), 400, "Bad Request: text must be non-empty");
    assert_error(
        call(&agent, &fake, "sendRichMessage", json!({"chat_id": IVAN})),
        400,
        "Bad Request: parameter \"rich_message\" is required",
    );
    let not_object = "Bad Request: can't parse rich message JSON object";
    assert_error(send(json!("<p>x</p>")), 400, not_object);
    assert_error(send(json!([{"html": "<p>x</p>"}])), 400, not_object);
    let flags = json!({"html": "<p>x</p>", "is_rtl": true, "skip_entity_detection": true});
    assert_eq!(result(send(flags))["rich_message"]["is_rtl"], true);
    assert_eq!(fake.sent_to(IVAN).len(), 1);
}

/// sendRichMessageDraft: private chats only (the description sendMessageDraft gives), a
/// non-zero draft_id, the html read as for sendRichMessage.
#[test]
fn rich_drafts_are_private_with_a_draft_id() {
    let fake = FakeTelegram::start();
    let agent = agent();
    for id in [IVAN, GROUP] {
        fake.add_chat(tg::chat(id));
    }
    let draft = |params: Value| call(&agent, &fake, "sendRichMessageDraft", params);
    let peer = "Bad Request: TEXTDRAFT_PEER_INVALID";
    assert_error(draft(rich_draft(GROUP, 1, "<p>x</p>")), 400, peer);
    let plain = json!({"chat_id": GROUP, "draft_id": 1, "text": "x"});
    assert_error(call(&agent, &fake, "sendMessageDraft", plain), 400, peer);
    assert_error(
        draft(rich_draft(IVAN, 0, "<p>x</p>")),
        400,
        "Bad Request: draft_id must be non-zero",
    );
    assert_error(
        draft(json!({"chat_id": IVAN, "rich_message": {"html": "<p>x</p>"}})),
        400,
        "Bad Request: parameter \"draft_id\" is required",
    );
    let unknown = format!("{CANT_PARSE_RICH}Unsupported start tag \"blink\" at byte offset 0");
    assert_error(draft(rich_draft(IVAN, 1, "<blink>x</blink>")), 400, &unknown);
    assert!(fake.drafts_to(IVAN).is_empty() && fake.drafts_to(GROUP).is_empty());
}

/// `<tg-thinking>` is allowed in drafts; both draft methods take can_stop and keep_on_stop
/// (Bot API 10.3), and the fake keeps each draft with them, in order, with its time.
#[test]
fn drafts_may_think_and_carry_can_stop() {
    let fake = FakeTelegram::start();
    let agent = agent();
    fake.add_chat(tg::chat(IVAN));
    let draft = |params: Value| call(&agent, &fake, "sendRichMessageDraft", params);
    let mut thinking = rich_draft(IVAN, 5, "<tg-thinking>Думаю…</tg-thinking>");
    thinking["can_stop"] = json!(true);
    assert_eq!(result(draft(thinking)), json!(true));
    let mut growing = rich_draft(IVAN, 5, "<p>Растёт <tg-math>x</tg-math></p>");
    (growing["can_stop"], growing["keep_on_stop"]) = (json!(true), json!(true));
    growing["message_thread_id"] = json!(77);
    result(draft(growing));
    let mut bad = rich_draft(IVAN, 5, "<p>x</p>");
    bad["can_stop"] = json!("maybe");
    let (status, body) = draft(bad);
    assert_eq!(status, 400, "a can_stop the server would read as false: {body}");
    // sendMessageDraft takes them too (form strings, as a form-encoding client sends them).
    let form = [
        ("chat_id", IVAN.to_string()),
        ("draft_id", "6".into()),
        ("text", "".into()),
        ("can_stop", "true".into()),
    ];
    let answer = read(agent.post(method_url(&fake, "sendMessageDraft")).send_form(form), "");
    assert_eq!(answer.status, 200, "{}", answer.body);

    let drafts = fake.drafts_to(IVAN);
    let seen: Vec<_> = drafts
        .iter()
        .map(|d| (d.draft_id, d.kind, d.thinking, d.can_stop, d.keep_on_stop))
        .collect();
    assert_eq!(
        seen,
        [
            (5, tg::Kind::Rich, true, true, false),
            (5, tg::Kind::Rich, false, true, true),
            (6, tg::Kind::Plain, true, true, false),
        ]
    );
    assert_eq!((drafts[0].text.as_str(), drafts[0].blocks_of("thinking").len()), ("Думаю…", 1));
    assert_eq!((drafts[1].text.as_str(), drafts[1].message_thread_id), ("Растёт x", Some(77)));
    assert!(drafts.windows(2).all(|w| w[0].at <= w[1].at), "in order, with their times");
    assert_eq!(fake.draft_showing(IVAN).map(|d| d.draft_id), Some(6));
    assert!(fake.sent_to(IVAN).is_empty(), "drafts are not messages");
}

/// The Stop button exists only on a showing draft sent with can_stop; its update reaches
/// the bot only if allowed_updates lists stopped_message_generation.
#[test]
fn stop_is_delivered_only_where_allowed_updates_list_it() {
    let fake = FakeTelegram::start();
    let agent = agent();
    fake.add_chat(tg::chat(IVAN));
    let draft = |draft_id: i64, can_stop: bool| {
        let mut params = rich_draft(IVAN, draft_id, "<p>Растёт</p>");
        params["can_stop"] = json!(can_stop);
        result(call(&agent, &fake, "sendRichMessageDraft", params));
    };
    let poll = |params: Value| result(call(&agent, &fake, "getUpdates", params));
    assert!(fake.press_stop(IVAN, 1).unwrap_err().contains("no draft is showing"));
    draft(1, false);
    let refused = fake.press_stop(IVAN, 1).unwrap_err();
    assert!(refused.contains("without can_stop"), "{refused}");
    draft(2, true);
    assert!(fake.press_stop(IVAN, 1).unwrap_err().contains("draft 2 is showing"));

    // The default set (allowed_updates never sent, or empty): the press is made, the
    // update is not. Each empty poll has its own offset, so none is held (see `get_updates`).
    let dropped = fake.press_stop(IVAN, 2).unwrap();
    assert_eq!(fake.draft_showing(IVAN), None, "Stop hides a draft without keep_on_stop");
    assert!(fake.press_stop(IVAN, 2).is_err(), "nothing is left to press");
    assert_eq!(poll(json!({"offset": 1})), json!([]));
    let presses = fake.stop_presses();
    assert_eq!((presses.len(), presses[0].update_id, presses[0].delivered), (1, dropped, false));
    // Other kinds outside the default set are dropped alike.
    fake.push(json!({"message_reaction": {"chat": tg::chat(IVAN), "message_id": 1}}));
    assert_eq!(poll(json!({"offset": 2, "allowed_updates": []})), json!([]));

    // Listed: the press comes as the documented update.
    let listed = json!({"offset": 3, "allowed_updates": ["message", "stopped_message_generation"]});
    assert_eq!(poll(listed), json!([]));
    let mut threaded = rich_draft(IVAN, 3, "<p>Растёт</p>");
    (threaded["can_stop"], threaded["message_thread_id"]) = (json!(true), json!(9));
    result(call(&agent, &fake, "sendRichMessageDraft", threaded));
    let id = fake.press_stop_on_showing_draft(IVAN).unwrap();
    let updates = poll(json!({"offset": 3}));
    let stopped = json!({"chat": tg::chat(IVAN), "message_thread_id": 9, "draft_id": 3});
    assert_eq!(updates, json!([{"update_id": id, "stopped_message_generation": stopped}]));
    assert!(fake.stop_presses()[1].delivered);
    // Drafts of the stopped id are not shown any more; the final message is sent as ever.
    draft(3, true);
    assert!(fake.drafts_to(IVAN).last().unwrap().after_stop);
    assert_eq!(fake.draft_showing(IVAN), None);
    result(call(&agent, &fake, "sendRichMessage", rich_message(IVAN, "<p>Растёт</p>")));
    assert_eq!(fake.sent_to(IVAN).len(), 1);
}

/// A peek (timeout 0, the offset of the last poll) returns what is pending and confirms
/// nothing; only a higher offset confirms. Polls are recorded for tests of how often a bot
/// peeks. As the real server does, an empty peek within 3 s of a poll with the same offset
/// is held 3 s (reference §2): a bot that peeks while it streams must not wait on it.
#[test]
fn a_peek_returns_pending_updates_without_confirming_them() {
    let fake = FakeTelegram::start();
    let agent = agent();
    fake.add_chat(tg::chat(IVAN));
    let poll = |params: Value| result(call(&agent, &fake, "getUpdates", params));
    let allowed = json!(["message", "stopped_message_generation"]);
    let question = fake.push_text(IVAN, IVAN, "Расскажи");
    let first = poll(json!({"timeout": 30, "allowed_updates": allowed}));
    assert_eq!(first[0]["update_id"].as_i64(), Some(question));
    let offset = question + 1;
    // The bot streams, peeking with the next offset: that confirms the question only.
    let mut params = rich_draft(IVAN, 1, "<p>Жил-был</p>");
    params["can_stop"] = json!(true);
    result(call(&agent, &fake, "sendRichMessageDraft", params));
    let stop = fake.press_stop(IVAN, 1).unwrap();
    let more = fake.push_text(IVAN, IVAN, "И ещё");
    let peek = json!({"offset": offset, "timeout": 0});
    for _ in 0..2 {
        let ids: Vec<_> = poll(peek.clone())
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["update_id"].as_i64())
            .collect();
        assert_eq!(ids, [Some(stop), Some(more)]);
        assert_eq!((fake.confirmed_offset(), fake.pending_updates()), (offset, 2));
        thread::sleep(Duration::from_millis(600)); // not "at once": no limit of 1
    }
    assert_eq!(
        poll(json!({"offset": stop + 1, "timeout": 0}))[0]["update_id"].as_i64(),
        Some(more)
    );
    assert_eq!((fake.confirmed_offset(), fake.pending_updates()), (stop + 1, 1));
    let started = Instant::now();
    assert_eq!(poll(json!({"offset": more + 1, "timeout": 0})), json!([]), "fresh offset: at once");
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(poll(json!({"offset": more + 1, "timeout": 0})), json!([]));
    assert!(started.elapsed() >= Duration::from_millis(2900), "held: {:?}", started.elapsed());

    let polls = fake.polls();
    let seen: Vec<_> =
        polls.iter().map(|p| (p.offset, p.timeout, p.is_peek(), p.update_ids.len())).collect();
    assert_eq!(
        seen,
        [
            (None, Some(30), false, 1),
            (Some(offset), Some(0), true, 2),
            (Some(offset), Some(0), true, 2),
            (Some(stop + 1), Some(0), true, 1),
            (Some(more + 1), Some(0), true, 0),
            (Some(more + 1), Some(0), true, 0),
        ]
    );
    assert_eq!(polls[0].allowed_updates, Some(allowed));
    assert_eq!(fake.peeks().len(), 5);
    assert!(polls[5].answered - polls[5].at >= Duration::from_millis(2900));
}

/// `Fault::RichRejected` refuses one rich call; `set_old_server` plays a server that does
/// not know the rich methods (404, as any unknown method) and has no Stop button.
#[test]
fn rich_rejected_and_an_older_server_without_rich_methods() {
    let fake = FakeTelegram::start();
    let agent = agent();
    fake.add_chat(tg::chat(IVAN));
    let send_rich = || call(&agent, &fake, "sendRichMessage", rich_message(IVAN, "<p>x</p>"));
    let draft = || call(&agent, &fake, "sendRichMessageDraft", rich_draft(IVAN, 1, "<p>x</p>"));
    fake.fail_next("sendRichMessage", Fault::RichRejected);
    fake.fail_next("sendRichMessageDraft", Fault::RichRejected);
    assert_error(send_rich(), 400, tg::RICH_REJECTED);
    assert_error(draft(), 400, tg::RICH_REJECTED);
    assert!(tg::RICH_REJECTED.starts_with(CANT_PARSE_RICH));
    result(send_rich());
    result(draft());
    assert_eq!((fake.sent_to(IVAN).len(), fake.drafts_to(IVAN).len()), (1, 1));

    fake.set_old_server(true);
    let unknown = "Not Found: method not found";
    assert_error(call(&agent, &fake, "getMee", json!({})), 404, unknown);
    assert_error(send_rich(), 404, unknown);
    assert_error(draft(), 404, unknown);
    assert_error(
        call(&agent, &fake, "SENDRICHMESSAGE", rich_message(IVAN, "<p>x</p>")),
        404,
        unknown,
    );
    // can_stop is an unknown parameter there: ignored, and no button is shown.
    let plain = json!({"chat_id": IVAN, "draft_id": 2, "text": "x", "can_stop": true});
    assert_eq!(result(call(&agent, &fake, "sendMessageDraft", plain)), json!(true));
    assert!(!fake.drafts_to(IVAN).last().unwrap().can_stop);
    assert!(fake.press_stop(IVAN, 2).unwrap_err().contains("older"));
    // The bot falls back to the parse mode, which any server knows.
    assert_eq!(result(send(&agent, &fake, IVAN, "<b>x</b>"))["text"], "x");
    fake.set_old_server(false);
    result(send_rich());
    assert_eq!(fake.sent_to(IVAN).iter().filter(|m| m.kind == tg::Kind::Rich).count(), 2);
}

// --- guest mode ---

/// An article whose message is `content` (an InputMessageContent).
fn article(content: Value) -> Value {
    json!({"type": "article", "id": "answer-1", "title": "Ответ", "input_message_content": content})
}

fn answer_guest(agent: &Agent, fake: &FakeTelegram, query: &str, result: Value) -> (u16, Value) {
    call(agent, fake, "answerGuestQuery", json!({"guest_query_id": query, "result": result}))
}

const QUERY_TOO_OLD: &str =
    "Bad Request: query is too old and response timeout expired or query ID is invalid";

/// getMe says whether the bot takes guest queries; with guest mode off, a test cannot push
/// a guest message, as Telegram would make none.
#[test]
fn get_me_says_whether_guest_mode_is_on() {
    let fake = FakeTelegram::start();
    let agent = agent();
    let me = result(call(&agent, &fake, "getMe", json!({})));
    assert_eq!(me["supports_guest_queries"], true, "{me}");
    fake.set_guest_mode(false);
    let me = result(call(&agent, &fake, "getMe", json!({})));
    assert_eq!(me["supports_guest_queries"], false, "{me}");
    let pushed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        fake.push_guest(tg::chat(GROUP), ANNA, "@SomeBot привет")
    }));
    let message = pushed.expect_err("no guest message without guest mode");
    let message = message.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("guest mode is off"), "{message}");
    // The fake still works after the refused push.
    fake.set_guest_mode(true);
    let (id, query) = fake.push_guest(tg::chat(GROUP), ANNA, "@SomeBot привет");
    assert_eq!(fake.update(id).unwrap()["guest_message"]["guest_query_id"], query);
}

/// A guest message reaches the bot only if allowed_updates lists guest_message (whether
/// the default set has it is UNCONFIRMED); it comes as the spec's Message with a
/// guest_query_id, and a reply_to_message the test gives comes along without its own reply.
#[test]
fn guest_messages_come_only_where_allowed_updates_list_them() {
    let fake = FakeTelegram::start();
    let agent = agent();
    let poll = |params: Value| result(call(&agent, &fake, "getUpdates", params));
    let (dropped, _) = fake.push_guest(tg::chat(GROUP), ANNA, "@SomeBot первый");
    assert_eq!(poll(json!({"offset": 1})), json!([]));
    assert!(fake.update(dropped).is_some(), "made, not delivered");
    assert_eq!(poll(json!({"offset": 2, "allowed_updates": ["message"]})), json!([]));

    assert_eq!(
        poll(json!({"offset": 3, "allowed_updates": ["message", "guest_message"]})),
        json!([])
    );
    let (id, query) = fake.push_guest(tg::chat(GROUP), ANNA, "@SomeBot сколько будет 2+2?");
    let updates = poll(json!({"offset": 4}));
    let message = json!({
        "message_id": 2, "from": tg::user(ANNA), "chat": tg::chat(GROUP),
        "date": updates[0]["guest_message"]["date"], "text": "@SomeBot сколько будет 2+2?",
        "guest_query_id": query, "entities": [{"offset": 0, "length": 8, "type": "mention"}],
    });
    assert_eq!(updates, json!([{"update_id": id, "guest_message": message}]));

    let mut message = tg::guest_message(tg::chat(-4001), IVAN, "@SomeBot а это?");
    let replied = json!({"message_id": 40, "from": tg::user(ANNA), "date": 1, "text": "контекст",
        "reply_to_message": {"message_id": 39}});
    message["reply_to_message"] = replied;
    let given = message["guest_query_id"].as_str().unwrap().to_string();
    let (second, query) = fake.push_guest_with(message);
    assert_ne!((given.as_str(), id), (query.as_str(), second), "fresh ids: {given}");
    assert_eq!(given, query, "the builder's guest_query_id is kept");
    let updates = poll(json!({"offset": id + 1}));
    let guest = &updates[0]["guest_message"];
    assert_eq!((updates[0]["update_id"].as_i64(), &guest["message_id"]), (Some(second), &json!(1)));
    assert_eq!(guest["reply_to_message"]["text"], "контекст");
    assert_eq!(guest["reply_to_message"]["chat"], tg::chat(-4001));
    assert_eq!(guest["reply_to_message"].get("reply_to_message"), None);
}

/// answerGuestQuery takes a rich article and a text one (HTML, here as a form's JSON
/// string), returns a SentGuestMessage, and keeps what users read; a query is answered
/// once, and the second try is recorded. Nothing goes into the bot's chats.
#[test]
fn answer_guest_query_takes_a_rich_or_an_html_article_once() {
    let fake = FakeTelegram::start();
    let agent = agent();
    let (_, first) = fake.push_guest(tg::chat(GROUP), ANNA, "@SomeBot формула?");
    let (_, second) = fake.push_guest(tg::chat(GROUP), IVAN, "@SomeBot коротко?");
    let html = "<h3>Ответ</h3><p>Пусть <tg-math>a^2</tg-math>.</p>";
    let mut rich = article(json!({"rich_message": {"html": html}}));
    rich["reply_markup"] = json!({"inline_keyboard": [[{"text": "Ещё", "callback_data": "more"}]]});
    rich["description"] = json!("формула");
    let sent = result(answer_guest(&agent, &fake, &first, rich.clone()));
    let inline_id = sent["inline_message_id"].as_str().unwrap().to_string();
    assert_eq!(sent, json!({"inline_message_id": inline_id}));

    let text = article(json!({"message_text": "<b>4</b>, конечно", "parse_mode": "HTML"}));
    let form = [("guest_query_id", second.clone()), ("result", text.to_string())];
    let answer = read(agent.post(method_url(&fake, "answerGuestQuery")).send_form(form), "");
    let other_id = answer.json()["result"]["inline_message_id"].as_str().unwrap().to_string();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_ne!(inline_id, other_id);

    assert_error(answer_guest(&agent, &fake, &first, rich), 400, QUERY_TOO_OLD);
    assert_eq!(
        fake.guest_attempts(&first).iter().map(|c| c.status).collect::<Vec<_>>(),
        [200, 400]
    );
    let answers = fake.guest_answers();
    assert_eq!(answers.len(), 2, "{answers:?}");
    let rich = fake.guest_answer(&first).unwrap();
    assert_eq!(
        (rich.kind, rich.text.as_str(), rich.html.as_str(), rich.chat_id, rich.from_id),
        (tg::Kind::Rich, "Ответ\nПусть a^2.", html, GROUP, ANNA)
    );
    assert_eq!((rich.inline_message_id.as_str(), rich.message_id), (inline_id.as_str(), 1));
    assert_eq!((rich.result_id.as_str(), rich.title.as_str()), ("answer-1", "Ответ"));
    assert_eq!(rich.blocks_of("heading")[0]["size"], 3);
    assert_eq!(rich.inline_of("mathematical_expression")[0]["expression"], "a^2");
    assert_eq!(rich.markup.unwrap()["inline_keyboard"][0][0]["callback_data"], "more");
    let text = &answers[1];
    assert_eq!((text.kind, text.text.as_str(), text.from_id), (tg::Kind::Html, "4, конечно", IVAN));
    assert_eq!(text.entities, [json!({"offset": 0, "length": 1, "type": "bold"})]);
    assert_eq!((text.parse_mode.as_deref(), text.blocks.len()), (Some("HTML"), 0));
    assert!(answers[0].at <= answers[1].at);
    assert!(fake.sent().is_empty(), "a guest answer is no message of the bot's chats");
}

/// The article is read before the query is looked at, so refusals leave it answerable; an
/// unknown id is "query is too old" as for inline queries; faults apply as to any method.
#[test]
fn answer_guest_query_refuses_a_malformed_article() {
    let fake = FakeTelegram::start();
    let agent = agent();
    let (_, query) = fake.push_guest(tg::chat(GROUP), ANNA, "@SomeBot вопрос");
    let answer = |result: Value| answer_guest(&agent, &fake, &query, result);
    let text = |message_text: &str| article(json!({"message_text": message_text}));
    let result_error = |why: &str| format!("Bad Request: can't parse inline query result: {why}");
    assert_error(answer_guest(&agent, &fake, "123", text("x")), 400, QUERY_TOO_OLD);
    let mut photo = text("x");
    photo["type"] = json!("photo");
    let only_article = result_error("the fake reads only type \"article\", not \"photo\"");
    assert_error(answer(photo), 400, &only_article);
    let mut untitled = text("x");
    untitled.as_object_mut().unwrap().remove("title");
    assert_error(answer(untitled), 400, &result_error("Field \"title\" must be of type String"));
    let mut blank = text("x");
    blank["title"] = json!(" ");
    let empty_title = result_error("Field \"title\" must be non-empty (the fake's rule)");
    assert_error(answer(blank), 400, &empty_title);
    let mut long_id = text("x");
    long_id["id"] = json!("я".repeat(33));
    assert_error(answer(long_id), 400, "Bad Request: RESULT_ID_INVALID");
    let mut extra = text("x");
    extra["caption"] = json!("x");
    assert_error(answer(extra), 400, &result_error("unknown field \"caption\" (the fake's rule)"));
    let mut keyboard = text("x");
    keyboard["reply_markup"] = json!({"keyboard": [[{"text": "да"}]]});
    let not_inline = "Bad Request: can't parse inline keyboard markup JSON object";
    assert_error(answer(keyboard), 400, not_inline);
    let not_object = "Bad Request: can't parse inline query result JSON object";
    assert_error(answer(json!([text("x")])), 400, not_object);
    let missing = call(&agent, &fake, "answerGuestQuery", json!({"guest_query_id": query}));
    assert_error(missing, 400, "Bad Request: parameter \"result\" is required");
    fake.fail_next("answerGuestQuery", Fault::TooManyRequests(3));
    assert_error(answer(text("x")), 429, "Too Many Requests: retry after 3");

    assert!(fake.guest_answers().is_empty());
    let mut longest_id = text("x");
    longest_id["id"] = json!("я".repeat(32));
    result(answer(longest_id));
    assert_eq!(fake.guest_answer(&query).unwrap().result_id.len(), 64);
}

/// The message content is read as sendMessage reads a text and sendRichMessage a rich
/// message, and is exactly one of the two.
#[test]
fn answer_guest_query_reads_its_content_as_the_send_methods_do() {
    let fake = FakeTelegram::start();
    let agent = agent();
    let (_, query) = fake.push_guest(tg::chat(GROUP), ANNA, "@SomeBot вопрос");
    let answer = |content: Value| answer_guest(&agent, &fake, &query, article(content));
    let one = "Bad Request: can't parse input message content: exactly one of the fields \
               message_text or rich_message must be used (the fake's rule)";
    assert_error(
        answer(json!({"message_text": "x", "rich_message": {"html": "<p>x</p>"}})),
        400,
        one,
    );
    assert_error(answer(json!({"parse_mode": "HTML"})), 400, one);
    let entities = answer(json!({"message_text": "x", "entities": []}));
    assert_eq!(entities.0, 400, "the fake reads parse_mode HTML only: {}", entities.1);
    let too_long = json!({"message_text": "ж".repeat(4097)});
    assert_error(answer(too_long), 400, "Bad Request: message is too long");
    let blank = json!({"message_text": "<b> </b>", "parse_mode": "HTML"});
    assert_error(answer(blank), 400, "Bad Request: text must be non-empty");
    let (status, body) = answer(json!({"message_text": "<b>x", "parse_mode": "HTML"}));
    let description = body["description"].as_str().unwrap_or_default();
    assert!(
        status == 400 && description.starts_with("Bad Request: can't parse entities: "),
        "{body}"
    );
    let media = "<p>x</p><img src=\"http://evil.example/a.png\">";
    let (status, body) = answer(json!({"rich_message": {"html": media}}));
    let description = body["description"].as_str().unwrap_or_default();
    assert!(status == 400 && description.starts_with(CANT_PARSE_RICH), "{body}");
    let media = fake.rich_media();
    assert_eq!((media.len(), media[0].method), (1, "answerGuestQuery"));
    let unknown = answer(json!({"rich_message": {"html": "<p>x</p>"}, "is_rtl": true}));
    assert_eq!(unknown.0, 400, "{}", unknown.1);
    let blink = json!({"rich_message": {"html": "<p><blink>x</blink></p>"}});
    let unsupported = format!("{CANT_PARSE_RICH}Unsupported start tag \"blink\" at byte offset 3");
    assert_error(answer(blink), 400, &unsupported);

    assert!(fake.guest_answers().is_empty());
    result(answer(json!({"message_text": "ж".repeat(4096)})));
    let answered = fake.guest_answer(&query).unwrap();
    assert_eq!((answered.kind, answered.text.chars().count()), (tg::Kind::Plain, 4096));
}

/// A guest query lives `set_guest_query_lifetime` (60 s by default, UNCONFIRMED), or until
/// `expire_guest_queries`.
#[test]
fn a_guest_query_expires() {
    let fake = FakeTelegram::start();
    let agent = agent();
    let (_, kept) = fake.push_guest(tg::chat(GROUP), ANNA, "@SomeBot раз");
    fake.set_guest_query_lifetime(Duration::from_millis(200));
    let (_, late) = fake.push_guest(tg::chat(GROUP), ANNA, "@SomeBot два");
    thread::sleep(Duration::from_millis(300));
    assert_error(
        answer_guest(&agent, &fake, &late, article(json!({"message_text": "x"}))),
        400,
        QUERY_TOO_OLD,
    );
    fake.set_guest_query_lifetime(Duration::from_secs(60));
    fake.expire_guest_queries();
    assert_error(
        answer_guest(&agent, &fake, &kept, article(json!({"message_text": "x"}))),
        400,
        QUERY_TOO_OLD,
    );
    let (_, fresh) = fake.push_guest(tg::chat(GROUP), ANNA, "@SomeBot три");
    result(answer_guest(&agent, &fake, &fresh, article(json!({"message_text": "x"}))));
    assert_eq!(fake.guest_answers().len(), 1);
}

/// The bot is not a member of a chat it was summoned in: every way of writing there is 403
/// (a private one: it cannot start that chat). A guest chat sharing its id with a chat of
/// the bot's does not close that chat, and answering the guest puts nothing into it.
#[test]
fn a_guest_chat_is_closed_to_the_bot_unless_it_is_one_of_its_chats() {
    let fake = FakeTelegram::start();
    let agent = agent();
    fake.push_guest(tg::chat(GROUP), ANNA, "@SomeBot привет");
    fake.push_guest(tg::chat(-4001), ANNA, "@SomeBot привет");
    fake.push_guest(tg::chat(5555), ANNA, "@SomeBot привет");
    let not_member = "Forbidden: bot is not a member of the supergroup chat";
    assert_error(send(&agent, &fake, GROUP, "x"), 403, not_member);
    assert_error(
        call(&agent, &fake, "sendRichMessage", rich_message(GROUP, "<p>x</p>")),
        403,
        not_member,
    );
    let typing = json!({"chat_id": GROUP, "action": "typing"});
    assert_error(call(&agent, &fake, "sendChatAction", typing), 403, not_member);
    let edit = json!({"chat_id": GROUP, "message_id": 1, "text": "x"});
    assert_error(call(&agent, &fake, "editMessageText", edit), 403, not_member);
    let group = "Forbidden: bot is not a member of the group chat";
    assert_error(send(&agent, &fake, -4001, "x"), 403, group);
    let cant = "Forbidden: bot can't initiate conversation with a user";
    assert_error(send(&agent, &fake, 5555, "x"), 403, cant);
    let draft = call(
        &agent,
        &fake,
        "sendMessageDraft",
        json!({"chat_id": 5555, "draft_id": 1, "text": "x"}),
    );
    assert_error(draft, 403, cant);
    assert_error(send(&agent, &fake, -4002, "x"), 400, "Bad Request: chat not found");

    fake.push_text(IVAN, IVAN, "привет");
    let (_, query) = fake.push_guest(tg::chat(IVAN), ANNA, "@SomeBot ответь");
    result(answer_guest(&agent, &fake, &query, article(json!({"message_text": "гостевой"}))));
    assert!(fake.sent_to(IVAN).is_empty(), "the guest answer is not in Ivan's chat");
    result(send(&agent, &fake, IVAN, "своё"));
    assert_eq!(fake.sent_to(IVAN).len(), 1, "Ivan's own chat stays open");
    // Added to the group later, the bot may write there.
    fake.push_text(GROUP, ANNA, "добавили бота");
    result(send(&agent, &fake, GROUP, "x"));
}

// --- GigaChat ---

fn trusting(fake: &FakeGigaChat) -> Agent {
    let pem = std::fs::read(fake.ca_pem_path()).expect("read ca.pem");
    tls_agent(Certificate::from_pem(&pem).expect("a PEM certificate"))
}

/// An OAuth request with these headers (besides Content-Length) and body.
fn oauth_with(agent: &Agent, fake: &FakeGigaChat, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut request = agent.post(fake.auth_url());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    read(request.send(body), "")
}

fn token(agent: &Agent, fake: &FakeGigaChat) -> String {
    let key = format!("Basic {}", fake.credentials());
    let rquid = uuid::Uuid::new_v4().to_string();
    let headers = [
        ("Authorization", key.as_str()),
        ("RqUID", rquid.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let answer = oauth_with(agent, fake, &headers, "scope=GIGACHAT_API_PERS");
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()["access_token"].as_str().unwrap().to_string()
}

fn completion(agent: &Agent, fake: &FakeGigaChat, token: &str, body: &Value) -> Answer {
    let request = agent
        .post(format!("{}/chat/completions", fake.base_url()))
        .header("Authorization", format!("Bearer {token}"))
        .header("X-Request-ID", "req-1");
    read(request.header("Content-Type", "application/json").send(body.to_string()), "x-request-id")
}

fn ask(text: &str) -> Value {
    json!({"model": "GigaChat-2-Max", "messages": [{"role": "user", "content": text}]})
}

#[test]
fn oauth_issues_tokens_like_the_real_service() {
    let fake = FakeGigaChat::start();
    let agent = trusting(&fake);
    assert_eq!(fake.credentials(), "dGVzdC1jbGllbnQtaWQ6dGVzdC1jbGllbnQtc2VjcmV0");
    let key = format!("Basic {}", fake.credentials());
    let rquid = uuid::Uuid::new_v4().to_string();
    let headers = [
        ("Authorization", key.as_str()),
        ("RqUID", rquid.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let answer = oauth_with(&agent, &fake, &headers, "scope=GIGACHAT_API_PERS");
    assert_eq!((answer.status, answer.content_type.as_str()), (200, "application/json"));
    let body = answer.json();
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
            as i64;
    let expires_in = body["expires_at"].as_i64().unwrap() - now_ms;
    assert!((29 * 60_000..=30 * 60_000 + 1000).contains(&expires_in), "{expires_in} ms");
    assert!(body["access_token"].as_str().unwrap().len() > 1000);
    assert_eq!(fake.oauth_requests()[0].header("rquid"), Some(rquid.as_str()));

    let check = |headers: &[(&str, &str)], body: &str, status: u16, expected: &str| {
        let answer = oauth_with(&agent, &fake, headers, body);
        assert_eq!((answer.status, answer.body.as_str()), (status, expected), "{headers:?} {body}");
    };
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let auth = ("Authorization", key.as_str());
    let id = ("RqUID", rquid.as_str());
    let scope = "scope=GIGACHAT_API_PERS";
    check(&[auth, form], scope, 400, "");
    check(&[auth, ("RqUID", "8da54264"), form], scope, 400, "");
    check(&[auth, ("RqUID", "6ba7b810-9dad-11d1-80b4-00c04fd430c8"), form], scope, 400, "");
    let undecodable = r#"{"code":4,"message":"Can't decode 'Authorization' header"}"#;
    let bearer = format!("Bearer {}", fake.credentials());
    check(&[("Authorization", bearer.as_str()), id, form], scope, 400, undecodable);
    check(&[("Authorization", "Basic not base64!"), id, form], scope, 400, undecodable);
    let wrong = format!("Basic {}", "d3Jvbmc6Y3JlZHM="); // "wrong:creds"
    check(
        &[("Authorization", wrong.as_str()), id, form],
        scope,
        401,
        r#"{"code":6,"message":"credentials doesn't match db data"}"#,
    );
    check(&[auth, id, form], "", 400, r#"{"code":5,"message":"scope is empty"}"#);
    check(
        &[auth, id, ("Content-Type", "application/json")],
        r#"{"scope":"GIGACHAT_API_PERS"}"#,
        400,
        r#"{"code":5,"message":"scope is empty"}"#,
    );
    check(
        &[auth, id, form],
        "scope=GIGACHAT_API_XYZ",
        400,
        r#"{"code":1,"message":"scope data format invalid"}"#,
    );
    check(
        &[auth, id, form],
        "scope=GIGACHAT_API_B2B",
        400,
        r#"{"code":7,"message":"scope from db not fully includes consumed scope"}"#,
    );
    fake.fail_next_oauth(429, "");
    check(&[auth, id, form], scope, 429, "");
    assert_eq!(oauth_with(&agent, &fake, &[auth, id, form], scope).status, 200);
}

#[test]
fn chat_completion_answers_in_the_recorded_shape() {
    let fake = FakeGigaChat::start();
    let agent = trusting(&fake);
    let token = token(&agent, &fake);
    let body = json!({
        "model": "GigaChat-2-Max",
        "messages": [
            {"role": "system", "content": "Пиши как пират"},
            {"role": "user", "content": "Привет"},
            {"role": "assistant", "content": "Йо-хо"},
            {"role": "user", "content": "Как дела?"},
        ],
        "temperature": 0.7,
        "max_tokens": 500,
        "profanity_check": true,
    });
    let answer = completion(&agent, &fake, &token, &body);
    assert_eq!(
        (answer.status, answer.content_type.as_str()),
        (200, "application/json; charset=utf-8"),
        "{}",
        answer.body
    );
    assert_eq!(answer.header.as_deref(), Some("req-1"), "X-Request-Id echoes the client's");
    let reply = answer.json();
    let keys: Vec<&String> = reply.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["choices", "created", "model", "object", "usage"]);
    assert_eq!(
        reply["choices"][0]["message"],
        json!({"content": "Ответ (Пиши как пират): Как дела? [сообщений: 4]", "role": "assistant"})
    );
    assert_eq!(
        (&reply["choices"][0]["index"], &reply["choices"][0]["finish_reason"]),
        (&json!(0), &json!("stop"))
    );
    assert_eq!(
        (&reply["model"], &reply["object"]),
        (&json!("GigaChat-2-Max:2.0.28.2"), &json!("chat.completion"))
    );
    let usage = &reply["usage"];
    let sum =
        usage["prompt_tokens"].as_i64().unwrap() + usage["completion_tokens"].as_i64().unwrap();
    assert_eq!(usage["total_tokens"].as_i64(), Some(sum));
    assert!(usage["precached_prompt_tokens"].is_i64());
    assert_eq!(answer.body, reply.to_string(), "compact JSON");

    let recorded = &fake.chat_requests()[0];
    assert_eq!(
        (recorded.status, recorded.temperature, recorded.max_tokens, recorded.stream),
        (200, Some(0.7), Some(500), false)
    );
    assert_eq!(
        (recorded.system(), recorded.last_user()),
        (Some("Пиши как пират"), Some("Как дела?"))
    );
    assert_eq!(recorded.header("x-request-id"), Some("req-1"));
    assert_eq!(recorded.body["profanity_check"], true, "unknown fields are allowed");
    assert_eq!(gc::default_answer(recorded), "Ответ (Пиши как пират): Как дела? [сообщений: 4]");
}

#[test]
fn chat_completion_rejects_bad_requests() {
    let fake = FakeGigaChat::start();
    let agent = trusting(&fake);
    let token = token(&agent, &fake);
    let check = |token: &str, body: &Value, status: u16, expected: &str| {
        let answer = completion(&agent, &fake, token, body);
        assert_eq!((answer.status, answer.body.as_str()), (status, expected), "{body}");
    };
    check("nope", &ask("x"), 401, r#"{"status":401,"message":"Unauthorized"}"#);
    let no_such_model = "{\"status\":404,\"message\":\"No such model\"}\n";
    check(
        &token,
        &json!({"model": "GigaChat-9", "messages": [{"role": "user", "content": "x"}]}),
        404,
        no_such_model,
    );
    check(
        &token,
        &json!({"model": "Embeddings", "messages": [{"role": "user", "content": "x"}]}),
        404,
        no_such_model,
    );
    check(&token, &json!({"messages": [{"role": "user", "content": "x"}]}), 404, no_such_model);
    let not_first = json!({"model": "GigaChat", "messages": [{"role": "user", "content": "x"}, {"role": "system", "content": "s"}]});
    check(
        &token,
        &not_first,
        422,
        r#"{"status":422,"message":"Invalid params: system message must be the first message"}"#,
    );
    let cold = json!({"model": "GigaChat", "messages": [{"role": "user", "content": "x"}], "temperature": 0});
    check(
        &token,
        &cold,
        422,
        r#"{"status":422,"message":"Invalid params: temperature must be in range (0, +inf)"}"#,
    );
    for body in [
        json!({"model": "GigaChat", "messages": []}),
        json!({"model": "GigaChat", "messages": [{"role": "bot", "content": "x"}]}),
        json!({"model": "GigaChat", "messages": [{"role": "user"}]}),
        json!({"model": "GigaChat", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}),
    ] {
        assert_eq!(completion(&agent, &fake, &token, &body).status, 422, "{body}");
    }
    let not_json = agent
        .post(format!("{}/chat/completions", fake.base_url()))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send("{not json");
    assert_eq!(read(not_json, "").status, 400);

    // Expiry: all tokens at once, or by a short lifetime.
    assert_eq!(completion(&agent, &fake, &token, &ask("x")).status, 200);
    fake.expire_all_tokens();
    check(&token, &ask("x"), 401, r#"{"status":401,"message":"Token has expired"}"#);
    fake.set_token_ttl(Duration::ZERO);
    let short = self::token(&agent, &fake);
    check(&short, &ask("x"), 401, r#"{"status":401,"message":"Token has expired"}"#);
    fake.set_token_ttl(Duration::from_secs(60));
    let fresh = self::token(&agent, &fake);
    assert_eq!(completion(&agent, &fake, &fresh, &ask("x")).status, 200);
}

#[test]
fn only_one_completion_at_a_time() {
    let fake = FakeGigaChat::start();
    let agent = trusting(&fake);
    let token = token(&agent, &fake);
    fake.push_reply(Reply::Delay(
        Duration::from_millis(300),
        Box::new(Reply::Text("медленно".into())),
    ));
    let slow = {
        let (agent, url, token) =
            (agent.clone(), format!("{}/chat/completions", fake.base_url()), token.clone());
        thread::spawn(move || {
            let request = agent.post(url).header("Authorization", format!("Bearer {token}"));
            read(
                request
                    .header("Content-Type", "application/json")
                    .send(ask("долгий вопрос").to_string()),
                "",
            )
            .json()
        })
    };
    fake.wait_until(WAIT, "the slow request is being answered", |f| f.in_flight() == 1);
    let answer = completion(&agent, &fake, &token, &ask("второй"));
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (429, r#"{"status":429,"message":"Too many requests"}"#)
    );
    assert_eq!(slow.join().unwrap()["choices"][0]["message"]["content"], "медленно");
    assert_eq!(completion(&agent, &fake, &token, &ask("третий")).status, 200);
}

#[test]
fn random_gigachat_faults_are_reproducible_from_the_seed() {
    let run = |seed: u64| -> (Vec<u16>, Vec<u16>) {
        let fake = FakeGigaChat::start();
        let agent = trusting(&fake);
        let token = token(&agent, &fake);
        let rates = gc::FaultRates { server_error: 0.2, dropped: 0.2, expire_tokens_every: 0 };
        fake.set_random_faults(seed, rates);
        for _ in 0..30 {
            let _ = agent
                .post(format!("{}/chat/completions", fake.base_url()))
                .header("Authorization", format!("Bearer {token}"))
                .header("Content-Type", "application/json")
                .send(ask("x").to_string());
        }
        for _ in 0..10 {
            let _ = agent
                .post(fake.auth_url())
                .header("Authorization", format!("Basic {}", fake.credentials()))
                .header("RqUID", uuid::Uuid::new_v4().to_string())
                .header("Content-Type", "application/x-www-form-urlencoded")
                .send("scope=GIGACHAT_API_PERS");
        }
        let chat = fake.chat_requests().iter().map(|r| r.status).collect();
        let oauth = fake.oauth_requests().iter().map(|r| r.status).collect();
        (chat, oauth)
    };
    let first = run(7);
    assert_eq!(first, run(7));
    assert_ne!(first, run(8));
    let (chat, oauth) = first;
    for status in [0, 200] {
        assert!(chat.contains(&status), "{status} in {chat:?}");
    }
    assert!(chat.iter().any(|s| [500, 503].contains(s)), "{chat:?}");
    assert!(oauth.iter().any(|s| *s != 200), "OAuth gets faults too: {oauth:?}");
    assert_eq!(oauth[0], 200, "the first token came before the faults");
}

#[test]
fn tokens_expire_every_n_chat_requests() {
    let fake = FakeGigaChat::start();
    let agent = trusting(&fake);
    let rates = gc::FaultRates { server_error: 0.0, dropped: 0.0, expire_tokens_every: 3 };
    fake.set_random_faults(1, rates);
    let mut token = token(&agent, &fake);
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let answer = completion(&agent, &fake, &token, &ask("x"));
        if answer.status == 401 {
            assert_eq!(answer.body, r#"{"status":401,"message":"Token has expired"}"#);
            token = self::token(&agent, &fake);
        }
        statuses.push(answer.status);
    }
    assert_eq!(statuses, [200, 200, 401, 200, 200, 401, 200]);
}

#[test]
fn a_gigachat_kill_hook_runs_in_place_of_the_nth_chat_request() {
    let fake = FakeGigaChat::start();
    let agent = trusting(&fake);
    let token = token(&agent, &fake);
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    fake.set_kill_hook(2, move || flag.store(true, Ordering::SeqCst));
    assert_eq!(completion(&agent, &fake, &token, &ask("первый")).status, 200);
    assert!(!ran.load(Ordering::SeqCst));
    let dropped = agent
        .post(format!("{}/chat/completions", fake.base_url()))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(ask("второй").to_string());
    assert!(dropped.is_err(), "the connection is closed without an answer");
    assert!(ran.load(Ordering::SeqCst), "the hook ran");
    assert!(!fake.kill_hook_pending());
    assert_eq!(fake.in_flight(), 0, "the killed request holds no stream");
    assert_eq!(completion(&agent, &fake, &token, &ask("третий")).status, 200);
    let statuses: Vec<u16> = fake.chat_requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 0, 200]);
}

/// The `data:` payloads of an SSE body, and whether it ended cleanly.
fn sse_events(
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> (Vec<String>, bool) {
    let response = response.expect("an HTTP answer");
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut events = Vec::new();
    let mut lines = BufReader::new(response.into_body().into_reader()).lines();
    let mut blank_after_each = true;
    loop {
        match lines.next() {
            Some(Ok(line)) if line.is_empty() => {}
            Some(Ok(line)) => {
                events.push(line.strip_prefix("data: ").expect("data lines only").to_string());
                blank_after_each &= matches!(lines.next(), Some(Ok(blank)) if blank.is_empty());
            }
            Some(Err(_)) => return (events, false),
            None => return (events, blank_after_each),
        }
    }
}

#[test]
fn streaming_matches_the_recorded_events() {
    let fake = FakeGigaChat::start();
    let agent = trusting(&fake);
    let token = token(&agent, &fake);
    let stream = |body: Value| {
        agent
            .post(format!("{}/chat/completions", fake.base_url()))
            .header("Authorization", format!("Bearer {token}"))
            .header("Accept", "text/event-stream")
            .header("Content-Type", "application/json")
            .send(body.to_string())
    };
    let mut body = ask("Посчитай до трёх");
    body["stream"] = json!(true);
    fake.set_stream_speed(2000.0, Some((3, Duration::from_millis(5))));
    fake.set_stream_piece_chars(8);
    let (events, clean) = sse_events(stream(body.clone()));
    assert!(clean);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> =
        events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert!(chunks.len() >= 3, "{events:?}");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let last = chunks.last().unwrap();
    assert_eq!(
        (&last["choices"][0]["delta"], &last["choices"][0]["finish_reason"]),
        (&json!({"content": ""}), &json!("stop"))
    );
    assert!(last["usage"]["total_tokens"].is_i64());
    for chunk in &chunks[1..chunks.len() - 1] {
        let choice = &chunk["choices"][0];
        assert!(
            choice["delta"].get("role").is_none() && choice.get("finish_reason").is_none(),
            "{chunk}"
        );
        assert_eq!(
            (&chunk["object"], &chunk["model"]),
            (&json!("chat.completion"), &json!("GigaChat-2-Max:2.0.28.2"))
        );
    }
    let text: String =
        chunks.iter().map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap()).collect();
    assert_eq!(text, "Ответ (без стиля): Посчитай до трёх [сообщений: 1]");
    assert!(fake.chat_requests()[0].stream);

    fake.set_stream_speed(0.0, None);
    fake.push_reply(Reply::StreamCut("раз два три четыре".into(), 2));
    let (events, clean) = sse_events(stream(body));
    assert!(!clean, "a cut stream ends in an error");
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(!events.contains(&"[DONE]".to_string()));
}

#[test]
fn replies_can_be_scripted() {
    let fake = FakeGigaChat::start();
    let agent = trusting(&fake);
    let token = token(&agent, &fake);
    fake.push_reply(Reply::Finish("Не люблю менять тему разговора".into(), "blacklist"));
    fake.push_reply(Reply::Status(
        500,
        r#"{"status":500,"message":"Internal Server Error"}"#.into(),
    ));
    fake.push_reply(Reply::Garbage("<html>oops</html>".into()));
    fake.push_reply(Reply::Drop);
    let answer = completion(&agent, &fake, &token, &ask("x"));
    assert_eq!(answer.json()["choices"][0]["finish_reason"], "blacklist");
    let answer = completion(&agent, &fake, &token, &ask("x"));
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (500, r#"{"status":500,"message":"Internal Server Error"}"#)
    );
    let answer = completion(&agent, &fake, &token, &ask("x"));
    assert_eq!((answer.status, answer.body.as_str()), (200, "<html>oops</html>"));
    let dropped = agent
        .post(format!("{}/chat/completions", fake.base_url()))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(ask("x").to_string());
    assert!(dropped.is_err());
    fake.set_responder(|request| {
        Reply::Text(format!("эхо: {}", request.last_user().unwrap_or("")))
    });
    assert_eq!(
        completion(&agent, &fake, &token, &ask("звук")).json()["choices"][0]["message"]["content"],
        "эхо: звук"
    );
    let statuses: Vec<u16> = fake.chat_requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 500, 200, 0, 200]);
}

#[test]
fn models_are_listed_for_a_valid_token() {
    let fake = FakeGigaChat::start();
    let agent = trusting(&fake);
    let token = token(&agent, &fake);
    let get = |path: &str, token: &str| {
        read(
            agent
                .get(format!("{}{path}", fake.base_url()))
                .header("Authorization", format!("Bearer {token}"))
                .call(),
            "",
        )
    };
    let list = get("/models", &token).json();
    assert_eq!(list["object"], "list");
    assert_eq!(list["data"].as_array().unwrap().len(), 20);
    assert_eq!(
        list["data"][0],
        json!({"id": "GigaChat", "object": "model", "owned_by": "salutedevices", "type": "chat"})
    );
    assert_eq!(get("/models", "nope").status, 401);
    assert_eq!(get("/models/GigaChat-2", &token).json()["id"], "GigaChat-2");
    assert_eq!(get("/models/Nope", &token).status, 404);
}

#[test]
fn tls_trusts_only_the_fake_ca_and_keeps_connections() {
    let fake = FakeGigaChat::start();
    let other = std::fs::read(fake.other_ca_pem_path()).unwrap();
    let wrong = tls_agent(Certificate::from_pem(&other).unwrap());
    let error = wrong
        .post(fake.auth_url())
        .send("scope=GIGACHAT_API_PERS")
        .expect_err("an untrusted server");
    let message = error.to_string();
    assert!(message.contains("certificate") || message.contains("issuer"), "{message}");

    let der = std::fs::read(fake.ca_der_path()).unwrap();
    let by_der = tls_agent(Certificate::from_der(&der).to_owned());
    token(&by_der, &fake);

    let before = fake.connections();
    let agent = trusting(&fake);
    let token = token(&agent, &fake);
    for _ in 0..3 {
        assert_eq!(completion(&agent, &fake, &token, &ask("x")).status, 200);
    }
    assert_eq!(fake.connections() - before, 1, "one TLS connection for four requests");
    assert!(fake.ca_pem_path().exists());
    let dir = fake.ca_pem_path().parent().unwrap().to_path_buf();
    drop(fake);
    assert!(!dir.exists(), "the certificates are removed with the fake");
}

/// A quoted `filename` may hold `;` and `\"` (RFC 7578 §4.2); the fake's multipart parser
/// takes it whole, and refuses an unclosed quote.
#[test]
fn gigachat_uploads_keep_quoted_filenames_whole() {
    let fake = FakeGigaChat::start();
    let agent = trusting(&fake);
    let token = token(&agent, &fake);
    let purpose: FormPart = ("purpose", None, None, b"general");
    let named = |filename: &str| {
        let file: FormPart = ("file", Some(filename), Some("application/pdf"), b"%PDF-1.7");
        upload(&agent, &fake, &token, None, &[purpose, file])
    };
    let (status, file) = named("a;b.pdf");
    assert_eq!((status, &file["filename"]), (200, &json!("a;b.pdf")), "{file}");
    let (status, file) = named(r#"отчёт \"Q1\"; final.pdf"#);
    assert_eq!((status, &file["filename"]), (200, &json!(r#"отчёт "Q1"; final.pdf"#)), "{file}");
    let (status, _) = named(r#"open.pdf\"; name=\"x"#);
    assert_eq!(status, 200, "an escaped quote does not end the value");
    assert_eq!(fake.files()[2].filename, r#"open.pdf"; name="x"#);
    let (status, body) = named(r#"unclosed.pdf\"#);
    assert_eq!(
        (status, body),
        (400, json!({"status": 400, "message": "malformed multipart body"}))
    );
}

/// At most 10 attachments in a request, and its images and audio under 80 MB together
/// (gigachat-api.md §2, gigachat-media.md §1.5): over either, a 4xx.
#[test]
fn gigachat_limits_the_attachments_of_a_request() {
    let fake = FakeGigaChat::start();
    let agent = trusting(&fake);
    let token = token(&agent, &fake);
    let purpose: FormPart = ("purpose", None, None, b"general");
    let stored = |name: &str, mime: &str, bytes: &[u8]| {
        let (status, file) = upload(
            &agent,
            &fake,
            &token,
            None,
            &[purpose, ("file", Some(name), Some(mime), bytes)],
        );
        assert_eq!(status, 200, "{file}");
        file["id"].as_str().unwrap().to_string()
    };
    let ask_about = |ids: &[Vec<String>]| {
        let messages: Vec<Value> = ids
            .iter()
            .map(|ids| json!({"role": "user", "content": "Что это?", "attachments": ids}))
            .collect();
        let body = json!({"model": "GigaChat-2-Max", "messages": messages});
        completion(&agent, &fake, &token, &body)
    };
    // One image per message, eleven messages: ten pass, eleven do not.
    let images: Vec<Vec<String>> =
        (0..11).map(|i| vec![stored(&format!("{i}.jpg"), "image/jpeg", b"\xFF\xD8\xFF")]).collect();
    assert_eq!(ask_about(&images[..10]).status, 200);
    let answer = ask_about(&images);
    assert_eq!(
        (answer.status, answer.json()),
        (
            422,
            json!({"status": 422, "message": "Invalid params: too many attachments: 11 (at most 10 per request)"})
        )
    );
    // Audio and images together under 80 MB; text files do not count.
    let audio = vec![0u8; 27 << 20];
    let three: Vec<String> =
        (0..3).map(|i| stored(&format!("{i}.mp3"), "audio/mp3", &audio)).collect();
    let text = stored("big.txt", "text/plain", &vec![b'a'; 30 << 20]);
    let answer = ask_about(&[vec![three[0].clone(), three[1].clone(), text]]);
    assert_eq!(answer.status, 200, "54 MB of audio and a text file: {}", answer.body);
    let answer = ask_about(std::slice::from_ref(&three));
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (413, r#"{"status":413,"message":"Payload too large"}"#)
    );
}

// --- GigaChat: prompt caching and balance ---

/// A chat completion in a session (`X-Session-ID`), or in none.
fn completion_in(
    agent: &Agent,
    fake: &FakeGigaChat,
    token: &str,
    session: Option<&str>,
    body: &Value,
) -> Answer {
    let mut request = agent
        .post(format!("{}/chat/completions", fake.base_url()))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json");
    if let Some(session) = session {
        request = request.header("X-Session-ID", session);
    }
    read(request.send(body.to_string()), "x-session-id")
}

/// The `usage` of a whole answer, checked to be 200 and to add up as the recording does.
fn usage(answer: &Answer) -> (i64, i64) {
    assert_eq!(answer.status, 200, "{}", answer.body);
    let usage = &answer.json()["usage"];
    let field = |name: &str| usage[name].as_i64().unwrap_or_else(|| panic!("{name}: {usage}"));
    let (prompt, cached) = (field("prompt_tokens"), field("precached_prompt_tokens"));
    assert_eq!(field("total_tokens"), prompt + field("completion_tokens"), "{usage}");
    (prompt, cached)
}

/// A conversation: the system prompt, then user and assistant turns alternating.
fn conversation(turns: &[&str]) -> Value {
    let mut messages = vec![json!({"role": "system", "content": "Отвечай кратко и по делу."})];
    for (i, text) in turns.iter().enumerate() {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        messages.push(json!({"role": role, "content": text}));
    }
    json!({"model": "GigaChat-2-Max", "messages": messages})
}

/// The second request of a session within the TTL reports the messages both begin with as
/// precached (their tokens as the fake counts them: 4 characters each), whole or streamed.
#[test]
fn a_session_repeating_its_prompt_within_the_ttl_is_precached() {
    let fake = FakeGigaChat::start();
    let agent = trusting(&fake);
    let token = token(&agent, &fake);
    let first = completion_in(&agent, &fake, &token, Some("s-1"), &conversation(&["Привет"]));
    assert_eq!(usage(&first).1, 0, "nothing cached yet");
    let longer = conversation(&["Привет", "Здравствуйте", "Как дела?"]);
    let (prompt, cached) = usage(&completion_in(&agent, &fake, &token, Some("s-1"), &longer));
    let shared = "Отвечай кратко и по делу.Привет".chars().count() as i64;
    assert_eq!(cached, (shared + 3) / 4, "the system prompt and the first question");
    assert!(0 < cached && cached < prompt, "{cached} of {prompt}");
    let recorded = fake.usage_of(1).expect("a completion's usage is recorded");
    assert_eq!(
        (recorded.precached_prompt_tokens, recorded.prompt_tokens),
        (cached as u64, prompt as u64)
    );
    assert_eq!(fake.chat_requests()[1].usage, Some(recorded));

    // The same request again: all of it is cached, capped at the prompt.
    let (prompt, cached) = usage(&completion_in(&agent, &fake, &token, Some("s-1"), &longer));
    assert_eq!(cached, prompt);

    // A stream reports it in its last event.
    let mut streamed = conversation(&["Привет", "Здравствуйте", "Как дела?", "Хорошо", "Ещё?"]);
    streamed["stream"] = json!(true);
    let response = agent
        .post(format!("{}/chat/completions", fake.base_url()))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .header("X-Session-ID", "s-1")
        .send(streamed.to_string());
    let (events, clean) = sse_events(response);
    assert!(clean && events.last().map(String::as_str) == Some("[DONE]"), "{events:?}");
    let last: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    let usage = &last["usage"];
    assert_eq!(usage["precached_prompt_tokens"].as_i64(), Some(prompt), "{usage}");
    assert!(usage["prompt_tokens"].as_i64().unwrap() > prompt, "{usage}");
    assert_eq!(fake.usage_of(3).map(|u| u.precached_prompt_tokens), Some(prompt as u64));
}

/// Only the same session shares a cache: another session, none, or a different start
/// report 0.
#[test]
fn another_session_or_none_is_not_precached() {
    let fake = FakeGigaChat::start();
    let agent = trusting(&fake);
    let token = token(&agent, &fake);
    let body = conversation(&["Привет", "Здравствуйте", "Как дела?"]);
    let cached = |session: Option<&str>, body: &Value| {
        usage(&completion_in(&agent, &fake, &token, session, body)).1
    };
    assert_eq!(cached(Some("s-1"), &body), 0);
    assert_eq!(cached(Some("s-2"), &body), 0, "another session");
    assert_eq!(cached(None, &body), 0, "no session");
    assert_eq!(cached(None, &body), 0, "no session, twice");
    let mut other_start = body.clone();
    other_start["messages"][0]["content"] = json!("Отвечай подробно.");
    assert_eq!(cached(Some("s-1"), &other_start), 0, "a different system prompt");
    let mut other_role = other_start.clone();
    other_role["messages"][0]["role"] = json!("user");
    assert_eq!(cached(Some("s-1"), &other_role), 0, "the same text in another role");
    assert!(cached(Some("s-1"), &other_role) > 0, "the session itself still caches");
    let recorded: Vec<u64> =
        (0..7).map(|i| fake.usage_of(i).unwrap().precached_prompt_tokens).collect();
    assert_eq!(&recorded[..6], [0; 6]);
}

/// The cache lives `set_cache_ttl` after the session's last request.
#[test]
fn the_cache_expires_after_its_ttl() {
    let fake = FakeGigaChat::start();
    let agent = trusting(&fake);
    let token = token(&agent, &fake);
    fake.set_cache_ttl(Duration::from_millis(300));
    let body = conversation(&["Привет"]);
    let cached = || usage(&completion_in(&agent, &fake, &token, Some("s-1"), &body)).1;
    assert_eq!(cached(), 0);
    assert!(cached() > 0, "within the TTL");
    thread::sleep(Duration::from_millis(400));
    assert_eq!(cached(), 0, "after the TTL");
    assert!(cached() > 0, "the expired request started a new cache");
}

fn get_balance(agent: &Agent, fake: &FakeGigaChat, token: &str) -> Answer {
    let request = agent
        .get(format!("{}/balance", fake.base_url()))
        .header("Authorization", format!("Bearer {token}"));
    read(request.call(), "")
}

/// `GET /balance` of a prepaid account lists its packages as the reference shows them; a
/// bad token gets 401; every request is recorded.
#[test]
fn balance_lists_the_packages_of_a_prepaid_account() {
    let fake = FakeGigaChat::start();
    let agent = trusting(&fake);
    let token = token(&agent, &fake);
    fake.set_balance(&[("GigaChat-2-Max", 900000), ("embeddings", 9999967)]);
    let answer = get_balance(&agent, &fake, &token);
    assert_eq!(
        (answer.status, answer.content_type.as_str(), answer.body.as_str()),
        (
            200,
            "application/json",
            r#"{"balance":[{"usage":"GigaChat-2-Max","value":900000},{"usage":"embeddings","value":9999967}]}"#
        )
    );
    let answer = get_balance(&agent, &fake, "nope");
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (401, r#"{"status":401,"message":"Unauthorized"}"#)
    );
    let times = fake.balance_requests();
    assert_eq!(times.len(), 2);
    assert!(times[0] <= times[1]);
    assert_eq!(fake.balance().unwrap()[0], ("GigaChat-2-Max".to_string(), 900000));
}

/// A pay-as-you-go account (the default, or after `set_pay_as_you_go`) gets the
/// reference's 403 and is never refused a chat for money.
#[test]
fn balance_is_forbidden_to_a_pay_as_you_go_account() {
    let fake = FakeGigaChat::start();
    let agent = trusting(&fake);
    let token = token(&agent, &fake);
    let forbidden = r#"{"status":403,"message":"Permission denied"}"#;
    let answer = get_balance(&agent, &fake, &token);
    assert_eq!((answer.status, answer.body.as_str()), (403, forbidden), "by default");
    fake.set_balance(&[("GigaChat-2-Max", 0)]);
    assert_eq!(get_balance(&agent, &fake, &token).status, 200);
    assert_eq!(completion(&agent, &fake, &token, &ask("x")).status, 402);
    fake.set_pay_as_you_go();
    let answer = get_balance(&agent, &fake, &token);
    assert_eq!((answer.status, answer.body.as_str()), (403, forbidden));
    assert_eq!(fake.balance(), None);
    assert_eq!(completion(&agent, &fake, &token, &ask("x")).status, 200);
    assert_eq!(fake.balance_requests().len(), 3);
}

/// Each answer spends its billed tokens (total − precached) from its model's package; an
/// empty package answers 402 with the reference's body, whole or streamed, while other
/// models go on.
#[test]
fn a_package_runs_down_then_payment_is_required() {
    let fake = FakeGigaChat::start();
    let agent = trusting(&fake);
    let token = token(&agent, &fake);
    fake.set_balance(&[("GigaChat-2-Max", 10_000), ("embeddings", 500)]);
    let left = || fake.balance().unwrap()[0].1;
    let body = conversation(&["Привет", "Здравствуйте", "Как дела?"]);
    assert_eq!(usage(&completion_in(&agent, &fake, &token, Some("s"), &body)).1, 0);
    let first = fake.usage_of(0).unwrap();
    assert_eq!((first.billed(), left()), (first.total_tokens, 10_000 - first.total_tokens as i64));
    assert!(usage(&completion_in(&agent, &fake, &token, Some("s"), &body)).1 > 0);
    let second = fake.usage_of(1).unwrap();
    assert!(second.billed() < second.total_tokens, "cached tokens are not billed");
    assert_eq!(left(), 10_000 - (first.billed() + second.billed()) as i64);
    let shown = get_balance(&agent, &fake, &token).json();
    assert_eq!(shown["balance"][0]["value"].as_i64(), Some(left()));
    assert_eq!(shown["balance"][1]["value"], 500, "chat spends only its model's package");

    // One token left: the next answer is given, then the package is empty.
    fake.set_balance(&[("GigaChat-2-Max", 1)]);
    assert_eq!(completion(&agent, &fake, &token, &ask("x")).status, 200);
    assert_eq!(left(), 0, "an answer past the end leaves 0, not a debt");
    let payment = r#"{"status":402,"message":"Payment Required"}"#;
    let answer = completion(&agent, &fake, &token, &ask("x"));
    assert_eq!((answer.status, answer.body.as_str()), (402, payment));
    let mut streamed = ask("x");
    streamed["stream"] = json!(true);
    let answer = completion(&agent, &fake, &token, &streamed);
    assert_eq!((answer.status, answer.body.as_str()), (402, payment), "streamed too");
    let mut pro = ask("x");
    pro["model"] = json!("GigaChat-2-Pro");
    assert_eq!(completion(&agent, &fake, &token, &pro).status, 200, "a model without a package");
    let statuses: Vec<u16> = fake.chat_requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 200, 402, 402, 200]);
    assert_eq!(fake.usage_of(3), None, "a refused request reports no usage");
}

// --- GigaChat: embeddings ---

/// `POST /embeddings` with this JSON body.
fn embed(agent: &Agent, fake: &FakeGigaChat, token: &str, body: &Value) -> Answer {
    let request = agent
        .post(format!("{}/embeddings", fake.base_url()))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json");
    read(request.send(body.to_string()), "")
}

/// The vectors of an answer, in the order of `data`.
fn vectors(answer: &Answer) -> Vec<Vec<f32>> {
    assert_eq!(answer.status, 200, "{}", answer.body);
    let data = answer.json()["data"].as_array().expect("data is a list").clone();
    let vector = |entry: &Value| -> Vec<f32> {
        let numbers = entry["embedding"].as_array().expect("embedding is a list");
        numbers.iter().map(|x| x.as_f64().expect("a number") as f32).collect()
    };
    data.iter().map(vector).collect()
}

/// One vector per input, in input order, each with its index and usage, of length 256 and
/// norm 1, the vector `embedding_of` computes; the request is recorded; unknown fields are
/// ignored and a single string is one input.
#[test]
fn embeddings_answer_one_unit_vector_per_input_in_order() {
    let fake = FakeGigaChat::start();
    let agent = trusting(&fake);
    let token = token(&agent, &fake);
    let inputs = ["Пицца Маргарита стоит 450 рублей", "Клуб открыт по субботам", "ок"];
    let body = json!({"model": "Embeddings", "input": inputs, "user": "ignored"});
    let answer = embed(&agent, &fake, &token, &body);
    assert_eq!((answer.status, answer.content_type.as_str()), (200, "application/json"));
    assert!(
        answer.body.starts_with(r#"{"object":"list","data":[{"object":"embedding","embedding":["#)
    );
    let reply = answer.json();
    assert_eq!((&reply["object"], &reply["model"]), (&json!("list"), &json!("Embeddings")));
    let data = reply["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    let mut tokens = 0;
    for (i, (entry, vector)) in data.iter().zip(vectors(&answer)).enumerate() {
        let chars = inputs[i].chars().count() as u64;
        assert_eq!((&entry["object"], &entry["index"]), (&json!("embedding"), &json!(i)));
        assert_eq!(entry["usage"], json!({"prompt_tokens": chars.div_ceil(4)}), "input {i}");
        tokens += chars.div_ceil(4);
        assert_eq!(vector.len(), emb::EMBEDDING_DIMENSION);
        assert_eq!(vector.len(), 256, "the dimension the tests are written for");
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "input {i}: norm {norm}");
        assert_eq!(vector, emb::embedding_of(inputs[i]), "input {i} in its place");
    }
    assert_eq!(fake.embedding_tokens(), tokens);
    assert_eq!(vectors(&answer)[2], vec![1.0 / 16.0; 256], "no stems: the fixed vector");

    let single = embed(&agent, &fake, &token, &json!({"model": "Embeddings-2", "input": "Привет"}));
    let reply = single.json();
    assert_eq!(
        (reply["data"].as_array().unwrap().len(), &reply["model"]),
        (1, &json!("Embeddings-2"))
    );
    assert_eq!(
        (&reply["data"][0]["index"], vectors(&single)[0].clone()),
        (&json!(0), emb::embedding_of("Привет"))
    );

    let recorded = fake.embedding_requests();
    assert_eq!(recorded.len(), 2);
    assert_eq!(
        (recorded[0].model.as_str(), recorded[0].inputs.clone(), recorded[0].status),
        ("Embeddings", inputs.map(String::from).to_vec(), 200)
    );
    assert_eq!(recorded[0].header("Authorization"), Some(format!("Bearer {token}").as_str()));
    assert_eq!((recorded[1].inputs.clone(), recorded[1].status), (vec!["Привет".to_string()], 200));
    assert!(recorded[0].at <= recorded[1].at);
}

/// A question lands near the passage that answers it and far from an unrelated one, the
/// same every time.
#[test]
fn embeddings_put_a_question_near_its_passage() {
    let fake = FakeGigaChat::start();
    let agent = trusting(&fake);
    let token = token(&agent, &fake);
    let texts = [
        "Сколько стоит пицца Маргарита?",
        "Пицца Маргарита стоит 450 рублей",
        "Клуб открыт по субботам с десяти утра",
    ];
    let answer = embed(&agent, &fake, &token, &json!({"model": "Embeddings", "input": texts}));
    let [question, passage, unrelated] = <[Vec<f32>; 3]>::try_from(vectors(&answer)).unwrap();
    let (similar, far) = (emb::cosine(&question, &passage), emb::cosine(&question, &unrelated));
    assert!(similar >= 0.3, "question and its passage: {similar}");
    assert!(far.abs() <= 0.15, "question and an unrelated text: {far}");
    let again = embed(&agent, &fake, &token, &json!({"model": "Embeddings", "input": texts[0]}));
    assert_eq!(vectors(&again)[0], question, "deterministic");
    let inflected = emb::embedding_of("Маргариту с пиццей? Стоит!");
    assert!(emb::cosine(&inflected, &passage) > 0.3, "longer words meet in their stems");
}

/// What the reference would refuse is refused with the fake's bodies: no token, a chat or
/// unknown model, a malformed body, more than 90 inputs, an input over the limit (named by
/// its index, counted in characters); every call is recorded.
#[test]
fn embeddings_refuse_what_the_service_would() {
    let fake = FakeGigaChat::start();
    let agent = trusting(&fake);
    let token = token(&agent, &fake);
    let check = |token: &str, body: &Value, status: u16, expected: &str| {
        let answer = embed(&agent, &fake, token, body);
        assert_eq!((answer.status, answer.body.as_str()), (status, expected), "{body}");
    };
    let texts = |n: usize, text: &str| json!({"model": "Embeddings", "input": vec![text; n]});
    check("nope", &texts(1, "x"), 401, r#"{"status":401,"message":"Unauthorized"}"#);
    let no_such_model = "{\"status\":404,\"message\":\"No such model\"}\n";
    check(&token, &json!({"model": "GigaChat-2-Max", "input": ["x"]}), 404, no_such_model);
    check(&token, &json!({"model": "Embeddings-9", "input": ["x"]}), 404, no_such_model);
    let invalid =
        |message: &str| format!(r#"{{"status":422,"message":"Invalid params: {message}"}}"#);
    check(&token, &json!({"input": ["x"]}), 422, &invalid("model must be a string"));
    check(&token, &json!({"model": 5, "input": ["x"]}), 422, &invalid("model must be a string"));
    let input_kind = invalid("input must be a string or a non-empty array of strings");
    for input in [json!(null), json!([]), json!(5), json!({"text": "x"})] {
        check(&token, &json!({"model": "Embeddings", "input": input}), 422, &input_kind);
    }
    check(&token, &json!({"model": "Embeddings"}), 422, &input_kind);
    check(
        &token,
        &json!({"model": "Embeddings", "input": ["x", 1]}),
        422,
        &invalid("input[1] must be a string"),
    );
    check(
        &token,
        &json!({"model": "Embeddings", "input": ["x", ""]}),
        422,
        &invalid("input[1] must not be empty"),
    );
    check(
        &token,
        &json!({"model": "Embeddings", "input": ""}),
        422,
        &invalid("input[0] must not be empty"),
    );
    let raw = |content_type: &str, body: &str| {
        let request = agent
            .post(format!("{}/embeddings", fake.base_url()))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", content_type);
        let answer = read(request.send(body), "");
        (answer.status, answer.body)
    };
    let plain = raw("text/plain", &texts(1, "x").to_string());
    assert_eq!(
        plain,
        (400, r#"{"status":400,"message":"Content-Type must be application/json"}"#.into())
    );
    let not_json = raw("application/json", "{not json");
    assert_eq!(
        not_json,
        (400, r#"{"status":400,"message":"request body is not a JSON object"}"#.into())
    );

    assert_eq!(embed(&agent, &fake, &token, &texts(90, "x")).status, 200, "90 inputs pass");
    check(
        &token,
        &texts(91, "x"),
        413,
        r#"{"status":413,"message":"Too many inputs: 91 (at most 90 per request)"}"#,
    );
    let long = "я".repeat(4001);
    assert_eq!(
        embed(&agent, &fake, &token, &texts(1, &long[2..])).status,
        200,
        "4000 characters pass"
    );
    let body = json!({"model": "Embeddings", "input": ["a", "b", "c", long]});
    check(
        &token,
        &body,
        413,
        r#"{"status":413,"message":"Input 3 is too long: 4001 characters (at most 4000)"}"#,
    );
    fake.set_embedding_input_limit(10);
    check(
        &token,
        &json!({"model": "Embeddings", "input": ["короткий", "одиннадцать"]}),
        413,
        r#"{"status":413,"message":"Input 1 is too long: 11 characters (at most 10)"}"#,
    );
    assert_eq!(
        embed(&agent, &fake, &token, &texts(1, "десять бук")).status,
        200,
        "characters, not bytes"
    );

    fake.expire_all_tokens();
    check(&token, &texts(1, "x"), 401, r#"{"status":401,"message":"Token has expired"}"#);
    let statuses: Vec<u16> = fake.embedding_requests().iter().map(|r| r.status).collect();
    let mut expected = vec![401, 404, 404];
    expected.extend([422; 10]);
    expected.extend([400, 400, 200, 413, 200, 413, 413, 200, 401]);
    assert_eq!(statuses, expected);
    assert_eq!(
        fake.embedding_requests()[2].model,
        "Embeddings-9",
        "refused requests are recorded as read"
    );
    assert_eq!(fake.embedding_tokens(), 90 + 1000 + 3, "only answered inputs count");
}

/// Queued faults come after the token check, one per call, a dropped connection for 0;
/// then calls are answered again.
#[test]
fn embedding_faults_are_served_once_then_calls_work() {
    let fake = FakeGigaChat::start();
    let agent = trusting(&fake);
    let token = token(&agent, &fake);
    let body = json!({"model": "Embeddings", "input": ["x"]});
    let expired = r#"{"status":401,"message":"Token has expired"}"#;
    let server_error = r#"{"status":500,"message":"Internal Server Error"}"#;
    fake.fail_next_embeddings(401, expired);
    fake.fail_next_embeddings(500, server_error);
    fake.fail_next_embeddings(0, "");
    let answer = embed(&agent, &fake, "nope", &body);
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (401, r#"{"status":401,"message":"Unauthorized"}"#),
        "the token first: the fault waits"
    );
    let answer = embed(&agent, &fake, &token, &body);
    assert_eq!(
        (answer.status, answer.content_type.as_str(), answer.body.as_str()),
        (401, "application/json", expired)
    );
    let answer = embed(&agent, &fake, &token, &body);
    assert_eq!((answer.status, answer.body.as_str()), (500, server_error));
    let dropped = agent
        .post(format!("{}/embeddings", fake.base_url()))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(body.to_string());
    assert!(dropped.is_err(), "a dropped connection: {dropped:?}");
    assert_eq!(embed(&agent, &fake, &token, &body).status, 200);
    let statuses: Vec<u16> = fake.embedding_requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 401, 500, 0, 200]);
    assert_eq!(fake.embedding_tokens(), 1, "faults answer no tokens");
}

/// A prepaid "embeddings" package runs down by the tokens answered and then refuses with
/// 402; chat's packages are not touched, and pay-as-you-go is never refused.
#[test]
fn embeddings_spend_their_own_package() {
    let fake = FakeGigaChat::start();
    let agent = trusting(&fake);
    let token = token(&agent, &fake);
    let body = |text: &str| json!({"model": "EmbeddingsGigaR", "input": [text, text]});
    assert_eq!(embed(&agent, &fake, &token, &body(&"x".repeat(400))).status, 200, "pay-as-you-go");
    fake.set_balance(&[("GigaChat-2-Max", 1000), ("embeddings", 250)]);
    assert_eq!(embed(&agent, &fake, &token, &body(&"x".repeat(400))).status, 200);
    let left = || fake.balance().unwrap();
    assert_eq!(left(), [("GigaChat-2-Max".to_string(), 1000), ("embeddings".to_string(), 50)]);
    assert_eq!(
        embed(&agent, &fake, &token, &body(&"x".repeat(400))).status,
        200,
        "50 left: answered"
    );
    assert_eq!(left()[1].1, 0, "past the end: 0, not a debt");
    let answer = embed(&agent, &fake, &token, &body("x"));
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (402, r#"{"status":402,"message":"Payment Required"}"#)
    );
    assert_eq!(completion(&agent, &fake, &token, &ask("x")).status, 200, "chat has its own");
    assert_eq!(fake.embedding_tokens(), 3 * 200);
}

// --- SaluteSpeech ---

/// A malformed recognition request is refused as the service would, even with a fault
/// queued: the fault waits for the next valid request (gigachat-media.md §4.2).
#[test]
fn salutespeech_checks_a_request_before_any_scripted_fault() {
    let ss = FakeSaluteSpeech::start();
    let pem = std::fs::read(ss.ca_pem_path()).unwrap();
    let agent = tls_agent(Certificate::from_pem(&pem).unwrap());
    let rquid = uuid::Uuid::new_v4().to_string();
    let answer = read(
        agent
            .post(ss.auth_url())
            .header("Authorization", format!("Basic {}", ss.credentials()))
            .header("RqUID", rquid.as_str())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send("scope=SALUTE_SPEECH_PERS"),
        "",
    );
    let token = answer.json()["access_token"].as_str().unwrap().to_string();
    let ogg = fake_salute::ogg(5, 5000);
    let url = format!("{}/speech:recognize", ss.url());
    let recognize = |token: &str, content_type: &str, query: &str, request_id: &str| {
        let answer = read(
            agent
                .post(format!("{url}{query}"))
                .header("Authorization", format!("Bearer {token}"))
                .header("Content-Type", content_type)
                .header("X-Request-ID", request_id)
                .send(&ogg[..]),
            "",
        );
        (answer.status, answer.body)
    };
    let opus = "audio/ogg;codecs=opus";
    let id = uuid::Uuid::new_v4().to_string();
    ss.fail_next(500, r#"{"status":500,"message":"Internal Server Error"}"#);
    let refused = [
        (recognize("nope", opus, "?language=ru-RU", &id), 401),
        (recognize(&token, "audio/wav", "?language=ru-RU", &id), 400),
        (recognize(&token, opus, "?language=de-DE", &id), 400),
        (recognize(&token, opus, "?language=ru-RU&speed=2", &id), 400),
        (recognize(&token, opus, "?sample_rate=fast", &id), 400),
        (recognize(&token, opus, "?language=ru-RU", "req-1"), 400),
    ];
    for ((status, body), expected) in refused {
        assert_eq!(status, expected, "{body}");
    }
    let get = read(agent.get(&url).header("Authorization", format!("Bearer {token}")).call(), "");
    assert_eq!(get.status, 405, "{}", get.body);
    // The first valid request gets the fault, the next one the text.
    let query = "?language=ru-RU&model=general&sample_rate=48000&channels_count=1";
    assert_eq!(recognize(&token, opus, query, &id).0, 500);
    let (status, body) = recognize(&token, "audio/ogg; codecs=opus", query, &id);
    assert_eq!(status, 200, "{body}");
    let statuses: Vec<u16> = ss.recognitions().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 400, 400, 400, 400, 400, 405, 500, 200]);
}
