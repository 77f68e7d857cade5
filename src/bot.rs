//! What to do with one update: commands, button presses, and questions for GigaChat.
//!
//! The texts users see are the constants right below, so a teacher can change them
//! without reading the logic.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::commands::{KNOWN_COMMANDS, parse_command};
use crate::config::Config;
use crate::gigachat::{self, ChatMessage, Completion, GigaChat};
use crate::render;
use crate::store::{Store, Turn};
use crate::stream::{LiveAnswer, Typing};
use crate::telegram::{self, Message, OutgoingMessage, Telegram, Update, User};

pub(crate) const START: &str =
    "Здравствуйте, {name}! Я отвечаю на вопросы с помощью GigaChat. Просто напишите вопрос.";
pub(crate) const COMMANDS: &str = "Команды:\n\
/mode — выбрать стиль ответов\n\
/reset — забыть разговор и начать заново\n\
/retry — спросить последний вопрос ещё раз\n\
/help — эта справка";
pub(crate) const GROUP_HINT: &str = "В группе я отвечаю, когда ко мне обращаются через @имя, отвечают на моё сообщение или пишут команду.";
pub(crate) const UNKNOWN_COMMAND: &str = "Такой команды я не знаю.";
const NOT_TEXT: &str = "Я понимаю только текст. Напишите вопрос словами, пожалуйста.";
const EMPTY_QUESTION: &str = "Напишите вопрос после обращения ко мне.";
const TOO_LONG: &str = "Слишком длинное сообщение: {len} символов, а я принимаю не больше {max}. Сократите его, пожалуйста.";
pub(crate) const CHOOSE_STYLE: &str = "Выберите стиль ответов. Сейчас: «{title}».";
pub(crate) const NO_SUCH_STYLE: &str = "Стиля «{id}» нет. Выберите один из этих:";
pub(crate) const STYLE_SET: &str = "Теперь я отвечаю в стиле «{title}».";
pub(crate) const STYLE_TOAST: &str = "Стиль: {title}";
pub(crate) const STALE_BUTTON: &str = "Эта кнопка устарела. Отправьте /mode, чтобы выбрать стиль.";
const APOLOGY: &str = "Извините, при обработке этого сообщения случилась ошибка. Попробуйте ещё раз или напишите по-другому.";
pub(crate) const RESET_DONE: &str = "Я забыл наш разговор. Начнём заново!";
pub(crate) const NOTHING_TO_RETRY: &str = "Мне нечего повторить: сначала задайте вопрос.";

// Access and limits (owner.rs).
pub(crate) const NOT_ALLOWED: &str = "Извините, этот бот работает только для приглашённых пользователей. Ваш id: {id} — передайте его владельцу бота.";
pub(crate) const ACCESS_REQUEST: &str =
    "Новый пользователь хочет поговорить с ботом: {name}, id {id}.";
pub(crate) const ALLOW_BUTTON: &str = "Разрешить";
pub(crate) const DENY_BUTTON: &str = "Отклонить";
pub(crate) const ALLOWED: &str = "Пользователю {id} доступ разрешён.";
pub(crate) const DENIED: &str = "Пользователю {id} в доступе отказано.";
pub(crate) const IN_CONFIG: &str = "Пользователь {id} указан в конфиге (bot.admins или bot.allowed_users): командой его не убрать, измените конфиг.";
pub(crate) const ADMIN_USAGE: &str = "Укажите id пользователя: /{cmd} 123456789";
pub(crate) const WELCOME_ALLOWED: &str = "Вам открыли доступ к боту. Задайте вопрос!";
pub(crate) const RATE_LIMIT: &str =
    "Слишком много вопросов: не больше {n} в минуту. Напишите снова через {secs} с.";
pub(crate) const TOKEN_BUDGET: &str = "Ваш дневной лимит ({budget} токенов GigaChat) исчерпан. Напишите снова после полуночи (через {wait}).";

// GigaChat failures. The first three are the lesson's own texts.
const AUTH_FAILED: &str = "Ошибка авторизации в GigaChat API.";
const BAD_ANSWER: &str = "Не удалось получить корректный ответ от GigaChat API.";
const HTTP_ERROR: &str = "Ошибка при получении ответа от GigaChat API: {status}";
const RATE_LIMITED: &str = "GigaChat перегружен, повторите через минуту.";
const PAYMENT_REQUIRED: &str =
    "У владельца бота закончились токены GigaChat (402). Попробуйте позже.";
const UNKNOWN_MODEL: &str =
    "Модель «{model}» недоступна в GigaChat (404). Владельцу бота: проверьте gigachat.model.";
const TOO_LARGE: &str = "Разговор стал слишком длинным для GigaChat. Начните заново: /reset";
const SERVER_ERROR: &str = "GigaChat временно не работает (ошибка {status}). Повторите позже.";
const TIMEOUT: &str = "GigaChat не ответил вовремя. Повторите вопрос чуть позже.";
const UNREACHABLE: &str = "Не удалось связаться с GigaChat. Повторите позже.";
const INTERRUPTED: &str = "Ответ GigaChat оборвался на полуслове. Повторите вопрос: /retry";
const BLACKLIST: &str =
    "GigaChat не отвечает на вопросы на эту тему. Попробуйте спросить о чём-нибудь другом.";
const CUT_SHORT: &str = "_(Ответ обрезан: GigaChat достиг ограничения длины.)_";

/// The commands shown in Telegram's menu (`setMyCommands`).
pub const MENU: [(&str, &str); 5] = [
    ("start", "Начать и узнать, что я умею"),
    ("mode", "Выбрать стиль ответов"),
    ("reset", "Забыть разговор и начать заново"),
    ("retry", "Спросить последний вопрос ещё раз"),
    ("help", "Справка"),
];

/// What happened with one update, for the log line.
#[derive(Debug, Default)]
pub struct Report {
    pub chat_id: i64,
    pub user_id: i64,
    /// text, command, callback, non-text, refused, limited, ignored.
    pub kind: &'static str,
    pub style: String,
    pub gigachat_ms: Option<u128>,
    pub tokens: u64,
    pub outcome: String,
    /// The message text, only with `log.messages = true`.
    pub text: Option<String>,
}

pub struct Bot {
    pub config: Config,
    pub telegram: Telegram,
    pub gigachat: GigaChat,
    pub store: Store,
    pub(crate) me: User,
    pub(crate) started: Instant,
    /// Recent GigaChat requests per user, for `requests_per_minute`.
    pub(crate) recent: HashMap<i64, VecDeque<Instant>>,
    /// When silent chats were last forgotten (Unix seconds).
    last_cleanup: u64,
    typing: Typing,
}

/// An error the loop cannot go on after: the token was revoked, or the bot is stopping.
pub type Fatal = telegram::Error;

impl Bot {
    /// The bot, with its clients, its saved state, and who it is on Telegram (from getMe).
    pub fn new(
        config: Config,
        telegram: Telegram,
        gigachat: GigaChat,
        store: Store,
        me: User,
    ) -> Bot {
        Bot {
            typing: Typing::new(telegram.clone()),
            config,
            telegram,
            gigachat,
            store,
            me,
            started: Instant::now(),
            recent: HashMap::new(),
            last_cleanup: 0,
        }
    }

    /// Handles one update. Every failure except a fatal one is dealt with here (a reply to
    /// the user, a log line), so one bad update never stops the loop.
    pub fn handle_update(&mut self, update: Update) -> Result<Report, Fatal> {
        let mut report = Report {
            kind: "ignored",
            ..Report::default()
        };
        if let Some(message) = update.message {
            report.chat_id = message.chat.id;
            report.user_id = message.from.as_ref().map_or(0, |u| u.id);
            report.style = self.style_of(message.chat.id).id.clone();
            self.on_message(message, &mut report)?;
        } else if let Some(query) = update.callback_query {
            report.kind = "callback";
            report.user_id = query.from.id;
            report.chat_id = query.message.as_ref().map_or(query.from.id, |m| m.chat.id);
            self.on_callback(query, &mut report)?;
            report.style = self.style_of(report.chat_id).id.clone();
        } else if update.edited_message.is_some() {
            report.outcome = "edited message ignored".into();
        } else {
            report.outcome = "update kind not handled".into();
        }
        Ok(report)
    }

    fn on_message(&mut self, message: Message, report: &mut Report) -> Result<(), Fatal> {
        let chat_id = message.chat.id;
        if let Some(new_id) = message.migrate_to_chat_id {
            self.store.move_chat(chat_id, new_id);
            report.outcome = format!("group moved to {new_id}");
            return Ok(());
        }
        let in_group = matches!(message.chat.kind.as_str(), "group" | "supergroup");
        let Some(from) = message
            .from
            .clone()
            .filter(|_| in_group || message.chat.kind == "private")
        else {
            report.outcome = "not from a user in a private chat or group".into();
            return Ok(());
        };
        if self.config.log.messages {
            report.text = message.text.clone();
        }
        let command = message.text.as_deref().and_then(parse_command);
        // Is this message for us at all? Only then do access rules apply.
        let for_me = match (&command, message.text.as_deref()) {
            (Some(command), _) => match command.bot {
                Some(name) => self.is_my_name(name),
                // In a group a bare unknown command may be meant for another bot.
                None => !in_group || KNOWN_COMMANDS.contains(&command.name.as_str()),
            },
            (None, Some(_)) => !in_group || self.is_addressed(&message),
            (None, None) => {
                message.has_non_text_content() && (!in_group || self.is_reply_to_me(&message))
            }
        };
        if !for_me {
            report.outcome = "not for this bot".into();
            return Ok(());
        }
        if !self.is_allowed(from.id) {
            report.kind = "refused";
            report.outcome = self.refuse(chat_id, message.message_id, &from)?;
            return Ok(());
        }
        if let Some(command) = command {
            report.kind = "command";
            return self.on_command(&message, &command, report);
        }
        if message.text.is_none() {
            report.kind = "non-text";
            report.outcome = self.reply(chat_id, message.message_id, NOT_TEXT)?;
            return Ok(());
        }
        report.kind = "text";
        let question = if in_group {
            self.strip_mentions(&message)
        } else {
            message.text.as_deref().unwrap_or("").trim().to_string()
        };
        if question.is_empty() {
            report.outcome = self.reply(chat_id, message.message_id, EMPTY_QUESTION)?;
            return Ok(());
        }
        let len = question.chars().count();
        let max = self.config.bot.max_input_chars;
        if len > max {
            let text = TOO_LONG
                .replace("{len}", &len.to_string())
                .replace("{max}", &max.to_string());
            report.outcome = format!(
                "too long ({len} chars); {}",
                self.reply(chat_id, message.message_id, &text)?
            );
            return Ok(());
        }
        self.ask(chat_id, message.message_id, &from, &question, false, report)
    }

    /// Checks the user's limits, then asks.
    pub(crate) fn ask(
        &mut self,
        chat_id: i64,
        reply_to: i64,
        from: &User,
        question: &str,
        again: bool,
        report: &mut Report,
    ) -> Result<(), Fatal> {
        if let Some(text) = self.over_limit(from.id) {
            report.kind = "limited";
            report.outcome = self.reply(chat_id, reply_to, &text)?;
            return Ok(());
        }
        self.handle_message(chat_id, reply_to, Some(from), question, again, report)
    }

    /// The lesson's `handle_message`: asks GigaChat in the chat's style, with the chat's
    /// memory, and replies. `again` re-asks the last question (/retry), replacing the
    /// last exchange in memory.
    fn handle_message(
        &mut self,
        chat_id: i64,
        reply_to: i64,
        from: Option<&User>,
        question: &str,
        again: bool,
        report: &mut Report,
    ) -> Result<(), Fatal> {
        // The conversation: the style's prompt, what the chat remembers, the new question.
        let style = self.style_of(chat_id).clone();
        report.style = style.id.clone();
        let history = self.start_exchange(chat_id, question, again);
        let mut messages = vec![ChatMessage::new("system", &style.prompt)];
        messages.extend(
            history
                .iter()
                .map(|t| ChatMessage::new(&t.role, &t.content)),
        );
        messages.push(ChatMessage::new("user", question));

        // Ask GigaChat; meanwhile the chat shows "typing…", then the answer as it streams.
        let started = Instant::now();
        let (result, live) = self.ask_gigachat(chat_id, reply_to, &messages)?;
        report.gigachat_ms = Some(started.elapsed().as_millis());
        let tokens = result.as_ref().map_or(0, |c| c.usage.total_tokens);
        self.count_request(from, tokens);
        report.tokens = tokens;

        // Reply: the answer, or what went wrong.
        let completion = match result {
            Ok(completion) => completion,
            Err(err) => {
                log::warn!("chat {chat_id}: {err}");
                let kind = error_kind(&err);
                report.outcome = format!("gigachat error: {kind}");
                self.count_failure(&format!("gigachat {kind}"));
                // Whatever part of a broken stream is already on screen stays, rendered.
                if let Some(live) = live {
                    let partial = live.received().to_string();
                    live.finish(&partial).0?;
                }
                self.reply(chat_id, reply_to, &user_text(&err, &self.gigachat.model))?;
                return Ok(());
            }
        };
        let answer = completion.content.trim();
        let markdown = match completion.finish_reason.as_str() {
            "blacklist" => {
                report.outcome = "refused by gigachat (blacklist)".into();
                self.count_failure("gigachat blacklist");
                match live {
                    Some(live) => drop(live.finish(BLACKLIST).0?),
                    None => drop(self.reply(chat_id, reply_to, BLACKLIST)?),
                }
                return Ok(());
            }
            // Empty, or nothing a user would see (say, only a Markdown link definition).
            _ if render::visible_text(&render::markdown_to_html(answer))
                .trim()
                .is_empty() =>
            {
                report.outcome = format!("empty answer (request {})", completion.request_id);
                self.count_failure("gigachat empty answer");
                match live {
                    Some(live) => drop(live.finish(BAD_ANSWER).0?),
                    None => drop(self.reply(chat_id, reply_to, BAD_ANSWER)?),
                }
                return Ok(());
            }
            "length" => format!("{answer}\n\n{CUT_SHORT}"),
            _ => answer.to_string(),
        };
        self.remember(chat_id, question, answer, history);
        let user_id = from.map_or(0, |u| u.id);
        self.write_transcript(chat_id, user_id, &style.id, question, answer, tokens);
        let (sent, outcome) = match live {
            Some(live) => {
                let (sent, outcome) = live.finish(&markdown);
                (sent?, outcome)
            }
            None => self.send_answer(chat_id, reply_to, &markdown)?,
        };
        if sent {
            self.store.state.counters.answers += 1;
        } else {
            self.count_failure("telegram send");
        }
        report.outcome = outcome;
        Ok(())
    }

    /// Notes the question in the chat's state; returns the memory to send with it (without
    /// the last exchange when it is asked again with /retry).
    fn start_exchange(&mut self, chat_id: i64, question: &str, again: bool) -> Vec<Turn> {
        let mut chat = self.store.chat(chat_id);
        chat.last_active = unix_now();
        chat.last_question = Some(question.to_string());
        self.store.put_chat(chat_id, &chat);
        let mut history = chat.history;
        if again {
            drop_last_exchange(&mut history, question);
        }
        history
    }

    /// Asks GigaChat. "typing…" shows while it thinks; with `gigachat.stream` the answer
    /// appears and grows as it arrives (the live view, returned if anything is on screen).
    fn ask_gigachat(
        &mut self,
        chat_id: i64,
        reply_to: i64,
        messages: &[ChatMessage],
    ) -> Result<(Result<Completion, gigachat::Error>, Option<LiveAnswer>), Fatal> {
        let interval = self.edit_interval(chat_id);
        let streaming = self.config.gigachat.stream;
        let (telegram, gigachat, typing) = (&self.telegram, &mut self.gigachat, &mut self.typing);
        typing.start(chat_id);
        if !streaming {
            let result = gigachat.chat(messages, None);
            typing.stop();
            return Ok((result, None));
        }
        let mut live = LiveAnswer::new(telegram.clone(), chat_id, reply_to, interval);
        let mut on_text = |piece: &str| {
            // "typing…" ends before the first words appear.
            typing.stop();
            live.push(piece);
        };
        let result = gigachat.chat(messages, Some(&mut on_text));
        typing.stop();
        if let Some(err) = live.take_fatal() {
            return Err(err);
        }
        Ok((result, Some(live).filter(LiveAnswer::started)))
    }

    /// How often the live view of a streamed answer may be edited: Telegram allows about
    /// one message a second in a private chat and 20 a minute in a group.
    fn edit_interval(&self, chat_id: i64) -> Duration {
        // Group and channel ids are negative, private chats (user ids) positive.
        let group = chat_id < 0;
        let ms = match self.config.bot.stream_edit_interval_ms {
            Some(ms) if group => ms.max(3000),
            Some(ms) => ms,
            None if group => 3000,
            None => 1000,
        };
        Duration::from_millis(ms)
    }

    /// Drops the memory of chats silent for `bot.forget_after_days`, at most once an hour.
    pub fn forget_silent_chats(&mut self) {
        let now = unix_now();
        if now < self.last_cleanup + 3600 {
            return;
        }
        self.last_cleanup = now;
        let days = self.config.bot.forget_after_days;
        let forgotten = self.store.forget_silent(now, days);
        if forgotten > 0 {
            log::info!("forgot the memory of {forgotten} chat(s) silent for {days} days");
        }
    }

    /// After a bug (a caught panic): a short apology, best effort.
    pub fn apologize(&mut self, chat_id: i64, reply_to: Option<i64>) {
        self.count_failure("bug");
        if let Err(err) = self.send_plain(chat_id, reply_to, APOLOGY, None) {
            log::warn!("{err}");
        }
    }

    fn count_failure(&mut self, kind: &str) {
        *self
            .store
            .state
            .counters
            .failures
            .entry(kind.to_string())
            .or_default() += 1;
    }

    /// Adds one exchange to the chat's memory, within `history_messages` and `history_chars`.
    fn remember(&mut self, chat_id: i64, question: &str, answer: &str, mut history: Vec<Turn>) {
        let max_messages = self.config.bot.history_messages;
        let max_chars = self.config.bot.history_chars;
        history.push(Turn {
            role: "user".into(),
            content: question.to_string(),
        });
        history.push(Turn {
            role: "assistant".into(),
            content: answer.to_string(),
        });
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
        let mut chat = self.store.chat(chat_id);
        chat.history = history;
        self.store.put_chat(chat_id, &chat);
    }

    /// Sends a Markdown answer as Telegram HTML, split into messages of at most 4096
    /// characters; the first one replies to the question.
    fn send_answer(
        &mut self,
        chat_id: i64,
        reply_to: i64,
        markdown: &str,
    ) -> Result<(bool, String), Fatal> {
        let html = render::markdown_to_html(markdown);
        let chunks = render::split_html(&html, render::MESSAGE_LIMIT);
        if chunks.is_empty() {
            return Ok((false, self.reply(chat_id, reply_to, BAD_ANSWER)?));
        }
        let count = chunks.len();
        for (i, chunk) in chunks.iter().enumerate() {
            let reply = (i == 0).then_some(reply_to);
            if let Err(outcome) = self.send_html(chat_id, chunk, reply)? {
                return Ok((
                    false,
                    format!("answer part {}/{count} not sent: {outcome}", i + 1),
                ));
            }
        }
        Ok((true, format!("answered in {count} message(s)")))
    }

    /// Sends one HTML chunk; if Telegram cannot parse it, sends its visible text instead,
    /// so the user still gets the answer exactly once. The inner Err says why it was dropped.
    fn send_html(
        &mut self,
        chat_id: i64,
        html: &str,
        reply_to: Option<i64>,
    ) -> Result<Result<(), String>, Fatal> {
        let message = OutgoingMessage {
            chat_id,
            text: html,
            html: true,
            reply_to,
            keyboard: None,
        };
        match self.send(message)? {
            Err(err) if err.is_bad_html() => {
                log::warn!("chat {chat_id}: {err}; sending the chunk as plain text");
                let plain = render::visible_text(html);
                let message = OutgoingMessage {
                    chat_id,
                    text: &plain,
                    html: false,
                    reply_to,
                    keyboard: None,
                };
                Ok(self
                    .send(message)?
                    .map(|_| ())
                    .map_err(|err| err.to_string()))
            }
            other => Ok(other.map(|_| ()).map_err(|err| err.to_string())),
        }
    }

    /// sendMessage, following a group's move to a supergroup once. The outer Err is fatal;
    /// the inner one is Telegram refusing this message (logged here).
    pub(crate) fn send(
        &mut self,
        mut message: OutgoingMessage,
    ) -> Result<Result<Message, telegram::Error>, Fatal> {
        for _ in 0..2 {
            match self.telegram.send_message(&message) {
                Ok(sent) => return Ok(Ok(sent)),
                Err(err) => match err.kind {
                    telegram::ErrorKind::Unauthorized | telegram::ErrorKind::Stopped => {
                        return Err(err);
                    }
                    _ => {
                        if let Some(new_id) = err.migrated_to() {
                            log::info!(
                                "chat {} became supergroup {new_id}; moving its state",
                                message.chat_id
                            );
                            self.store.move_chat(message.chat_id, new_id);
                            message.chat_id = new_id;
                            continue;
                        }
                        if !err.is_bad_html() {
                            log::warn!(
                                "chat {}: {err}; giving up on this message",
                                message.chat_id
                            );
                        }
                        return Ok(Err(err));
                    }
                },
            }
        }
        Ok(Err(telegram::Error {
            method: "sendMessage",
            kind: telegram::ErrorKind::Rejected {
                code: 400,
                description: "the chat moved twice".into(),
                migrate_to_chat_id: None,
            },
        }))
    }

    /// Sends one of our own plain texts as a reply; returns the outcome for the log.
    pub(crate) fn reply(
        &mut self,
        chat_id: i64,
        reply_to: i64,
        text: &str,
    ) -> Result<String, Fatal> {
        self.send_plain(chat_id, Some(reply_to), text, None)
    }

    /// Sends one of our own texts (no HTML), optionally as a reply and with buttons.
    pub(crate) fn send_plain(
        &mut self,
        chat_id: i64,
        reply_to: Option<i64>,
        text: &str,
        keyboard: Option<Value>,
    ) -> Result<String, Fatal> {
        let message = OutgoingMessage {
            chat_id,
            text,
            html: false,
            reply_to,
            keyboard,
        };
        Ok(match self.send(message)? {
            Ok(_) => "replied".into(),
            Err(err) => format!("not sent: {err}"),
        })
    }
}

/// Passes on a fatal error; logs any other (the update goes on without that call).
pub(crate) fn fatal_only(err: telegram::Error) -> Result<(), Fatal> {
    match err.kind {
        telegram::ErrorKind::Unauthorized | telegram::ErrorKind::Stopped => Err(err),
        _ => {
            log::info!("{err}");
            Ok(())
        }
    }
}

/// Removes the last user/assistant pair if it is the exchange for `question` (for /retry).
pub(crate) fn drop_last_exchange(history: &mut Vec<Turn>, question: &str) {
    let n = history.len();
    if n >= 2
        && history[n - 2].role == "user"
        && history[n - 2].content == question
        && history[n - 1].role == "assistant"
    {
        history.truncate(n - 2);
    }
}

/// The Russian reply for a GigaChat failure.
fn user_text(err: &gigachat::Error, model: &str) -> String {
    use gigachat::Error as E;
    match err {
        E::Auth { .. } => AUTH_FAILED.into(),
        E::RateLimited => RATE_LIMITED.into(),
        E::PaymentRequired => PAYMENT_REQUIRED.into(),
        E::UnknownModel(_) => UNKNOWN_MODEL.replace("{model}", model),
        E::TooLarge(_) => TOO_LARGE.into(),
        E::Server(status) => SERVER_ERROR.replace("{status}", &status.to_string()),
        E::Refused { status, .. } => HTTP_ERROR.replace("{status}", &status.to_string()),
        E::Timeout(_) => TIMEOUT.into(),
        E::Tls(_) | E::Network(_) => UNREACHABLE.into(),
        E::BadResponse(_) => BAD_ANSWER.into(),
        E::Interrupted(_) => INTERRUPTED.into(),
    }
}

/// A short name of the failure for the log line.
fn error_kind(err: &gigachat::Error) -> String {
    use gigachat::Error as E;
    match err {
        E::Auth { status, .. } => format!("auth {status}"),
        E::RateLimited => "rate limited 429".into(),
        E::PaymentRequired => "payment required 402".into(),
        E::UnknownModel(_) => "unknown model 404".into(),
        E::TooLarge(_) => "too large 413".into(),
        E::Server(status) => format!("server {status}"),
        E::Refused { status, .. } => format!("refused {status}"),
        E::Timeout(_) => "timeout".into(),
        E::Tls(_) => "tls".into(),
        E::Network(_) => "network".into(),
        E::BadResponse(_) => "bad response".into(),
        E::Interrupted(_) => "interrupted".into(),
    }
}

/// Seconds since 1970, for the state file's dates.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_drops_only_the_matching_exchange() {
        let turn = |role: &str, content: &str| Turn {
            role: role.into(),
            content: content.into(),
        };
        let mut history = vec![
            turn("user", "a"),
            turn("assistant", "A"),
            turn("user", "b"),
            turn("assistant", "B"),
        ];
        drop_last_exchange(&mut history, "a");
        assert_eq!(history.len(), 4);
        drop_last_exchange(&mut history, "b");
        assert_eq!(history, vec![turn("user", "a"), turn("assistant", "A")]);
    }
}
