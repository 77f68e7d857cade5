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
use crate::store::{Access, Store, Turn};
use crate::stream::{Draft, Typing};
use crate::telegram::{self, Chat, Message, OnFlood, Telegram, Update, User};
use crate::texts;

mod buttons;
mod deliver;
mod files;
mod memory;
mod pictures;
mod voice;
use deliver::fatal_only;
use memory::drop_last_exchange;

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
}

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
    /// refused ends the update's handling and is counted.
    pub fn handle_update(&mut self, update: Update) -> Result<Report, telegram::Error> {
        let mut report = Report::default();
        let id = update.update_id;
        self.update_id = id;
        self.store.begin();
        let handled = self.dispatch(update, &mut report);
        self.update_id = 0;
        match handled {
            Err(err) if err.is_fatal() => {
                // Not handled: after the restart it is handled again from the start.
                self.store.rollback();
                return Err(err);
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

    /// Does what commands.rs decided for a message.
    fn on_message(&mut self, message: Message, report: &mut Report) -> Result<(), telegram::Error> {
        let decision = commands::decide_message(&self.context(), &message);
        report.kind = decision.kind;
        let (chat_id, reply_to) = (message.chat.id, message.message_id);
        let sender_id = message.sender().map_or(0, |u| u.id);
        report.outcome = match decision.action {
            Action::Ignore(why) => Outcome::Ignored(why),
            Action::MoveChat(new_id) => {
                self.store.move_chat(chat_id, new_id);
                Outcome::Moved(new_id)
            }
            Action::Reply(text, keyboard) => {
                self.send_plain(chat_id, Some(reply_to), &text, keyboard.as_ref())?
            }
            Action::Notice(text) => {
                self.note_no_speech_key(&message);
                self.notice(chat_id, reply_to, sender_id, &text)?
            }
            Action::Refuse(user) => self.refuse(chat_id, reply_to, &user)?,
            Action::Ask(ask) => return self.handle_message(&message, &ask, report),
            Action::Transcribe { voice, ask } => {
                return self.transcribe(&message, &voice, ask, report);
            }
            Action::SetStyle { id, reply } => {
                self.store.set_style(chat_id, &id, clock::unix_now());
                self.send_plain(chat_id, Some(reply_to), &reply, None)?
            }
            Action::Reset => {
                self.store.forget_chat(chat_id);
                self.send_plain(chat_id, Some(reply_to), texts::RESET_DONE, None)?
            }
            Action::Grant { user_id, allow } => {
                let (access, text) = owner::decide(&self.config, &self.store, user_id, allow);
                self.store.set_access(user_id, access);
                self.report_to_admin(&message, sender_id, &text)?
            }
            Action::Report(text) => self.report_to_admin(&message, sender_id, &text)?,
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
        let (chat_id, question, again) = (chat.id, remembered.as_str(), ask.again);
        // A photo or document goes to GigaChat's storage first, for this answer only.
        let attachment = match &ask.file {
            Some(file) => match self.upload(chat_id, file, report)? {
                Step::Next(id) => Some(id),
                Step::Stop(text) => {
                    self.send_plain(chat_id, Some(reply_to), &text, None)?;
                    return Ok(());
                }
            },
            None => None,
        };
        // The conversation: the style's prompt, what the chat remembers, the new question.
        let style = self.style_of(chat_id).clone();
        let history = self.start_exchange(chat_id, question, again);
        let mut messages = vec![ChatMessage::new("system", &style.prompt)];
        messages.extend(history.iter().map(|t| ChatMessage::new(&t.role, &t.content)));
        let mut last = ChatMessage::new("user", &ask.prompt());
        last.attachments.extend(attachment.clone());
        messages.push(last);

        // Ask GigaChat; meanwhile "typing…", and in a private chat the answer as a draft.
        let started = Instant::now();
        let (result, previewed) = self.ask_gigachat(chat, reply_to, &messages);
        report.gigachat_ms = Some(started.elapsed().as_millis());
        if let Some(id) = &attachment {
            self.forget_upload(id);
        }
        let tokens = result.as_ref().map_or(0, |c| c.usage.total_tokens);
        self.count_request(from.as_ref(), tokens);
        report.tokens = tokens;

        // Reply: the answer, or what went wrong.
        let completion = match result {
            Ok(completion) => completion,
            Err(err) => {
                log::warn!("chat {chat_id}: {err}");
                let kind = err.kind();
                report.outcome = Outcome::GigaChatFailed(kind.clone());
                self.store.count_failure(&format!("gigachat {kind}"));
                // What the draft showed of a broken stream stays, followed by why it ended.
                let mut chunks = match err {
                    gigachat::Error::Interrupted(_) | gigachat::Error::Timeout(_) => {
                        render::markdown_chunks(&previewed)
                    }
                    _ => Vec::new(),
                };
                let text = user_text(&err, &self.gigachat.model, attachment.is_some());
                chunks.extend(render::plain_chunks(&text));
                return self.deliver(chat_id, Some(reply_to), &chunks, None, OnFlood::Wait);
            }
        };
        let content = completion.content.trim();
        if completion.finish_reason == "blacklist" {
            report.outcome = Outcome::Blacklisted;
            self.store.count_failure("gigachat blacklist");
            self.send_plain(chat_id, Some(reply_to), texts::BLACKLIST, None)?;
            return Ok(());
        }
        // A picture goes out first; then the text (what its caption did not hold).
        let drawn = self.picture(chat_id, reply_to, content, report)?;
        let (answer, remembered, photo) = match &drawn {
            Some(d) => (d.text.as_str(), d.remembered.as_str(), usize::from(d.sent)),
            None => (content, content, 0),
        };
        let mut chunks = render::markdown_chunks(answer);
        if chunks.is_empty() && photo == 0 {
            // Empty, or nothing a user would see (say, only a Markdown link definition).
            report.outcome = Outcome::EmptyAnswer(completion.request_id);
            self.store.count_failure("gigachat empty answer");
            self.send_plain(chat_id, Some(reply_to), texts::BAD_ANSWER, None)?;
            return Ok(());
        }
        if completion.finish_reason == "length" {
            chunks = render::markdown_chunks(&format!("{answer}\n\n{}", texts::CUT_SHORT));
        }
        self.remember(chat_id, question, remembered, history);
        self.write_transcript(chat_id, from.as_ref(), &style.id, question, remembered, tokens);
        if photo > 0 {
            // The photo is out: a restart from here sends the rest, never the photo again.
            self.note_sent_so_far(chat_id, &chunks);
        }
        let reply = Some(reply_to).filter(|_| photo == 0);
        self.deliver(chat_id, reply, &chunks, None, OnFlood::Wait)?;
        self.store.count_answer();
        report.outcome = Outcome::Answered(photo + chunks.len());
        Ok(())
    }

    /// The chat's style, or the default.
    fn style_of(&self, chat_id: i64) -> &Style {
        commands::style_of(&self.context(), chat_id)
    }

    /// Counts a GigaChat request of `user` (for the rate limit, the budget and /stats).
    fn count_request(&mut self, user: Option<&User>, tokens: u64) {
        self.store.add_tokens(tokens);
        let Some(user) = user else { return };
        let now = clock::unix_now();
        let (today, _) = clock::local_day(now);
        let keep = self.config.bot.requests_per_minute as usize;
        let stats = owner::counted(self.store.user(user.id), user, tokens, now, &today, keep);
        self.store.put_user(user.id, &stats);
    }

    /// A polite refusal that shows the sender's id (a notice: within the sender's notice
    /// budget), and one message to the admins per new user, with buttons to allow or
    /// refuse. The admins are asked whether or not the refusal itself went out.
    fn refuse(
        &mut self,
        chat_id: i64,
        reply_to: i64,
        user: &User,
    ) -> Result<Outcome, telegram::Error> {
        let text = texts::NOT_ALLOWED.replace("{id}", &user.id.to_string());
        let outcome = self.notice(chat_id, reply_to, user.id, &text)?;
        let Some((request, keyboard)) = owner::access_request(&self.store, user) else {
            return Ok(outcome);
        };
        let chunks = render::plain_chunks(&request);
        for admin in self.config.bot.admins.clone() {
            match self.deliver(admin, None, &chunks, Some(&keyboard), OnFlood::Wait) {
                // Told once is enough; if no admin could be told, the next message tries again.
                Ok(()) => {
                    let access = self.store.access(user.id);
                    self.store.set_access(user.id, Access { announced: true, ..access });
                }
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
    fn report_to_admin(
        &mut self,
        message: &Message,
        admin: i64,
        text: &str,
    ) -> Result<Outcome, telegram::Error> {
        let (chat_id, reply_to) = (message.chat.id, message.message_id);
        if message.chat.kind == "private" {
            return self.send_plain(chat_id, Some(reply_to), text, None);
        }
        let pointer = match self.send_plain(admin, None, text, None) {
            Ok(_) => texts::ADMIN_ANSWERED_PRIVATELY,
            Err(err) if err.is_fatal() => return Err(err),
            Err(err) => {
                log::info!("admin {admin}: {err}; asked to write to the bot first");
                texts::ADMIN_ASK_PRIVATELY
            }
        };
        self.send_plain(chat_id, Some(reply_to), pointer, None)?;
        Ok(Outcome::AnsweredPrivately)
    }

    /// Notes the question in the chat's state; returns the memory to send with it (without
    /// the last exchange when it is asked again with /retry).
    fn start_exchange(&mut self, chat_id: i64, question: &str, again: bool) -> Vec<Turn> {
        self.store.note_question(chat_id, question, clock::unix_now());
        let mut history = self.store.history(chat_id);
        if again {
            drop_last_exchange(&mut history, question);
        }
        history
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

    /// Drops the memory of chats silent for `bot.forget_after_days`, at most once an hour.
    pub fn forget_silent_chats(&mut self) {
        let now = clock::unix_now();
        if now < self.last_cleanup + 3600 {
            return;
        }
        self.last_cleanup = now;
        let days = self.config.bot.forget_after_days;
        self.store.begin();
        let forgotten = self.store.forget_silent(now, days);
        self.commit();
        if forgotten > 0 {
            log::info!("forgot the memory of {forgotten} chat(s) silent for {days} days");
        }
    }

    /// After a bug (a caught panic) in update `update_id`: what it changed is dropped, the
    /// update counts as handled (it would only fail again), and the user gets a short
    /// apology, best effort.
    pub fn apologize(&mut self, update_id: i64, origin: Option<(i64, Option<i64>)>) {
        self.store.rollback();
        self.store.begin();
        self.store.count_failure("bug");
        if let Some((chat_id, reply_to)) = origin
            && let Err(err) = self.send_plain(chat_id, reply_to, texts::APOLOGY, None)
        {
            log::warn!("{err}");
        }
        self.store.set_last_update_id(update_id);
        self.commit();
    }

    /// Confirms the handled updates before stopping, so Telegram does not send them again.
    pub fn confirm_handled(&self) {
        if let Err(err) = self.telegram.confirm(self.next_offset()) {
            log::debug!("{err}");
        }
    }

    /// Commits the open transaction; a failure is only logged (the store names what was lost).
    fn commit(&mut self) {
        if let Err(err) = self.store.commit() {
            log::error!("{err:#}");
        }
    }

    /// Adds one exchange to the chat's memory, within `history_messages` and `history_chars`.
    fn remember(&mut self, chat_id: i64, question: &str, answer: &str, mut history: Vec<Turn>) {
        let max_messages = self.config.bot.history_messages;
        let max_chars = self.config.bot.history_chars;
        history.push(Turn { role: "user".into(), content: question.to_string() });
        history.push(Turn { role: "assistant".into(), content: answer.to_string() });
        let mut chars: usize = history.iter().map(|t| t.content.chars().count()).sum();
        while !history.is_empty()
            && (history.len() > max_messages
                || chars > max_chars
                // An answer without its question would confuse the model.
                || history[0].role == "assistant")
        {
            chars -= history[0].content.chars().count();
            history.remove(0);
        }
        self.store.put_history(chat_id, &history);
    }
}

/// The Russian reply for a GigaChat failure; `file`: the question was about a file, which
/// GigaChat may have refused.
fn user_text(err: &gigachat::Error, model: &str, file: bool) -> String {
    use gigachat::Error as E;
    let status = |text: &str, status: &u16| text.replace("{status}", &status.to_string());
    match err {
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
