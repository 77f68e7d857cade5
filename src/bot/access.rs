//! Who may talk to the bot, in effects: the refusal of a stranger and the admins asked
//! about them, an admin's decision and report, and pressed buttons (a style chosen, an
//! admin's answer to an access request).

use super::{Bot, Done, fatal_only};
use crate::commands::{self, Press, Report as AdminReport};
use crate::facts::{Access, Facts};
use crate::incoming::{CallbackQuery, Message, User};
use crate::owner;
use crate::report::{Kind, Outcome, Report};
use crate::telegram;
use crate::texts;

impl Bot {
    /// A polite refusal that shows the sender's id (a notice, within the chat's budget), and
    /// one message with allow/refuse buttons to the admins per new user (`access`: what they
    /// decided so far), sent whether or not the refusal went out and never waiting out a 429
    /// for it: a stranger's message must not hold up anyone's answer.
    pub(super) fn refuse(
        &mut self,
        chat_id: i64,
        reply_to: Option<i64>,
        user: &User,
        access: Access,
    ) -> Done {
        let text = texts::NOT_ALLOWED.replace("{id}", &user.id.to_string());
        let outcome = self.notice(chat_id, reply_to, &text, None)?;
        let Some((request, keyboard)) = owner::access_request(user, access) else {
            return Ok(outcome);
        };
        let announced = Access { announced: true, ..access };
        for admin in self.config.bot.admins.clone() {
            match self.courtesy(admin, None, &request, Some(&keyboard)) {
                // Told once is enough; if no admin could be told, the next message tries again.
                Ok(Outcome::Replied) => self.store.set_access(user.id, announced),
                Ok(_) => {} // dropped on a 429 (logged): the next message tries again
                Err(err) if err.is_fatal() => return Err(err),
                Err(err) => log::warn!(
                    "cannot tell admin {admin} about user {}: {err}; an admin must write /start to the bot first",
                    user.id
                ),
            }
        }
        Ok(outcome)
    }

    /// An admin's `/allow` or `/deny` of `user_id`: saved, and the admin told.
    pub(super) fn grant(&mut self, message: &Message, user_id: i64, allow: bool) -> Done {
        let access = self.store.access(user_id);
        let (access, text) = owner::decide(&self.config, user_id, access, allow);
        self.store.set_access(user_id, access);
        self.tell_admin(message, &text)
    }

    /// An admin's report (/users, /stats, or how to use /allow), from what the state holds now.
    pub(super) fn report_to_admin(
        &mut self,
        message: &Message,
        report: AdminReport,
        facts: &Facts,
    ) -> Done {
        let text = match report {
            AdminReport::Text(text) => text,
            AdminReport::Users => {
                let (granted, denied) = (self.store.decided(true), self.store.decided(false));
                owner::users_text(&self.config, &granted, &denied)
            }
            AdminReport::Stats => {
                let stats = owner::stats_text(&self.store.stats(&facts.today, facts.uptime_secs));
                match &self.balance {
                    Some(balance) => format!("{stats}\n{balance}"),
                    None => stats,
                }
            }
        };
        self.tell_admin(message, &text)
    }

    /// Tells an admin: in a private chat as a reply; from a group (where all would see names
    /// and ids) privately, and the group says so, or asks the admin to write to the bot first.
    fn tell_admin(&mut self, message: &Message, text: &str) -> Done {
        let (chat_id, reply_to) = (message.chat.id, Some(message.message_id));
        if message.chat.kind == "private" {
            return self.notice(chat_id, reply_to, text, None);
        }
        let admin = message.sender().map_or(0, |u| u.id);
        let pointer = match self.courtesy(admin, None, text, None) {
            Ok(_) => texts::ADMIN_ANSWERED_PRIVATELY,
            Err(err) if err.is_fatal() => return Err(err),
            Err(err) => {
                log::info!("admin {admin}: {err}; asked to write to the bot first");
                texts::ADMIN_ASK_PRIVATELY
            }
        };
        self.notice(chat_id, reply_to, pointer, None)?;
        Ok(Outcome::AnsweredPrivately)
    }

    /// A pressed button: the facts read, the decision, and what was done about it.
    pub(super) fn on_press(&mut self, query: CallbackQuery) -> Result<Report, telegram::Error> {
        let chat_id = query.message.as_ref().map_or(query.from.id, |m| m.chat.id);
        let facts = self.facts(chat_id, Some(query.from.id));
        let press = commands::decide_press(&self.seen(&facts), &query);
        let mut report = Report {
            chat_id,
            user_id: query.from.id,
            kind: if matches!(press, Press::Refused) { Kind::Refused } else { Kind::Callback },
            style: commands::style_of(&self.seen(&facts)).id.clone(),
            outcome: Outcome::StateUnreadable,
            text: None,
        };
        // Who may press what is never judged on a default.
        if !self.store.failed() {
            report.outcome = self.pressed(press, &query, &facts)?;
        }
        if let Outcome::StyleSet(id) = &report.outcome {
            report.style = id.clone();
        }
        Ok(report)
    }

    /// Does what commands.rs decided for a pressed button.
    fn pressed(&mut self, press: Press, query: &CallbackQuery, facts: &Facts) -> Done {
        match press {
            Press::Stale => {
                self.answer_query(&query.id, texts::STALE_BUTTON)?;
                Ok(Outcome::StaleButton)
            }
            Press::Refused => {
                let text = texts::NOT_ALLOWED.replace("{id}", &query.from.id.to_string());
                self.answer_query(&query.id, &text)?;
                Ok(Outcome::ButtonRefused)
            }
            Press::Style { chat_id, message_id, editable, style } => {
                self.store.set_style(chat_id, &style.id, facts.now);
                self.answer_query(&query.id, &texts::STYLE_TOAST.replace("{title}", &style.title))?;
                if editable {
                    let text = texts::CHOOSE_STYLE.replace("{title}", &style.title);
                    let keyboard = commands::style_keyboard(&self.config, &style.id);
                    self.telegram
                        .edit_message_text(chat_id, message_id, &text, false, Some(&keyboard))
                        .or_else(fatal_only)?;
                }
                Ok(Outcome::StyleSet(style.id))
            }
            Press::Access { user_id, allow } => self.press_access(query, user_id, allow),
        }
    }

    /// An admin's "Разрешить" / "Отклонить": saved, the admin's message shows the decision,
    /// and an allowed user is told they may write now.
    fn press_access(&mut self, query: &CallbackQuery, user_id: i64, allow: bool) -> Done {
        let access = self.store.access(user_id);
        let (access, text) = owner::decide(&self.config, user_id, access, allow);
        self.store.set_access(user_id, access);
        self.answer_query(&query.id, &text)?;
        if let Some(message) = query.message.as_ref().filter(|m| m.date != 0) {
            let edited = format!("{}\n\n{text}", message.text.as_deref().unwrap_or(""));
            let chat_id = message.chat.id;
            self.telegram
                .edit_message_text(chat_id, message.message_id, &edited, false, None)
                .or_else(fatal_only)?;
        }
        if allow {
            // The user's private chat has the user's id; tell them they may write now.
            match self.courtesy(user_id, None, texts::WELCOME_ALLOWED, None) {
                Ok(_) => log::info!("user {user_id} told about access"),
                Err(err) if err.is_fatal() => return Err(err),
                Err(err) => log::info!("user {user_id} not told about access: {err}"),
            }
        }
        Ok(Outcome::AdminDecided(user_id, allow))
    }

    /// Stops the button's spinner with a toast ("query is too old" only logged: it stopped anyway).
    fn answer_query(&mut self, id: &str, text: &str) -> Result<(), telegram::Error> {
        self.telegram.answer_callback_query(id, text).or_else(fatal_only)
    }
}
