//! The command line: arguments, `gigabot check` and `gigabot ask`. `check` goes through
//! everything a new owner can get wrong (the token, the key, the scope, the model, the CA
//! file) and says what to do about each; `ask` is one question to GigaChat from the
//! terminal, the quickest way to see the key and TLS work.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};

use crate::clock;
use crate::config::scrub::{shown_name, shown_url};
use crate::config::{Config, GigaChatConfig, TelegramConfig, style_ids};
use crate::desk;
use crate::gigachat::{self, GigaChat};
use crate::owner;
use crate::salutespeech::SaluteSpeech;
use crate::store::{self, Store};
use crate::telegram::{ErrorKind, Telegram, host_of};
use crate::texts;

pub const USAGE: &str = "\
gigabot — a Telegram bot that answers through GigaChat

Usage:
  gigabot [run] [--config FILE] [--reset-state]   run the bot until Ctrl-C or SIGTERM
  gigabot check [--config FILE]                   check the config, the token, the key and TLS
  gigabot ask [--config FILE] [--style ID] TEXT…  ask GigaChat one question, answer on stdout
  gigabot backup [--config FILE] COPY             copy the state (bot.state_file) to COPY, also
                                                  while the bot runs
  gigabot index [--config FILE]                   build or refresh the index of knowledge.dir
                                                  (the bot does it at start, too)
  gigabot --help | --version

The config file is FILE, else $GIGABOT_CONFIG, else ./config.toml if present, else the
built-in defaults. Secrets come from the environment: TELEGRAM_TOKEN and GIGACHAT_CREDENTIALS.
See config.example.toml for every key.";

/// What the command line asked for.
#[derive(Debug, PartialEq)]
pub enum Command {
    Run { reset_state: bool },
    Check,
    Ask { style: Option<String>, question: String },
    Backup { into: PathBuf },
    Index,
    Help,
    Version,
}

#[derive(Debug, PartialEq)]
pub struct Args {
    pub command: Command,
    pub config: Option<PathBuf>,
}

/// What the user must fix before anything runs: exit code 2 (1 is runtime trouble), said once.
#[derive(Debug)]
pub enum Usage {
    /// A command line that does not parse; said with a pointer to `--help`.
    Arguments(String),
    /// A config that cannot work, or an argument it rejects (an unknown style): one log line.
    Config(anyhow::Error),
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Usage::Arguments(message) => f.write_str(message),
            Usage::Config(err) => write!(f, "{err:#}"),
        }
    }
}

impl std::error::Error for Usage {}

/// `check`'s last line when an item failed.
pub const CHECK_FAILED: &str = "Есть проблемы: исправьте пункты, отмеченные ✗.";

/// `gigabot check`: each item on its own line, with what to do when it fails. It speaks
/// Russian to the person at the terminal; the details of a service's error inside an item
/// are the log's words (English), so that one text is found in both.
pub fn check(config: &Config) -> ExitCode {
    println!("✓ конфиг: {}", config.source);
    let bot = &config.bot;
    if bot.allowed_users.is_empty() && bot.daily_tokens_per_user == 0 {
        // Not a ✗: an open bot works, but anyone who finds it spends the owner's tokens.
        println!("{}", texts::OPEN_TO_EVERYONE);
    }
    // Each step says what it is about to do first: a server that hangs shows where.
    let mut ok = check_telegram(&config.telegram, &config.origin("telegram.token"));
    show_ca_file(&config.gigachat);
    ok &= check_gigachat(config);
    ok &= check_salutespeech(config);
    show_index(config);
    if ok {
        println!("Всё в порядке: бот готов к запуску.");
        ExitCode::SUCCESS
    } else {
        println!("{}", CHECK_FAILED);
        ExitCode::from(1)
    }
}

/// `check`'s Telegram line: who the bot is, or what to fix.
fn check_telegram(tg: &TelegramConfig, token_origin: &str) -> bool {
    println!("… telegram: спрашиваю у {}, что это за бот (до 10 с)", host_of(&tg.api_url));
    match Telegram::for_check(tg).get_me() {
        Ok(me) => {
            let name = me.username.as_deref().unwrap_or("?");
            println!("✓ telegram: токен работает, бот — @{name} (id {})", me.id);
            println!(
                "{}",
                if me.supports_guest_queries { texts::GUEST_ON } else { texts::GUEST_OFF }
            );
            true
        }
        Err(err) if matches!(err.kind, ErrorKind::Unauthorized) => {
            println!(
                "✗ telegram: токен бота неверный (401): проверьте {token_origin} у @BotFather"
            );
            false
        }
        Err(err) => {
            let url = shown_url(&tg.api_url);
            println!("✗ telegram: {err}: проверьте telegram.api_url ({url}) и сеть");
            false
        }
    }
}

/// `check`'s line on the reference desk: the index's documents and passages, and whether it
/// matches the files now. Read without the state's lock, so it works while the bot runs.
fn show_index(config: &Config) {
    if config.knowledge.dir.as_os_str().is_empty() {
        return;
    }
    let Some((documents, passages)) = store::index_summary(&config.bot.state_file) else {
        return println!("{}", texts::INDEX_MISSING);
    };
    let current = desk::is_current(&config.knowledge, &documents);
    let line = if current { texts::INDEX_CURRENT } else { texts::INDEX_STALE };
    let line = line.replace("{files}", &documents.len().to_string());
    println!("{}", line.replace("{passages}", &passages.to_string()));
}

/// `gigabot index`: the reference desk's index built or brought up to date, a line per
/// document embedded in the log, the figures at the end. Exit 1 if an embeddings call failed.
pub fn index(config: &Config) -> Result<ExitCode> {
    if config.knowledge.dir.as_os_str().is_empty() {
        bail!(Usage::Config(anyhow!(
            "knowledge.dir is not set: put the folder of your documents there"
        )));
    }
    let mut store = Store::open(&config.bot.state_file, false)?;
    let done = desk::refresh(&config.knowledge, &mut GigaChat::new(&config.gigachat), &mut store);
    println!(
        "{}",
        texts::INDEXED
            .replace("{documents}", &done.documents.to_string())
            .replace("{embedded}", &done.embedded.to_string())
            .replace("{removed}", &done.removed.to_string())
            .replace("{passages}", &done.passages.to_string())
            .replace("{calls}", &done.calls.to_string())
            .replace("{tokens}", &done.tokens.to_string())
    );
    Ok(match done.failed {
        Some(err) => {
            println!("✗ {err}");
            ExitCode::from(1)
        }
        None => ExitCode::SUCCESS,
    })
}

/// `check`'s CA lines: the certificates of `gigachat.ca_bundle_file`, or the system's store.
fn show_ca_file(gc: &GigaChatConfig) {
    let Some(path) = &gc.ca_bundle_file else {
        println!("• CA: gigachat.ca_bundle_file не задан, бот доверяет системному хранилищу");
        return;
    };
    println!("• CA-файл {}: сертификатов — {}", path.display(), gc.ca_certs.len());
    let reports: Vec<_> = gc.ca_certs.iter().filter_map(|der| gigachat::describe_ca(der)).collect();
    // A whole bundle (the system's, say) is summed up, not listed certificate by
    // certificate: what matters is whether the Ministry's root is in it.
    if reports.len() > 3 {
        match reports.iter().any(|r| r.is_russian_trusted_root) {
            true => println!("    среди них есть Russian Trusted Root CA (Минцифры)"),
            false => println!(
                "    Russian Trusted Root CA среди них нет: сертификату GigaChat бот не поверит"
            ),
        }
        return;
    }
    for report in &reports {
        let not = if report.is_russian_trusted_root { "" } else { "не " };
        let verdict = format!("это {not}Russian Trusted Root CA (Минцифры)");
        println!("    субъект: {}\n    SHA-256: {}\n    {verdict}", report.subject, report.sha256);
    }
}

/// `check`'s GigaChat lines: an access token, then the models and the configured one among them.
fn check_gigachat(config: &Config) -> bool {
    let gc = &config.gigachat;
    let secs = gc.timeout_secs.min(10);
    println!("… gigachat: прошу токен доступа у {} (до {secs} с)", host_of(&gc.auth_url));
    let mut gigachat = GigaChat::for_check(gc);
    if let Err(err) = gigachat.get_gigachat_token() {
        println!("✗ {err}");
        return false;
    }
    let left = minutes_left(gigachat.token_expires_at_ms());
    println!("✓ gigachat: токен доступа получен (scope {}, действует {left} мин)", gc.scope);
    println!("… gigachat: прошу у {} список моделей", host_of(&gc.base_url));
    let Ok(models) = gigachat.models().map_err(|err| println!("✗ {err}")) else {
        return false;
    };
    show_balance(&mut gigachat);
    let chat = models.iter().filter(|m| m.kind.is_empty() || m.kind == "chat");
    let names: Vec<&str> = chat.map(|m| m.id.as_str()).collect();
    println!("• модели GigaChat для этого ключа: {}", names.join(", "));
    let found = names.contains(&gc.model.as_str());
    match found {
        true => println!("✓ gigachat: модель из конфига {} доступна", gc.model),
        false => println!(
            "✗ gigachat: модели из конфига {} нет в списке: задайте gigachat.model (GIGACHAT_MODEL) одной из них",
            shown_name(&gc.model)
        ),
    }
    found && (config.knowledge.dir.as_os_str().is_empty() || has_embedder(config, &models))
}

/// Whether `knowledge.model` is among the key's embedder models; if not, says so.
fn has_embedder(config: &Config, models: &[gigachat::Model]) -> bool {
    let embedders = models.iter().filter(|m| m.kind == "embedder" || m.kind.is_empty());
    let names: Vec<&str> = embedders.map(|m| m.id.as_str()).collect();
    let found = names.contains(&config.knowledge.model.as_str());
    if !found {
        let model = shown_name(&config.knowledge.model);
        println!(
            "{}",
            texts::NO_EMBEDDER.replace("{model}", &model).replace("{models}", &names.join(", "))
        );
    }
    found
}

/// `check`'s balance line: the prepaid packages, or that the account pays as it goes. Only
/// said: an account without packages works as well.
fn show_balance(gigachat: &mut GigaChat) {
    match gigachat.balance() {
        Ok(packages) => println!("• {}", owner::balance_text(packages.as_deref())),
        // The error may name the configured model, which a misplaced secret could be.
        Err(err) => println!("• Баланс GigaChat: не удалось узнать ({})", err.kind()),
    }
}

/// `check`'s SaluteSpeech line: not configured, or a token obtained, or why not.
fn check_salutespeech(config: &Config) -> bool {
    let (ss, gc) = (&config.salutespeech, &config.gigachat);
    let secs = gc.timeout_secs.min(10);
    let Some(mut speech) = SaluteSpeech::new(ss, &gc.ca_certs, secs) else {
        println!(
            "• salutespeech: не настроен, на голосовые бот отвечает, что понимает текст (задайте SALUTE_SPEECH_CREDENTIALS — ключ проекта SaluteSpeech)"
        );
        return true;
    };
    let host = host_of(&ss.auth_url);
    println!("… salutespeech: прошу токен доступа у {host} (до {secs} с)");
    if let Err(err) = speech.get_token() {
        println!("✗ {err}");
        return false;
    }
    let left = minutes_left(speech.token_expires_at_ms());
    println!(
        "✓ salutespeech: токен доступа получен (scope {}, действует {left} мин): голосовые распознаются",
        ss.scope
    );
    true
}

/// Whole minutes until an access token expires, for "действует N мин".
fn minutes_left(expires_at_ms: Option<u64>) -> u64 {
    expires_at_ms.map_or(0, |ms| ms.saturating_sub(clock::unix_now_ms()) / 60_000)
}

/// `gigabot ask`: one question, the answer as GigaChat wrote it (Markdown) on stdout.
pub fn ask(config: &Config, style: Option<&str>, question: &str) -> Result<ExitCode> {
    let style_id = style.unwrap_or(&config.bot.default_style);
    let Some(style) = config.styles.iter().find(|s| s.id == style_id) else {
        let ids = style_ids(&config.styles);
        let err = anyhow::anyhow!("--style {style_id:?} — нет такого стиля: укажите один из {ids}");
        return Err(Usage::Config(err).into());
    };
    let mut gigachat = GigaChat::new(&config.gigachat);
    let messages = [
        gigachat::ChatMessage::new("system", &style.prompt),
        gigachat::ChatMessage::new("user", question),
    ];
    let completion = gigachat.chat(&messages, None, None).context("GigaChat не ответил")?;
    if completion.finish_reason == "blacklist" {
        eprintln!("GigaChat не стал отвечать на эту тему (finish_reason: blacklist)");
        return Ok(ExitCode::from(1));
    }
    println!("{}", completion.content.trim_end());
    if completion.finish_reason == "length" {
        eprintln!("(ответ обрезан: GigaChat достиг ограничения длины)");
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses the command line (without the program's name). Errors are one line for the user.
/// Paths may be any bytes; the words of a question and a style must be UTF-8.
pub fn parse_args(args: impl IntoIterator<Item = impl Into<OsString>>) -> Result<Args, Usage> {
    parse(lexopt::Parser::from_args(args)).map_err(Usage::Arguments)
}

fn parse(mut parser: lexopt::Parser) -> Result<Args, String> {
    use lexopt::Arg::{Long, Short, Value};
    let mut config = None;
    let mut style = None;
    let mut reset_state = false;
    let mut words = Vec::new();
    while let Some(arg) = parser.next().map_err(|err| match err {
        lexopt::Error::UnexpectedValue { option, .. } => format!("{option} takes no value"),
        err => err.to_string(),
    })? {
        match arg {
            Short('h') | Long("help") => return Ok(Args { command: Command::Help, config }),
            Short('V') | Long("version") => return Ok(Args { command: Command::Version, config }),
            Short('c') | Long("config") => config = Some(value(&mut parser, "--config")?.into()),
            Long("style") => style = Some(utf8(value(&mut parser, "--style")?, "--style")?),
            Long("reset-state") => reset_state = true,
            Short(flag) => return Err(format!("unknown option -{flag}")),
            Long(flag) => return Err(format!("unknown option --{flag}")),
            Value(word) => words.push(word),
        }
    }
    let mut words = words.into_iter();
    let first = words.next();
    let command = match first.as_ref().map(|word| word.to_str()) {
        None | Some(Some("run")) => Command::Run { reset_state },
        Some(Some("check")) => Command::Check,
        Some(Some("index")) => Command::Index,
        Some(Some("ask")) => {
            let words: Vec<String> =
                words.by_ref().map(|word| utf8(word, "the question")).collect::<Result<_, _>>()?;
            let question = words.join(" ");
            if question.trim().is_empty() {
                return Err("ask needs a question: gigabot ask \"Что такое закон Ома?\"".into());
            }
            Command::Ask { style: style.take(), question }
        }
        Some(Some("backup")) => {
            let into = words
                .next()
                .ok_or("backup needs a file to copy to: gigabot backup gigabot-copy.db")?;
            Command::Backup { into: into.into() }
        }
        Some(_) => {
            let word = first.unwrap_or_default();
            return Err(format!("unknown command {word:?}: use run, check, ask or backup"));
        }
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

/// The value of the option `name`, which may not be empty.
fn value(parser: &mut lexopt::Parser, name: &str) -> Result<OsString, String> {
    parser.value().ok().filter(|value| !value.is_empty()).ok_or(format!("{name} needs a value"))
}

fn utf8(text: OsString, what: &str) -> Result<String, String> {
    text.into_string().map_err(|text| {
        format!("{what} is not UTF-8 text: {text:?} (is the terminal's encoding UTF-8?)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Args, String> {
        parse_args(line.split_whitespace()).map_err(|err| err.to_string())
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
            ("backup copy.db", Command::Backup { into: "copy.db".into() }, None),
            (
                "ask -- --not-a-flag",
                Command::Ask { style: None, question: "--not-a-flag".into() },
                None,
            ),
        ];
        for (line, command, config) in cases {
            let args = parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(&args.command, command, "{line}");
            assert_eq!(args.config.as_deref(), config.map(std::path::Path::new), "{line}");
        }
    }

    #[test]
    fn command_line_errors() {
        for (line, expected) in [
            ("--bogus", "unknown option --bogus"),
            ("--config", "--config needs a value"),
            ("serve", "unknown command \"serve\""),
            ("ask", "ask needs a question"),
            ("backup", "backup needs a file"),
            ("check extra", "unexpected argument \"extra\""),
            ("run --style fairy", "--style only goes with ask"),
            ("check --reset-state", "--reset-state only goes with run"),
            ("--reset-state=yes", "--reset-state takes no value"),
            ("--config=", "--config needs a value"),
            ("-x", "unknown option -x"),
            ("--bogus=1", "unknown option --bogus"),
        ] {
            let err = parse(line).unwrap_err();
            assert!(err.starts_with(expected), "{line}: {err}");
        }
    }

    /// On Unix an argument is any bytes: a path may be, text may not, and nothing panics.
    #[test]
    fn arguments_that_are_not_utf8() {
        use std::os::unix::ffi::OsStringExt;
        let bytes = |b: &[u8]| OsString::from_vec(b.to_vec());
        let args =
            parse_args([bytes(b"--config"), bytes(b"bot-\xff.toml"), bytes(b"check")]).unwrap();
        assert_eq!(args.config, Some(PathBuf::from(bytes(b"bot-\xff.toml"))));
        let args = parse_args([bytes(b"backup"), bytes(b"copy-\xff.db")]).unwrap();
        assert_eq!(args.command, Command::Backup { into: bytes(b"copy-\xff.db").into() });
        let cases: &[(&[&[u8]], &str)] = &[
            (
                &[b"ask", b"\xf0\xd2\xc9"], // KOI8-R
                "the question is not UTF-8 text: \"\\xF0\\xD2\\xC9\"",
            ),
            (&[b"ask", b"--style", b"\xff", b"x"], "--style is not UTF-8 text"),
            (&[b"\xff"], "unknown command \"\\xFF\""),
            (&[b"check", b"\xff"], "unexpected argument \"\\xFF\""),
            (&[b"--\xff"], "unknown option --\u{FFFD}"),
            (&[b"-\xff"], "unknown option -\u{FFFD}"),
        ];
        for (line, expected) in cases {
            let err = parse_args(line.iter().map(|b| bytes(b))).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{line:?}: {err}");
        }
    }
}
