//! Pressed buttons: a style chosen, an admin's answer to an access request.

use super::{Bot, fatal_only};
use crate::clock;
use crate::commands::{self, Press};
use crate::owner;
use crate::report::{Kind, Outcome, Report};
use crate::telegram::{self, CallbackQuery};
use crate::texts;

impl Bot {
    /// Does what commands.rs decided for a pressed button.
    pub(super) fn on_press(
        &mut self,
        query: &CallbackQuery,
        report: &mut Report,
    ) -> Result<(), telegram::Error> {
        match commands::decide_press(&self.context(), query) {
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
                    match self.send_plain(user_id, None, texts::WELCOME_ALLOWED, None) {
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
