//! The bot token out of texts: every request URL holds it, so any text that could hold a
//! URL is redacted before it is logged or shown.

/// Replaces the token, and anything shaped like `bot<digits>:<secret>`, with `***`.
pub fn redact_token(text: &str, token: &str) -> String {
    let mut out = if token.is_empty() { text.to_string() } else { text.replace(token, "***") };
    // Belt and braces: any other token-shaped run after "/bot".
    let mut from = 0;
    while let Some(found) = out[from..].find("/bot") {
        let start = from + found + 4;
        from = start;
        let rest = &out[start..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || !rest[digits..].starts_with(':') {
            continue;
        }
        let secret = rest[digits + 1..]
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
            .count();
        out.replace_range(start..start + digits + 1 + secret, "***");
    }
    out
}

/// The host (and port) of an API URL, for messages: the path holds the bot token, and
/// the part before an `@` a user name and password.
pub fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority.rsplit_once('@').map_or(authority, |(_, host)| host)
}
