//! What of a config an error may show. A secret pasted in the wrong place (the key on the
//! line after `credentials =`, a token in `scope`, a password in a URL) would otherwise be
//! quoted back by the very error that reports the mistake, into a terminal or a journal.
//! So an error names only keys the config has, quotes no value, shows a URL without its
//! secrets, and, last, has every secret value `load` knows of replaced with `***`.

use super::SECTIONS;

/// A TOML or serde error as one line: "config.toml:3: `[gigachat] timeout_secs`: invalid
/// type: string "…", expected u64". The line number says where; the text shows no value.
pub(super) fn toml_error(err: &toml::de::Error, text: &str, file_name: &str) -> String {
    let message = err.message().trim_end_matches('\n').replace('\n', " ");
    let typo = unknown_field(&message).filter(|name| plausible_key(name));
    let message = match unknown_field(&message) {
        Some(name) if typo.is_none() => {
            message.replacen(&format!("unknown field `{name}`"), "an unknown key", 1)
        }
        _ => message.clone(),
    };
    let Some(span) = err.span() else {
        return format!("{file_name}: {}", without_values(&message));
    };
    let line = text.get(..span.start).unwrap_or(text).matches('\n').count() + 1;
    let key = key_at_line(text, line, typo);
    format!("{file_name}:{line}: {key}{}", without_values(&message))
}

/// The name in "unknown field `name`, expected one of …".
fn unknown_field(message: &str) -> Option<&str> {
    message.strip_prefix("unknown field `")?.split('`').next()
}

/// Could this unknown key be a typo of a real one (`tokne`)? Short, lowercase, and not hex
/// like a client secret: anything else is more likely a secret on the wrong line.
fn plausible_key(name: &str) -> bool {
    let hex = name.len() >= 8 && name.bytes().all(|b| b.is_ascii_hexdigit());
    !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !hex
}

/// "`[telegram] token`: " when the line of an error starts with a key the config has (or
/// with the unknown key the error is about, when that looks like a typo); else nothing,
/// for the rest of such a line may be a secret: the key itself, or a stray line of it.
fn key_at_line(text: &str, line: usize, typo: Option<&str>) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let Some(current) = lines.get(line.saturating_sub(1)) else {
        return String::new();
    };
    let current = current.trim_start();
    if current.starts_with('[') {
        return header(current).map_or(String::new(), |(shown, _)| format!("`{shown}`: "));
    }
    let key: String = current
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .collect();
    let above = lines[..line.saturating_sub(1)].iter().rev().find(|l| l.trim().starts_with('['));
    let (shown, keys) = match above {
        None => (String::new(), None),
        Some(l) => match header(l.trim()) {
            Some((shown, section)) => (format!("{shown} "), Some(section)),
            None => return String::new(),
        },
    };
    if Some(key.as_str()) == typo || is_known(keys, &key) {
        format!("`{shown}{key}`: ")
    } else {
        String::new()
    }
}

/// A table header of a config section: ("[telegram]", "telegram") or ("[[styles]]", "styles").
fn header(line: &str) -> Option<(String, &'static str)> {
    let line = line.split('#').next().unwrap_or(line).trim();
    let (name, array) = match line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
        Some(name) => (name, true),
        None => (line.strip_prefix('[')?.strip_suffix(']')?, false),
    };
    let (section, _) = SECTIONS.iter().find(|(s, _)| *s == name.trim())?;
    Some((if array { format!("[[{section}]]") } else { format!("[{section}]") }, section))
}

/// Is `key` a key of `section`, or at the top (no section) a section or `section.key`?
fn is_known(section: Option<&str>, key: &str) -> bool {
    let keys_of = |name: &str| SECTIONS.iter().find(|(s, _)| *s == name).map(|(_, k)| *k);
    match (section, key.split_once('.')) {
        (Some(section), None) => keys_of(section).is_some_and(|keys| keys.contains(&key)),
        (None, None) => keys_of(key).is_some(),
        (None, Some((section, key))) => keys_of(section).is_some_and(|keys| keys.contains(&key)),
        (Some(_), Some(_)) => false,
    }
}

/// A TOML or serde message without the values it quotes: a "string" becomes "…", and a
/// word in backticks stays only when it is a key of the config, a plausible typo of one,
/// a bit of syntax (`=`, `]]`) or a number.
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(['"', '`']) {
        let quote = &rest[start..start + 1];
        out.push_str(&rest[..start + 1]);
        let inner = &rest[start + 1..];
        let Some(end) = closing(inner, quote) else {
            out.push('…');
            return out;
        };
        let word = &inner[..end];
        let shown = quote == "`" && (plausible_key(word) || is_syntax(word) || is_known_name(word));
        out.push_str(if shown { word } else { "…" });
        out.push_str(quote);
        rest = &inner[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Where the quote closes: the next backtick, or the next unescaped `"` (serde quotes as `{:?}`).
fn closing(inner: &str, quote: &str) -> Option<usize> {
    if quote == "`" {
        return inner.find('`');
    }
    let mut escaped = false;
    for (i, b) in inner.bytes().enumerate() {
        match b {
            b'"' if !escaped => return Some(i),
            b'\\' => escaped = !escaped,
            _ => escaped = false,
        }
    }
    None
}

/// What a TOML error expects (`=`, `]]`, `U`), or a number (`-1`, `4294967296`).
fn is_syntax(word: &str) -> bool {
    let number = word.trim_start_matches(['-', '+']);
    word.len() == 1
        || (word.len() <= 3 && word.bytes().all(|b| b.is_ascii_punctuation()))
        || (number.starts_with(|c: char| c.is_ascii_digit())
            && number.len() <= 20
            && number.bytes().all(|b| b.is_ascii_digit() || b"._eE+-".contains(&b)))
}

/// A section or key name of the config (what serde's "expected one of" lists).
fn is_known_name(word: &str) -> bool {
    SECTIONS.iter().any(|(section, keys)| *section == word || keys.contains(&word))
}

/// A URL as an error may show it, so that a typo can be seen: the user and password, a
/// bot token (`bot123:AA…`), the query and anything long enough to be a key are `***`.
pub fn shown_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").map_or(("", url), |(s, rest)| (s, rest));
    let (rest, query) = match rest.find(['?', '#']) {
        Some(at) => (&rest[..at], &rest[at..at + 1]),
        None => (rest, ""),
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host =
        authority.rsplit_once('@').map_or(authority.to_string(), |(_, h)| format!("***@{h}"));
    let parts = std::iter::once(host.as_str()).chain(path.split('/').skip(1));
    let mut out = if scheme.is_empty() { String::new() } else { format!("{scheme}://") };
    out += &parts.map(shown_part).collect::<Vec<_>>().join("/");
    if !query.is_empty() {
        out.push_str(query);
        out.push('…');
    }
    out
}

/// A URL path's part: `bot***` for a bot token, `***` for a dotless key-long run, else itself.
fn shown_part(part: &str) -> String {
    let token = part.strip_prefix("bot").unwrap_or(part);
    let is_token = token.split_once(':').is_some_and(|(id, secret)| {
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && secret.len() >= 20
    });
    if is_token {
        format!("{}***", &part[..part.len() - token.len()])
    } else if part.chars().count() >= 32 && !part.contains('.') {
        "***".to_string()
    } else {
        part.to_string()
    }
}

/// A name for a message (a model, a style id): itself when it is short enough to be one,
/// else only its length (a long value in the wrong place may be a key or a token).
pub fn shown_name(value: &str) -> String {
    match value.chars().count() {
        0..=32 => value.to_string(),
        n => format!("(a value of {n} characters)"),
    }
}

/// [`shown_name`] in quotes, when it is the value itself.
pub(super) fn quoted(value: &str) -> String {
    match value.chars().count() {
        0..=32 => format!("{value:?}"),
        _ => shown_name(value),
    }
}

/// Replaces each of `secrets` in `text` with `***`, in any letter case (`GIGABOT_LOG` is
/// lowercased): the last guard, for a path to an error nobody thought of. Values under 8
/// characters are left alone, so that a short test value does not blank out common words.
pub(super) fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for secret in secrets.iter().filter(|s| s.chars().count() >= 8) {
        let needle = secret.to_ascii_lowercase();
        // ASCII lowercasing keeps every byte where it was, so the offsets fit `out`.
        while let Some(at) = out.to_ascii_lowercase().find(&needle) {
            out.replace_range(at..at + needle.len(), "***");
        }
    }
    out
}
