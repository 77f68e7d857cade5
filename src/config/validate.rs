//! Every check of a loaded config, each failure one line that names the key (or the
//! environment variable) and the fix; and what follows from the values: the styles, the
//! authorization key, the CA certificates.

use std::path::Path;

use anyhow::{Context, Result, bail};
use base64::prelude::{BASE64_STANDARD, Engine as _};
use openssl::x509::X509;

use super::scrub::{quoted, shown_url};
use super::{
    Config, GigaChatConfig, Needs, SaluteSpeechConfig, Secret, Style, TelegramConfig,
    builtin_styles, style_ids,
};

/// Where a key's value came from, as the operator would look for it: the environment
/// variable that set it, or the key in the config file.
pub(super) fn origin(from_env: &[(&'static str, &'static str)], source: &str, key: &str) -> String {
    match from_env.iter().find(|(k, _)| *k == key) {
        Some((_, env)) => env.to_string(),
        None if source.starts_with("built-in") => key.to_string(),
        None => format!("{key} in {source}"),
    }
}

const SCOPES: [&str; 3] = ["GIGACHAT_API_PERS", "GIGACHAT_API_B2B", "GIGACHAT_API_CORP"];
const SPEECH_SCOPES: [&str; 4] =
    ["SALUTE_SPEECH_PERS", "SALUTE_SPEECH_CORP", "SALUTE_SPEECH_B2B", "SBER_SPEECH"];

/// Checks the values in the order of the file and settles what follows from them: URLs
/// trimmed, the authorization key and its origin, the CA certificates, the styles.
pub(super) fn validate(config: &mut Config, needs: Needs) -> Result<()> {
    let (from_env, source) = (config.from_env.clone(), config.source.clone());
    let name = |key: &str| origin(&from_env, &source, key);
    check_telegram(&mut config.telegram, &name)?;
    check_gigachat(&mut config.gigachat, &name)?;
    check_secrets(config, needs, &name)?;
    check_salutespeech(&mut config.salutespeech, &name)?;
    check_bot(config, &name)?;
    if config.styles.is_empty() {
        config.styles = builtin_styles();
    }
    validate_styles(&config.styles)?;
    if !config.styles.iter().any(|s| s.id == config.bot.default_style) {
        let (style, ids) = (quoted(&config.bot.default_style), style_ids(&config.styles));
        bail!(
            "bot.default_style = {style} is not one of the styles ({ids}): add a [[styles]] entry with that id or pick one of them"
        );
    }
    Ok(())
}

/// `[telegram]`: the API URL, the poll timeout, the token's shape (and where it came from).
fn check_telegram(tg: &mut TelegramConfig, name: &dyn Fn(&str) -> String) -> Result<()> {
    tg.api_url = check_url(&name("telegram.api_url"), &tg.api_url, false)?;
    let unit = "seconds (Telegram holds a long poll 50 s at most)";
    in_range("telegram.poll_timeout_secs", tg.poll_timeout_secs, 1..=50, unit)?;
    if let Some(token) = &tg.token
        && !looks_like_bot_token(token.expose())
    {
        bail!(
            "{} does not look like a bot token (digits, a colon, then letters): copy it again from @BotFather",
            name("telegram.token")
        );
    }
    Ok(())
}

/// `[gigachat]`: the URLs, the scope, the model, the numbers.
fn check_gigachat(gc: &mut GigaChatConfig, name: &dyn Fn(&str) -> String) -> Result<()> {
    gc.auth_url = check_url(&name("gigachat.auth_url"), &gc.auth_url, true)?;
    gc.base_url = check_url(&name("gigachat.base_url"), &gc.base_url, true)?;
    // A wrong scope is not shown: it may be a key pasted in the wrong place.
    if !SCOPES.contains(&gc.scope.as_str()) {
        bail!(
            "{} is not a GigaChat scope: use GIGACHAT_API_PERS (individuals), GIGACHAT_API_B2B or GIGACHAT_API_CORP",
            name("gigachat.scope")
        );
    }
    if gc.model.trim().is_empty() {
        bail!("{} is empty: set it to a model name such as GigaChat-2-Max", name("gigachat.model"));
    }
    // Up to ten minutes: the loop waits for GigaChat while every other user waits too.
    in_range("gigachat.timeout_secs", gc.timeout_secs, 1..=600, "seconds")?;
    if let Some(t) = gc.temperature
        && !(t > 0.0 && t.is_finite())
    {
        bail!("gigachat.temperature = {t} must be greater than 0 (GigaChat rejects 0)");
    }
    if let Some(max) = gc.max_tokens {
        let unit = "tokens (or remove it for the model's default)";
        in_range("gigachat.max_tokens", max.into(), 1..=1_000_000, unit)?;
    }
    Ok(())
}

/// The secrets the command needs, all missing ones at once (fixed in one go); then the CA file.
fn check_secrets(config: &mut Config, needs: Needs, name: &dyn Fn(&str) -> String) -> Result<()> {
    let (tg, gc) = (&config.telegram, &mut config.gigachat);
    let mut missing = Vec::new();
    if needs == Needs::TelegramAndGigaChat && tg.token.is_none() {
        missing.push(
            "TELEGRAM_TOKEN is not set: get a token from @BotFather and set TELEGRAM_TOKEN (or telegram.token in the config)".to_string(),
        );
    }
    if needs != Needs::Nothing {
        match resolve_credentials(gc, name) {
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
    Ok(())
}

/// `[salutespeech]`: the URLs and the scope.
fn check_salutespeech(ss: &mut SaluteSpeechConfig, name: &dyn Fn(&str) -> String) -> Result<()> {
    ss.auth_url = check_url(&name("salutespeech.auth_url"), &ss.auth_url, true)?;
    ss.url = check_url(&name("salutespeech.url"), &ss.url, true)?;
    if !SPEECH_SCOPES.contains(&ss.scope.as_str()) {
        bail!(
            "{} is not a SaluteSpeech scope: use SALUTE_SPEECH_PERS (individuals), SALUTE_SPEECH_CORP or SALUTE_SPEECH_B2B",
            name("salutespeech.scope")
        );
    }
    ss.key_origin =
        format!("{} and {}", name("salutespeech.credentials"), name("salutespeech.scope"));
    Ok(())
}

/// `[bot]` and `[log]`: the numbers (wide enough for any real use, narrow enough that no
/// sum or product of them overflows), the state file, the log level.
fn check_bot(config: &Config, name: &dyn Fn(&str) -> String) -> Result<()> {
    let bot = &config.bot;
    let numbers: [(&str, u64, std::ops::RangeInclusive<u64>, &str); 8] = [
        ("bot.max_input_chars", bot.max_input_chars as u64, 1..=100_000, "characters"),
        ("bot.history_messages", bot.history_messages as u64, 0..=1000, "messages"),
        ("bot.history_chars", bot.history_chars as u64, 0..=1_000_000, "characters"),
        ("bot.forget_after_days", bot.forget_after_days, 0..=36_500, "days (0 = never)"),
        (
            "bot.requests_per_minute",
            bot.requests_per_minute.into(),
            0..=10_000,
            "requests (0 = no limit)",
        ),
        (
            "bot.daily_tokens_per_user",
            bot.daily_tokens_per_user,
            0..=1_000_000_000_000,
            "tokens (0 = no limit)",
        ),
        (
            "bot.low_balance_tokens",
            bot.low_balance_tokens,
            0..=1_000_000_000_000,
            "tokens (0 = off)",
        ),
        (
            "bot.draft_interval_ms",
            bot.draft_interval_ms,
            0..=60_000,
            "milliseconds (a draft shows 30 s at most)",
        ),
    ];
    for (key, value, range, unit) in numbers {
        in_range(key, value, range, unit)?;
    }
    let knowledge = &config.knowledge;
    in_range("knowledge.top_k", knowledge.top_k as u64, 1..=20, "passages")?;
    if !(0.0..=1.0).contains(&knowledge.min_score) {
        bail!("knowledge.min_score is out of range: use 0.0..=1.0 (a cosine similarity)");
    }
    let dir = &knowledge.dir;
    if !dir.as_os_str().is_empty() && !dir.is_dir() {
        bail!(
            "knowledge.dir is not a folder: create it, or set it to \"\" to turn the reference desk off"
        );
    }
    if bot.state_file.as_os_str().is_empty() {
        bail!("bot.state_file is empty: give a file name such as gigabot.db");
    }
    if !["error", "warn", "info", "debug"].contains(&config.log.level.as_str()) {
        bail!("{} is not a level: use error, warn, info or debug", name("log.level"));
    }
    Ok(())
}

/// "bot.forget_after_days = 99999999 is out of range: use 0..=36500 days (0 = never)".
fn in_range(key: &str, value: u64, range: std::ops::RangeInclusive<u64>, unit: &str) -> Result<()> {
    if !range.contains(&value) {
        bail!("{key} = {value} is out of range: use {}..={} {unit}", range.start(), range.end());
    }
    Ok(())
}

/// Style ids go into `/mode <id>` and into callback data (64 bytes at most): short and plain.
fn validate_styles(styles: &[Style]) -> Result<()> {
    for (i, style) in styles.iter().enumerate() {
        let n = i + 1;
        let plain = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-';
        let id_ok = !style.id.is_empty() && style.id.len() <= 32 && style.id.bytes().all(plain);
        if !id_ok {
            bail!(
                "styles #{n}: id {} is not allowed: use 1 to 32 of a-z, 0-9, _ and -",
                quoted(&style.id)
            );
        }
        if styles[..i].iter().any(|s| s.id == style.id) {
            bail!("styles #{n}: id {:?} is used twice: style ids must be unique", style.id);
        }
        if style.title.trim().is_empty() {
            bail!("styles #{n} ({}): title is empty: give the name users see", style.id);
        }
        if style.title.chars().count() > 60 {
            bail!("styles #{n} ({}): title is longer than 60 characters", style.id);
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
/// An error shows the URL without its secrets, and what is not a URL not at all: it may be
/// a token or a key pasted into the wrong variable.
fn check_url(key: &str, url: &str, tls_only: bool) -> Result<String> {
    let url = url.trim();
    let url = url.strip_suffix('/').unwrap_or(url);
    let shown = shown_url(url);
    let rest = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => rest,
        (None, Some(_)) if tls_only => bail!(
            "{key} = {shown:?} must start with https://: Sber's services are only used over verified TLS"
        ),
        (None, Some(rest)) => rest,
        (None, None) => bail!("{key} is not a URL: it must start with https:// or http://"),
    };
    if rest.is_empty() || rest.starts_with('/') || rest.contains(char::is_whitespace) {
        bail!("{key} = {shown:?} has no host name");
    }
    Ok(url.to_string())
}

/// `123456789:AA...`: digits, a colon, then URL-safe characters. Checked so that a pasted
/// quote or space is reported here instead of as a confusing 404 from Telegram.
fn looks_like_bot_token(token: &str) -> bool {
    token.split_once(':').is_some_and(|(id, secret)| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && !secret.is_empty()
            && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
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
            let (by_id, by_secret) = (name("gigachat.client_id"), name("gigachat.client_secret"));
            Ok(format!("{by_id}, {by_secret} and {scope}"))
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

/// Base64 of `client_id:client_secret`; a bare client secret (a UUID) never decodes to that.
pub(super) fn is_authorization_key(value: &str) -> bool {
    let text = BASE64_STANDARD.decode(value.trim()).ok().and_then(|b| String::from_utf8(b).ok());
    let pair = text.as_deref().and_then(|text| text.split_once(':'));
    pair.is_some_and(|(id, secret)| !id.is_empty() && !secret.is_empty())
}

/// Reads a CA file: PEM with one or more certificates, or one DER certificate.
/// `name` says where the path came from (GIGACHAT_CA_BUNDLE_FILE or the key in the file).
fn read_ca_file(path: &Path, name: &str) -> Result<Vec<Vec<u8>>> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "cannot read {name} {}: fix the path (the Russian Trusted Root CA is at https://www.gosuslugi.ru/crt)",
            path.display()
        )
    })?;
    let certs: Vec<_> = if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        let stack = X509::stack_from_pem(&bytes).unwrap_or_default();
        stack.iter().filter_map(|c| c.to_der().ok()).collect()
    } else {
        X509::from_der(&bytes).and_then(|c| c.to_der()).into_iter().collect()
    };
    if certs.is_empty() {
        bail!(
            "{name} {} holds no certificate (expected PEM or DER): download the Russian Trusted Root CA from https://www.gosuslugi.ru/crt",
            path.display()
        );
    }
    Ok(certs)
}
