//! GigaChat's Markdown → the HTML subset Telegram accepts, cut into messages Telegram accepts.
//! Telegram refuses a whole message for one unknown tag or one bare `<`, and more than 4096
//! visible characters, so every answer goes through here. Pure: no I/O, no logging.

use pulldown_cmark::{CodeBlockKind, Event, LinkType, Options, Parser, Tag, TagEnd};

mod rich;
mod split;
pub use rich::rich_html;
pub use split::{split_html, visible_text};

/// One message of an answer: Telegram HTML for `sendMessage`, or a part of the Markdown answer
/// for `sendRichMessage`, kept as Markdown so that a refused rich message can go the HTML way.
#[derive(Clone, Debug, PartialEq)]
pub enum Chunk {
    Html(String),
    Rich(String),
}

impl Chunk {
    /// The HTML, or the Markdown of a rich part.
    pub fn text(&self) -> &str {
        let (Chunk::Html(text) | Chunk::Rich(text)) = self;
        text
    }
}

/// Telegram's limit on a message's visible text, in Unicode code points.
/// Tags and entities do not count, so we count what the user sees, not bytes or UTF-16 units.
pub const MESSAGE_LIMIT: usize = 4096;

/// Markdown as GigaChat writes it → Telegram HTML that Telegram's parser accepts.
/// A real CommonMark parser handles nesting and code; we only choose which tags to emit.
pub fn markdown_to_html(markdown: &str) -> String {
    let markdown = normalize(markdown);
    let options =
        Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS;
    let mut renderer = Renderer::default();
    for event in Parser::new_ext(&markdown, options) {
        renderer.event(event);
    }
    renderer.out.trim().to_string()
}

/// CommonMark's own rules (any line ending is a newline, NUL becomes U+FFFD), and deep lines cut.
fn normalize(markdown: &str) -> String {
    let markdown = markdown.replace("\r\n", "\n").replace('\r', "\n").replace('\0', "\u{FFFD}");
    flatten_deep_lines(&markdown).into_owned()
}

/// The language a fenced code block names, in the characters a class name may hold.
fn code_language(kind: &CodeBlockKind) -> String {
    let info = if let CodeBlockKind::Fenced(info) = kind { info.as_ref() } else { "" };
    let word = info.split_whitespace().next().unwrap_or("");
    word.chars().filter(|c| c.is_ascii_alphanumeric() || "_+#.-".contains(*c)).collect()
}

/// Container markers (`>`, `-`, `1.`…) one line may open before its text; more are dropped
/// before parsing. They would show nothing more (lists are drawn four deep at most), but the
/// parser's memory grows with each: about 120 bytes a byte for `"- - - - …"`, so a hostile
/// megabyte of them would take over 100 MiB.
const MAX_LINE_NESTING: usize = 16;

/// The Markdown with every line's run of container markers cut to [`MAX_LINE_NESTING`].
fn flatten_deep_lines(markdown: &str) -> std::borrow::Cow<'_, str> {
    let deep = |line: &str| markers(line).1 > MAX_LINE_NESTING;
    if !markdown.lines().any(deep) {
        return markdown.into();
    }
    let mut out = String::with_capacity(markdown.len());
    for line in markdown.split_inclusive('\n') {
        match markers(line) {
            (_, n, Some((keep, text))) if n > MAX_LINE_NESTING => {
                out.push_str(&line[..keep]);
                out.push_str(&line[text..]);
            }
            _ => out.push_str(line),
        }
    }
    out.into()
}

/// The container markers a line opens: the byte where its text starts, how many, and (past
/// [`MAX_LINE_NESTING`]) the byte after the last one kept with the byte its text starts at.
fn markers(line: &str) -> (usize, usize, Option<(usize, usize)>) {
    let bytes = line.as_bytes();
    let (mut at, mut count, mut kept) = (0, 0, None);
    loop {
        let start = at + bytes[at..].iter().take_while(|b| **b == b' ' || **b == b'\t').count();
        let digits = bytes[start..].iter().take_while(|b| b.is_ascii_digit()).count();
        let spaced = |i: usize| matches!(bytes.get(i), Some(b' ' | b'\t'));
        let end = match bytes.get(start) {
            Some(b'>') => start + 1,
            Some(b'-' | b'+' | b'*') if spaced(start + 1) => start + 2,
            Some(b'0'..=b'9')
                if digits <= 9
                    && matches!(bytes.get(start + digits), Some(b'.' | b')'))
                    && spaced(start + digits + 1) =>
            {
                start + digits + 2
            }
            _ => return (at, count, kept.map(|k| (k, at))),
        };
        count += 1;
        if count == MAX_LINE_NESTING {
            kept = Some(end);
        }
        at = end;
    }
}

/// A Markdown answer as the messages to send: Telegram HTML of at most 4096 visible
/// characters each; none if nothing in it would be visible.
pub fn markdown_chunks(markdown: &str) -> Vec<String> {
    let html = markdown_to_html(markdown);
    split_html(&html, MESSAGE_LIMIT)
}

/// A Markdown answer as the messages to send: rich messages (Bot API 10.1) if `rich`, else
/// Telegram HTML of at most 4096 visible characters each; none if nothing would be visible.
pub fn answer_chunks(markdown: &str, rich: bool) -> Vec<Chunk> {
    if rich {
        return rich::rich_chunks(markdown);
    }
    markdown_chunks(markdown).into_iter().map(Chunk::Html).collect()
}

/// One of the bot's own texts as messages: escaped, so that no character of it (a user's
/// name with a `<`, say) is taken for a tag, and split like an answer.
pub fn plain_chunks(text: &str) -> Vec<Chunk> {
    let mut html = String::with_capacity(text.len());
    push_escaped(&mut html, text, false);
    split_html(&html, MESSAGE_LIMIT).into_iter().map(Chunk::Html).collect()
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

/// Links that only open a web page or a mail: `tg://` ones (join a group, open a chat, mention a
/// user) a prompt talked GigaChat into are plain text, and so are relative and `javascript:` URLs.
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
                let language = code_language(&kind);
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

    /// Telegram forbids nested links (an image in a link, say): the outermost allowed is the `<a>`.
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

#[cfg(test)]
mod tests;
