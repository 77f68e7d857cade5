//! Runs the real `gigabot` binary the way a user does: in its own working folder, with
//! secrets in the environment and an optional config file, against the fakes.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::fake_gigachat::FakeGigaChat;
use crate::fake_telegram::FakeTelegram;

/// A working folder (removed on drop), the environment and the config for one bot.
pub struct BotEnv {
    pub dir: PathBuf,
    env: Vec<(String, String)>,
}

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);
static NEXT_LOG: AtomicUsize = AtomicUsize::new(0);

impl BotEnv {
    /// Both fakes wired in, the CA file given, no config file.
    pub fn new(tg: &FakeTelegram, gc: &FakeGigaChat) -> BotEnv {
        let mut env = BotEnv::empty();
        env.set("TELEGRAM_TOKEN", tg.token());
        env.set("TELEGRAM_API_URL", &tg.url());
        env.set("GIGACHAT_CREDENTIALS", &gc.credentials());
        env.set("GIGACHAT_AUTH_URL", &gc.auth_url());
        env.set("GIGACHAT_BASE_URL", &gc.base_url());
        env.set("GIGACHAT_CA_BUNDLE_FILE", &gc.ca_pem_path().display().to_string());
        // The fakes list GigaChat-2-Max; keep tests fast to shut down.
        env.config("[telegram]\npoll_timeout_secs = 10\n");
        env
    }

    /// A fresh folder and no variables at all.
    pub fn empty() -> BotEnv {
        let n = NEXT_DIR.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("gigabot-it-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the test folder");
        BotEnv { dir, env: Vec::new() }
    }

    pub fn set(&mut self, key: &str, value: &str) -> &mut BotEnv {
        self.unset(key);
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn unset(&mut self, key: &str) -> &mut BotEnv {
        self.env.retain(|(k, _)| k != key);
        self
    }

    /// Writes `config.toml` in the working folder (found there by the bot).
    pub fn config(&mut self, toml: &str) -> &mut BotEnv {
        std::fs::write(self.dir.join("config.toml"), toml).expect("write config.toml");
        self
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gigabot"));
        command.args(args);
        self.prepared(command)
    }

    /// In the bot's folder, with exactly the bot's environment.
    fn prepared(&self, mut command: Command) -> Command {
        command
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null());
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    /// Runs a command to its end (check, ask, a config error…), at most 60 s.
    pub fn run(&self, args: &[&str]) -> Output {
        let child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start gigabot");
        wait_output(child, args)
    }

    /// Runs a command to its end after a shell command (a `ulimit`, say), at most 60 s.
    pub fn run_after(&self, shell: &str, args: &[&str]) -> Output {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("{shell} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_gigabot"))
            .args(args);
        let child = self
            .prepared(command)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start gigabot");
        wait_output(child, args)
    }

    /// Starts the bot (`gigabot run`) in the background.
    pub fn spawn(&self, args: &[&str]) -> BotProcess {
        self.spawn_command(self.command(args))
    }

    /// Starts the bot under this umask (as a shell or a service manager would set it).
    pub fn spawn_with_umask(&self, umask: &str, args: &[&str]) -> BotProcess {
        self.spawn_after(&[], &format!("umask {umask}"), args)
    }

    /// Starts the bot after a shell command (a umask, a mount), the shell itself run by
    /// `wrapper` if one is given (`unshare -rm`, for a mount of the bot's own).
    pub fn spawn_after(&self, wrapper: &[&str], shell: &str, args: &[&str]) -> BotProcess {
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg("sh");
                command
            }
            None => Command::new("sh"),
        };
        command
            .arg("-c")
            .arg(format!("{shell} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_gigabot"))
            .args(args);
        self.spawn_command(self.prepared(command))
    }

    fn spawn_command(&self, mut command: Command) -> BotProcess {
        // stderr goes to a file, not a pipe: a line the bot wrote before its next request
        // is in the file when a fake sees that request, so a test never reads a stale log.
        let path = self.path(&format!("stderr-{}.log", NEXT_LOG.fetch_add(1, Ordering::Relaxed)));
        let stderr = File::create(&path).expect("create the bot's log file");
        // A handle of our own: the log stays readable even after the folder is removed.
        let log = File::open(&path).expect("open the bot's log file");
        let child = command.stdout(Stdio::null()).stderr(stderr).spawn().expect("start gigabot");
        BotProcess { child, log }
    }
}

impl Drop for BotEnv {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running bot; killed on drop if still running.
pub struct BotProcess {
    child: Child,
    log: File,
}

impl BotProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the bot wrote to stderr so far.
    pub fn log(&self) -> String {
        let mut bytes = Vec::new();
        let mut chunk = vec![0; 64 * 1024];
        // Positioned reads, so that threads sharing a process never move a file offset.
        while let Ok(n @ 1..) = self.log.read_at(&mut chunk, bytes.len() as u64) {
            bytes.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Waits until the log contains `text`.
    pub fn wait_log(&self, text: &str, timeout: Duration) {
        let what = format!("the bot to log {text:?}");
        crate::http::wait_until(timeout, &what, || self.log().contains(text), || self.log());
    }

    /// Sends a signal by name ("TERM", "INT", "KILL").
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to end, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for gigabot") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM, then the exit status (panics if it does not stop within 10 s).
    pub fn stop(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("the bot did not stop on SIGTERM; log:\n{}", self.log()))
    }
}

impl Drop for BotProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for a command started with piped output to end, at most 60 s.
fn wait_output(mut child: Child, args: &[&str]) -> Output {
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait for gigabot").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("gigabot {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("collect gigabot's output")
}

/// SIGKILLs a process and waits until it is dead (a zombie or gone): for the kill hooks of
/// the fakes, which run in place of a request the bot is waiting on.
pub fn sigkill(pid: u32) {
    let status = Command::new("kill").args(["-KILL", &pid.to_string()]).status().expect("run kill");
    assert!(status.success(), "kill -KILL {pid} failed");
    let dead = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
            stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z'))
        })
    };
    crate::http::wait_until(Duration::from_secs(10), "the killed bot to die", dead, String::new);
}

/// Whether the tests run as root (the owner of our /proc entry is uid 0).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// stdout and stderr of a finished command, as text.
pub fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

/// Opens a bot's database read-only, as an owner would with `sqlite3` (also while the bot
/// runs, and after a kill: what it shows is what the bot committed).
pub fn open_state(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|err| panic!("open the state {}: {err}", path.display()))
}

/// The last update id the bot saved as handled.
pub fn saved_update_id(path: &Path) -> i64 {
    open_state(path)
        .query_row("SELECT last_update_id FROM meta", [], |r| r.get(0))
        .unwrap_or_else(|err| panic!("read the state {}: {err}", path.display()))
}
