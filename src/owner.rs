//! The owner's rules: who may talk to the bot, limits on use, and the admins' reports.
//! GigaChat quotas are paid in tokens, so a bot left open on the internet needs these: an
//! allowlist the admins grow by command or button, a per-user rate and daily budget, and
//! numbers that show where the tokens went. Plain functions of the config and of values read
//! from the state (`facts.rs`); bot.rs acts on what they return.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::config::Config;
use crate::facts::{Access, Stats, UserStats};
use crate::incoming::User;
use crate::texts;

/// Admins come from `bot.admins` only: no command can make an admin.
pub fn is_admin(config: &Config, user_id: i64) -> bool {
    config.bot.admins.contains(&user_id)
}

/// Admins always; with `allowed_users` set, only those and users granted by command;
/// otherwise everyone not denied by command. `access` is what the admins decided.
pub fn is_allowed(config: &Config, user_id: i64, access: Access) -> bool {
    match config.bot.allowed_users.is_empty() {
        _ if is_admin(config, user_id) => true,
        true => access.granted != Some(false),
        false => config.bot.allowed_users.contains(&user_id) || access.granted == Some(true),
    }
}

/// The message to the admins about a new user who was refused, with buttons to allow or
/// refuse; None if they were told already or the user was denied.
pub fn access_request(user: &User, access: Access) -> Option<(String, Value)> {
    if access.granted == Some(false) || access.announced {
        return None;
    }
    let text = texts::ACCESS_REQUEST
        .replace("{name}", &display_name(user))
        .replace("{id}", &user.id.to_string());
    let keyboard = json!({"inline_keyboard": [[
        {"text": texts::ALLOW_BUTTON, "callback_data": format!("allow:{}", user.id)},
        {"text": texts::DENY_BUTTON, "callback_data": format!("deny:{}", user.id)},
    ]]});
    Some((text, keyboard))
}

/// An admin's decision on a user who has `access` now: the access to save and the reply for
/// the admin. Users in the config cannot be denied by command.
pub fn decide(config: &Config, user_id: i64, access: Access, allow: bool) -> (Access, String) {
    let id = user_id.to_string();
    let mut access = Access { announced: true, ..access };
    let text = if allow {
        access.granted = Some(true);
        texts::ALLOWED.replace("{id}", &id)
    } else if is_admin(config, user_id) || config.bot.allowed_users.contains(&user_id) {
        texts::IN_CONFIG.replace("{id}", &id)
    } else {
        access.granted = Some(false);
        texts::DENIED.replace("{id}", &id)
    };
    (access, text)
}

/// What a user over a limit is told before a GigaChat call, if they are; admins are
/// exempt. `usage` is the user's; `day` is today's local date and the seconds to midnight.
pub fn over_limit(
    config: &Config,
    user_id: i64,
    usage: &UserStats,
    now: u64,
    day: (&str, u64),
) -> Option<String> {
    let per_minute = config.bot.requests_per_minute as usize;
    let budget = config.bot.daily_tokens_per_user;
    if is_admin(config, user_id) || (per_minute == 0 && budget == 0) {
        return None;
    }
    limit_reply(per_minute, budget, usage, now, day)
}

/// What a user over a limit is told, if they are: `per_minute` requests in the last 60 s,
/// or `budget` tokens spent on `today` (0 turns a limit off).
fn limit_reply(
    per_minute: usize,
    budget: u64,
    user: &UserStats,
    now: u64,
    (today, to_midnight): (&str, u64),
) -> Option<String> {
    let recent = within_a_minute(&user.recent, now);
    if per_minute > 0 && recent.len() >= per_minute {
        // The oldest of the last `per_minute` requests leaves the window first.
        let oldest = recent[recent.len() - per_minute];
        let wait = (oldest + 60).saturating_sub(now).max(1);
        let text = texts::RATE_LIMIT.replace("{n}", &per_minute.to_string());
        return Some(text.replace("{secs}", &wait.to_string()));
    }
    let used = if user.day == today { user.tokens_today } else { 0 };
    let text = texts::TOKEN_BUDGET.replace("{budget}", &budget.to_string());
    (budget > 0 && used >= budget).then(|| text.replace("{wait}", &hours_minutes(to_midnight)))
}

/// The user's row after one more request (counted before it is paid for), for the limits
/// and /stats; it keeps as many request times as the per-minute limit can need.
pub fn counted(mut stats: UserStats, user: &User, now: u64, today: &str, keep: usize) -> UserStats {
    stats.name = display_name(user);
    stats = on_day(stats, today);
    stats.requests_today += 1;
    stats.requests += 1;
    stats.last_active = now;
    let mut recent = within_a_minute(&stats.recent, now);
    recent.push(now);
    stats.recent = recent.split_off(recent.len().saturating_sub(keep));
    stats
}

/// The user's row after GigaChat billed `tokens` for their request, for the daily budget.
pub fn billed(stats: UserStats, tokens: u64, today: &str) -> UserStats {
    let mut stats = on_day(stats, today);
    stats.tokens_today += tokens;
    stats.tokens += tokens;
    stats
}

/// The row with its `*_today` counters for `today` (they start again on a new day).
fn on_day(mut stats: UserStats, today: &str) -> UserStats {
    if stats.day != today {
        stats.day = today.to_string();
        stats.requests_today = 0;
        stats.tokens_today = 0;
    }
    stats
}

/// The request times (Unix seconds) of the last minute; a clock set back makes later
/// entries count as gone, never as a minute-long block.
fn within_a_minute(times: &[u64], now: u64) -> Vec<u64> {
    times.iter().copied().filter(|&t| t <= now && now - t < 60).collect()
}

/// The /users text: the access mode and who is allowed or denied, and by what (`granted`
/// and `denied`: the users the admins decided about by command).
pub fn users_text(config: &Config, granted: &[i64], denied: &[i64]) -> String {
    let list = |ids: &[i64]| comma_list(ids.iter().map(i64::to_string).collect(), "—");
    let bot = &config.bot;
    let mode = if bot.allowed_users.is_empty() { texts::OPEN_TO_ALL } else { texts::ALLOWED_ONLY };
    texts::USERS
        .replace("{mode}", mode)
        .replace("{admins}", &list(&bot.admins))
        .replace("{allowed}", &list(&bot.allowed_users))
        .replace("{granted}", &list(granted))
        .replace("{denied}", &list(denied))
}

/// The balance in a line: the tokens left in each prepaid package, or that the account pays
/// as it goes (None).
pub fn balance_text(packages: Option<&[(String, i64)]>) -> String {
    let Some(packages) = packages else { return texts::PAY_AS_YOU_GO.to_string() };
    let left: Vec<String> =
        packages.iter().map(|(usage, value)| format!("{usage} — {value}")).collect();
    texts::BALANCE.replace("{packages}", &left.join(", "))
}

/// The admins' warning about the balance and the mark that remembers it, when one is due:
/// `left` is what the configured model's package holds, None after a 402 (used up). One a
/// day; a 402 once more after that day's low-balance warning. `bot.low_balance_tokens = 0`:
/// none at all.
pub fn balance_warning(
    config: &Config,
    left: Option<i64>,
    warned: &str,
    today: &str,
) -> Option<(String, String)> {
    let limit = config.bot.low_balance_tokens as i64;
    if limit == 0 || left.is_some_and(|left| left >= limit) {
        return None;
    }
    let due = !warned.starts_with(today) || (left.is_none() && warned.ends_with("low"));
    let model = &config.gigachat.model;
    let (text, kind) = match left {
        Some(left) => (texts::LOW_BALANCE.replace("{left}", &left.to_string()), "low"),
        None => (texts::BALANCE_USED_UP.to_string(), "402"),
    };
    due.then(|| (text.replace("{model}", model), format!("{today} {kind}")))
}

/// The /stats text: uptime, answers, failures, tokens, chats, users, the most active today.
pub fn stats_text(stats: &Stats) -> String {
    let counters = &stats.counters;
    let failures = counters.failures.iter().map(|(kind, n)| format!("{kind}: {n}")).collect();
    let mut text = texts::STATS
        .replace("{uptime}", &hours_minutes(stats.uptime_secs))
        .replace("{answers}", &counters.answers.to_string())
        .replace("{failures}", &comma_list(failures, texts::NO_FAILURES))
        .replace("{tokens_today}", &stats.tokens_today.to_string())
        .replace("{tokens}", &counters.tokens.to_string())
        .replace("{cached}", &counters.cached_tokens.to_string())
        .replace("{share}", &(counters.cached_tokens * 100 / counters.tokens.max(1)).to_string())
        .replace("{chats}", &stats.chats.to_string())
        .replace("{users}", &stats.users.to_string());
    if counters.embedding_tokens > 0 {
        let tokens = counters.embedding_tokens.to_string();
        text.push_str(&texts::EMBEDDING_TOKENS.replace("{tokens}", &tokens));
    }
    if !stats.busiest.is_empty() {
        text.push_str(texts::MOST_ACTIVE);
        for (i, (id, user)) in stats.busiest.iter().enumerate() {
            text.push_str(
                &texts::ACTIVE_USER
                    .replace("{n}", &(i + 1).to_string())
                    .replace("{name}", &user.name)
                    .replace("{id}", &id.to_string())
                    .replace("{requests}", &user.requests_today.to_string())
                    .replace("{tokens}", &user.tokens_today.to_string()),
            );
        }
    }
    text
}

/// The items joined by ", ", or `none` if there are none.
fn comma_list(items: Vec<String>, none: &str) -> String {
    if items.is_empty() { none.to_string() } else { items.join(", ") }
}

/// "Иван (@ivan)" for messages to admins and /stats.
fn display_name(user: &User) -> String {
    match &user.username {
        Some(username) => format!("{} (@{username})", user.first_name),
        None => user.first_name.clone(),
    }
}

/// "2 ч 5 мин".
fn hours_minutes(secs: u64) -> String {
    let minutes = secs.div_ceil(60);
    texts::HOURS_MINUTES
        .replace("{h}", &(minutes / 60).to_string())
        .replace("{m}", &(minutes % 60).to_string())
}

/// Notices and replies to commands a chat gets at most in [`NOTICE_WINDOW`]. Ten lets a
/// person try every command and see every kind of notice in a row (/start, /help, /mode, a
/// sticker, a voice note, a too long text…); a flood of forty stickers or `/help`s gets ten
/// replies, then silence, none of them waited for on a 429.
pub const NOTICE_BUDGET: usize = 10;
/// Ten minutes: a flooder gets at most 60 notices an hour instead of 40 a minute, and a
/// person who comes back later is told again.
pub const NOTICE_WINDOW: Duration = Duration::from_secs(10 * 60);

/// The notice budget of each chat: when it was last sent notices. In memory only: a restart
/// forgets it, at worst a flooder's extra handful. Chats whose notices all left the window are
/// forgotten at most once a window, so the map holds only chats told something in the last two
/// windows, at most [`NOTICE_BUDGET`] times each. Admins are not exempt: they rarely get
/// notices, and the budget guards the loop and the bot's standing with Telegram, whoever floods.
#[derive(Debug, Default)]
pub struct Notices {
    sent: HashMap<i64, Vec<Instant>>,
    pruned: Option<Instant>,
}

impl Notices {
    /// Whether `user_id` may get a notice at `now`, counted if so (taken or not: a flood is cut
    /// off either way). A plain decision over the state and the clock, so tests can set the time.
    pub fn allow(&mut self, user_id: i64, now: Instant) -> bool {
        let recent = |t: &Instant| now.saturating_duration_since(*t) < NOTICE_WINDOW;
        if self.pruned.is_none_or(|at| now.saturating_duration_since(at) >= NOTICE_WINDOW) {
            self.pruned = Some(now);
            self.sent.retain(|_, sent| sent.iter().any(recent));
        }
        let sent = self.sent.entry(user_id).or_default();
        sent.retain(recent);
        if sent.len() >= NOTICE_BUDGET {
            return false;
        }
        sent.push(now);
        true
    }

    /// After a notice was allowed at `now`: if it spent the budget, the minutes until the next
    /// one may go, for that notice to say so (the silence that follows is then no mystery).
    pub fn spent_for_minutes(&self, user_id: i64, now: Instant) -> Option<u64> {
        let sent = self.sent.get(&user_id).filter(|sent| sent.len() >= NOTICE_BUDGET)?;
        let left = NOTICE_WINDOW.saturating_sub(now.saturating_duration_since(sent[0]));
        Some(left.as_secs().div_ceil(60).max(1))
    }

    /// Users the budget remembers now.
    #[cfg(test)]
    fn users(&self) -> usize {
        self.sent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_per_minute_limit_lifts_when_the_oldest_request_is_a_minute_old() {
        let now = 1_781_000_000;
        let user = UserStats { recent: vec![now - 59, now - 30], ..UserStats::default() };
        let day = ("2026-06-09", 3600);
        let reply = limit_reply(2, 0, &user, now, day).expect("two in a minute");
        assert!(reply.contains("не больше 2 в минуту") && reply.contains("через 1 с"), "{reply}");
        assert_eq!(limit_reply(2, 0, &user, now + 1, day), None, "the oldest left the window");
        assert!(limit_reply(3, 0, &user, now, day).is_none(), "under the limit");
        assert!(limit_reply(0, 0, &user, now, day).is_none(), "no limit");
        // A clock set back: requests "in the future" do not block anyone.
        assert!(limit_reply(2, 0, &user, now - 3600, day).is_none());
    }

    #[test]
    fn the_daily_budget_starts_again_on_a_new_day() {
        let user =
            UserStats { day: "2026-06-09".into(), tokens_today: 500, ..UserStats::default() };
        let reply = limit_reply(0, 500, &user, 1_781_000_000, ("2026-06-09", 3 * 3600 + 300));
        assert!(reply.is_some_and(|r| r.contains("500 токенов") && r.contains("3 ч 5 мин")));
        assert_eq!(limit_reply(0, 500, &user, 1_781_086_400, ("2026-06-10", 86_400)), None);
        assert_eq!(limit_reply(0, 501, &user, 1_781_000_000, ("2026-06-09", 60)), None);
    }

    #[test]
    fn the_balance_warning_comes_once_a_day_and_a_402_once_more() {
        let mut config = Config::default();
        let today = "2026-12-07";
        // (limit, left, warned before) → the mark of a warning sent now
        for (limit, left, warned, mark) in [
            (10_000, Some(9_999), "", Some("2026-12-07 low")),
            (10_000, Some(10_000), "", None),
            (10_000, Some(5), "2026-12-06 402", Some("2026-12-07 low")),
            (10_000, Some(5), "2026-12-07 low", None),
            (10_000, None, "2026-12-07 low", Some("2026-12-07 402")),
            (10_000, None, "2026-12-07 402", None),
            (10_000, Some(5), "2026-12-07 402", None),
            (0, Some(5), "", None),
            (0, None, "", None),
        ] {
            config.bot.low_balance_tokens = limit;
            let warning = balance_warning(&config, left, warned, today);
            let got = warning.as_ref().map(|(_, mark)| mark.as_str());
            assert_eq!(got, mark, "{limit} {left:?} {warned:?}");
        }
        let (low, _) = balance_warning(&Config::default(), Some(1234), "", today).unwrap();
        assert!(low.contains("GigaChat-2-Max") && low.contains("осталось 1234"), "{low}");
        let (empty, _) = balance_warning(&Config::default(), None, "", today).unwrap();
        assert!(empty.contains("402") && empty.contains("GigaChat-2-Max"), "{empty}");
    }

    #[test]
    fn who_may_talk_and_what_an_admin_s_decision_saves() {
        let mut config = Config::default();
        config.bot.admins = vec![1];
        let none = Access::default();
        let denied = Access { granted: Some(false), announced: true };
        let granted = Access { granted: Some(true), announced: true };
        // (allowlist?, user, their access) → may talk
        for (allowlist, user, access, allowed) in [
            (false, 7, none, true),
            (false, 7, denied, false),
            (false, 1, denied, true), // an admin always
            (true, 7, none, false),
            (true, 7, granted, true),
            (true, 5, none, true), // in the list
        ] {
            config.bot.allowed_users = if allowlist { vec![5] } else { Vec::new() };
            assert_eq!(is_allowed(&config, user, access), allowed, "{allowlist} {user} {access:?}");
        }
        config.bot.allowed_users = vec![5];
        let (saved, text) = decide(&config, 7, none, true);
        assert_eq!((saved, text.as_str()), (granted, "Пользователю 7 доступ разрешён."));
        let (saved, text) = decide(&config, 7, granted, false);
        assert_eq!((saved, text.as_str()), (denied, "Пользователю 7 в доступе отказано."));
        for in_config in [1, 5] {
            let (saved, text) = decide(&config, in_config, none, false);
            assert_eq!(saved.granted, None, "{in_config} cannot be denied by command");
            assert!(text.contains("указан в конфиге"), "{text}");
        }
        let stranger = User {
            id: 7,
            first_name: "Пётр".into(),
            username: Some("petr".into()),
            supports_guest_queries: false,
        };
        let (text, keyboard) = access_request(&stranger, none).expect("asked once");
        assert!(text.contains("Пётр (@petr), id 7"), "{text}");
        assert_eq!(keyboard["inline_keyboard"][0][0]["callback_data"], "allow:7");
        assert!(access_request(&stranger, Access { announced: true, ..none }).is_none());
        assert!(access_request(&stranger, denied).is_none());
    }

    #[test]
    fn durations_read_as_hours_and_minutes() {
        assert_eq!(hours_minutes(0), "0 ч 0 мин");
        assert_eq!(hours_minutes(61), "0 ч 2 мин");
        assert_eq!(hours_minutes(3 * 3600 + 5 * 60), "3 ч 5 мин");
    }

    #[test]
    fn the_notice_budget_lifts_after_its_window_and_is_per_user() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut notices = Notices::default();
        for i in 0..NOTICE_BUDGET as u64 {
            assert!(notices.allow(1, t0 + secs(i)), "notice {i} is within the budget");
        }
        // The budget's last notice knows it is the last: until the first leaves the window.
        let (before, last) =
            (t0 + secs(NOTICE_BUDGET as u64 - 2), t0 + secs(NOTICE_BUDGET as u64 - 1));
        assert_eq!(notices.spent_for_minutes(1, before), Some(10), "counted at the last");
        assert_eq!(notices.spent_for_minutes(1, last + secs(5 * 60)), Some(5));
        assert_eq!(notices.spent_for_minutes(2, last), None, "another user's budget");
        assert!(!notices.allow(1, t0 + secs(60)), "the budget is spent");
        assert!(!notices.allow(1, t0 + NOTICE_WINDOW - secs(1)), "still spent");
        // A fresh user is not held to another's budget.
        assert!(notices.allow(2, t0 + secs(60)));
        // The first notice has left the window: room for exactly one more.
        assert!(notices.allow(1, t0 + NOTICE_WINDOW));
        assert!(!notices.allow(1, t0 + NOTICE_WINDOW));
        // Refused tries do not count: a whole window after the last notice, a full budget.
        let later = t0 + NOTICE_WINDOW * 2;
        for i in 0..NOTICE_BUDGET as u64 {
            assert!(notices.allow(1, later + secs(i)), "notice {i} after the window");
        }
        assert!(!notices.allow(1, later + secs(10)));
    }

    #[test]
    fn users_whose_notices_are_old_are_forgotten() {
        let t0 = Instant::now();
        let mut notices = Notices::default();
        for user in 0..1000 {
            assert!(notices.allow(user, t0));
        }
        assert_eq!(notices.users(), 1000);
        // A window later one more user writes: the thousand are forgotten.
        assert!(notices.allow(5000, t0 + NOTICE_WINDOW));
        assert_eq!(notices.users(), 1);
    }
}
