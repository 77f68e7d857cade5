//! Every text the bot's users see, in one place: a teacher changes a word here without
//! reading any logic. `{name}`-style placeholders are filled in where the text is used.

pub const START: &str =
    "Здравствуйте, {name}! Я отвечаю на вопросы с помощью GigaChat. Просто напишите вопрос.";
/// The GigaChat balance, in /stats and `check`: the prepaid packages, or none.
pub const BALANCE: &str = "Баланс GigaChat, токенов: {packages}";
// The reference desk (`[knowledge]`): what GigaChat is told with the passages found, and
// the line under an answer that used them.
pub const KNOWLEDGE_INTRO: &str = "Ответь на вопрос по фрагментам документов ниже. Если в них нет ответа, так и скажи, а потом ответь, как знаешь.";
pub const KNOWLEDGE_QUESTION: &str = "Вопрос: {question}";
pub const SOURCES: &str = "Источники: {files}";
/// `gigabot check` and `gigabot index` on the reference desk's index.
pub const INDEX_CURRENT: &str = "✓ справочная: в индексе документов {files}, фрагментов {passages}; он совпадает с файлами в knowledge.dir";
pub const INDEX_STALE: &str = "! справочная: в индексе документов {files}, фрагментов {passages}, но файлы в knowledge.dir изменились — обновите индекс: gigabot index (или перезапустите бота)";
pub const NO_EMBEDDER: &str = "✗ справочная: модели эмбеддингов {model} нет в списке: задайте knowledge.model одной из: {models}";
pub const INDEX_MISSING: &str =
    "! справочная: индекса ещё нет — постройте его: gigabot index (или запустите бота)";
pub const INDEXED: &str = "Индекс справочной: документов {documents}, из них заново проиндексировано {embedded}, удалено {removed}; фрагментов проиндексировано {passages}, запросов к GigaChat {calls}, токенов {tokens}";
/// To each admin, privately, at most once a day (`bot.low_balance_tokens`).
pub const LOW_BALANCE: &str = "⚠️ В пакете токенов GigaChat для модели {model} осталось {left} — меньше порога bot.low_balance_tokens. Пополните пакет в личном кабинете GigaChat, пока бот отвечает.";
pub const BALANCE_USED_UP: &str = "⚠️ GigaChat ответил 402: пакет токенов для модели {model} закончился, и бот не может отвечать на вопросы. Пополните пакет в личном кабинете GigaChat или выберите в gigachat.model модель с оплатой по факту.";
pub const PAY_AS_YOU_GO: &str = "Баланс GigaChat: оплата по факту (пакетов токенов нет)";
/// `gigabot check`, when anyone may talk to the bot and spend tokens without a daily cap.
pub const OPEN_TO_EVERYONE: &str = "! доступ: бот отвечает любому пользователю Telegram, и дневного лимита токенов нет — любой, кто найдёт бота, тратит ваши токены GigaChat. Задайте bot.admins (ваш id — в ответе бота на /start), bot.allowed_users или bot.daily_tokens_per_user.";
/// Under /start and /help: the owner of a new bot learns the id to put into `bot.admins`.
pub const YOUR_ID: &str =
    "Ваш Telegram id: {id} (его владелец бота вписывает в bot.admins или bot.allowed_users).";
pub const COMMANDS: &str = "Команды:\n\
/mode — выбрать стиль ответов\n\
/reset — забыть разговор и начать заново\n\
/retry — спросить последний вопрос ещё раз\n\
/help — эта справка";
pub const GROUP_HINT: &str = "В группе я отвечаю, когда ко мне обращаются через @имя, отвечают на моё сообщение или пишут команду.";
pub const UNKNOWN_COMMAND: &str = "Такой команды я не знаю.";
pub const NOT_TEXT: &str =
    "Такое я не понимаю: только текст, фото и документы. Напишите вопрос словами, пожалуйста.";
pub const EMPTY_QUESTION: &str = "Напишите вопрос после обращения ко мне.";
pub const TOO_LONG: &str = "Слишком длинное сообщение: {len} символов, а я принимаю не больше {max}. Сократите его, пожалуйста.";
pub const CHOOSE_STYLE: &str = "Выберите стиль ответов. Сейчас: «{title}».";
pub const NO_SUCH_STYLE: &str = "Такого стиля нет. Выберите один из этих:";
pub const STYLE_SET: &str = "Теперь я отвечаю в стиле «{title}».";
pub const STYLE_TOAST: &str = "Стиль: {title}";
pub const STALE_BUTTON: &str = "Эта кнопка устарела. Отправьте /mode, чтобы выбрать стиль.";
pub const APOLOGY: &str = "Извините, при обработке этого сообщения случилась ошибка. Попробуйте ещё раз или напишите по-другому.";
pub const RESET_DONE: &str = "Я забыл наш разговор. Начнём заново!";
pub const NOTHING_TO_RETRY: &str = "Мне нечего повторить: сначала задайте вопрос.";

// Photos and documents. The questions are GigaChat's when the user sent no caption; the
// notes are what memory keeps instead of the file.
pub const PHOTO_QUESTION: &str = "Что на этом изображении? Опиши и объясни.";
pub const DOCUMENT_QUESTION: &str = "О чём этот документ? Перескажи главное.";
pub const PHOTO_NOTE: &str = "[фото]";
pub const DOCUMENT_NOTE: &str = "[документ {name}]";
pub const FILE_TOO_BIG: &str = "Файл слишком большой ({size} МБ): я принимаю фото до {image_max} МБ и документы до {text_max} МБ.";
pub const FILE_TYPE: &str = "Такие файлы я не читаю: пришлите фото (JPEG, PNG, TIFF, BMP) или документ TXT, PDF, DOC, DOCX, EPUB, PPT, PPTX.";
pub const NO_IMAGES: &str = "Модель «{model}» не видит изображений, поэтому фото я не прочитаю — пришлите документ или спросите текстом.";
pub const DOWNLOAD_FAILED: &str =
    "Не удалось скачать файл из Telegram — пришлите его ещё раз, пожалуйста.";
pub const UPLOAD_REFUSED: &str =
    "GigaChat не принял этот файл (ошибка {status}) — попробуйте другой файл или спросите текстом.";
pub const FILE_REFUSED: &str = "GigaChat не смог прочитать этот файл (ошибка {status}) — попробуйте другой файл или спросите текстом.";

// Voice notes (SaluteSpeech). VOICE_HEARD shows what was recognized, in «», before the answer.
pub const VOICE_HEARD: &str = "Распознал: «{text}»";
pub const VOICE_TOO_LONG: &str = "Голосовое длиннее минуты ({secs} с): я распознаю записи до {max} секунд — запишите покороче или напишите текстом.";
pub const VOICE_DOWNLOAD_FAILED: &str =
    "Не удалось скачать голосовое из Telegram — отправьте его ещё раз, пожалуйста.";
pub const VOICE_EMPTY: &str =
    "Речь в записи не удалось разобрать — запишите ещё раз почётче или напишите текстом.";
pub const VOICE_FAILED: &str =
    "Не удалось распознать голосовое (ошибка {status}) — попробуйте ещё раз или напишите текстом.";
pub const VOICE_UNREACHABLE: &str =
    "Не удалось распознать голосовое: сервис распознавания речи недоступен — напишите текстом.";

// Access and limits.
pub const NOT_ALLOWED: &str = "Извините, этот бот работает только для приглашённых пользователей. Ваш id: {id} — передайте его владельцу бота.";
pub const ACCESS_REQUEST: &str = "Новый пользователь хочет поговорить с ботом: {name}, id {id}.";
pub const ALLOW_BUTTON: &str = "Разрешить";
pub const DENY_BUTTON: &str = "Отклонить";
pub const ALLOWED: &str = "Пользователю {id} доступ разрешён.";
pub const DENIED: &str = "Пользователю {id} в доступе отказано.";
pub const IN_CONFIG: &str = "Пользователь {id} указан в конфиге (bot.admins или bot.allowed_users): командой его не убрать, измените конфиг.";
pub const ADMIN_USAGE: &str = "Укажите id пользователя: /{cmd} 123456789";
pub const ADMIN_ANSWERED_PRIVATELY: &str = "Ответил вам в личных сообщениях.";
pub const ADMIN_ASK_PRIVATELY: &str =
    "Напишите мне в личные сообщения (/start), и я отвечу там: в группе этот ответ увидели бы все.";
pub const WELCOME_ALLOWED: &str = "Вам открыли доступ к боту. Задайте вопрос!";
pub const RATE_LIMIT: &str =
    "Слишком много вопросов: не больше {n} в минуту. Напишите снова через {secs} с.";
pub const TOKEN_BUDGET: &str = "Ваш дневной лимит ({budget} токенов GigaChat) исчерпан. Напишите снова после полуночи (через {wait}).";

// GigaChat failures. The first three are the lesson's own texts.
pub const AUTH_FAILED: &str = "Ошибка авторизации в GigaChat API.";
pub const BAD_ANSWER: &str = "Не удалось получить корректный ответ от GigaChat API.";
pub const HTTP_ERROR: &str = "Ошибка при получении ответа от GigaChat API: {status}";
pub const RATE_LIMITED: &str = "GigaChat перегружен, повторите через минуту.";
pub const PAYMENT_REQUIRED: &str =
    "У владельца бота закончились токены GigaChat (402). Попробуйте позже.";
pub const UNKNOWN_MODEL: &str =
    "Модель «{model}» недоступна в GigaChat (404). Владельцу бота: проверьте gigachat.model.";
pub const TOO_LARGE: &str = "Разговор стал слишком длинным для GigaChat. Начните заново: /reset";
pub const SERVER_ERROR: &str = "GigaChat временно не работает (ошибка {status}). Повторите позже.";
pub const TIMEOUT: &str = "GigaChat не ответил вовремя. Повторите вопрос чуть позже.";
pub const UNREACHABLE: &str = "Не удалось связаться с GigaChat. Повторите позже.";
pub const INTERRUPTED: &str = "Ответ GigaChat оборвался на полуслове. Повторите вопрос: /retry";
pub const BLACKLIST: &str =
    "GigaChat не отвечает на вопросы на эту тему. Попробуйте спросить о чём-нибудь другом.";
// Pictures GigaChat drew (gigachat.images). The memory keeps the note in place of a picture.
pub const PICTURE_NOTE: &str = "[рисунок]";
pub const PICTURE_NOT_FETCHED: &str =
    "_(GigaChat нарисовал картинку, но скачать её не удалось. Попросите нарисовать ещё раз.)_";
pub const PICTURE_NOT_SENT: &str =
    "_(GigaChat нарисовал картинку, но Telegram её не принял. Попросите нарисовать ещё раз.)_";
pub const PICTURES_OFF: &str = "_(GigaChat прислал картинку, но рисунки в этом боте выключены.)_";
pub const CUT_SHORT: &str = "_(Ответ обрезан: GigaChat достиг ограничения длины.)_";
/// The last notice a chat's budget allows ends with this ({n}: minutes until the next can go).
pub const NOTICES_SPENT: &str = "(Следующие такие сообщения я пропущу: ближайшие {n} мин.)";
// Guest mode: `@bot вопрос` in a chat the bot is not a member of.
/// After a guest answer that was longer than one message ({bot}: the bot's @username).
pub const GUEST_CUT: &str = "(Ответ длиннее, чем помещается здесь. Спросите меня в личном чате — t.me/{bot} — и я пришлю его целиком.)";
/// `gigabot check`, from getMe: whether users can ask the bot in chats it is not a member of.
pub const GUEST_ON: &str =
    "• гостевой режим: включён — бота можно спросить «@имя_бота вопрос» в любом чате";
pub const GUEST_OFF: &str = "• гостевой режим: выключен — включите его у @BotFather (настройки бота), чтобы бота можно было спросить в любом чате";
/// A command or anything but a question, asked as a guest.
pub const GUEST_QUESTIONS_ONLY: &str =
    "В гостевом режиме я только отвечаю на вопросы. Команды — в личном чате со мной.";
/// After an answer the user stopped with the Stop button; memory keeps it with this note.
pub const STOPPED: &str = "_(Остановлено по вашей просьбе.)_";
/// The "Thinking…" placeholder of a rich draft, before GigaChat's first word.
pub const THINKING: &str = "Думаю…";
pub const TOO_MANY_MESSAGES: &str = "(Ответ слишком длинный для Telegram: я показал его начало, {n} сообщений. Попросите продолжить или сократить.)";

// Seen by GigaChat, not by users: before a question that replies to or quotes a message
// comes this line, then that message (or the quoted part) in «», then the question.
pub const REPLY_CONTEXT: &str = "Мой вопрос относится к этому тексту:";

/// The commands shown in Telegram's menu (`setMyCommands`).
pub const MENU: &[(&str, &str)] = &[
    ("start", "Начать и узнать, что я умею"),
    ("mode", "Выбрать стиль ответов"),
    ("reset", "Забыть разговор и начать заново"),
    ("retry", "Спросить последний вопрос ещё раз"),
    ("help", "Справка"),
];

// The admin's reports (/users, /stats).
pub const USERS: &str = "Доступ: {mode}.\nАдминистраторы (конфиг): {admins}\nРазрешены в конфиге: {allowed}\nРазрешены командой: {granted}\nОтклонены командой: {denied}";
pub const OPEN_TO_ALL: &str = "открыт для всех, кроме отклонённых";
pub const ALLOWED_ONLY: &str = "только для разрешённых";
pub const STATS: &str = "Статистика\nРаботает: {uptime}\nОтветов: {answers}\nОшибки: {failures}\nТокенов сегодня: {tokens_today}, всего: {tokens}, из них из кэша GigaChat (не оплачиваются): {cached} ({share}%)\nЧатов: {chats}, пользователей: {users}";
pub const NO_FAILURES: &str = "нет";
pub const EMBEDDING_TOKENS: &str = "\nТокенов на поиск по документам (эмбеддинги): {tokens}";
pub const MOST_ACTIVE: &str = "\nСамые активные сегодня:";
pub const ACTIVE_USER: &str = "\n{n}. {name} ({id}) — вопросов: {requests}, токенов: {tokens}";
pub const HOURS_MINUTES: &str = "{h} ч {m} мин";
pub const CURRENT_STYLE: &str = "Сейчас мой стиль: «{title}».";
