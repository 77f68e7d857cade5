//! The bot: what it does with each update. It asks commands.rs what a message or a button
//! press calls for, then does it: asks GigaChat, saves, and sends. Everything the bot says
//! goes out through one function, [`Bot::deliver`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::clock;
use crate::commands::{self, Action, Ask, Context};
use crate::config::{Config, Style};
use crate::gigachat::{self, ChatMessage, Completion, GigaChat};
use crate::owner::{self, Notices};
use crate::render;
use crate::report::{Kind, Outcome, Report};
use crate::salutespeech::SaluteSpeech;
use crate::store::{Store, Turn};
use crate::stream::{Draft, Typing};
use crate::telegram::{self, Chat, Message, OnFlood, Telegram, Update, User};
use crate::texts;
use crate::transcript;

mod access;
mod deliver;
mod files;
mod memory;
mod pictures;
mod voice;
use deliver::fatal_only;

pub struct Bot {
    config: Config,
    telegram: Telegram,
    gigachat: GigaChat,
    /// Speech to text for voice notes, if a SaluteSpeech key is set.
    salutespeech: Option<SaluteSpeech>,
    /// The log named the missing SaluteSpeech key already (at the first voice note).
    voice_hint_logged: bool,
    store: Store,
    /// Who the bot is on Telegram (from getMe).
    me: User,
    started: Instant,
    /// When silent chats were last forgotten (Unix seconds).
    last_cleanup: u64,
    typing: Typing,
    /// Chats where Telegram answered a draft with 429, and until when.
    draft_pauses: HashMap<i64, Instant>,
    /// The notices each user was sent lately, for the notice budget.
    notices: Notices,
    /// The update being handled (0 between updates), for the record of an answer of
    /// several messages that goes out.
    update_id: i64,
    /// The answer going out is recorded, and its progress saved message by message.
    recording: bool,
    /// The transcript line of the update being handled: written once the update is saved.
    transcript: Option<(i64, serde_json::Value)>,
    /// A commit during the update being handled failed.
    unsaved: Option<anyhow::Error>,
}

/// Why the loop cannot go on with the next update.
pub enum Halt {
    /// Telegram refused the bot token, or the bot is stopping.
    Fatal(telegram::Error),
    /// The state could not be saved (a full disk, say): the update is not confirmed to
    /// Telegram, and is handled again once saving works. Its log line, and why.
    Unsaved(Box<Report>, anyhow::Error),
}

/// The most messages one answer takes (about 160 000 characters); what is past them is
/// not sent, and the last says so. Each message waits for Telegram's flood control in its
/// chat, so this also bounds how long one answer holds the loop.
const MAX_ANSWER_MESSAGES: usize = 40;

/// A step before GigaChat is asked (a file uploaded, a voice note heard): what to go on
/// with, or the sentence that tells the user why not.
enum Step {
    Next(String),
    Stop(String),
}

impl Bot {
    /// The bot, with its clients, its saved state, and who it is on Telegram (from getMe).
    pub fn new(
        config: Config,
        telegram: Telegram,
        gigachat: GigaChat,
        store: Store,
        me: User,
    ) -> Bot {
        let gc = &config.gigachat;
        let speech = SaluteSpeech::new(&config.salutespeech, &gc.ca_certs, gc.timeout_secs);
        Bot {
            typing: Typing::new(telegram.clone()),
            salutespeech: speech,
            voice_hint_logged: false,
            config,
            telegram,
            gigachat,
            store,
            me,
            started: Instant::now(),
            last_cleanup: 0,
            draft_pauses: HashMap::new(),
            notices: Notices::default(),
            update_id: 0,
            recording: false,
            transcript: None,
            unsaved: None,
        }
    }

    /// The Telegram client, for the polling loop.
    pub fn telegram(&self) -> &Telegram {
        &self.telegram
    }

    /// The offset the next getUpdates asks for: the update after the last one handled.
    pub fn next_offset(&self) -> i64 {
        self.store.last_update_id().saturating_add(1)
    }

    /// Where the bot token came from, for the message when Telegram stops taking it.
    pub fn token_origin(&self) -> &str {
        &self.config.telegram.token_origin
    }

    /// Handles one update. Every failure except a fatal one is dealt with here (a reply to
    /// the user, a log line), so one bad update never stops the loop; a message Telegram
    /// refused ends the update's handling and is counted. What the update changed is saved
    /// with its id, and its transcript line written after that.
    pub fn handle_update(&mut self, update: Update) -> Result<Report, Halt> {
        let mut report = Report::default();
        let id = update.update_id;
        self.update_id = id;
        self.recording = false;
        self.store.begin();
        let handled = self.dispatch(update, &mut report);
        self.update_id = 0;
        match handled {
            Err(err) if err.is_fatal() => {
                // Not handled: after the restart it is handled again from the start.
                self.store.rollback();
                self.transcript = None;
                self.unsaved = None;
                return Err(Halt::Fatal(err));
            }
            Err(err) => {
                log::warn!("chat {}: {err}; giving up on this message", report.chat_id);
                self.store.count_failure("telegram send");
                let before = match report.outcome {
                    Outcome::Nothing => String::new(),
                    ref done => done.to_string(),
                };
                report.outcome = Outcome::NotSent(before, err.to_string());
            }
            Ok(()) => {}
        }
        // What the update changed, saved together with its id.
        self.store.set_last_update_id(id);
        self.commit();
        if let Some(err) = self.unsaved.take() {
            self.transcript = None;
            return Err(Halt::Unsaved(Box::new(report), err));
        }
        if let (Some((chat_id, line)), Some(dir)) =
            (self.transcript.take(), &self.config.bot.transcript_dir)
        {
            transcript::append(dir, chat_id, &line);
        }
        Ok(report)
    }

    fn dispatch(&mut self, update: Update, report: &mut Report) -> Result<(), telegram::Error> {
        if let Some(message) = update.message {
            report.chat_id = message.chat.id;
            report.user_id = message.sender().map_or(0, |u| u.id);
            report.style = self.style_of(message.chat.id).id.clone();
            if self.config.log.messages {
                report.text = message.text.clone();
            }
            self.on_message(message, report)
        } else if let Some(query) = update.callback_query {
            report.kind = Kind::Callback;
            report.user_id = query.from.id;
            report.chat_id = query.message.as_ref().map_or(query.from.id, |m| m.chat.id);
            self.on_press(&query, report)?;
            report.style = self.style_of(report.chat_id).id.clone();
            Ok(())
        } else if update.edited_message.is_some() {
            report.outcome = Outcome::Ignored("edited message ignored");
            Ok(())
        } else {
            report.outcome = Outcome::Ignored("update kind not handled");
            Ok(())
        }
    }

    /// What decisions may look at: the config, the state, the time.
    fn context(&self) -> Context<'_> {
        let now = clock::unix_now();
        Context {
            config: &self.config,
            store: &self.store,
            me: &self.me,
            now,
            today: clock::local_day(now),
            uptime_secs: self.started.elapsed().as_secs(),
        }
    }

    /// Does what commands.rs decided for a message. Nothing is done if reading the state
    /// for the decision failed: access and limits are never judged on a default.
    fn on_message(&mut self, message: Message, report: &mut Report) -> Result<(), telegram::Error> {
        let decision = commands::decide_message(&self.context(), &message);
        report.kind = decision.kind;
        if self.store.failed() {
            report.outcome = Outcome::StateUnreadable;
            return Ok(());
        }
        let (chat_id, reply_to) = (message.chat.id, Some(message.message_id));
        let sender = message.sender();
        report.outcome = match decision.action {
            Action::Ignore(why) => Outcome::Ignored(why),
            Action::MoveChat(new_id) => {
                self.store.move_chat(chat_id, new_id);
                Outcome::Moved(new_id)
            }
            Action::Reply(text, keyboard) => {
                self.notice(chat_id, reply_to, &text, keyboard.as_ref())?
            }
            Action::Notice(text) => {
                self.note_no_speech_key(&message);
                self.notice(chat_id, reply_to, &text, None)?
            }
            Action::Refuse(user) => self.refuse(chat_id, reply_to, &user)?,
            Action::Ask(ask) => {
                self.count_request(sender.as_ref());
                return self.handle_message(&message, &ask, report);
            }
            Action::Transcribe { voice, ask } => {
                self.count_request(sender.as_ref());
                return self.transcribe(&message, &voice, ask, report);
            }
            Action::SetStyle { id, reply } => {
                self.store.set_style(chat_id, &id, clock::unix_now());
                self.notice(chat_id, reply_to, &reply, None)?
            }
            Action::Reset => {
                self.store.forget_chat(chat_id);
                self.notice(chat_id, reply_to, texts::RESET_DONE, None)?
            }
            Action::Grant { user_id, allow } => {
                let (access, text) = owner::decide(&self.config, &self.store, user_id, allow);
                self.store.set_access(user_id, access);
                self.report_to_admin(&message, &text)?
            }
            Action::Report(text) => self.report_to_admin(&message, &text)?,
        };
        Ok(())
    }

    /// The lesson's `handle_message`: asks GigaChat in the chat's style, with the chat's
    /// memory, and replies. /retry (`ask.again`) replaces the last exchange in memory;
    /// memory keeps the question as typed, without its context, and of a file only a note.
    fn handle_message(
        &mut self,
        message: &Message,
        ask: &Ask,
        report: &mut Report,
    ) -> Result<(), telegram::Error> {
        let (chat, reply_to, from) = (&message.chat, message.message_id, message.sender());
        let remembered = ask.remembered();
        let (chat_id, question) = (chat.id, remembered.as_str());
        // A photo or document goes to GigaChat's storage first, for this answer only.
        let attachment = match &ask.file {
            Some(file) => match self.upload(chat_id, file, report)? {
                Step::Next(id) => Some(id),
                Step::Stop(text) => {
                    self.notice(chat_id, Some(reply_to), &text, None)?;
                    return Ok(());
                }
            },
            None => None,
        };
        // The conversation: the style's prompt, what the chat remembers, the new question.
        let style = self.style_of(chat_id).clone();
        let history = self.start_exchange(chat_id, question, ask.again);
        if self.store.failed() {
            // The memory could not be read: no answer on half a conversation.
            attachment.inspect(|id| self.forget_upload(id));
            report.outcome = Outcome::StateUnreadable;
            return Ok(());
        }
        let messages = conversation(&style.prompt, &history, ask, attachment.as_deref());

        // Ask GigaChat; meanwhile "typing…", and in a private chat the answer as a draft.
        let started = Instant::now();
        let (result, previewed) = self.ask_gigachat(chat, reply_to, &messages);
        report.gigachat_ms = Some(started.elapsed().as_millis());
        attachment.as_deref().inspect(|id| self.forget_upload(id));
        report.tokens = result.as_ref().map_or(0, |c| c.usage.total_tokens);
        self.count_tokens(from.as_ref(), report.tokens);

        // Reply: the answer, or what went wrong; what a voice note was heard as first.
        let mut chunks = ask.shown.as_deref().map(render::plain_chunks).unwrap_or_default();
        let reply = match result {
            Ok(completion) => self.answer(chat_id, reply_to, &completion, report)?,
            Err(err) => self.failure(&err, &previewed, attachment.is_some(), report),
        };
        chunks.extend(reply.chunks);
        let chunks = capped(chunks);
        if let Some(answer) = &reply.remembered {
            self.remember(chat_id, question, answer, history);
            self.transcript = self.transcript_line(
                chat_id,
                from.as_ref(),
                &style.id,
                question,
                answer,
                report.tokens,
            );
        }
        if reply.photo {
            // The photo is out: a restart from here sends the rest, never the photo again.
            self.note_sent_so_far(chat_id, &chunks);
        }
        let reply_to = Some(reply_to).filter(|_| !reply.photo);
        self.deliver(chat_id, reply_to, &chunks, None, OnFlood::Wait)?;
        if reply.remembered.is_some() {
            self.store.count_answer();
            report.outcome = Outcome::Answered(usize::from(reply.photo) + chunks.len());
        }
        Ok(())
    }

    /// What GigaChat's answer becomes: a picture sent first if it drew one, the text as
    /// messages; a refusal or an answer with nothing to see gets one sentence.
    fn answer(
        &mut self,
        chat_id: i64,
        reply_to: i64,
        completion: &Completion,
        report: &mut Report,
    ) -> Result<Reply, telegram::Error> {
        let sorry = |text: &str| Reply { chunks: render::plain_chunks(text), ..Reply::default() };
        let content = completion.content.trim();
        if completion.finish_reason == "blacklist" {
            report.outcome = Outcome::Blacklisted;
            self.store.count_failure("gigachat blacklist");
            return Ok(sorry(texts::BLACKLIST));
        }
        // A picture goes out first; then the text (what its caption did not hold).
        let (text, remembered, photo) = match self.picture(chat_id, reply_to, content, report)? {
            Some(drawn) => (drawn.text, drawn.remembered, drawn.sent),
            None => (content.to_string(), content.to_string(), false),
        };
        let mut chunks = render::markdown_chunks(&text);
        if chunks.is_empty() && !photo {
            // Empty, or nothing a user would see (say, only a Markdown link definition).
            report.outcome = Outcome::EmptyAnswer(completion.request_id.clone());
            self.store.count_failure("gigachat empty answer");
            return Ok(sorry(texts::BAD_ANSWER));
        }
        if completion.finish_reason == "length" {
            chunks = render::markdown_chunks(&format!("{text}\n\n{}", texts::CUT_SHORT));
        }
        Ok(Reply { chunks, remembered: Some(remembered), photo })
    }

    /// What the user is told when GigaChat failed (logged and counted): what the draft of a
    /// broken stream showed, then why it ended.
    fn failure(
        &mut self,
        err: &gigachat::Error,
        previewed: &str,
        file: bool,
        report: &mut Report,
    ) -> Reply {
        log::warn!("chat {}: {err}", report.chat_id);
        let kind = err.kind();
        report.outcome = Outcome::GigaChatFailed(kind.clone());
        self.store.count_failure(&format!("gigachat {kind}"));
        let mut chunks = match err.failure {
            gigachat::Failure::Interrupted(_) | gigachat::Failure::Timeout(_) => {
                render::markdown_chunks(previewed)
            }
            _ => Vec::new(),
        };
        chunks.extend(render::plain_chunks(&user_text(err, &self.gigachat.model, file)));
        Reply { chunks, ..Reply::default() }
    }

    /// The chat's style, or the default.
    fn style_of(&self, chat_id: i64) -> &Style {
        commands::style_of(&self.context(), chat_id)
    }

    /// Counts a request of `user` (for the rate limit and /stats) before anything is paid
    /// for: a voice note's recognition and a file's upload count as much as a question.
    fn count_request(&mut self, user: Option<&User>) {
        let Some(user) = user else { return };
        let now = clock::unix_now();
        let (today, _) = clock::local_day(now);
        let keep = self.config.bot.requests_per_minute as usize;
        let stats = owner::counted(self.store.user(user.id), user, now, &today, keep);
        self.store.put_user(user.id, &stats);
    }

    /// Adds the tokens GigaChat billed for `user`'s request (for the budget and /stats).
    fn count_tokens(&mut self, user: Option<&User>, tokens: u64) {
        self.store.add_tokens(tokens);
        let Some(user) = user.filter(|_| tokens > 0) else { return };
        let (today, _) = clock::local_day(clock::unix_now());
        let stats = owner::billed(self.store.user(user.id), tokens, &today);
        self.store.put_user(user.id, &stats);
    }

    /// Asks GigaChat. "typing…" shows while it thinks; in a private chat with
    /// `gigachat.stream` (and not `gigachat.images`) the answer then grows in a draft.
    /// Groups get no draft (Telegram allows drafts in private chats only), so there
    /// GigaChat is asked for the whole answer at once. Returns the answer and the text the draft received.
    fn ask_gigachat(
        &mut self,
        chat: &Chat,
        reply_to: i64,
        messages: &[ChatMessage],
    ) -> (Result<Completion, gigachat::Error>, String) {
        let (telegram, gigachat, typing) = (&self.telegram, &mut self.gigachat, &mut self.typing);
        typing.start(chat.id);
        // A drawing answer is asked for whole: its stream would carry progress events.
        let gc = &self.config.gigachat;
        if !(gc.stream && !gc.images && chat.kind == "private") {
            let result = gigachat.chat(messages, None);
            typing.stop();
            return (result, String::new());
        }
        let interval = Duration::from_millis(self.config.bot.draft_interval_ms);
        let paused = self.draft_pauses.remove(&chat.id);
        let mut draft = Draft::new(telegram.clone(), chat.id, reply_to, interval, paused);
        let mut on_text = |piece: &str| {
            // The draft takes over from "typing…".
            typing.stop();
            draft.push(piece);
        };
        let result = gigachat.chat(messages, Some(&mut on_text));
        typing.stop();
        let (received, paused) = draft.finish();
        if let Some(until) = paused {
            self.draft_pauses.insert(chat.id, until);
        }
        (result, received)
    }

    /// The loop's own work between batches: the memory of chats silent for
    /// `bot.forget_after_days` dropped (at most once an hour), and the id of updates that
    /// changed nothing saved now and then. A failure is logged; the next round tries again.
    pub fn housekeeping(&mut self) {
        let now = clock::unix_now();
        self.store.begin();
        if now >= self.last_cleanup + 3600 {
            self.last_cleanup = now;
            let days = self.config.bot.forget_after_days;
            let forgotten = self.store.forget_silent(now, days);
            if forgotten > 0 {
                log::info!("forgot the memory of {forgotten} chat(s) silent for {days} days");
            }
        }
        self.commit();
        self.unsaved = None;
    }

    /// Whether the state can be saved again, after a save failed.
    pub fn probe_state(&mut self) -> anyhow::Result<()> {
        self.store.probe()
    }

    /// After a bug (a caught panic) in update `update_id`: what it changed is dropped, the
    /// update counts as handled (it would only fail again), and the user gets a short
    /// apology, best effort.
    pub fn apologize(&mut self, update_id: i64, origin: Option<(i64, Option<i64>)>) {
        self.store.rollback();
        self.store.begin();
        self.store.count_failure("bug");
        if let Some((chat_id, reply_to)) = origin
            && let Err(err) = self.courtesy(chat_id, reply_to, texts::APOLOGY, None)
        {
            log::warn!("{err}");
        }
        self.store.set_last_update_id(update_id);
        self.commit();
    }

    /// Saves and confirms the handled updates before stopping, so Telegram does not send
    /// them again.
    pub fn confirm_handled(&mut self) {
        self.store.begin();
        self.store.must_save();
        self.commit();
        if let Err(err) = self.telegram.confirm(self.next_offset()) {
            log::debug!("{err}");
        }
    }

    /// Commits the open transaction; a failure is logged and kept, and the update it was
    /// for ends as not saved (`Halt::Unsaved`).
    fn commit(&mut self) {
        if let Err(err) = self.store.commit() {
            log::error!("{err:#}");
            self.unsaved.get_or_insert(err);
        }
    }
}

/// What a question gets: the messages, and what memory keeps of the answer.
#[derive(Default)]
struct Reply {
    /// The messages to send (after the photo, if one went out).
    chunks: Vec<String>,
    /// What memory and the transcript keep; None for a failure, a refusal, an empty answer.
    remembered: Option<String>,
    /// A drawn picture went out first, as a photo.
    photo: bool,
}

/// The messages GigaChat gets: the style's prompt, what the chat remembers, the question
/// (with the file it is about, if any).
fn conversation(
    prompt: &str,
    history: &[Turn],
    ask: &Ask,
    attachment: Option<&str>,
) -> Vec<ChatMessage> {
    let mut messages = vec![ChatMessage::new("system", prompt)];
    messages.extend(history.iter().map(|t| ChatMessage::new(&t.role, &t.content)));
    let mut last = ChatMessage::new("user", &ask.prompt());
    last.attachments.extend(attachment.map(str::to_string));
    messages.push(last);
    messages
}

/// An answer's messages, at most [`MAX_ANSWER_MESSAGES`]: past them the rest is dropped
/// and the last message says so.
fn capped(mut chunks: Vec<String>) -> Vec<String> {
    if chunks.len() > MAX_ANSWER_MESSAGES {
        chunks.truncate(MAX_ANSWER_MESSAGES - 1);
        let note = texts::TOO_MANY_MESSAGES.replace("{n}", &chunks.len().to_string());
        chunks.extend(render::plain_chunks(&note));
    }
    chunks
}

/// The Russian reply for a GigaChat failure; `file`: the question was about a file, which
/// GigaChat may have refused.
fn user_text(err: &gigachat::Error, model: &str, file: bool) -> String {
    use gigachat::Failure as E;
    let status = |text: &str, status: &u16| text.replace("{status}", &status.to_string());
    match &err.failure {
        E::Refused { status: code, .. } | E::Auth { status: code @ 403, .. } if file => {
            status(texts::FILE_REFUSED, code)
        }
        E::Auth { .. } => texts::AUTH_FAILED.into(),
        E::RateLimited => texts::RATE_LIMITED.into(),
        E::PaymentRequired => texts::PAYMENT_REQUIRED.into(),
        E::UnknownModel(_) => texts::UNKNOWN_MODEL.replace("{model}", model),
        E::TooLarge(_) => texts::TOO_LARGE.into(),
        E::Server(code) => status(texts::SERVER_ERROR, code),
        E::Refused { status: code, .. } => status(texts::HTTP_ERROR, code),
        E::Timeout(_) => texts::TIMEOUT.into(),
        E::Tls(_) | E::Network(_) => texts::UNREACHABLE.into(),
        E::BadResponse(_) => texts::BAD_ANSWER.into(),
        E::Interrupted(_) => texts::INTERRUPTED.into(),
    }
}
