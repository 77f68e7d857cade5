//! The TOML contract as structs: defaults, environment overrides, validation.
//!
//! Everything that can be wrong with a config is found here, before any network call, and
//! reported as one line that names the key and the fix. Secrets (the bot token, the GigaChat
//! key) live in [`Secret`], which never prints its value.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::prelude::{BASE64_STANDARD, Engine as _};
use serde::Deserialize;

/// The whole config file. Missing keys take their defaults; unknown keys are an error,
/// so a typo like `tokne` is reported instead of silently ignored.
#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub telegram: TelegramConfig,
    pub gigachat: GigaChatConfig,
    pub bot: BotConfig,
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

/// Where a key's value came from, as the operator would look for it: the environment
/// variable that set it, or the key in the config file.
fn origin(from_env: &[(&'static str, &'static str)], source: &str, key: &str) -> String {
    match from_env.iter().find(|(k, _)| *k == key) {
        Some((_, env)) => env.to_string(),
        None if source.starts_with("built-in") => key.to_string(),
        None => format!("{key} in {source}"),
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelegramConfig {
    pub token: Option<Secret>,
    pub api_url: String,
    pub poll_timeout_secs: u64,
    /// Where the token came from (see [`Config::origin`]), for "the token is wrong".
    #[serde(skip)]
    pub token_origin: String,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GigaChatConfig {
    /// The Base64 authorization key. After [`load`] it is always set (built from
    /// `client_id` + `client_secret` if need be).
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
    /// The certificates read from `ca_bundle_file` (DER), checked at load time.
    #[serde(skip)]
    pub ca_certs: Vec<Vec<u8>>,
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
    pub transcript_dir: Option<PathBuf>,
    /// How often a private chat's draft may change while the answer streams. The old name
    /// (from the edited live view the drafts replaced) still works.
    #[serde(alias = "stream_edit_interval_ms")]
    pub draft_interval_ms: u64,
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
            token_origin: String::new(),
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
            ca_certs: Vec::new(),
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
            transcript_dir: None,
            draft_interval_ms: 500,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            messages: false,
        }
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

/// Which services the command talks to: `ask` needs no Telegram token, `backup` no secret.
#[derive(Clone, Copy, PartialEq)]
pub enum Needs {
    TelegramAndGigaChat,
    GigaChatOnly,
    Nothing,
}

/// Finds, reads, overrides from the environment and validates the config.
///
/// Lookup: `--config FILE`, else `$GIGABOT_CONFIG`, else `./config.toml` if present, else the
/// built-in defaults. Environment variables win over the file.
pub fn load(explicit: Option<&Path>, needs: Needs) -> Result<Config> {
    // A path or key may hold a newline or other control character: the error stays one line.
    find_and_load(explicit, needs).map_err(|err| anyhow::anyhow!(one_line(&format!("{err:#}"))))
}

fn find_and_load(explicit: Option<&Path>, needs: Needs) -> Result<Config> {
    let env_path = env_var("GIGABOT_CONFIG").map(PathBuf::from);
    let path = match (explicit, env_path) {
        (Some(path), _) => Some(path.to_path_buf()),
        (None, Some(path)) => Some(path),
        (None, None) => Some(PathBuf::from("config.toml")).filter(|p| p.exists()),
    };
    let mut config = match &path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the config file {}", path.display()))?;
            parse(&text, &path.display().to_string())?
        }
        None => Config {
            source: "built-in defaults (no config file)".into(),
            ..Config::default()
        },
    };
    settle(&mut config, env_var, needs)?;
    Ok(config)
}

/// Parses the TOML text; errors name the file, the line, and the key, never the value
/// (a value can be a secret).
pub fn parse(text: &str, file_name: &str) -> Result<Config> {
    let mut config: Config = toml::from_str(text).map_err(|err| {
        let message = err.message().trim_end_matches('\n').replace('\n', " ");
        match err.span() {
            Some(span) => {
                let before = text.get(..span.start).unwrap_or(text);
                let line = before.matches('\n').count() + 1;
                let key = key_at_line(text, line);
                anyhow::anyhow!(one_line(&format!("{file_name}:{line}: {key}{message}")))
            }
            None => anyhow::anyhow!(one_line(&format!("{file_name}: {message}"))),
        }
    })?;
    config.source = file_name.to_string();
    Ok(config)
}

/// Control characters (a newline in a path, a carriage return in a key) shown escaped.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// "`[telegram] token`: " for the line of an error, so the user sees which key is wrong.
/// Only the key is shown, never the rest of the line: in a line like `token: "123:AA…"`
/// (a colon for `=`) the rest is the secret.
fn key_at_line(text: &str, line: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let Some(current) = lines.get(line.saturating_sub(1)) else {
        return String::new();
    };
    let section = lines[..line.saturating_sub(1)]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('['))
        .map(|l| format!("{} ", l.split('#').next().unwrap_or(l).trim()))
        .unwrap_or_default();
    let current = current.trim_start();
    if current.starts_with('[') {
        // A table header: its name is not a secret, but cut it at the closing bracket.
        let header = current.split(']').next().unwrap_or("");
        return format!("`{}]`: ", header.chars().take(60).collect::<String>());
    }
    let key: String = current
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .collect();
    match key.is_empty() {
        true => String::new(),
        false => format!("`{section}{key}`: "),
    }
}

/// From the parsed file to the config the bot runs with: empty values dropped, the
/// environment applied, everything checked. `get` is the environment, passed in for tests.
fn settle(config: &mut Config, get: impl Fn(&str) -> Option<String>, needs: Needs) -> Result<()> {
    drop_empty(config);
    apply_env(config, get)?;
    validate(config, needs)
}

/// Empty means not set, in the file as in the environment: `credentials = ""` must not win
/// over `client_id` and `client_secret`, nor `ca_bundle_file = ""` be opened as a file.
fn drop_empty(config: &mut Config) {
    let blank = |s: &str| s.trim().is_empty();
    let tg = &mut config.telegram;
    tg.token = tg.token.take().filter(|t| !blank(t.expose()));
    let gc = &mut config.gigachat;
    gc.credentials = gc.credentials.take().filter(|c| !blank(c.expose()));
    gc.client_id = gc.client_id.take().filter(|c| !blank(c));
    gc.client_secret = gc.client_secret.take().filter(|c| !blank(c.expose()));
    gc.ca_bundle_file = gc
        .ca_bundle_file
        .take()
        .filter(|p| !p.as_os_str().is_empty());
    let bot = &mut config.bot;
    bot.transcript_dir = bot
        .transcript_dir
        .take()
        .filter(|p| !p.as_os_str().is_empty());
}

/// Reads an environment variable; an empty value counts as unset (as in most env files).
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Applies the environment overrides, noting which keys they set. `get` is the
/// environment, passed in for tests.
fn apply_env(config: &mut Config, get: impl Fn(&str) -> Option<String>) -> Result<()> {
    let mut from_env = Vec::new();
    let mut var = |env: &'static str, key: &'static str| {
        let value = get(env)?;
        from_env.push((key, env));
        Some(value)
    };
    let tg = &mut config.telegram;
    let gc = &mut config.gigachat;
    if let Some(v) = var("TELEGRAM_TOKEN", "telegram.token") {
        tg.token = Some(Secret(v.trim().to_string()));
    }
    if let Some(v) = var("TELEGRAM_API_URL", "telegram.api_url") {
        tg.api_url = v;
    }
    if let Some(v) = var("GIGACHAT_CREDENTIALS", "gigachat.credentials") {
        gc.credentials = Some(Secret(v.trim().to_string()));
    }
    if let Some(v) = var("GIGACHAT_CLIENT_ID", "gigachat.client_id") {
        gc.client_id = Some(v.trim().to_string());
    }
    if let Some(v) = var("GIGACHAT_CLIENT_SECRET", "gigachat.client_secret") {
        gc.client_secret = Some(Secret(v.trim().to_string()));
    }
    if let Some(v) = var("GIGACHAT_SCOPE", "gigachat.scope") {
        gc.scope = v.trim().to_string();
    }
    if let Some(v) = var("GIGACHAT_MODEL", "gigachat.model") {
        gc.model = v.trim().to_string();
    }
    if let Some(v) = var("GIGACHAT_AUTH_URL", "gigachat.auth_url") {
        gc.auth_url = v;
    }
    if let Some(v) = var("GIGACHAT_BASE_URL", "gigachat.base_url") {
        gc.base_url = v;
    }
    if let Some(v) = var("GIGACHAT_CA_BUNDLE_FILE", "gigachat.ca_bundle_file") {
        gc.ca_bundle_file = Some(PathBuf::from(v));
    }
    if let Some(v) = var("GIGABOT_LOG", "log.level") {
        config.log.level = v.trim().to_lowercase();
    }
    config.from_env = from_env;
    Ok(())
}

const SCOPES: [&str; 3] = ["GIGACHAT_API_PERS", "GIGACHAT_API_B2B", "GIGACHAT_API_CORP"];

fn validate(config: &mut Config, needs: Needs) -> Result<()> {
    let (from_env, source) = (config.from_env.clone(), config.source.clone());
    let name = |key: &str| origin(&from_env, &source, key);
    let tg = &mut config.telegram;
    tg.api_url = check_url(&name("telegram.api_url"), &tg.api_url, false)?;
    in_range(
        "telegram.poll_timeout_secs",
        tg.poll_timeout_secs,
        1..=50,
        "seconds (Telegram holds a long poll 50 s at most)",
    )?;
    tg.token_origin = name("telegram.token");
    if let Some(token) = &tg.token
        && !looks_like_bot_token(token.expose())
    {
        bail!(
            "{} does not look like a bot token (digits, a colon, then letters): copy it again from @BotFather",
            tg.token_origin
        );
    }

    let gc = &mut config.gigachat;
    gc.auth_url = check_url(&name("gigachat.auth_url"), &gc.auth_url, true)?;
    gc.base_url = check_url(&name("gigachat.base_url"), &gc.base_url, true)?;
    if !SCOPES.contains(&gc.scope.as_str()) {
        bail!(
            "{} = {:?} is not a GigaChat scope: use GIGACHAT_API_PERS (individuals), GIGACHAT_API_B2B or GIGACHAT_API_CORP",
            name("gigachat.scope"),
            gc.scope
        );
    }
    if gc.model.trim().is_empty() {
        bail!(
            "{} is empty: set it to a model name such as GigaChat-2-Max",
            name("gigachat.model")
        );
    }
    // Up to ten minutes: the loop waits for GigaChat while every other user waits too.
    in_range("gigachat.timeout_secs", gc.timeout_secs, 1..=600, "seconds")?;
    if let Some(t) = gc.temperature
        && !(t > 0.0 && t.is_finite())
    {
        bail!("gigachat.temperature = {t} must be greater than 0 (GigaChat rejects 0)");
    }
    if let Some(max) = gc.max_tokens {
        in_range(
            "gigachat.max_tokens",
            max.into(),
            1..=1_000_000,
            "tokens (or remove it for the model's default)",
        )?;
    }
    // Every missing secret at once: an operator setting up fixes them in one go.
    let mut missing = Vec::new();
    if needs == Needs::TelegramAndGigaChat && tg.token.is_none() {
        missing.push(
            "TELEGRAM_TOKEN is not set: get a token from @BotFather and set TELEGRAM_TOKEN (or telegram.token in the config)".to_string(),
        );
    }
    if needs != Needs::Nothing {
        match resolve_credentials(gc, &name) {
            Ok(key_origin) => gc.key_origin = key_origin,
            Err(err) => missing.push(err.to_string()),
        }
    }
    if !missing.is_empty() {
        bail!("{}", missing.join("; "));
    }
    if let Some(path) = &gc.ca_bundle_file {
        gc.ca_certs = read_ca_file(path, &name("gigachat.ca_bundle_file"))?;
    }

    let bot = &config.bot;
    // Wide enough for any real use, narrow enough that no sum or product of them overflows.
    in_range(
        "bot.max_input_chars",
        bot.max_input_chars as u64,
        1..=100_000,
        "characters",
    )?;
    in_range(
        "bot.history_messages",
        bot.history_messages as u64,
        0..=1000,
        "messages",
    )?;
    in_range(
        "bot.history_chars",
        bot.history_chars as u64,
        0..=1_000_000,
        "characters",
    )?;
    in_range(
        "bot.forget_after_days",
        bot.forget_after_days,
        0..=36_500,
        "days (0 = never)",
    )?;
    in_range(
        "bot.requests_per_minute",
        bot.requests_per_minute.into(),
        0..=10_000,
        "requests (0 = no limit)",
    )?;
    in_range(
        "bot.daily_tokens_per_user",
        bot.daily_tokens_per_user,
        0..=1_000_000_000_000,
        "tokens (0 = no limit)",
    )?;
    in_range(
        "bot.draft_interval_ms",
        bot.draft_interval_ms,
        0..=60_000,
        "milliseconds (a draft shows 30 s at most)",
    )?;
    if bot.state_file.as_os_str().is_empty() {
        bail!("bot.state_file is empty: give a file name such as gigabot.db");
    }
    if !["error", "warn", "info", "debug"].contains(&config.log.level.as_str()) {
        bail!(
            "{} = {:?} is not a level: use error, warn, info or debug",
            name("log.level"),
            config.log.level
        );
    }

    if config.styles.is_empty() {
        config.styles = builtin_styles();
    }
    validate_styles(&config.styles)?;
    if !config
        .styles
        .iter()
        .any(|s| s.id == config.bot.default_style)
    {
        bail!(
            "bot.default_style = {:?} is not one of the styles ({}): add a [[styles]] entry with that id or pick one of them",
            config.bot.default_style,
            style_ids(&config.styles)
        );
    }
    Ok(())
}

/// "bot.forget_after_days = 99999999 is out of range: use 0..=36500 days (0 = never)".
fn in_range(key: &str, value: u64, range: std::ops::RangeInclusive<u64>, unit: &str) -> Result<()> {
    if !range.contains(&value) {
        bail!(
            "{key} = {value} is out of range: use {}..={} {unit}",
            range.start(),
            range.end()
        );
    }
    Ok(())
}

fn style_ids(styles: &[Style]) -> String {
    styles
        .iter()
        .map(|s| s.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Style ids go into `/mode <id>` and into button callback data (64 bytes at most), so they
/// are short and plain.
fn validate_styles(styles: &[Style]) -> Result<()> {
    for (i, style) in styles.iter().enumerate() {
        let n = i + 1;
        let id_ok = !style.id.is_empty()
            && style.id.len() <= 32
            && style
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !id_ok {
            bail!(
                "styles #{n}: id {:?} is not allowed: use 1 to 32 of a-z, 0-9, _ and -",
                style.id
            );
        }
        if styles[..i].iter().any(|s| s.id == style.id) {
            bail!(
                "styles #{n}: id {:?} is used twice: style ids must be unique",
                style.id
            );
        }
        if style.title.trim().is_empty() {
            bail!(
                "styles #{n} ({}): title is empty: give the name users see",
                style.id
            );
        }
        if style.title.chars().count() > 60 {
            bail!(
                "styles #{n} ({}): title is longer than 60 characters",
                style.id
            );
        }
        if style.prompt.trim().is_empty() {
            bail!(
                "styles #{n} ({}): prompt is empty: write the system prompt, e.g. \"Отвечай как научный сотрудник\"",
                style.id
            );
        }
    }
    Ok(())
}

/// Accepts http:// and https:// (https only where `tls_only`); drops one trailing slash.
fn check_url(key: &str, url: &str, tls_only: bool) -> Result<String> {
    let url = url.trim();
    let url = url.strip_suffix('/').unwrap_or(url);
    let rest = if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else if let Some(rest) = url.strip_prefix("http://") {
        if tls_only {
            bail!(
                "{key} = {url:?} must start with https://: GigaChat is only used over verified TLS"
            );
        }
        rest
    } else {
        bail!("{key} = {url:?} is not a URL: it must start with https:// or http://");
    };
    if rest.is_empty() || rest.starts_with('/') || rest.contains(char::is_whitespace) {
        bail!("{key} = {url:?} has no host name");
    }
    Ok(url.to_string())
}

/// `123456789:AA...`: digits, a colon, then URL-safe characters. Checked so that a pasted
/// quote or space is reported here instead of as a confusing 404 from Telegram.
fn looks_like_bot_token(token: &str) -> bool {
    match token.split_once(':') {
        Some((id, secret)) => {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_digit())
                && !secret.is_empty()
                && secret
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        }
        None => false,
    }
}

/// Settles the one Base64 key GigaChat's OAuth wants, from `credentials` or from
/// `client_id` + `client_secret`; returns the settings it came from, for "check these".
fn resolve_credentials(gc: &mut GigaChatConfig, name: &dyn Fn(&str) -> String) -> Result<String> {
    let scope = name("gigachat.scope");
    if gc.credentials.is_some() {
        return Ok(format!("{} and {scope}", name("gigachat.credentials")));
    }
    match (&gc.client_id, &gc.client_secret) {
        (_, Some(secret)) if is_authorization_key(secret.expose()) => {
            // The lesson keeps the ready Base64 key in GIGACHAT_CLIENT_SECRET.
            log::info!(
                "gigachat.client_secret already is a Base64 authorization key: using it as is"
            );
            gc.credentials = Some(secret.clone());
            Ok(format!("{} and {scope}", name("gigachat.client_secret")))
        }
        (Some(id), Some(secret)) => {
            let key = BASE64_STANDARD.encode(format!("{id}:{}", secret.expose()));
            gc.credentials = Some(Secret(key));
            Ok(format!(
                "{}, {} and {scope}",
                name("gigachat.client_id"),
                name("gigachat.client_secret")
            ))
        }
        (None, Some(_)) => bail!(
            "GIGACHAT_CLIENT_ID is not set: with {} the bot needs the client id too (or set GIGACHAT_CREDENTIALS to the authorization key)",
            name("gigachat.client_secret")
        ),
        _ => bail!(
            "GIGACHAT_CREDENTIALS is not set: copy the authorization key (\"Ключ авторизации\") of your project at developers.sber.ru/studio and set GIGACHAT_CREDENTIALS (or gigachat.credentials)"
        ),
    }
}

/// An authorization key is Base64 of `client_id:client_secret`; a bare client secret
/// (a UUID) never decodes to that.
pub fn is_authorization_key(value: &str) -> bool {
    BASE64_STANDARD
        .decode(value.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .is_some_and(|text| {
            text.split_once(':')
                .is_some_and(|(id, secret)| !id.is_empty() && !secret.is_empty())
        })
}

/// Reads a CA file: PEM with one or more certificates, or one DER certificate.
/// `name` says where the path came from (GIGACHAT_CA_BUNDLE_FILE or the key in the file).
pub fn read_ca_file(path: &Path, name: &str) -> Result<Vec<Vec<u8>>> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "cannot read {name} {}: fix the path (the Russian Trusted Root CA is at https://www.gosuslugi.ru/crt)",
            path.display()
        )
    })?;
    let certs = if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        openssl::x509::X509::stack_from_pem(&bytes)
            .ok()
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c.to_der().ok())
            .collect()
    } else {
        openssl::x509::X509::from_der(&bytes)
            .ok()
            .and_then(|c| c.to_der().ok())
            .into_iter()
            .collect::<Vec<_>>()
    };
    if certs.is_empty() {
        bail!(
            "{name} {} holds no certificate (expected PEM or DER): download the Russian Trusted Root CA from https://www.gosuslugi.ru/crt",
            path.display()
        );
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    fn load_text(text: &str, env: &[(&str, &str)]) -> Result<Config> {
        let mut config = parse(text, "config.toml")?;
        settle(&mut config, env_of(env), Needs::TelegramAndGigaChat)?;
        Ok(config)
    }

    const ENV: &[(&str, &str)] = &[
        ("TELEGRAM_TOKEN", "123456:ABC-def_1"),
        ("GIGACHAT_CREDENTIALS", "aWQ6c2VjcmV0"),
    ];

    #[test]
    fn empty_file_with_env_secrets_gives_the_documented_defaults() {
        let c = load_text("", ENV).unwrap();
        assert_eq!(c.telegram.api_url, "https://api.telegram.org");
        assert_eq!(c.telegram.poll_timeout_secs, 30);
        assert_eq!(c.gigachat.scope, "GIGACHAT_API_PERS");
        assert_eq!(c.gigachat.model, "GigaChat-2-Max");
        assert_eq!(
            c.gigachat.auth_url,
            "https://ngw.devices.sberbank.ru:9443/api/v2/oauth"
        );
        assert_eq!(
            c.gigachat.base_url,
            "https://gigachat.devices.sberbank.ru/api/v1"
        );
        assert_eq!(c.gigachat.timeout_secs, 120);
        assert!(c.gigachat.profanity_check);
        assert_eq!(c.bot.default_style, "professor");
        assert_eq!(c.bot.max_input_chars, 4000);
        let ids: Vec<&str> = c.styles.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["professor", "fairy"]);
        assert_eq!(c.styles[0].prompt, "Отвечай как научный сотрудник");
        assert_eq!(c.styles[1].title, "Сказочный персонаж");
    }

    #[test]
    fn the_example_config_is_valid_and_shows_the_defaults() {
        let mut example = load_text(include_str!("../config.example.toml"), ENV).unwrap();
        let mut defaults = load_text("", ENV).unwrap();
        // The example starts with the built-in styles; students add more (docs/lesson.md).
        let builtin: Vec<String> = defaults.styles.iter().map(|s| format!("{s:?}")).collect();
        let shown: Vec<String> = example.styles.iter().map(|s| format!("{s:?}")).collect();
        assert_eq!(shown[..builtin.len()], builtin[..]);
        example.styles.clear();
        defaults.styles.clear();
        assert_eq!(format!("{example:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn the_draft_interval_loads_under_its_old_name_and_is_range_checked() {
        let c = load_text("[bot]\nstream_edit_interval_ms = 1500\n", ENV).unwrap();
        assert_eq!(c.bot.draft_interval_ms, 1500);
        let err = load_text("[bot]\ndraft_interval_ms = 600000\n", ENV).unwrap_err();
        assert!(err.to_string().contains("bot.draft_interval_ms"), "{err}");
    }

    #[test]
    fn environment_wins_over_the_file() {
        let text = "[gigachat]\nmodel = \"GigaChat-2\"\nscope = \"GIGACHAT_API_B2B\"\n";
        let mut env = ENV.to_vec();
        env.push(("GIGACHAT_MODEL", "GigaChat-2-Pro"));
        let c = load_text(text, &env).unwrap();
        assert_eq!(c.gigachat.model, "GigaChat-2-Pro");
        assert_eq!(c.gigachat.scope, "GIGACHAT_API_B2B");
    }

    #[test]
    fn a_typo_names_the_line_and_key_but_not_the_value() {
        let text = "[telegram]\ntokne = \"123:secretvalue\"\n";
        let err = load_text(text, ENV).unwrap_err().to_string();
        assert!(
            err.starts_with("config.toml:2: `[telegram] tokne`: "),
            "{err}"
        );
        assert!(err.contains("unknown field `tokne`"), "{err}");
        assert!(err.contains("`token`"), "{err}");
        assert!(!err.contains("secretvalue"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn a_line_without_an_equals_sign_names_its_key_but_never_its_value() {
        for text in [
            "[telegram]\ntoken: \"123456:AAHsecretvalue\"\n",
            "[telegram]\ntoken \"123456:AAHsecretvalue\"\n",
            "[telegram]\ntoken = \"123456:AAHsecretvalue\n",
            "[telegram]\n\"123456:AAHsecretvalue\"\n",
        ] {
            let err = load_text(text, ENV).unwrap_err().to_string();
            assert!(err.starts_with("config.toml:2: "), "{err}");
            assert!(
                !err.contains("AAHsecret") && !err.contains("123456"),
                "{err}"
            );
        }
        let err = load_text("[telegram]\ntoken: \"x\"\n", ENV)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`[telegram] token`"), "{err}");
    }

    #[test]
    fn empty_values_in_the_file_count_as_not_set() {
        let text = "[gigachat]\ncredentials = \"\"\nclient_id = \"id\"\nclient_secret = \"secret\"\nca_bundle_file = \"\"\n[bot]\ntranscript_dir = \"\"\n";
        let env: Vec<_> = ENV
            .iter()
            .filter(|(k, _)| *k != "GIGACHAT_CREDENTIALS")
            .copied()
            .collect();
        let c = load_text(text, &env).unwrap();
        // The key is made from client_id and client_secret, not taken as "".
        assert_eq!(c.gigachat.credentials.unwrap().expose(), "aWQ6c2VjcmV0");
        assert!(c.gigachat.ca_bundle_file.is_none() && c.bot.transcript_dir.is_none());
        let err = load_text("[telegram]\ntoken = \" \"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("TELEGRAM_TOKEN is not set"), "{err}");
    }

    #[test]
    fn errors_stay_on_one_line() {
        let err = load_text("a\rb = 1\n", ENV).unwrap_err().to_string();
        assert!(!err.contains('\r') && !err.contains('\n'), "{err:?}");
        assert!(err.starts_with("config.toml:1: `a`: "), "{err:?}");
        assert_eq!(one_line("/tmp/a\nb"), "/tmp/a\\nb");
    }

    #[test]
    fn a_wrong_type_names_the_key() {
        let err = load_text("[telegram]\npoll_timeout_secs = \"30\"\n", ENV)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("config.toml:2: `[telegram] poll_timeout_secs`: "),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn missing_secrets_say_where_to_get_them_all_at_once() {
        let err = load_text("", &[]).unwrap_err().to_string();
        assert!(err.contains("TELEGRAM_TOKEN is not set"), "{err}");
        assert!(err.contains("@BotFather"), "{err}");
        assert!(err.contains("GIGACHAT_CREDENTIALS is not set"), "{err}");
        let err = load_text("", &ENV[..1]).unwrap_err().to_string();
        assert!(err.starts_with("GIGACHAT_CREDENTIALS is not set"), "{err}");
    }

    #[test]
    fn numbers_out_of_range_are_refused_before_any_arithmetic() {
        for (text, key) in [
            (
                "[bot]\nforget_after_days = 213503982334601\n",
                "bot.forget_after_days",
            ),
            (
                "[bot]\nhistory_chars = 18446744073709551615\n",
                "bot.history_chars",
            ),
            ("[bot]\nhistory_messages = 100000\n", "bot.history_messages"),
            ("[bot]\nmax_input_chars = 0\n", "bot.max_input_chars"),
            (
                "[bot]\nrequests_per_minute = 4000000000\n",
                "bot.requests_per_minute",
            ),
            (
                "[bot]\ndaily_tokens_per_user = 18446744073709551615\n",
                "bot.daily_tokens_per_user",
            ),
            ("[gigachat]\ntimeout_secs = 0\n", "gigachat.timeout_secs"),
            (
                "[gigachat]\ntimeout_secs = 18446744073709551615\n",
                "gigachat.timeout_secs",
            ),
            ("[gigachat]\nmax_tokens = 0\n", "gigachat.max_tokens"),
            (
                "[telegram]\npoll_timeout_secs = 0\n",
                "telegram.poll_timeout_secs",
            ),
        ] {
            let err = load_text(text, ENV).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{key} = ")), "{text:?}: {err}");
            assert!(err.contains("is out of range: use "), "{err}");
        }
        // The edges themselves are fine.
        load_text(
            "[bot]\nforget_after_days = 36500\n[gigachat]\ntimeout_secs = 600\n",
            ENV,
        )
        .unwrap();
    }

    #[test]
    fn errors_name_the_variable_or_the_file_the_value_came_from() {
        let mut env = ENV.to_vec();
        env.push(("GIGABOT_LOG", "trace"));
        let err = load_text("[log]\nlevel = \"info\"\n", &env).unwrap_err();
        assert!(
            err.to_string().starts_with("GIGABOT_LOG = \"trace\""),
            "{err}"
        );
        let err = load_text("[log]\nlevel = \"loud\"\n", ENV).unwrap_err();
        assert!(
            err.to_string().starts_with("log.level in config.toml = "),
            "{err}"
        );
        let text = "[telegram]\ntoken = \"123:a b\"\n";
        let err = load_text(text, &ENV[1..]).unwrap_err().to_string();
        assert!(
            err.starts_with("telegram.token in config.toml does not"),
            "{err}"
        );
        let c = load_text("", ENV).unwrap();
        assert_eq!(c.telegram.token_origin, "TELEGRAM_TOKEN");
        assert_eq!(
            c.gigachat.key_origin,
            "GIGACHAT_CREDENTIALS and gigachat.scope in config.toml"
        );
    }

    #[test]
    fn client_id_and_secret_make_the_authorization_key() {
        let env = [
            ("TELEGRAM_TOKEN", "1:a"),
            ("GIGACHAT_CLIENT_ID", "id"),
            ("GIGACHAT_CLIENT_SECRET", "secret"),
        ];
        let c = load_text("", &env).unwrap();
        assert_eq!(c.gigachat.credentials.unwrap().expose(), "aWQ6c2VjcmV0");
    }

    #[test]
    fn a_client_secret_that_is_already_the_key_is_used_as_is() {
        // The lesson's way: GIGACHAT_CLIENT_SECRET holds the Base64 key, no client id.
        let env = [
            ("TELEGRAM_TOKEN", "1:a"),
            ("GIGACHAT_CLIENT_SECRET", "aWQ6c2VjcmV0"),
        ];
        let c = load_text("", &env).unwrap();
        assert_eq!(c.gigachat.credentials.unwrap().expose(), "aWQ6c2VjcmV0");
        // A plain client secret (a UUID) is not mistaken for a key.
        assert!(!is_authorization_key(
            "0f3e6a2c-1b7d-4c55-9a0e-3d2f1c4b5a69"
        ));
    }

    #[test]
    fn only_base64_of_id_colon_secret_is_an_authorization_key() {
        assert!(is_authorization_key("aWQ6c2VjcmV0")); // id:secret
        assert!(is_authorization_key(" 0LrQu9GO0Yc60YHQtdC60YDQtdGC\n")); // ключ:секрет
        for not_a_key in [
            "",
            "not base64!",
            "aWQ6c2VjcmV0=",
            "aWQ6",
            "OnNlY3JldA==",
            "/w==",
        ] {
            assert!(!is_authorization_key(not_a_key), "{not_a_key:?}");
        }
    }

    #[test]
    fn unknown_default_style_lists_the_styles() {
        let err = load_text("[bot]\ndefault_style = \"pirate\"\n", ENV)
            .unwrap_err()
            .to_string();
        assert!(err.contains("bot.default_style = \"pirate\""), "{err}");
        assert!(err.contains("professor, fairy"), "{err}");
    }

    #[test]
    fn style_ids_must_fit_callback_data_and_be_unique() {
        let style =
            |id: &str| format!("[[styles]]\nid = \"{id}\"\ntitle = \"T\"\nprompt = \"P\"\n");
        let default = "[bot]\ndefault_style = \"a\"\n";
        let ok = format!("{default}{}{}", style("a"), style("b-2_c"));
        assert_eq!(load_text(&ok, ENV).unwrap().styles.len(), 2);
        for bad in ["Pirate", "пират", "a b", &"x".repeat(33), ""] {
            let text = format!("{default}{}{}", style("a"), style(bad));
            let err = load_text(&text, ENV).unwrap_err().to_string();
            assert!(err.contains("is not allowed"), "{bad}: {err}");
        }
        let twice = format!("{default}{}{}", style("a"), style("a"));
        let err = load_text(&twice, ENV).unwrap_err().to_string();
        assert!(err.contains("used twice"), "{err}");
    }

    #[test]
    fn urls_are_checked_and_trimmed() {
        let mut env = ENV.to_vec();
        env.push(("TELEGRAM_API_URL", "http://127.0.0.1:8081/"));
        let c = load_text("", &env).unwrap();
        assert_eq!(c.telegram.api_url, "http://127.0.0.1:8081");
        let err = load_text("[gigachat]\nbase_url = \"http://x/api/v1\"\n", ENV)
            .unwrap_err()
            .to_string();
        assert!(err.contains("must start with https://"), "{err}");
    }

    #[test]
    fn a_malformed_token_is_refused_without_printing_it() {
        let env = [
            ("TELEGRAM_TOKEN", "\"123:abc\""),
            ("GIGACHAT_CREDENTIALS", "aWQ6c2VjcmV0"),
        ];
        let err = load_text("", &env).unwrap_err().to_string();
        assert!(err.contains("does not look like a bot token"), "{err}");
        assert!(!err.contains("abc"), "{err}");
    }

    #[test]
    fn secrets_do_not_debug_print() {
        let c = load_text("", ENV).unwrap();
        let dump = format!("{c:?}");
        assert!(!dump.contains("ABC-def_1"), "{dump}");
        assert!(!dump.contains("aWQ6c2VjcmV0"), "{dump}");
    }

    #[test]
    fn an_unreadable_ca_file_names_the_file() {
        let mut env = ENV.to_vec();
        env.push(("GIGACHAT_CA_BUNDLE_FILE", "/nonexistent/ca.pem"));
        let err = load_text("", &env).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        assert!(err.contains("gosuslugi.ru/crt"), "{err}");
    }
}
