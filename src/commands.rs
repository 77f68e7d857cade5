//! Commands, buttons, and who a message in a group is meant for.
//!
//! `/start`, `/mode`, `/reset`, `/retry` and the style buttons; the admin commands live in
//! owner.rs. In a group the bot speaks only when spoken to: a mention, a reply to it, or a
//! command for it.

use serde_json::{Value, json};

use crate::bot::{
    Bot, CHOOSE_STYLE, COMMANDS, GROUP_HINT, NO_SUCH_STYLE, NOT_ALLOWED, NOTHING_TO_RETRY,
    RESET_DONE, Report, STALE_BUTTON, START, STYLE_SET, STYLE_TOAST, UNKNOWN_COMMAND, fatal_only,
    unix_now,
};
use crate::config::Style;
use crate::telegram::{self, CallbackQuery, Message};

impl Bot {
    /// Answers a command meant for this bot; admin commands are tried first.
    pub(crate) fn on_command(
        &mut self,
        message: &Message,
        command: &Command,
        report: &mut Report,
    ) -> Result<(), telegram::Error> {
        let chat_id = message.chat.id;
        let reply_to = message.message_id;
        let in_group = message.chat.kind != "private";
        if let Some(outcome) = self.on_admin_command(message, command) {
            report.outcome = outcome?;
            return Ok(());
        }
        report.outcome = match command.name.as_str() {
            "start" | "help" => {
                let style = self.style_of(chat_id);
                let sender = message.sender();
                let name = sender.as_ref().map_or("", |u| u.first_name.as_str());
                let start = START.replace("{name}", name).replace(", !", "!");
                let mut text = format!(
                    "{start}\nСейчас мой стиль: «{}».\n\n{COMMANDS}",
                    style.title
                );
                if in_group {
                    text = format!("{text}\n\n{GROUP_HINT}");
                }
                self.reply(chat_id, reply_to, &text)?
            }
            "mode" => self.on_mode(chat_id, reply_to, command.args.trim())?,
            "reset" | "new" => {
                self.store.forget_chat(chat_id);
                self.reply(chat_id, reply_to, RESET_DONE)?
            }
            "retry" => {
                let last = self.store.last_question(chat_id);
                match last {
                    Some(question) => {
                        let Some(from) = message.sender() else {
                            return Ok(());
                        };
                        return self.ask(&message.chat, reply_to, &from, &question, true, report);
                    }
                    None => self.reply(chat_id, reply_to, NOTHING_TO_RETRY)?,
                }
            }
            _ => {
                let text = format!("{UNKNOWN_COMMAND}\n\n{COMMANDS}");
                self.reply(chat_id, reply_to, &text)?
            }
        };
        Ok(())
    }

    /// `/mode <id>` switches; `/mode` alone or an unknown id shows the buttons.
    fn on_mode(
        &mut self,
        chat_id: i64,
        reply_to: i64,
        arg: &str,
    ) -> Result<String, telegram::Error> {
        let wanted = arg.to_lowercase();
        if !wanted.is_empty()
            && let Some(style) = self.config.styles.iter().find(|s| s.id == wanted).cloned()
        {
            self.set_style(chat_id, &style.id);
            return self.reply(
                chat_id,
                reply_to,
                &STYLE_SET.replace("{title}", &style.title),
            );
        }
        let current = self.style_of(chat_id).clone();
        let text = if wanted.is_empty() {
            CHOOSE_STYLE.replace("{title}", &current.title)
        } else {
            NO_SUCH_STYLE.replace("{id}", arg)
        };
        let keyboard = self.style_keyboard(&current.id);
        self.send_plain(chat_id, Some(reply_to), &text, Some(&keyboard))
    }

    /// One button per style; the current one is marked. `callback_data` is `style:<id>`,
    /// at most 38 bytes since ids are at most 32.
    fn style_keyboard(&self, current: &str) -> Value {
        let rows: Vec<Value> = self
            .config
            .styles
            .iter()
            .map(|style| {
                let mark = if style.id == current { "✓ " } else { "" };
                json!([{"text": format!("{mark}{}", style.title), "callback_data": format!("style:{}", style.id)}])
            })
            .collect();
        json!({ "inline_keyboard": rows })
    }

    /// A pressed button: a style choice, or an admin's access decision.
    pub(crate) fn on_callback(
        &mut self,
        query: CallbackQuery,
        report: &mut Report,
    ) -> Result<(), telegram::Error> {
        let data = query.data.as_deref().unwrap_or("");
        if data.starts_with("allow:") || data.starts_with("deny:") {
            return self.on_access_button(&query, data, report);
        }
        if !self.is_allowed(query.from.id) {
            report.kind = "refused";
            report.outcome = "button from a user without access".into();
            let text = NOT_ALLOWED.replace("{id}", &query.from.id.to_string());
            return self.answer_query(&query.id, &text);
        }
        let style = data
            .strip_prefix("style:")
            .and_then(|id| self.config.styles.iter().find(|s| s.id == id))
            .cloned();
        let (Some(style), Some(message)) = (style, query.message.as_ref()) else {
            report.outcome = format!("stale button {data:?}");
            self.answer_query(&query.id, STALE_BUTTON)?;
            return Ok(());
        };
        let chat_id = message.chat.id;
        self.set_style(chat_id, &style.id);
        self.answer_query(&query.id, &STYLE_TOAST.replace("{title}", &style.title))?;
        // Old messages come as stubs with date 0; they cannot be edited.
        if message.date != 0 {
            let text = CHOOSE_STYLE.replace("{title}", &style.title);
            let keyboard = self.style_keyboard(&style.id);
            let edited = self.telegram.edit_message_text(
                chat_id,
                message.message_id,
                &text,
                false,
                Some(&keyboard),
            );
            if let Err(err) = edited {
                fatal_only(err)?;
            }
        }
        report.outcome = format!("style set to {}", style.id);
        Ok(())
    }

    /// Stops the button's spinner with a toast. "Query is too old" is only logged: the
    /// user already saw the spinner stop.
    pub(crate) fn answer_query(&mut self, id: &str, text: &str) -> Result<(), telegram::Error> {
        match self.telegram.answer_callback_query(id, text) {
            Err(err) => fatal_only(err),
            Ok(()) => Ok(()),
        }
    }

    fn set_style(&mut self, chat_id: i64, id: &str) {
        self.store.set_style(chat_id, id, unix_now());
    }

    /// The chat's style, or the default if the chat has none or its style left the config.
    pub(crate) fn style_of(&self, chat_id: i64) -> &Style {
        let styles = &self.config.styles;
        let chosen = self.store.style(chat_id);
        chosen
            .and_then(|id| styles.iter().find(|s| s.id == id))
            .or_else(|| {
                styles
                    .iter()
                    .find(|s| s.id == self.config.bot.default_style)
            })
            .unwrap_or(&styles[0])
    }

    /// Is `name` this bot's @username (Telegram compares them without case)?
    pub(crate) fn is_my_name(&self, name: &str) -> bool {
        self.me
            .username
            .as_deref()
            .is_some_and(|mine| mine.eq_ignore_ascii_case(name))
    }

    /// Does the message reply to one of this bot's messages?
    pub(crate) fn is_reply_to_me(&self, message: &Message) -> bool {
        message
            .reply_to_message
            .as_ref()
            .and_then(|m| m.from.as_ref())
            .is_some_and(|from| from.id == self.me.id)
    }

    /// In a group: mentioned by @username or by a text mention, or a reply to the bot.
    pub(crate) fn is_addressed(&self, message: &Message) -> bool {
        self.is_reply_to_me(message) || !self.my_mentions(message).is_empty()
    }

    /// Byte ranges of the mentions of this bot in the message text.
    fn my_mentions(&self, message: &Message) -> Vec<(usize, usize)> {
        let text = message.text.as_deref().unwrap_or("");
        message
            .entities
            .iter()
            .filter(|e| match e.kind.as_str() {
                "mention" => telegram::entity_text(text, e)
                    .and_then(|t| t.strip_prefix('@'))
                    .is_some_and(|name| self.is_my_name(name)),
                "text_mention" => e.user.as_ref().is_some_and(|u| u.id == self.me.id),
                _ => false,
            })
            .filter_map(|e| telegram::entity_bytes(text, e))
            .collect()
    }

    /// The question without "@botname" (and the comma or colon right after it).
    pub(crate) fn strip_mentions(&self, message: &Message) -> String {
        let text = message.text.as_deref().unwrap_or("");
        let mut out = String::with_capacity(text.len());
        let mut pos = 0;
        for (start, end) in self.my_mentions(message) {
            if start < pos {
                continue;
            }
            out.push_str(&text[pos..start]);
            pos = end;
            if let Some(rest) = text.get(pos..)
                && rest.starts_with([',', ':'])
            {
                pos += 1;
            }
        }
        out.push_str(&text[pos..]);
        out.split(' ')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
            .trim()
            .to_string()
    }
}

/// Commands answered in groups even without "@botname".
pub(crate) const KNOWN_COMMANDS: [&str; 10] = [
    "start", "help", "mode", "reset", "new", "retry", "allow", "deny", "users", "stats",
];

/// A command: `/name@bot args`.
#[derive(Debug, PartialEq)]
pub struct Command<'a> {
    pub name: String,
    pub bot: Option<&'a str>,
    pub args: &'a str,
}

/// Parses `/name`, `/name@bot` and their arguments. Text like "/etc/hosts" is not a command.
pub fn parse_command(text: &str) -> Option<Command<'_>> {
    let rest = text.strip_prefix('/')?;
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (head, args) = rest.split_at(end);
    let (name, bot) = match head.split_once('@') {
        Some((name, bot)) => (name, Some(bot)),
        None => (head, None),
    };
    let valid = !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    valid.then(|| Command {
        name: name.to_ascii_lowercase(),
        bot,
        args,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        let c = parse_command("/mode@SomeBot fairy").unwrap();
        assert_eq!(
            (c.name.as_str(), c.bot, c.args.trim()),
            ("mode", Some("SomeBot"), "fairy")
        );
        let c = parse_command("/START").unwrap();
        assert_eq!((c.name.as_str(), c.bot, c.args), ("start", None, ""));
        assert_eq!(parse_command("/etc/hosts is a file"), None);
        assert_eq!(parse_command("hello /start"), None);
        assert_eq!(parse_command("/"), None);
        assert_eq!(parse_command("/ пробел"), None);
    }
}
