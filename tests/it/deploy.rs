//! The systemd unit (deploy/gigabot.service) and the README's "Запуск 24/7" steps that
//! install it. The systemd-analyze tests need `systemd-analyze` (Debian: `apt install
//! systemd`; `.ci/run` installs it): a machine without it fails with that advice instead of
//! passing in silence.

use std::path::PathBuf;
use std::process::{Command, Output};

fn repo_file(name: &str) -> String {
    let path = format!("{}/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
}

fn unit_file() -> String {
    repo_file("deploy/gigabot.service")
}

/// The unit's `Key=value` lines as (section, key, value), in order; comments dropped.
fn unit_entries() -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut entries = Vec::new();
    for line in unit_file().lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
        } else if let Some((key, value)) = line.split_once('=') {
            entries.push((section.clone(), key.trim().into(), value.trim().into()));
        }
    }
    entries
}

/// The value of `key` in `section` (the last one, as systemd reads it).
fn unit_value(section: &str, key: &str) -> Option<String> {
    unit_entries().into_iter().rev().find(|(s, k, _)| s == section && k == key).map(|(_, _, v)| v)
}

fn service(key: &str) -> String {
    unit_value("Service", key).unwrap_or_else(|| panic!("[Service] {key}= is missing"))
}

/// The README's "Запуск 24/7" section.
fn readme_section() -> String {
    let readme = repo_file("README.md");
    let start =
        readme.find("## Запуск 24/7\n").expect("README.md has no section \"## Запуск 24/7\"");
    let rest = &readme[start..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    rest[..end].to_string()
}

/// The commands of the section's ```sh blocks, in order, without `sudo`.
fn readme_commands() -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_sh = false;
    for line in readme_section().lines() {
        let trimmed = line.trim();
        if let Some(info) = trimmed.strip_prefix("```") {
            in_sh = !in_sh && info.trim() == "sh";
        } else if in_sh && !trimmed.is_empty() && !trimmed.starts_with('#') {
            commands.push(trimmed.strip_prefix("sudo ").unwrap_or(trimmed).to_string());
        }
    }
    commands
}

fn systemd_analyze(args: &[&str]) -> Output {
    let found = Command::new("systemd-analyze").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "systemd-analyze is not installed: install systemd (apt install systemd) to check deploy/gigabot.service"
    );
    Command::new("systemd-analyze").args(args).output().unwrap()
}

/// A copy of the unit whose ExecStart is the binary under test (verify checks that it
/// exists), in a folder of this test's own: tests run in parallel.
struct UnitCopy(PathBuf);

impl UnitCopy {
    fn new(test: &str) -> UnitCopy {
        let dir = std::env::temp_dir().join(format!("gigabot-unit-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let unit = unit_file().replace("/usr/local/bin/gigabot", env!("CARGO_BIN_EXE_gigabot"));
        std::fs::write(dir.join("gigabot.service"), unit).unwrap();
        UnitCopy(dir)
    }

    fn path(&self) -> String {
        self.0.join("gigabot.service").display().to_string()
    }
}

impl Drop for UnitCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A number in seconds as systemd writes a time span: `480`, `480s`, `8min`, `7min 30s`.
fn seconds(span: &str) -> f64 {
    let mut total = 0.0;
    for part in span.split_whitespace() {
        let digits = part.find(|c: char| !c.is_ascii_digit()).unwrap_or(part.len());
        let (number, unit) = part.split_at(digits);
        let number: f64 = number.parse().unwrap_or_else(|_| panic!("time span {span:?}"));
        total += number
            * match unit {
                "" | "s" | "sec" => 1.0,
                "m" | "min" => 60.0,
                "h" => 3600.0,
                _ => panic!("time span {span:?}"),
            };
    }
    total
}

/// A default from config.example.toml, which shows every default.
fn example_default(table: &str, key: &str) -> f64 {
    let example: toml::Table = repo_file("config.example.toml").parse().unwrap();
    example[table][key]
        .as_integer()
        .unwrap_or_else(|| panic!("config.example.toml has no {table}.{key}")) as f64
}

#[test]
fn the_systemd_unit_has_what_the_readme_promises() {
    let unit = unit_file();
    for key in [
        "Restart=on-failure",
        "EnvironmentFile=",
        "StateDirectory=gigabot",
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
    ] {
        assert!(unit.lines().any(|line| line.trim().starts_with(key)), "{key} missing");
    }
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = UnitCopy::new("verify");
    let output = systemd_analyze(&["verify", &unit.path()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("gigabot.service:"), "warnings about the unit: {stderr}");
}

/// The nightly backup (deploy/gigabot-backup.service and .timer, README "Запуск 24/7") is a
/// unit systemd accepts, and it backs up with the installed binary.
#[test]
fn the_backup_timer_and_its_service_pass_systemd_analyze_verify() {
    let dir = UnitCopy::new("backup");
    let service = repo_file("deploy/gigabot-backup.service");
    assert!(service.contains("/usr/local/bin/gigabot backup /var/backups/gigabot/"));
    let service = service.replace("/usr/local/bin/gigabot", env!("CARGO_BIN_EXE_gigabot"));
    std::fs::write(dir.0.join("gigabot-backup.service"), service).unwrap();
    std::fs::write(dir.0.join("gigabot-backup.timer"), repo_file("deploy/gigabot-backup.timer"))
        .unwrap();
    let readme = repo_file("README.md");
    assert!(readme.contains("systemctl enable --now gigabot-backup.timer"), "not installed");
    for unit in ["gigabot-backup.service", "gigabot-backup.timer"] {
        let path = dir.0.join(unit).display().to_string();
        let output = systemd_analyze(&["verify", &path]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{unit}: {stderr}");
        assert!(!stderr.contains(&format!("{unit}:")), "warnings about {unit}: {stderr}");
    }
}

/// A config error (2) or a refused bot token (3) needs a person: restarting every 5 s
/// would only fill the log. Anything else is restarted, but not forever.
#[test]
fn the_systemd_unit_does_not_restart_what_only_a_person_can_fix() {
    assert_eq!(service("Restart"), "on-failure");
    let prevented = service("RestartPreventExitStatus");
    let codes: Vec<&str> = prevented.split_whitespace().collect();
    for code in ["2", "3"] {
        assert!(codes.contains(&code), "RestartPreventExitStatus={prevented} lacks {code}");
    }
    // The start limit belongs in [Unit]: in [Service] systemd ignores it with a warning.
    for key in ["StartLimitIntervalSec", "StartLimitBurst"] {
        let value = unit_value("Unit", key).unwrap_or_else(|| panic!("[Unit] {key}= is missing"));
        assert!(seconds(&value) > 0.0, "{key}={value}");
    }
}

/// A stop waits for the update in flight: systemd must not kill the bot before the
/// longest update the default timeouts allow (the arithmetic in the unit's comment).
#[test]
fn the_systemd_unit_waits_out_the_longest_update_when_stopping() {
    let gigachat = example_default("gigachat", "timeout_secs");
    let poll = example_default("telegram", "poll_timeout_secs");
    // src/gigachat.rs: connect (at most 15 s), the answer starts within timeout_secs and
    // the rest of it arrives within timeout_secs more; pauses after 429s.
    let gigachat_answer = gigachat.min(15.0) + 2.0 * gigachat + 0.5 + 1.0 + 2.0;
    // src/telegram.rs, sendMessage: connect, the request and its body, the response
    // (the long poll's limit) and its body.
    let telegram_send = 15.0 + 30.0 + 30.0 + (poll + 15.0) + 60.0;
    let longest = gigachat_answer + telegram_send;
    let stop = service("TimeoutStopSec");
    assert!(
        seconds(&stop) >= longest,
        "TimeoutStopSec={stop} is shorter than the longest update, {longest} s"
    );
}

#[test]
fn the_systemd_unit_keeps_the_bots_files_and_memory_to_itself() {
    assert_eq!(service("UMask"), "0077");
    assert_eq!(service("LimitCORE"), "0");
    let families = service("RestrictAddressFamilies");
    for family in ["AF_INET", "AF_INET6", "AF_UNIX"] {
        assert!(families.split_whitespace().any(|f| f == family), "{family}");
    }
    let filters: Vec<String> = unit_entries()
        .into_iter()
        .filter(|(s, k, _)| s == "Service" && k == "SystemCallFilter")
        .map(|(_, _, v)| v)
        .collect();
    assert!(filters.iter().any(|f| f == "@system-service"), "{filters:?}");
    assert!(
        filters
            .iter()
            .any(|f| f.starts_with('~') && f.contains("@privileged") && f.contains("@resources")),
        "{filters:?}"
    );
    assert_eq!(service("SystemCallErrorNumber"), "EPERM");
    for (key, value) in [
        ("ProtectClock", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectHostname", "yes"),
        ("RestrictRealtime", "yes"),
        ("ProtectProc", "invisible"),
        ("ProcSubset", "pid"),
    ] {
        assert_eq!(service(key), value, "{key}");
    }
}

/// A bound on memory and threads, so that a runaway (a bug, a hostile answer) is stopped
/// by the kernel and not by the machine: above what the largest file the bot handles needs
/// (Telegram's 20 MiB, held twice on its way to GigaChat), below a small machine's RAM.
#[test]
fn the_systemd_unit_bounds_memory_and_threads() {
    let memory = service("MemoryMax");
    let megabytes: u64 = memory.strip_suffix('M').and_then(|m| m.parse().ok()).unwrap_or(0);
    assert!((64..=512).contains(&megabytes), "MemoryMax={memory}");
    let tasks: u64 = service("TasksMax").parse().unwrap_or(0);
    assert!((4..=64).contains(&tasks), "TasksMax={tasks}");
}

/// The README states the score; the unit must not get worse than that, so neither can
/// go stale unnoticed.
#[test]
fn the_systemd_unit_is_as_locked_down_as_the_readme_says() {
    let section = readme_section();
    let command = "systemd-analyze security --offline=yes deploy/gigabot.service";
    assert!(section.contains(command), "the README lost `{command}`");
    let stated = section
        .split("Оценка `systemd-analyze security` — **")
        .nth(1)
        .and_then(|rest| rest.split("**").next())
        .and_then(|figure| figure.parse::<f64>().ok())
        .expect("the README states no score as \"Оценка `systemd-analyze security` — **N.N**\"");

    let unit = UnitCopy::new("security");
    let output = systemd_analyze(&["security", "--offline=yes", "--no-pager", &unit.path()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    let exposure: f64 = stdout
        .lines()
        .find_map(|line| line.split("Overall exposure level for gigabot.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|figure| figure.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure in:\n{stdout}{stderr}"));
    assert!(
        exposure <= stated,
        "systemd-analyze rates the unit {exposure}, the README says {stated}:\n{stdout}"
    );
}

/// On a fresh machine /etc/gigabot does not exist: the steps must make it first.
#[test]
fn the_readme_steps_make_etc_gigabot_before_writing_into_it() {
    let commands = readme_commands();
    let mut made = false;
    let mut writes = 0;
    for command in &commands {
        let words: Vec<&str> = command.split_whitespace().collect();
        let makes_folder = match words.first() {
            Some(&"install") => words.contains(&"-d"),
            Some(&"mkdir") => true,
            _ => false,
        };
        if makes_folder && words.last().map(|w| w.trim_end_matches('/')) == Some("/etc/gigabot") {
            made = true;
        } else if words.iter().skip(1).any(|w| w.starts_with("/etc/gigabot/")) {
            assert!(made, "`{command}` comes before /etc/gigabot is made");
            writes += 1;
        }
    }
    assert!(writes > 0, "no step writes into /etc/gigabot: {commands:?}");
    // The secrets file: root's alone, as the unit's comment says.
    assert!(
        commands
            .iter()
            .any(|c| c.starts_with("install -m 600 ") && c.ends_with(" /etc/gigabot/env")),
        "{commands:?}"
    );
}

#[test]
fn the_readme_steps_install_what_the_units_documentation_names() {
    let documentation =
        unit_value("Unit", "Documentation").expect("[Unit] Documentation= is missing");
    let path = documentation
        .strip_prefix("file://")
        .unwrap_or_else(|| panic!("Documentation={documentation} is not a file the steps install"));
    let commands = readme_commands();
    let installed = commands.iter().find_map(|c| {
        let words: Vec<&str> = c.split_whitespace().collect();
        (words.first() == Some(&"install") && words.last() == Some(&path))
            .then(|| words[words.len() - 2])
    });
    let source = installed.unwrap_or_else(|| panic!("no step installs {path}: {commands:?}"));
    assert!(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(source).is_file(),
        "{source} is not in the repository"
    );
}

/// `check` in the service's environment: the same secrets file, a dynamic user.
#[test]
fn the_readme_checks_the_setup_as_the_service_runs() {
    let env_file = service("EnvironmentFile");
    let commands = readme_commands();
    let check = commands
        .iter()
        .find(|c| c.starts_with("systemd-run ") && c.ends_with(" check"))
        .unwrap_or_else(|| panic!("no `systemd-run … gigabot check` step: {commands:?}"));
    let words: Vec<&str> = check.split_whitespace().collect();
    for needed in ["--pipe", "--wait", "DynamicUser=yes", &format!("EnvironmentFile={env_file}")] {
        assert!(words.contains(&needed), "`{check}` lacks {needed}");
    }
    let exec_start = service("ExecStart");
    let binary = exec_start.split_whitespace().next().unwrap();
    assert!(words.contains(&binary), "`{check}` does not run {binary}");
}
