//! Everything the bot says goes out here: rendered, split, sent again as plain text if
//! Telegram refuses the HTML, after a group that moved to a supergroup; what is left of a
//! long answer saved as it goes, so a restart sends only the rest.

use std::time::Instant;

use serde_json::Value;

use super::Bot;
use crate::render;
use crate::report::Outcome;
use crate::store::Unsent;
use crate::telegram::{self, ErrorKind, OnFlood, OutgoingMessage};

impl Bot {
    /// Sends messages made by `render`: the first replies to `reply_to`, the last carries
    /// the buttons. Everything the bot says goes out here: answers, error texts, refusals,
    /// notices. While an answer of several messages goes out, what is left of it is saved
    /// after each message, so a restart sends only the rest (a kill between Telegram
    /// taking a message and that save, a few milliseconds, can repeat that one message).
    /// `on_flood` says whether a 429 is waited out or returned at once.
    pub(super) fn deliver(
        &mut self,
        chat_id: i64,
        reply_to: Option<i64>,
        chunks: &[String],
        keyboard: Option<&Value>,
        on_flood: OnFlood,
    ) -> Result<(), telegram::Error> {
        let mut chat_id = chat_id;
        let last = chunks.len().saturating_sub(1);
        for (i, chunk) in chunks.iter().enumerate() {
            let reply_to = reply_to.filter(|_| i == 0);
            let keyboard = keyboard.filter(|_| i == last);
            match self.send_chunk(chat_id, chunk, reply_to, keyboard, on_flood) {
                Ok(sent_to) => chat_id = sent_to,
                Err(err) => {
                    if !err.is_fatal() {
                        // Given up on: the rest is not sent after a restart either.
                        self.store.set_unsent(None);
                    }
                    return Err(err);
                }
            }
            if last > 0 {
                self.note_unsent(chat_id, &chunks[i + 1..]);
            }
        }
        Ok(())
    }

    /// One message; its plain text if Telegram cannot parse the HTML, so the user still gets
    /// it once. Returns the chat it went to: a group that became a supergroup has a new id.
    fn send_chunk(
        &mut self,
        mut chat_id: i64,
        html: &str,
        reply_to: Option<i64>,
        keyboard: Option<&Value>,
        on_flood: OnFlood,
    ) -> Result<i64, telegram::Error> {
        let mut plain: Option<String> = None;
        let mut moved = false;
        loop {
            let message = OutgoingMessage {
                chat_id,
                text: plain.as_deref().unwrap_or(html),
                html: plain.is_none(),
                reply_to,
                keyboard,
            };
            let Err(err) = self.telegram.send_message(&message, on_flood) else {
                return Ok(chat_id);
            };
            if matches!(err.kind, ErrorKind::Lost(_)) {
                log::warn!(
                    "chat {chat_id}: {err}; it has most likely arrived, so it is not sent again"
                );
                return Ok(chat_id);
            }
            match err.migrated_to() {
                Some(new_id) if !moved => {
                    log::info!("chat {chat_id} became supergroup {new_id}; moving its state");
                    self.store.move_chat(chat_id, new_id);
                    chat_id = new_id;
                    moved = true;
                }
                _ if err.is_bad_html() && plain.is_none() => {
                    log::warn!("chat {chat_id}: {err}; sending the chunk as plain text");
                    plain = Some(render::visible_text(html));
                }
                _ => return Err(err),
            }
        }
    }

    /// Saves what is left of the answer going out, with its update counted as handled: from
    /// now on a restart sends the rest instead of answering the update again.
    fn note_unsent(&mut self, chat_id: i64, rest: &[String]) {
        if rest.is_empty() {
            self.store.set_unsent(None); // committed with the update
            return;
        }
        self.note_sent_so_far(chat_id, rest);
    }

    /// Commits the update as handled now, with `rest` (maybe nothing) still to send: after
    /// a message that must not go out twice (a photo), a restart sends only the rest.
    pub(super) fn note_sent_so_far(&mut self, chat_id: i64, rest: &[String]) {
        let unsent = Unsent { chat_id, chunks: rest.to_vec() };
        self.store.set_unsent(Some(&unsent).filter(|u| !u.chunks.is_empty()));
        if self.update_id > 0 {
            self.store.set_last_update_id(self.update_id);
        }
        self.commit();
        self.store.begin();
    }

    /// At start-up: sends the rest of an answer that a stop or a crash cut short.
    pub fn send_unsent(&mut self) -> Result<(), telegram::Error> {
        self.store.begin();
        let Some(unsent) = self.store.unsent() else {
            self.store.rollback();
            return Ok(());
        };
        log::info!(
            "chat {}: sending the last {} message(s) of an answer cut short by the restart",
            unsent.chat_id,
            unsent.chunks.len()
        );
        match self.deliver(unsent.chat_id, None, &unsent.chunks, None, OnFlood::Wait) {
            Err(err) if err.is_fatal() => {
                self.store.rollback();
                return Err(err);
            }
            Err(err) => {
                log::warn!("chat {}: {err}; the rest of that answer is dropped", unsent.chat_id)
            }
            Ok(()) => {}
        }
        self.store.set_unsent(None);
        self.commit();
        Ok(())
    }

    /// Sends a notice — "text only", "too long", "write a question", "not allowed", "over
    /// the limit" — in reply to a message of `user_id` (the sender as access counts them),
    /// within the user's notice budget and without waiting out a 429: a notice is only a
    /// courtesy, and waiting for it would hold up everyone else's answers.
    pub(super) fn notice(
        &mut self,
        chat_id: i64,
        reply_to: i64,
        user_id: i64,
        text: &str,
    ) -> Result<Outcome, telegram::Error> {
        if !self.notices.allow(user_id, Instant::now()) {
            return Ok(Outcome::NoticeSuppressed);
        }
        let chunks = render::plain_chunks(text);
        match self.deliver(chat_id, Some(reply_to), &chunks, None, OnFlood::GiveUp) {
            Ok(()) => Ok(Outcome::Replied),
            Err(err) if matches!(err.kind, ErrorKind::RetryAfter(_)) => {
                log::info!("chat {chat_id}: {err}; the notice is dropped, not waited for");
                Ok(Outcome::NoticeDropped(err.to_string()))
            }
            Err(err) => Err(err),
        }
    }

    /// Sends one of our own texts, optionally as a reply and with buttons.
    pub(super) fn send_plain(
        &mut self,
        chat_id: i64,
        reply_to: Option<i64>,
        text: &str,
        keyboard: Option<&Value>,
    ) -> Result<Outcome, telegram::Error> {
        let chunks = render::plain_chunks(text);
        self.deliver(chat_id, reply_to, &chunks, keyboard, OnFlood::Wait)?;
        Ok(Outcome::Replied)
    }
}

/// Passes on a fatal error; logs any other (the update goes on without that call).
pub(super) fn fatal_only(err: telegram::Error) -> Result<(), telegram::Error> {
    if err.is_fatal() {
        return Err(err);
    }
    log::info!("{err}");
    Ok(())
}
