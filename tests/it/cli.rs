//! The command line as a user meets it: config errors, `check`, `ask`, TLS, start-up and
//! shutdown, and logs that never show a secret.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::core::{WAIT, World};
use crate::fake_gigachat::{FakeGigaChat, Reply};
use crate::fake_telegram::{FakeTelegram, Fault, IVAN};
use crate::harness::{BotEnv, text};

/// Runs `args` and returns (exit code, stdout, stderr).
fn run(env: &BotEnv, args: &[&str]) -> (i32, String, String) {
    let output = env.run(args);
    let (out, err) = text(&output);
    (output.status.code().unwrap_or(-1), out, err)
}

#[test]
fn help_and_version() {
    let env = BotEnv::empty();
    let (code, out, _) = run(&env, &["--help"]);
    assert_eq!(code, 0);
    for word in ["run", "check", "ask", "--config"] {
        assert!(out.contains(word), "{out}");
    }
    let (code, out, _) = run(&env, &["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("gigabot "), "{out}");
    let (code, _, err) = run(&env, &["serve"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown command"), "{err}");
}

/// An argument that is not UTF-8 never panics. A path is taken as it is (a file name is
/// any bytes on Unix, and refusing it would lock out a file the user can see); text is a
/// usage error.
#[test]
fn arguments_that_are_not_utf8_are_paths_or_usage_errors() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let env = BotEnv::empty();
    let run = |args: &[&OsStr]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_gigabot"))
            .args(args)
            .current_dir(&env.dir)
            .env_clear()
            .output()
            .expect("run gigabot");
        let (out, err) = text(&output);
        assert!(!err.contains("panicked") && !err.contains("bug:"), "{args:?}: {err}");
        // `check` says a broken config as its ✗ item, on stdout.
        (output.status.code().unwrap_or(-1), format!("{out}{err}"))
    };
    // The config file is read under its own name, and its errors say that name.
    let name = OsStr::from_bytes(b"bot-\xff.toml");
    std::fs::write(env.dir.join(name), "[bot\n").unwrap();
    let (code, err) = run(&[OsStr::new("check"), OsStr::new("--config"), name]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bot-\u{FFFD}.toml:1"), "{err}");
    // A question typed in a terminal that is not UTF-8 (KOI8-R here).
    let (code, err) = run(&[OsStr::new("ask"), OsStr::from_bytes(b"\xf0\xd2\xc9")]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.starts_with("gigabot: the question is not UTF-8 text")
            && err.contains("Try `gigabot --help`."),
        "{err}"
    );
    // Neither a command nor an option.
    for arg in [&b"\xff"[..], b"--\xff", b"-\xff"] {
        let (code, err) = run(&[OsStr::from_bytes(arg)]);
        assert_eq!(code, 2, "{err}");
        assert!(err.starts_with("gigabot: unknown "), "{err}");
    }
}

/// A config problem: exit 2, one line on stderr, no network call, no secret.
fn config_error(env: &BotEnv, tg: &FakeTelegram, gc: &FakeGigaChat) -> String {
    let (code, out, err) = run(env, &[]);
    assert_eq!(code, 2, "stdout: {out}\nstderr: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
    assert!(!err.contains(tg.token()), "{err}");
    assert!(!err.contains(&gc.credentials()), "{err}");
    assert!(tg.calls().is_empty() && gc.oauth_requests().is_empty(), "a network call was made");
    err
}

#[test]
fn config_errors_name_the_key_and_stop_before_any_network_call() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let cases: &[(&str, &str)] = &[
        ("[telegram]\ntokne = \"x\"\n", "config.toml:2: `[telegram] tokne`: unknown field `tokne`"),
        ("[gigachat]\ntimeout_secs = \"long\"\n", "config.toml:2: `[gigachat] timeout_secs`"),
        ("[bot]\ndefault_style = \"pirate\"\n", "bot.default_style = \"pirate\""),
        ("[bot\n", "config.toml:1"),
        ("[gigachat]\nca_bundle_file = \"/nonexistent/ca.pem\"\n", "/nonexistent/ca.pem"),
        ("[[styles]]\nid = \"Bad Id\"\ntitle = \"x\"\nprompt = \"y\"\n", "is not allowed"),
    ];
    for (config, expected) in cases {
        let mut env = BotEnv::new(&tg, &gc);
        env.unset("GIGACHAT_CA_BUNDLE_FILE");
        env.config(config);
        let err = config_error(&env, &tg, &gc);
        assert!(err.contains(expected), "{config:?}: {err}");
    }
    let mut env = BotEnv::new(&tg, &gc);
    env.unset("TELEGRAM_TOKEN");
    let err = config_error(&env, &tg, &gc);
    assert!(err.contains("TELEGRAM_TOKEN is not set") && err.contains("@BotFather"), "{err}");
    let mut env = BotEnv::new(&tg, &gc);
    env.unset("GIGACHAT_CREDENTIALS");
    let err = config_error(&env, &tg, &gc);
    assert!(err.contains("GIGACHAT_CREDENTIALS is not set"), "{err}");
    let mut env = BotEnv::new(&tg, &gc);
    env.set("GIGABOT_CONFIG", "/nonexistent/gigabot.toml");
    let err = config_error(&env, &tg, &gc);
    assert!(err.contains("/nonexistent/gigabot.toml"), "{err}");
}

#[test]
fn a_config_file_is_optional_and_env_wins() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let mut env = BotEnv::new(&tg, &gc);
    std::fs::remove_file(env.path("config.toml")).unwrap();
    env.set("GIGACHAT_MODEL", "GigaChat-2");
    let bot = env.spawn(&[]);
    tg.wait_until(WAIT, "the bot polls", |t| t.polling());
    let id = tg.push_text(IVAN, IVAN, "Привет");
    tg.wait_until(WAIT, "answered", |t| t.replies_to(id).len() == 1);
    assert_eq!(gc.chat_requests()[0].model, "GigaChat-2");
    assert!(bot.log().contains("Бот запущен: @SomeBot"), "{}", bot.log());
    // The default long poll of 30 s.
    assert_eq!(tg.calls_of("getUpdates")[0].params["timeout"], json!(30));
}

#[test]
fn client_id_and_secret_work_instead_of_the_key() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let mut env = BotEnv::new(&tg, &gc);
    env.unset("GIGACHAT_CREDENTIALS");
    env.set("GIGACHAT_CLIENT_ID", gc.client_id());
    env.set("GIGACHAT_CLIENT_SECRET", gc.client_secret());
    let (code, out, _) = run(&env, &["ask", "Привет"]);
    assert_eq!(code, 0, "{out}");
    // The lesson's way: the Base64 key in GIGACHAT_CLIENT_SECRET, no client id.
    let mut env = BotEnv::new(&tg, &gc);
    env.unset("GIGACHAT_CREDENTIALS");
    env.set("GIGACHAT_CLIENT_SECRET", &gc.credentials());
    let (code, out, err) = run(&env, &["ask", "Привет"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("already is a Base64 authorization key"), "{err}");
    assert!(!err.contains(&gc.credentials()), "{err}");
}

#[test]
fn ask_prints_the_answer_and_needs_no_telegram_token() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let mut env = BotEnv::new(&tg, &gc);
    env.unset("TELEGRAM_TOKEN");
    let (code, out, err) = run(&env, &["ask", "--style", "fairy", "Почему", "небо", "голубое?"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        "Ответ (Отвечай как сказочный персонаж): Почему небо голубое? [сообщений: 2]"
    );
    let (code, _, err) = run(&env, &["ask", "--style", "pirate", "Привет"]);
    assert_eq!(code, 2);
    assert!(err.contains("professor, fairy"), "{err}");
    // Busy: asked again a few times, then the error.
    for _ in 0..4 {
        gc.push_reply(Reply::Status(429, r#"{"status":429,"message":"Too many requests"}"#.into()));
    }
    let (code, out, err) = run(&env, &["ask", "Привет"]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(err.contains("429"), "{err}");
}

#[test]
fn check_reports_every_item_and_exits_zero_when_all_work() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let env = BotEnv::new(&tg, &gc);
    let (code, out, err) = run(&env, &["check"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("@SomeBot"), "{out}");
    assert!(out.contains("модель из конфига GigaChat-2-Max доступна"), "{out}");
    assert!(out.contains("SHA-256: "), "{out}");
    assert!(out.contains("это не Russian Trusted Root CA"), "{out}");
    assert!(out.contains("GigaChat-2-Pro"), "the model list: {out}");
    for secret in [tg.token().to_string(), gc.credentials()] {
        assert!(!out.contains(&secret) && !err.contains(&secret));
    }
    // The default config is open to everyone without a daily cap: said, not a failure.
    let open = "! доступ: бот отвечает любому пользователю Telegram";
    assert!(out.contains(open) && out.contains("bot.admins"), "{out}");
    // An allowlist or a daily cap closes it.
    for setting in ["allowed_users = [1]", "daily_tokens_per_user = 5000"] {
        let mut env = BotEnv::new(&tg, &gc);
        env.config(&format!("[bot]\n{setting}\n"));
        let (code, out, err) = run(&env, &["check"]);
        assert_eq!(code, 0, "{out}\n{err}");
        assert!(!out.contains(open), "{setting}: {out}");
    }
}

/// A CA file that is a whole bundle (the system's has about 140 certificates) is summed up:
/// how many there are and whether the Ministry's root is among them, not hundreds of lines.
#[test]
fn check_sums_up_a_bundle_of_many_certificates() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let mut env = BotEnv::new(&tg, &gc);
    let ours = std::fs::read_to_string(gc.ca_pem_path()).unwrap();
    let other = std::fs::read_to_string(gc.other_ca_pem_path()).unwrap();
    let bundle = env.path("bundle.pem");
    std::fs::write(&bundle, format!("{ours}{}", other.repeat(11))).unwrap();
    env.set("GIGACHAT_CA_BUNDLE_FILE", &bundle.display().to_string());
    let (code, out, err) = run(&env, &["check"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("сертификатов — 12"), "{out}");
    assert!(out.contains("Russian Trusted Root CA среди них нет"), "{out}");
    assert!(!out.contains("SHA-256: "), "listed one by one: {out}");
    assert!(out.lines().count() < 20, "{out}");
}

#[test]
fn check_says_what_to_fix() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let mut env = BotEnv::new(&tg, &gc);
    env.set("TELEGRAM_TOKEN", "7000000001:AAwrongwrongwrongwrongwrongwrongwrong");
    env.set("GIGACHAT_MODEL", "GigaChat-Ultra-Mega");
    let (code, out, _) = run(&env, &["check"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "✗ telegram: токен бота неверный (401): проверьте TELEGRAM_TOKEN у @BotFather"
        ),
        "{out}"
    );
    assert!(
        out.contains("✗ gigachat: модели из конфига GigaChat-Ultra-Mega нет в списке"),
        "{out}"
    );
    assert!(!out.contains("AAwrongwrong"), "{out}");
    let mut env = BotEnv::new(&tg, &gc);
    env.set("GIGACHAT_CREDENTIALS", "d3Jvbmc6a2V5");
    let (code, out, _) = run(&env, &["check"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("credentials doesn't match db data"), "{out}");
    assert!(out.contains("check GIGACHAT_CREDENTIALS"), "{out}");
}

#[test]
fn tls_fails_without_the_ca_file_and_works_with_pem_or_der() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let mut env = BotEnv::new(&tg, &gc);
    env.unset("GIGACHAT_CA_BUNDLE_FILE");
    let (code, _, err) = run(&env, &["ask", "Привет"]);
    assert_eq!(code, 1);
    assert!(err.contains("https://www.gosuslugi.ru/crt"), "{err}");
    assert!(err.contains("gigachat.ca_bundle_file"), "{err}");
    assert!(gc.oauth_requests().is_empty(), "no request got through unverified TLS");

    env.set("GIGACHAT_CA_BUNDLE_FILE", &gc.other_ca_pem_path().display().to_string());
    let (code, _, err) = run(&env, &["ask", "Привет"]);
    assert_eq!(code, 1);
    assert!(err.contains("not signed by a certificate in gigachat.ca_bundle_file"), "{err}");

    for path in [gc.ca_pem_path(), gc.ca_der_path()] {
        env.set("GIGACHAT_CA_BUNDLE_FILE", &path.display().to_string());
        let (code, out, err) = run(&env, &["ask", "Привет"]);
        assert_eq!(code, 0, "{}: {err}", path.display());
        assert!(out.contains("Привет"));
    }
    // A file without a certificate is a config error.
    std::fs::write(env.path("empty.pem"), "not a certificate\n").unwrap();
    env.set("GIGACHAT_CA_BUNDLE_FILE", &env.path("empty.pem").display().to_string());
    let (code, _, err) = run(&env, &["ask", "Привет"]);
    assert_eq!(code, 2);
    assert!(err.contains("holds no certificate"), "{err}");
}

#[test]
fn the_bot_in_chat_says_it_cannot_reach_gigachat_without_the_ca() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let mut env = BotEnv::new(&tg, &gc);
    env.unset("GIGACHAT_CA_BUNDLE_FILE");
    let bot = env.spawn(&[]);
    tg.wait_until(WAIT, "the bot polls", |t| t.polling());
    let id = tg.push_text(IVAN, IVAN, "Привет");
    tg.wait_until(WAIT, "answered", |t| t.replies_to(id).len() == 1);
    assert!(tg.replies_to(id)[0].text.contains("Не удалось связаться с GigaChat"));
    assert!(bot.log().contains("gosuslugi.ru/crt"), "{}", bot.log());
}

#[test]
fn a_wrong_token_stops_the_bot_at_start() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let mut env = BotEnv::new(&tg, &gc);
    env.set("TELEGRAM_TOKEN", "7000000001:AAwrongwrongwrongwrongwrongwrongwrong");
    let (code, _, err) = run(&env, &[]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("the bot token is wrong (Telegram answered 401 Unauthorized): check TELEGRAM_TOKEN with @BotFather"),
        "{err}"
    );
    assert!(!err.contains("AAwrongwrong"), "{err}");
}

#[test]
fn a_webhook_is_deleted_at_start_and_commands_are_set() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    tg.set_webhook("https://example.com/hook");
    // Every menu command in a row: the fake's flood control is not what is tested here.
    tg.set_flood_limits(None);
    let env = BotEnv::new(&tg, &gc);
    let bot = env.spawn(&[]);
    tg.wait_until(WAIT, "the bot polls", |t| t.polling());
    assert_eq!(tg.calls_of("deleteWebhook").len(), 1);
    assert!(bot.log().contains("webhook"), "{}", bot.log());
    let commands: Vec<String> = tg.commands().into_iter().map(|(c, _)| c).collect();
    // The menu has the commands the README documents (more may come), and the bot knows
    // every command it puts there.
    for documented in ["start", "help", "mode", "reset", "retry"] {
        assert!(commands.iter().any(|c| c == documented), "{documented} not in {commands:?}");
    }
    for command in &commands {
        let id = tg.push_text(IVAN, IVAN, &format!("/{command}"));
        tg.wait_until(WAIT, "answered", |t| t.replies_to(id).len() == 1);
        let reply = &tg.replies_to(id)[0].text;
        assert!(!reply.contains("не знаю"), "/{command} is in the menu but unknown: {reply}");
    }
}

#[test]
fn a_conflict_with_another_instance_is_logged_once_and_retried() {
    let w = World::start();
    let conflict = json!({"ok": false, "error_code": 409, "description": "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"});
    w.tg.fail_next("getUpdates", Fault::Status(409, conflict.clone()));
    w.tg.fail_next("getUpdates", Fault::Status(409, conflict));
    let answer = w.ask("Привет");
    assert_eq!(answer.len(), 1);
    // "Works again" is logged when a poll succeeds: end the parked one instead of waiting
    // out its 10 s.
    w.tg.end_polls();
    w.bot.wait_log("works again after 2 failed tries", WAIT);
    let log = w.bot.log();
    assert_eq!(log.matches("another copy of this bot is running").count(), 1, "{log}");
    // Still answering.
    assert_eq!(w.ask("Ещё").len(), 1);
}

#[test]
fn sigterm_while_idle_stops_within_two_seconds_with_code_zero() {
    let w = World::start_with("[telegram]\npoll_timeout_secs = 30\n");
    let mut bot = w.bot;
    w.tg.wait_until(WAIT, "parked in a long poll", |t| t.polling());
    let started = Instant::now();
    bot.signal("TERM");
    let status = bot.wait_exit(Duration::from_secs(5)).expect("the bot stops");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(status.code(), Some(0));
    let mut bot2 = w.env.spawn(&[]);
    w.tg.wait_until(WAIT, "polls again", |t| t.calls_of("getMe").len() == 2 && t.polling());
    bot2.signal("INT");
    assert_eq!(bot2.wait_exit(Duration::from_secs(5)).and_then(|s| s.code()), Some(0));
}

/// Telegram unreachable at start: the bot retries getMe; Ctrl-C stops it at once, cleanly.
#[test]
fn a_stop_signal_during_a_slow_start_stops_the_bot_at_once() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    for _ in 0..20 {
        tg.fail_next("getMe", Fault::BadGatewayHtml);
    }
    let env = BotEnv::new(&tg, &gc);
    let mut bot = env.spawn(&[]);
    tg.wait_until(WAIT, "getMe failed twice", |t| t.calls_of("getMe").len() >= 2);
    let started = Instant::now();
    bot.signal("INT");
    let status = bot.wait_exit(WAIT).expect("the bot stops");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(status.code(), Some(0), "{}", bot.log());
    assert!(bot.log().contains("Бот остановлен"), "{}", bot.log());
    assert!(tg.calls_of("getUpdates").is_empty());
}

#[test]
fn sigterm_while_answering_finishes_the_answer_once() {
    let w = World::start();
    w.gc.push_reply(Reply::Delay(
        Duration::from_millis(1500),
        Box::new(Reply::Text("долгий ответ".into())),
    ));
    let id = w.tg.push_text(IVAN, IVAN, "Вопрос");
    w.gc.wait_until(WAIT, "GigaChat is asked", |g| g.in_flight() == 1);
    let mut bot = w.bot;
    bot.signal("TERM");
    let status = bot.wait_exit(WAIT).expect("the bot stops");
    assert_eq!(status.code(), Some(0));
    assert_eq!(w.tg.replies_to(id).len(), 1);
    assert!(w.tg.confirmed_offset() > id, "the handled update was confirmed");
    // After a restart nothing is answered twice.
    let _bot = w.env.spawn(&[]);
    let next = w.tg.push_text(IVAN, IVAN, "Следующий");
    w.tg.wait_until(WAIT, "answered", |t| t.replies_to(next).len() == 1);
    assert_eq!(w.tg.replies_to(id).len(), 1);
}

#[test]
fn logs_under_failures_hold_no_secret_and_no_message_text() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let env = BotEnv::new(&tg, &gc);
    let bot = env.spawn(&[]);
    tg.wait_until(WAIT, "the bot polls", |t| t.polling());
    tg.fail_next("sendMessage", Fault::DropAfter);
    tg.fail_next("getUpdates", Fault::BadGatewayHtml);
    gc.push_reply(Reply::Status(401, r#"{"status":401,"message":"Unauthorized"}"#.into()));
    gc.push_reply(Reply::Status(401, r#"{"status":401,"message":"Unauthorized"}"#.into()));
    gc.push_reply(Reply::Garbage("<html>".into()));
    for text in ["секретный вопрос один", "секретный вопрос два", "секретный вопрос три"]
    {
        let id = tg.push_text(IVAN, IVAN, text);
        tg.wait_until(WAIT, "answered", |t| t.replies_to(id).len() == 1 && t.polling());
    }
    let log = bot.log();
    assert!(log.contains("update="), "one line per update: {log}");
    assert!(!log.contains(tg.token()), "bot token in the log");
    assert!(!log.contains(&tg.token()[11..]), "the token's secret part in the log");
    assert!(!log.contains(&gc.credentials()), "GigaChat key in the log");
    // Access tokens are ~1200 characters without spaces: nothing that long is logged.
    let longest = log.split_whitespace().map(str::len).max().unwrap_or(0);
    assert!(longest < 300, "a token-sized word in the log: {longest}");
    assert!(!log.contains("секретный"), "message text in the log: {log}");
}

/// `log.level` (here by `GIGABOT_LOG`) hides the levels below it; under systemd, which sets
/// `JOURNAL_STREAM` and stamps each line itself, the lines carry no time of their own.
#[test]
fn the_log_level_filters_lines_and_journald_gets_no_timestamps() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let mut env = BotEnv::new(&tg, &gc);
    env.set("GIGABOT_LOG", "warn");
    env.set("JOURNAL_STREAM", "8:12345");
    let bot = env.spawn(&[]);
    tg.wait_until(WAIT, "the bot polls", |t| t.polling());
    gc.push_reply(Reply::Status(500, r#"{"status":500,"message":"Internal Server Error"}"#.into()));
    let id = tg.push_text(IVAN, IVAN, "Вопрос");
    tg.wait_until(WAIT, "answered", |t| t.replies_to(id).len() == 1 && t.confirmed_offset() > id);
    bot.wait_log("server error (500)", WAIT);
    let log = bot.log();
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.iter().all(|l| l.starts_with("WARN ") || l.starts_with("ERROR")), "{log}");
    assert!(!log.contains("Бот запущен") && !log.contains("update="), "info lines: {log}");
    // The same bot at the default level, outside systemd: info lines, each with its time.
    drop(bot);
    let mut env = BotEnv::new(&tg, &gc);
    env.unset("GIGABOT_LOG");
    let bot = env.spawn(&[]);
    bot.wait_log("Бот запущен", WAIT);
    let first = bot.log().lines().next().unwrap_or("").to_string();
    assert!(
        first.len() > 21 && first.as_bytes()[4] == b'-' && first[20..].starts_with(" INFO "),
        "{first:?}"
    );
}

/// Secrets as they really look: GigaChat's Base64 authorization key, a bot token, and a
/// client secret (a UUID).
const KEY: &str = "MDE5YjEyMzQtNTY3OC05YWJjLWRlZjAtMTIzNDU2Nzg5YWJjOjQ1NmRlZjc4LTEyMzQtNTY3OC05YWJjLWRlZjAxMjM0NTY3OA==";
const TOKEN: &str = "7000000001:AAHk3fJ9xQ2mV8pL5rT1wZ6yB4nC7dE0gHs";
const CLIENT_SECRET: &str = "0f3e6a2c-1b7d-4c55-9a0e-3d2f1c4b5a69";

/// No six characters in a row of any of the secrets above are in `text`, in any letter case.
/// The bot's id, before the token's colon, is public (`check` prints the fake bot's, which
/// is the same): only the rest of the token is looked for.
fn assert_no_secret(text: &str) {
    let lower = text.to_lowercase();
    let token_secret = TOKEN.split_once(':').map_or(TOKEN, |(_, secret)| secret);
    for secret in [KEY, token_secret, CLIENT_SECRET] {
        let chars: Vec<char> = secret.to_lowercase().chars().collect();
        for window in chars.windows(6) {
            let part: String = window.iter().collect();
            assert!(!lower.contains(&part), "{part:?} of a secret in: {text}");
        }
    }
}

/// A secret where a setting was meant (an environment variable or a line of the file):
/// `run` and `check` stop with one line that says what is wrong, and no part of the secret.
#[test]
fn config_errors_never_show_a_secret() {
    let url_with_secret = format!("http://id:{CLIENT_SECRET}@ngw.devices.sberbank.ru/api/v2/oauth");
    let from_env: &[(&str, &str, &str)] = &[
        ("GIGACHAT_SCOPE", CLIENT_SECRET, "GIGACHAT_SCOPE is not a GigaChat scope: use "),
        ("SALUTE_SPEECH_SCOPE", KEY, "SALUTE_SPEECH_SCOPE is not a SaluteSpeech scope: use "),
        ("GIGABOT_LOG", CLIENT_SECRET, "GIGABOT_LOG is not a level: use error, warn"),
        ("TELEGRAM_API_URL", TOKEN, "TELEGRAM_API_URL is not a URL: it must start with"),
        ("GIGACHAT_AUTH_URL", &url_with_secret, "GIGACHAT_AUTH_URL = \"http://***@ngw."),
    ];
    for (var, value, expected) in from_env {
        let mut env = BotEnv::empty();
        env.set("TELEGRAM_TOKEN", TOKEN).set("GIGACHAT_CREDENTIALS", KEY).set(var, value);
        for args in [&[][..], &["check"]] {
            let (code, out, err) = run(&env, args);
            assert_eq!(code, 2, "{var} {args:?}: {out}{err}");
            assert_no_secret(&format!("{out}{err}"));
            assert!(format!("{out}{err}").contains(expected), "{var} {args:?}: {out}{err}");
        }
    }
    let from_file = [
        format!("[gigachat]\ncredentials =\n{KEY}\n"),
        format!("[telegram]\ntoken =\n{TOKEN}\n"),
        format!("[[styles]]\nid = \"a\"\ntitle = \"T\"\nprompt = \"P\"\n{KEY}\n"),
        format!("[[styles]]\nid = \"a\"\ntitle = \"T\"\nprompt = \"P\"\n{CLIENT_SECRET} = 1\n"),
        format!("[gigachat]\ntimeout_secs = \"{KEY}\"\n"),
        format!("[gigachat]\nscope = \"{KEY}\"\n"),
        format!("[log]\nlevel = \"{TOKEN}\"\n"),
    ];
    for config in &from_file {
        let mut env = BotEnv::empty();
        env.set("TELEGRAM_TOKEN", "123456:ABC-def_1").set("GIGACHAT_CREDENTIALS", "aWQ6c2VjcmV0");
        env.config(config);
        for args in [&[][..], &["check"]] {
            let (code, out, err) = run(&env, args);
            assert_eq!(code, 2, "{config:?} {args:?}: {out}{err}");
            // One line: the log's for the bot, `check`'s ✗ item (and its summary) for check.
            let said = if args.is_empty() { err.trim() } else { out.trim() };
            assert_eq!(said.lines().count(), 1 + args.len(), "{out}{err}");
            assert_no_secret(&format!("{out}{err}"));
        }
    }
}

/// `check` names the URL it could not reach, without the token or password pasted into it,
/// and a model it did not find, unless that is as long as a key.
#[test]
fn check_never_shows_a_secret() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    // A port nobody listens on: the connection is refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut env = BotEnv::new(&tg, &gc);
    env.set("TELEGRAM_API_URL", &format!("http://127.0.0.1:{port}/bot{TOKEN}"));
    let (code, out, err) = run(&env, &["check"]);
    assert_eq!(code, 1, "{out}{err}");
    assert_no_secret(&format!("{out}{err}"));
    assert!(out.contains(&format!("проверьте telegram.api_url (http://127.0.0.1:{port}/bot***)")));
    // A user and password in the URLs.
    env.set("TELEGRAM_API_URL", &format!("http://bot:{CLIENT_SECRET}@127.0.0.1:{port}"));
    let auth = gc.auth_url().replacen("https://", &format!("https://id:{KEY}@"), 1);
    env.set("GIGACHAT_AUTH_URL", &auth);
    let (code, out, err) = run(&env, &["check"]);
    assert_eq!(code, 1, "{out}{err}");
    assert_no_secret(&format!("{out}{err}"));
    assert!(out.contains(&format!("… telegram: спрашиваю у 127.0.0.1:{port},")), "{out}");
    let mut env = BotEnv::new(&tg, &gc);
    env.set("GIGACHAT_MODEL", KEY);
    let (code, out, err) = run(&env, &["check"]);
    assert_eq!(code, 1, "{out}{err}");
    assert_no_secret(&format!("{out}{err}"));
    assert!(out.contains("модели из конфига (a value of 100 characters) нет в"), "{out}");
}
