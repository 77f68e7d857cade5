//! What the user sees while GigaChat works: "typing…", and in a private chat the answer
//! growing in a draft (`sendMessageDraft`), Telegram's own preview of a message being
//! written, "Thinking…" until GigaChat's first word, with a Stop button that stops the
//! stream: it shows for 30 s and goes when the message itself is sent. Only a preview:
//! nothing is saved for it and the answer goes out through the bot's one delivery path at
//! the end, so a bot killed mid-stream leaves no half answer behind. The loop never waits
//! for a draft: a piece that arrives before the next one is due is only collected.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::render::{self, Chunk};
use crate::telegram::{ErrorKind, Markup, Telegram};
use crate::texts;

/// The answer as it streams, previewed as a draft in a private chat.
pub struct Draft {
    /// A handle of its own (clones share the agent's connections).
    telegram: Telegram,
    chat_id: i64,
    /// Telegram animates changes between drafts with the same id: one per answer.
    draft_id: i64,
    interval: Duration,
    /// The Markdown received so far.
    markdown: String,
    /// The text of the last draft sent, not to send the same one twice.
    shown: String,
    /// No draft before this: the interval after the last one, or a 429's `retry_after`.
    next: Instant,
    /// The end of a 429's `retry_after`, which outlasts this answer if need be.
    paused_until: Option<Instant>,
    /// Drafts are rich messages (Bot API 10.1) until Telegram refuses one.
    rich: bool,
    /// Telegram refused our HTML once: the drafts go on in plain text.
    plain: bool,
    /// Telegram refused drafts for this answer; the answer itself still goes out.
    off: bool,
    /// The loop's getUpdates offset: looking for a Stop there confirms no update.
    offset: i64,
    /// When to look for a Stop next: a second after the first draft (and its Stop button) is
    /// out, so a short answer costs no look.
    next_peek: Option<Instant>,
}

/// How often a streaming answer looks for a pressed Stop: each look is a getUpdates.
const PEEK_INTERVAL: Duration = Duration::from_secs(1);

impl Draft {
    /// A preview in `chat_id` of the answer to `reply_to`: the first piece shows at once (or once
    /// `paused_until`, from an earlier 429, has passed), later ones at most every `interval`;
    /// rich drafts if `rich`. A Stop is looked for at the loop's getUpdates `offset`.
    pub fn new(
        telegram: Telegram,
        (chat_id, reply_to): (i64, i64),
        interval: Duration,
        paused_until: Option<Instant>,
        rich: bool,
        offset: i64,
    ) -> Draft {
        Draft {
            telegram,
            chat_id,
            draft_id: reply_to.max(1),
            interval,
            markdown: String::new(),
            shown: String::new(),
            next: paused_until.unwrap_or_else(Instant::now),
            paused_until,
            rich,
            plain: false,
            off: false,
            offset,
            next_peek: None,
        }
    }

    /// The id Telegram knows this answer's drafts by (and their Stop button).
    pub fn id(&self) -> i64 {
        self.draft_id
    }

    /// When the stream has ended: the Markdown received, and until when Telegram asked for
    /// no drafts in this chat, if that is still to come.
    pub fn finish(self) -> (String, Option<Instant>) {
        let paused = self.paused_until.filter(|t| *t > Instant::now());
        (self.markdown, paused)
    }

    /// Takes the next piece of the answer; sends a draft if one is due. False when the user
    /// pressed Stop.
    pub fn push(&mut self, piece: &str) -> bool {
        self.markdown.push_str(piece);
        if !self.off && Instant::now() >= self.next {
            self.show();
        }
        !self.stop_pressed()
    }

    /// Sends the answer so far as a draft: its last message's worth, as it will show. Only its
    /// last paragraphs are rendered ([`DRAFT_SOURCE_BYTES`]): a draft every half second of a
    /// whole long answer would cost time growing with its length squared.
    fn show(&mut self) {
        let Some(last) = render::answer_chunks(tail(&self.markdown), self.rich).pop() else {
            return; // nothing visible yet (say, only "**")
        };
        let (text, markup) = match last {
            Chunk::Rich(part) => (render::rich_html(&part), Markup::Rich),
            Chunk::Html(html) if self.plain => (render::visible_text(&html), Markup::Plain),
            Chunk::Html(html) => (html, Markup::Html),
        };
        if text != self.shown && self.send(&text, markup) {
            self.show();
        }
    }

    /// Sends one draft; true when Telegram refused its form and a plainer one is to be tried.
    fn send(&mut self, text: &str, markup: Markup) -> bool {
        let sent = self.telegram.send_message_draft(self.chat_id, self.draft_id, text, markup);
        self.next = Instant::now() + self.interval;
        let Err(err) = sent else {
            self.shown = text.to_string();
            self.next_peek.get_or_insert(Instant::now() + PEEK_INTERVAL);
            return false;
        };
        let chat = self.chat_id;
        match err.kind {
            ErrorKind::RetryAfter(secs) => {
                log::info!("chat {chat}: {err}; no drafts there until then");
                self.next = Instant::now() + Duration::from_secs(secs);
                self.paused_until = Some(self.next);
            }
            ErrorKind::Rejected { .. } if markup == Markup::Rich => {
                log::warn!("chat {chat}: {err}; the drafts go on without rich messages");
                self.rich = false;
                return true;
            }
            _ if err.is_bad_html() && markup == Markup::Html => {
                log::warn!("chat {chat}: {err}; the drafts go on in plain text");
                self.plain = true;
                return true;
            }
            _ => {
                log::info!("chat {chat}: {err}; no more drafts for this answer");
                self.off = true;
            }
        }
        false
    }

    /// Whether the user pressed Stop on this draft, looked for at most every [`PEEK_INTERVAL`]
    /// once a draft is out. The loop handles every update it sees, that Stop too, afterwards.
    fn stop_pressed(&mut self) -> bool {
        let now = Instant::now();
        if self.next_peek.is_none_or(|at| now < at) {
            return false;
        }
        self.next_peek = Some(now + PEEK_INTERVAL);
        let (chat, draft) = (self.chat_id, self.draft_id);
        let stops = self.telegram.peek_stops(self.offset);
        let stops = stops.inspect_err(|err| log::debug!("chat {chat}: looking for a Stop: {err}"));
        stops.is_ok_and(|stops| stops.iter().any(|s| s.chat.id == chat && s.draft_id == draft))
    }
}

/// How much of the end of a streamed answer a draft renders: more than a message's worth
/// (4096 characters, up to 16 KB of UTF-8) even after Markdown's own marks.
const DRAFT_SOURCE_BYTES: usize = 32 * 1024;

/// The end of `markdown` a draft shows: all of it when short, else its last paragraphs
/// within [`DRAFT_SOURCE_BYTES`] (cut at a blank line, so that no paragraph starts midway).
fn tail(markdown: &str) -> &str {
    let Some(from) = markdown.len().checked_sub(DRAFT_SOURCE_BYTES) else {
        return markdown;
    };
    let from = (from..markdown.len()).find(|&i| markdown.is_char_boundary(i)).unwrap_or(from);
    let rest = &markdown[from..];
    rest.find("\n\n").map_or(rest, |at| &rest[at + 2..])
}

/// What the chat shows while GigaChat thinks, until the answer or its first draft.
#[derive(Clone, Copy)]
pub enum Waiting {
    /// "typing…", for a chat: it lasts 5 s.
    Typing(i64),
    /// "Thinking…" in the draft of the answer to come (chat, draft id, rich), with its Stop
    /// button: in a private chat, where the answer will stream.
    Thinking(i64, i64, bool),
}

impl Waiting {
    /// Sends it; a rich "Thinking…" Telegram refuses is sent as the plain one (an empty draft).
    fn show(self, helper: &Telegram) -> Result<(), crate::telegram::Error> {
        match self {
            Waiting::Typing(chat) => helper.send_typing(chat),
            Waiting::Thinking(chat, draft, rich) => {
                let thinking = format!("<tg-thinking>{}</tg-thinking>", texts::THINKING);
                if rich && helper.send_message_draft(chat, draft, &thinking, Markup::Rich).is_ok() {
                    return Ok(());
                }
                helper.send_message_draft(chat, draft, "", Markup::Plain)
            }
        }
    }
}

/// Keeps "typing…" or "Thinking…" on screen while GigaChat thinks: a helper thread sends it at
/// the start, while the bot already asks GigaChat, and again every 4 s for as long as the
/// wait lasts ("typing…" lasts 5 s). One thread serves the whole run (a new thread per
/// message cost more CPU than the rest of the bot's own work).
pub struct Typing {
    orders: mpsc::Sender<Option<Waiting>>,
    stopped: mpsc::Receiver<()>,
    /// Whether the helper is repeating "typing…" now.
    active: bool,
}

impl Typing {
    /// Starts the one helper thread, which sends with its own clone of the client.
    pub fn new(helper: Telegram) -> Typing {
        let (orders, incoming) = mpsc::channel::<Option<Waiting>>();
        let (ack, stopped) = mpsc::channel();
        std::thread::spawn(move || {
            // `Some(waiting)`: repeat it; `None`: stop and say so. Ends with the bot.
            let mut waiting = None;
            loop {
                // Duration::MAX: no timeout, just wait for the next order.
                let wait = waiting.map_or(Duration::MAX, |_| Duration::from_secs(4));
                match incoming.recv_timeout(wait) {
                    Ok(next) => {
                        waiting = next;
                        if next.is_none() && ack.send(()).is_err() {
                            return;
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
                // After a start or 4 s of waiting; after a stop `waiting` is None.
                if let Some(Err(err)) = waiting.map(|w| w.show(&helper)) {
                    log::debug!("{err}");
                }
            }
        });
        Typing { orders, stopped, active: false }
    }

    /// Has the helper show `waiting` at once and until [`Typing::stop`]; the caller asks GigaChat.
    pub fn start(&mut self, waiting: Waiting) {
        self.active = self.orders.send(Some(waiting)).is_ok();
    }

    /// Stops and waits for the helper, so no "typing…" follows the answer; later calls do nothing.
    pub fn stop(&mut self) {
        if std::mem::take(&mut self.active) && self.orders.send(None).is_ok() {
            let _ = self.stopped.recv();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draft_renders_the_end_of_a_long_answer_only() {
        assert_eq!(tail("короткий ответ"), "короткий ответ");
        let long = format!("{}\n\nпоследний абзац", "я".repeat(DRAFT_SOURCE_BYTES));
        assert_eq!(tail(&long), "последний абзац");
        // Without a blank line, the last bytes on a character boundary.
        let one = "ж".repeat(DRAFT_SOURCE_BYTES);
        let end = tail(&one);
        assert!(end.len() <= DRAFT_SOURCE_BYTES && end.len() >= DRAFT_SOURCE_BYTES - 1);
        assert!(one.ends_with(end));
    }
}
