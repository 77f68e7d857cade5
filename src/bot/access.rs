//! Who may talk to the bot, in effects: the refusal of a stranger and the admins asked
//! about them, an admin's report, and pressed buttons (a style chosen, an admin's answer to
//! an access request).

use super::{Bot, fatal_only};
use crate::clock;
use crate::commands::{self, Press};
use crate::owner;
use crate::report::{Kind, Outcome, Report};
use crate::store::Access;
use crate::telegram::{self, CallbackQuery, Message, User};
use crate::texts;

impl Bot {
    /// A polite refusal that shows the sender's id (a notice: within the chat's notice
    /// budget), and one message to the admins per new user, with buttons to allow or
    /// refuse. The admins are asked whether or not the refusal itself went out, never
    /// waiting out a 429 for it: a stranger's message must not hold up anyone's answer.
    pub(super) fn refuse(
        &mut self,
        chat_id: i64,
        reply_to: Option<i64>,
        user: &User,
    ) -> Result<Outcome, telegram::Error> {
        let text = texts::NOT_ALLOWED.replace("{id}", &user.id.to_string());
        let outcome = self.notice(chat_id, reply_to, &text, None)?;
        let Some((request, keyboard)) = owner::access_request(&self.store, user) else {
            return Ok(outcome);
        };
        for admin in self.config.bot.admins.clone() {
            match self.courtesy(admin, None, &request, Some(&keyboard)) {
                // Told once is enough; if no admin could be told, the next message tries again.
                Ok(Outcome::Replied) => {
                    let access = self.store.access(user.id);
                    self.store.set_access(user.id, Access { announced: true, ..access });
                }
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

    /// An admin's report: as a reply in a private chat; asked in a group, it goes to the
    /// admin's private chat and the group is told so (or the admin is asked to write to
    /// the bot first, if the bot may not write to them yet).
    pub(super) fn report_to_admin(
        &mut self,
        message: &Message,
        text: &str,
    ) -> Result<Outcome, telegram::Error> {
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

    /// Does what commands.rs decided for a pressed button.
    pub(super) fn on_press(
        &mut self,
        query: &CallbackQuery,
        report: &mut Report,
    ) -> Result<(), telegram::Error> {
        let press = commands::decide_press(&self.context(), query);
        if self.store.failed() {
            // Who may press what is not judged on a default.
            report.outcome = Outcome::StateUnreadable;
            return Ok(());
        }
        match press {
            Press::Stale => {
                report.outcome = Outcome::StaleButton;
                self.answer_query(&query.id, texts::STALE_BUTTON)
            }
            Press::Refused => {
                report.kind = Kind::Refused;
                report.outcome = Outcome::ButtonRefused;
                let text = texts::NOT_ALLOWED.replace("{id}", &query.from.id.to_string());
                self.answer_query(&query.id, &text)
            }
            Press::Style { chat_id, message_id, editable, style } => {
                self.store.set_style(chat_id, &style.id, clock::unix_now());
                self.answer_query(&query.id, &texts::STYLE_TOAST.replace("{title}", &style.title))?;
                if editable {
                    let text = texts::CHOOSE_STYLE.replace("{title}", &style.title);
                    let keyboard = commands::style_keyboard(&self.config, &style.id);
                    self.telegram
                        .edit_message_text(chat_id, message_id, &text, false, Some(&keyboard))
                        .or_else(fatal_only)?;
                }
                report.outcome = Outcome::StyleSet(style.id);
                Ok(())
            }
            Press::Access { user_id, allow } => {
                let (access, text) = owner::decide(&self.config, &self.store, user_id, allow);
                self.store.set_access(user_id, access);
                report.outcome = Outcome::AdminDecided(user_id, allow);
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
                Ok(())
            }
        }
    }

    /// Stops the button's spinner with a toast. "Query is too old" is only logged: the
    /// user already saw the spinner stop.
    pub(super) fn answer_query(&mut self, id: &str, text: &str) -> Result<(), telegram::Error> {
        self.telegram.answer_callback_query(id, text).or_else(fatal_only)
    }
}
