//! The owner's tools: who may talk to the bot, limits on use, /stats, transcripts.
//!
//! GigaChat quotas are paid in tokens, so a bot left open on the internet needs these:
//! an allowlist the admins grow by command or button, a per-user rate and daily budget,
//! and numbers that show where the tokens went.

use std::fs::Permissions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

use serde_json::json;

use crate::bot::{self, Bot, Report};
use crate::commands::Command;
use crate::render;
use crate::store::{Access, UserStats};
use crate::telegram::{self, CallbackQuery, Message, OnFlood, User};

impl Bot {
    /// Admins come from `bot.admins` only: no command can make an admin.
    pub(crate) fn is_admin(&self, user_id: i64) -> bool {
        self.config.bot.admins.contains(&user_id)
    }

    /// Admins always; with `allowed_users` set, only those and users granted by command;
    /// otherwise everyone not denied by command.
    pub(crate) fn is_allowed(&self, user_id: i64) -> bool {
        if self.is_admin(user_id) {
            return true;
        }
        let granted = self.store.access(user_id).granted;
        if self.config.bot.allowed_users.is_empty() {
            granted != Some(false)
        } else {
            self.config.bot.allowed_users.contains(&user_id) || granted == Some(true)
        }
    }

    /// A polite refusal that shows the user's id (a notice: within the user's notice
    /// budget), and one message to the admins per new user, with buttons to allow or
    /// refuse. The admins are asked whether or not the refusal itself went out. No GigaChat
    /// call.
    pub(crate) fn refuse(
        &mut self,
        chat_id: i64,
        reply_to: i64,
        user: &User,
    ) -> Result<String, telegram::Error> {
        let text = bot::NOT_ALLOWED.replace("{id}", &user.id.to_string());
        let outcome = self.notice(chat_id, reply_to, user.id, &text)?;
        let access = self.store.access(user.id);
        if access.granted == Some(false) || access.announced {
            return Ok(outcome);
        }
        let who = display_name(user);
        let text = bot::ACCESS_REQUEST
            .replace("{name}", &who)
            .replace("{id}", &user.id.to_string());
        let keyboard = json!({"inline_keyboard": [[
            {"text": bot::ALLOW_BUTTON, "callback_data": format!("allow:{}", user.id)},
            {"text": bot::DENY_BUTTON, "callback_data": format!("deny:{}", user.id)},
        ]]});
        let chunks = render::plain_chunks(&text);
        for admin in self.config.bot.admins.clone() {
            match self.deliver(admin, None, &chunks, Some(&keyboard), OnFlood::Wait) {
                // Told once is enough; if no admin could be told, the next message tries again.
                Ok(()) => self.store.set_access(
                    user.id,
                    Access {
                        announced: true,
                        ..access
                    },
                ),
                Err(err) if err.is_fatal() => return Err(err),
                Err(err) => log::warn!(
                    "cannot tell admin {admin} about user {}: {err}; an admin must write /start to the bot first",
                    user.id
                ),
            }
        }
        Ok(outcome)
    }

    /// Checks the per-minute rate and the daily token budget before a GigaChat call;
    /// Some(reply) says when the user may write again. Admins are exempt. Both come from
    /// the user's row in the store, so they hold across restarts and take no memory.
    pub(crate) fn over_limit(&mut self, user_id: i64) -> Option<String> {
        let per_minute = self.config.bot.requests_per_minute as usize;
        let budget = self.config.bot.daily_tokens_per_user;
        if self.is_admin(user_id) || (per_minute == 0 && budget == 0) {
            return None;
        }
        let now = bot::unix_now();
        let (today, to_midnight) = local_day(now);
        let user = self.store.user(user_id);
        limit_reply(per_minute, budget, &user, now, (&today, to_midnight))
    }

    /// Counts a GigaChat request of `user` (for the rate limit, the budget and /stats).
    pub(crate) fn count_request(&mut self, user: Option<&User>, tokens: u64) {
        self.store.add_tokens(tokens);
        let Some(user) = user else { return };
        let (today, _) = local_day(bot::unix_now());
        let mut stats = self.store.user(user.id);
        stats.name = display_name(user);
        if stats.day != today {
            stats.day = today;
            stats.requests_today = 0;
            stats.tokens_today = 0;
        }
        stats.requests_today += 1;
        stats.tokens_today += tokens;
        stats.requests += 1;
        stats.tokens += tokens;
        let now = bot::unix_now();
        stats.last_active = now;
        // The last requests, as many as the per-minute limit can need.
        let mut recent = within_a_minute(&stats.recent, now);
        recent.push(now);
        let keep = self.config.bot.requests_per_minute as usize;
        stats.recent = recent.split_off(recent.len().saturating_sub(keep));
        self.store.put_user(user.id, &stats);
    }

    /// `/allow`, `/deny`, `/users`, `/stats` from an admin. None for anything else, so a
    /// non-admin gets the same answer as for an unknown command.
    pub(crate) fn on_admin_command(
        &mut self,
        message: &Message,
        command: &Command,
    ) -> Option<Result<String, telegram::Error>> {
        // An anonymous admin writes as the group: no admin of ours can be told from it.
        let from = message.sender()?;
        if !self.is_admin(from.id) {
            return None;
        }
        let text = match command.name.as_str() {
            "allow" | "deny" => match command.args.trim().parse::<i64>() {
                Ok(user_id) => self.decide(user_id, command.name == "allow"),
                Err(_) => bot::ADMIN_USAGE.replace("{cmd}", &command.name),
            },
            "users" => self.users_text(),
            "stats" => self.stats_text(),
            _ => return None,
        };
        if message.chat.kind == "private" {
            return Some(self.reply(message.chat.id, message.message_id, &text));
        }
        // Names, ids and usage are for the admin's eyes: in a group, only a pointer there.
        Some(self.report_privately(message, from.id, &text))
    }

    /// Sends an admin's report to the admin's private chat and says so in the group; if the
    /// bot may not write to the admin yet, asks them to write to it first.
    fn report_privately(
        &mut self,
        message: &Message,
        admin: i64,
        text: &str,
    ) -> Result<String, telegram::Error> {
        let pointer = match self.send_plain(admin, None, text, None) {
            Ok(_) => bot::ADMIN_ANSWERED_PRIVATELY,
            Err(err) if err.is_fatal() => return Err(err),
            Err(err) => {
                log::info!("admin {admin}: {err}; asked to write to the bot first");
                bot::ADMIN_ASK_PRIVATELY
            }
        };
        self.reply(message.chat.id, message.message_id, pointer)?;
        Ok("answered the admin privately".into())
    }

    /// Allows or refuses a user by command or button; the reply for the admin.
    fn decide(&mut self, user_id: i64, allow: bool) -> String {
        let id = user_id.to_string();
        let mut access = Access {
            announced: true,
            ..self.store.access(user_id)
        };
        let text = if allow {
            access.granted = Some(true);
            bot::ALLOWED.replace("{id}", &id)
        } else if self.config.bot.admins.contains(&user_id)
            || self.config.bot.allowed_users.contains(&user_id)
        {
            bot::IN_CONFIG.replace("{id}", &id)
        } else {
            access.granted = Some(false);
            bot::DENIED.replace("{id}", &id)
        };
        self.store.set_access(user_id, access);
        text
    }

    /// A press on "Разрешить" / "Отклонить" in an admin's access request.
    pub(crate) fn on_access_button(
        &mut self,
        query: &CallbackQuery,
        data: &str,
        report: &mut Report,
    ) -> Result<(), telegram::Error> {
        let (action, id) = data.split_once(':').unwrap_or((data, ""));
        let (Ok(user_id), true) = (id.parse::<i64>(), self.is_admin(query.from.id)) else {
            report.outcome = format!("stale button {data:?}");
            return self.answer_query(&query.id, bot::STALE_BUTTON);
        };
        let allow = action == "allow";
        let text = self.decide(user_id, allow);
        report.outcome = format!("admin {action} {user_id}");
        self.answer_query(&query.id, &text)?;
        if let Some(message) = query.message.as_ref().filter(|m| m.date != 0) {
            let edited = format!("{}\n\n{text}", message.text.as_deref().unwrap_or(""));
            if let Err(err) = self.telegram.edit_message_text(
                message.chat.id,
                message.message_id,
                &edited,
                false,
                None,
            ) {
                bot::fatal_only(err)?;
            }
        }
        if allow {
            // The user's private chat has the user's id; tell them they may write now.
            match self.send_plain(user_id, None, bot::WELCOME_ALLOWED, None) {
                Ok(_) => log::info!("user {user_id} told about access"),
                Err(err) if err.is_fatal() => return Err(err),
                Err(err) => log::info!("user {user_id} not told about access: {err}"),
            }
        }
        Ok(())
    }

    fn users_text(&self) -> String {
        let list = |ids: &mut dyn Iterator<Item = &i64>| {
            let ids: Vec<String> = ids.map(i64::to_string).collect();
            if ids.is_empty() {
                "—".to_string()
            } else {
                ids.join(", ")
            }
        };
        let bot = &self.config.bot;
        let mode = if bot.allowed_users.is_empty() {
            "открыт для всех, кроме отклонённых"
        } else {
            "только для разрешённых"
        };
        format!(
            "Доступ: {mode}.\nАдминистраторы (конфиг): {}\nРазрешены в конфиге: {}\nРазрешены командой: {}\nОтклонены командой: {}",
            list(&mut bot.admins.iter()),
            list(&mut bot.allowed_users.iter()),
            list(&mut self.store.decided(true).iter()),
            list(&mut self.store.decided(false).iter()),
        )
    }

    /// The /stats text: uptime, answers, failures, tokens, chats, users, the most active.
    pub(crate) fn stats_text(&self) -> String {
        let (today, _) = local_day(bot::unix_now());
        let counters = self.store.counters();
        let failures = if counters.failures.is_empty() {
            "нет".to_string()
        } else {
            counters
                .failures
                .iter()
                .map(|(kind, n)| format!("{kind}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let active = self.store.busiest(&today, 5);
        let tokens_today = self.store.tokens_on(&today);
        let mut text = format!(
            "Статистика\nРаботает: {}\nОтветов: {}\nОшибки: {failures}\nТокенов сегодня: {tokens_today}, всего: {}\nЧатов: {}, пользователей: {}",
            hours_minutes(self.started.elapsed().as_secs()),
            counters.answers,
            counters.tokens,
            self.store.chat_count(),
            self.store.user_count(),
        );
        if !active.is_empty() {
            text.push_str("\nСамые активные сегодня:");
            for (i, (id, user)) in active.iter().enumerate() {
                text.push_str(&format!(
                    "\n{}. {} ({id}) — вопросов: {}, токенов: {}",
                    i + 1,
                    user.name,
                    user.requests_today,
                    user.tokens_today
                ));
            }
        }
        text
    }

    /// Appends one exchange to `<transcript_dir>/<chat_id>.jsonl` (off unless configured).
    pub(crate) fn write_transcript(
        &self,
        chat_id: i64,
        user_id: i64,
        style: &str,
        question: &str,
        answer: &str,
        tokens: u64,
    ) {
        let Some(dir) = &self.config.bot.transcript_dir else {
            return;
        };
        let line = json!({
            "time": crate::logger::format_utc(bot::unix_now()),
            "chat_id": chat_id,
            "user_id": user_id,
            "style": style,
            "question": question,
            "answer": answer,
            "tokens": tokens,
        });
        let path = dir.join(format!("{chat_id}.jsonl"));
        // What people wrote: the folder and the files are the owner's alone, whatever the umask.
        let written = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .and_then(|()| std::fs::set_permissions(dir, Permissions::from_mode(0o700)))
            .and_then(|()| {
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(&path)?;
                file.set_permissions(Permissions::from_mode(0o600))?;
                // One write per line, so a crash leaves at most a torn last line.
                file.write_all(format!("{line}\n").as_bytes())
            });
        if let Err(err) = written {
            log::error!("cannot append to the transcript {}: {err}", path.display());
        }
    }
}

/// What a user over a limit is told, if they are: `per_minute` requests in the last 60 s,
/// or `budget` tokens spent on `today` (0 turns a limit off). A plain decision over the
/// user's row and the time, so that tests can set the clock.
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
        return Some(
            bot::RATE_LIMIT
                .replace("{n}", &per_minute.to_string())
                .replace("{secs}", &wait.to_string()),
        );
    }
    let used = if user.day == today {
        user.tokens_today
    } else {
        0
    };
    (budget > 0 && used >= budget).then(|| {
        bot::TOKEN_BUDGET
            .replace("{budget}", &budget.to_string())
            .replace("{wait}", &hours_minutes(to_midnight))
    })
}

/// The request times (Unix seconds) of the last minute; a clock set back makes later
/// entries count as gone, never as a minute-long block.
fn within_a_minute(times: &[u64], now: u64) -> Vec<u64> {
    times
        .iter()
        .copied()
        .filter(|&t| t <= now && now - t < 60)
        .collect()
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
    format!("{} ч {} мин", minutes / 60, minutes % 60)
}

/// Today's local date ("2026-11-26") and the seconds left until local midnight, when
/// daily budgets start again.
pub fn local_day(unix_secs: u64) -> (String, u64) {
    let time = unix_secs as libc::time_t;
    // SAFETY: localtime_r only writes the tm we own; a zeroed tm is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&time, &mut tm).is_null() };
    if !ok {
        let day = crate::logger::format_utc(unix_secs)[..10].to_string();
        return (day, 86_400 - unix_secs % 86_400);
    }
    let day = format!(
        "{:04}-{:02}-{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday
    );
    let since_midnight = (tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec) as u64;
    (day, 86_400u64.saturating_sub(since_midnight))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checked against date(1) in the same time zone, not against our own arithmetic.
    #[test]
    fn local_day_agrees_with_date_on_the_day_and_the_next_midnight() {
        let date = |args: &[&str]| {
            let out = std::process::Command::new("date")
                .args(args)
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        for unix in [1_781_000_000u64, 1_781_049_599, 1_798_761_600] {
            let (day, left) = local_day(unix);
            assert_eq!(day, date(&["-d", &format!("@{unix}"), "+%F"]), "{unix}");
            let midnight: u64 = date(&["-d", &format!("{day} + 1 day"), "+%s"])
                .parse()
                .unwrap();
            assert_eq!(left, midnight - unix, "{unix}");
        }
    }

    #[test]
    fn the_per_minute_limit_lifts_when_the_oldest_request_is_a_minute_old() {
        let now = 1_781_000_000;
        let user = UserStats {
            recent: vec![now - 59, now - 30],
            ..UserStats::default()
        };
        let day = ("2026-06-09", 3600);
        let reply = limit_reply(2, 0, &user, now, day).expect("two in a minute");
        assert!(
            reply.contains("не больше 2 в минуту") && reply.contains("через 1 с"),
            "{reply}"
        );
        assert_eq!(
            limit_reply(2, 0, &user, now + 1, day),
            None,
            "the oldest left the window"
        );
        assert!(
            limit_reply(3, 0, &user, now, day).is_none(),
            "under the limit"
        );
        assert!(limit_reply(0, 0, &user, now, day).is_none(), "no limit");
        // A clock set back: requests "in the future" do not block anyone.
        assert!(limit_reply(2, 0, &user, now - 3600, day).is_none());
    }

    #[test]
    fn the_daily_budget_starts_again_on_a_new_day() {
        let user = UserStats {
            day: "2026-06-09".into(),
            tokens_today: 500,
            ..UserStats::default()
        };
        let reply = limit_reply(0, 500, &user, 1_781_000_000, ("2026-06-09", 3 * 3600 + 300));
        assert!(reply.is_some_and(|r| r.contains("500 токенов") && r.contains("3 ч 5 мин")));
        assert_eq!(
            limit_reply(0, 500, &user, 1_781_086_400, ("2026-06-10", 86_400)),
            None
        );
        assert_eq!(
            limit_reply(0, 501, &user, 1_781_000_000, ("2026-06-09", 60)),
            None
        );
    }

    #[test]
    fn durations_read_as_hours_and_minutes() {
        assert_eq!(hours_minutes(0), "0 ч 0 мин");
        assert_eq!(hours_minutes(61), "0 ч 2 мин");
        assert_eq!(hours_minutes(3 * 3600 + 5 * 60), "3 ч 5 мин");
    }
}
