//! GigaChat's Markdown → the HTML subset Telegram accepts, cut into messages Telegram accepts.
//!
//! Telegram refuses a whole message for one unknown tag or one bare `<`, and refuses more than
//! 4096 visible characters, so every answer goes through here. Pure: no I/O, no logging.

use pulldown_cmark::{CodeBlockKind, Event, LinkType, Options, Parser, Tag, TagEnd};

/// Telegram's limit on a message's visible text, in Unicode code points.
/// Tags and entities do not count, so we count what the user sees, not bytes or UTF-16 units.
pub const MESSAGE_LIMIT: usize = 4096;

/// Markdown as GigaChat writes it → Telegram HTML that Telegram's parser accepts.
/// A real CommonMark parser handles nesting and code; we only choose which tags to emit.
pub fn markdown_to_html(markdown: &str) -> String {
    // CommonMark's own rules: any line ending is a newline, NUL becomes U+FFFD.
    let markdown = markdown.replace("\r\n", "\n").replace('\r', "\n").replace('\0', "\u{FFFD}");
    let options =
        Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS;
    let mut renderer = Renderer::default();
    for event in Parser::new_ext(&markdown, options) {
        renderer.event(event);
    }
    renderer.out.trim().to_string()
}

/// A Markdown answer as the messages to send: Telegram HTML of at most 4096 visible
/// characters each; none if nothing in it would be visible.
pub fn markdown_chunks(markdown: &str) -> Vec<String> {
    let html = markdown_to_html(markdown);
    split_html(&html, MESSAGE_LIMIT)
}

/// One of the bot's own texts as messages: escaped, so that no character of it (a user's
/// name with a `<`, say) is taken for a tag, and split like an answer.
pub fn plain_chunks(text: &str) -> Vec<String> {
    let mut html = String::with_capacity(text.len());
    push_escaped(&mut html, text, false);
    split_html(&html, MESSAGE_LIMIT)
}

/// Splits Telegram HTML (as made by markdown_to_html) into chunks of at most `limit` visible characters each.
/// Each chunk is valid on its own: tags open at a cut are closed, then reopened in the next chunk.
/// Streams: time linear in the HTML, and besides the chunks only a window of `limit + 1`
/// characters in memory, however long the answer.
pub fn split_html(html: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(1);
    let (mut left, mut blank) = (0, true);
    for ch in visible_chars(html) {
        left += 1;
        blank &= ch.is_whitespace();
    }
    if blank {
        return Vec::new();
    }
    if left <= limit {
        return vec![html.to_string()];
    }
    let mut chunks = Vec::new();
    // `stack` holds the tags open where the last chunk ended, `from` the byte it ended at.
    let (mut stack, mut from) = (Vec::new(), 0);
    let mut window = Window::default();
    while left > 0 {
        let (count, to) = if left <= limit {
            window.read(html, from, left);
            (left, html.len())
        } else {
            window.read(html, from, limit + 1);
            let end = find_cut(&window.chars, limit);
            (end, window.ends[end])
        };
        let chunk = build_chunk(html, from, to, &mut stack);
        // Cuts go after whitespace, so a chunk of only whitespace needs a run of it at a forced
        // cut (no boundary within `limit`); the chunk before it is then full. "No blank message"
        // wins: it is dropped, and the chunks joined equal the whole minus that whitespace.
        if !window.chars[..count].iter().all(|c| c.is_whitespace()) {
            chunks.push(chunk);
        }
        left -= count;
        from = to;
    }
    chunks
}

/// The text a user sees for a piece of Telegram HTML: tags removed, entities decoded (the plain-text fallback).
/// It is also what Telegram counts against MESSAGE_LIMIT.
pub fn visible_text(html: &str) -> String {
    visible_chars(html).collect()
}

fn push_escaped(out: &mut String, text: &str, quotes: bool) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if quotes => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
}

/// Links that only open a web page or a mail: `tg://` ones (join a group, open a chat,
/// mention a user) in an answer a prompt talked GigaChat into are plain text, and so are
/// relative and `javascript:` URLs.
fn allowed_url(url: &str) -> bool {
    let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
    ["http", "https", "mailto"].iter().any(|s| s.eq_ignore_ascii_case(scheme))
}

/// List levels that get their own indentation. On a phone's line of about 35 characters,
/// more than 6 spaces of indent crowds the text, and answers seldom nest past 3 levels; deeper
/// lists are flattened onto the fourth, so that the indentation, and the output, cannot grow
/// with the square of the nesting (`- - - - …`, one marker per level).
const MAX_LIST_DEPTH: usize = 4;

/// The tags of the styles counted in `Renderer::styles`: bold, italic, strikethrough.
const STYLES: [(&str, &str); 3] = [("<b>", "</b>"), ("<i>", "</i>"), ("<s>", "</s>")];
const BOLD: usize = 0;
const ITALIC: usize = 1;
const STRIKE: usize = 2;

/// State while turning pulldown-cmark events into Telegram HTML.
#[derive(Default)]
struct Renderer {
    out: String,
    /// Newlines owed before the next content: 0, 1 (new line) or 2 (blank line).
    gap: usize,
    /// The marker ("• ", "2. ") of a list item whose content has not started yet.
    marker: Option<String>,
    /// One entry per open list: the next number of an ordered list, None for bullets.
    lists: Vec<Option<u64>>,
    /// Telegram forbids nested quotes, so only the outermost one gets a tag.
    quote_depth: usize,
    /// One entry per open link or image: whether it became an `<a>`.
    links: Vec<bool>,
    /// Whether an `<a>` is open: Telegram forbids a link or code inside a link.
    in_link: bool,
    /// How many bold (strong, heading, table head), italic and strikethrough spans are open.
    /// Only the outermost of each gets a tag: an inner one would show nothing more, and the
    /// tags a chunk reopens after a cut stay few (`***…***` opens two, not thousands).
    styles: [usize; 3],
    /// The text of the code block being read, and whether it opened `<code class=…>`.
    code: Option<(String, bool)>,
    /// Cells seen so far in the current table row.
    cells: usize,
}

impl Renderer {
    /// Pays the owed newlines and list marker; called before any text or start tag.
    fn content(&mut self) {
        if !self.out.is_empty() {
            self.out.push_str(&"\n".repeat(self.gap));
        }
        self.gap = 0;
        if let Some(marker) = self.marker.take() {
            self.out.push_str(&marker);
        }
    }

    fn open(&mut self, tag: &str) {
        self.content();
        self.out.push_str(tag);
    }

    fn text(&mut self, text: &str) {
        match &mut self.code {
            Some((code, _)) => code.push_str(text),
            None => {
                self.content();
                push_escaped(&mut self.out, text, false);
            }
        }
    }

    fn indent(&self) -> String {
        "  ".repeat(self.lists.len().clamp(1, MAX_LIST_DEPTH) - 1)
    }

    /// Opens the style's tag (`STYLES`) unless it is open already.
    fn open_style(&mut self, style: usize) {
        self.styles[style] += 1;
        match self.styles[style] {
            1 => self.open(STYLES[style].0),
            _ => self.content(),
        }
    }

    /// Closes the style's tag if this is the span that opened it.
    fn close_style(&mut self, style: usize) {
        self.styles[style] = self.styles[style].saturating_sub(1);
        if self.styles[style] == 0 {
            self.out.push_str(STYLES[style].1);
        }
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            // Raw HTML is shown as the model wrote it: escaped text.
            Event::Text(text) | Event::Html(text) | Event::InlineHtml(text) => self.text(&text),
            // Telegram forbids code inside a link: there it is plain text.
            Event::Code(code) if self.in_link => self.text(&code),
            Event::Code(code) => {
                self.open("<code>");
                push_escaped(&mut self.out, &code, false);
                self.out.push_str("</code>");
            }
            Event::SoftBreak | Event::HardBreak => self.text("\n"),
            Event::Rule => {
                self.open("———");
                self.gap = 2;
            }
            Event::TaskListMarker(done) => {
                let checkbox = if done { "☑ " } else { "☐ " };
                match self.marker.take() {
                    Some(_) => self.marker = Some(format!("{}{checkbox}", self.indent())),
                    None => self.text(checkbox),
                }
            }
            _ => {} // footnotes and math: not enabled
        }
    }

    fn start(&mut self, tag: Tag) {
        match tag {
            Tag::Heading { .. } | Tag::Strong => self.open_style(BOLD),
            Tag::Emphasis => self.open_style(ITALIC),
            Tag::Strikethrough => self.open_style(STRIKE),
            Tag::BlockQuote(_) => {
                self.quote_depth += 1;
                if self.quote_depth == 1 {
                    self.open("<blockquote>");
                }
            }
            Tag::CodeBlock(kind) => {
                let info = match &kind {
                    CodeBlockKind::Fenced(info) => info.split_whitespace().next().unwrap_or(""),
                    CodeBlockKind::Indented => "",
                };
                let language: String = info
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || "_+#.-".contains(*c))
                    .collect();
                if language.is_empty() {
                    self.open("<pre>");
                } else {
                    self.open(&format!("<pre><code class=\"language-{language}\">"));
                }
                self.code = Some((String::new(), !language.is_empty()));
            }
            Tag::List(first) => self.start_list(first),
            Tag::Item => self.start_item(),
            Tag::TableHead => {
                self.open_style(BOLD);
                self.cells = 0;
            }
            Tag::TableRow => {
                self.content();
                self.cells = 0;
            }
            Tag::TableCell => {
                if self.cells > 0 {
                    self.text(" | ");
                }
                self.cells += 1;
            }
            Tag::Link { link_type, dest_url, .. } | Tag::Image { link_type, dest_url, .. } => {
                self.start_link(link_type, &dest_url);
            }
            _ => {} // paragraphs, tables and HTML blocks are separated when they end
        }
    }

    /// An item that starts with a nested list keeps its marker, unless the nested list is
    /// flattened onto the item's own indentation: there a line with only a marker says
    /// nothing, and `- - - … x` would be a line per level.
    fn start_list(&mut self, first: Option<u64>) {
        if self.lists.len() >= MAX_LIST_DEPTH {
            self.marker = None;
        } else if self.marker.is_some() {
            self.content();
        }
        if !self.lists.is_empty() {
            self.gap = self.gap.max(1);
        }
        self.lists.push(first);
    }

    fn start_item(&mut self) {
        let nested = self.lists.len() > 1;
        let marker = match self.lists.last_mut() {
            Some(Some(number)) => {
                let marker = format!("{number}. ");
                *number = number.saturating_add(1);
                marker
            }
            _ if nested => "◦ ".to_string(),
            _ => "• ".to_string(),
        };
        self.marker = Some(format!("{}{marker}", self.indent()));
    }

    /// Telegram forbids a link inside a link (an image inside a link, say): only the outermost
    /// allowed one becomes an `<a>`.
    fn start_link(&mut self, link_type: LinkType, dest_url: &str) {
        let url = match link_type {
            LinkType::Email => format!("mailto:{dest_url}"),
            _ => dest_url.to_string(),
        };
        let is_link = allowed_url(&url) && !self.in_link;
        if is_link {
            self.in_link = true;
            let mut tag = String::from("<a href=\"");
            push_escaped(&mut tag, &url, true);
            tag.push_str("\">");
            self.open(&tag);
        }
        self.links.push(is_link);
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph | TagEnd::Table => self.gap = 2,
            TagEnd::Heading(_) => {
                self.close_style(BOLD);
                self.gap = 2;
            }
            TagEnd::Strong => self.close_style(BOLD),
            TagEnd::Emphasis => self.close_style(ITALIC),
            TagEnd::Strikethrough => self.close_style(STRIKE),
            TagEnd::BlockQuote(_) => {
                self.quote_depth = self.quote_depth.saturating_sub(1);
                if self.quote_depth == 0 {
                    self.out.push_str("</blockquote>");
                }
                self.gap = 2;
            }
            TagEnd::CodeBlock => {
                if let Some((code, has_language)) = self.code.take() {
                    let code = code.strip_suffix('\n').unwrap_or(&code);
                    push_escaped(&mut self.out, code, false);
                    self.out.push_str(if has_language { "</code></pre>" } else { "</pre>" });
                }
                self.gap = 2;
            }
            TagEnd::HtmlBlock => {
                let len = self.out.trim_end_matches('\n').len();
                self.out.truncate(len);
                self.gap = 2;
            }
            TagEnd::List(_) => {
                self.lists.pop();
                self.gap = self.gap.max(if self.lists.is_empty() { 2 } else { 1 });
            }
            TagEnd::Item => {
                if self.marker.is_some() {
                    self.content(); // an empty item still shows its marker
                }
                self.gap = 1;
            }
            TagEnd::TableHead => {
                self.close_style(BOLD);
                self.gap = 1;
            }
            TagEnd::TableRow => self.gap = 1,
            TagEnd::Link | TagEnd::Image => {
                let was_link = self.links.pop() == Some(true);
                if was_link {
                    self.in_link = false;
                    self.out.push_str("</a>");
                }
            }
            _ => {}
        }
    }
}

/// One piece of Telegram HTML: a start tag, an end tag, or one visible character.
enum Piece<'a> {
    Open { raw: &'a str, name: &'a str },
    Close { raw: &'a str },
    Char { ch: char, raw: &'a str },
}

/// The pieces of `html` from byte `from` on, each with the byte it starts at, cut as they
/// are read. `from` must be where a piece starts; every piece ends at an ASCII `>` or `;` or
/// at a whole char, so no piece can land inside a character.
fn pieces(html: &str, from: usize) -> impl Iterator<Item = (usize, Piece<'_>)> {
    let mut rest = html.get(from..).expect("pieces start on a character boundary");
    std::iter::from_fn(move || {
        let c = rest.chars().next()?;
        let len = match c {
            '<' => rest.find('>').map_or(rest.len(), |i| i + 1),
            '&' => decode_entity(rest).map_or(1, |(_, len)| len),
            _ => c.len_utf8(),
        };
        let at = html.len() - rest.len();
        let (raw, after) = rest.split_at(len);
        rest = after;
        let piece = if raw.starts_with("</") {
            Piece::Close { raw }
        } else if let Some(tag) = raw.strip_prefix('<') {
            let name =
                tag.split(|c: char| c.is_whitespace() || c == '>' || c == '/').next().unwrap_or("");
            Piece::Open { raw, name }
        } else {
            let ch = decode_entity(raw).map_or(c, |(ch, _)| ch);
            Piece::Char { ch, raw }
        };
        Some((at, piece))
    })
}

/// The visible characters of `html`, entities decoded.
fn visible_chars(html: &str) -> impl Iterator<Item = char> {
    pieces(html, 0).filter_map(|(_, piece)| match piece {
        Piece::Char { ch, .. } => Some(ch),
        _ => None,
    })
}

/// The visible characters a chunk may take, read ahead of the cut; reused from chunk to chunk.
#[derive(Default)]
struct Window {
    chars: Vec<char>,
    /// For each character, the byte where a chunk that ends just before it ends: after the
    /// character before it and the end tags right after that. Start tags before a character
    /// belong to the next chunk.
    ends: Vec<usize>,
}

impl Window {
    /// Reads the next `count` visible characters of `html` from byte `from`.
    fn read(&mut self, html: &str, from: usize, count: usize) {
        self.chars.clear();
        self.ends.clear();
        let (mut end, mut closing) = (from, false);
        for (at, piece) in pieces(html, from) {
            match piece {
                Piece::Char { .. } if self.chars.len() == count => break,
                Piece::Char { ch, raw } => {
                    self.chars.push(ch);
                    self.ends.push(end);
                    (end, closing) = (at + raw.len(), true);
                }
                Piece::Close { raw } if closing => end = at + raw.len(),
                _ => closing = false,
            }
        }
    }
}

/// The character of the entity `text` starts with (`&lt;`, `&#128512;`, `&#x41;`), and its length
/// in bytes; None leaves the `&` as written.
fn decode_entity(text: &str) -> Option<(char, usize)> {
    let semicolon = text.bytes().take(12).position(|b| b == b';')?;
    let name = text.get(1..semicolon)?;
    let ch = match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        _ => {
            let number = name.strip_prefix('#')?;
            let (digits, radix) = match number.strip_prefix(['x', 'X']) {
                Some(hex) => (hex, 16),
                None => (number, 10),
            };
            if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
                return None;
            }
            char::from_u32(u32::from_str_radix(digits, radix).ok()?)?
        }
    };
    Some((ch, semicolon + 1))
}

/// The HTML of one chunk, the bytes `from..to` of `html`: reopens the tags in `stack`, adds
/// the pieces, closes what is still open. Leaves in `stack` the tags open at `to`, for the
/// next chunk.
fn build_chunk<'a>(
    html: &'a str,
    from: usize,
    to: usize,
    stack: &mut Vec<(&'a str, &'a str)>,
) -> String {
    let mut chunk: String = stack.iter().map(|(raw, _)| *raw).collect();
    for (_, piece) in pieces(html, from).take_while(|(at, _)| *at < to) {
        match piece {
            Piece::Open { raw, name } => {
                chunk.push_str(raw);
                stack.push((raw, name));
            }
            Piece::Close { raw } => {
                chunk.push_str(raw);
                stack.pop();
            }
            Piece::Char { raw, .. } => chunk.push_str(raw),
        }
    }
    for (_, name) in stack.iter().rev() {
        chunk.push_str(&format!("</{name}>"));
    }
    chunk
}

/// Where a chunk ends (exclusive) in `window`, the next `limit + 1` characters when more than
/// `limit` remain. A cut goes after a run of whitespace, so the run ends the earlier chunk.
fn find_cut(window: &[char], limit: usize) -> usize {
    // The latest cut of each kind: paragraph, line, sentence end, space.
    let mut latest: [Option<usize>; 4] = [None; 4];
    let mut newlines = 0;
    let mut in_space = false;
    let mut last_visible: Option<char> = None; // none yet: a chunk needs more than whitespace
    for (k, &c) in window.iter().enumerate() {
        if c.is_whitespace() {
            in_space = true;
            newlines += usize::from(c == '\n');
            continue;
        }
        if let (true, Some(before)) = (in_space, last_visible) {
            let kind = match newlines {
                0 if matches!(before, '.' | '!' | '?' | '…') => 2,
                0 => 3,
                1 => 1,
                _ => 0,
            };
            latest[kind] = Some(k);
        }
        in_space = false;
        newlines = 0;
        last_visible = Some(c);
    }
    // The best kind in the chunk's last half, else the best anywhere.
    let last_half = limit / 2;
    let in_last_half = latest.iter().flatten().find(|&&k| k >= last_half);
    if let Some(&k) = in_last_half.or(latest.iter().flatten().next()) {
        return k;
    }
    // No boundary at all: cut at the limit, moved back out of an emoji or accented letter.
    let mut k = limit;
    while k > 0 && joins(window[k - 1], window[k]) {
        k -= 1;
    }
    if k == 0 { limit } else { k }
}

/// Whether `next` belongs to the same user-perceived character as `prev`: combining marks,
/// variation selectors, skin tones, emoji ZWJ sequences, flags (the common cases, no tables).
fn joins(prev: char, next: char) -> bool {
    let regional = |c: char| ('\u{1F1E6}'..='\u{1F1FF}').contains(&c);
    prev == '\u{200D}'
        || (regional(prev) && regional(next))
        || matches!(next as u32,
            0x0300..=0x036F | 0x0483..=0x0489 | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF
            | 0x200D | 0x20D0..=0x20FF | 0xFE00..=0xFE0F | 0xFE20..=0xFE2F
            | 0x1F3FB..=0x1F3FF | 0xE0020..=0xE007F | 0xE0100..=0xE01EF)
}

// Named by path: tests/it/properties.rs compiles this file in by path, and there a plain
// `mod tests;` would be looked for as src/tests.rs.
#[path = "render/tests.rs"]
#[cfg(test)]
mod tests;
