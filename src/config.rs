//! The TOML contract as structs: defaults, environment overrides, validation. Everything
//! that can be wrong with a config is found here (the checks in `validate`), before any
//! network call, and reported as one line that names the key and the fix. Secrets (the bot
//! token, the GigaChat and SaluteSpeech keys) live in [`Secret`], which never prints its value.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Deserialize;

pub mod scrub;
mod validate;

/// The whole config file. Missing keys take their defaults; unknown keys are an error,
/// so a typo like `tokne` is reported instead of silently ignored.
#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub telegram: TelegramConfig,
    pub gigachat: GigaChatConfig,
    pub salutespeech: SaluteSpeechConfig,
    pub bot: BotConfig,
    pub knowledge: KnowledgeConfig,
    pub log: LogConfig,
    pub styles: Vec<Style>,
    /// Where the config came from: a path, or "built-in defaults".
    #[serde(skip)]
    pub source: String,
    /// Keys set by an environment variable, with its name: an error names what the
    /// operator actually set, not the key it overrode.
    #[serde(skip)]
    pub from_env: Vec<(&'static str, &'static str)>,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelegramConfig {
    pub token: Option<Secret>,
    pub api_url: String,
    pub poll_timeout_secs: u64,
    /// Answers as rich messages (Bot API 10.1: formulas, tables, headings); false: Telegram HTML.
    pub rich_messages: bool,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GigaChatConfig {
    /// The Base64 key, always set by [`load`] (if need be from `client_id` + `client_secret`).
    pub credentials: Option<Secret>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    pub scope: String,
    pub model: String,
    pub auth_url: String,
    pub base_url: String,
    pub ca_bundle_file: Option<PathBuf>,
    pub timeout_secs: u64,
    pub profanity_check: bool,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    pub stream: bool,
    /// Pictures: GigaChat may draw (`function_call: auto`, which costs more tokens).
    pub images: bool,
    /// The certificates read from `ca_bundle_file` (DER), checked at load time.
    #[serde(skip)]
    pub ca_certs: Vec<Vec<u8>>,
    /// What to check when OAuth refuses the key: the settings it came from.
    #[serde(skip)]
    pub key_origin: String,
}

/// Speech to text for voice notes; without `credentials` the bot reads text only.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SaluteSpeechConfig {
    /// The SaluteSpeech project's own authorization key (not GigaChat's).
    pub credentials: Option<Secret>,
    pub scope: String,
    pub auth_url: String,
    /// Recognition is `POST {url}/speech:recognize`.
    pub url: String,
    /// What to check when OAuth refuses the key: the settings it came from.
    #[serde(skip)]
    pub key_origin: String,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BotConfig {
    pub default_style: String,
    pub max_input_chars: usize,
    pub state_file: PathBuf,
    pub history_messages: usize,
    pub history_chars: usize,
    pub forget_after_days: u64,
    pub admins: Vec<i64>,
    pub allowed_users: Vec<i64>,
    pub requests_per_minute: u32,
    pub daily_tokens_per_user: u64,
    /// Admins are warned when the configured model's prepaid package falls below this; 0 = off.
    pub low_balance_tokens: u64,
    pub transcript_dir: Option<PathBuf>,
    /// How often a private chat's draft may change while the answer streams. The old name
    /// (from the edited live view the drafts replaced) still works.
    #[serde(alias = "stream_edit_interval_ms")]
    pub draft_interval_ms: u64,
}

/// The reference desk: answers from the owner's `.md` and `.txt` files under `dir`.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KnowledgeConfig {
    /// Empty: off.
    pub dir: PathBuf,
    /// The embedder model (`Embeddings`, `EmbeddingsGigaR`…).
    pub model: String,
    /// At most this many passages go with a question.
    pub top_k: usize,
    /// A passage goes with a question only if its cosine similarity is at least this.
    pub min_score: f32,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub level: String,
    pub messages: bool,
}

/// An answering style: the id users type after `/mode`, the title they see, the system prompt.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Style {
    pub id: String,
    pub title: String,
    pub prompt: String,
}

/// The sections of the file and their keys, as the structs above spell them (aliases too).
/// An error names a key of the file only if it is here: any other text of the line may be a
/// secret in the wrong place. A test checks this table against the structs.
const SECTIONS: [(&str, &[&str]); 7] = [
    ("telegram", &["token", "api_url", "poll_timeout_secs", "rich_messages"]),
    (
        "gigachat",
        &[
            "credentials",
            "client_id",
            "client_secret",
            "scope",
            "model",
            "auth_url",
            "base_url",
            "ca_bundle_file",
            "timeout_secs",
            "profanity_check",
            "temperature",
            "max_tokens",
            "stream",
            "images",
        ],
    ),
    ("salutespeech", &["credentials", "scope", "auth_url", "url"]),
    (
        "bot",
        &[
            "default_style",
            "max_input_chars",
            "state_file",
            "history_messages",
            "history_chars",
            "forget_after_days",
            "admins",
            "allowed_users",
            "requests_per_minute",
            "daily_tokens_per_user",
            "low_balance_tokens",
            "transcript_dir",
            "draft_interval_ms",
            "stream_edit_interval_ms",
        ],
    ),
    ("knowledge", &["dir", "model", "top_k", "min_score"]),
    ("log", &["level", "messages"]),
    ("styles", &["id", "title", "prompt"]),
];

/// Where each secret can be set: its environment variable, and its section and key in the
/// file. `load` scrubs their values out of any error it returns.
const SECRETS: [(&str, &str, &str); 4] = [
    ("TELEGRAM_TOKEN", "telegram", "token"),
    ("GIGACHAT_CREDENTIALS", "gigachat", "credentials"),
    ("GIGACHAT_CLIENT_SECRET", "gigachat", "client_secret"),
    ("SALUTE_SPEECH_CREDENTIALS", "salutespeech", "credentials"),
];

/// A value that must never reach a log or the terminal: `Debug` prints `***`, and there is
/// no `Display`, so the only way to the value is the explicit [`Secret::expose`].
#[derive(Clone, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The value itself: call it only where the secret is sent to its service.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Default for TelegramConfig {
    fn default() -> Self {
        TelegramConfig {
            token: None,
            api_url: "https://api.telegram.org".into(),
            poll_timeout_secs: 30,
            rich_messages: true,
        }
    }
}

impl Default for GigaChatConfig {
    fn default() -> Self {
        GigaChatConfig {
            credentials: None,
            client_id: None,
            client_secret: None,
            scope: "GIGACHAT_API_PERS".into(),
            model: "GigaChat-2-Max".into(),
            auth_url: "https://ngw.devices.sberbank.ru:9443/api/v2/oauth".into(),
            base_url: "https://gigachat.devices.sberbank.ru/api/v1".into(),
            ca_bundle_file: None,
            timeout_secs: 120,
            profanity_check: true,
            temperature: None,
            max_tokens: None,
            stream: true,
            images: false,
            ca_certs: Vec::new(),
            key_origin: String::new(),
        }
    }
}

impl Default for KnowledgeConfig {
    fn default() -> Self {
        KnowledgeConfig {
            dir: PathBuf::new(),
            model: "Embeddings".into(),
            top_k: 4,
            min_score: 0.3,
        }
    }
}

impl Default for SaluteSpeechConfig {
    fn default() -> Self {
        SaluteSpeechConfig {
            credentials: None,
            scope: "SALUTE_SPEECH_PERS".into(),
            auth_url: GigaChatConfig::default().auth_url,
            url: "https://smartspeech.sber.ru/rest/v1".into(),
            key_origin: String::new(),
        }
    }
}

impl Default for BotConfig {
    fn default() -> Self {
        BotConfig {
            default_style: "professor".into(),
            max_input_chars: 4000,
            state_file: "gigabot.db".into(),
            history_messages: 6,
            history_chars: 6000,
            forget_after_days: 30,
            admins: Vec::new(),
            allowed_users: Vec::new(),
            requests_per_minute: 6,
            daily_tokens_per_user: 0,
            low_balance_tokens: 10_000,
            transcript_dir: None,
            draft_interval_ms: 500,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: "info".into(), messages: false }
    }
}

impl Config {
    /// Where a key's value came from, as the operator would look for it: the environment
    /// variable that set it, or the key in the config file.
    pub fn origin(&self, key: &str) -> String {
        validate::origin(&self.from_env, &self.source, key)
    }
}

/// The two styles of the lesson, used when the config defines none.
pub fn builtin_styles() -> Vec<Style> {
    vec![
        Style {
            id: "professor".into(),
            title: "Научный сотрудник".into(),
            prompt: "Отвечай как научный сотрудник".into(),
        },
        Style {
            id: "fairy".into(),
            title: "Сказочный персонаж".into(),
            prompt: "Отвечай как сказочный персонаж".into(),
        },
    ]
}

/// The style ids for a message that lists them: "professor, fairy".
pub fn style_ids(styles: &[Style]) -> String {
    styles.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", ")
}

/// Which services the command talks to: `ask` needs no Telegram token, `backup` no secret.
#[derive(Clone, Copy, PartialEq)]
pub enum Needs {
    TelegramAndGigaChat,
    GigaChatOnly,
    Nothing,
}

/// The config: `--config FILE`, else `$GIGABOT_CONFIG`, else `./config.toml` if present, else
/// the built-in defaults; the environment wins over the file; all of it validated.
pub fn load(explicit: Option<&Path>, needs: Needs) -> Result<Config> {
    let path = explicit
        .map(Path::to_path_buf)
        .or_else(|| env_var("GIGABOT_CONFIG").map(PathBuf::from))
        .or_else(|| Some(PathBuf::from("config.toml")).filter(|p| p.exists()));
    let Some(path) = path else { return load_from(None, env_var, needs) };
    let name = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|err| {
        let err = anyhow::Error::new(err).context(format!("cannot read the config file {name}"));
        tidy(&err, None, env_var)
    })?;
    load_from(Some((&text, &name)), env_var, needs)
}

/// The config from a file's text and name (or the built-in defaults) and the environment
/// `get` (passed in for tests); an error as [`tidy`] leaves it.
fn load_from(
    file: Option<(&str, &str)>,
    get: impl Fn(&str) -> Option<String>,
    needs: Needs,
) -> Result<Config> {
    let hide = |err: anyhow::Error| tidy(&err, file.map(|(text, _)| text), &get);
    let mut config = match file {
        Some((text, name)) => parse(text, name).map_err(hide)?,
        None => Config { source: "built-in defaults (no config file)".into(), ..Config::default() },
    };
    settle(&mut config, &get, needs).map_err(hide)?;
    Ok(config)
}

/// An error as `load` returns it: one line (a path or a key may hold a newline or other
/// control character), and every secret value it can know of replaced with `***`: those
/// of the environment, and those of the file when it reads as TOML at all.
fn tidy(
    err: &anyhow::Error,
    text: Option<&str>,
    get: impl Fn(&str) -> Option<String>,
) -> anyhow::Error {
    let table = text.and_then(|text| text.parse::<toml::Table>().ok());
    let mut secrets = Vec::new();
    for (env, section, key) in SECRETS {
        secrets.extend(get(env).map(|value| value.trim().to_string()));
        let in_file = table.as_ref().and_then(|t| t.get(section)?.get(key)?.as_str());
        secrets.extend(in_file.map(|value| value.trim().to_string()));
    }
    anyhow::anyhow!(one_line(&scrub::scrub(&format!("{err:#}"), &secrets)))
}

/// Parses the TOML text; errors name the file, the line, and the key if the config has it,
/// never a value (a value can be a secret, and so can a stray line).
pub fn parse(text: &str, file_name: &str) -> Result<Config> {
    let mut config: Config = toml::from_str(text)
        .map_err(|err| anyhow::anyhow!(one_line(&scrub::toml_error(&err, text, file_name))))?;
    config.source = file_name.to_string();
    Ok(config)
}

/// Control characters (a newline in a path, a carriage return in a key) shown escaped.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
        .collect()
}

/// From the parsed file to the config the bot runs with: empty values dropped, the
/// environment applied, everything checked. `get` is the environment, passed in for tests.
fn settle(config: &mut Config, get: impl Fn(&str) -> Option<String>, needs: Needs) -> Result<()> {
    drop_empty(config);
    apply_env(config, get);
    validate::validate(config, needs)
}

/// Empty means not set, in the file as in the environment: `credentials = ""` must not win
/// over `client_id` and `client_secret`, nor `ca_bundle_file = ""` be opened as a file.
fn drop_empty(config: &mut Config) {
    let blank = |s: &str| s.trim().is_empty();
    let gc = &mut config.gigachat;
    config.telegram.token.take_if(|t| blank(t.expose()));
    gc.credentials.take_if(|c| blank(c.expose()));
    gc.client_id.take_if(|c| blank(c));
    gc.client_secret.take_if(|c| blank(c.expose()));
    gc.ca_bundle_file.take_if(|p| p.as_os_str().is_empty());
    config.salutespeech.credentials.take_if(|c| blank(c.expose()));
    config.bot.transcript_dir.take_if(|p| p.as_os_str().is_empty());
}

/// Reads an environment variable; an empty value counts as unset (as in most env files).
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// How an override puts the variable's value into the config.
type Set = fn(&mut Config, String);

/// The environment overrides: the variable, the key it sets (an error names the variable),
/// and how. Values are trimmed, but for the URLs (trimmed by their check) and the CA path.
const ENV_OVERRIDES: [(&str, &str, Set); 15] = [
    ("TELEGRAM_TOKEN", "telegram.token", |c, v| c.telegram.token = secret(v)),
    ("TELEGRAM_API_URL", "telegram.api_url", |c, v| c.telegram.api_url = v),
    ("GIGACHAT_CREDENTIALS", "gigachat.credentials", |c, v| c.gigachat.credentials = secret(v)),
    ("GIGACHAT_CLIENT_ID", "gigachat.client_id", |c, v| {
        c.gigachat.client_id = Some(v.trim().into())
    }),
    ("GIGACHAT_CLIENT_SECRET", "gigachat.client_secret", |c, v| {
        c.gigachat.client_secret = secret(v)
    }),
    ("GIGACHAT_SCOPE", "gigachat.scope", |c, v| c.gigachat.scope = v.trim().into()),
    ("GIGACHAT_MODEL", "gigachat.model", |c, v| c.gigachat.model = v.trim().into()),
    ("GIGACHAT_AUTH_URL", "gigachat.auth_url", |c, v| c.gigachat.auth_url = v),
    ("GIGACHAT_BASE_URL", "gigachat.base_url", |c, v| c.gigachat.base_url = v),
    ("GIGACHAT_CA_BUNDLE_FILE", "gigachat.ca_bundle_file", |c, v| {
        c.gigachat.ca_bundle_file = Some(v.into())
    }),
    ("SALUTE_SPEECH_CREDENTIALS", "salutespeech.credentials", |c, v| {
        c.salutespeech.credentials = secret(v)
    }),
    ("SALUTE_SPEECH_SCOPE", "salutespeech.scope", |c, v| c.salutespeech.scope = v.trim().into()),
    ("SALUTE_SPEECH_AUTH_URL", "salutespeech.auth_url", |c, v| c.salutespeech.auth_url = v),
    ("SALUTE_SPEECH_URL", "salutespeech.url", |c, v| c.salutespeech.url = v),
    ("GIGABOT_LOG", "log.level", |c, v| c.log.level = v.trim().to_lowercase()),
];

fn secret(value: String) -> Option<Secret> {
    Some(Secret(value.trim().to_string()))
}

/// Applies the environment overrides (`get`, passed in for tests), noting which keys they set.
fn apply_env(config: &mut Config, get: impl Fn(&str) -> Option<String>) {
    for (env, key, set) in ENV_OVERRIDES {
        if let Some(value) = get(env) {
            set(config, value);
            config.from_env.push((key, env));
        }
    }
}

#[cfg(test)]
mod tests;
