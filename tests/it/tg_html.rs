//! Telegram's HTML parse mode, as the fake Bot API applies it.
//!
//! A port of TDLib's `parse_html` (td/telegram/MessageEntity.cpp), which is what the real
//! server runs for `parse_mode: "HTML"`: the same accepted tags, the same lenient `&` decoding,
//! and the same error details with UTF-8 byte offsets into the raw string, so the fake answers
//! `can't parse entities: Unsupported start tag "br" at byte offset 5` exactly like Telegram.
//! Entity offsets and lengths are UTF-16 code units, as in the Bot API.
//!
//! Its `Lexer` (tags, attributes, entity references) also reads the `html` of rich messages
//! for `tg_rich`, in the `Dialect::Rich`.
//!
//! One deliberate difference: where Telegram accepts markup but silently drops formatting
//! (anything inside `<code>`/`<pre>`, nested `<blockquote>`, a link inside a link), this parser
//! rejects it with a detail that says so. A bot producing such HTML has a renderer bug that the
//! real server would hide.

#![allow(dead_code)] // a toolbox: not every test uses every part

use serde_json::{Map, Value, json};

/// One formatting entity of the parsed text (a Bot API `MessageEntity`).
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// The Bot API type: "bold", "italic", "text_link", "pre", …
    pub kind: &'static str,
    /// Offset in UTF-16 code units.
    pub offset: usize,
    /// Length in UTF-16 code units.
    pub length: usize,
    /// "text_link": the URL.
    pub url: Option<String>,
    /// "pre": the language from `<pre><code class="language-x">`.
    pub language: Option<String>,
    /// "custom_emoji": the emoji id.
    pub custom_emoji_id: Option<String>,
    /// "text_mention": the user id from `tg://user?id=`.
    pub user_id: Option<i64>,
    /// "date_time": the `unix` and `format` attributes of `<tg-time>`.
    pub unix_time: Option<i64>,
    pub date_time_format: Option<String>,
}

impl Entity {
    fn new(kind: &'static str, offset: usize, length: usize) -> Entity {
        Entity {
            kind,
            offset,
            length,
            url: None,
            language: None,
            custom_emoji_id: None,
            user_id: None,
            unix_time: None,
            date_time_format: None,
        }
    }

    /// The entity as the Bot API sends it.
    pub fn to_json(&self) -> Value {
        let mut entity = Map::new();
        entity.insert("offset".into(), json!(self.offset));
        entity.insert("length".into(), json!(self.length));
        entity.insert("type".into(), json!(self.kind));
        if let Some(url) = &self.url {
            entity.insert("url".into(), json!(url));
        }
        if let Some(id) = self.user_id {
            entity.insert("user".into(), json!({"id": id, "is_bot": false, "first_name": ""}));
        }
        if let Some(language) = &self.language {
            entity.insert("language".into(), json!(language));
        }
        if let Some(id) = &self.custom_emoji_id {
            entity.insert("custom_emoji_id".into(), json!(id));
        }
        if let Some(time) = self.unix_time {
            entity.insert("unix_time".into(), json!(time));
        }
        if let Some(format) = &self.date_time_format {
            entity.insert("date_time_format".into(), json!(format));
        }
        Value::Object(entity)
    }

    /// TDLib's order among entities with the same range: the outer one first.
    fn priority(&self) -> u8 {
        match self.kind {
            "blockquote" | "expandable_blockquote" => 0,
            "pre" => 11,
            "code" => 20,
            "text_link" | "text_mention" => 49,
            "bold" => 90,
            "italic" => 91,
            "underline" => 92,
            "strikethrough" => 93,
            "spoiler" => 94,
            _ => 99,
        }
    }
}

const TAGS: [&str; 17] = [
    "a",
    "b",
    "strong",
    "i",
    "em",
    "s",
    "strike",
    "del",
    "u",
    "ins",
    "tg-spoiler",
    "tg-emoji",
    "tg-time",
    "span",
    "pre",
    "code",
    "blockquote",
];

/// Tags whose entities can't contain each other (besides code and pre, which contain nothing).
const CONTINUOUS: [&str; 3] = ["a", "tg-emoji", "tg-time"];

/// An open tag waiting for its end tag.
struct Open {
    tag: String,
    /// href, language, spoiler class, emoji id, "1" for an expandable blockquote, or unix time.
    argument: String,
    /// `<tg-time format=…>`.
    format: String,
    /// Where its text starts: UTF-16 offset and byte offset into the output.
    utf16_start: usize,
    text_start: usize,
}

/// Parses Telegram HTML into the text the user sees and its entities (before trimming; see
/// `trim`). The error is the detail after "Bad Request: can't parse entities: ".
pub fn parse(html: &str) -> Result<(String, Vec<Entity>), String> {
    let s = html.as_bytes();
    // TDLib reads a NUL-terminated string: past the end every byte is 0.
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let mut text: Vec<u8> = Vec::with_capacity(s.len());
    let mut utf16 = 0;
    let mut entities: Vec<Entity> = Vec::new();
    let mut open: Vec<Open> = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c == b'&'
            && let Some((ch, next)) = decode_entity(s, i)?
        {
            utf16 += ch.len_utf16();
            let mut buf = [0; 4];
            text.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            i = next;
            continue;
        }
        if c != b'<' {
            if !is_continuation_byte(c) {
                utf16 += if c >= 0xf0 { 2 } else { 1 };
            }
            text.push(c);
            i += 1;
            continue;
        }

        let begin = i;
        let mut lexer = Lexer { s, pos: i + 1, dialect: Dialect::Message };
        if at(i + 1) != b'/' {
            // A start tag.
            let tag = lexer.start_tag_name(begin)?;
            if !TAGS.contains(&tag.as_str()) {
                return Err(format!("Unsupported start tag \"{tag}\" at byte offset {begin}"));
            }
            let (attributes, _) = lexer.attributes(&tag, begin)?;
            i = lexer.pos;
            let mut argument = String::new();
            let mut format = String::new();
            for Attribute { name, value, .. } in attributes {
                // Attribute names are compared case-sensitively, as in TDLib.
                match (tag.as_str(), name.as_str(), value) {
                    ("blockquote", "expandable", _) => argument = "1".into(),
                    (_, _, None) => {}
                    ("a", "href", Some(value))
                    | ("tg-emoji", "emoji-id", Some(value))
                    | ("tg-time", "unix", Some(value)) => argument = value,
                    ("code", "class", Some(value)) if value.starts_with("language-") => {
                        argument = value["language-".len()..].to_string()
                    }
                    ("span", "class", Some(value)) if value.starts_with("tg-") => {
                        argument = value["tg-".len()..].to_string()
                    }
                    ("tg-time", "format", Some(value)) => format = value,
                    _ => {}
                }
            }
            if tag == "span" && argument != "spoiler" {
                return Err(format!(
                    "Tag \"span\" must have class \"tg-spoiler\" at byte offset {begin}"
                ));
            }
            check_nesting(&open, &tag, utf16, begin)?;
            open.push(Open { tag, argument, format, utf16_start: utf16, text_start: text.len() });
            i += 1; // past '>'
        } else {
            // An end tag; `</>` closes the innermost tag.
            if open.is_empty() {
                return Err(format!("Unexpected end tag at byte offset {begin}"));
            }
            let end_tag = lexer.end_tag(begin)?;
            i = lexer.pos; // at '>'
            let tag = open.pop().expect("checked non-empty above");
            if !end_tag.is_empty() && end_tag != tag.tag {
                return Err(format!(
                    "Unmatched end tag at byte offset {begin}, expected \"</{}>\", found \"</{end_tag}>\"",
                    tag.tag
                ));
            }
            if utf16 > tag.utf16_start {
                close_entity(tag, utf16, &text, &mut entities, begin)?;
            }
            i += 1; // past '>'
        }
    }
    if let Some(tag) = open.last() {
        return Err(format!("Can't find end tag corresponding to start tag \"{}\"", tag.tag));
    }
    for entity in &mut entities {
        if entity.kind == "code" {
            entity.language = None; // "language can't be specified for standalone code tags"
        }
    }
    entities.sort_by_key(|e| (e.offset, std::cmp::Reverse(e.length), e.priority()));
    let text = String::from_utf8(text).map_err(|_| {
        "Text contains invalid Unicode characters after decoding HTML entities, check for unmatched surrogate code units".to_string()
    })?;
    Ok((text, entities))
}

/// Which HTML a lexer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `parse_mode: "HTML"` of a message: TDLib's `parse_html`, quirks and all.
    Message,
    /// The `html` of a rich message (`tg_rich`): `<hr/>` and `<br />` close themselves,
    /// attribute values keep their case, and only the documented entities are decoded.
    Rich,
}

/// An attribute of a start tag: `value` is `None` for a bare name (`<input checked>`).
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub name: String,
    pub value: Option<String>,
}

/// Reads the tags of Telegram HTML as TDLib's `parse_html` does: shared by the parse mode
/// (`parse`) and rich messages (`tg_rich`), which differ only where `Dialect` says.
pub struct Lexer<'a> {
    pub s: &'a [u8],
    /// The next byte to read.
    pub pos: usize,
    pub dialect: Dialect,
}

impl Lexer<'_> {
    /// The byte at `i`; TDLib reads a NUL-terminated string: past the end every byte is 0.
    pub fn at(&self, i: usize) -> u8 {
        self.s.get(i).copied().unwrap_or(0)
    }

    /// Past `<`: the tag's name in lower case. A rich tag's name also ends at `/` (`<hr/>`).
    pub fn start_tag_name(&mut self, begin: usize) -> Result<String, String> {
        let rich = self.dialect == Dialect::Rich;
        while !is_space(self.at(self.pos))
            && self.at(self.pos) != b'>'
            && !(rich && self.at(self.pos) == b'/')
        {
            self.pos += 1;
        }
        if self.at(self.pos) == 0 {
            return Err(format!("Unclosed start tag at byte offset {begin}"));
        }
        Ok(lower(&self.s[begin + 1..self.pos]))
    }

    /// After the name: the attributes, in order, and whether the tag closed itself (`/>`,
    /// rich only). Leaves `pos` at the closing `>`.
    pub fn attributes(
        &mut self,
        tag: &str,
        begin: usize,
    ) -> Result<(Vec<Attribute>, bool), String> {
        let mut attributes = Vec::new();
        while self.at(self.pos) != b'>' {
            self.skip_spaces();
            if self.at(self.pos) == b'>' {
                break;
            }
            if self.dialect == Dialect::Rich
                && self.at(self.pos) == b'/'
                && self.at(self.pos + 1) == b'>'
            {
                self.pos += 1;
                return Ok((attributes, true));
            }
            let name_start = self.pos;
            while !is_space(self.at(self.pos))
                && !matches!(self.at(self.pos), b'=' | b'>' | b'/' | b'"' | b'\'')
            {
                self.pos += 1;
            }
            let name = String::from_utf8_lossy(&self.s[name_start..self.pos]).into_owned();
            if name.is_empty() {
                return Err(format!(
                    "Empty attribute name in the tag \"{tag}\" at byte offset {begin}"
                ));
            }
            self.skip_spaces();
            if self.at(self.pos) != b'=' {
                if self.at(self.pos) == 0 {
                    return Err(format!("Unclosed start tag \"{tag}\" at byte offset {begin}"));
                }
                attributes.push(Attribute { name, value: None });
                continue;
            }
            self.pos += 1;
            self.skip_spaces();
            if self.at(self.pos) == 0 {
                return Err(format!("Unclosed start tag \"{tag}\" at byte offset {begin}"));
            }
            let value = self.attribute_value()?;
            if self.at(self.pos) == 0 {
                return Err(format!("Unclosed start tag at byte offset {begin}"));
            }
            attributes.push(Attribute { name, value: Some(value) });
        }
        Ok((attributes, false))
    }

    /// A quoted value (entities decoded), or a name token: letters, digits, periods,
    /// hyphens; lower-cased in a message, as TDLib does ("not case sensitive").
    fn attribute_value(&mut self) -> Result<String, String> {
        let quote = self.at(self.pos);
        if quote != b'\'' && quote != b'"' {
            let token_start = self.pos;
            while self.at(self.pos).is_ascii_alphanumeric()
                || matches!(self.at(self.pos), b'.' | b'-')
            {
                self.pos += 1;
            }
            let token = &self.s[token_start..self.pos];
            let closes = self.dialect == Dialect::Rich
                && self.at(self.pos) == b'/'
                && self.at(self.pos + 1) == b'>';
            if !is_space(self.at(self.pos)) && self.at(self.pos) != b'>' && !closes {
                return Err(format!("Unexpected end of name token at byte offset {token_start}"));
            }
            return Ok(match self.dialect {
                Dialect::Message => lower(token),
                Dialect::Rich => String::from_utf8_lossy(token).into_owned(),
            });
        }
        self.pos += 1;
        let mut bytes = Vec::new();
        while self.at(self.pos) != quote && self.at(self.pos) != 0 {
            if self.at(self.pos) == b'&'
                && let Some((ch, next)) = self.entity(self.pos)?
            {
                let mut buf = [0; 4];
                bytes.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                self.pos = next;
                continue;
            }
            bytes.push(self.at(self.pos));
            self.pos += 1;
        }
        if self.at(self.pos) == quote {
            self.pos += 1;
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Past `</`… at `begin`: the end tag's name in lower case (empty for `</>`). Leaves
    /// `pos` at the closing `>`.
    pub fn end_tag(&mut self, begin: usize) -> Result<String, String> {
        while !is_space(self.at(self.pos)) && self.at(self.pos) != b'>' {
            self.pos += 1;
        }
        let name = lower(&self.s[begin + 2..self.pos]);
        self.skip_spaces();
        if self.at(self.pos) != b'>' {
            return Err(format!("Unclosed end tag at byte offset {begin}"));
        }
        Ok(name)
    }

    /// The character of the entity reference at `pos` (an `&`) and the position after it;
    /// `None` leaves the `&` literal (a message only: in a rich message it is an error).
    pub fn entity(&self, pos: usize) -> Result<Option<(char, usize)>, String> {
        match self.dialect {
            Dialect::Message => decode_entity(self.s, pos),
            Dialect::Rich => decode_rich_entity(self.s, pos).map(Some),
        }
    }

    fn skip_spaces(&mut self) {
        while self.at(self.pos) != 0 && is_space(self.at(self.pos)) {
            self.pos += 1;
        }
    }
}

/// Turns a closed non-empty tag into its entity, as TDLib does.
fn close_entity(
    tag: Open,
    utf16_end: usize,
    text: &[u8],
    entities: &mut Vec<Entity>,
    end_tag_offset: usize,
) -> Result<(), String> {
    let (offset, length) = (tag.utf16_start, utf16_end - tag.utf16_start);
    let entity = match tag.tag.as_str() {
        "i" | "em" => Entity::new("italic", offset, length),
        "b" | "strong" => Entity::new("bold", offset, length),
        "s" | "strike" | "del" => Entity::new("strikethrough", offset, length),
        "u" | "ins" => Entity::new("underline", offset, length),
        "tg-spoiler" | "span" => Entity::new("spoiler", offset, length),
        "blockquote" if tag.argument.is_empty() => Entity::new("blockquote", offset, length),
        "blockquote" => Entity::new("expandable_blockquote", offset, length),
        "code" => {
            // The language is kept only until an enclosing </pre> picks it up.
            let mut entity = Entity::new("code", offset, length);
            entity.language = Some(tag.argument).filter(|l| !l.is_empty());
            entity
        }
        "tg-emoji" => {
            if !tag.argument.parse::<i64>().is_ok_and(|id| id != 0) {
                return Err("Invalid custom emoji identifier specified".into());
            }
            let mut entity = Entity::new("custom_emoji", offset, length);
            entity.custom_emoji_id = Some(tag.argument);
            entity
        }
        "tg-time" => {
            let Ok(unix) = tag.argument.parse::<i64>() else {
                return Err("Invalid Unix time specified".into());
            };
            let mut entity = Entity::new("date_time", offset, length);
            entity.unix_time = Some(unix);
            entity.date_time_format = Some(tag.format).filter(|f| !f.is_empty());
            entity
        }
        "a" => {
            let url = if tag.argument.is_empty() {
                String::from_utf8_lossy(&text[tag.text_start..]).into_owned()
            } else {
                tag.argument
            };
            if let Some(id) = url.strip_prefix("tg://user?id=").and_then(|id| id.parse().ok()) {
                let mut entity = Entity::new("text_mention", offset, length);
                entity.user_id = Some(id);
                entity
            } else if let Some(url) = checked_link(&url) {
                let mut entity = Entity::new("text_link", offset, length);
                entity.url = Some(url);
                entity
            } else {
                return Ok(()); // an invalid URL silently makes no link
            }
        }
        "pre" => {
            let mut entity = Entity::new("pre", offset, length);
            // <pre><code class="language-x">…</code></pre> is one pre entity with a language.
            if let Some(code) = entities.last().filter(|e| e.kind == "code" && e.offset == offset) {
                if code.length != length {
                    return Err(format!(
                        "Text after </code> inside <pre> at byte offset {end_tag_offset} \
                         (Telegram silently drops such formatting; the fake rejects it)"
                    ));
                }
                entity.language = entities.pop().and_then(|code| code.language);
            }
            entity
        }
        other => unreachable!("tag {other} was checked against TAGS"),
    };
    entities.push(entity);
    Ok(())
}

/// Rejects nesting that the real server accepts but silently flattens (see the header).
fn check_nesting(open: &[Open], tag: &str, utf16: usize, begin: usize) -> Result<(), String> {
    let rejected = |outer: &str, why: &str| {
        Err(format!(
            "Tag \"{tag}\" at byte offset {begin} is nested in \"{outer}\": {why} \
             (Telegram silently drops such formatting; the fake rejects it)"
        ))
    };
    if let Some(outer) = open.iter().find(|o| o.tag == "code" || o.tag == "pre") {
        let last = open.last().expect("found one above");
        let code_opens_pre = tag == "code" && last.tag == "pre" && last.utf16_start == utf16;
        if !code_opens_pre {
            return rejected(&outer.tag, "nothing can be inside code or pre");
        }
    }
    if tag == "blockquote"
        && let Some(outer) = open.iter().find(|o| o.tag == "blockquote")
    {
        return rejected(&outer.tag, "blockquotes can't be nested");
    }
    let continuous = CONTINUOUS.contains(&tag) || tag == "code" || tag == "pre";
    if continuous && let Some(outer) = open.iter().find(|o| CONTINUOUS.contains(&o.tag.as_str())) {
        return rejected(
            &outer.tag,
            "links, custom emoji, times and code can't contain each other",
        );
    }
    Ok(())
}

/// Decodes `&lt;` `&gt;` `&amp;` `&quot;` and numeric references, `;` optional. `None` leaves
/// the `&` literal (unknown names like `&nbsp;`, `AT&T`). Returns the character and the
/// position after the reference.
fn decode_entity(s: &[u8], pos: usize) -> Result<Option<(char, usize)>, String> {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let mut end = pos + 1;
    let code: u32;
    if at(pos + 1) == b'#' {
        end += 1;
        let mut value: u64 = 0;
        if at(pos + 2) == b'x' {
            end += 1;
            while at(end).is_ascii_hexdigit() {
                let digit = (at(end) as char).to_digit(16).expect("checked hex digit");
                value = value.saturating_mul(16).saturating_add(digit as u64);
                end += 1;
            }
        } else {
            while at(end).is_ascii_digit() {
                value = value.saturating_mul(10).saturating_add((at(end) - b'0') as u64);
                end += 1;
            }
        }
        if value == 0 || value >= 0x10ffff || end - pos >= 10 {
            return Ok(None);
        }
        code = value as u32;
    } else {
        while at(end).is_ascii_alphabetic() {
            end += 1;
        }
        code = match &s[pos + 1..end] {
            b"lt" => '<' as u32,
            b"gt" => '>' as u32,
            b"amp" => '&' as u32,
            b"quot" => '"' as u32,
            _ => return Ok(None),
        };
    }
    if at(end) == b';' {
        end += 1;
    }
    let Some(ch) = char::from_u32(code) else {
        return Err("Text contains invalid Unicode characters after decoding HTML entities, check for unmatched surrogate code units".into());
    };
    Ok(Some((ch, end)))
}

/// The named entities of rich HTML (telegram-10x.md, "Rich HTML": "named only …").
const RICH_ENTITIES: [(&str, char); 13] = [
    ("lt", '<'),
    ("gt", '>'),
    ("amp", '&'),
    ("quot", '"'),
    ("apos", '\''),
    ("nbsp", '\u{a0}'),
    ("hellip", '…'),
    ("mdash", '—'),
    ("ndash", '–'),
    ("lsquo", '‘'),
    ("rsquo", '’'),
    ("ldquo", '“'),
    ("rdquo", '”'),
];

/// An entity reference of rich HTML: a documented name or a number, ended by `;`. Anything
/// else is an error (the fake's rule: how Telegram treats a bare `&` there is UNCONFIRMED,
/// and a bot that escapes every `&` is right either way).
fn decode_rich_entity(s: &[u8], pos: usize) -> Result<(char, usize), String> {
    let unsupported = || Err(format!("Unsupported HTML entity at byte offset {pos}"));
    let Some(semicolon) = s[pos..].iter().take(12).position(|&b| b == b';') else {
        return unsupported();
    };
    let name = &s[pos + 1..pos + semicolon];
    let number = match name {
        [b'#', b'x' | b'X', hex @ ..] if !hex.is_empty() => {
            std::str::from_utf8(hex).ok().and_then(|h| u32::from_str_radix(h, 16).ok())
        }
        [b'#', digits @ ..] if !digits.is_empty() => {
            std::str::from_utf8(digits).ok().and_then(|d| d.parse::<u32>().ok())
        }
        _ => {
            let named = RICH_ENTITIES.iter().find(|(n, _)| n.as_bytes() == name);
            return match named {
                Some((_, ch)) => Ok((*ch, pos + semicolon + 1)),
                None => unsupported(),
            };
        }
    };
    match number.filter(|n| *n != 0).and_then(char::from_u32) {
        Some(ch) => Ok((ch, pos + semicolon + 1)),
        None => unsupported(),
    }
}

/// What TDLib's `get_checked_link` accepts, simplified: http(s) and tg links, and bare hosts
/// (which get `http://`). `javascript:` and the like make no link.
fn checked_link(url: &str) -> Option<String> {
    let url = url.trim();
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("tg://") {
        return Some(url.to_string());
    }
    let host = url.split(['/', '?', '#']).next().unwrap_or("");
    let plausible_host = host.contains('.')
        && !host.contains(':')
        && host.chars().all(|c| c.is_alphanumeric() || c == '.' || c == '-');
    plausible_host.then(|| format!("http://{url}"))
}

/// Applies Telegram's trimming to parsed text (TDLib `fix_formatted_text`): trailing spaces
/// and newlines go, leading ones go up to the first entity, entities are clipped to match.
pub fn trim(text: &str, entities: &[Entity]) -> (String, Vec<Entity>) {
    let kept = text.trim_end_matches([' ', '\n']);
    let end = utf16_len(kept);
    let mut entities: Vec<Entity> = entities
        .iter()
        .filter(|e| e.offset < end)
        .cloned()
        .map(|mut e| {
            e.length = e.length.min(end - e.offset);
            e
        })
        .collect();
    let first_entity = entities.iter().map(|e| e.offset).min().unwrap_or(usize::MAX);
    let leading = kept.len() - kept.trim_start_matches([' ', '\n']).len();
    let cut = leading.min(first_entity); // leading whitespace is ASCII: bytes = UTF-16 units
    for entity in &mut entities {
        entity.offset -= cut;
    }
    entities.sort_by_key(|e| (e.offset, std::cmp::Reverse(e.length), e.priority()));
    (kept[cut..].to_string(), entities)
}

/// Length in UTF-16 code units, the unit of entity offsets.
pub fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// TDLib's `is_space`, which also stops at the virtual NUL past the end.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n' | 0 | 0x0b | 0x0c)
}

fn is_continuation_byte(c: u8) -> bool {
    c & 0xc0 == 0x80
}

fn lower(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(html: &str) -> String {
        parse(html).expect_err(html)
    }

    fn kinds(html: &str) -> Vec<(&'static str, usize, usize)> {
        let (_, entities) = parse(html).expect(html);
        entities.iter().map(|e| (e.kind, e.offset, e.length)).collect()
    }

    #[test]
    fn unsupported_tags_name_the_tag_and_byte_offset() {
        assert_eq!(err("Hello<br>World"), "Unsupported start tag \"br\" at byte offset 5");
        assert_eq!(err("<p>x</p>"), "Unsupported start tag \"p\" at byte offset 0");
        // Byte offsets, not characters: "Привет" is 12 bytes.
        assert_eq!(err("Привет<br>"), "Unsupported start tag \"br\" at byte offset 12");
        assert_eq!(err("<BR/>"), "Unsupported start tag \"br/\" at byte offset 0");
        assert_eq!(
            err("<span>x</span>"),
            "Tag \"span\" must have class \"tg-spoiler\" at byte offset 0"
        );
    }

    #[test]
    fn a_bare_less_than_sign_always_starts_a_tag() {
        assert_eq!(err("a < b"), "Unsupported start tag \"\" at byte offset 2");
        assert_eq!(err("x<y"), "Unclosed start tag at byte offset 1");
        assert_eq!(err("x<"), "Unclosed start tag at byte offset 1");
        assert_eq!(err("<b>x</b"), "Unclosed end tag at byte offset 4");
    }

    #[test]
    fn end_tags_must_match() {
        assert_eq!(
            err("<b><i>x</b></i>"),
            "Unmatched end tag at byte offset 7, expected \"</i>\", found \"</b>\""
        );
        assert_eq!(err("x</b>"), "Unexpected end tag at byte offset 1");
        assert_eq!(err("<b>x"), "Can't find end tag corresponding to start tag \"b\"");
        assert_eq!(kinds("<b>x</>"), [("bold", 0, 1)]);
        assert_eq!(kinds("<B>x</b >"), [("bold", 0, 1)]);
    }

    #[test]
    fn attributes_follow_tdlib() {
        assert_eq!(err("<a =x>y</a>"), "Empty attribute name in the tag \"a\" at byte offset 0");
        assert_eq!(err("<a href=x\">y</a>"), "Unexpected end of name token at byte offset 8");
        assert_eq!(err("<a href=\"x"), "Unclosed start tag at byte offset 0");
        assert_eq!(err("<a href"), "Unclosed start tag \"a\" at byte offset 0");
        assert_eq!(
            err("<tg-emoji emoji-id=\"abc\">👍</tg-emoji>"),
            "Invalid custom emoji identifier specified"
        );
        let (text, entities) = parse("<a href='https://e.com/?a=1&amp;b=2'>link</a>").unwrap();
        assert_eq!(text, "link");
        assert_eq!(entities[0].url.as_deref(), Some("https://e.com/?a=1&b=2"));
        let (_, entities) = parse("<a href=\"javascript:alert(1)\">x</a>").unwrap();
        assert!(entities.is_empty(), "an invalid URL makes no link and no error");
        assert_eq!(
            kinds("<blockquote expandable>q</blockquote>"),
            [("expandable_blockquote", 0, 1)]
        );
        assert_eq!(kinds("<span class=\"tg-spoiler\">s</span>"), [("spoiler", 0, 1)]);
    }

    #[test]
    fn ampersands_are_lenient() {
        assert_eq!(
            parse("AT&T &nbsp; &lt;b&gt; &amp &quot;q&quot; &#33;&#x41;").unwrap().0,
            "AT&T &nbsp; <b> & \"q\" !A"
        );
        assert_eq!(parse("&#128512;").unwrap().0, "😀");
        assert!(parse("&#xD83D;").is_err(), "a lone surrogate");
        assert_eq!(parse("a > b").unwrap().0, "a > b");
    }

    #[test]
    fn entities_are_in_utf16_units() {
        let (text, entities) = parse("👋 <b>жирный</b> <i>😀</i>").unwrap();
        assert_eq!(text, "👋 жирный 😀");
        let got: Vec<_> = entities.iter().map(|e| (e.kind, e.offset, e.length)).collect();
        assert_eq!(got, [("bold", 3, 6), ("italic", 10, 2)]);
        let (text, entities) = parse("<b>Закон Ома</b>: I = U / R").unwrap();
        assert_eq!(
            (text.as_str(), entities[0].offset, entities[0].length),
            ("Закон Ома: I = U / R", 0, 9)
        );
        assert_eq!(entities[0].to_json(), json!({"offset": 0, "length": 9, "type": "bold"}));
    }

    #[test]
    fn every_supported_tag_maps_to_its_entity() {
        assert_eq!(
            kinds(
                "<b>1</b><strong>2</strong><i>3</i><em>4</em><u>5</u><ins>6</ins><s>7</s><strike>8</strike><del>9</del><tg-spoiler>0</tg-spoiler><code>c</code>"
            ),
            [
                ("bold", 0, 1),
                ("bold", 1, 1),
                ("italic", 2, 1),
                ("italic", 3, 1),
                ("underline", 4, 1),
                ("underline", 5, 1),
                ("strikethrough", 6, 1),
                ("strikethrough", 7, 1),
                ("strikethrough", 8, 1),
                ("spoiler", 9, 1),
                ("code", 10, 1),
            ]
        );
        let (_, e) = parse("<a href=\"tg://user?id=42\">Ivan</a>").unwrap();
        assert_eq!((e[0].kind, e[0].user_id), ("text_mention", Some(42)));
        let (_, e) = parse("<tg-time unix=\"1647531900\" format=\"wDT\">22:45</tg-time>").unwrap();
        assert_eq!(
            (e[0].kind, e[0].unix_time, e[0].date_time_format.as_deref()),
            ("date_time", Some(1647531900), Some("wDT"))
        );
        assert!(kinds("<b></b>x").is_empty(), "empty tags make no entity");
    }

    #[test]
    fn pre_with_code_gives_the_language() {
        let (text, e) =
            parse("<pre><code class=\"language-rust\">fn main() {}</code></pre>").unwrap();
        assert_eq!(text, "fn main() {}");
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].kind, e[0].language.as_deref()), ("pre", Some("rust")));
        assert_eq!(kinds("<pre><code>x</code></pre>"), [("pre", 0, 1)]);
        let (_, e) = parse("<code class=\"language-rust\">x</code>").unwrap();
        assert_eq!((e[0].kind, e[0].language.as_deref()), ("code", None));
    }

    #[test]
    fn nesting_that_telegram_would_flatten_is_rejected() {
        assert!(
            err("<code><b>x</b></code>")
                .starts_with("Tag \"b\" at byte offset 6 is nested in \"code\"")
        );
        assert!(err("<pre>a<code>x</code></pre>").contains("nested in \"pre\""));
        assert!(err("<pre><code>x</code>y</pre>").starts_with("Text after </code> inside <pre>"));
        assert!(
            err("<blockquote>a<blockquote>b</blockquote></blockquote>").contains("can't be nested")
        );
        assert!(err("<a href=\"https://a.b\"><code>x</code></a>").contains("nested in \"a\""));
        // Formatting around code, and anything in a blockquote, is fine.
        assert_eq!(kinds("<b>a <code>x</code></b>"), [("bold", 0, 3), ("code", 2, 1)]);
        assert_eq!(
            kinds("<blockquote><b>q</b></blockquote>"),
            [("blockquote", 0, 1), ("bold", 0, 1)]
        );
    }

    #[test]
    fn trimming_follows_fix_formatted_text() {
        let (text, e) = parse("\n  <b>hi</b> \n").unwrap();
        assert_eq!(trim(&text, &e), ("hi".to_string(), vec![Entity::new("bold", 0, 2)]));
        let (text, e) = parse("\n<b>  hi</b>").unwrap();
        assert_eq!(trim(&text, &e), ("  hi".to_string(), vec![Entity::new("bold", 0, 4)]));
        let (text, e) = parse("\n  hi<b> </b>\n").unwrap();
        assert_eq!(trim(&text, &e), ("hi".to_string(), vec![]));
        assert_eq!(trim("   ", &[]).0, "");
        assert_eq!(trim("\tx\t", &[]).0, "\tx\t", "only spaces and newlines are trimmed");
    }
}
