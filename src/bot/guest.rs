//! Guest mode (Bot API 10.0): `@bot вопрос` in a chat the bot is not a member of. The answer
//! goes back once, through answerGuestQuery (never a message into that chat); the sender's
//! access, limits and style are those of their private chat. No chat's memory or state is
//! read or changed, and nothing is keyed by the guest chat's id: Telegram warns that it may
//! equal the id of another chat the bot knows. The reference desk answers here too.

use super::{Bot, Question, conversation, user_text};
use crate::commands::{self, Action};
use crate::desk;
use crate::incoming::{Chat, Message};
use crate::render::{self, Chunk, MESSAGE_LIMIT};
use crate::report::{Outcome, Report};
use crate::telegram::{self, ErrorKind, Markup};
use crate::texts;

/// Room kept in a guest answer of Telegram HTML for the note that it was cut.
const NOTE_ROOM: usize = 200;

impl Bot {
    /// A guest message: decided as a message addressed to the bot in a group of the sender's
    /// own (the mention is how it is addressed, and the sender's private chat gives the style),
    /// answered with the text of what would be sent there.
    pub(super) fn on_guest(&mut self, mut message: Message) -> Result<Report, telegram::Error> {
        let query = message.guest_query_id.take().unwrap_or_default();
        let Some(sender) = message.sender() else {
            let outcome = Outcome::Ignored("guest message without a sender");
            return Ok(Report { outcome, ..Report::default() });
        };
        let mut facts = self.facts(sender.id, Some(sender.id));
        facts.history.clear(); // a guest question goes alone, as memory is the chat's
        message.chat = Chat { id: sender.id, kind: "group".into(), title: None, username: None };
        let decision = commands::decide_message(&self.seen(&facts), &message);
        let style = commands::style_of(&self.seen(&facts)).clone();
        let mut report = Report {
            user_id: sender.id,
            kind: decision.kind,
            style: style.id.clone(),
            outcome: Outcome::StateUnreadable,
            ..Report::default()
        };
        if self.store.failed() {
            return Ok(report); // access and limits are never judged on a default
        }
        let markdown = match decision.action {
            Action::Ask(ask) if ask.voice.is_none() && ask.file.is_none() => {
                self.count_request(Some(&sender));
                let (remembered, mut prompt) = (ask.remembered(), ask.prompt());
                let (gc, store, index) = (&mut self.gigachat, &mut self.store, &self.index);
                let sources = desk::consult(&self.config.knowledge, gc, store, index, &mut prompt);
                let question = Question { remembered, prompt, attachment: None, shown: None };
                let result =
                    self.gigachat.chat(&conversation(&style.prompt, &[], &question), None, None);
                self.count_tokens(
                    Some(&sender),
                    result.as_ref().map(|c| c.usage).unwrap_or_default(),
                );
                match result {
                    Ok(c) if c.finish_reason == "blacklist" => texts::BLACKLIST.to_string(),
                    Ok(c) => format!("{}\n\n{sources}", c.content.trim()).trim().to_string(),
                    Err(err) => user_text(&err, &self.gigachat.model, false),
                }
            }
            Action::Refuse(user) => texts::NOT_ALLOWED.replace("{id}", &user.id.to_string()),
            Action::Reply(text, _) | Action::Notice(text) => text,
            Action::Ignore(why) => return Ok(Report { outcome: Outcome::Ignored(why), ..report }),
            _ => texts::GUEST_QUESTIONS_ONLY.to_string(),
        };
        report.outcome = self.answer_guest(&query, &markdown)?;
        Ok(report)
    }

    /// Sends `markdown` as the guest answer, once. A rich answer refused for its content is
    /// sent as HTML; a query Telegram no longer takes (how long it does is not documented) is
    /// logged and counted, and nothing else is sent.
    fn answer_guest(&mut self, query: &str, markdown: &str) -> Result<Outcome, telegram::Error> {
        let mut rich = self.rich;
        loop {
            let (text, markup) = self.guest_message(markdown, rich);
            let Err(err) = self.telegram.answer_guest_query(query, &text, markup) else {
                return Ok(Outcome::Replied);
            };
            match &err.kind {
                ErrorKind::Rejected { code: 400, description, .. }
                    if rich && !description.contains("query") =>
                {
                    log::warn!("guest query: {err}; sending the answer as HTML");
                    rich = false;
                }
                ErrorKind::Rejected { .. } | ErrorKind::Lost(_) => {
                    log::warn!("guest query: {err}; not answered");
                    self.store.count_failure("guest query not answered");
                    return Ok(Outcome::NotSent(Box::new(Outcome::Nothing), err.to_string()));
                }
                _ => return Err(err),
            }
        }
    }

    /// The first message's worth of `markdown`, rich or Telegram HTML, with a note and a link
    /// to the private chat if there is more: a guest answer is one message.
    fn guest_message(&self, markdown: &str, rich: bool) -> (String, Markup) {
        let bot = self.me.username.as_deref().unwrap_or_default();
        let note = texts::GUEST_CUT.replace("{bot}", bot);
        let parts = if rich { render::answer_chunks(markdown, true) } else { Vec::new() };
        if let Some(Chunk::Rich(first)) = parts.first() {
            let first = if parts.len() > 1 { format!("{first}\n\n{note}") } else { first.clone() };
            return (render::rich_html(&first), Markup::Rich);
        }
        let html = render::markdown_to_html(markdown);
        let parts = render::split_html(&html, MESSAGE_LIMIT - NOTE_ROOM);
        let text = match &parts[..] {
            [] => render::markdown_to_html(texts::BAD_ANSWER),
            [one] => one.clone(),
            [first, ..] => format!("{first}\n\n{}", render::markdown_to_html(&note)),
        };
        (text, Markup::Html)
    }
}
