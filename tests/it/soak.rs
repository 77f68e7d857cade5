//! Soak with faults (the last test): thousands of updates from hundreds of chats —
//! questions, commands, stickers, button presses, edits, group talk — while both fakes inject
//! faults at random and the bot is SIGKILLed and restarted in the middle.
//!
//! Pass means: every update that needs an answer got exactly one reply (a message whose
//! reply_parameters.message_id is the update's message), no other update got one, every
//! button press was answered once, the database was valid after each kill and names the
//! last delivered update at the end, GigaChat saw as many requests as there were questions
//! (give or take one per kill), and the memory of the bot stayed flat.
//!
//! The faults are random but reproducible: everything is drawn from one seed, printed in every
//! failure message; replay with `GIGABOT_SOAK_SEED=<seed> cargo test --test it soak_ci`. The
//! updates and the kills replay exactly; which call meets which fault also depends on timing
//! (how many updates one getUpdates returns), so a replay is close, not identical.
//!
//! How the bot is killed. A SIGKILL at a random wall-clock moment can land between Telegram
//! accepting a sendMessage and the bot committing the update's transaction right after it
//! (an fsync: about a millisecond). No design closes that window — the bot cannot ask Telegram
//! whether a message went out — so such a crash would answer that update again after the
//! restart, and a random-moment kill would make this test flaky for no bug of the bot's.
//! So the soak kills the bot where a crash most often finds a bot: blocked waiting on the
//! network. The fakes' kill hooks run when the n-th call of a chosen method arrives
//! (getUpdates, sendRichMessage or a GigaChat chat request, n drawn from the
//! seed): the hook SIGKILLs the bot and waits for it to exit, and only then does the fake
//! drop that connection, unhandled. Under this model the bot must lose nothing and answer
//! nothing twice; a failure here is a bug in the bot, not in the test. `soak_ci` kills once
//! in each of the three methods.
//!
//! Answers are kept short, so each is one message (a kill between the parts of a long answer
//! is the streaming tests' business).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::core::WAIT;
use crate::fake_gigachat::{self as gc, ChatRequest, FakeGigaChat, Reply};
use crate::fake_telegram::{self as tg, FakeTelegram, FaultRates, SplitMix};
use crate::harness::{BotEnv, BotProcess, saved_update_id};

const DEFAULT_SEED: u64 = 20_260_122;
/// Updates pushed at once; the next chunk waits until the bot has handled this one.
const CHUNK: usize = 200;
/// How long one chunk may take, restarts and the faults' retries included.
const CHUNK_DEADLINE: Duration = Duration::from_secs(180);
/// End RSS over warm-up RSS, at most.
const RSS_GROWTH: f64 = 1.2;

/// The faults: 5 % 5xx and 1 % dropped connections on every Telegram method and on
/// GigaChat (OAuth and chat), 429 with retry_after on sendMessage, and the GigaChat token
/// expiring every few hundred requests.
const FULL_FAULTS: Faults = Faults {
    telegram: FaultRates {
        server_error: 0.05,
        dropped: 0.01,
        too_many_requests: 0.005,
        retry_after: 1,
    },
    gigachat: gc::FaultRates { server_error: 0.05, dropped: 0.01, expire_tokens_every: 300 },
    flood: Some(tg::FloodLimits { private_burst: 5, group_per_minute: 20 }),
};

/// The same kinds of fault, fewer on Telegram. The bot waits at least a second before it
/// tries a Telegram call again (and `retry_after` on a 429), so at the full rates the ~1 900
/// retried calls of 2 000 updates (all but sendChatAction, which is not retried) would spend
/// about two minutes waiting. These rates give about twenty such faults; GigaChat faults cost
/// no waiting (the user gets an error text at once), so they stay at the full rates. The
/// fake's flood control is off: with 160 private chats its 429s came a dozen a run, each with
/// a `retry_after` of up to 5 s (half the CI soak's time), and they are 429s like the random
/// ones, which come instead at a rate that gives a few a run.
const CI_FAULTS: Faults = Faults {
    telegram: FaultRates {
        server_error: 0.004,
        dropped: 0.002,
        too_many_requests: 0.003,
        retry_after: 1,
    },
    gigachat: FULL_FAULTS.gigachat,
    flood: None,
};

struct Faults {
    telegram: FaultRates,
    gigachat: gc::FaultRates,
    /// The fake Telegram's flood control (Telegram's documented rates, or none).
    flood: Option<tg::FloodLimits>,
}

/// One kill in each of the calls it can land in (a poll, "typing…", an answer, a GigaChat
/// request), so the fixed seed still kills the bot everywhere.
#[test]
fn soak_ci() {
    soak(seed(), 2_000, 200, KILL_METHODS.len(), &CI_FAULTS);
}

#[test]
#[ignore = "takes about 25 minutes: cargo test --release --test it soak_full -- --ignored"]
fn soak_full() {
    soak(seed(), 20_000, 2_000, 5, &FULL_FAULTS);
}

fn seed() -> u64 {
    match std::env::var("GIGABOT_SOAK_SEED") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("GIGABOT_SOAK_SEED={text:?} is not a number")),
        Err(_) => DEFAULT_SEED,
    }
}

/// Pushes `updates` updates from `chats` chats in chunks, kills the bot `kills` times in the
/// middle, and checks the outcome (see the module docs).
fn soak(seed: u64, updates: usize, chats: usize, kills: usize, faults: &Faults) {
    let started = Instant::now();
    let mut run = Run::start(seed, chats, faults);
    let chunks = updates.div_ceil(CHUNK);
    let plans = kill_plans(seed, chunks, kills);
    // Warm-up: a tenth of the run after the last restart, in the process that runs to the end.
    let warm_chunk = plans.last().map_or(0, |p| p.chunk) + (chunks / 10).max(1);
    assert!(warm_chunk < chunks, "seed {seed}: too few chunks to measure memory");
    let mut rss_warm = 0;
    for chunk in 0..chunks {
        if let Some(plan) = plans.iter().find(|p| p.chunk == chunk) {
            run.arm(plan);
        }
        let count = CHUNK.min(updates - chunk * CHUNK);
        for _ in 0..count {
            run.push_next();
        }
        run.wait_handled(chunk);
        if chunk == warm_chunk {
            rss_warm = rss_kb(run.pid());
        }
        run.note_keyboards();
    }
    let rss_end = rss_kb(run.pid());
    run.stop();
    let elapsed = started.elapsed();

    run.check_replies();
    run.check_buttons();
    run.check_gigachat(kills);
    run.check_final_state();
    let growth = rss_end as f64 / rss_warm as f64;
    assert!(
        growth <= RSS_GROWTH,
        "seed {seed}: the bot's memory grew from {rss_warm} kB after warm-up to {rss_end} kB at the end (×{growth:.2}, at most ×{RSS_GROWTH})"
    );
    println!(
        "soak seed {seed}: {updates} updates, {chats} chats, {} in {:.1} s; {}; RSS of the last process {rss_warm} kB after warm-up, {rss_end} kB at the end (×{growth:.2})",
        run.kills_summary(),
        elapsed.as_secs_f64(),
        run.faults_summary(),
    );
}

/// What kind of update was pushed, and so what the bot must do with it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// A question in a private chat: GigaChat's answer, or its error text.
    Question,
    /// A command in a private chat (also an unknown one).
    Command,
    /// A sticker in a private chat: the polite refusal.
    Sticker,
    /// A question to @SomeBot in a group.
    Mention,
    /// A command for the bot in a group.
    GroupCommand,
    /// Group talk not for the bot (another bot's command, a sticker, chatter): no reply.
    Chatter,
    /// An edited message: no reply (the bot does not even ask for these).
    Edit,
    /// A press on a style button: answerCallbackQuery and an edit, no new message.
    Button,
}

impl Kind {
    fn needs_reply(self) -> bool {
        matches!(
            self,
            Kind::Question | Kind::Command | Kind::Sticker | Kind::Mention | Kind::GroupCommand
        )
    }

    fn asks_gigachat(self) -> bool {
        matches!(self, Kind::Question | Kind::Mention)
    }
}

const PRIVATE_COMMANDS: [&str; 8] = [
    "/start",
    "/help",
    "/mode",
    "/reset",
    "/mode fairy",
    "/mode professor",
    "/mode pirate",
    "/weather",
];
const GROUP_COMMANDS: [&str; 5] =
    ["/help@SomeBot", "/mode@SomeBot", "/start@SomeBot", "/reset", "/mode@SomeBot fairy"];
/// Methods a kill lands on; "gigachat" is a chat completion request. Answers go out as rich
/// messages by default, and a private chat waits with "Thinking…" rather than "typing…", so
/// sendRichMessage is the call every answer makes (sendChatAction and sendMessage are too rare
/// now to be sure of a kill in every chunk).
const KILL_METHODS: [&str; 3] = ["getUpdates", "sendRichMessage", "gigachat"];

/// One pushed update and what the fake made of it.
struct Pushed {
    id: i64,
    kind: Kind,
    /// (chat_id, message_id) of a new message; None for edits and button presses.
    message: Option<(i64, i64)>,
    /// The callback query id of a button press.
    query: Option<String>,
}

/// A kill: in which chunk, on which call.
struct KillPlan {
    chunk: usize,
    method: &'static str,
    nth: usize,
}

/// The kills spread over the middle of the run, each on another method.
fn kill_plans(seed: u64, chunks: usize, kills: usize) -> Vec<KillPlan> {
    let mut rng = SplitMix(seed ^ 0x6b69_6c6c);
    let first = rng.below(KILL_METHODS.len());
    (0..kills)
        .map(|k| {
            let method = KILL_METHODS[(first + k) % KILL_METHODS.len()];
            // A chunk makes at least three polls and well over 50 of the other calls.
            let nth = match method {
                "getUpdates" => 1 + rng.below(2),
                _ => 1 + rng.below(50),
            };
            KillPlan { chunk: chunks * (k + 1) / (kills + 1), method, nth }
        })
        .collect()
}

/// The running bot, shared with the kill hooks, which run on the fakes' threads.
struct Slot {
    process: BotProcess,
    /// Set by a kill hook once the process is dead.
    killed: Option<Killed>,
}

struct Killed {
    method: &'static str,
    rss_kb: u64,
    exited: bool,
}

/// The soak in progress: the fakes, the bot's folder and process, and what was pushed.
struct Run {
    seed: u64,
    tg: FakeTelegram,
    gc: FakeGigaChat,
    env: BotEnv,
    bot: Arc<Mutex<Slot>>,
    /// Bot processes started so far.
    processes: usize,
    /// The stderr of the killed processes, for failure messages.
    dead_logs: String,
    /// (method, RSS at the kill) of each kill so far.
    kills: Vec<(&'static str, u64)>,
    /// last_update_id in the state file after each kill.
    saved_ids: Vec<i64>,
    rng: SplitMix,
    private_chats: Vec<i64>,
    groups: Vec<i64>,
    pushed: Vec<Pushed>,
    /// Per chat: the author and id of the last message, for edits.
    last_message: HashMap<i64, (i64, i64)>,
    /// Per chat: the bot's last message with style buttons.
    keyboards: HashMap<i64, i64>,
}

impl Run {
    fn start(seed: u64, chats: usize, faults: &Faults) -> Run {
        let tg = FakeTelegram::start();
        let gc = FakeGigaChat::start();
        gc.set_responder(short_answer);
        tg.set_random_faults(seed, faults.telegram);
        tg.set_flood_limits(faults.flood);
        gc.set_random_faults(seed.rotate_left(32), faults.gigachat);
        let mut env = BotEnv::new(&tg, &gc);
        env.config(&config(false));
        let process = env.spawn(&[]);
        tg.wait_until(WAIT, "the bot polls", |t| t.polling());
        let private = (chats * 4 / 5).max(1);
        Run {
            seed,
            tg,
            gc,
            env,
            bot: Arc::new(Mutex::new(Slot { process, killed: None })),
            processes: 1,
            dead_logs: String::new(),
            kills: Vec::new(),
            saved_ids: Vec::new(),
            rng: SplitMix(seed),
            private_chats: (0..private as i64).map(|i| 6_000_000_001 + i).collect(),
            groups: (private..chats).map(|i| -1_002_000_000_000 - i as i64).collect(),
            pushed: Vec::new(),
            last_message: HashMap::new(),
            keyboards: HashMap::new(),
        }
    }

    fn pid(&self) -> u32 {
        self.bot.lock().unwrap().process.pid()
    }

    /// Sets the kill hook of the plan: it SIGKILLs the bot and waits for it to exit.
    fn arm(&self, plan: &KillPlan) {
        let slot = Arc::clone(&self.bot);
        let method = plan.method;
        let hook = move || {
            let mut slot = slot.lock().unwrap();
            let rss_kb = rss_kb(slot.process.pid());
            slot.process.signal("KILL");
            let exited = slot.process.wait_exit(WAIT).is_some();
            slot.killed = Some(Killed { method, rss_kb, exited });
        };
        match method {
            "gigachat" => self.gc.set_kill_hook(plan.nth, hook),
            method => self.tg.set_kill_hook(method, plan.nth, hook),
        }
    }

    /// Draws the next update from the seed and pushes it.
    fn push_next(&mut self) {
        let n = self.pushed.len();
        let all = self.private_chats.len() + self.groups.len();
        let pick = self.rng.below(all);
        let (update, kind) = match self.private_chats.get(pick) {
            Some(&chat) => self.private_update(chat, n),
            None => {
                let chat = self.groups[pick - self.private_chats.len()];
                self.group_update(chat, n)
            }
        };
        let id = self.tg.push(update);
        let (message, query) = match kind {
            Kind::Edit => (None, None),
            Kind::Button => {
                let update = self.tg.update(id).expect("a pushed update");
                let query = update["callback_query"]["id"].as_str().map(String::from);
                (None, query)
            }
            _ => (self.tg.message_of(id), None),
        };
        if let Some((chat, message_id)) = message {
            let author = self.tg.update(id).expect("a pushed update")["message"]["from"]["id"]
                .as_i64()
                .expect("a message from a user");
            self.last_message.insert(chat, (author, message_id));
        }
        self.pushed.push(Pushed { id, kind, message, query });
    }

    fn private_update(&mut self, chat: i64, n: usize) -> (Value, Kind) {
        let roll = self.rng.below(100);
        let question = || {
            let text = format!("Вопрос {n}: сколько будет {n} + {n}?");
            (tg::private_text(chat, &text), Kind::Question)
        };
        match roll {
            0..60 => question(),
            60..72 => {
                let command = PRIVATE_COMMANDS[self.rng.below(PRIVATE_COMMANDS.len())];
                (tg::private_text(chat, command), Kind::Command)
            }
            72..80 => (tg::sticker(chat, chat), Kind::Sticker),
            80..90 => self.edit(chat).unwrap_or_else(question),
            _ => self
                .button(chat, chat)
                .unwrap_or_else(|| (tg::private_text(chat, "/mode"), Kind::Command)),
        }
    }

    fn group_update(&mut self, chat: i64, n: usize) -> (Value, Kind) {
        let user = self.private_chats[self.rng.below(self.private_chats.len())];
        let roll = self.rng.below(100);
        let mention = || {
            let text = format!("@SomeBot, вопрос {n} из группы");
            (tg::group_text(chat, user, &text), Kind::Mention)
        };
        match roll {
            0..45 => mention(),
            45..55 => {
                let command = GROUP_COMMANDS[self.rng.below(GROUP_COMMANDS.len())];
                (tg::group_text(chat, user, command), Kind::GroupCommand)
            }
            55..85 => {
                let update = match roll % 4 {
                    0 => tg::group_text(chat, user, &format!("просто болтаем {n}")),
                    1 => tg::group_text(chat, user, &format!("@OtherBot, привет {n}")),
                    2 => tg::group_text(chat, user, "/weather"),
                    _ => tg::sticker(chat, user),
                };
                (update, Kind::Chatter)
            }
            85..92 => self.edit(chat).unwrap_or_else(mention),
            _ => self.button(chat, user).unwrap_or_else(mention),
        }
    }

    /// The author edits the chat's last message, if there is one.
    fn edit(&self, chat: i64) -> Option<(Value, Kind)> {
        let &(user, message_id) = self.last_message.get(&chat)?;
        let update = tg::edited_text(chat, user, message_id, "исправленный вопрос");
        Some((update, Kind::Edit))
    }

    /// A press on the chat's last style keyboard, if the bot has sent one.
    fn button(&mut self, chat: i64, user: i64) -> Option<(Value, Kind)> {
        let &message_id = self.keyboards.get(&chat)?;
        let data = ["style:fairy", "style:professor"][self.rng.below(2)];
        Some((tg::callback_query(chat, user, message_id, data), Kind::Button))
    }

    /// Remembers the style keyboards the bot sent, for button presses in later chunks.
    fn note_keyboards(&mut self) {
        for message in self.tg.sent() {
            if message.markup.is_some() {
                self.keyboards.insert(message.chat_id, message.message_id);
            }
        }
    }

    /// Waits until the bot has handled everything pushed (restarting it after a kill).
    fn wait_handled(&mut self, chunk: usize) {
        let deadline = Instant::now() + CHUNK_DEADLINE;
        loop {
            let killed = self.bot.lock().unwrap().killed.take();
            if let Some(killed) = killed {
                self.restart(killed);
                continue;
            }
            if self.tg.pending_updates() == 0 && self.tg.polling() {
                break;
            }
            if Instant::now() > deadline {
                panic!(
                    "seed {}: chunk {chunk} was not handled within {CHUNK_DEADLINE:?}\n{}\n{}",
                    self.seed,
                    self.tg.dump(),
                    tail(&self.log(), 40)
                );
            }
            thread::sleep(Duration::from_millis(5));
        }
        let pending = self.tg.kill_hook_pending() || self.gc.kill_hook_pending();
        assert!(!pending, "seed {}: the kill planned for chunk {chunk} never came", self.seed);
    }

    /// After a kill: checks the state file, then starts the bot again in the same folder,
    /// streaming answers in every other process.
    fn restart(&mut self, killed: Killed) {
        let seed = self.seed;
        let method = killed.method;
        assert!(killed.exited, "seed {seed}: the bot did not exit after SIGKILL on {method}");
        let path = self.env.path("gigabot.db");
        assert!(path.exists(), "seed {seed}: no state file after the kill on {method}");
        let saved = saved_update_id(&path);
        let last_pushed = self.pushed.last().map_or(0, |p| p.id);
        let previous = self.saved_ids.last().copied().unwrap_or(0);
        assert!(
            previous <= saved && saved <= last_pushed,
            "seed {seed}: after the kill on {method} the state says last_update_id {saved}; the previous kill left {previous}, the last update pushed is {last_pushed}"
        );
        self.saved_ids.push(saved);
        self.kills.push((method, killed.rss_kb));

        self.env.config(&config(self.processes % 2 == 1));
        self.processes += 1;
        let fresh = self.env.spawn(&[]);
        let dead = std::mem::replace(&mut self.bot.lock().unwrap().process, fresh);
        let _ = writeln!(self.dead_logs, "{}--- killed on {method} ---", dead.log());
    }

    /// Stops the bot with SIGTERM; it must exit cleanly.
    fn stop(&self) {
        let status = self.bot.lock().unwrap().process.stop();
        assert!(
            status.success(),
            "seed {}: the bot exited with {status} on SIGTERM\n{}",
            self.seed,
            tail(&self.log(), 40)
        );
    }

    /// Exactly one reply to each update that needs one, none to the others.
    fn check_replies(&self) {
        let mut replies: HashMap<(i64, i64), usize> = HashMap::new();
        for message in self.tg.sent() {
            if let Some(reply_to) = message.reply_to {
                *replies.entry((message.chat_id, reply_to)).or_default() += 1;
            }
        }
        // A sticker's "text only" and a command's reply are notices: on a 429 they are
        // dropped, not waited for (and past the chat's notice budget not sent at all). The
        // update's log line says so, and then no reply is right.
        let log = self.log();
        let notice_dropped: Vec<i64> = log
            .lines()
            .filter(|l| {
                l.contains("outcome=\"notice dropped") || l.contains("outcome=\"notice suppressed")
            })
            .filter_map(|l| l.split("update=").nth(1)?.split(' ').next()?.parse().ok())
            .collect();
        let mut missing = Vec::new();
        let mut doubled = Vec::new();
        let mut unwanted = Vec::new();
        for pushed in &self.pushed {
            let Some(message) = pushed.message else {
                continue;
            };
            let count = replies.get(&message).copied().unwrap_or(0);
            let offender = (pushed.id, pushed.kind, count);
            match (pushed.kind.needs_reply(), count) {
                (true, 0)
                    if matches!(
                        pushed.kind,
                        Kind::Sticker | Kind::Command | Kind::GroupCommand
                    ) && notice_dropped.contains(&pushed.id) => {}
                (true, 0) => missing.push(offender),
                (true, 1) | (false, 0) => {}
                (true, _) => doubled.push(offender),
                (false, _) => unwanted.push(offender),
            }
        }
        if missing.is_empty() && doubled.is_empty() && unwanted.is_empty() {
            return;
        }
        let first = |list: &[(i64, Kind, usize)]| {
            let shown: Vec<String> = list
                .iter()
                .take(10)
                .map(|(id, kind, count)| format!("{id} ({kind:?}, {count} replies)"))
                .collect();
            format!("{} {}", list.len(), shown.join(", "))
        };
        // The bot's log lines about the first offenders, across all its processes.
        let ids: Vec<String> = [&missing, &doubled, &unwanted]
            .iter()
            .flat_map(|list| list.iter().take(10))
            .map(|(id, _, _)| format!("update={id} "))
            .collect();
        let log: Vec<String> = self
            .log()
            .lines()
            .filter(|line| line.starts_with("---") || ids.iter().any(|id| line.contains(id)))
            .map(String::from)
            .collect();
        panic!(
            "seed {}: replies by update id are wrong ({}).\nno reply: {}\nmore than one reply: {}\nreplied though not for the bot: {}\nthe bot's log about them:\n{}",
            self.seed,
            self.kills_summary(),
            first(&missing),
            first(&doubled),
            first(&unwanted),
            log.join("\n")
        );
    }

    /// Each button press answered (answerCallbackQuery) exactly once.
    fn check_buttons(&self) {
        let mut answers: HashMap<String, (usize, usize)> = HashMap::new();
        for call in self.tg.calls_of("answerCallbackQuery") {
            let id = call.text("callback_query_id").unwrap_or_default();
            let (ok, refused) = answers.entry(id).or_default();
            match call.status {
                200 => *ok += 1,
                400 => *refused += 1, // "query is too old": answered before
                _ => {}
            }
        }
        let wrong: Vec<String> = self
            .pushed
            .iter()
            .filter_map(|p| Some((p.id, p.query.as_ref()?)))
            .filter_map(|(id, query)| match answers.get(query) {
                Some((1, 0)) => None,
                Some((ok, refused)) => Some(format!("{id} ({ok} answers, {refused} refused)")),
                None => Some(format!("{id} (never answered)")),
            })
            .collect();
        assert!(
            wrong.is_empty(),
            "seed {}: {} button presses were not answered exactly once: {}",
            self.seed,
            wrong.len(),
            wrong.iter().take(10).cloned().collect::<Vec<_>>().join(", ")
        );
    }

    /// One GigaChat attempt per question: each ends in a chat request that is not a 401 (the
    /// bot renews an expired token and asks again) or in a failed OAuth request. A kill on
    /// the chat request, or after the answer came, asks once more after the restart.
    fn check_gigachat(&self, kills: usize) {
        let questions = self.pushed.iter().filter(|p| p.kind.asks_gigachat()).count();
        let chats = self.gc.chat_requests();
        let answered = chats.iter().filter(|r| r.status != 401).count();
        let expired = chats.len() - answered;
        let oauth_failed = self.gc.oauth_requests().iter().filter(|r| r.status != 200).count();
        let attempts = answered + oauth_failed;
        assert!(
            (questions..=questions + kills).contains(&attempts),
            "seed {}: {questions} questions, but GigaChat saw {answered} chat requests (besides {expired} with an expired token) and {oauth_failed} failed OAuth requests",
            self.seed
        );
        assert!(expired > 0, "seed {}: no token expired during the run", self.seed);
    }

    /// The state file names at least the last update the bot acted on, and at most the last
    /// it was given (edits are not given to it): the id of updates that changed nothing (a
    /// group's chatter) is saved only now and then, as they cost nothing seen again.
    fn check_final_state(&self) {
        let saved = saved_update_id(&self.env.path("gigabot.db"));
        let ids = |kinds: &[Kind]| {
            self.pushed.iter().filter(|p| !kinds.contains(&p.kind)).map(|p| p.id).max()
        };
        let acted_on = ids(&[Kind::Edit, Kind::Chatter]).unwrap_or(0);
        let delivered = ids(&[Kind::Edit]).unwrap_or(0);
        assert!(
            (acted_on..=delivered).contains(&saved),
            "seed {}: last_update_id {saved} in the state file at the end, expected {acted_on}..={delivered}",
            self.seed
        );
    }

    fn log(&self) -> String {
        format!("{}{}", self.dead_logs, self.bot.lock().unwrap().process.log())
    }

    fn kills_summary(&self) -> String {
        let kills: Vec<String> =
            self.kills.iter().map(|(method, rss)| format!("{method} (RSS {rss} kB)")).collect();
        format!("{} kill(s) on {}", kills.len(), kills.join(", "))
    }

    fn faults_summary(&self) -> String {
        let calls = self.tg.calls();
        let faulted = |c: &&tg::Call| c.status == 0 || c.status >= 500;
        let telegram = calls.iter().filter(faulted).count();
        let throttled = calls.iter().filter(|c| c.status == 429).count();
        let chats = self.gc.chat_requests();
        let gigachat = chats.iter().filter(|r| r.status == 0 || r.status >= 500).count();
        let expired = chats.iter().filter(|r| r.status == 401).count();
        let oauth = self.gc.oauth_requests();
        let oauth_failed = oauth.iter().filter(|r| r.status != 200).count();
        format!(
            "Telegram: {} calls, {telegram} failed or dropped, {throttled} × 429; GigaChat: {} chat requests, {gigachat} failed or dropped, {expired} × 401 expired, {} OAuth ({oauth_failed} failed)",
            calls.len(),
            chats.len(),
            oauth.len()
        )
    }
}

/// The bot's config for the soak: a short long poll, no per-user limit (it would refuse
/// answers), answers streamed or not.
fn config(stream: bool) -> String {
    format!(
        "[telegram]\npoll_timeout_secs = 5\n\n[gigachat]\nstream = {stream}\ntimeout_secs = 20\n\n[bot]\nrequests_per_minute = 0\n"
    )
}

/// Short answers: one message each. A streamed one comes in a single event, so the bot sends
/// it at once and has nothing left to edit (no paced edits to wait for).
fn short_answer(request: &ChatRequest) -> Reply {
    match request.stream {
        true => Reply::Text("Да.".into()),
        false => Reply::Text(gc::default_answer(request)),
    }
}

/// VmRSS of a process, in kB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|err| panic!("read /proc/{pid}/status: {err}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// The last `n` lines of a log.
fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
