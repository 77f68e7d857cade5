//! gigabot: a Telegram bot that answers through Sber's GigaChat, in a style the user picks.
//!
//! It is the lesson's bot done right, and it reads in the lesson's order: read the config,
//! make the two clients, then a plain loop that long-polls Telegram and hands every update
//! to `handle_message` (in `bot.rs`). Blocking I/O and one thread keep it small, and keep
//! to the personal GigaChat tier's limit of one request at a time.

mod bot;
mod commands;
mod config;
mod gigachat;
mod logger;
mod owner;
mod render;
mod store;
mod stream;
mod telegram;

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};

use crate::bot::Bot;
use crate::config::{Config, Needs};
use crate::gigachat::GigaChat;
use crate::store::Store;
use crate::telegram::{ErrorKind, Telegram};

const USAGE: &str = "\
gigabot — a Telegram bot that answers through GigaChat

Usage:
  gigabot [run] [--config FILE] [--reset-state]   run the bot until Ctrl-C or SIGTERM
  gigabot check [--config FILE]                   check the config, the token, the key and TLS
  gigabot ask [--config FILE] [--style ID] TEXT…  ask GigaChat one question, answer on stdout
  gigabot --help | --version

The config file is FILE, else $GIGABOT_CONFIG, else ./config.toml if present, else the
built-in defaults. Secrets come from the environment: TELEGRAM_TOKEN and GIGACHAT_CREDENTIALS.
See config.example.toml for every key.";

/// Set when the bot must stop; checked between updates and between retries.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// True while the loop waits in a long poll with nothing in flight. The signal watcher
/// holds this lock while it exits, so the loop cannot start on new updates meanwhile.
static IDLE: Mutex<bool> = Mutex::new(false);

/// What the command line asked for.
#[derive(Debug, PartialEq)]
enum Command {
    Run {
        reset_state: bool,
    },
    Check,
    Ask {
        style: Option<String>,
        question: String,
    },
    Help,
    Version,
}

#[derive(Debug, PartialEq)]
struct Args {
    command: Command,
    config: Option<PathBuf>,
}

/// A usage or config error: exit code 2, as opposed to 1 for trouble at run time.
struct UsageError(anyhow::Error);

fn main() -> ExitCode {
    logger::init();
    // Panics go to the log as one line, like every other event.
    std::panic::set_hook(Box::new(|info| {
        log::error!("bug: {}", info.to_string().replace('\n', " "));
    }));
    match run_cli() {
        Ok(code) => code,
        Err(err) => {
            log::error!("{err:#}");
            ExitCode::from(1)
        }
    }
}

fn run_cli() -> Result<ExitCode> {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("gigabot: {message}\nTry `gigabot --help`.");
            return Ok(ExitCode::from(2));
        }
    };
    let needs = match args.command {
        Command::Help => {
            println!("{USAGE}");
            return Ok(ExitCode::SUCCESS);
        }
        Command::Version => {
            println!("gigabot {}", env!("CARGO_PKG_VERSION"));
            return Ok(ExitCode::SUCCESS);
        }
        Command::Ask { .. } => Needs::GigaChatOnly,
        _ => Needs::TelegramAndGigaChat,
    };
    let config = match config::load(args.config.as_deref(), needs) {
        Ok(config) => config,
        Err(err) => return Ok(usage_error(UsageError(err))),
    };
    logger::set_level(&config.log.level);
    match args.command {
        Command::Run { reset_state } => run(config, reset_state).map(|()| ExitCode::SUCCESS),
        Command::Check => Ok(check(&config)),
        Command::Ask { style, question } => ask(&config, style.as_deref(), &question),
        Command::Help | Command::Version => unreachable!("handled above"),
    }
}

fn usage_error(err: UsageError) -> ExitCode {
    log::error!("{:#}", err.0);
    ExitCode::from(2)
}

/// Runs the bot: the lesson's `main()`, done with a loop we can see.
fn run(config: Config, reset_state: bool) -> Result<()> {
    let telegram = Telegram::new(&config.telegram, &STOP);
    let gigachat = GigaChat::new(&config.gigachat);
    let store = Store::open(&config.bot.state_file, reset_state)?;

    let me = telegram.get_me().map_err(|err| match err.kind {
        ErrorKind::Unauthorized => {
            anyhow::anyhow!("the bot token is wrong: check it with @BotFather")
        }
        _ => anyhow::Error::new(err),
    })?;
    if telegram.remove_webhook_if_set()? {
        log::info!("a webhook was set for this bot; deleted it so that polling works");
    }
    if let Err(err) = telegram.set_my_commands(&bot::MENU) {
        log::warn!("{err}; the command menu stays as it was");
    }
    log::info!("Бот запущен: @{}", me.username.as_deref().unwrap_or("?"));

    watch_signals()?;
    let mut bot = Bot::new(config, telegram, gigachat, store, me);
    poll(&mut bot)?;
    // Confirm the handled updates, so Telegram does not keep them for the next start.
    let offset = bot.store.state.last_update_id + 1;
    if let Err(err) = bot.telegram.confirm(offset) {
        log::debug!("{err}");
    }
    log::info!("Бот остановлен");
    Ok(())
}

/// SIGINT or SIGTERM: stop now if the loop is idle in a long poll (everything handled is
/// saved, and the poll itself confirms it to Telegram); otherwise let the loop finish the
/// update in flight and stop. A second signal stops at once: the update in flight was not
/// confirmed, so it is answered after the restart.
fn watch_signals() -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("cannot install the signal handlers")?;
    // Lives as long as the process; it only ever ends it.
    std::thread::spawn(move || {
        for _ in signals.forever() {
            if STOP.swap(true, Ordering::SeqCst) {
                log::warn!(
                    "second stop signal: stopping now; the update in flight will be handled after the restart"
                );
                std::process::exit(1);
            }
            let idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
            if *idle {
                log::info!("Бот остановлен");
                std::process::exit(0);
            }
            log::info!("stop requested: finishing the update in flight");
        }
    });
    Ok(())
}

/// The polling loop: ask for updates after the last handled one, handle each, save.
fn poll(bot: &mut Bot) -> Result<()> {
    loop {
        let mut offset = bot.store.state.last_update_id + 1;
        if !set_idle(true) {
            return Ok(());
        }
        let polled = bot.telegram.get_updates(offset);
        if !set_idle(false) {
            return Ok(());
        }
        let updates = match polled {
            Ok(updates) => updates,
            Err(err) => return fatal(err),
        };
        // After a week without updates Telegram may start ids anew, below ours.
        if let Some(lowest) = updates.iter().map(|u| u.update_id).min()
            && updates.iter().all(|u| u.update_id < offset)
        {
            log::warn!(
                "Telegram's update ids restarted at {lowest} (ours were at {offset}); following them"
            );
            offset = lowest;
        }
        bot.forget_silent_chats();
        for update in updates.into_iter().filter(|u| u.update_id >= offset) {
            if STOP.load(Ordering::SeqCst) {
                return Ok(());
            }
            let id = update.update_id;
            if let Err(err) = handle_update(bot, update) {
                return fatal(err);
            }
            bot.store.state.last_update_id = id;
            if let Err(err) = bot.store.save() {
                log::error!("{err:#}");
            }
        }
    }
}

/// Hands one update to the bot and logs what happened. A bug (a panic) in one update's
/// handling is caught: the user gets an apology and the loop goes on.
fn handle_update(bot: &mut Bot, update: telegram::Update) -> Result<(), telegram::Error> {
    let id = update.update_id;
    let origin = update.origin();
    match std::panic::catch_unwind(AssertUnwindSafe(|| bot.handle_update(update))) {
        Ok(Ok(report)) => log_report(id, &report),
        Ok(Err(err)) => return Err(err),
        Err(_) => {
            log::error!("update {id}: skipped after a bug (the panic is logged above)");
            if let Some((chat_id, reply_to)) = origin {
                bot.apologize(chat_id, reply_to);
            }
        }
    }
    Ok(())
}

/// Marks the loop idle or busy; false if a stop was requested (checked under the lock,
/// so a signal is never missed between the check and a 30-second poll).
fn set_idle(idle: bool) -> bool {
    let mut guard = IDLE.lock().unwrap_or_else(|e| e.into_inner());
    if STOP.load(Ordering::SeqCst) {
        return false;
    }
    *guard = idle;
    true
}

fn fatal(err: telegram::Error) -> Result<()> {
    match err.kind {
        ErrorKind::Unauthorized => anyhow::bail!(
            "telegram: the bot token stopped working (401 Unauthorized): it was revoked or changed in @BotFather; set the new TELEGRAM_TOKEN and start the bot again"
        ),
        ErrorKind::Stopped => Ok(()),
        _ => Err(err.into()),
    }
}

fn log_report(update_id: i64, r: &bot::Report) {
    let latency = r.gigachat_ms.map_or("-".to_string(), |ms| format!("{ms}"));
    let text = r
        .text
        .as_ref()
        .map_or(String::new(), |t| format!(" text={t:?}"));
    log::info!(
        "update={update_id} chat={} user={} kind={} style={} gigachat_ms={latency} tokens={} outcome={:?}{text}",
        r.chat_id,
        r.user_id,
        r.kind,
        r.style,
        r.tokens,
        r.outcome
    );
}

/// `gigabot check`: each item on its own line, with what to do when it fails.
fn check(config: &Config) -> ExitCode {
    let mut ok = true;
    println!("✓ config: {}", config.source);

    let telegram = Telegram::new(&config.telegram, &STOP);
    match telegram.get_me_once() {
        Ok(me) => println!(
            "✓ telegram: the token works, the bot is @{} (id {})",
            me.username.as_deref().unwrap_or("?"),
            me.id
        ),
        Err(err) => {
            ok = false;
            match err.kind {
                ErrorKind::Unauthorized => {
                    println!("✗ telegram: the bot token is wrong (401): check it with @BotFather")
                }
                _ => println!(
                    "✗ telegram: {err}: check telegram.api_url ({}) and the network",
                    config.telegram.api_url
                ),
            }
        }
    }

    let gc = &config.gigachat;
    match &gc.ca_bundle_file {
        None => println!("• CA: no gigachat.ca_bundle_file, using the system trust store"),
        Some(path) => {
            println!(
                "• CA file {}: {} certificate(s)",
                path.display(),
                gc.ca_certs.len()
            );
            for der in &gc.ca_certs {
                if let Some(report) = gigachat::describe_ca(der) {
                    let verdict = if report.is_russian_trusted_root {
                        "this is the Russian Trusted Root CA"
                    } else {
                        "this is not the Russian Trusted Root CA"
                    };
                    println!(
                        "    subject: {}\n    SHA-256: {}\n    {verdict}",
                        report.subject, report.sha256
                    );
                }
            }
        }
    }

    let mut gigachat = GigaChat::new(gc);
    match gigachat.get_gigachat_token() {
        Ok(_) => {
            let left = gigachat
                .token_expires_at_ms()
                .map(|ms| ms.saturating_sub(bot::unix_now() * 1000) / 60_000)
                .unwrap_or(0);
            println!(
                "✓ gigachat: got an access token (scope {}, valid for {left} min)",
                gc.scope
            );
            match gigachat.models() {
                Ok(models) => {
                    let names: Vec<&str> = models
                        .iter()
                        .filter(|m| m.kind.is_empty() || m.kind == "chat")
                        .map(|m| m.id.as_str())
                        .collect();
                    println!("• gigachat models for this key: {}", names.join(", "));
                    if names.contains(&gc.model.as_str()) {
                        println!("✓ gigachat: the configured model {} is available", gc.model);
                    } else {
                        ok = false;
                        println!(
                            "✗ gigachat: the configured model {} is not in the list: set gigachat.model (GIGACHAT_MODEL) to one of them",
                            gc.model
                        );
                    }
                }
                Err(err) => {
                    ok = false;
                    println!("✗ {err}");
                }
            }
        }
        Err(err) => {
            ok = false;
            println!("✗ {err}");
        }
    }
    if ok {
        println!("Всё в порядке: бот готов к запуску.");
        ExitCode::SUCCESS
    } else {
        println!("Есть проблемы: исправьте пункты, отмеченные ✗.");
        ExitCode::from(1)
    }
}

/// `gigabot ask`: one question, the answer as GigaChat wrote it (Markdown) on stdout.
fn ask(config: &Config, style: Option<&str>, question: &str) -> Result<ExitCode> {
    let style_id = style.unwrap_or(&config.bot.default_style);
    let Some(style) = config.styles.iter().find(|s| s.id == style_id) else {
        let ids: Vec<&str> = config.styles.iter().map(|s| s.id.as_str()).collect();
        return Ok(usage_error(UsageError(anyhow::anyhow!(
            "--style {style_id:?} is not a style: use one of {}",
            ids.join(", ")
        ))));
    };
    let mut gigachat = GigaChat::new(&config.gigachat);
    let messages = [
        gigachat::ChatMessage::new("system", &style.prompt),
        gigachat::ChatMessage::new("user", question),
    ];
    let completion = gigachat.chat(&messages, None).context("no answer")?;
    match completion.finish_reason.as_str() {
        "blacklist" => {
            eprintln!("GigaChat refused to answer on this topic (finish_reason: blacklist)");
            Ok(ExitCode::from(1))
        }
        reason => {
            println!("{}", completion.content.trim_end());
            if reason == "length" {
                eprintln!("(the answer was cut short: it reached the length limit)");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Parses the command line. Errors are one line for the user.
fn parse_args(args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut config = None;
    let mut style = None;
    let mut reset_state = false;
    let mut words = Vec::new();
    let mut args = args.peekable();
    let mut only_words = false;
    while let Some(arg) = args.next() {
        if only_words || !arg.starts_with('-') || arg == "-" {
            words.push(arg);
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_string(), Some(value.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .filter(|v| !v.is_empty())
                .ok_or(format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--" => only_words = true,
            "-h" | "--help" => {
                return Ok(Args {
                    command: Command::Help,
                    config,
                });
            }
            "-V" | "--version" => {
                return Ok(Args {
                    command: Command::Version,
                    config,
                });
            }
            "-c" | "--config" => config = Some(PathBuf::from(value("--config")?)),
            "--style" => style = Some(value("--style")?),
            "--reset-state" => reset_state = true,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    let mut words = words.into_iter();
    let command = match words.next().as_deref() {
        None | Some("run") => Command::Run { reset_state },
        Some("check") => Command::Check,
        Some("ask") => {
            let question = words.by_ref().collect::<Vec<_>>().join(" ");
            if question.trim().is_empty() {
                return Err("ask needs a question: gigabot ask \"Что такое закон Ома?\"".into());
            }
            Command::Ask {
                style: style.take(),
                question,
            }
        }
        Some(other) => return Err(format!("unknown command {other:?}: use run, check or ask")),
    };
    if let Some(extra) = words.next() {
        return Err(format!("unexpected argument {extra:?}"));
    }
    if style.is_some() {
        return Err("--style only goes with ask".into());
    }
    if reset_state && command != (Command::Run { reset_state }) {
        return Err("--reset-state only goes with run".into());
    }
    Ok(Args { command, config })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Args, String> {
        parse_args(line.split_whitespace().map(String::from))
    }

    #[test]
    fn command_line_table() {
        let run = |reset_state| Command::Run { reset_state };
        let cases: &[(&str, Command, Option<&str>)] = &[
            ("", run(false), None),
            ("run", run(false), None),
            ("run --config bot.toml", run(false), Some("bot.toml")),
            ("--config=bot.toml", run(false), Some("bot.toml")),
            ("-c bot.toml run --reset-state", run(true), Some("bot.toml")),
            ("check --config x.toml", Command::Check, Some("x.toml")),
            ("--help", Command::Help, None),
            ("check -h", Command::Help, None),
            ("--version", Command::Version, None),
            (
                "ask --style fairy Что такое закон Ома?",
                Command::Ask {
                    style: Some("fairy".into()),
                    question: "Что такое закон Ома?".into(),
                },
                None,
            ),
            (
                "ask -- --not-a-flag",
                Command::Ask {
                    style: None,
                    question: "--not-a-flag".into(),
                },
                None,
            ),
        ];
        for (line, command, config) in cases {
            let args = parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(&args.command, command, "{line}");
            assert_eq!(
                args.config.as_deref(),
                config.map(std::path::Path::new),
                "{line}"
            );
        }
    }

    #[test]
    fn command_line_errors() {
        for (line, expected) in [
            ("--bogus", "unknown option --bogus"),
            ("--config", "--config needs a value"),
            ("serve", "unknown command \"serve\""),
            ("ask", "ask needs a question"),
            ("check extra", "unexpected argument \"extra\""),
            ("run --style fairy", "--style only goes with ask"),
            ("check --reset-state", "--reset-state only goes with run"),
        ] {
            let err = parse(line).unwrap_err();
            assert!(err.starts_with(expected), "{line}: {err}");
        }
    }
}
