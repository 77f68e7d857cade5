//! `examples/lesson.rs`, the lesson's Python bot in Rust (issue 14), against the fakes the
//! product's tests use: it answers each text message as a reply, shows the user the lesson's
//! error texts, and trusts GigaChat only through the CA it is given.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::fake_gigachat::{FakeGigaChat, Reply};
use crate::fake_telegram::{ANNA, FakeTelegram, IVAN};

const WAIT: Duration = Duration::from_secs(15);
const STYLE: &str = "Отвечай как научный сотрудник";

/// The example's binary, next to this test binary: target/debug/deps/it-HASH →
/// target/debug/examples/lesson. A plain `cargo test` builds it before the tests run; this
/// builds it too (a no-op when it is fresh), so that `cargo test --test it lesson` never
/// runs a stale or missing one.
fn example_binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary's path");
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("the test binary is in target/<profile>/deps");
        let mut build = Command::new(option_env!("CARGO").unwrap_or("cargo"));
        build
            .args(["build", "--quiet", "--example", "lesson", "--manifest-path"])
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let built = build.output().expect("run cargo build --example lesson");
        let binary = profile_dir.join("examples").join("lesson");
        assert!(
            built.status.success() && binary.is_file(),
            "examples/lesson is missing at {}: `cargo build --example lesson` failed:\n{}",
            binary.display(),
            String::from_utf8_lossy(&built.stderr)
        );
        binary
    })
}

/// The product's variables for both fakes, as `harness::BotEnv::new` sets them.
fn wired(tg: &FakeTelegram, gc: &FakeGigaChat) -> Vec<(&'static str, String)> {
    vec![
        ("TELEGRAM_TOKEN", tg.token().to_string()),
        ("TELEGRAM_API_URL", tg.url()),
        ("GIGACHAT_CREDENTIALS", gc.credentials()),
        ("GIGACHAT_AUTH_URL", gc.auth_url()),
        ("GIGACHAT_BASE_URL", gc.base_url()),
        ("GIGACHAT_CA_BUNDLE_FILE", gc.ca_pem_path().display().to_string()),
    ]
}

/// The running example; killed when dropped, so also when an assertion fails (and then its
/// stderr is shown).
struct Lesson {
    child: Child,
}

impl Lesson {
    /// Starts the example with exactly these variables and PATH.
    fn start(vars: &[(&str, String)]) -> Lesson {
        let mut command = Command::new(example_binary());
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = command.spawn().expect("start examples/lesson");
        Lesson { child }
    }

    /// Kills the bot (if still running) and returns everything it wrote to stderr.
    fn stop(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut log = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut log);
        }
        log
    }

    /// Waits for the bot to exit by itself; its status and stderr.
    fn exit(&mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for examples/lesson") {
                return (status, self.stop());
            }
            assert!(Instant::now() < deadline, "examples/lesson did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Lesson {
    fn drop(&mut self) {
        let log = self.stop();
        if std::thread::panicking() {
            eprintln!("examples/lesson's stderr:\n{log}");
        }
    }
}

/// Pushes a private text and waits for the bot to have handled it; the texts of the
/// messages that reply to it.
fn ask(tg: &FakeTelegram, user: i64, text: &str) -> Vec<String> {
    let id = tg.push_text(user, user, text);
    tg.wait_until(WAIT, "the lesson's bot handles the message", |t| {
        t.confirmed_offset() > id && t.polling()
    });
    tg.replies_to(id).into_iter().map(|m| m.text).collect()
}

#[test]
fn the_lesson_bot_answers_each_message_as_a_reply() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let mut bot = Lesson::start(&wired(&tg, &gc));
    tg.wait_until(WAIT, "the lesson's bot polls", |t| t.polling());

    let answer = ask(&tg, IVAN, "Что такое закон Ома?");
    assert_eq!(answer, [format!("Ответ ({STYLE}): Что такое закон Ома? [сообщений: 2]")]);
    // No memory: the second question goes alone with the style, as in the lesson.
    let answer = ask(&tg, IVAN, "А сила тока?");
    assert_eq!(answer, [format!("Ответ ({STYLE}): А сила тока? [сообщений: 2]")]);
    // A new token for every message, with the lesson's headers and body.
    let oauth = gc.oauth_requests();
    assert_eq!(oauth.len(), 2, "{}", gc.dump());
    assert!(oauth.iter().all(|r| r.status == 200), "{}", gc.dump());
    assert_eq!(oauth[0].header("accept"), Some("application/json"));
    let chats = gc.chat_requests();
    assert!(
        chats
            .iter()
            .all(|c| c.model == "GigaChat-2-Max" && !c.stream && c.body["profanity_check"] == true),
        "{}",
        gc.dump()
    );
    // Plain text, no parse mode: the lesson's reply_text.
    let sent = tg.sent_to(IVAN);
    assert!(sent.iter().all(|m| m.parse_mode.is_none()), "{sent:#?}");

    // An answer longer than a Telegram message is cut to 4096 characters.
    let long = "абвгд".repeat(1200);
    gc.push_reply(Reply::Text(long.clone()));
    let answer = ask(&tg, ANNA, "Расскажи подробно");
    assert_eq!(answer, [long.chars().take(4096).collect::<String>()]);

    // Commands are not questions (filters.TEXT & ~filters.COMMAND).
    assert!(ask(&tg, ANNA, "/start").is_empty());
    assert_eq!(gc.chat_requests().len(), 3, "{}", gc.dump());
    let log = bot.stop();
    assert!(log.is_empty(), "nothing went wrong, yet:\n{log}");
}

#[test]
fn the_lesson_bot_tells_the_user_the_lessons_error_texts() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let mut bot = Lesson::start(&wired(&tg, &gc));
    tg.wait_until(WAIT, "the lesson's bot polls", |t| t.polling());

    gc.fail_next_oauth(401, r#"{"code":6,"message":"credentials doesn't match db data"}"#);
    assert_eq!(ask(&tg, IVAN, "Вопрос"), ["Ошибка авторизации в GigaChat API."]);
    gc.push_reply(Reply::Status(500, r#"{"status":500,"message":"Internal Server Error"}"#.into()));
    assert_eq!(ask(&tg, IVAN, "Вопрос"), ["Ошибка при получении ответа от GigaChat API."]);
    gc.push_reply(Reply::Text("  ".into()));
    assert_eq!(ask(&tg, IVAN, "Вопрос"), ["Не удалось получить корректный ответ от GigaChat API."]);
    // And it goes on answering.
    assert_eq!(
        ask(&tg, ANNA, "Что такое ток?"),
        [format!("Ответ ({STYLE}): Что такое ток? [сообщений: 2]")]
    );
    // One line for the owner per failure, with the service's reason and no secret.
    let log = bot.stop();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines[0].starts_with("gigachat oauth: HTTP 401")
            && lines[0].contains("credentials doesn't match db data"),
        "{log}"
    );
    assert!(lines[1].starts_with("gigachat chat: HTTP 500"), "{log}");
    for secret in [tg.token().to_string(), gc.credentials()] {
        assert!(!log.contains(&secret), "a secret in the log:\n{log}");
    }
}

/// Without the fake's CA (no CA file: the system's certificates; or another CA's file) the
/// TLS handshake fails: not even the OAuth request gets through, and the user is told.
#[test]
fn the_lesson_bot_trusts_gigachat_only_through_the_ca_it_is_given() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let other_ca = gc.other_ca_pem_path().display().to_string();
    for ca_file in [None, Some(other_ca)] {
        let mut vars = wired(&tg, &gc);
        vars.retain(|(key, _)| *key != "GIGACHAT_CA_BUNDLE_FILE");
        if let Some(path) = &ca_file {
            vars.push(("GIGACHAT_CA_BUNDLE_FILE", path.clone()));
        }
        let mut bot = Lesson::start(&vars);
        tg.wait_until(WAIT, "the lesson's bot polls", |t| t.polling());
        assert_eq!(
            ask(&tg, IVAN, "Что такое закон Ома?"),
            ["Ошибка авторизации в GigaChat API."],
            "CA file {ca_file:?}"
        );
        let log = bot.stop();
        assert!(log.starts_with("gigachat oauth: "), "{log}");
        assert!(!log.contains(&gc.credentials()), "{log}");
    }
    assert!(gc.oauth_requests().is_empty(), "{}", gc.dump());
    assert!(gc.chat_requests().is_empty(), "{}", gc.dump());
}

/// The Ministry's certificate as some downloads give it (DER, `.cer`/`.crt`) works as the PEM.
#[test]
fn the_lesson_bot_takes_the_ca_file_as_der_too() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let mut vars = wired(&tg, &gc);
    vars.retain(|(key, _)| *key != "GIGACHAT_CA_BUNDLE_FILE");
    vars.push(("GIGACHAT_CA_BUNDLE_FILE", gc.ca_der_path().display().to_string()));
    let _bot = Lesson::start(&vars);
    tg.wait_until(WAIT, "the lesson's bot polls", |t| t.polling());
    let answer = ask(&tg, IVAN, "Что такое закон Ома?");
    assert_eq!(answer, [format!("Ответ ({STYLE}): Что такое закон Ома? [сообщений: 2]")]);
}

#[test]
fn the_lesson_bot_stops_at_once_without_its_settings() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let mut vars = wired(&tg, &gc);
    vars.retain(|(key, _)| *key != "TELEGRAM_TOKEN");
    let (status, log) = Lesson::start(&vars).exit();
    assert!(!status.success() && log.contains("TELEGRAM_TOKEN is not set"), "{log}");

    let mut vars = wired(&tg, &gc);
    vars.retain(|(key, _)| *key != "GIGACHAT_CA_BUNDLE_FILE");
    vars.push(("GIGACHAT_CA_BUNDLE_FILE", "/nonexistent/ca.pem".into()));
    let (status, log) = Lesson::start(&vars).exit();
    assert!(!status.success() && log.contains("/nonexistent/ca.pem"), "{log}");
    assert!(tg.calls().is_empty(), "{}", tg.dump());
}

/// The issue's promise: the lesson's three functions, in at most 150 lines a student reads.
#[test]
fn the_lesson_example_is_the_lessons_three_functions_in_150_lines() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/lesson.rs");
    let source = std::fs::read_to_string(path).expect("examples/lesson.rs");
    let lines = source.lines().count();
    assert!(lines <= 150, "examples/lesson.rs has {lines} lines, at most 150 promised");
    for function in ["fn get_gigachat_token(", "fn handle_message(", "fn main("] {
        assert!(source.contains(function), "examples/lesson.rs lost the lesson's {function}");
    }
}
