//! Everything the bot says goes out here: rendered, split, resent as plain text if Telegram
//! refuses the HTML, after a group that moved to a supergroup; the rest of a long answer
//! recorded once and its progress saved as it goes, so a restart sends only the rest.

use std::time::Instant;

use serde_json::Value;

use super::{Bot, Done, Reply};
use crate::render::{self, Chunk};
use crate::report::Outcome;
use crate::store::Unsent;
use crate::telegram::{self, ErrorKind, Markup, OnFlood, OutgoingMessage};
use crate::texts;

/// The most messages one answer takes (about 160 000 characters); what is past them is
/// not sent, and the last says so. Each message waits for Telegram's flood control in its
/// chat, so this also bounds how long one answer holds the loop.
pub(super) const MAX_ANSWER_MESSAGES: usize = 40;

impl Bot {
    /// Sends `shown` (what a voice note was heard as), then the messages, at most
    /// [`MAX_ANSWER_MESSAGES`]; after a photo, recorded first, so a restart sends only the rest.
    pub(super) fn send_reply(
        &mut self,
        chat_id: i64,
        reply_to: i64,
        shown: Option<&str>,
        reply: Reply,
    ) -> Done {
        let mut chunks = shown.map(render::plain_chunks).unwrap_or_default();
        chunks.extend(reply.chunks);
        let chunks = capped(chunks);
        if reply.photo {
            // The photo is out: a restart from here sends the rest, never the photo again.
            self.note_sent_so_far(chat_id, &chunks);
        }
        let reply_to = Some(reply_to).filter(|_| !reply.photo);
        let count = chunks.len();
        let sent = self.deliver(chat_id, reply_to, chunks, None, OnFlood::Wait);
        let (done, before) = match reply.outcome {
            Outcome::Answered(_, asked) => {
                self.store.count_answer();
                let sent = usize::from(reply.photo) + count;
                (Outcome::Answered(sent, asked), Outcome::Asked(asked))
            }
            failed => (failed.clone(), failed),
        };
        sent.map(|()| done).or_else(|err| self.not_sent(chat_id, err, before))
    }

    /// A send that failed: a fatal error ends the update; any other is logged and counted,
    /// and the update ends as not sent, after `before`.
    fn not_sent(&mut self, chat_id: i64, err: telegram::Error, before: Outcome) -> Done {
        if err.is_fatal() {
            return Err(err);
        }
        log::warn!("chat {chat_id}: {err}; giving up on this message");
        self.store.count_failure("telegram send");
        Ok(Outcome::NotSent(Box::new(before), err.to_string()))
    }

    /// The outcome of an action, a failed send turned into "not sent" (see `not_sent`).
    pub(super) fn settle(&mut self, chat_id: i64, done: Done) -> Done {
        done.or_else(|err| self.not_sent(chat_id, err, Outcome::Nothing))
    }

    /// Sends messages made by `render` (the first replies to `reply_to`, the last carries the
    /// buttons): answers, error texts, refusals, notices all go out here. Of an answer of
    /// several messages the rest is recorded after the first and the progress after each, so
    /// a restart sends only the rest (a kill between Telegram taking a message and that save
    /// can repeat that one). A rich message Telegram refuses goes as HTML instead, in as many
    /// messages as that takes. `on_flood`: whether a 429 is waited out or returned at once.
    pub(super) fn deliver(
        &mut self,
        mut chat_id: i64,
        reply_to: Option<i64>,
        mut chunks: Vec<Chunk>,
        keyboard: Option<&Value>,
        on_flood: OnFlood,
    ) -> Result<(), telegram::Error> {
        let mut i = 0;
        while let Some(chunk) = chunks.get(i) {
            let reply_to = reply_to.filter(|_| i == 0);
            let keyboard = keyboard.filter(|_| i + 1 == chunks.len());
            let sent = self.send_chunk(chat_id, chunk, reply_to, keyboard, on_flood);
            if sent.as_ref().is_err_and(|err| !err.is_fatal()) && self.recording {
                // Given up on: the rest is not sent after a restart either.
                self.store.clear_unsent();
                self.recording = false;
            }
            let Some(to) = sent? else {
                let part = render::answer_chunks(chunk.text(), false);
                chunks.splice(i..=i, part);
                if self.recording {
                    self.note_sent_so_far(chat_id, &chunks[i..]); // the rest is now other messages
                }
                continue;
            };
            chat_id = to;
            self.store.must_save();
            i += 1;
            self.note_progress(chat_id, &chunks[i..]);
        }
        Ok(())
    }

    /// One message; its plain text if Telegram cannot parse the HTML, so the user still gets
    /// it once. Returns the chat it went to (a group that became a supergroup has a new id),
    /// or None for a rich message refused, which is to go as HTML.
    fn send_chunk(
        &mut self,
        mut chat_id: i64,
        chunk: &Chunk,
        reply_to: Option<i64>,
        keyboard: Option<&Value>,
        on_flood: OnFlood,
    ) -> Result<Option<i64>, telegram::Error> {
        let (mut plain, mut moved): (Option<String>, bool) = (None, false);
        loop {
            let (text, markup) = match (chunk, &plain) {
                (Chunk::Rich(_), _) if !self.rich => return Ok(None),
                (Chunk::Rich(part), _) => (&render::rich_html(part), Markup::Rich),
                (Chunk::Html(html), None) => (html, Markup::Html),
                (Chunk::Html(_), Some(plain)) => (plain, Markup::Plain),
            };
            let message = OutgoingMessage { chat_id, text, markup, reply_to, keyboard };
            let Err(err) = self.telegram.send_message(&message, on_flood) else {
                return Ok(Some(chat_id));
            };
            if matches!(err.kind, ErrorKind::Lost(_)) {
                log::warn!(
                    "chat {chat_id}: {err}; it has most likely arrived, so it is not sent again"
                );
                return Ok(Some(chat_id));
            }
            match (err.migrated_to(), &err.kind, chunk) {
                (Some(new_id), ..) if !moved => {
                    log::info!("chat {chat_id} became supergroup {new_id}; moving its state");
                    self.store.move_chat(chat_id, new_id);
                    chat_id = new_id;
                    moved = true;
                }
                (_, ErrorKind::Rejected { code: code @ (400 | 404), .. }, Chunk::Rich(_)) => {
                    self.rich = *code != 404;
                    let then = if self.rich { "this one goes" } else { "from now on answers go" };
                    log::warn!("chat {chat_id}: {err}; {then} as HTML messages");
                    return Ok(None);
                }
                _ if err.is_bad_html() && plain.is_none() => {
                    log::warn!("chat {chat_id}: {err}; sending the chunk as plain text");
                    plain = Some(render::visible_text(chunk.text()));
                }
                _ => return Err(err),
            }
        }
    }

    /// After a message of an answer went out, with `rest` still to send: the first time the
    /// rest is recorded whole (and the update counts as handled), after that only the
    /// progress, each committed at once. The end of the record is committed with the update.
    fn note_progress(&mut self, chat_id: i64, rest: &[Chunk]) {
        match (self.recording, rest.is_empty()) {
            (false, true) => return, // a single message: nothing to record
            (false, false) => return self.note_sent_so_far(chat_id, rest),
            (true, true) => {
                self.store.clear_unsent();
                self.recording = false;
                return;
            }
            (true, false) => self.store.unsent_progress(),
        }
        self.commit_mid_update();
    }

    /// Records `rest` (maybe nothing) as still to send and commits the update as handled: after
    /// a message that must not go twice (a photo, an answer's first), a restart sends the rest.
    pub(super) fn note_sent_so_far(&mut self, chat_id: i64, rest: &[Chunk]) {
        if rest.is_empty() {
            self.store.clear_unsent();
            self.recording = false;
        } else {
            self.store.set_unsent(&Unsent { chat_id, chunks: rest.to_vec() });
            self.recording = true;
        }
        self.commit_mid_update();
    }

    /// Commits the update so far with its id (handled from here on); goes on in a new transaction.
    fn commit_mid_update(&mut self) {
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
        let (chat_id, n) = (unsent.chat_id, unsent.chunks.len());
        log::info!(
            "chat {chat_id}: sending the last {n} message(s) of an answer cut short by the restart"
        );
        self.recording = true;
        match self.deliver(chat_id, None, unsent.chunks, None, OnFlood::Wait) {
            Err(err) if err.is_fatal() => {
                self.store.rollback();
                return Err(err);
            }
            Err(err) => log::warn!("chat {chat_id}: {err}; the rest of that answer is dropped"),
            Ok(()) => {}
        }
        self.recording = false;
        self.store.clear_unsent();
        self.commit();
        Ok(())
    }

    /// A notice or a command's reply ("text only", "too long", "not allowed", /help, /mode…),
    /// within the chat's notice budget and never waiting out a 429: such a text is only a
    /// courtesy, and waiting for it would hold up everyone else's answers.
    pub(super) fn notice(
        &mut self,
        chat_id: i64,
        reply_to: Option<i64>,
        text: &str,
        keyboard: Option<&Value>,
    ) -> Done {
        let now = Instant::now();
        if !self.notices.allow(chat_id, now) {
            return Ok(Outcome::NoticeSuppressed);
        }
        let Some(minutes) = self.notices.spent_for_minutes(chat_id, now) else {
            return self.courtesy(chat_id, reply_to, text, keyboard);
        };
        let silence = texts::NOTICES_SPENT.replace("{n}", &minutes.to_string());
        self.courtesy(chat_id, reply_to, &format!("{text}\n\n{silence}"), keyboard)
    }

    /// One of our own texts, outside any budget and never waiting out a 429 (dropped instead):
    /// for texts sent once per event (an admin asked about a stranger, a user let in).
    pub(super) fn courtesy(
        &mut self,
        chat_id: i64,
        reply_to: Option<i64>,
        text: &str,
        keyboard: Option<&Value>,
    ) -> Done {
        let chunks = render::plain_chunks(text);
        match self.deliver(chat_id, reply_to, chunks, keyboard, OnFlood::GiveUp) {
            Ok(()) => Ok(Outcome::Replied),
            Err(err) if matches!(err.kind, ErrorKind::RetryAfter(_)) => {
                log::info!("chat {chat_id}: {err}; the notice is dropped, not waited for");
                Ok(Outcome::NoticeDropped(err.to_string()))
            }
            Err(err) => Err(err),
        }
    }
}

/// An answer's messages, at most [`MAX_ANSWER_MESSAGES`]; past them, the last one says so.
fn capped(mut chunks: Vec<Chunk>) -> Vec<Chunk> {
    if chunks.len() > MAX_ANSWER_MESSAGES {
        chunks.truncate(MAX_ANSWER_MESSAGES - 1);
        let note = texts::TOO_MANY_MESSAGES.replace("{n}", &chunks.len().to_string());
        chunks.extend(render::plain_chunks(&note));
    }
    chunks
}

/// Passes on a fatal error; logs any other (the update goes on without that call).
pub(super) fn fatal_only(err: telegram::Error) -> Result<(), telegram::Error> {
    if err.is_fatal() {
        return Err(err);
    }
    log::info!("{err}");
    Ok(())
}
