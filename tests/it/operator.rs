//! What an operator reads when something is wrong: a timeout names its phase and the limit
//! that applied, a TLS failure says whether the issuer or the host name is wrong, an error
//! names the setting as the operator set it (an environment variable or a key in the file),
//! and a refused token ends the bot with an exit code of its own.

use std::net::{TcpListener, TcpStream};

use crate::core::WAIT;
use crate::fake_gigachat::{FakeGigaChat, FakeGigaChatOptions};
use crate::fake_telegram::{FakeTelegram, Fault};
use crate::harness::{BotEnv, text};

/// Runs `args` and returns (exit code, stdout, stderr).
fn run(env: &BotEnv, args: &[&str]) -> (i32, String, String) {
    let output = env.run(args);
    let (out, err) = text(&output);
    (output.status.code().unwrap_or(-1), out, err)
}

/// "127.0.0.1:PORT" of a server that accepts connections and never says a word: neither
/// TLS nor HTTP. Its connections stay open until the test binary ends.
fn silent_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    address
}

#[test]
fn check_says_each_step_before_it_and_a_hanging_telegram_costs_seconds() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let mut env = BotEnv::new(&tg, &gc);
    let silent = silent_server();
    env.set("TELEGRAM_API_URL", &format!("http://{silent}"));
    let (code, out, _) = run(&env, &["check"]);
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let asked = lines
        .iter()
        .position(|l| l.starts_with("… telegram: спрашиваю") && l.contains(&silent))
        .unwrap_or_else(|| panic!("no step line before the call: {out}"));
    let failed =
        lines.iter().position(|l| l.starts_with("✗ telegram")).unwrap_or_else(|| panic!("{out}"));
    assert!(asked < failed, "{out}");
    // The limit of `check` (10 s), not the 45 s a long poll may take.
    assert!(lines[failed].contains(&format!("no answer from {silent} within 10 s")), "{out}");
    // GigaChat is still checked after Telegram failed.
    assert!(out.contains("✓ gigachat: токен доступа получен"), "{out}");
}

#[test]
fn a_connect_that_hangs_is_reported_as_a_connect_with_its_own_limit() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let mut env = BotEnv::new(&tg, &gc);
    let silent = silent_server();
    env.set("GIGACHAT_AUTH_URL", &format!("https://{silent}/api/v2/oauth"));
    // The TLS handshake never starts: the connect phase, whose limit is the smaller of
    // 15 s and gigachat.timeout_secs (1 s: the shortest it may be, so the test waits little).
    env.config("[gigachat]\ntimeout_secs = 1\n");
    let (code, _, err) = run(&env, &["ask", "Привет"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("could not connect within 1 s"), "{err}");
    assert!(!err.contains("no answer within"), "{err}");
}

#[test]
fn a_trusted_certificate_for_another_host_is_told_from_an_unknown_issuer() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start_with(FakeGigaChatOptions {
        certificate_for: Some("gigachat.example".into()),
        ..FakeGigaChatOptions::default()
    });
    let env = BotEnv::new(&tg, &gc);
    let (code, _, err) = run(&env, &["ask", "Привет"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is for another host name"), "{err}");
    assert!(err.contains("gigachat.auth_url"), "{err}");
    // Not the advice for an unknown issuer: the CA file is right.
    assert!(!err.contains("gosuslugi"), "{err}");
    assert!(gc.oauth_requests().is_empty());
}

#[test]
fn errors_name_the_setting_where_the_operator_set_it() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    // An environment variable is named as such, not as the key it overrides.
    let mut env = BotEnv::new(&tg, &gc);
    env.set("GIGABOT_LOG", "trace");
    let (code, _, err) = run(&env, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("GIGABOT_LOG is not a level: use error, warn, info or debug"), "{err}");
    // A token from the file is named as the key in that file, and never shown.
    let mut env = BotEnv::new(&tg, &gc);
    env.unset("TELEGRAM_TOKEN");
    env.config("[telegram]\ntoken = \"12345:has spaces\"\n");
    let (code, _, err) = run(&env, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("telegram.token in config.toml does not look like a bot token"), "{err}");
    assert!(!err.contains("has spaces"), "{err}");
    // Every missing secret at once.
    let mut env = BotEnv::new(&tg, &gc);
    env.unset("TELEGRAM_TOKEN").unset("GIGACHAT_CREDENTIALS");
    let (code, _, err) = run(&env, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("TELEGRAM_TOKEN is not set")
            && err.contains("GIGACHAT_CREDENTIALS is not set"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(tg.calls().is_empty() && gc.oauth_requests().is_empty());
}

#[test]
fn a_wrong_token_in_the_file_exits_3_and_names_the_file() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let mut env = BotEnv::new(&tg, &gc);
    env.unset("TELEGRAM_TOKEN");
    let wrong = "7000000001:AAwrongwrongwrongwrongwrongwrongwrong";
    env.config(&format!("[telegram]\ntoken = \"{wrong}\"\n"));
    let (code, _, err) = run(&env, &[]);
    assert_eq!(code, 3, "a refused token has its own exit code: {err}");
    assert!(err.contains("check telegram.token in config.toml with @BotFather"), "{err}");
    assert!(!err.contains("AAwrong"), "{err}");
}

#[test]
fn a_token_revoked_while_running_exits_3() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    let env = BotEnv::new(&tg, &gc);
    let mut bot = env.spawn(&[]);
    tg.wait_until(WAIT, "the bot polls", |t| t.polling());
    tg.fail_next(
        "getUpdates",
        Fault::Status(
            401,
            serde_json::json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
        ),
    );
    // The 401 is for the next poll: end the parked one instead of waiting out its 10 s.
    tg.end_polls();
    let status = bot.wait_exit(WAIT).expect("the bot exits");
    assert_eq!(status.code(), Some(3), "{}", bot.log());
    assert!(bot.log().contains("put the new token into TELEGRAM_TOKEN"), "{}", bot.log());
}
