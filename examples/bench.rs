//! The benchmark: runs the real release binary against the test fakes on 127.0.0.1
//! (GigaChat over TLS) and prints one table of figures with their targets.
//!
//! Run: `cargo run --release --example bench` (about ten minutes; `--quick` for a shorter
//! run with smaller counts; `--only PART` for one part: rtt, startup, throughput, overhead,
//! photo, poll, drafts, rich, guest, memory, idle, hostile, growth, knowledge). It builds
//! `target/release/gigabot` first.
//!
//! The fakes are the integration tests' own, included by path, so the benchmark and the
//! tests talk to the same strict servers.

#[path = "../tests/it/fake_embeddings.rs"]
mod fake_embeddings;
#[path = "../tests/it/fake_gigachat.rs"]
mod fake_gigachat;
#[path = "../tests/it/fake_telegram.rs"]
mod fake_telegram;
#[path = "../tests/it/http.rs"]
mod http;
#[path = "../tests/it/tg_html.rs"]
mod tg_html;

// The reference desk's search is pure: it is timed here alone, compiled as the bot is.
// rustfmt is kept out of it: it follows every `mod`, cfg or not, and a file included by
// path looks for its `#[cfg(test)] mod tests;` at src/tests.rs, which does not exist. rustc
// never looks, as the benchmark is not built with cfg(test).
#[allow(dead_code)]
#[path = "../src/knowledge.rs"]
#[rustfmt::skip]
mod knowledge;
#[allow(dead_code)]
#[path = "../src/texts.rs"]
mod texts;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake_gigachat::{FakeGigaChat, Reply, default_answer};
use fake_telegram::{Call, FakeTelegram, SplitMix};

/// One row of the table.
struct Row {
    what: String,
    value: String,
    target: String,
    ok: Option<bool>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--only NAME` runs one part (for profiling); GIGABOT_BIN picks another binary.
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1));
    let run = |name: &str| only.is_none_or(|o| o == name);
    let binary = match std::env::var_os("GIGABOT_BIN") {
        Some(path) => PathBuf::from(path),
        None => build_release(),
    };
    let mut rows = Vec::new();

    let size = std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0);
    rows.push(row(
        "release binary size (stripped)",
        format!("{:.2} MB", size as f64 / 1e6),
        "—",
        None,
    ));

    if run("rtt") {
        rtt(&mut rows);
    }
    if run("startup") {
        startup(&binary, &mut rows);
    }
    if run("throughput") {
        // Five questions per chat: under the default limit of 6 a minute per user.
        let (messages, chats) = if quick { (1000, 200) } else { (5000, 1000) };
        for (config, label) in CONFIGS {
            throughput(&binary, messages, chats, config, label, None, &mut rows);
        }
    }
    if run("overhead") {
        for (config, label) in CONFIGS {
            overhead(&binary, if quick { 50 } else { 200 }, config, label, None, &mut rows);
        }
    }
    if run("photo") {
        photo_beside_text(&binary, if quick { 20 } else { 100 }, &mut rows);
    }
    if run("poll") {
        next_poll(&binary, if quick { 20 } else { 100 }, &mut rows);
    }
    if run("drafts") {
        drafts(&binary, &mut rows);
    }
    if run("rich") {
        rich(&binary, if quick { 10 } else { 30 }, &mut rows);
    }
    if run("guest") {
        guest(&binary, 50, &mut rows);
    }
    if run("memory") {
        memory(
            &binary,
            if quick { 2000 } else { 10_000 },
            if quick { 400 } else { 2000 },
            &mut rows,
        );
    }
    if run("idle") {
        idle(&binary, if quick { 10 } else { 30 }, &mut rows);
    }
    if run("hostile") {
        hostile(&binary, &mut rows);
    }
    if run("growth") {
        growth(&binary, if quick { 2000 } else { 10_000 }, 300, &mut rows);
    }
    if run("knowledge") {
        knowledge_desk(&binary, quick, &mut rows);
    }

    print_table(&rows);
}

/// The fake Telegram without its flood control: the benchmark's chats ask faster than people
/// type, and a figure would then measure the fake's pacing, not the bot.
fn telegram() -> FakeTelegram {
    let tg = FakeTelegram::start();
    tg.set_flood_limits(None);
    tg
}

fn row(what: &str, value: String, target: &str, ok: Option<bool>) -> Row {
    Row { what: what.to_string(), value, target: target.to_string(), ok }
}

fn print_table(rows: &[Row]) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!("\nMachine: {cpu}, {cores} cores\n");
    println!("| what | measured | target | |");
    println!("|---|---|---|---|");
    for r in rows {
        let mark = match r.ok {
            Some(true) => "✓",
            Some(false) => "✗",
            None => "",
        };
        println!("| {} | {} | {} | {mark} |", r.what, r.value, r.target);
    }
}

fn build_release() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--bin", "gigabot"])
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build --release failed");
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/gigabot")
}

/// A working folder, the fakes wired in, and the bot process.
struct Bot {
    child: Child,
    dir: PathBuf,
    started: Instant,
}

impl Bot {
    fn start(binary: &Path, tg: &FakeTelegram, gc: &FakeGigaChat, config: &str) -> Bot {
        Bot::start_with_state(binary, tg, gc, config, None)
    }

    /// Starts on a copy of `state` (a state file prepared elsewhere, the reference desk's
    /// index built in it), so that a run does not pay for what it does not measure.
    fn start_with_state(
        binary: &Path,
        tg: &FakeTelegram,
        gc: &FakeGigaChat,
        config: &str,
        state: Option<&Path>,
    ) -> Bot {
        let dir = Bot::folder(tg, gc);
        std::fs::write(dir.join("config.toml"), config).unwrap();
        if let Some(state) = state {
            for suffix in ["", "-wal"] {
                let from = PathBuf::from(format!("{}{suffix}", state.display()));
                if from.exists() {
                    std::fs::copy(&from, dir.join(format!("gigabot.db{suffix}"))).unwrap();
                }
            }
        }
        Bot::start_in(binary, tg, gc, dir)
    }

    /// A new, empty working folder.
    fn folder(tg: &FakeTelegram, gc: &FakeGigaChat) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "gigabot-bench-{}-{}",
            std::process::id(),
            tg.url().len() + gc.connections() + rand_suffix()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Starts in a folder already holding config.toml (and any state); the bot owns it from
    /// now on and removes it when dropped.
    fn start_in(binary: &Path, tg: &FakeTelegram, gc: &FakeGigaChat, dir: PathBuf) -> Bot {
        let started = Instant::now();
        let child = Bot::spawn(binary, tg, gc, &dir);
        Bot { child, dir, started }
    }

    /// Stops the bot (SIGTERM) and starts it again in the same folder, on the same state.
    fn restart(&mut self, binary: &Path, tg: &FakeTelegram, gc: &FakeGigaChat) {
        self.stop();
        self.started = Instant::now();
        self.child = Bot::spawn(binary, tg, gc, &self.dir);
    }

    fn stop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn spawn(binary: &Path, tg: &FakeTelegram, gc: &FakeGigaChat, dir: &Path) -> Child {
        Bot::command(binary, tg, gc, dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start gigabot")
    }

    /// The binary with the fakes wired in, run in `dir`; its log appended to stderr.log
    /// there, at the default level (info: a line per update), as under systemd.
    fn command(binary: &Path, tg: &FakeTelegram, gc: &FakeGigaChat, dir: &Path) -> Command {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("stderr.log"))
            .unwrap();
        let mut command = Command::new(binary);
        command
            .current_dir(dir)
            .env_clear()
            .env("TELEGRAM_TOKEN", tg.token())
            .env("TELEGRAM_API_URL", tg.url())
            .env("GIGACHAT_CREDENTIALS", gc.credentials())
            .env("GIGACHAT_AUTH_URL", gc.auth_url())
            .env("GIGACHAT_BASE_URL", gc.base_url())
            .env("GIGACHAT_CA_BUNDLE_FILE", gc.ca_pem_path())
            .stderr(log);
        command
    }

    /// Time the bot's threads spent on a CPU so far, to the nanosecond (schedstat), for
    /// figures too small for the 10 ms ticks of utime and stime.
    fn cpu(&self) -> Duration {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.child.id()));
        let nanos: u64 = tasks
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
            .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        Duration::from_nanos(nanos)
    }

    /// utime and stime of the bot so far.
    fn cpu_split(&self) -> (Duration, Duration) {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // After the ")" of the command name come fields 3, 4, …; utime and stime are 14 and 15.
        let after = stat.rsplit(')').next().unwrap_or("");
        let field = |n: usize| {
            after.split_whitespace().nth(n - 3).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0)
        };
        let tick = |n: u64| Duration::from_millis(n * 1000 / clock_ticks());
        (tick(field(14)), tick(field(15)))
    }

    /// A counter of /proc/<pid>/io ("write_bytes": bytes sent to storage).
    fn io(&self, key: &str) -> u64 {
        let io =
            std::fs::read_to_string(format!("/proc/{}/io", self.child.id())).unwrap_or_default();
        io.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}: ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Proportional set size in kB: shared library pages divided among their users.
    fn pss_kb(&self) -> u64 {
        let rollup = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", self.child.id()))
            .unwrap_or_default();
        rollup
            .lines()
            .find_map(|l| l.strip_prefix("Pss:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// A line of /proc/<pid>/status in kB: "VmHWM" (peak resident memory), "RssAnon"…
    fn status_kb(&self, key: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with(&format!("{key}:")))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        // A clean stop first (SIGTERM), so profilers wrapped around the bot can write out.
        self.stop();
        // Anything the bot found wrong is shown; the info lines are not.
        let log = std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default();
        for line in log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).take(5) {
            eprintln!("bot: {line}");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rand_suffix() -> usize {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as usize)
        .unwrap_or(0)
}

fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// The configurations measured: what users run (an empty config file: every default, rich
/// messages and streaming on), the non-default settings that change how an answer goes out,
/// and admins, for whom the bot reads the balance (at start, then at most every 5 minutes
/// after a batch): that must stay off the answers' path.
const CONFIGS: [(&str, &str); 4] = [
    ("", "default config (rich messages, streaming on)"),
    ("[telegram]\nrich_messages = false\n", "not default: telegram.rich_messages = false"),
    ("[gigachat]\nstream = false\n", "not default: gigachat.stream = false"),
    ("[bot]\nadmins = [1]\n", "not default: bot.admins set (the balance is read)"),
];
const DEFAULT: &str = CONFIGS[0].0;

/// The calls of any of `methods`, in the order they came.
fn calls_of_any(tg: &FakeTelegram, methods: &[&str]) -> Vec<Call> {
    let mut calls: Vec<Call> = methods.iter().flat_map(|m| tg.calls_of(m)).collect();
    calls.sort_by_key(|c| c.at);
    calls
}

/// Drafts, rich or not ("Thinking…" included).
fn drafts_of(tg: &FakeTelegram) -> Vec<Call> {
    calls_of_any(tg, &["sendMessageDraft", "sendRichMessageDraft"])
}

/// Messages sent, rich or not.
fn answers_of(tg: &FakeTelegram) -> Vec<Call> {
    calls_of_any(tg, &["sendMessage", "sendRichMessage"])
}

/// Waits until every update up to `last` is handled and the bot polls again.
fn wait_handled(tg: &FakeTelegram, last: i64, timeout: Duration) {
    tg.wait_until(timeout, "all updates handled", |t| t.confirmed_offset() > last && t.polling());
}

fn startup(binary: &Path, rows: &mut Vec<Row>) {
    let mut times = Vec::new();
    for _ in 0..5 {
        let tg = telegram();
        let gc = FakeGigaChat::start();
        // A waiting update makes the first poll return at once, so it is recorded at once.
        tg.push_text(42, 42, "Привет");
        let bot = Bot::start(binary, &tg, &gc, DEFAULT);
        tg.wait_until(Duration::from_secs(10), "first poll", |t| {
            !t.calls_of("getUpdates").is_empty()
        });
        let first = tg.calls_of("getUpdates")[0].at;
        times.push(first.saturating_duration_since(bot.started));
    }
    times.sort();
    let median = times[times.len() / 2];
    rows.push(row(
        "start to the first getUpdates (median of 5)",
        format!("{:.1} ms", median.as_secs_f64() * 1000.0),
        "≤ 100 ms",
        Some(median <= Duration::from_millis(100)),
    ));
}

/// `messages` texts from `chats` private chats queued at once; GigaChat answers at once.
fn throughput(
    binary: &Path,
    messages: usize,
    chats: i64,
    config: &str,
    label: &str,
    desk: Option<&Desk>,
    rows: &mut Vec<Row>,
) {
    let tg = telegram();
    let gc = FakeGigaChat::start();
    let bot = Bot::start_with_state(binary, &tg, &gc, config, desk.map(Desk::state));
    tg.wait_until(Duration::from_secs(10), "polling", |t| t.polling());
    let embedded_at_start = gc.embedding_requests().len();
    // Warm up: one message per chat opens the connections and gets the token.
    let mut last = 0;
    for chat in 0..chats.min(20) {
        last = tg.push_text(1000 + chat, 1000 + chat, "разминка");
    }
    wait_handled(&tg, last, Duration::from_secs(60));
    let (tg_conns, gc_conns, oauth) =
        (tg.connections(), gc.connections(), gc.oauth_requests().len());
    let (balance, embeddings, asked) =
        (gc.balance_requests().len(), gc.embedding_requests().len(), gc.chat_requests().len());
    // In rounds of one question per chat: a shared 2-core machine is noisy, and the median
    // round says more than one long run.
    let rounds = messages / chats as usize;
    let mut measured = Vec::new();
    for round in 0..rounds {
        let cpu_before = bot.cpu_split();
        let started = Instant::now();
        for chat in 0..chats {
            let id = 1000 + chat;
            let plain = format!("Вопрос {round} из чата {chat}");
            let n = round * chats as usize + chat as usize;
            last = tg.push_text(id, id, &question(desk, n, plain));
        }
        wait_handled(&tg, last, Duration::from_secs(600));
        let wall = started.elapsed();
        let cpu_after = bot.cpu_split();
        let n = chats as f64;
        let per = |d: Duration| d.as_secs_f64() * 1000.0 / n;
        let (user, sys) = (per(cpu_after.0 - cpu_before.0), per(cpu_after.1 - cpu_before.1));
        measured.push((n / wall.as_secs_f64(), user + sys, user, sys));
    }
    let n = messages as f64;
    let median = |key: fn(&(f64, f64, f64, f64)) -> f64| {
        let mut values: Vec<f64> = measured.iter().map(key).collect();
        values.sort_by(f64::total_cmp);
        (values[values.len() / 2], values[0], values[values.len() - 1])
    };
    let (rate, low, high) = median(|m| m.0);
    rows.push(row(
        &format!(
            "throughput, {label}: {messages} messages from {chats} private chats, GigaChat instant (median of {rounds} rounds)"
        ),
        format!("{rate:.0} answers/s ({low:.0}–{high:.0})"),
        "≥ 1000 answers/s",
        Some(rate >= 1000.0),
    ));
    let (cpu_ms, low, high) = median(|m| m.1);
    let (user, _, _) = median(|m| m.2);
    let (sys, _, _) = median(|m| m.3);
    rows.push(row(
        &format!("bot CPU time (user + sys) per answer, {label} (median of {rounds} rounds)"),
        format!("{cpu_ms:.3} ms ({low:.3}–{high:.3}; user {user:.3}, sys {sys:.3})"),
        "≤ 0.6 ms",
        Some(cpu_ms <= 0.6),
    ));
    let new_tg = (tg.connections() - tg_conns) as f64 / n;
    let new_gc = (gc.connections() - gc_conns) as f64 / n;
    rows.push(row(
        &format!("new TCP connections per answer after warm-up (Telegram / GigaChat), {label}"),
        format!("{new_tg:.3} / {new_gc:.3}"),
        "0 / 0",
        Some(new_tg < 0.01 && new_gc < 0.01),
    ));
    let oauth_per = (gc.oauth_requests().len() - oauth) as f64 / n;
    let drafts = drafts_of(&tg).len() as f64 / n;
    if drafts > 0.0 {
        rows.push(row(
            &format!("drafts per answer, {label} (instant GigaChat: the first piece only)"),
            format!("{drafts:.2}"),
            "—",
            None,
        ));
    }
    rows.push(row(
        &format!("OAuth requests per answer (a token lives 30 min), {label}"),
        format!("{oauth_per:.4} ({} in all)", gc.oauth_requests().len()),
        "1 per token lifetime",
        Some(gc.oauth_requests().len() == 1),
    ));
    // Issue 24: what answers cost the owner beside chat. The balance is read at start and
    // then at most every 5 minutes, so a few seconds of rounds should see none.
    let balance = gc.balance_requests().len() - balance;
    let embeddings = gc.embedding_requests().len() - embeddings;
    let other = (balance + embeddings) as f64 / n;
    let (target, ok) = match desk {
        None => ("0 (balance: at start and at most every 5 min)", other < 0.01),
        Some(_) => (
            "1: the question's embedding (balance: at start and at most every 5 min)",
            balance as f64 / n < 0.01 && (embeddings as f64 / n - 1.0).abs() < 0.01,
        ),
    };
    rows.push(row(
        &format!("GigaChat requests per answer other than chat (balance, embeddings), {label}"),
        format!(
            "{other:.3} (balance {balance}, embeddings {embeddings} in {messages} answers; in all: balance {}, embeddings at start {embedded_at_start})",
            gc.balance_requests().len()
        ),
        target,
        Some(ok && embedded_at_start == 0),
    ));
    if desk.is_some() {
        rows.push(passages_share(&gc.chat_requests()[asked..], label));
    }
    let answered = tg.sent().len();
    assert!(answered >= messages, "only {answered} answers for {messages} messages");
    drop(bot);
}

/// The question the `n`-th chat asks: `plain`, or with the reference desk one in four on a
/// section's words, so that some answers carry passages.
fn question(desk: Option<&Desk>, n: usize, plain: String) -> String {
    match desk {
        Some(desk) if n.is_multiple_of(4) => desk.question(n),
        _ => plain,
    }
}

/// How many of `asked` went to GigaChat with passages: those start with the desk's intro
/// (the questions on a section's words are told apart by their first word).
fn passages_share(asked: &[fake_gigachat::ChatRequest], label: &str) -> Row {
    let (mut with, mut on_topic, mut on_topic_with) = (0, 0, 0);
    for request in asked {
        let text = request.last_user().unwrap_or_default();
        let carried = text.starts_with(texts::KNOWLEDGE_INTRO);
        let topical = text.contains(TOPIC_QUESTION);
        with += usize::from(carried);
        on_topic += usize::from(topical);
        on_topic_with += usize::from(carried && topical);
    }
    let percent = |part: usize, all: usize| part as f64 * 100.0 / all.max(1) as f64;
    let others = asked.len() - on_topic;
    row(
        &format!("questions that went to GigaChat with passages, {label}"),
        format!(
            "{:.0} % ({with} of {}): of those on a section's words {:.0} % ({on_topic_with} of {on_topic}), of the others {:.0} % ({} of {others})",
            percent(with, asked.len()),
            asked.len(),
            percent(on_topic_with, on_topic),
            percent(with - on_topic_with, others),
            with - on_topic_with,
        ),
        "—",
        None,
    )
}

/// GigaChat answers in 100 ms: what the bot adds per message.
fn overhead(
    binary: &Path,
    messages: usize,
    config: &str,
    label: &str,
    desk: Option<&Desk>,
    rows: &mut Vec<Row>,
) {
    let tg = telegram();
    let gc = FakeGigaChat::start();
    gc.set_responder(|request| {
        Reply::Delay(Duration::from_millis(100), Box::new(Reply::Text(default_answer(request))))
    });
    let _bot = Bot::start_with_state(binary, &tg, &gc, config, desk.map(Desk::state));
    tg.wait_until(Duration::from_secs(10), "polling", |t| t.polling());
    let warm = tg.push_text(77, 77, "разминка");
    wait_handled(&tg, warm, Duration::from_secs(30));
    let asked = gc.chat_requests().len();
    let started = Instant::now();
    let mut last = 0;
    for i in 0..messages {
        let chat = 100 + (i as i64 % 50);
        last = tg.push_text(chat, chat, &question(desk, i, format!("Вопрос {i}")));
    }
    wait_handled(&tg, last, Duration::from_secs(600));
    let wall = started.elapsed().as_secs_f64();
    let per = (wall - 0.1 * messages as f64) / messages as f64 * 1000.0;
    rows.push(row(
        &format!(
            "overhead per message, GigaChat answering in 100 ms ({messages} messages), {label}"
        ),
        format!("{per:.3} ms"),
        "≤ 2 ms",
        Some(per <= 2.0),
    ));
    if desk.is_some() {
        let share = passages_share(&gc.chat_requests()[asked..], label);
        rows.push(Row { what: format!("{} (overhead run)", share.what), ..share });
    }
}

/// What a photo costs beside a text question: one at a time (the loop is one), default
/// config, instant GigaChat. A photo adds getFile, the download (a 138 KB JPEG), the upload
/// to GigaChat's /files and its deletion: four more requests.
fn photo_beside_text(binary: &Path, questions: usize, rows: &mut Vec<Row>) {
    let tg = telegram();
    let gc = FakeGigaChat::start();
    let bot = Bot::start(binary, &tg, &gc, "[bot]\nrequests_per_minute = 0\n");
    tg.wait_until(Duration::from_secs(10), "polling", |t| t.polling());
    let warm = tg.push(fake_telegram::photo(77, 77, Some("разминка")));
    wait_handled(&tg, warm, Duration::from_secs(30));
    let measure = |photo: bool| {
        let (cpu, started) = (bot.cpu(), Instant::now());
        for i in 0..questions {
            let chat = 100 + i as i64;
            let id = match photo {
                true => tg.push(fake_telegram::photo(chat, chat, Some("Что на фото?"))),
                false => tg.push_text(chat, chat, "Что на фото?"),
            };
            wait_handled(&tg, id, Duration::from_secs(30));
        }
        let n = questions as f64;
        let wall = started.elapsed().as_secs_f64() / n * 1000.0;
        let cpu = (bot.cpu() - cpu).as_secs_f64() / n * 1000.0;
        (wall, cpu)
    };
    let (text_wall, text_cpu) = measure(false);
    let (photo_wall, photo_cpu) = measure(true);
    rows.push(row(
        &format!("a photo answer beside a text answer ({questions} each, one at a time), default config: wall / bot CPU per answer"),
        format!("text {text_wall:.2} ms / {text_cpu:.2} ms; photo {photo_wall:.2} ms / {photo_cpu:.2} ms"),
        "—",
        None,
    ));
}

/// Peak memory over many messages in many chats, each with full memory.
fn memory(binary: &Path, messages: usize, chats: i64, rows: &mut Vec<Row>) {
    let tg = telegram();
    let gc = FakeGigaChat::start();
    let bot = Bot::start(binary, &tg, &gc, DEFAULT);
    tg.wait_until(Duration::from_secs(10), "polling", |t| t.polling());
    let mut last = 0;
    for i in 0..messages {
        let chat = 5000 + (i as i64 % chats);
        last =
            tg.push_text(chat, chat, &format!("Расскажи подробно о вопросе номер {i}, пожалуйста"));
        if i % 1000 == 999 {
            wait_handled(&tg, last, Duration::from_secs(600));
        }
    }
    wait_handled(&tg, last, Duration::from_secs(600));
    let state = std::fs::metadata(bot.dir.join("gigabot.db")).map_or(0, |m| m.len())
        + std::fs::metadata(bot.dir.join("gigabot.db-wal")).map_or(0, |m| m.len());
    let peak = bot.status_kb("VmHWM") as f64 / 1024.0;
    let mb = |key| bot.status_kb(key) as f64 / 1024.0;
    rows.push(row(
        &format!("peak memory (VmHWM), default config, {messages} messages in {chats} chats with full memory"),
        format!(
            "{peak:.1} MB (now: {:.1} MB of libraries and code, {:.1} MB heap; database {:.1} MB)",
            mb("RssFile"),
            mb("RssAnon"),
            state as f64 / 1e6
        ),
        "≤ 10 MB",
        Some(peak <= 10.0),
    ));
}

fn idle(binary: &Path, secs: u64, rows: &mut Vec<Row>) {
    let tg = telegram();
    let gc = FakeGigaChat::start();
    let bot = Bot::start(binary, &tg, &gc, DEFAULT);
    tg.wait_until(Duration::from_secs(10), "polling", |t| t.polling());
    let before = bot.cpu();
    std::thread::sleep(Duration::from_secs(secs));
    let used = bot.cpu() - before;
    let percent = used.as_secs_f64() / secs as f64 * 100.0;
    rows.push(row(
        &format!("CPU while idle in long polls ({secs} s), default config"),
        format!("{percent:.3} %"),
        "≤ 0.1 %",
        Some(percent <= 0.1),
    ));
}

/// A 2 000-character answer streamed at 240 characters a second (about 30 per event): when
/// the user sees the first draft and the answer, how many drafts it took and what they cost
/// the bot, for the default draft interval and two others (which say so).
fn drafts(binary: &Path, rows: &mut Vec<Row>) {
    let sentence = "Электрический ток — это упорядоченное движение заряженных частиц.";
    let paragraph = [sentence; 4].join(" ");
    let text: String = vec![paragraph; 8].join("\n\n").chars().take(2000).collect();
    // (draft interval, stream): the default, two other intervals, and no streaming at all.
    let runs = [(None, true), (Some(250), true), (Some(1000), true), (None, false)];
    let generation = Duration::from_secs_f64(text.chars().count() as f64 / 240.0);
    for (interval, stream) in runs {
        let tg = telegram();
        let gc = FakeGigaChat::start();
        let answer = text.clone();
        // Not streamed, the same answer comes whole after the time it takes to generate.
        gc.set_responder(move |request| match request.stream {
            true => Reply::Text(answer.clone()),
            false => Reply::Delay(generation, Box::new(Reply::Text(answer.clone()))),
        });
        gc.set_stream_speed(240.0, None);
        let mut config = String::new();
        if let Some(ms) = interval {
            config.push_str(&format!("[bot]\ndraft_interval_ms = {ms}\n"));
        }
        if !stream {
            config.push_str("[gigachat]\nstream = false\n");
        }
        let bot = Bot::start(binary, &tg, &gc, &config);
        tg.wait_until(Duration::from_secs(10), "polling", |t| t.polling());
        let warm = tg.push_text(41, 41, "разминка");
        wait_handled(&tg, warm, Duration::from_secs(60));
        let cpu = bot.cpu();
        let drafts_before = drafts_of(&tg).len();
        let asked = Instant::now();
        let id = tg.push_text(42, 42, "Что такое ток?");
        wait_handled(&tg, id, Duration::from_secs(60));
        let cpu = bot.cpu() - cpu;
        let drafts = &drafts_of(&tg)[drafts_before..];
        let answered = answers_of(&tg).last().map(|c| c.at).unwrap();
        let since = |t: Instant| t.duration_since(asked).as_secs_f64();
        let first = drafts.first().map_or("—".to_string(), |c| format!("{:.2} s", since(c.at)));
        let what = match (interval, stream) {
            (_, false) => "gigachat.stream = false".to_string(),
            (None, true) => "default config (draft_interval_ms = 500)".to_string(),
            (Some(ms), true) => format!("bot.draft_interval_ms = {ms}"),
        };
        let default = interval.is_none() && stream;
        rows.push(row(
            &format!("2 000-char answer at 240 chars/s, {what}: first draft / answer / drafts / bot CPU for it"),
            format!(
                "{first} / {:.2} s / {} / {:.1} ms",
                since(answered),
                drafts.len(),
                cpu.as_secs_f64() * 1000.0
            ),
            if default { "first draft ≤ 1.5 s" } else { "—" },
            default.then(|| drafts.first().is_some_and(|c| since(c.at) <= 1.5)),
        ));
    }
}

/// What rich messages promise, default config: "Thinking…" soon after a question arrives
/// (GigaChat takes 300 ms to its first word), and the final message soon after Stop.
fn rich(binary: &Path, questions: usize, rows: &mut Vec<Row>) {
    let tg = telegram();
    let gc = FakeGigaChat::start();
    gc.set_first_event_delay(Duration::from_millis(300));
    let _bot = Bot::start(binary, &tg, &gc, DEFAULT);
    tg.wait_until(Duration::from_secs(10), "polling", |t| t.polling());
    let mut thinking = Vec::new();
    for i in 0..questions {
        let chat = 500 + i as i64;
        let asked = Instant::now();
        let id = tg.push_text(chat, chat, "Что такое ток?");
        wait_handled(&tg, id, Duration::from_secs(30));
        let first = tg.drafts_to(chat).first().map(|d| (d.at, d.thinking)).expect("a draft");
        assert!(first.1, "the first draft is not Thinking…");
        thinking.push(first.0 - asked);
    }
    let (median, worst) = median_worst(&mut thinking);
    rows.push(row(
        &format!("question pushed → the Thinking… draft, default config ({questions} questions): median / worst"),
        format!("{median:.1} ms / {worst:.1} ms"),
        "≤ 20 ms",
        Some(median <= 20.0),
    ));
    gc.set_first_event_delay(Duration::ZERO);
    gc.set_stream_speed(300.0, None);
    gc.set_responder(|_| Reply::Text("Длинный ответ про ток. ".repeat(500)));
    let mut stops = Vec::new();
    for i in 0..5 {
        let chat = 900 + i;
        let id = tg.push_text(chat, chat, "Расскажи длинно");
        tg.wait_until(Duration::from_secs(30), "drafts", |t| t.drafts_to(chat).len() >= 3);
        let pressed = Instant::now();
        tg.press_stop_on_showing_draft(chat).expect("a Stop button");
        wait_handled(&tg, id, Duration::from_secs(30));
        let answered = answers_of(&tg).iter().rfind(|c| c.int("chat_id") == Some(chat)).unwrap().at;
        stops.push(answered - pressed);
    }
    let (median, worst) = median_worst(&mut stops);
    rows.push(row(
        "Stop pressed mid-stream → the final message, default config (5 answers): median / worst",
        format!("{median:.0} ms / {worst:.0} ms"),
        "≤ 1500 ms",
        Some(worst <= 1500.0),
    ));
}

/// A guest answer's overhead beside a private one's, default config, GigaChat answering in
/// 100 ms: the same questions from the same 50 users, privately, then as guests in a group.
fn guest(binary: &Path, messages: usize, rows: &mut Vec<Row>) {
    let tg = telegram();
    let gc = FakeGigaChat::start();
    gc.set_responder(|request| {
        Reply::Delay(Duration::from_millis(100), Box::new(Reply::Text(default_answer(request))))
    });
    let _bot = Bot::start(binary, &tg, &gc, DEFAULT);
    tg.wait_until(Duration::from_secs(10), "polling", |t| t.polling());
    let warm = tg.push_text(77, 77, "разминка");
    wait_handled(&tg, warm, Duration::from_secs(30));
    for (label, as_guest) in [("a private answer", false), ("a guest answer", true)] {
        let (started, mut last) = (Instant::now(), 0);
        for i in 0..messages {
            let user = 100 + (i as i64 % 50);
            last = match as_guest {
                true => tg.push_guest(fake_telegram::chat(-4242), user, "@SomeBot Вопрос").0,
                false => tg.push_text(user, user, "Вопрос"),
            };
        }
        wait_handled(&tg, last, Duration::from_secs(600));
        let per = (started.elapsed().as_secs_f64() - 0.1 * messages as f64) / messages as f64;
        rows.push(row(
            &format!("overhead of {label}, GigaChat answering in 100 ms ({messages} questions), default config"),
            format!("{:.3} ms", per * 1000.0),
            "—",
            None,
        ));
    }
}

/// The median and the worst of `times`, in milliseconds.
fn median_worst(times: &mut [Duration]) -> (f64, f64) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (ms(times[times.len() / 2]), ms(times[times.len() - 1]))
}

/// Questions one at a time: how soon after the answer's sendMessage the next getUpdates
/// starts (the state is saved in between).
fn next_poll(binary: &Path, questions: usize, rows: &mut Vec<Row>) {
    let tg = telegram();
    let gc = FakeGigaChat::start();
    let _bot = Bot::start(binary, &tg, &gc, DEFAULT);
    tg.wait_until(Duration::from_secs(10), "polling", |t| t.polling());
    for i in 0..questions {
        let chat = 300 + i as i64 % 50;
        let id = tg.push_text(chat, chat, &format!("Вопрос {i}"));
        wait_handled(&tg, id, Duration::from_secs(30));
    }
    // A parked poll is recorded when it returns, with the time it came: each answer's next
    // poll is in the record once the next question ended it.
    let polls: Vec<Instant> = tg.calls_of("getUpdates").iter().map(|c| c.at).collect();
    let mut gaps: Vec<Duration> = answers_of(&tg)
        .iter()
        .filter_map(|sent| {
            let next = polls.iter().filter(|&&at| at > sent.at).min()?;
            Some(*next - sent.at)
        })
        .collect();
    gaps.sort();
    let median = gaps[gaps.len() / 2];
    let worst = gaps[gaps.len() - 1];
    rows.push(row(
        &format!("from the answer's sendMessage to the next getUpdates, default config ({questions} questions): median / worst"),
        format!(
            "{:.2} ms / {:.2} ms",
            median.as_secs_f64() * 1000.0,
            worst.as_secs_f64() * 1000.0
        ),
        "a few ms",
        Some(median <= Duration::from_millis(5)),
    ));
}

/// The cost of an answer as the state grows: `chats` chats with full memory (three
/// exchanges each, answers of about 300 characters), measured in a window of `window`
/// answers at the start (300 chats) and at the end. Also start-up on the full state.
fn growth(binary: &Path, chats: i64, window: i64, rows: &mut Vec<Row>) {
    let tg = telegram();
    let gc = FakeGigaChat::start();
    let filler = " Сопротивление проводника зависит от материала, длины и сечения.".repeat(4);
    gc.set_responder(move |request| Reply::Text(format!("{}{filler}", default_answer(request))));
    let mut bot = Bot::start(binary, &tg, &gc, DEFAULT);
    tg.wait_until(Duration::from_secs(10), "polling", |t| t.polling());
    // The fakes' records of 30 000 answers would slow them down as they grow, and the bot
    // with them: what is measured here needs none.
    tg.record_calls(false);
    gc.light_records(true);
    // Questions 1..=3 from chats [from, to), in batches: the chats' memory fills up.
    let fill = |from: i64, to: i64| {
        for batch in (from..to).collect::<Vec<_>>().chunks(1000) {
            let mut last = 0;
            for round in 1..=3 {
                for &chat in batch {
                    let id = 1_000_000 + chat;
                    last =
                        tg.push_text(id, id, &format!("Вопрос {round} о законе Ома, чат {chat}"));
                }
            }
            wait_handled(&tg, last, Duration::from_secs(600));
        }
    };
    // One more question from each chat of [from, to): memory full, so the oldest exchange goes.
    let measure = |from: i64, to: i64| {
        let (cpu, written) = (bot.cpu(), bot.io("write_bytes"));
        let started = Instant::now();
        let mut last = 0;
        for chat in from..to {
            let id = 1_000_000 + chat;
            last = tg.push_text(id, id, &format!("Вопрос 4, чат {chat}"));
        }
        wait_handled(&tg, last, Duration::from_secs(600));
        let n = (to - from) as f64;
        let rate = n / started.elapsed().as_secs_f64();
        let cpu = (bot.cpu() - cpu).as_secs_f64() * 1000.0 / n;
        let written = (bot.io("write_bytes") - written) as f64 / 1024.0 / n;
        (rate, cpu, written)
    };
    let warm = tg.push_text(77, 77, "разминка");
    wait_handled(&tg, warm, Duration::from_secs(30));
    // Three windows at each end, each of other chats, and the median window of each: one
    // window of a fraction of a second is at the mercy of a noisy machine.
    let median = |mut windows: Vec<(f64, f64, f64)>| {
        windows.sort_by(|a, b| a.0.total_cmp(&b.0));
        windows[1]
    };
    fill(0, 3 * window);
    let first = median((0..3).map(|i| measure(i * window, (i + 1) * window)).collect());
    fill(3 * window, chats);
    let last =
        median((1..=3).map(|i| measure(chats - i * window, chats - (i - 1) * window)).collect());
    let peak = bot.status_kb("VmHWM") as f64 / 1024.0;
    let db = std::fs::metadata(bot.dir.join("gigabot.db")).map_or(0, |m| m.len())
        + std::fs::metadata(bot.dir.join("gigabot.db-wal")).map_or(0, |m| m.len());
    let label = format!("default config, median of 3 windows of {window} answers with full memory");
    rows.push(row(
        &format!("{label}: answers/s with {} chats → with {chats} chats", 3 * window),
        format!("{:.0} → {:.0} ({:.2}×)", first.0, last.0, last.0 / first.0),
        "last ≥ 0.8× first",
        Some(last.0 >= 0.8 * first.0),
    ));
    rows.push(row(
        &format!(
            "{label}: bytes written to storage per answer (/proc/PID/io), {} → {chats} chats",
            3 * window
        ),
        format!("{:.1} KiB → {:.1} KiB", first.2, last.2),
        "≤ 32 KiB",
        Some(first.2.max(last.2) <= 32.0),
    ));
    rows.push(row(
        &format!("{label}: bot CPU per answer, {} → {chats} chats", 3 * window),
        format!("{:.3} ms → {:.3} ms ({:.2}×)", first.1, last.1, last.1 / first.1),
        "flat: last ≤ 1.25× first",
        Some(last.1 <= 1.25 * first.1),
    ));
    rows.push(row(
        &format!(
            "peak memory (VmHWM) after {} answers in {chats} chats, default config",
            3 * chats + 6 * window
        ),
        format!(
            "{peak:.1} MB (now: {:.1} MB of libraries and code, {:.1} MB heap, PSS {:.1} MB; database {:.1} MB)",
            bot.status_kb("RssFile") as f64 / 1024.0,
            bot.status_kb("RssAnon") as f64 / 1024.0,
            bot.pss_kb() as f64 / 1024.0,
            db as f64 / 1e6
        ),
        "≤ 10 MiB",
        Some(peak <= 10.0 * 1.048_576),
    ));
    // Start-up on the full state: a waiting update makes the first poll return at once.
    tg.record_calls(true);
    let mut times = Vec::new();
    for _ in 0..3 {
        bot.stop();
        let waiting = tg.push_text(42, 42, "Привет");
        bot.restart(binary, &tg, &gc);
        let started = bot.started;
        // Waited for on a number, not on the record of calls: cloning tens of thousands of
        // calls every few milliseconds would hold the fake up, and the bot with it.
        tg.wait_until(Duration::from_secs(10), "the waiting update confirmed", |t| {
            t.confirmed_offset() > waiting
        });
        let first = tg
            .calls_of("getUpdates")
            .iter()
            .map(|c| c.at)
            .filter(|at| *at >= started)
            .min()
            .unwrap();
        times.push(first - started);
    }
    times.sort();
    rows.push(row(
        &format!("start to the first getUpdates with {chats} chats in the database (median of 3)"),
        format!("{:.1} ms", times[1].as_secs_f64() * 1000.0),
        "≤ 100 ms",
        Some(times[1] <= Duration::from_millis(100)),
    ));
}

/// Answers that once hurt the bot, in the default configuration: 12 KB of nested list
/// markers (peak memory, CPU, messages, and the next question answered), the longest
/// hostile answer (1 MiB of them: peak memory, against the unit's MemoryMax), and a plain
/// 100 000-character answer (what its 29 messages write to storage).
fn hostile(binary: &Path, rows: &mut Vec<Row>) {
    for (markers, target_mb) in [(6000, 20.0), (524_000, 128.0)] {
        let tg = telegram();
        let gc = FakeGigaChat::start();
        let bot = Bot::start(binary, &tg, &gc, DEFAULT);
        tg.wait_until(Duration::from_secs(10), "polling", |t| t.polling());
        let warm = tg.push_text(42, 42, "разминка");
        wait_handled(&tg, warm, Duration::from_secs(30));
        let answer = format!("{}x", "- ".repeat(markers));
        gc.push_reply(Reply::Text(answer.clone()));
        let cpu = bot.cpu();
        let id = tg.push_text(42, 42, "список");
        wait_handled(&tg, id, Duration::from_secs(120));
        let cpu = (bot.cpu() - cpu).as_secs_f64();
        let sent = tg.replies_to(id).len();
        let next = tg.push_text(42, 42, "а теперь коротко");
        wait_handled(&tg, next, Duration::from_secs(30));
        let answered = tg.replies_to(next).len() == 1;
        let peak = bot.status_kb("VmHWM") as f64 / 1024.0;
        rows.push(row(
            &format!(
                "GigaChat answers {:.0} kB of nested list markers, default config: peak memory (VmHWM), bot CPU, messages, next question",
                answer.len() as f64 / 1000.0
            ),
            format!(
                "{peak:.1} MB, {:.0} ms, {sent} message(s), next {}",
                cpu * 1000.0,
                if answered { "answered" } else { "NOT answered" }
            ),
            // The megabyte comes as 33 000 stream events: its CPU is reading them, not
            // rendering, so only the 12 kB answer is held to a second.
            &match markers {
                6000 => format!("≤ {target_mb:.0} MiB, ≤ 1 s CPU, answered"),
                _ => format!("≤ {target_mb:.0} MiB (MemoryMax), answered"),
            },
            Some(peak <= target_mb * 1.048_576 && (cpu <= 1.0 || markers > 6000) && answered),
        ));
    }
    let tg = telegram();
    let gc = FakeGigaChat::start();
    let bot = Bot::start(binary, &tg, &gc, DEFAULT);
    tg.wait_until(Duration::from_secs(10), "polling", |t| t.polling());
    let warm = tg.push_text(43, 43, "разминка");
    wait_handled(&tg, warm, Duration::from_secs(30));
    let sentence = "Сопротивление проводника зависит от материала, длины и сечения. ";
    let paragraph = sentence.repeat(10);
    let answer: String = std::iter::repeat_n(paragraph.trim_end(), 200)
        .collect::<Vec<_>>()
        .join("\n\n")
        .chars()
        .take(100_000)
        .collect();
    gc.push_reply(Reply::Text(answer.clone()));
    let written = bot.io("write_bytes");
    let id = tg.push_text(43, 43, "расскажи всё");
    wait_handled(&tg, id, Duration::from_secs(120));
    let written = (bot.io("write_bytes") - written) as f64 / 1_048_576.0;
    let sent = tg.sent_to(43).len() - 1;
    rows.push(row(
        &format!(
            "a 100 000-character answer ({} kB of UTF-8), default config: written to storage (/proc/PID/io), messages",
            answer.len() / 1000
        ),
        format!("{written:.2} MiB, {sent} messages"),
        "< 1 MiB",
        Some(written < 1.0),
    ));
}

/// How long one request to each fake takes from here: the part of the overhead that is the
/// fakes' own work, not the bot's.
fn rtt(rows: &mut Vec<Row>) {
    let tg = telegram();
    let gc = FakeGigaChat::start();
    tg.add_chat(fake_telegram::chat(42));
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).proxy(None).build().into();
    let url = format!("{}/bot{}/sendChatAction", tg.url(), tg.token());
    let n = 500;
    let started = Instant::now();
    for _ in 0..n {
        let mut r = agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(&br#"{"chat_id":42,"action":"typing"}"#[..])
            .unwrap();
        let _ = r.body_mut().read_to_string();
    }
    let tg_rtt = started.elapsed() / n;
    let url = format!("{}/bot{}/sendMessage", tg.url(), tg.token());
    let started = Instant::now();
    for i in 0..n {
        let body =
            format!(r#"{{"chat_id":42,"text":"<b>Ответ</b> номер {i}","parse_mode":"HTML"}}"#);
        let mut r = agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(body.as_bytes())
            .unwrap();
        let _ = r.body_mut().read_to_string();
    }
    let send_rtt = started.elapsed() / n;
    let ca = ureq::tls::Certificate::from_pem(&std::fs::read(gc.ca_pem_path()).unwrap()).unwrap();
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::NativeTls)
        .root_certs(ureq::tls::RootCerts::new_with_certs(&[ca]))
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .tls_config(tls)
        .build()
        .into();
    let mut r = agent
        .post(&gc.auth_url())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("RqUID", "8da54264-2463-42be-9aa7-c844d5e45180")
        .header("Authorization", &format!("Basic {}", gc.credentials()))
        .send(&b"scope=GIGACHAT_API_PERS"[..])
        .unwrap();
    let token: serde_json::Value =
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    let bearer = format!("Bearer {}", token["access_token"].as_str().unwrap());
    let url = format!("{}/chat/completions", gc.base_url());
    let body =
        r#"{"model":"GigaChat-2-Max","messages":[{"role":"user","content":"Привет"}]}"#.as_bytes();
    let started = Instant::now();
    for _ in 0..n {
        let mut r = agent
            .post(&url)
            .header("Content-Type", "application/json")
            .header("Authorization", &bearer)
            .send(body)
            .unwrap();
        let _ = r.body_mut().read_to_string();
    }
    let gc_rtt = started.elapsed() / n;
    rows.push(row(
        "fake GigaChat round trip from the benchmark (chat/completions over TLS, instant answer)",
        format!("{:.3} ms", gc_rtt.as_secs_f64() * 1000.0),
        "—",
        None,
    ));
    rows.push(row(
        "fake Telegram round trip from the benchmark (sendChatAction / sendMessage)",
        format!(
            "{:.3} ms / {:.3} ms",
            tg_rtt.as_secs_f64() * 1000.0,
            send_rtt.as_secs_f64() * 1000.0
        ),
        "—",
        None,
    ));
}

// --- The reference desk (issue 25): `[knowledge]`, off by default. ---

/// The words of the generated documents (a club's rules, prices and timetable); to the fake
/// embedder each is its first five letters, and few share them.
#[rustfmt::skip]
const WORDS: [&str; 96] = [
    "абонемент", "библиотека", "бронирование", "вечеринка", "возврат", "выходные", "гардероб",
    "гость", "договор", "доступ", "журнал", "зарядка", "инструктор", "карточка", "касса",
    "кафетерий", "клиент", "комната", "консультация", "кружок", "лекция", "лестница", "льгота",
    "мастерская", "менеджер", "музей", "награда", "неделя", "оплата", "отпуск", "парковка",
    "пароль", "перерыв", "питание", "площадка", "подарок", "поездка", "помещение", "правило",
    "праздник", "пропуск", "расписание", "ремонт", "рассылка", "сайт", "скидка", "собрание",
    "сотрудник", "справка", "стоимость", "суббота", "телефон", "тренировка", "турнир", "уборка",
    "урок", "участник", "учебник", "файл", "формуляр", "холл", "цена", "чек", "шахматы", "экзамен",
    "экскурсия", "юрист", "ярмарка", "записаться", "оплатить", "получить", "принести", "проверить",
    "отменить", "перенести", "заполнить", "показать", "сообщить", "вернуть", "выдать", "открыть",
    "закрыть", "начинается", "заканчивается", "действует", "требуется", "разрешено", "запрещено",
    "бесплатный", "ежемесячный", "групповой", "индивидуальный", "детский", "взрослый", "летний",
    "зимний",
];
/// The short words that join them: the fake embedder drops words under three letters.
const JOINERS: [&str; 9] = ["и", "в", "на", "по", "с", "до", "за", "от", "не"];
/// How a question on a section's words starts (and is told apart in the fake's records).
const TOPIC_QUESTION: &str = "Расскажи про";
/// Passages the search and the memory are measured with.
const PASSAGES: usize = 10_000;

/// Generated documents and a state file with their index built, for runs that start the
/// bot on a copy of it (`Bot::start_with_state`); the folder goes when this is dropped.
struct Desk {
    root: PathBuf,
    state: PathBuf,
    /// Each section's words, for questions that reach it.
    topics: Vec<Vec<&'static str>>,
}

impl Desk {
    fn docs(&self) -> PathBuf {
        self.root.join("docs")
    }

    fn state(&self) -> &Path {
        &self.state
    }

    fn config(&self) -> String {
        knowledge_config(&self.docs())
    }

    /// A question on five words of one section (the `n`-th, spread over the documents), so
    /// that its passages score above min_score.
    fn question(&self, n: usize) -> String {
        let topic = &self.topics[n * 7919 % self.topics.len()];
        format!(
            "{TOPIC_QUESTION} {}, {}, {}, {} и {}?",
            topic[0], topic[1], topic[2], topic[3], topic[4]
        )
    }
}

impl Drop for Desk {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The section as the brief of issue 25 spells it: every value but `dir` is the default.
fn knowledge_config(docs: &Path) -> String {
    format!(
        "[knowledge]\ndir = \"{}\"\nmodel = \"Embeddings\"\ntop_k = 4\nmin_score = 0.3\n",
        docs.display()
    )
}

/// The reference desk, `--only knowledge`: the search alone, `gigabot index` on 1 MB of
/// documents (and again on what did not change), the memory of 10 000 passages, and
/// answers with the desk on (the default's rows are the throughput and overhead parts').
fn knowledge_desk(binary: &Path, quick: bool, rows: &mut Vec<Row>) {
    search(rows);
    let desk = indexing(binary, rows);
    desk_memory(binary, rows);
    let label =
        "not default: [knowledge] with 1 MB of documents (one embeddings call per question)";
    let config = desk.config();
    let (messages, chats) = if quick { (1000, 200) } else { (5000, 1000) };
    throughput(binary, messages, chats, &config, label, Some(&desk), rows);
    overhead(binary, if quick { 50 } else { 200 }, &config, label, Some(&desk), rows);
}

/// `knowledge::Index::search` alone (pure: compiled here as the bot is), over 10 000 random
/// passages at EmbeddingsGigaR's reported length and at the fake's: what a question adds.
fn search(rows: &mut Vec<Row>) {
    for dim in [1024, 256] {
        let mut random = SplitMix(dim as u64);
        let mut vector =
            || -> Vec<f32> { (0..dim).map(|_| (random.unit() * 2.0 - 1.0) as f32).collect() };
        let mut index = knowledge::Index::default();
        for id in 0..PASSAGES {
            assert!(index.push(id as i64, &vector()));
        }
        let mut times = Vec::new();
        for _ in 0..100 {
            let query = vector();
            let started = Instant::now();
            std::hint::black_box(index.search(std::hint::black_box(&query), 4, 0.0));
            times.push(started.elapsed());
        }
        let (median, worst) = median_worst(&mut times);
        let whose = if dim == 1024 { "EmbeddingsGigaR's, as reported" } else { "the fake's" };
        rows.push(row(
            &format!(
                "search over {PASSAGES} passages of {dim} dimensions ({whose}), top_k 4, min_score 0.0 (knowledge::Index::search alone, built as the bot is, 100 searches): median / worst; not default: [knowledge] dir set"
            ),
            format!("{median:.2} ms / {worst:.2} ms"),
            "≤ 5 ms",
            Some(median <= 5.0),
        ));
    }
    let held = |dim: usize| (dim * 4 + 8) as f64;
    rows.push(row(
        &format!(
            "memory the index holds, {PASSAGES} passages (computed: dimensions × 4 B of vector + 8 B of id each); not default: [knowledge] dir set"
        ),
        format!(
            "{:.1} MB at 1024 dimensions ({:.1} KB per passage); {:.1} MB at 256 ({:.1} KB per passage)",
            held(1024) * PASSAGES as f64 / 1e6,
            held(1024) / 1e3,
            held(256) * PASSAGES as f64 / 1e6,
            held(256) / 1e3
        ),
        "—",
        None,
    ));
}

/// A section's topic: twelve distinct words.
fn topic(random: &mut SplitMix) -> Vec<&'static str> {
    let mut words = Vec::new();
    while words.len() < 12 {
        let word = WORDS[random.below(WORDS.len())];
        if !words.contains(&word) {
            words.push(word);
        }
    }
    words
}

/// A sentence of 6–12 words, most of them the topic's, some joined by short words.
fn sentence(random: &mut SplitMix, topic: &[&'static str]) -> String {
    let mut words = Vec::new();
    for i in 0..6 + random.below(7) {
        if i > 0 && random.below(10) < 3 {
            words.push(JOINERS[random.below(JOINERS.len())]);
        }
        words.push(match random.below(100) < 85 {
            true => topic[random.below(topic.len())],
            false => WORDS[random.below(WORDS.len())],
        });
    }
    capitalized(&words.join(" ")) + "."
}

/// Sentences until the paragraph has at least `chars` characters.
fn paragraph(random: &mut SplitMix, topic: &[&'static str], chars: usize) -> String {
    let mut text = String::new();
    while text.chars().count() < chars {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&sentence(random, topic));
    }
    text
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// `files` Markdown files of about `bytes` bytes each in ten folders: a `# ` title, then
/// sections of 2–4 paragraphs of about 300–800 characters under `## ` headings, each
/// section on a topic of its own. Deterministic. The files, and the sections' topics.
fn write_documents(
    docs: &Path,
    files: usize,
    bytes: usize,
) -> (Vec<PathBuf>, Vec<Vec<&'static str>>) {
    let (mut random, mut paths, mut topics) = (SplitMix(25), Vec::new(), Vec::new());
    for file in 0..files {
        let title = topic(&mut random);
        let mut text =
            format!("# {} и {}: правила клуба, часть {file}\n", capitalized(title[0]), title[1]);
        while text.len() < bytes {
            let topic = topic(&mut random);
            text.push_str(&format!("\n## {} и {}\n", capitalized(topic[0]), topic[1]));
            for _ in 0..2 + random.below(3) {
                let chars = 300 + random.below(401);
                text.push_str(&format!("\n{}\n", paragraph(&mut random, &topic, chars)));
            }
            topics.push(topic);
        }
        let path = docs.join(format!("part-{}/doc-{file:03}.md", file / 10));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        paths.push(path);
    }
    (paths, topics)
}

/// `files` files of `sections` sections each, `## Раздел N` over one paragraph of about
/// 150 characters: every heading starts a passage, so files × sections passages.
fn write_sections(docs: &Path, files: usize, sections: usize) {
    let mut random = SplitMix(10_000);
    std::fs::create_dir_all(docs).unwrap();
    for file in 0..files {
        let mut text = String::new();
        for n in 0..sections {
            let topic = topic(&mut random);
            let paragraph = paragraph(&mut random, &topic, 150);
            text.push_str(&format!("## Раздел {}\n\n{paragraph}\n\n", file * sections + n + 1));
        }
        std::fs::write(docs.join(format!("doc-{file:03}.md")), text).unwrap();
    }
}

/// What one `gigabot index` took: its wall time, its summary line, and what the fake saw
/// of it (embeddings calls, of them refused, tokens).
struct Indexed {
    wall: Duration,
    summary: String,
    calls: usize,
    refused: usize,
    tokens: u64,
}

impl Indexed {
    /// A figure of the summary line, by the words before it ("запросов к GigaChat ").
    fn figure(&self, before: &str) -> u64 {
        let after = self.summary.split(before).nth(1).unwrap_or("");
        after.split(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse().ok()).unwrap_or(0)
    }
}

/// `gigabot index` in `dir` (its config.toml there), with the environment the bot gets.
fn run_index(binary: &Path, tg: &FakeTelegram, gc: &FakeGigaChat, dir: &Path) -> Indexed {
    let (before, tokens) = (gc.embedding_requests().len(), gc.embedding_tokens());
    let started = Instant::now();
    let out = Bot::command(binary, tg, gc, dir)
        .arg("index")
        .stdin(Stdio::null())
        .output()
        .expect("run gigabot index");
    let wall = started.elapsed();
    let summary = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
    assert!(out.status.success(), "gigabot index failed: {summary}\n{log}");
    eprintln!("gigabot index: {summary}");
    let calls = &gc.embedding_requests()[before..];
    Indexed {
        wall,
        summary,
        calls: calls.len(),
        refused: calls.iter().filter(|c| c.status != 200).count(),
        tokens: gc.embedding_tokens() - tokens,
    }
}

/// Embeddings calls the bot should make for these files (in its order, by name): passages of
/// documents gather until there are 900 or more, then go in calls of at most 90.
fn expected_calls(paths: &[PathBuf]) -> (usize, usize) {
    let max = fake_embeddings::MAX_INPUTS;
    let (mut calls, mut passages, mut gathered) = (0, 0, 0);
    for path in paths {
        let n = knowledge::passages(&std::fs::read_to_string(path).unwrap()).len();
        (passages, gathered) = (passages + n, gathered + n);
        if gathered >= 10 * max {
            (calls, gathered) = (calls + gathered.div_ceil(max), 0);
        }
    }
    (calls + gathered.div_ceil(max), passages)
}

/// `gigabot index` on about 1 MB of Markdown into a fresh state, again with nothing
/// changed, and again with one file changed; the desk it leaves is the answers' one.
fn indexing(binary: &Path, rows: &mut Vec<Row>) -> Desk {
    let root = std::env::temp_dir().join(format!("gigabot-bench-desk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let (paths, topics) = write_documents(&root.join("docs"), 100, 10_000);
    let desk = Desk { state: work.join("gigabot.db"), root, topics };
    std::fs::write(work.join("config.toml"), desk.config()).unwrap();
    let bytes: u64 = paths.iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
    let (calls, passages) = expected_calls(&paths);
    let (tg, gc) = (telegram(), FakeGigaChat::start());
    let what = format!(
        "gigabot index on {:.2} MB of Markdown ({} files, {passages} passages), fake GigaChat instant; not default: [knowledge] dir set",
        bytes as f64 / 1e6,
        paths.len()
    );
    let first = run_index(binary, &tg, &gc, &work);
    rows.push(row(
        &format!("{what}: wall time / embeddings calls / passages / tokens"),
        format!(
            "{:.2} s / {} calls ({} refused) / {} passages / {} tokens (the fake counted {})",
            first.wall.as_secs_f64(),
            first.figure("запросов к GigaChat "),
            first.refused,
            first.figure("фрагментов проиндексировано "),
            first.figure("токенов "),
            first.tokens
        ),
        &format!("documents together, ≤ 90 passages a call: {calls}"),
        Some(
            first.calls == calls
                && first.figure("запросов к GigaChat ") == calls as u64
                && first.figure("фрагментов проиндексировано ") == passages as u64
                && first.figure("токенов ") == first.tokens,
        ),
    ));
    let again = run_index(binary, &tg, &gc, &work);
    rows.push(row(
        &format!("{what}, run again with nothing changed: embeddings calls / wall time"),
        format!("{} calls / {:.2} s", again.calls, again.wall.as_secs_f64()),
        "0 calls",
        Some(again.calls == 0),
    ));
    let changed = &paths[42];
    let mut text = std::fs::read_to_string(changed).unwrap();
    text.push_str("\n## Новое правило\n\nС понедельника абонемент действует и в летний сезон.\n");
    std::fs::write(changed, text).unwrap();
    let (calls, passages) = expected_calls(std::slice::from_ref(changed));
    let edited = run_index(binary, &tg, &gc, &work);
    rows.push(row(
        &format!(
            "{what}, run again with one file changed ({passages} passages): embeddings calls / documents embedded anew / wall time"
        ),
        format!(
            "{} calls / {} / {:.2} s",
            edited.calls,
            edited.figure("заново проиндексировано "),
            edited.wall.as_secs_f64()
        ),
        &format!("that file's only: {calls} call(s), 1 document"),
        Some(edited.calls == calls && edited.figure("заново проиндексировано ") == 1),
    ));
    desk
}

/// The bot with 10 000 passages indexed beside a bot without the desk, after the same 50
/// questions: what the index costs in memory, per passage.
fn desk_memory(binary: &Path, rows: &mut Vec<Row>) {
    let (files, sections) = (100, PASSAGES / 100);
    let label = format!(
        "not default: [knowledge] dir = {files} files × {sections} sections of ~150 characters"
    );
    let (tg, gc) = (telegram(), FakeGigaChat::start());
    // The index is built in the folder the bot then runs in: the state is gigabot.db there.
    let dir = Bot::folder(&tg, &gc);
    let docs = dir.join("docs");
    write_sections(&docs, files, sections);
    std::fs::write(dir.join("config.toml"), knowledge_config(&docs)).unwrap();
    let paths: Vec<PathBuf> =
        (0..files).map(|file| docs.join(format!("doc-{file:03}.md"))).collect();
    let (calls, passages) = expected_calls(&paths);
    let indexed = run_index(binary, &tg, &gc, &dir);
    rows.push(row(
        &format!(
            "gigabot index on {passages} passages, fake GigaChat instant, {label}: wall time / embeddings calls / tokens"
        ),
        format!(
            "{:.2} s / {} calls ({} refused) / {} tokens",
            indexed.wall.as_secs_f64(),
            indexed.calls,
            indexed.refused,
            indexed.tokens
        ),
        &format!("documents together, ≤ 90 passages a call: {calls}"),
        Some(indexed.calls == calls && indexed.figure("фрагментов проиндексировано ") == 10_000),
    ));
    let db = std::fs::metadata(dir.join("gigabot.db")).map_or(0, |m| m.len());
    // A waiting update makes the first poll return at once, so it is recorded at once.
    let before = gc.embedding_requests().len();
    tg.push_text(42, 42, "Привет");
    let bot = Bot::start_in(binary, &tg, &gc, dir);
    tg.wait_until(Duration::from_secs(30), "first poll", |t| !t.calls_of("getUpdates").is_empty());
    let first = tg.calls_of("getUpdates")[0].at.saturating_duration_since(bot.started);
    let at_start = gc.embedding_requests().len() - before;
    rows.push(row(
        &format!(
            "start to the first getUpdates with {passages} passages indexed (database {:.1} MB; the files fingerprinted, the vectors loaded), {label}: time / embeddings calls at start",
            db as f64 / 1e6
        ),
        format!("{:.1} ms / {at_start} calls", first.as_secs_f64() * 1000.0),
        "— / 0 calls",
        Some(at_start == 0),
    ));
    let questions = |tg: &FakeTelegram| {
        let mut last = 0;
        for i in 0..50 {
            let chat = 700 + i;
            last = tg.push_text(chat, chat, &format!("Что сказано в разделе {}?", i * 199 + 1));
        }
        wait_handled(tg, last, Duration::from_secs(120));
    };
    questions(&tg);
    let with = (bot.status_kb("VmHWM"), bot.status_kb("RssAnon"));
    drop(bot);
    let (tg, gc) = (telegram(), FakeGigaChat::start());
    let bot = Bot::start(binary, &tg, &gc, DEFAULT);
    tg.wait_until(Duration::from_secs(10), "polling", |t| t.polling());
    questions(&tg);
    let without = (bot.status_kb("VmHWM"), bot.status_kb("RssAnon"));
    drop(bot);
    let mb = |kb: u64| kb as f64 / 1024.0;
    let per = |with: u64, without: u64| (with as f64 - without as f64) * 1024.0 / passages as f64;
    let vectors = (fake_embeddings::EMBEDDING_DIMENSION * 4 + 8) as f64;
    rows.push(row(
        &format!(
            "memory with {passages} passages indexed (the fake's vectors: {} dimensions) beside the default config, after the same 50 questions, {label}: peak (VmHWM) / heap (RssAnon)",
            fake_embeddings::EMBEDDING_DIMENSION
        ),
        format!(
            "with: {:.1} MB / {:.1} MB; without: {:.1} MB / {:.1} MB; difference per passage: {:.0} B / {:.0} B",
            mb(with.0),
            mb(with.1),
            mb(without.0),
            mb(without.1),
            per(with.0, without.0),
            per(with.1, without.1)
        ),
        &format!("heap difference ≤ 2 × the vectors ({vectors:.0} B per passage)"),
        Some(per(with.1, without.1) <= 2.0 * vectors),
    ));
}
