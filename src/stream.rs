//! What the user sees while GigaChat works: "typing…", and the answer growing as it streams.
//!
//! Still one thread and blocking I/O: GigaChat's events are read one by one, and between two
//! reads this edits the Telegram message, no more often than the edit interval. The view
//! is safely rendered HTML (unclosed Markdown is closed by the renderer); past 4096
//! characters the current message is finished and the answer goes on in a new one.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::render;
use crate::telegram::{self, ErrorKind, OutgoingMessage, Telegram};

/// A message of the answer already on screen, and the text it shows.
struct Shown {
    id: i64,
    text: String,
}

pub struct LiveAnswer {
    /// A handle of its own (clones share the agent's connections).
    telegram: Telegram,
    chat_id: i64,
    reply_to: i64,
    interval: Duration,
    /// The Markdown received so far.
    markdown: String,
    shown: Vec<Shown>,
    last_edit: Option<Instant>,
    /// After a 429, no edits until then.
    quiet_until: Option<Instant>,
    /// Telegram refused our HTML once: the live view goes on in plain text.
    plain: bool,
    /// Why the view stopped: a fatal error, or Telegram refusing the messages.
    failed: Option<telegram::Error>,
}

impl LiveAnswer {
    /// A view with nothing on screen yet; the first words will reply to `reply_to`.
    pub fn new(telegram: Telegram, chat_id: i64, reply_to: i64, interval: Duration) -> Self {
        LiveAnswer {
            telegram,
            chat_id,
            reply_to,
            interval,
            markdown: String::new(),
            shown: Vec::new(),
            last_edit: None,
            quiet_until: None,
            plain: false,
            failed: None,
        }
    }

    /// The Markdown received so far.
    pub fn received(&self) -> &str {
        &self.markdown
    }

    /// True once some of the answer is on screen.
    pub fn started(live: &LiveAnswer) -> bool {
        !live.shown.is_empty()
    }

    /// Takes the next piece of the answer and updates the screen if it is time to.
    pub fn push(&mut self, piece: &str) {
        self.markdown.push_str(piece);
        if self.failed.is_some() {
            return;
        }
        let chunks = self.chunks(&self.markdown);
        for (i, chunk) in chunks.into_iter().enumerate() {
            if i >= self.shown.len() {
                // A new message is due: the first words, or the answer overflowed 4096.
                self.send(chunk);
            } else if self.shown[i].text != chunk && self.may_edit_now() {
                self.edit_once(i, chunk);
            }
            if self.failed.is_some() {
                return;
            }
        }
    }

    /// Shows the final answer (`markdown`, the full rendered text) in place of the live
    /// view, waiting out the edit interval first. Returns whether all of it is on screen.
    pub fn finish(mut self, markdown: &str) -> (Result<bool, telegram::Error>, String) {
        if let Some(err) = self.failed.take() {
            return self.failure(err);
        }
        self.plain = false;
        let chunks = self.chunks(markdown);
        if chunks.is_empty() {
            return (Ok(false), "the answer was empty".into());
        }
        let count = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            if i >= self.shown.len() {
                self.send(chunk);
            } else if self.shown[i].text != chunk {
                self.wait_for_edit_slot();
                self.edit_final(i, chunk);
            }
            if let Some(err) = self.failed.take() {
                return self.failure(err);
            }
        }
        // The live view had more messages than the final answer needs (rare: Markdown
        // that renders shorter once complete).
        for extra in self.shown.drain(count..).collect::<Vec<_>>() {
            if let Err(err) = self.telegram.delete_message(self.chat_id, extra.id) {
                log::info!("{err}");
            }
        }
        (Ok(true), format!("streamed in {count} message(s)"))
    }

    /// The fatal error, if the live view hit one (the caller stops the update).
    pub fn take_fatal(&mut self) -> Option<telegram::Error> {
        match &self.failed {
            Some(err) if matches!(err.kind, ErrorKind::Unauthorized | ErrorKind::Stopped) => {
                self.failed.take()
            }
            _ => None,
        }
    }

    fn failure(self, err: telegram::Error) -> (Result<bool, telegram::Error>, String) {
        match err.kind {
            ErrorKind::Unauthorized | ErrorKind::Stopped => (Err(err), String::new()),
            _ => (Ok(false), format!("answer not fully sent: {err}")),
        }
    }

    /// The answer as message texts: HTML chunks, or their plain text after a refusal.
    fn chunks(&self, markdown: &str) -> Vec<String> {
        let html = render::markdown_to_html(markdown);
        let chunks = render::split_html(&html, render::MESSAGE_LIMIT);
        if self.plain {
            chunks.iter().map(|c| render::visible_text(c)).collect()
        } else {
            chunks
        }
    }

    fn may_edit_now(&self) -> bool {
        let now = Instant::now();
        self.quiet_until.is_none_or(|t| now >= t)
            && self.last_edit.is_none_or(|t| now >= t + self.interval)
    }

    /// Sleeps until an edit is allowed: the interval since the last one, and any 429 pause.
    fn wait_for_edit_slot(&self) {
        let now = Instant::now();
        let after_edit = self.last_edit.map_or(now, |t| t + self.interval);
        let ready = after_edit.max(self.quiet_until.unwrap_or(now));
        std::thread::sleep(ready.saturating_duration_since(now));
    }

    /// Sends message `shown.len()` with `text`; the first one replies to the question.
    fn send(&mut self, text: String) {
        let reply_to = self.shown.is_empty().then_some(self.reply_to);
        let send = |text: &str, html: bool| {
            self.telegram.send_message(&OutgoingMessage {
                chat_id: self.chat_id,
                text,
                html,
                reply_to,
                keyboard: None,
            })
        };
        let mut result = send(&text, !self.plain);
        let mut text = text;
        if let Err(err) = &result
            && err.is_bad_html()
        {
            log::warn!(
                "chat {}: {err}; showing the answer as plain text",
                self.chat_id
            );
            text = render::visible_text(&text);
            result = send(&text, false);
            self.plain = true;
        }
        match result {
            Ok(message) => {
                self.shown.push(Shown {
                    id: message.message_id,
                    text,
                });
                self.last_edit = Some(Instant::now());
            }
            Err(err) => self.failed = Some(err),
        }
    }

    /// A live-view edit: one try; a 429 pauses edits, other refusals are only logged.
    fn edit_once(&mut self, i: usize, text: String) {
        let id = self.shown[i].id;
        self.last_edit = Some(Instant::now());
        match self
            .telegram
            .edit_message_text_once(self.chat_id, id, &text, !self.plain)
        {
            Ok(()) => self.shown[i].text = text,
            Err(err) => match err.kind {
                ErrorKind::RetryAfter(secs) => {
                    log::info!("{err}; pausing the live view");
                    self.quiet_until = Some(Instant::now() + Duration::from_secs(secs));
                }
                ErrorKind::Unauthorized => self.failed = Some(err),
                _ if err.is_bad_html() => self.plain = true,
                _ => log::info!("{err}"),
            },
        }
    }

    /// The final edit of message `i`: retried like any call; bad HTML falls back to
    /// plain text, so the user still sees the answer.
    fn edit_final(&mut self, i: usize, text: String) {
        let id = self.shown[i].id;
        let mut result = self
            .telegram
            .edit_message_text(self.chat_id, id, &text, true, None);
        if let Err(err) = &result
            && err.is_bad_html()
        {
            log::warn!(
                "chat {}: {err}; sending the chunk as plain text",
                self.chat_id
            );
            let plain = render::visible_text(&text);
            result = self
                .telegram
                .edit_message_text(self.chat_id, id, &plain, false, None);
        }
        self.last_edit = Some(Instant::now());
        match result {
            Ok(()) => self.shown[i].text = text,
            Err(err) => self.failed = Some(err),
        }
    }
}

/// Keeps "typing…" on screen while GigaChat thinks. The status lasts 5 s: a helper thread
/// sends it at the start, while the bot already asks GigaChat, and again every 4 s for as
/// long as the wait lasts. One thread serves the whole run (a new thread per message cost
/// more CPU than the rest of the bot's own work).
pub struct Typing {
    orders: mpsc::Sender<Option<i64>>,
    stopped: mpsc::Receiver<()>,
    /// Whether the helper is repeating "typing…" now.
    active: bool,
}

impl Typing {
    pub fn new(helper: Telegram) -> Typing {
        let (orders, incoming) = mpsc::channel::<Option<i64>>();
        let (ack, stopped) = mpsc::channel();
        std::thread::spawn(move || {
            // `Some(chat)`: repeat for that chat; `None`: stop and say so. Ends with the bot.
            let mut chat = None;
            loop {
                // Duration::MAX: no timeout, just wait for the next order.
                let wait = chat.map_or(Duration::MAX, |_| Duration::from_secs(4));
                match incoming.recv_timeout(wait) {
                    Ok(next) => {
                        chat = next;
                        if next.is_none() && ack.send(()).is_err() {
                            return;
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
                // After a start or 4 s of waiting; after a stop `chat` is None.
                if let Some(chat_id) = chat
                    && let Err(err) = helper.send_typing(chat_id)
                {
                    log::debug!("{err}");
                }
            }
        });
        Typing {
            orders,
            stopped,
            active: false,
        }
    }

    /// Has the helper send "typing…" now and repeat it until [`Typing::stop`]. The caller
    /// goes on to ask GigaChat meanwhile.
    pub fn start(&mut self, chat_id: i64) {
        self.active = self.orders.send(Some(chat_id)).is_ok();
    }

    /// Stops and waits for the helper, so no "typing…" comes after the answer. Later calls
    /// do nothing.
    pub fn stop(&mut self) {
        if std::mem::take(&mut self.active) && self.orders.send(None).is_ok() {
            let _ = self.stopped.recv();
        }
    }
}
