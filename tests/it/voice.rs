//! Voice notes (issue 15, item 3): with a `[salutespeech]` key a note of up to a minute is
//! downloaded, recognized by SaluteSpeech (synchronous, OGG/Opus as Telegram sends it), the
//! recognized text shown quoted, then answered like a typed question. Each failure in one
//! sentence; without the key the "text only" notice, and the setting named in the log once.
//! And the SaluteSpeech fake, as strict as the reference (gigachat-media.md §4).

use std::time::Duration;

use serde_json::{Value, json};
use ureq::Agent;
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

use crate::core::World;
use crate::fake_gigachat::FakeGigaChat;
use crate::fake_salute::{self, FakeSaluteSpeech};
use crate::fake_telegram::{self as tg, FakeTelegram, Fault, IVAN};
use crate::harness::{self, BotEnv};

const WAIT: Duration = Duration::from_secs(20);

/// A bot with both fakes and SaluteSpeech wired in (the CA bundle holds both fakes' CAs).
fn world_with_voice() -> (World, FakeSaluteSpeech) {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let ss = FakeSaluteSpeech::start();
    let mut env = BotEnv::new(&tg, &gc);
    wire(&mut env, &gc, &ss);
    let bot = env.spawn(&[]);
    tg.wait_until(WAIT, "the bot polls", |t| t.polling());
    (World { tg, gc, env, bot }, ss)
}

fn wire(env: &mut BotEnv, gc: &FakeGigaChat, ss: &FakeSaluteSpeech) {
    env.set("SALUTE_SPEECH_CREDENTIALS", &ss.credentials());
    env.set("SALUTE_SPEECH_AUTH_URL", &ss.auth_url());
    env.set("SALUTE_SPEECH_URL", &ss.url());
    let bundle = ss.bundle_with(&gc.ca_pem_path());
    env.set("GIGACHAT_CA_BUNDLE_FILE", &bundle.display().to_string());
}

/// A voice note of `secs` seconds whose bytes the fake Telegram serves.
fn voice(w: &World, tag: &str, secs: u64) -> Value {
    let bytes = fake_salute::ogg(secs, 15_000);
    let len = bytes.len() as u64;
    let path = format!("voice/{tag}.oga");
    w.tg.add_file(&tg::voice_file_id(tag), &path, bytes);
    tg::voice_of(IVAN, IVAN, tag, secs, len)
}

/// One reply to update `id` that contains `needle`, and GigaChat was not asked.
fn one_sentence(w: &World, id: i64, needle: &str) {
    let answer = w.answer_to(id);
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert!(answer[0].contains(needle), "{answer:?}");
    assert!(w.gc.chat_requests().is_empty());
}

#[test]
fn a_voice_note_is_recognized_shown_quoted_and_answered() {
    let (w, ss) = world_with_voice();
    let id = w.tg.push(voice(&w, "ohm", 5));
    let answer = w.answer_to(id);
    assert_eq!(answer.len(), 2, "{answer:?}");
    assert!(answer[0].contains("«Привет, что такое закон Ома?»"), "{answer:?}");
    assert!(answer[1].starts_with("Ответ ("), "{answer:?}");
    // GigaChat got the recognized text as the question.
    let request = w.gc.chat_requests().pop().unwrap();
    assert_eq!(request.last_user(), Some("Привет, что такое закон Ома?"));
    // The bytes as Telegram gave them, with the documented headers.
    let recognitions = ss.recognitions();
    assert_eq!(recognitions.len(), 1);
    let r = &recognitions[0];
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("audio/ogg;codecs=opus"));
    assert_eq!(r.body_len, fake_salute::ogg(5, 15_000).len());
    assert_eq!(ss.oauth_requests().len(), 1);
    // Memory keeps it as a question: the next one is asked with it.
    w.ask("А подробнее?");
    let request = w.gc.chat_requests().pop().unwrap();
    assert_eq!(request.messages.len(), 4, "{request:?}");
    // A second note reuses the token.
    w.answer_to(w.tg.push(voice(&w, "two", 3)));
    assert_eq!(ss.oauth_requests().len(), 1);
    assert_eq!(ss.recognitions().len(), 2);
    // No secret in the log.
    let log = w.bot.log();
    assert!(!log.contains(&ss.credentials()), "{log}");
    assert!(!log.contains(tg::TOKEN), "{log}");
}

#[test]
fn sentences_are_joined_and_an_expired_token_is_renewed_once() {
    let (w, ss) = world_with_voice();
    w.answer_to(w.tg.push(voice(&w, "one", 2)));
    ss.expire_all_tokens();
    ss.set_text(&["Первое.", "Второе?"]);
    let answer = w.answer_to(w.tg.push(voice(&w, "two", 2)));
    assert!(answer[0].contains("«Первое. Второе?»"), "{answer:?}");
    assert_eq!(ss.oauth_requests().len(), 2);
    let statuses: Vec<u16> = ss.recognitions().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 401, 200]);
}

#[test]
fn without_a_key_voice_gets_the_text_only_notice_and_one_log_line() {
    let w = World::start();
    for tag in ["a", "b"] {
        let answer = w.answer_to(w.tg.push(voice(&w, tag, 4)));
        assert_eq!(answer.len(), 1);
        assert!(answer[0].to_lowercase().contains("текст"), "{answer:?}");
    }
    assert!(w.tg.calls_of("getFile").is_empty());
    assert!(w.gc.chat_requests().is_empty());
    let log = w.bot.log();
    assert_eq!(log.matches("SALUTE_SPEECH_CREDENTIALS").count(), 1, "{log}");
}

#[test]
fn a_note_over_a_minute_gets_a_clear_message_and_no_recognition() {
    let (w, ss) = world_with_voice();
    let id = w.tg.push(voice(&w, "long", 75));
    one_sentence(&w, id, "минут");
    assert!(w.tg.calls_of("getFile").is_empty());
    assert!(ss.recognitions().is_empty());
    // Exactly a minute still goes.
    let answer = w.answer_to(w.tg.push(voice(&w, "sixty", 60)));
    assert_eq!(answer.len(), 2, "{answer:?}\n{}", w.bot.log());
}

#[test]
fn a_failed_download_is_told_and_the_loop_goes_on() {
    let (w, ss) = world_with_voice();
    w.tg.fail_next("download", Fault::Drop);
    let id = w.tg.push(voice(&w, "drop", 4));
    one_sentence(&w, id, "скачать");
    let invalid =
        json!({"ok": false, "error_code": 400, "description": "Bad Request: invalid file_id"});
    w.tg.fail_next("getFile", Fault::Status(400, invalid));
    let id = w.tg.push(voice(&w, "bad", 4));
    one_sentence(&w, id, "скачать");
    assert!(ss.recognitions().is_empty());
    assert_eq!(w.ask("Привет").len(), 1);
}

#[test]
fn recognition_failures_are_told_and_the_loop_goes_on() {
    let (w, ss) = world_with_voice();
    // Many messages to one chat within seconds; Telegram's pacing is not what this checks.
    w.tg.set_flood_limits(None);
    ss.fail_next(500, r#"{"status":500,"message":"Internal Server Error"}"#);
    let id = w.tg.push(voice(&w, "five", 4));
    one_sentence(&w, id, "распознать");
    ss.fail_next(400, r#"{"status":400,"message":"bad request"}"#);
    let id = w.tg.push(voice(&w, "four", 4));
    one_sentence(&w, id, "распознать");
    // A note Telegram says is short but the audio is longer: the service's own 400.
    let bytes = fake_salute::ogg(90, 15_000);
    w.tg.add_file(&tg::voice_file_id("liar"), "voice/file_9.oga", bytes);
    let id = w.tg.push(tg::voice_of(IVAN, IVAN, "liar", 10, 15_000));
    one_sentence(&w, id, "распознать");
    assert_eq!(ss.recognitions().last().unwrap().status, 400);
    // Nothing recognized.
    ss.set_text(&[]);
    let id = w.tg.push(voice(&w, "silence", 4));
    one_sentence(&w, id, "не удалось разобрать");
    ss.set_text(&["Снова работает"]);
    assert_eq!(w.answer_to(w.tg.push(voice(&w, "ok", 4))).len(), 2);
    let log = w.bot.log();
    assert!(!log.contains(&ss.credentials()), "{log}");
}

#[test]
fn a_refused_key_is_told_to_the_owner_in_the_log_not_the_key() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let ss = FakeSaluteSpeech::start();
    let mut env = BotEnv::new(&tg, &gc);
    wire(&mut env, &gc, &ss);
    env.set("SALUTE_SPEECH_CREDENTIALS", "c29tZTp3cm9uZ2tleQ==");
    let bot = env.spawn(&[]);
    tg.wait_until(WAIT, "the bot polls", |t| t.polling());
    let w = World { tg, gc, env, bot };
    let id = w.tg.push(voice(&w, "key", 4));
    one_sentence(&w, id, "распознать");
    let log = w.bot.log();
    assert!(log.contains("SALUTE_SPEECH_CREDENTIALS"), "{log}");
    assert!(!log.contains("c29tZTp3cm9uZ2tleQ"), "{log}");
}

#[test]
fn check_reports_salutespeech() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let ss = FakeSaluteSpeech::start();
    let mut env = BotEnv::new(&tg, &gc);
    let (out, _) = harness::text(&env.run(&["check"]));
    assert!(out.contains("• salutespeech: не настроен"), "{out}");
    assert!(out.contains("SALUTE_SPEECH_CREDENTIALS"), "{out}");
    wire(&mut env, &gc, &ss);
    let output = env.run(&["check"]);
    let (out, err) = harness::text(&output);
    assert!(output.status.success(), "{out}{err}");
    assert!(out.contains("✓ salutespeech: токен доступа получен"), "{out}");
    env.set("SALUTE_SPEECH_CREDENTIALS", "c29tZTp3cm9uZ2tleQ==");
    let output = env.run(&["check"]);
    let (out, err) = harness::text(&output);
    assert!(!output.status.success());
    assert!(out.contains("✗ salutespeech"), "{out}");
    assert!(out.contains("SALUTE_SPEECH_CREDENTIALS"), "{out}");
    assert!(!format!("{out}{err}").contains("c29tZTp3cm9uZ2tleQ"), "{out}{err}");
}

#[test]
fn salutespeech_urls_must_be_https() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let mut env = BotEnv::new(&tg, &gc);
    env.set("SALUTE_SPEECH_URL", "http://smartspeech.example/rest/v1");
    let output = env.run(&["check"]);
    let (out, err) = harness::text(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    // `check` says a config that cannot work as its first ✗ item.
    assert!(out.starts_with("✗ конфиг: ") && out.contains("SALUTE_SPEECH_URL"), "{out}");
    assert!(out.contains("https://") && out.ends_with("отмеченные ✗.\n"), "{out}");
}

// --- the fake ---

fn trusting(ss: &FakeSaluteSpeech) -> Agent {
    let pem = std::fs::read(ss.ca_pem_path()).unwrap();
    let certs = [Certificate::from_pem(&pem).unwrap()];
    let tls = TlsConfig::builder()
        .provider(TlsProvider::NativeTls)
        .root_certs(RootCerts::new_with_certs(&certs))
        .build();
    Agent::config_builder().http_status_as_error(false).proxy(None).tls_config(tls).build().into()
}

#[test]
fn fake_salutespeech_follows_the_reference() {
    let ss = FakeSaluteSpeech::start();
    let agent = trusting(&ss);
    let oauth = |key: &str, scope: &str| {
        let mut response = agent
            .post(ss.auth_url())
            .header("Authorization", format!("Basic {key}"))
            .header("RqUID", uuid::Uuid::new_v4().to_string())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(format!("scope={scope}"))
            .unwrap();
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().unwrap())
    };
    assert_eq!(oauth("d3Jvbmc6a2V5", "SALUTE_SPEECH_PERS").0, 401);
    assert_eq!(oauth(&ss.credentials(), "GIGACHAT_API_PERS").0, 400);
    let (status, body) = oauth(&ss.credentials(), "SALUTE_SPEECH_PERS");
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    let token = body["access_token"].as_str().unwrap().to_string();
    assert!(body["expires_at"].as_u64().unwrap() > 1_000_000_000_000);
    let recognize = |token: &str, content_type: &str, query: &str, audio: &[u8]| {
        let url = format!("{}/speech:recognize{query}", ss.url());
        let mut response = agent
            .post(url)
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", content_type)
            .send(audio)
            .unwrap();
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().unwrap())
    };
    let ogg = fake_salute::ogg(5, 5000);
    let opus = "audio/ogg;codecs=opus";
    assert_eq!(recognize("nope", opus, "", &ogg).0, 401);
    assert_eq!(recognize(&token, "audio/mpeg", "", &ogg).0, 400);
    assert_eq!(recognize(&token, opus, "?language=xx-XX", &ogg).0, 400);
    assert_eq!(recognize(&token, opus, "", b"not ogg").0, 400);
    let long = fake_salute::ogg(61, 5000);
    assert_eq!(recognize(&token, opus, "", &long).0, 400);
    let big = fake_salute::ogg(30, fake_salute::MAX_BYTES + 10);
    assert_eq!(recognize(&token, opus, "", &big).0, 413);
    let (status, body) = recognize(&token, opus, "?language=ru-RU&model=general", &ogg);
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["result"], json!(["Привет, что такое закон Ома?"]));
    assert_eq!(body["status"], 200);
}

/// Killed while GigaChat answers a voice note, then restarted: the user sees what was heard
/// and the answer once each. «Распознал» is the answer's first message and is recorded with
/// it; before, it went out on its own, and the restart sent it again.
#[test]
fn a_kill_during_the_answer_to_a_voice_note_leaves_one_heard_and_one_answer() {
    let (w, ss) = world_with_voice();
    let pid = w.bot.pid();
    w.gc.set_kill_hook(1, move || harness::sigkill(pid));
    let id = w.tg.push(voice(&w, "ohm", 5));
    w.gc.wait_until(WAIT, "the kill", |gc| !gc.kill_hook_pending());
    let World { tg, gc, env, bot } = w;
    drop(bot);
    let _bot = env.spawn(&[]);
    tg.wait_until(WAIT, "answered after the restart", |t| {
        t.confirmed_offset() > id && t.polling() && t.replies_to(id).len() == 1
    });
    let sent: Vec<String> = tg.sent_to(IVAN).iter().map(|m| m.text.clone()).collect();
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert!(sent[0].contains("«Привет, что такое закон Ома?»"), "{sent:#?}");
    assert!(sent[1].starts_with("Ответ ("), "{sent:#?}");
    assert_eq!(ss.recognitions().len(), 2, "heard again after the restart, shown once");
    drop(gc);
}

/// With `requests_per_minute = 2`, a dozen voice notes cost two recognitions: each note
/// counts against the limit before it is paid for. Before, a note whose recognition gave
/// nothing to ask was never counted, so every one was recognized (and told about).
#[test]
fn voice_notes_count_against_the_rate_limit_before_they_are_recognized() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let ss = FakeSaluteSpeech::start();
    let mut env = BotEnv::new(&tg, &gc);
    wire(&mut env, &gc, &ss);
    env.config("[telegram]\npoll_timeout_secs = 10\n[bot]\nrequests_per_minute = 2\n");
    let bot = env.spawn(&[]);
    tg.wait_until(WAIT, "the bot polls", |t| t.polling());
    let w = World { tg, gc, env, bot };
    w.tg.set_flood_limits(None);
    ss.set_text(&[]); // nothing recognized: no GigaChat call follows
    let ids: Vec<i64> = (0..12).map(|i| w.tg.push(voice(&w, &format!("n{i}"), 3))).collect();
    let last = *ids.last().unwrap();
    w.tg.wait_until(WAIT, "all handled", |t| t.confirmed_offset() > last && t.polling());
    assert_eq!(ss.recognitions().len(), 2, "{}", w.bot.log());
    let told = ids.iter().filter(|&&id| !w.tg.replies_to(id).is_empty()).count();
    assert!(told <= 10, "12 notes got {told} replies, the chat's notice budget is 10");
}

/// A voice note asks the reference desk as a typed question does (issue 25): what it was
/// heard as is embedded, and the answer names its source.
#[test]
fn a_voice_question_is_answered_from_the_documents() {
    let (tg, gc, ss) = (FakeTelegram::start(), FakeGigaChat::start(), FakeSaluteSpeech::start());
    let mut env = BotEnv::new(&tg, &gc);
    wire(&mut env, &gc, &ss);
    std::fs::create_dir_all(env.path("docs")).unwrap();
    let ohm = "# Закон Ома\n\nЗакон Ома: ток равен напряжению, делённому на сопротивление.\n";
    std::fs::write(env.path("docs/ohm.md"), ohm).unwrap();
    std::fs::write(env.path("docs/club.md"), "Клуб открыт по субботам.\n").unwrap();
    env.config("[telegram]\npoll_timeout_secs = 10\n[knowledge]\ndir = \"docs\"\n");
    let bot = env.spawn(&[]);
    tg.wait_until(WAIT, "the bot polls", |t| t.polling());
    let w = World { tg, gc, env, bot };
    let answer = w.answer_to(w.tg.push(voice(&w, "ohm", 5)));
    assert!(answer[0].contains("«Привет, что такое закон Ома?»"), "{answer:?}");
    assert!(answer.last().unwrap().ends_with("Источники: ohm.md"), "{answer:?}");
    let question = w.gc.chat_requests().pop().unwrap();
    let question = question.last_user().unwrap();
    assert!(question.contains("делённому на сопротивление") && !question.contains("субботам"));
    assert!(question.ends_with("Вопрос: Привет, что такое закон Ома?"), "{question}");
}
