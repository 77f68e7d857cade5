//! gigabot: a Telegram bot that answers through Sber's GigaChat, in a style the user picks.
//! The lesson's bot done right, and this file reads in the lesson's order: the config, the
//! two clients, then a plain loop that long-polls Telegram and hands every update to the bot,
//! whose `handle_message` (in `bot.rs`) asks GigaChat and replies. Blocking I/O and one loop
//! keep it small, and keep to the personal GigaChat tier's one request at a time. The rest of
//! the command line (`check`, `ask`, arguments) is in cli.rs.

#![forbid(unsafe_code)]

mod bot;
mod cli;
mod clock;
mod commands;
mod config;
mod desk;
mod facts;
mod gigachat;
mod incoming;
mod knowledge;
mod logger;
mod net;
mod owner;
mod render;
mod report;
mod salutespeech;
mod sber;
mod store;
mod stream;
mod telegram;
mod texts;

use std::collections::{HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::bot::{Bot, Halt};
use crate::cli::{Command, Usage};
use crate::config::{Config, Needs};
use crate::gigachat::GigaChat;
use crate::incoming::Update;
use crate::store::Store;
use crate::telegram::{ErrorKind, Telegram};

/// Set when the bot must stop; checked between updates and between retries.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// True while nothing is in flight (start-up, a long poll). The signal watcher holds this lock
/// while it exits, so the loop cannot start on new updates meanwhile.
static IDLE: Mutex<bool> = Mutex::new(true);

fn main() -> ExitCode {
    logger::init();
    // Panics go to the log as one line, like every other event.
    std::panic::set_hook(Box::new(|info| {
        log::error!("bug: {}", info.to_string().replace('\n', " "));
    }));
    match run() {
        Ok(code) => code,
        Err(err) => fail(&err),
    }
}

/// Does what the command line asks: the bot, `check`, `ask` or `backup`, after the config.
fn run() -> Result<ExitCode> {
    let args = cli::parse_args(std::env::args_os().skip(1))?;
    let needs = match args.command {
        Command::Help => {
            println!("{}", cli::USAGE);
            return Ok(ExitCode::SUCCESS);
        }
        Command::Version => {
            println!("gigabot {}", env!("CARGO_PKG_VERSION"));
            return Ok(ExitCode::SUCCESS);
        }
        Command::Ask { .. } | Command::Index => Needs::GigaChatOnly,
        Command::Backup { .. } => Needs::Nothing,
        _ => Needs::TelegramAndGigaChat,
    };
    // 1. The config (the lesson's globals), checked before any network call.
    let config = match config::load(args.config.as_deref(), needs) {
        Ok(config) => config,
        // `check` lists what is wrong: a config that cannot work is its first ✗ item.
        Err(err) if matches!(args.command, Command::Check) => {
            println!("✗ конфиг: {err:#}\n{}", cli::CHECK_FAILED);
            return Ok(ExitCode::from(2));
        }
        Err(err) => return Err(Usage::Config(err).into()),
    };
    logger::set_level(&config.log.level);
    match args.command {
        Command::Run { reset_state } => run_bot(config, reset_state).map(|()| ExitCode::SUCCESS),
        Command::Check => Ok(cli::check(&config)),
        Command::Index => cli::index(&config),
        Command::Ask { style, question } => cli::ask(&config, style.as_deref(), &question),
        Command::Backup { into } => {
            store::backup(&config.bot.state_file, &into)?;
            let (state, copy) = (config.bot.state_file.display(), into.display());
            println!("the state {state} is copied to {copy}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Help | Command::Version => unreachable!("handled above"),
    }
}

/// The one place a fatal error is said, once, and its exit code chosen: 2 for what the user
/// must fix before anything runs (the command line, the config); 3 when Telegram refused the
/// bot token, so that systemd (RestartPreventExitStatus) does not restart every few seconds
/// a bot that only a person can fix; 1 for the rest.
fn fail(err: &anyhow::Error) -> ExitCode {
    let code = match err.downcast_ref::<Usage>() {
        Some(Usage::Arguments(message)) => {
            eprintln!("gigabot: {message}\nTry `gigabot --help`.");
            return ExitCode::from(2);
        }
        Some(Usage::Config(_)) => 2,
        None if err.downcast_ref::<TokenRefused>().is_some() => 3,
        None => 1,
    };
    log::error!("{err:#}");
    ExitCode::from(code)
}

/// Marks an error as "Telegram refused the bot token".
#[derive(Debug)]
struct TokenRefused;

impl std::fmt::Display for TokenRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("telegram")
    }
}

/// Runs the bot: the lesson's `main()` with `run_polling()` written out as a loop we can see.
fn run_bot(config: Config, reset_state: bool) -> Result<()> {
    // First, so that a stop signal during a slow start (Telegram unreachable, retrying)
    // stops the bot at once and cleanly, instead of killing it.
    watch_signals()?;
    // 2. The two clients and the saved state.
    let telegram = Telegram::new(&config.telegram, &STOP);
    let mut gigachat = GigaChat::new(&config.gigachat);
    let mut store = Store::open(&config.bot.state_file, reset_state).map_err(|err| {
        // A file a person must look at: exit as for a config error, not to be restarted.
        if err.is::<store::Unusable>() { Usage::Config(err).into() } else { err }
    })?;

    let token_origin = config.origin("telegram.token");
    let me = telegram.get_me().map_err(|err| match err.kind {
        ErrorKind::Unauthorized => anyhow::anyhow!(
            "the bot token is wrong (Telegram answered 401 Unauthorized): check {token_origin} with @BotFather"
        )
        .context(TokenRefused),
        _ => anyhow::Error::new(err),
    })?;
    if telegram.remove_webhook_if_set()? {
        log::info!("a webhook was set for this bot; deleted it so that polling works");
    }
    if let Err(err) = telegram.set_my_commands(texts::MENU) {
        log::warn!("{err}; the command menu stays as it was");
    }
    // The reference desk: what changed in knowledge.dir is embedded before any question.
    if !config.knowledge.dir.as_os_str().is_empty() {
        let done = desk::refresh(&config.knowledge, &mut gigachat, &mut store);
        log::info!("knowledge: {done:?}");
    }
    log::info!("Бот запущен: @{}", me.username.as_deref().unwrap_or("?"));

    // 3. The loop, until a stop signal; first the rest of an answer a restart cut short
    // (busy meanwhile: a stop waits for the message in flight), the files a kill left
    // in GigaChat's storage, and the balance.
    let mut bot = Bot::new(config, telegram, gigachat, store, me);
    if !set_idle(false) {
        return Ok(());
    }
    bot.send_unsent().or_else(|err| fatal(err, &token_origin))?;
    bot.delete_leftover_uploads();
    bot.read_balance();
    poll(&mut bot).or_else(|err| fatal(err, &token_origin))?;
    // Confirm the handled updates, so Telegram does not keep them for the next start.
    bot.confirm_handled();
    log::info!("Бот остановлен");
    Ok(())
}

/// The polling loop: ask for updates after the last handled one, handle each, save. When
/// saving fails, the loop stops taking updates until the state can be saved again. Ends
/// when a stop is requested, or with the Telegram error that ends the bot.
fn poll(bot: &mut Bot) -> Result<(), telegram::Error> {
    let mut handled = Handled::default();
    loop {
        // Wait for updates after the last handled one (a long poll: up to 30 s).
        let offset = bot.next_offset();
        let mut updates = match wait_for_updates(bot, offset) {
            Some(polled) => polled?,
            None => return Ok(()), // stopping
        };
        if drop_unusable(&mut updates, &handled) {
            continue;
        }
        let offset = follow_restarted_ids(&updates, offset);
        bot.housekeeping();
        // Handle each one; it is saved with what it changed, so a restart answers none twice.
        for update in updates.into_iter().filter(|u| u.update_id >= offset) {
            if STOP.load(Ordering::SeqCst) {
                return Ok(());
            }
            let id = update.update_id;
            match handle_caught(bot, update) {
                Ok(()) => handled.insert(id),
                Err(Halt::Fatal(err)) => return Err(err),
                Err(Halt::Unsaved(report, err)) => {
                    log::info!("{}", report.line(id));
                    if !wait_for_the_state(bot, &err) {
                        return Ok(());
                    }
                    break; // polled again from the last saved update
                }
            }
        }
        bot.read_balance();
    }
}

/// After a failed save: no update is taken (Telegram keeps them) until the state can be
/// saved again, tried with growing pauses (1 s doubling to a minute). False when stopping.
fn wait_for_the_state(bot: &mut Bot, err: &anyhow::Error) -> bool {
    log::error!(
        "cannot save the state ({err:#}): no new updates are taken until it can be saved; the update is handled again then. Check the disk space and bot.state_file"
    );
    let mut pause = Duration::from_secs(1);
    loop {
        if !set_idle(true) || !bot.telegram().pause(pause) || !set_idle(false) {
            return false;
        }
        match bot.probe_state() {
            Ok(()) => {
                log::info!("the state can be saved again: taking updates");
                return true;
            }
            Err(err) => log::debug!("the state still cannot be saved: {err:#}"),
        }
        pause = (pause * 2).min(Duration::from_secs(60));
    }
}

/// getUpdates, marked idle so a stop signal may end the process meanwhile; None when stopping.
fn wait_for_updates(bot: &Bot, offset: i64) -> Option<Result<Vec<Update>, telegram::Error>> {
    if !set_idle(true) {
        return None;
    }
    let polled = bot.telegram().get_updates(offset);
    set_idle(false).then_some(polled)
}

/// Drops what must not be handled: ids Telegram never sends (not positive, or i64::MAX, which
/// no offset could confirm) and ids handled lately (a server that ignores our offset resends
/// them). True if nothing is left, after a pause, so such a server is not polled in a tight loop.
fn drop_unusable(updates: &mut Vec<Update>, handled: &Handled) -> bool {
    let before = updates.len();
    updates.retain(|u| {
        let id = u.update_id;
        if !(1..i64::MAX).contains(&id) {
            log::warn!("an update with the impossible id {id} was skipped");
            false
        } else if handled.ids.contains(&id) {
            log::debug!("update {id} was handled already; skipped");
            false
        } else {
            true
        }
    });
    let nothing_left = before > 0 && updates.is_empty();
    if nothing_left {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    nothing_left
}

/// The last thousand update ids handled by this process.
#[derive(Default)]
struct Handled {
    order: VecDeque<i64>,
    ids: HashSet<i64>,
}

impl Handled {
    fn insert(&mut self, id: i64) {
        if self.ids.insert(id) {
            self.order.push_back(id);
        }
        if self.order.len() > 1000
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
    }
}

/// After a week without updates Telegram may restart ids below ours; its lowest is then ours.
fn follow_restarted_ids(updates: &[Update], offset: i64) -> i64 {
    match updates.iter().map(|u| u.update_id).min() {
        Some(lowest) if updates.iter().all(|u| u.update_id < offset) => {
            log::warn!(
                "Telegram's update ids restarted at {lowest} (ours were at {offset}); following them"
            );
            lowest
        }
        _ => offset,
    }
}

/// Hands one update to the bot and logs what happened. A bug (a panic) in one update's
/// handling is caught: the user gets an apology and the loop goes on.
fn handle_caught(bot: &mut Bot, update: Update) -> Result<(), Halt> {
    let id = update.update_id;
    let origin = update.origin();
    match std::panic::catch_unwind(AssertUnwindSafe(|| bot.handle_update(update))) {
        Ok(Ok(report)) => log::info!("{}", report.line(id)),
        Ok(Err(halt)) => return Err(halt),
        Err(_) => {
            log::error!("update {id}: skipped after a bug (the panic is logged above)");
            bot.apologize(id, origin);
        }
    }
    Ok(())
}

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

/// What ends the loop: a refused token (said with where it came from) or a stop.
fn fatal(err: telegram::Error, token_origin: &str) -> Result<()> {
    match err.kind {
        ErrorKind::Unauthorized => Err(anyhow::anyhow!(
            "the bot token stopped working (Telegram answered 401 Unauthorized): it was revoked or changed in @BotFather; put the new token into {token_origin} and start the bot again"
        )
        .context(TokenRefused)),
        ErrorKind::Stopped => Ok(()),
        _ => Err(err.into()),
    }
}
