//! What to do with one update: commands, button presses, and questions for GigaChat.
//!
//! The texts users see are the constants right below, so a teacher can change them
//! without reading the logic.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::commands::{KNOWN_COMMANDS, parse_command};
use crate::config::Config;
use crate::gigachat::{self, ChatMessage, Completion, GigaChat};
use crate::render;
use crate::store::{Store, Turn, Unsent};
use crate::stream::{Draft, Typing};
use crate::telegram::{
    self, Chat, ErrorKind, Message, OnFlood, OutgoingMessage, Telegram, Update, User,
};

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
pub(crate) const ADMIN_ANSWERED_PRIVATELY: &str = "Ответил вам в личных сообщениях.";
pub(crate) const ADMIN_ASK_PRIVATELY: &str =
    "Напишите мне в личные сообщения (/start), и я отвечу там: в группе этот ответ увидели бы все.";
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
            last_cleanup: 0,
            draft_pauses: HashMap::new(),
            notices: Notices::default(),
            update_id: 0,
        }
    }

    /// Handles one update. Every failure except a fatal one is dealt with here (a reply to
    /// the user, a log line), so one bad update never stops the loop; a message Telegram
    /// refused ends the update's handling and is counted.
    pub fn handle_update(&mut self, update: Update) -> Result<Report, telegram::Error> {
        let mut report = Report {
            kind: "ignored",
            ..Report::default()
        };
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
                self.count_failure("telegram send");
                report.outcome = match report.outcome.is_empty() {
                    true => format!("not sent: {err}"),
                    false => format!("{}; not sent: {err}", report.outcome),
                };
            }
            Ok(()) => {}
        }
        // What the update changed, saved together with its id.
        self.store.set_last_update_id(id);
        if let Err(err) = self.store.commit() {
            log::error!("{err:#}");
        }
        Ok(report)
    }

    fn dispatch(&mut self, update: Update, report: &mut Report) -> Result<(), telegram::Error> {
        if let Some(message) = update.message {
            report.chat_id = message.chat.id;
            report.user_id = message.sender().map_or(0, |u| u.id);
            report.style = self.style_of(message.chat.id).id.clone();
            self.on_message(message, report)?;
        } else if let Some(query) = update.callback_query {
            report.kind = "callback";
            report.user_id = query.from.id;
            report.chat_id = query.message.as_ref().map_or(query.from.id, |m| m.chat.id);
            self.on_callback(query, report)?;
            report.style = self.style_of(report.chat_id).id.clone();
        } else if update.edited_message.is_some() {
            report.outcome = "edited message ignored".into();
        } else {
            report.outcome = "update kind not handled".into();
        }
        Ok(())
    }

    fn on_message(&mut self, message: Message, report: &mut Report) -> Result<(), telegram::Error> {
        let chat_id = message.chat.id;
        if let Some(new_id) = message.migrate_to_chat_id {
            self.store.move_chat(chat_id, new_id);
            report.outcome = format!("group moved to {new_id}");
            return Ok(());
        }
        let in_group = matches!(message.chat.kind.as_str(), "group" | "supergroup");
        let Some(from) = message
            .sender()
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
            report.outcome = self.notice(chat_id, message.message_id, from.id, NOT_TEXT)?;
            return Ok(());
        }
        report.kind = "text";
        let question = if in_group {
            self.strip_mentions(&message)
        } else {
            message.text.as_deref().unwrap_or("").trim().to_string()
        };
        if question.is_empty() {
            report.outcome = self.notice(chat_id, message.message_id, from.id, EMPTY_QUESTION)?;
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
                self.notice(chat_id, message.message_id, from.id, &text)?
            );
            return Ok(());
        }
        self.ask(
            &message.chat,
            message.message_id,
            &from,
            &question,
            false,
            report,
        )
    }

    /// Checks the user's limits, then asks.
    pub(crate) fn ask(
        &mut self,
        chat: &Chat,
        reply_to: i64,
        from: &User,
        question: &str,
        again: bool,
        report: &mut Report,
    ) -> Result<(), telegram::Error> {
        if let Some(text) = self.over_limit(from.id) {
            report.kind = "limited";
            report.outcome = self.notice(chat.id, reply_to, from.id, &text)?;
            return Ok(());
        }
        self.handle_message(chat, reply_to, Some(from), question, again, report)
    }

    /// The lesson's `handle_message`: asks GigaChat in the chat's style, with the chat's
    /// memory, and replies. `again` re-asks the last question (/retry), replacing the
    /// last exchange in memory.
    fn handle_message(
        &mut self,
        chat: &Chat,
        reply_to: i64,
        from: Option<&User>,
        question: &str,
        again: bool,
        report: &mut Report,
    ) -> Result<(), telegram::Error> {
        let chat_id = chat.id;
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

        // Ask GigaChat; meanwhile "typing…", and in a private chat the answer as a draft.
        let started = Instant::now();
        let (result, previewed) = self.ask_gigachat(chat, reply_to, &messages);
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
                // What the draft showed of a broken stream stays, followed by why it ended.
                let mut chunks = match err {
                    gigachat::Error::Interrupted(_) | gigachat::Error::Timeout(_) => {
                        render::markdown_chunks(&previewed)
                    }
                    _ => Vec::new(),
                };
                chunks.extend(render::plain_chunks(&user_text(&err, &self.gigachat.model)));
                return self.deliver(chat_id, Some(reply_to), &chunks, None, OnFlood::Wait);
            }
        };
        let answer = completion.content.trim();
        if completion.finish_reason == "blacklist" {
            report.outcome = "refused by gigachat (blacklist)".into();
            self.count_failure("gigachat blacklist");
            self.reply(chat_id, reply_to, BLACKLIST)?;
            return Ok(());
        }
        let mut chunks = render::markdown_chunks(answer);
        if chunks.is_empty() {
            // Empty, or nothing a user would see (say, only a Markdown link definition).
            report.outcome = format!("empty answer (request {})", completion.request_id);
            self.count_failure("gigachat empty answer");
            self.reply(chat_id, reply_to, BAD_ANSWER)?;
            return Ok(());
        }
        if completion.finish_reason == "length" {
            chunks = render::markdown_chunks(&format!("{answer}\n\n{CUT_SHORT}"));
        }
        self.remember(chat_id, question, answer, history);
        let user_id = from.map_or(0, |u| u.id);
        self.write_transcript(chat_id, user_id, &style.id, question, answer, tokens);
        self.deliver(chat_id, Some(reply_to), &chunks, None, OnFlood::Wait)?;
        self.store.count_answer();
        report.outcome = format!("answered in {} message(s)", chunks.len());
        Ok(())
    }

    /// Notes the question in the chat's state; returns the memory to send with it (without
    /// the last exchange when it is asked again with /retry).
    fn start_exchange(&mut self, chat_id: i64, question: &str, again: bool) -> Vec<Turn> {
        self.store.note_question(chat_id, question, unix_now());
        let mut history = self.store.history(chat_id);
        if again {
            drop_last_exchange(&mut history, question);
        }
        history
    }

    /// Asks GigaChat. "typing…" shows while it thinks; in a private chat with
    /// `gigachat.stream` the answer then grows in a draft. Groups get no draft (Telegram
    /// allows drafts in private chats only), so there GigaChat is asked for the whole
    /// answer at once. Returns the answer and the text the draft received.
    fn ask_gigachat(
        &mut self,
        chat: &Chat,
        reply_to: i64,
        messages: &[ChatMessage],
    ) -> (Result<Completion, gigachat::Error>, String) {
        let (telegram, gigachat, typing) = (&self.telegram, &mut self.gigachat, &mut self.typing);
        typing.start(chat.id);
        if !(self.config.gigachat.stream && chat.kind == "private") {
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
        let now = unix_now();
        if now < self.last_cleanup + 3600 {
            return;
        }
        self.last_cleanup = now;
        let days = self.config.bot.forget_after_days;
        self.store.begin();
        let forgotten = self.store.forget_silent(now, days);
        if let Err(err) = self.store.commit() {
            log::error!("{err:#}");
        }
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
        self.count_failure("bug");
        if let Some((chat_id, reply_to)) = origin
            && let Err(err) = self.send_plain(chat_id, reply_to, APOLOGY, None)
        {
            log::warn!("{err}");
        }
        self.store.set_last_update_id(update_id);
        if let Err(err) = self.store.commit() {
            log::error!("{err:#}");
        }
    }

    fn count_failure(&mut self, kind: &str) {
        self.store.count_failure(kind);
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
        self.store.put_history(chat_id, &history);
    }

    /// Sends messages made by `render`: the first replies to `reply_to`, the last carries
    /// the buttons. Everything the bot says goes out here: answers, error texts, refusals,
    /// notices. While an answer of several messages goes out, what is left of it is saved
    /// after each message, so a restart sends only the rest (a kill between Telegram
    /// taking a message and that save, a few milliseconds, can repeat that one message).
    /// `on_flood` says whether a 429 is waited out or returned at once.
    pub(crate) fn deliver(
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
            let err = match self.telegram.send_message(&message, on_flood) {
                Ok(_) => return Ok(chat_id),
                Err(err) => err,
            };
            if matches!(err.kind, telegram::ErrorKind::Lost(_)) {
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
        let unsent = Unsent {
            chat_id,
            chunks: rest.to_vec(),
        };
        self.store.set_unsent(Some(&unsent));
        if self.update_id > 0 {
            self.store.set_last_update_id(self.update_id);
        }
        if let Err(err) = self.store.commit() {
            log::error!("{err:#}");
        }
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
            Err(err) => log::warn!(
                "chat {}: {err}; the rest of that answer is dropped",
                unsent.chat_id
            ),
            Ok(()) => {}
        }
        self.store.set_unsent(None);
        if let Err(err) = self.store.commit() {
            log::error!("{err:#}");
        }
        Ok(())
    }

    /// Sends one of our own texts as a reply; returns the outcome for the log.
    pub(crate) fn reply(
        &mut self,
        chat_id: i64,
        reply_to: i64,
        text: &str,
    ) -> Result<String, telegram::Error> {
        self.send_plain(chat_id, Some(reply_to), text, None)
    }

    /// Sends a notice — "text only", "too long", "write a question", "not allowed", "over
    /// the limit" — in reply to a message of `user_id` (the sender as access counts them),
    /// within the user's notice budget and without waiting out a 429: a notice is only a
    /// courtesy, and waiting for it would hold up everyone else's answers. Returns the
    /// outcome for the log.
    pub(crate) fn notice(
        &mut self,
        chat_id: i64,
        reply_to: i64,
        user_id: i64,
        text: &str,
    ) -> Result<String, telegram::Error> {
        if !self.notices.allow(user_id, Instant::now()) {
            return Ok("notice suppressed: the user's notice budget is spent".into());
        }
        let chunks = render::plain_chunks(text);
        match self.deliver(chat_id, Some(reply_to), &chunks, None, OnFlood::GiveUp) {
            Ok(()) => Ok("replied".into()),
            Err(err) if matches!(err.kind, ErrorKind::RetryAfter(_)) => {
                log::info!("chat {chat_id}: {err}; the notice is dropped, not waited for");
                Ok(format!("notice dropped: {err}"))
            }
            Err(err) => Err(err),
        }
    }

    /// Sends one of our own texts, optionally as a reply and with buttons.
    pub(crate) fn send_plain(
        &mut self,
        chat_id: i64,
        reply_to: Option<i64>,
        text: &str,
        keyboard: Option<&Value>,
    ) -> Result<String, telegram::Error> {
        let chunks = render::plain_chunks(text);
        self.deliver(chat_id, reply_to, &chunks, keyboard, OnFlood::Wait)?;
        Ok("replied".into())
    }
}

/// Notices a user gets at most in [`NOTICE_WINDOW`]. Five lets a person see every kind in a
/// row (a sticker, a voice note, a photo, a too long text…) and fits Telegram's burst of
/// about five messages to one private chat, so notices alone never trip its flood control;
/// forty stickers get five replies, then silence.
pub(crate) const NOTICE_BUDGET: usize = 5;
/// Ten minutes: a flooder gets at most 30 notices an hour instead of 40 a minute, and a
/// person who comes back later is told again.
pub(crate) const NOTICE_WINDOW: Duration = Duration::from_secs(10 * 60);

/// The notice budget of each user: when they were last sent notices. Kept in memory only:
/// a restart forgets it, which at worst gives a flooder another handful. Users whose
/// notices have all left the window are forgotten at most once a window, so the map holds
/// only users told something in the last two windows, at most [`NOTICE_BUDGET`] times each.
/// Admins are not exempt: they rarely get notices, and the budget guards the loop and the
/// bot's standing with Telegram, whoever floods.
#[derive(Debug, Default)]
pub(crate) struct Notices {
    sent: HashMap<i64, Vec<Instant>>,
    pruned: Option<Instant>,
}

impl Notices {
    /// Whether `user_id` may get a notice at `now`; if so it is counted (whether or not
    /// Telegram then takes it: a flood is cut off either way). A plain decision over the
    /// state and the clock, so that tests can set the time.
    pub(crate) fn allow(&mut self, user_id: i64, now: Instant) -> bool {
        let recent = |t: &Instant| now.saturating_duration_since(*t) < NOTICE_WINDOW;
        if self
            .pruned
            .is_none_or(|at| now.saturating_duration_since(at) >= NOTICE_WINDOW)
        {
            self.pruned = Some(now);
            self.sent.retain(|_, sent| sent.iter().any(recent));
        }
        let sent = self.sent.entry(user_id).or_default();
        sent.retain(recent);
        if sent.len() >= NOTICE_BUDGET {
            return false;
        }
        sent.push(now);
        true
    }

    /// Users the budget remembers now.
    #[cfg(test)]
    fn users(&self) -> usize {
        self.sent.len()
    }
}

/// Passes on a fatal error; logs any other (the update goes on without that call).
pub(crate) fn fatal_only(err: telegram::Error) -> Result<(), telegram::Error> {
    if err.is_fatal() {
        return Err(err);
    }
    log::info!("{err}");
    Ok(())
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

    #[test]
    fn the_notice_budget_lifts_after_its_window_and_is_per_user() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut notices = Notices::default();
        for i in 0..NOTICE_BUDGET as u64 {
            assert!(
                notices.allow(1, t0 + secs(i)),
                "notice {i} is within the budget"
            );
        }
        assert!(!notices.allow(1, t0 + secs(60)), "the budget is spent");
        assert!(
            !notices.allow(1, t0 + NOTICE_WINDOW - secs(1)),
            "still spent"
        );
        // A fresh user is not held to another's budget.
        assert!(notices.allow(2, t0 + secs(60)));
        // The first notice has left the window: room for exactly one more.
        assert!(notices.allow(1, t0 + NOTICE_WINDOW));
        assert!(!notices.allow(1, t0 + NOTICE_WINDOW));
        // Refused tries do not count: a whole window after the last notice, a full budget.
        let later = t0 + NOTICE_WINDOW * 2;
        for i in 0..NOTICE_BUDGET as u64 {
            assert!(
                notices.allow(1, later + secs(i)),
                "notice {i} after the window"
            );
        }
        assert!(!notices.allow(1, later + secs(10)));
    }

    #[test]
    fn users_whose_notices_are_old_are_forgotten() {
        let t0 = Instant::now();
        let mut notices = Notices::default();
        for user in 0..1000 {
            assert!(notices.allow(user, t0));
        }
        assert_eq!(notices.users(), 1000);
        // A window later one more user writes: the thousand are forgotten.
        assert!(notices.allow(5000, t0 + NOTICE_WINDOW));
        assert_eq!(notices.users(), 1);
    }
}
