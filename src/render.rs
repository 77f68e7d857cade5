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
    let markdown = markdown
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\0', "\u{FFFD}");
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
pub fn split_html(html: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(1);
    let pieces = parse_html(html);
    // The visible characters, and for each the index of its piece.
    let mut chars = Vec::new();
    let mut piece_of = Vec::new();
    for (index, piece) in pieces.iter().enumerate() {
        if let Piece::Char { ch, .. } = piece {
            chars.push(*ch);
            piece_of.push(index);
        }
    }
    if chars.iter().all(|c| c.is_whitespace()) {
        return Vec::new();
    }
    if chars.len() <= limit {
        return vec![html.to_string()];
    }
    // `stack` holds the tags open where the last chunk ended.
    let mut chunks = Vec::new();
    let mut stack = Vec::new();
    let (mut start, mut from) = (0, 0);
    while start < chars.len() {
        let end = if chars.len() - start <= limit {
            chars.len()
        } else {
            find_cut(&chars, start, limit)
        };
        // The chunk takes the pieces up to its last character and the end tags right after it;
        // start tags before the next character belong to the next chunk.
        let mut to = pieces.len();
        if end < chars.len() {
            to = piece_of[end - 1] + 1;
            while matches!(pieces.get(to), Some(Piece::Close { .. })) {
                to += 1;
            }
        }
        let html = build_chunk(&pieces[from..to], &mut stack);
        // Cuts go after whitespace, so a chunk of only whitespace needs a run of it at a forced
        // cut (no boundary within `limit`); the chunk before it is then full. "No blank message"
        // wins: it is dropped, and the chunks joined equal the whole minus that whitespace.
        if !chars[start..end].iter().all(|c| c.is_whitespace()) {
            chunks.push(html);
        }
        start = end;
        from = to;
    }
    chunks
}

/// The text a user sees for a piece of Telegram HTML: tags removed, entities decoded (the plain-text fallback).
/// It is also what Telegram counts against MESSAGE_LIMIT.
pub fn visible_text(html: &str) -> String {
    let mut text = String::new();
    for piece in parse_html(html) {
        if let Piece::Char { ch, .. } = piece {
            text.push(ch);
        }
    }
    text
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
    ["http", "https", "mailto"]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(scheme))
}

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
        "  ".repeat(self.lists.len().saturating_sub(1))
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            // Raw HTML is shown as the model wrote it: escaped text.
            Event::Text(text) | Event::Html(text) | Event::InlineHtml(text) => self.text(&text),
            // Telegram forbids code inside a link: there it is plain text.
            Event::Code(code) if self.links.contains(&true) => self.text(&code),
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
            Tag::Heading { .. } | Tag::Strong => self.open("<b>"),
            Tag::Emphasis => self.open("<i>"),
            Tag::Strikethrough => self.open("<s>"),
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
            Tag::List(first) => {
                if self.marker.is_some() {
                    self.content(); // an item that starts with a nested list keeps its marker
                }
                if !self.lists.is_empty() {
                    self.gap = self.gap.max(1);
                }
                self.lists.push(first);
            }
            Tag::Item => {
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
            Tag::TableHead => {
                self.open("<b>");
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
            Tag::Link {
                link_type,
                dest_url,
                ..
            }
            | Tag::Image {
                link_type,
                dest_url,
                ..
            } => {
                let url = match link_type {
                    LinkType::Email => format!("mailto:{dest_url}"),
                    _ => dest_url.to_string(),
                };
                // Telegram forbids a link inside a link (an image inside a link, say).
                let is_link = allowed_url(&url) && !self.links.contains(&true);
                if is_link {
                    let mut tag = String::from("<a href=\"");
                    push_escaped(&mut tag, &url, true);
                    tag.push_str("\">");
                    self.open(&tag);
                }
                self.links.push(is_link);
            }
            _ => {} // paragraphs, tables and HTML blocks are separated when they end
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph | TagEnd::Table => self.gap = 2,
            TagEnd::Heading(_) => {
                self.out.push_str("</b>");
                self.gap = 2;
            }
            TagEnd::Strong => self.out.push_str("</b>"),
            TagEnd::Emphasis => self.out.push_str("</i>"),
            TagEnd::Strikethrough => self.out.push_str("</s>"),
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
                    let end = if has_language {
                        "</code></pre>"
                    } else {
                        "</pre>"
                    };
                    self.out.push_str(end);
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
                self.out.push_str("</b>");
                self.gap = 1;
            }
            TagEnd::TableRow => self.gap = 1,
            TagEnd::Link | TagEnd::Image => {
                let was_link = self.links.pop() == Some(true);
                if was_link {
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

/// Cuts HTML into pieces in one pass. Every slice ends at an ASCII `>` or `;` or at a whole
/// char, so no slice can land inside a character.
fn parse_html(html: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        let len = match c {
            '<' => rest.find('>').map_or(rest.len(), |i| i + 1),
            '&' => decode_entity(rest).map_or(1, |(_, len)| len),
            _ => c.len_utf8(),
        };
        let (raw, after) = rest.split_at(len);
        let piece = if raw.starts_with("</") {
            Piece::Close { raw }
        } else if let Some(tag) = raw.strip_prefix('<') {
            let name = tag
                .split(|c: char| c.is_whitespace() || c == '>' || c == '/')
                .next()
                .unwrap_or("");
            Piece::Open { raw, name }
        } else {
            let ch = decode_entity(raw).map_or(c, |(ch, _)| ch);
            Piece::Char { ch, raw }
        };
        pieces.push(piece);
        rest = after;
    }
    pieces
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

/// The HTML of one chunk: reopens the tags in `stack`, adds `pieces`, closes what is still open.
/// Leaves in `stack` the tags open at the end of `pieces`, for the next chunk.
fn build_chunk<'a>(pieces: &[Piece<'a>], stack: &mut Vec<(&'a str, &'a str)>) -> String {
    let mut html: String = stack.iter().map(|(raw, _)| *raw).collect();
    for piece in pieces {
        match piece {
            Piece::Open { raw, name } => {
                html.push_str(raw);
                stack.push((raw, name));
            }
            Piece::Close { raw } => {
                html.push_str(raw);
                stack.pop();
            }
            Piece::Char { raw, .. } => html.push_str(raw),
        }
    }
    for (_, name) in stack.iter().rev() {
        html.push_str(&format!("</{name}>"));
    }
    html
}

/// Where a chunk starting at visible character `start` ends (exclusive), when more than `limit`
/// characters remain. A cut goes after a run of whitespace, so the run ends the earlier chunk.
fn find_cut(chars: &[char], start: usize, limit: usize) -> usize {
    let hard = start + limit;
    // The latest cut of each kind: paragraph, line, sentence end, space.
    let mut latest: [Option<usize>; 4] = [None; 4];
    let mut newlines = 0;
    let mut in_space = false;
    let mut last_visible: Option<char> = None; // none yet: a chunk needs more than whitespace
    for (k, &c) in chars.iter().enumerate().take(hard + 1).skip(start) {
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
    let last_half = start + limit / 2;
    if let Some(&k) = latest.iter().flatten().find(|&&k| k >= last_half) {
        return k;
    }
    if let Some(&k) = latest.iter().flatten().next() {
        return k;
    }
    // No boundary at all: cut at the limit, moved back out of an emoji or accented letter.
    let mut k = hard;
    while k > start && joins(chars[k - 1], chars[k]) {
        k -= 1;
    }
    if k == start { hard } else { k }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Panics unless `html` is what Telegram's parser accepts: only its tags, balanced, nested
    /// as Telegram allows, and every `<`, `>`, `&` of the text escaped.
    fn assert_valid(html: &str) {
        let allowed = [
            "b",
            "i",
            "u",
            "s",
            "code",
            "pre",
            "a",
            "blockquote",
            "tg-spoiler",
        ];
        let mut stack: Vec<&str> = Vec::new();
        let mut rest = html;
        while let Some(c) = rest.chars().next() {
            let mut len = c.len_utf8();
            if c == '<' {
                len = rest.find('>').expect("unclosed tag") + 1;
                let tag = &rest[1..len - 1];
                if let Some(name) = tag.strip_prefix('/') {
                    assert_eq!(stack.pop(), Some(name), "unbalanced: {html:?}");
                } else {
                    let name = tag.split(' ').next().unwrap_or("");
                    let parent = stack.last().copied().unwrap_or("");
                    assert!(allowed.contains(&name), "tag {name:?}: {html:?}");
                    assert!(parent != "code", "inside code: {html:?}");
                    assert!(parent != "pre" || name == "code", "inside pre: {html:?}");
                    let nests_itself = name == "a" || name == "blockquote";
                    assert!(!(nests_itself && stack.contains(&name)), "nested: {html:?}");
                    stack.push(name);
                }
            } else if c == '&' {
                len = decode_entity(rest).expect("bare &").1;
            }
            assert!(c != '>', "bare >: {html:?}");
            rest = &rest[len..];
        }
        assert!(stack.is_empty(), "unclosed {stack:?}: {html:?}");
    }

    /// Splits and checks every chunk: valid, within `limit`, not blank.
    fn split_checked(html: &str, limit: usize) -> Vec<String> {
        let chunks = split_html(html, limit);
        for chunk in &chunks {
            assert_valid(chunk);
            let text = visible_text(chunk);
            assert!(text.chars().count() <= limit, "too long: {chunk:?}");
            assert!(!text.trim().is_empty(), "blank chunk: {chunk:?}");
        }
        chunks
    }

    fn joined_text(chunks: &[String]) -> String {
        chunks.iter().map(|chunk| visible_text(chunk)).collect()
    }

    fn assert_renders(cases: &[(&str, &str)]) {
        for (markdown, html) in cases {
            assert_eq!(markdown_to_html(markdown), *html, "markdown: {markdown:?}");
        }
    }

    #[test]
    fn inline_formatting_and_links() {
        #[rustfmt::skip]
        let cases = [
            ("**b** *i* ~~s~~ `c` ***bi***", "<b>b</b> <i>i</i> <s>s</s> <code>c</code> <i><b>bi</b></i>"),
            ("[x](javascript:alert(1)) [r](/p) [e]()", "x r e"),
            ("[H](HTTPS://A.B) [m](mailto:a@b.c)", "<a href=\"HTTPS://A.B\">H</a> <a href=\"mailto:a@b.c\">m</a>"),
            // An answer a prompt injected: tg:// links open chats, join groups, mention users.
            ("[t](tg://join?invite=x) [u](tg://user?id=1) [f](file:///etc/passwd)", "t u f"),
            ("<https://a.b>", "<a href=\"https://a.b\">https://a.b</a>"),
            ("<me@x.org>", "<a href=\"mailto:me@x.org\">me@x.org</a>"),
            ("![cat](https://e.com/c.png) ![dog](d.png)", "<a href=\"https://e.com/c.png\">cat</a> dog"),
            ("[![a](https://i/x.png)](https://l)", "<a href=\"https://l\">a</a>"),
            ("one\ntwo  \nthree\\\nfour", "one\ntwo\nthree\nfour"),
        ];
        assert_renders(&cases);
    }

    #[test]
    fn blocks() {
        #[rustfmt::skip]
        let cases = [
            ("# Title\ntext\n### T", "<b>Title</b>\n\ntext\n\n<b>T</b>"),
            ("a\n\n---\n\nb", "a\n\n———\n\nb"),
            ("```rust\nfn main() {}\n```", "<pre><code class=\"language-rust\">fn main() {}</code></pre>"),
            ("```c++ {x}\nx\n```", "<pre><code class=\"language-c++\">x</code></pre>"),
            ("```<!>\ny\n```\n\n    z\n", "<pre>y</pre>\n\n<pre>z</pre>"),
            ("- a\n- b\n  - c\n    1. d\n\n1. x\n2. y", "• a\n• b\n  ◦ c\n    1. d\n\n1. x\n2. y"),
            ("3. x\n4. y", "3. x\n4. y"),
            ("- one\n\n- two", "• one\n• two"),
            ("- [ ] todo\n- [x] done", "☐ todo\n☑ done"),
            ("> a\n>> b\n\nc", "<blockquote>a\n\nb</blockquote>\n\nc"),
            ("> - a\n> - b", "<blockquote>• a\n• b</blockquote>"),
            ("| A | *B* |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |", "<b>A | <i>B</i></b>\n1 | 2\n3 | 4"),
        ];
        assert_renders(&cases);
    }

    #[test]
    fn escaping_raw_html_and_entities() {
        #[rustfmt::skip]
        let cases = [
            ("a < b && c > d", "a &lt; b &amp;&amp; c &gt; d"),
            ("`a<b && c>d`", "<code>a&lt;b &amp;&amp; c&gt;d</code>"),
            ("```\nif a<b {}\n```", "<pre>if a&lt;b {}</pre>"),
            ("[x <y>](https://e.com/?q=\"a\"&b=1)", "<a href=\"https://e.com/?q=&quot;a&quot;&amp;b=1\">x &lt;y&gt;</a>"),
            ("a<br>b\n\n<div>x</div>\n\nc", "a&lt;br&gt;b\n\n&lt;div&gt;x&lt;/div&gt;\n\nc"),
            ("a&nbsp;b &amp; &lt; AT&T", "a\u{a0}b &amp; &lt; AT&amp;T"),
            ("[`x`](https://e.com)", "<a href=\"https://e.com\">x</a>"),
        ];
        assert_renders(&cases);
        let html = "<b>a &lt; b</b> &amp;&quot;&#128512;&#x41;&#xD800;&bogus;&#;";
        assert_eq!(visible_text(html), "a < b &\"😀A&#xD800;&bogus;&#;");
    }

    #[test]
    fn partial_and_odd_input_stays_balanced() {
        #[rustfmt::skip]
        let cases = [
            ("**bold", "**bold"),
            ("Код:\n```py\nprint(1)", "Код:\n\n<pre><code class=\"language-py\">print(1)</code></pre>"),
            ("a\r\nb\r\n\r\n```\r\nx\r\n```", "a\nb\n\n<pre>x</pre>"),
            ("x\0y", "x\u{FFFD}y"),
            ("", ""),
            (" \n\t\r\n ", ""),
        ];
        assert_renders(&cases);
        #[rustfmt::skip]
        let odd = ["*a **b*", "`", "<", "&", "[a](https://x", "> > > x", "- > ```\n", "~~**x~~**"];
        for markdown in odd {
            let html = markdown_to_html(markdown);
            assert_valid(&html);
            assert_eq!(html.trim(), html);
        }
    }

    #[test]
    fn split_returns_what_fits_whole() {
        assert_eq!(split_html("<b>hi</b>", 4096), ["<b>hi</b>"]);
        assert!(split_html("", 4096).is_empty());
        assert!(split_html("<pre> \n </pre>", 1).is_empty());
    }

    #[test]
    fn long_answer_splits_at_paragraphs() {
        let paragraph = "Привет, мир! Это **абзац** с эмодзи 😀🚀 и <кодом>. ".repeat(6);
        let html = markdown_to_html(&vec![paragraph.trim(); 40].join("\n\n"));
        let whole = visible_text(&html);
        assert!(whole.chars().count() > 10_000);
        let chunks = split_checked(&html, MESSAGE_LIMIT);
        assert_eq!(chunks.len(), 3);
        assert_eq!(joined_text(&chunks), whole);
        for chunk in &chunks[..2] {
            assert!(visible_text(chunk).ends_with(".\n\n"), "{chunk:?}");
        }
    }

    #[test]
    fn long_code_block_is_reopened() {
        let lines = "let строка = \"значение\"; // 😀\n".repeat(150);
        let markdown = format!("```rust\n{lines}```");
        let html = markdown_to_html(&markdown);
        let chunks = split_checked(&html, MESSAGE_LIMIT);
        assert_eq!(chunks.len(), 2);
        for chunk in &chunks {
            assert!(chunk.starts_with("<pre><code class=\"language-rust\">let строка"));
            assert!(chunk.ends_with("😀</code></pre>") || chunk.ends_with("😀\n</code></pre>"));
        }
        assert_eq!(joined_text(&chunks), visible_text(&html));
    }

    #[test]
    fn tags_are_closed_and_reopened_at_a_cut() {
        assert_eq!(
            split_checked("<b>aaaa bbbb</b>", 5),
            ["<b>aaaa </b>", "<b>bbbb</b>"]
        );
        assert_eq!(
            split_checked("<b>aaaa </b><i>bb</i>", 5),
            ["<b>aaaa </b>", "<i>bb</i>"]
        );
        let html = "<blockquote><a href=\"https://x\">aa <i>bb</i></a> cc</blockquote>";
        assert_eq!(
            split_checked(html, 4),
            [
                "<blockquote><a href=\"https://x\">aa </a></blockquote>",
                "<blockquote><a href=\"https://x\"><i>bb</i></a> </blockquote>",
                "<blockquote>cc</blockquote>",
            ]
        );
    }

    #[test]
    fn cut_prefers_paragraph_line_sentence_space() {
        #[rustfmt::skip]
        let cases: [(&str, usize, &[&str]); 5] = [
            ("aaaaaaaaaa\n\nbb\ncc dd", 18, &["aaaaaaaaaa\n\n", "bb\ncc dd"]),
            ("aaa bbb. ccc\nddd eee fff", 20, &["aaa bbb. ccc\n", "ddd eee fff"]),
            ("aa bb. cc dd ee", 12, &["aa bb. ", "cc dd ee"]),
            // A paragraph end in the first half loses to a space in the last half.
            ("aa\n\nbbbbbbbbb ccccc", 15, &["aa\n\nbbbbbbbbb ", "ccccc"]),
            // No boundary in the last half: the best one anywhere, then forced cuts.
            ("a bbbbbbbbbbbbbbbbbbbb", 10, &["a ", "bbbbbbbbbb", "bbbbbbbbbb"]),
        ];
        for (html, limit, expected) in cases {
            assert_eq!(split_checked(html, limit), expected, "{html:?}");
        }
    }

    #[test]
    fn long_word_is_cut_at_the_limit() {
        let chunks = split_checked(&"x".repeat(10_000), MESSAGE_LIMIT);
        let lengths: Vec<usize> = chunks.iter().map(|chunk| chunk.len()).collect();
        assert_eq!(lengths, [4096, 4096, 1808]);
    }

    #[test]
    fn entity_counts_as_one_character() {
        let html = markdown_to_html(&"<".repeat(MESSAGE_LIMIT));
        assert_eq!(html, "&lt;".repeat(MESSAGE_LIMIT));
        assert_eq!(split_checked(&html, MESSAGE_LIMIT), [html.as_str()]);
        let over = markdown_to_html(&"<".repeat(MESSAGE_LIMIT + 1));
        assert_eq!(split_checked(&over, MESSAGE_LIMIT), [html.as_str(), "&lt;"]);
    }

    #[test]
    fn emoji_counts_once_and_stays_whole() {
        let chunks = split_checked(&"😀".repeat(MESSAGE_LIMIT + 1), MESSAGE_LIMIT);
        assert_eq!(chunks, ["😀".repeat(MESSAGE_LIMIT), "😀".to_string()]);
        assert_eq!(split_checked("aaaa👍🏽", 5), ["aaaa", "👍🏽"]);
        assert_eq!(split_checked("aaa👩‍💻", 5), ["aaa", "👩‍💻"]);
        assert_eq!(
            split_checked("ёe\u{301}e\u{301}", 2),
            ["ё", "e\u{301}", "e\u{301}"]
        );
        // Whitespace that fits in no chunk is dropped rather than sent as a blank message.
        assert_eq!(split_checked("<pre>aaaa   </pre>", 4), ["<pre>aaaa</pre>"]);
    }

    #[test]
    fn random_markdown_always_gives_valid_chunks() {
        #[rustfmt::skip]
        let parts = [
            "word ", "слово ", "😀", "👍🏽", "**", "*", "~~", "`", "\n", "\n\n", "- ", "1. ", "> ",
            "# ", "```rust\n", "<", "&", "\\", " ", ". ", "[l](https://x.y/\"q\") ", "|a|b|\n|-|-|\n",
        ];
        let mut seed: u64 = 42;
        let mut random = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        for _ in 0..300 {
            let markdown: String = (0..random() % 80)
                .map(|_| parts[random() % parts.len()])
                .collect();
            let html = markdown_to_html(&markdown);
            assert_valid(&html);
            let whole = visible_text(&html);
            let no_space = |text: &str| text.split_whitespace().collect::<String>();
            for limit in [1, 2, 5, 17, 60] {
                let joined = joined_text(&split_checked(&html, limit));
                let context = format!("{markdown:?} at {limit}");
                assert_eq!(no_space(&joined), no_space(&whole), "{context}");
                if limit >= 17 {
                    assert_eq!(joined.trim_end(), whole.trim_end(), "{context}");
                }
            }
        }
    }
}
