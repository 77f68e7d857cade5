//! The bot: what it does with each update. It reads the [`Facts`], asks commands.rs what a
//! message or a button press calls for, then does it: asks GigaChat, saves, sends (all it
//! says goes out through one function, [`Bot::deliver`], in `deliver.rs`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::clock;
use crate::commands::{self, Action, Ask, Seen};
use crate::config::Config;
use crate::desk;
use crate::facts::{Facts, Turn};
use crate::gigachat::{self, ChatMessage, Completion, Failure, GigaChat, Usage};
use crate::incoming::{Chat, Message, Update, User};
use crate::knowledge::Index;
use crate::owner::{self, Notices};
use crate::render::{self, Chunk};
use crate::report::{Asked, Outcome, Report};
use crate::salutespeech::SaluteSpeech;
use crate::store::Store;
use crate::stream::{Draft, Typing, Waiting};
use crate::telegram::{self, Telegram};
use crate::texts;

mod access;
mod balance;
mod deliver;
mod guest;
mod media;
mod memory;
use deliver::fatal_only;
use media::Step;

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
    /// The notices each chat was sent lately, for the notice budget.
    notices: Notices,
    /// The update being handled (0 between updates), for the record of a long answer.
    update_id: i64,
    /// The answer going out is recorded, and its progress saved message by message.
    recording: bool,
    /// The transcript line of the update being handled: written once the update is saved.
    transcript: Option<(i64, serde_json::Value)>,
    /// A commit during the update being handled failed.
    unsaved: Option<anyhow::Error>,
    /// The last balance read (`GigaChat::balance`), for /stats, and when it was asked for.
    balance: Option<String>,
    balance_asked: Option<Instant>,
    /// Answers go out as rich messages (`telegram.rich_messages`), until a server that does
    /// not know them (an older local Bot API server) answers 404.
    rich: bool,
    /// The reference desk's vectors (`knowledge.dir`), searched for each question.
    index: Index,
}

/// How often the running bot asks GigaChat for the balance.
const BALANCE_EVERY: Duration = Duration::from_secs(5 * 60);

/// How an action ended; an `Err` is a fatal Telegram error, which ends the update.
type Done = Result<Outcome, telegram::Error>;

/// Why the loop cannot go on with the next update.
pub enum Halt {
    /// Telegram refused the bot token, or the bot is stopping.
    Fatal(telegram::Error),
    /// The state could not be saved (a full disk, say): the update is not confirmed to
    /// Telegram, and is handled again once saving works. Its log line, and why.
    Unsaved(Box<Report>, anyhow::Error),
}

/// A question ready for GigaChat.
struct Question {
    /// What memory keeps: the question as typed or heard, with a note of a file.
    remembered: String,
    /// What GigaChat is asked: the question after what it replies to, if anything.
    prompt: String,
    /// The file it is about, uploaded to GigaChat's storage for this answer.
    attachment: Option<String>,
    /// The answer's first message: what a voice note was heard as.
    shown: Option<String>,
}

/// A question ready for GigaChat, or what the user was told instead.
enum Prepared {
    Ready(Question),
    Told(Outcome),
}

/// What a question gets: the messages, and what memory keeps of the answer.
pub(super) struct Reply {
    /// The messages to send (after the photo, if one went out).
    pub chunks: Vec<Chunk>,
    /// What memory and the transcript keep; None for a failure, a refusal, an empty answer.
    pub remembered: Option<String>,
    /// A drawn picture went out first, as a photo.
    pub photo: bool,
    /// How the update ends if the messages go out (`Answered` counts them then).
    pub outcome: Outcome,
}

impl Bot {
    /// The bot, with its clients, its saved state, and who it is on Telegram (from getMe).
    pub fn new(config: Config, tg: Telegram, gigachat: GigaChat, store: Store, me: User) -> Bot {
        let gc = &config.gigachat;
        let speech = SaluteSpeech::new(&config.salutespeech, &gc.ca_certs, gc.timeout_secs);
        let rich = config.telegram.rich_messages;
        let index = match config.knowledge.dir.as_os_str().is_empty() {
            true => Index::default(),
            false => store.load_index(),
        };
        Bot {
            typing: Typing::new(tg.clone()),
            salutespeech: speech,
            voice_hint_logged: false,
            config,
            telegram: tg,
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
            balance: None,
            balance_asked: None,
            rich,
            index,
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

    /// One update, and its log line. Every failure but a fatal one is dealt with on the way (a
    /// reply, a log line), so one bad update never stops the loop. What the update changed is
    /// saved with its id, then its transcript line written.
    pub fn handle_update(&mut self, update: Update) -> Result<Report, Halt> {
        let id = update.update_id;
        (self.update_id, self.recording) = (id, false);
        self.store.begin();
        let handled = match (update.message, update.callback_query, update.guest_message) {
            (Some(message), ..) => self.on_message(message),
            (None, Some(query), _) => self.on_press(query),
            (None, None, Some(guest)) => self.on_guest(guest),
            (None, None, None) => Ok(Report {
                outcome: Outcome::Ignored(match update.edited_message {
                    Some(_) => "edited message ignored",
                    None => "update kind not handled",
                }),
                ..Report::default()
            }),
        };
        self.update_id = 0;
        let report = handled.map_err(|err| {
            // Not handled: after the restart it is handled again from the start.
            self.store.rollback();
            (self.transcript, self.unsaved) = (None, None);
            Halt::Fatal(err)
        })?;
        // What the update changed, saved together with its id.
        self.store.set_last_update_id(id);
        self.commit();
        if let Some(err) = self.unsaved.take() {
            self.transcript = None;
            return Err(Halt::Unsaved(Box::new(report), err));
        }
        self.write_transcript();
        Ok(report)
    }

    /// A message: the facts read, the decision, and what was done about it.
    fn on_message(&mut self, message: Message) -> Result<Report, telegram::Error> {
        let sender = message.sender();
        let facts = self.facts(message.chat.id, sender.as_ref().map(|u| u.id));
        let decision = commands::decide_message(&self.seen(&facts), &message);
        let mut report = Report {
            chat_id: message.chat.id,
            user_id: sender.map_or(0, |u| u.id),
            kind: decision.kind,
            style: commands::style_of(&self.seen(&facts)).id.clone(),
            text: message.text.clone().filter(|_| self.config.log.messages),
            outcome: Outcome::StateUnreadable,
        };
        // Access and limits are never judged on a default: a failed read does nothing.
        if !self.store.failed() {
            let done = self.act(&message, decision.action, &facts);
            report.outcome = self.settle(message.chat.id, done)?;
        }
        Ok(report)
    }

    /// What the decisions look at, read once for an update in `chat_id` from `sender`.
    fn facts(&self, chat_id: i64, sender: Option<i64>) -> Facts {
        let now = clock::unix_now();
        let (today, to_midnight) = clock::local_day(now);
        let (style, last_question) = self.store.chat(chat_id);
        let sender = sender.unwrap_or(0);
        Facts {
            now,
            today,
            to_midnight,
            uptime_secs: self.started.elapsed().as_secs(),
            style,
            last_question,
            history: self.store.history(chat_id),
            access: self.store.access(sender),
            usage: self.store.user(sender),
        }
    }

    /// The decisions' view: the config, the bot itself, the facts.
    fn seen<'a>(&'a self, facts: &'a Facts) -> Seen<'a> {
        Seen { config: &self.config, me: &self.me, facts }
    }

    /// Does what commands.rs decided for a message.
    fn act(&mut self, message: &Message, action: Action, facts: &Facts) -> Done {
        let (chat_id, reply_to) = (message.chat.id, Some(message.message_id));
        match action {
            Action::Ignore(why) => Ok(Outcome::Ignored(why)),
            Action::MoveChat(new_id) => {
                self.store.move_chat(chat_id, new_id);
                Ok(Outcome::Moved(new_id))
            }
            Action::Reply(text, buttons) => self.notice(chat_id, reply_to, &text, buttons.as_ref()),
            Action::Notice(text) => {
                self.note_no_speech_key(message);
                self.notice(chat_id, reply_to, &text, None)
            }
            Action::Refuse(user) => self.refuse(chat_id, reply_to, &user, facts.access),
            Action::Ask(ask) => {
                self.count_request(message.sender().as_ref());
                self.handle_message(message, &ask, facts)
            }
            Action::SetStyle { id, reply } => {
                self.store.set_style(chat_id, &id, facts.now);
                self.notice(chat_id, reply_to, &reply, None)
            }
            Action::Reset => {
                self.store.forget_chat(chat_id);
                self.notice(chat_id, reply_to, texts::RESET_DONE, None)
            }
            Action::Grant { user_id, allow } => self.grant(message, user_id, allow),
            Action::Report(report) => self.report_to_admin(message, report, facts),
        }
    }

    /// The lesson's `handle_message`: asks GigaChat in the chat's style, with the chat's
    /// memory, and replies. /retry (`ask.again`) replaces the last exchange in memory;
    /// memory keeps the question as typed, without its context, and of a file only a note.
    fn handle_message(&mut self, message: &Message, ask: &Ask, facts: &Facts) -> Done {
        let (chat, reply_to) = (&message.chat, message.message_id);
        // The question: as typed, or what a voice note or a file became.
        let mut question = match self.prepare(message, ask)? {
            Prepared::Ready(question) => question,
            Prepared::Told(outcome) => return Ok(outcome),
        };
        // The owner's documents near the question go with it, if a reference desk is set up
        // ("typing…" meanwhile: the embeddings call comes before GigaChat's first word).
        if !self.index.ids.is_empty() {
            self.typing.start(Waiting::Typing(chat.id));
        }
        let (gc, store, index) = (&mut self.gigachat, &mut self.store, &self.index);
        let sources = desk::consult(&self.config.knowledge, gc, store, index, &mut question.prompt);
        // The messages: the style's prompt, what the chat remembers, the new question.
        let style = commands::style_of(&self.seen(facts)).clone();
        let history = self.start_exchange(chat.id, &question.remembered, ask.again, facts);
        let messages = conversation(&style.prompt, &history, &question);

        // GigaChat; meanwhile "typing…", and in a private chat the answer as a draft.
        let started = Instant::now();
        let (result, previewed) = self.ask_gigachat(chat, reply_to, &messages);
        let usage = result.as_ref().map(|c| c.usage).unwrap_or_default();
        let asked = asked(started, usage);
        question.attachment.as_deref().inspect(|id| self.forget_upload(id));
        self.count_tokens(message.sender().as_ref(), usage);

        // The reply: the answer, or what went wrong.
        let reply = match result {
            Ok(completion) => self.answer(chat.id, reply_to, &completion, &sources, asked)?,
            Err(e) => self.failure(chat.id, &e, &previewed, question.attachment.is_some(), asked),
        };
        if let Some(answer) = &reply.remembered {
            self.remember(chat.id, &question.remembered, answer, history);
            let line = (
                style.id.as_str(),
                question.remembered.as_str(),
                answer.as_str(),
                usage.total_tokens,
            );
            self.transcript = self.transcript_line(chat.id, message, line);
        }
        self.send_reply(chat.id, reply_to, question.shown.as_deref(), reply)
    }

    /// The question ready for GigaChat: a voice note heard, a file uploaded; or the outcome
    /// when the user was told (a notice) why not.
    fn prepare(&mut self, message: &Message, ask: &Ask) -> Result<Prepared, telegram::Error> {
        let (chat_id, reply_to) = (message.chat.id, Some(message.message_id));
        let (mut ask, mut shown) = (ask.clone(), None);
        if let Some(voice) = &ask.voice {
            match self.hear(chat_id, voice)? {
                Step::Next(question) => {
                    shown = Some(texts::VOICE_HEARD.replace("{text}", &question));
                    ask.question = question;
                }
                Step::Stop(text, outcome) => {
                    self.notice(chat_id, reply_to, &text, None)?;
                    return Ok(Prepared::Told(outcome));
                }
            }
        }
        let mut attachment = None;
        if let Some(file) = &ask.file {
            match self.upload(chat_id, file)? {
                Step::Next(id) => attachment = Some(id),
                Step::Stop(text, outcome) => {
                    self.notice(chat_id, reply_to, &text, None)?;
                    return Ok(Prepared::Told(outcome));
                }
            }
        }
        let (remembered, prompt) = (ask.remembered(), ask.prompt());
        Ok(Prepared::Ready(Question { remembered, prompt, attachment, shown }))
    }

    /// Asks GigaChat, "typing…" meanwhile; in a private chat with `gigachat.stream` (and not
    /// `gigachat.images`) the answer grows in a draft (Telegram allows drafts in private chats
    /// only; elsewhere the answer is asked whole). Returns it and the text the draft received.
    fn ask_gigachat(
        &mut self,
        chat: &Chat,
        reply_to: i64,
        messages: &[ChatMessage],
    ) -> (Result<Completion, gigachat::Error>, String) {
        // The chat's conversation is one GigaChat session: its shared prompt is cached.
        let session = &self.store.session(chat.id, clock::unix_now());
        let (telegram, gigachat, typing) = (&self.telegram, &mut self.gigachat, &mut self.typing);
        // A drawing answer is asked for whole: its stream would carry progress events.
        let gc = &self.config.gigachat;
        if !(gc.stream && !gc.images && chat.kind == "private") {
            typing.start(Waiting::Typing(chat.id));
            let result = gigachat.chat(messages, Some(session), None);
            typing.stop();
            return (result, String::new());
        }
        let interval = Duration::from_millis(self.config.bot.draft_interval_ms);
        let paused = self.draft_pauses.remove(&chat.id);
        let offset = self.store.last_update_id().saturating_add(1);
        let ids = (chat.id, reply_to);
        let mut draft = Draft::new(telegram.clone(), ids, interval, paused, self.rich, offset);
        // "Thinking…" in the answer's draft at once, unless Telegram asked for no drafts.
        typing.start(match paused {
            None => Waiting::Thinking(chat.id, draft.id(), self.rich),
            Some(_) => Waiting::Typing(chat.id),
        });
        let mut on_text = |piece: &str| {
            // The draft takes over from "typing…".
            typing.stop();
            draft.push(piece)
        };
        let result = gigachat.chat(messages, Some(session), Some(&mut on_text));
        typing.stop();
        let (received, paused) = draft.finish();
        if let Some(until) = paused {
            self.draft_pauses.insert(chat.id, until);
        }
        (result, received)
    }

    /// What GigaChat's answer becomes: a picture sent first if it drew one, the text as
    /// messages; a refusal or an answer with nothing to see gets one sentence.
    fn answer(
        &mut self,
        chat_id: i64,
        reply_to: i64,
        completion: &Completion,
        sources: &str,
        asked: Asked,
    ) -> Result<Reply, telegram::Error> {
        let sorry = |text: &str, outcome| Reply {
            chunks: render::plain_chunks(text),
            remembered: None,
            photo: false,
            outcome,
        };
        let content = completion.content.trim();
        if completion.finish_reason == "blacklist" {
            self.store.count_failure("gigachat blacklist");
            return Ok(sorry(texts::BLACKLIST, Outcome::Blacklisted(asked)));
        }
        // A picture goes out first; then the text (what its caption did not hold).
        let (text, mut remembered, photo) = match self.picture(chat_id, reply_to, content)? {
            Some(drawn) => (drawn.text, drawn.remembered, drawn.sent),
            None => (content.to_string(), content.to_string(), false),
        };
        let mut chunks = render::answer_chunks(&text, self.rich);
        if chunks.is_empty() && !photo {
            // Empty, or nothing a user would see (say, only a Markdown link definition).
            self.store.count_failure("gigachat empty answer");
            let empty = Outcome::EmptyAnswer(completion.request_id.clone(), asked);
            return Ok(sorry(texts::BAD_ANSWER, empty));
        }
        // Cut short by GigaChat's limit or by the user's Stop: a note follows (memory keeps
        // the Stop's: the answer is what the user saw).
        let note = match completion.finish_reason.as_str() {
            "length" => texts::CUT_SHORT,
            gigachat::STOPPED => texts::STOPPED,
            _ => "",
        };
        // The files of the passages that went with the question close the answer.
        let note = format!("{note}\n\n{sources}").trim().to_string();
        if !note.is_empty() {
            chunks = render::answer_chunks(&format!("{text}\n\n{note}"), self.rich);
        }
        if completion.finish_reason == gigachat::STOPPED {
            remembered = format!("{remembered}\n\n{note}");
        }
        let outcome = Outcome::Answered(0, asked);
        Ok(Reply { chunks, remembered: Some(remembered), photo, outcome })
    }

    /// What the user is told when GigaChat failed (logged and counted): what the draft of a
    /// broken stream showed, then why it ended.
    fn failure(
        &mut self,
        chat_id: i64,
        err: &gigachat::Error,
        previewed: &str,
        file: bool,
        asked: Asked,
    ) -> Reply {
        log::warn!("chat {chat_id}: {err}");
        let kind = err.kind();
        self.store.count_failure(&format!("gigachat {kind}"));
        if matches!(err.failure, Failure::PaymentRequired) {
            self.warn_balance(None);
        }
        let mut chunks = match err.failure {
            Failure::Interrupted(_) | Failure::Timeout(_) => {
                render::answer_chunks(previewed, self.rich)
            }
            _ => Vec::new(),
        };
        chunks.extend(render::plain_chunks(&user_text(err, &self.gigachat.model, file)));
        let outcome = Outcome::GigaChatFailed(kind, asked);
        Reply { chunks, remembered: None, photo: false, outcome }
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
    fn count_tokens(&mut self, user: Option<&User>, usage: Usage) {
        self.store.add_tokens(usage.total_tokens, usage.precached_prompt_tokens);
        // The daily budget counts what GigaChat bills: the cached part of a prompt is free.
        let tokens = usage.billed();
        let Some(user) = user.filter(|_| tokens > 0) else { return };
        let (today, _) = clock::local_day(clock::unix_now());
        let stats = owner::billed(self.store.user(user.id), tokens, &today);
        self.store.put_user(user.id, &stats);
    }

    /// Between batches: the memory of chats silent for `bot.forget_after_days` dropped (at most
    /// hourly), the id of updates that changed nothing saved now and then; a failure is logged.
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

    /// After a bug (a caught panic) in update `update_id`: its changes are dropped, it counts as
    /// handled (it would only fail again), and the user gets a short apology, best effort.
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

    /// Saves and confirms the handled updates before stopping, so Telegram sends none again.
    pub fn confirm_handled(&mut self) {
        self.store.begin();
        self.store.must_save();
        self.commit();
        if let Err(err) = self.telegram.confirm(self.next_offset()) {
            log::debug!("{err}");
        }
    }

    /// Commits the open transaction; a failure is logged and kept: the update ends `Halt::Unsaved`.
    fn commit(&mut self) {
        if let Err(err) = self.store.commit() {
            log::error!("{err:#}");
            self.unsaved.get_or_insert(err);
        }
    }
}

/// The messages GigaChat gets: the style's prompt, the chat's memory, the question (and file).
/// What a GigaChat call cost, for the update's log line.
fn asked(started: Instant, u: Usage) -> Asked {
    let ms = started.elapsed().as_millis();
    let (prompt, completion, cached) =
        (u.prompt_tokens, u.completion_tokens, u.precached_prompt_tokens);
    Asked { ms, tokens: u.total_tokens, prompt, completion, cached }
}

fn conversation(prompt: &str, history: &[Turn], question: &Question) -> Vec<ChatMessage> {
    let mut messages = vec![ChatMessage::new("system", prompt)];
    messages.extend(history.iter().map(|t| ChatMessage::new(&t.role, &t.content)));
    let mut last = ChatMessage::new("user", &question.prompt);
    last.attachments.extend(question.attachment.clone());
    messages.push(last);
    messages
}

/// The user's text for a GigaChat failure; `file`: the question was about a file (maybe refused).
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
