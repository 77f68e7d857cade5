//! GigaChat's Markdown → the HTML of rich messages (Bot API 10.1): headings, tables, task lists
//! and formulas as Telegram draws them, cut between top-level blocks into messages within
//! Telegram's limits; a block too big for any rich message goes the old HTML way. Pure.

use std::collections::VecDeque;
use std::ops::Range;

use pulldown_cmark::{Alignment, CodeBlockKind, Event, LinkType, Options, Parser, Tag, TagEnd};

use super::{Chunk, flatten_deep_lines, markdown_chunks, push_escaped, visible_text};

const OPTIONS: Options = Options::ENABLE_STRIKETHROUGH
    .union(Options::ENABLE_TABLES)
    .union(Options::ENABLE_TASKLISTS)
    .union(Options::ENABLE_MATH)
    .union(Options::ENABLE_FOOTNOTES);

/// Telegram's limits on one rich message: characters, blocks, levels of nesting, table columns.
const MAX_CHARS: usize = 32_768;
const MAX_BLOCKS: usize = 500;
const MAX_DEPTH: usize = 16;
const MAX_COLUMNS: usize = 20;

/// What a top-level block costs against the limits: every element that is not inline counts
/// as a block and as a level (a list and its item are two).
#[derive(Clone, Copy, Default)]
struct Cost {
    blocks: usize,
    depth: usize,
    columns: usize,
}

/// One top-level block: where its Markdown ends, its HTML in the rendered whole, its cost.
struct Block {
    end: usize,
    html: Range<usize>,
    cost: Cost,
}

/// The answer as rich messages within Telegram's limits, cut between top-level blocks.
pub fn rich_chunks(markdown: &str) -> Vec<Chunk> {
    // Parts are cut from the Markdown before `dollars`, so that each is converted only once.
    let markdown = normalize(markdown);
    let (converted, anchors) = dollars(&markdown);
    let (html, blocks) = render(&converted);
    let mut chunks = Vec::new();
    // Parts tile the Markdown, so link definitions between blocks stay with the next block.
    // The part being packed: its Markdown from `from` to `to`, its characters and blocks.
    let (mut from, mut to, mut chars, mut count) = (0, 0, 0, 0);
    for block in blocks.iter().filter(|b| shown(&html[b.html.clone()])) {
        let size = html[block.html.clone()].chars().count();
        let Cost { blocks, depth, columns } = block.cost;
        let alone_too_big =
            size > MAX_CHARS || blocks > MAX_BLOCKS || depth > MAX_DEPTH || columns > MAX_COLUMNS;
        let full = chars + size > MAX_CHARS || count + blocks > MAX_BLOCKS;
        if to > from && (alone_too_big || full) {
            chunks.push(Chunk::Rich(markdown[from..to].to_string()));
            (from, chars, count) = (to, 0, 0);
        }
        let end = original(&anchors, block.end).clamp(from, markdown.len());
        if alone_too_big {
            chunks.extend(markdown_chunks(&markdown[from..end]).into_iter().map(Chunk::Html));
            (from, to) = (end, end);
        } else {
            (to, chars, count) = (end, chars + size, count + blocks);
        }
    }
    if to > from {
        chunks.push(Chunk::Rich(markdown[from..].to_string()));
    }
    chunks
}

/// The rich HTML of a part made by [`rich_chunks`], or of a draft: its visible blocks.
pub fn rich_html(markdown: &str) -> String {
    let (html, blocks) = render(&dollars(&normalize(markdown)).0);
    blocks.iter().map(|b| &html[b.html.clone()]).filter(|h| shown(h)).collect()
}

/// Whether a block shows anything: a rule does without text.
fn shown(html: &str) -> bool {
    html == "<hr/>" || !visible_text(html).trim().is_empty()
}

/// Line endings and NUL as `markdown_to_html` treats them, and deep lines cut.
fn normalize(markdown: &str) -> String {
    let markdown = markdown.replace("\r\n", "\n").replace('\r', "\n").replace('\0', "\u{FFFD}");
    flatten_deep_lines(&markdown).into_owned()
}

/// Where `dollars` changed the length: (byte of its output, byte of its input) pairs, in order.
type Anchors = Vec<(usize, usize)>;

/// The byte of `dollars`' input that byte `at` of its output stands for.
fn original(anchors: &Anchors, at: usize) -> usize {
    let before = anchors.partition_point(|(output, _)| *output <= at);
    let (output, input) = before.checked_sub(1).map_or((0, 0), |i| anchors[i]);
    input + (at - output)
}

/// `\(…\)` → `$…$` and `\[…\]` → `$$…$$` (GigaChat writes them) outside code. Only code is
/// skipped, not formulas: code stays code after the change, so a part normalized again (at
/// send time) is the same.
fn dollars(markdown: &str) -> (String, Anchors) {
    let (mut out, mut anchors) = (String::with_capacity(markdown.len()), Vec::new());
    let mut at = 0;
    for (event, range) in Parser::new_ext(markdown, OPTIONS).into_offset_iter() {
        if matches!(event, Event::Code(_) | Event::Start(Tag::CodeBlock(_))) && range.start >= at {
            convert(markdown, at..range.start, &mut out, &mut anchors);
            out.push_str(&markdown[range.clone()]);
            at = range.end;
        }
    }
    convert(markdown, at..markdown.len(), &mut out, &mut anchors);
    (out, anchors)
}

/// [`dollars`] on Markdown with no code in it. An opening delimiter looks for its closing one
/// up to the next blank line; a failed look is remembered, so that the time stays linear. The
/// scan goes on inside a formula, and a delimiter opened there closes after the open ones, so
/// that a second pass finds no pair the first one left.
fn convert(markdown: &str, part: Range<usize>, out: &mut String, anchors: &mut Anchors) {
    let (text, base) = (&markdown[..part.end], part.start);
    let bytes = text.as_bytes();
    let (mut at, mut copied, mut blank) = (base, base, base);
    // Per kind (0 `\(`, 1 `\[`): where the open formulas close; no closing one before this byte.
    let (mut closes, mut failed) = ([VecDeque::new(), VecDeque::new()], [0; 2]);
    while let Some(i) = text[at..].find('\\').map(|i| at + i) {
        at = i + 2;
        let kind = match bytes.get(i + 1) {
            Some(b'(' | b')') => 0,
            Some(b'[' | b']') => 1,
            Some(b'\\') => continue, // an escaped backslash opens and closes nothing
            _ => {
                at = i + 1;
                continue;
            }
        };
        let (fence, inline) = (["$", "$$"][kind], kind == 0);
        if closes[kind].front() == Some(&i) {
            // Inline math must not end with a space; display math may span lines.
            let formula = &text[copied..i];
            out.extend([
                if inline { formula.trim_end_matches([' ', '\t']) } else { formula },
                fence,
            ]);
            (copied, _) = (at, closes[kind].pop_front());
            anchors.push((out.len(), copied));
            continue;
        }
        if matches!(bytes[i + 1], b')' | b']') || at <= failed[kind] {
            continue;
        }
        if blank < at {
            blank = text[at..].find("\n\n").map_or(text.len(), |b| at + b);
        }
        let from = closes[kind].back().map_or(at, |c| c + 2);
        let Some(close) = find_close(bytes, from, blank, [b')', b']'][kind]) else {
            failed[kind] = blank;
            continue;
        };
        let formula = text[at..close].trim_start_matches([' ', '\t']);
        if !formula.trim().is_empty() {
            out.extend([&text[copied..i], fence]);
            copied = if inline { close - formula.len() } else { at };
            closes[kind].push_back(close);
            anchors.push((out.len(), copied));
        }
    }
    out.push_str(&text[copied..]);
}

/// Where `\` + `close` is in `bytes[from..to]`, an escaped backslash skipped as [`convert`] does.
fn find_close(bytes: &[u8], from: usize, to: usize, close: u8) -> Option<usize> {
    let mut i = from;
    while i + 1 < to {
        match (bytes[i], bytes[i + 1]) {
            (b'\\', next) if next == close => return Some(i),
            (b'\\', _) => i += 2,
            _ => i += 1,
        }
    }
    None
}

/// The rich HTML of normalized Markdown, and its top-level blocks.
fn render(markdown: &str) -> (String, Vec<Block>) {
    let mut rich = Rich { markdown, ..Rich::default() };
    let (mut blocks, mut level, mut html_start) = (Vec::new(), 0usize, 0);
    for (event, range) in Parser::new_ext(markdown, OPTIONS).into_offset_iter() {
        if level == 0 {
            (html_start, rich.cost) = (rich.out.len(), Cost::default());
        }
        match event {
            Event::Start(_) => level += 1,
            Event::End(_) => level = level.saturating_sub(1),
            _ => {}
        }
        let end = range.end;
        rich.event(event, range);
        if level == 0 {
            blocks.push(Block { end, html: html_start..rich.out.len(), cost: rich.cost });
        }
    }
    (rich.out, blocks)
}

const HEADING_ENDS: [&str; 6] = ["</h1>", "</h2>", "</h3>", "</h4>", "</h5>", "</h6>"];

/// State while turning pulldown-cmark events into rich HTML.
#[derive(Default)]
struct Rich<'a> {
    markdown: &'a str,
    out: String,
    /// Per open element: its end tag (empty if it shows none) and whether it is a block.
    stack: Vec<(&'static str, bool)>,
    /// Blocks open, and of the current top-level block what it costs so far.
    open: usize,
    cost: Cost,
    /// Styles and links open: a display formula among them stays inline.
    inline: usize,
    /// Whether an `<a>` is open: Telegram forbids a link inside a link.
    in_link: bool,
    /// Where the open paragraph's content starts in `out`: a display formula there is a block.
    para: Option<usize>,
    /// Where the last `<li>`'s content starts: a task's checkbox must be its first element.
    item: usize,
    /// The label of a footnote definition whose first paragraph has not started.
    footnote: Option<String>,
    /// The open table's column alignments, whether its head is open, the next cell's column.
    aligns: Vec<Alignment>,
    head: bool,
    cell: usize,
}

impl Rich<'_> {
    fn text(&mut self, text: &str) {
        push_escaped(&mut self.out, text, false);
    }

    fn wrap(&mut self, open: &str, text: &str, close: &str) {
        self.out.push_str(open);
        self.text(text);
        self.out.push_str(close);
    }

    /// Writes an element's start tag; `close` is written when it ends.
    fn open(&mut self, tag: &str, close: &'static str, block: bool) {
        self.out.push_str(tag);
        self.stack.push((close, block));
        if block {
            self.open += 1;
            self.cost.blocks += 1;
            self.cost.depth = self.cost.depth.max(self.open);
        } else {
            self.inline += 1;
        }
    }

    fn pop(&mut self) {
        let (close, block) = self.stack.pop().unwrap_or(("", false));
        self.out.push_str(close);
        self.in_link &= close != "</a>";
        match block {
            true => self.open = self.open.saturating_sub(1),
            false => self.inline = self.inline.saturating_sub(1),
        }
    }

    fn event(&mut self, event: Event, range: Range<usize>) {
        let source = self.markdown.get(range.clone()).unwrap_or("");
        let digit_after =
            self.markdown.get(range.end..).unwrap_or("").starts_with(|c: char| c.is_ascii_digit());
        // pulldown-cmark takes `$5-$10` for a formula: as in Pandoc, a `$` before a digit closes
        // none. An empty formula is its dollars too.
        let plain = match &event {
            Event::InlineMath(math) => digit_after || math.trim().is_empty(),
            Event::DisplayMath(math) => math.trim().is_empty(),
            _ => false,
        };
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            // Raw HTML is shown as the model wrote it: escaped text, never a tag (`<img>`).
            Event::Text(text) | Event::Html(text) | Event::InlineHtml(text) => self.text(&text),
            Event::Code(code) if self.in_link => self.text(&code),
            Event::Code(code) => self.wrap("<code>", &code, "</code>"),
            // A break right where a paragraph reopened after a display formula shows nothing.
            Event::SoftBreak | Event::HardBreak if self.para == Some(self.out.len()) => {}
            Event::SoftBreak | Event::HardBreak => self.text("\n"),
            Event::Rule => {
                self.open("<hr/>", "", true);
                self.pop();
            }
            Event::TaskListMarker(done) => {
                let input = ["<input type=\"checkbox\">", "<input type=\"checkbox\" checked>"];
                self.out.insert_str(self.item.min(self.out.len()), input[usize::from(done)]);
            }
            Event::FootnoteReference(label) => self.wrap("<sup>[", &label, "]</sup>"),
            Event::InlineMath(_) | Event::DisplayMath(_) if plain => self.text(source),
            Event::InlineMath(math) => self.wrap("<tg-math>", &math, "</tg-math>"),
            Event::DisplayMath(math) => self.display_math(math.trim()),
        }
    }

    /// A display formula directly in a paragraph is a block: the paragraph is closed before it
    /// and reopened after. Inside a style, a link, a heading, a table cell or a tight list item
    /// (no paragraph there) it stays inline.
    fn display_math(&mut self, math: &str) {
        let Some(content) = self.para.filter(|_| self.inline == 0) else {
            return self.wrap("<tg-math>", math, "</tg-math>");
        };
        let close = self.cut_paragraph(content);
        self.out.push_str(close);
        self.wrap("<tg-math-block>", math, "</tg-math-block><p>");
        self.cost.blocks += 2;
        self.para = Some(self.out.len());
    }

    /// Drops the trailing line break of the paragraph whose content starts at `content`, and
    /// the paragraph itself if that leaves it empty; its end tag, if it stays.
    fn cut_paragraph(&mut self, content: usize) -> &'static str {
        let len = self.out.trim_end().len().max(content);
        self.out.truncate(len);
        if len > content {
            return "</p>";
        }
        self.out.truncate(content - "<p>".len());
        ""
    }

    /// A footnote definition that does not start with a paragraph gets a paragraph of its label.
    fn lone_footnote(&mut self) {
        if let Some(label) = self.footnote.take() {
            self.open("<p>", "</p>", true);
            self.wrap("<sup>[", &label, "]</sup>");
            self.pop();
        }
    }

    fn start(&mut self, tag: Tag) {
        if !matches!(tag, Tag::Paragraph) {
            self.lone_footnote();
        }
        match tag {
            Tag::Paragraph => {
                self.open("<p>", "</p>", true);
                self.para = Some(self.out.len());
                if let Some(label) = self.footnote.take() {
                    self.wrap("<sup>[", &label, "]</sup> ");
                }
            }
            Tag::Heading { level, .. } => {
                self.open(&format!("<{level}>"), HEADING_ENDS[level as usize - 1], true);
            }
            Tag::BlockQuote(_) => self.open("<blockquote>", "</blockquote>", true),
            Tag::CodeBlock(kind) => self.start_code(kind),
            // Text may not stand at the top level: a raw HTML block is a paragraph of text.
            Tag::HtmlBlock => self.open("<p>", "</p>", true),
            Tag::List(Some(1)) => self.open("<ol>", "</ol>", true),
            Tag::List(Some(start)) => self.open(&format!("<ol start=\"{start}\">"), "</ol>", true),
            Tag::List(None) => self.open("<ul>", "</ul>", true),
            Tag::Item => {
                self.open("<li>", "</li>", true);
                self.item = self.out.len();
            }
            // No markup of its own; its first paragraph starts with the label.
            Tag::FootnoteDefinition(label) => {
                self.footnote = Some(label.to_string());
                self.open("", "", true);
            }
            Tag::Table(aligns) => {
                self.cost.columns = self.cost.columns.max(aligns.len());
                self.aligns = aligns;
                self.open("<table bordered>", "</table>", true);
            }
            Tag::TableHead | Tag::TableRow => {
                (self.head, self.cell) = (matches!(tag, Tag::TableHead), 0);
                self.open("<tr>", "</tr>", true);
            }
            Tag::TableCell => self.start_cell(),
            Tag::Emphasis => self.open("<i>", "</i>", false),
            Tag::Strong => self.open("<b>", "</b>", false),
            Tag::Strikethrough => self.open("<s>", "</s>", false),
            Tag::Link { link_type, dest_url, .. } | Tag::Image { link_type, dest_url, .. } => {
                self.start_link(link_type, &dest_url);
            }
            _ => self.open("", "", false), // not enabled: definition lists, super-, subscript…
        }
    }

    /// `<pre>` with the language render.rs would name, or a formula for a `math` block.
    fn start_code(&mut self, kind: CodeBlockKind) {
        let info = match &kind {
            CodeBlockKind::Fenced(info) => info.split_whitespace().next().unwrap_or(""),
            CodeBlockKind::Indented => "",
        };
        let language: String =
            info.chars().filter(|c| c.is_ascii_alphanumeric() || "_+#.-".contains(*c)).collect();
        match language.as_str() {
            "" => self.open("<pre>", "</pre>", true),
            "math" => self.open("<tg-math-block>", "</tg-math-block>", true),
            _ => self.open(
                &format!("<pre><code class=\"language-{language}\">"),
                "</code></pre>",
                true,
            ),
        }
    }

    fn start_cell(&mut self) {
        let align = match self.aligns.get(self.cell) {
            Some(Alignment::Left) => " align=\"left\"",
            Some(Alignment::Center) => " align=\"center\"",
            Some(Alignment::Right) => " align=\"right\"",
            _ => "",
        };
        let (name, close) = if self.head { ("th", "</th>") } else { ("td", "</td>") };
        self.open(&format!("<{name}{align}>"), close, true);
        self.cell += 1;
    }

    /// Only links that open a page, a mail or a call are links; `tg://` (join a group, open a
    /// chat), `javascript:` and relative ones are their text. An image is a link to it too:
    /// a media block would make Telegram fetch any URL the model names.
    fn start_link(&mut self, link_type: LinkType, dest_url: &str) {
        let url = match link_type {
            LinkType::Email => format!("mailto:{dest_url}"),
            _ => dest_url.to_string(),
        };
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        let allowed =
            ["http", "https", "mailto", "tel"].iter().any(|s| s.eq_ignore_ascii_case(scheme));
        if !allowed || self.in_link {
            return self.open("", "", false);
        }
        self.in_link = true;
        let mut tag = String::from("<a href=\"");
        push_escaped(&mut tag, &url, true);
        self.open(&(tag + "\">"), "</a>", false);
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph => {
                if let Some(content) = self.para.take() {
                    let close = self.cut_paragraph(content);
                    if let Some(top) = self.stack.last_mut() {
                        top.0 = close;
                    }
                }
            }
            TagEnd::CodeBlock if self.out.ends_with('\n') => _ = self.out.pop(),
            TagEnd::HtmlBlock => self.out.truncate(self.out.trim_end_matches('\n').len()),
            TagEnd::FootnoteDefinition => self.footnote = None, // empty: nothing to label
            _ => {}
        }
        self.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Telegram's rich HTML elements with the attributes they take (rich messages, Bot API 10.1).
    #[rustfmt::skip]
    const ALLOWED: [(&str, &[&str]); 41] = [
        ("b", &[]), ("strong", &[]), ("i", &[]), ("em", &[]), ("u", &[]), ("ins", &[]), ("s", &[]),
        ("strike", &[]), ("del", &[]), ("code", &["class"]), ("mark", &[]), ("sub", &[]),
        ("sup", &[]), ("tg-spoiler", &[]), ("a", &["href", "name"]), ("tg-math", &[]), ("h1", &[]),
        ("h2", &[]), ("h3", &[]), ("h4", &[]), ("h5", &[]), ("h6", &[]), ("p", &[]), ("pre", &[]),
        ("footer", &[]), ("hr", &[]), ("ul", &[]), ("ol", &["start", "type", "reversed"]),
        ("li", &["value"]), ("input", &["type", "checked"]), ("blockquote", &[]), ("br", &[]),
        ("aside", &[]), ("table", &["bordered", "striped"]), ("tr", &[]),
        ("th", &["colspan", "rowspan", "align", "valign"]),
        ("td", &["colspan", "rowspan", "align", "valign"]), ("details", &["open"]),
        ("summary", &[]), ("tg-math-block", &[]), ("cite", &[]),
    ];
    /// The elements that may stand at the top level, and those with no end tag.
    #[rustfmt::skip]
    const TOP: [&str; 17] = [
        "h1", "h2", "h3", "h4", "h5", "h6", "p", "pre", "footer", "hr", "ul", "ol", "blockquote",
        "aside", "table", "details", "tg-math-block",
    ];
    const VOID: [&str; 3] = ["hr", "br", "input"];

    /// Why Telegram would refuse `html`, if it would: an element or attribute it does not take,
    /// a tag left open or closed out of turn, text or an inline tag at the top level, a checkbox
    /// that does not open its item, a bare `&` or `>`, a named entity other than the four.
    fn check(html: &str) -> Result<(), String> {
        let (mut open, mut rest) = (Vec::new(), html);
        while let Some(c) = rest.chars().next() {
            let at = html.len() - rest.len();
            if c != '<' {
                let entity =
                    ["&lt;", "&gt;", "&amp;", "&quot;"].iter().any(|e| rest.starts_with(e));
                if open.is_empty() || (c == '&' && !entity) || c == '>' {
                    return Err(format!("{c:?} at {at} (top level: {})", open.is_empty()));
                }
                rest = &rest[c.len_utf8()..];
                continue;
            }
            let end = rest.find('>').ok_or("an unclosed <")?;
            let tag = rest[1..end].trim_end_matches('/');
            rest = &rest[end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                match open.pop() {
                    Some(opened) if opened == name => continue,
                    opened => return Err(format!("</{name}> at {at} closes {opened:?}")),
                }
            }
            let (name, attributes) = tag.split_once(' ').unwrap_or((tag, ""));
            let (_, allowed) =
                ALLOWED.iter().find(|(n, _)| *n == name).ok_or(format!("<{name}>"))?;
            if let Some(a) = attribute_names(attributes).iter().find(|a| !allowed.contains(a)) {
                return Err(format!("<{name} {a}>"));
            }
            if (open.is_empty() && !TOP.contains(&name))
                || (name == "input" && !html[..at].ends_with("<li>"))
            {
                return Err(format!("<{name}> at {at} in {open:?}"));
            }
            if !VOID.contains(&name) {
                open.push(name);
            }
        }
        if open.is_empty() { Ok(()) } else { Err(format!("{open:?} left open")) }
    }

    /// The names of `name="value"` and bare `name` attributes; an unquoted value is a name "=".
    fn attribute_names(mut attributes: &str) -> Vec<&str> {
        let mut names = Vec::new();
        loop {
            attributes = attributes.trim_start();
            let end = attributes.find(['=', ' ']).unwrap_or(attributes.len());
            match (&attributes[..end], attributes[end..].strip_prefix("=\"")) {
                ("", _) if end == attributes.len() => return names,
                (name, Some(value)) => {
                    names.push(name);
                    attributes = value.split_once('"').map_or("", |(_, after)| after);
                }
                (name, None) if !attributes[end..].starts_with('=') => {
                    names.push(name);
                    attributes = &attributes[end..];
                }
                _ => return vec!["="],
            }
        }
    }

    fn assert_renders(cases: &[(&str, &str)]) {
        for (markdown, html) in cases {
            let rendered = rich_html(markdown);
            assert_eq!(rendered, *html, "{markdown:?}");
            check(&rendered).unwrap_or_else(|e| panic!("{markdown:?}: {e}"));
        }
    }

    #[test]
    #[rustfmt::skip]
    fn blocks() {
        assert_renders(&[
            ("# T\n\n###### six", "<h1>T</h1><h6>six</h6>"),
            ("a *i* **b** ~~s~~ `c`\nline  \nhard", "<p>a <i>i</i> <b>b</b> <s>s</s> <code>c</code>\nline\nhard</p>"),
            ("> q\n> > nested", "<blockquote><p>q</p><blockquote><p>nested</p></blockquote></blockquote>"),
            ("a\n\n---\n\nb", "<p>a</p><hr/><p>b</p>"),
            ("```rust\nfn main() {}\n```", "<pre><code class=\"language-rust\">fn main() {}</code></pre>"),
            ("```\na < b\n\n```\n\n    indented", "<pre>a &lt; b\n</pre><pre>indented</pre>"),
            ("- a\n  - b\n    - c\n- d", "<ul><li>a<ul><li>b<ul><li>c</li></ul></li></ul></li><li>d</li></ul>"),
            ("3. x\n4. y\n\n---\n1. one", "<ol start=\"3\"><li>x</li><li>y</li></ol><hr/><ol><li>one</li></ol>"),
            ("- [ ] a\n- [x] b", "<ul><li><input type=\"checkbox\">a</li><li><input type=\"checkbox\" checked>b</li></ul>"),
            ("- [ ] a\n\n- [x] b", "<ul><li><input type=\"checkbox\"><p>a</p></li><li><input type=\"checkbox\" checked><p>b</p></li></ul>"),
            ("| a | b | c | d |\n|:--|:-:|--:|---|\n| 1 | *2* | 3 | 4 |",
             "<table bordered><tr><th align=\"left\">a</th><th align=\"center\">b</th><th align=\"right\">c</th><th>d</th></tr>\
              <tr><td align=\"left\">1</td><td align=\"center\"><i>2</i></td><td align=\"right\">3</td><td>4</td></tr></table>"),
            ("ref[^1].\n\n[^1]: note *a*\n\n    more", "<p>ref<sup>[1]</sup>.</p><p><sup>[1]</sup> note <i>a</i></p><p>more</p>"),
            ("x[^c]\n\n[^c]:\n    ```\n    code\n    ```", "<p>x<sup>[c]</sup></p><p><sup>[c]</sup></p><pre>code</pre>"),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn links_images_and_raw_html() {
        assert_renders(&[
            ("[ok](https://a.b/?q=\"x\"&y) [M](MAILTO:a@b) [t](tel:+7) <http://a.b> <a@b.c>",
             "<p><a href=\"https://a.b/?q=&quot;x&quot;&amp;y\">ok</a> <a href=\"MAILTO:a@b\">M</a> \
              <a href=\"tel:+7\">t</a> <a href=\"http://a.b\">http://a.b</a> <a href=\"mailto:a@b.c\">a@b.c</a></p>"),
            ("[tg](tg://resolve?domain=x) [js](javascript:alert(1)) [rel](/x)", "<p>tg js rel</p>"),
            ("[![i](http://i.png)](http://l) [`c`](http://c)", "<p><a href=\"http://l\">i</a> <a href=\"http://c\">c</a></p>"),
            ("![x](http://evil/a.png) ![y](tg://x)", "<p><a href=\"http://evil/a.png\">x</a> y</p>"),
            ("<img src=http://evil/a.png>", "<p>&lt;img src=http://evil/a.png&gt;</p>"),
            ("a <img src=\"x\"> b", "<p>a &lt;img src=\"x\"&gt; b</p>"),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn formulas_and_dollars() {
        assert_renders(&[
            ("$E=mc^2$", "<p><tg-math>E=mc^2</tg-math></p>"),
            ("$$\\int_0^1 x\\,dx$$", "<tg-math-block>\\int_0^1 x\\,dx</tg-math-block>"),
            ("\\(a+b\\) and \\[x^2\\]", "<p><tg-math>a+b</tg-math> and</p><tg-math-block>x^2</tg-math-block>"),
            ("text\n$$ y $$\nmore", "<p>text</p><tg-math-block>y</tg-math-block><p>more</p>"),
            ("*a $$x$$* [l $$y$$](http://l)", "<p><i>a <tg-math>x</tg-math></i> <a href=\"http://l\">l <tg-math>y</tg-math></a></p>"),
            ("- $$x$$\n- y\n\n# $$h$$", "<ul><li><tg-math>x</tg-math></li><li>y</li></ul><h1><tg-math>h</tg-math></h1>"),
            ("- a\n\n  $$x$$", "<ul><li><p>a</p><tg-math-block>x</tg-math-block></li></ul>"),
            ("| f |\n|---|\n| $$z$$ |", "<table bordered><tr><th>f</th></tr><tr><td><tg-math>z</tg-math></td></tr></table>"),
            ("```math\nx^2 < 1\n```", "<tg-math-block>x^2 &lt; 1</tg-math-block>"),
            ("`\\(a\\)`\n\n```\n\\[x\\]\n```", "<p><code>\\(a\\)</code></p><pre>\\[x\\]</pre>"),
            ("стоит 100$ и 200$", "<p>стоит 100$ и 200$</p>"),
            ("от $5 до $10", "<p>от $5 до $10</p>"),
            ("$5-$10, $$ $$", "<p>$5-$10, $$ $$</p>"),
        ]);
    }

    /// LaTeX's delimiters become dollars outside code, once: a part normalized again is the same.
    #[test]
    #[rustfmt::skip]
    fn latex_delimiters_become_dollars_outside_code() {
        let cases = [
            ("\\( a+b \\) \\[\nx\n\\]", "$a+b$ $$\nx\n$$"),
            ("> \\[\n> x\n> \\]", "> $$\n> x\n> $$"),
            ("`\\(a\\)` \\(b\\) ``x `\\(c\\)` y``", "`\\(a\\)` $b$ ``x `\\(c\\)` y``"),
            ("```\n\\(a\\)\n```\n\n    \\(b\\)", "```\n\\(a\\)\n```\n\n    \\(b\\)"),
            ("\\\\(a\\) \\( \\) \\(a\n\nb\\) \\(c", "\\\\(a\\) \\( \\) \\(a\n\nb\\) \\(c"),
            ("\\(a \\[b\\) \\(c\\]\\) \\[y \\(a\\\\)", "$a $$b$ $c$$$ \\[y \\(a\\\\)"),
            ("a\r\nb\rc\0", "a\nb\nc\u{FFFD}"),
        ];
        for (markdown, converted) in cases {
            let (output, anchors) = dollars(&normalize(markdown));
            assert_eq!(output, converted, "{markdown:?}");
            assert_eq!(dollars(converted).0, converted, "{markdown:?} again");
            // Each byte of the output maps to the input's byte of the same text.
            let input = normalize(markdown);
            let mapped = |at: usize| input[original(&anchors, at)..].chars().next();
            assert!(output.char_indices().all(|(at, c)| "$ ".contains(c) || mapped(at) == Some(c)));
        }
    }

    fn rich_parts(chunks: &[Chunk]) -> Vec<&str> {
        let mut parts = Vec::new();
        for chunk in chunks {
            if let Chunk::Rich(part) = chunk {
                parts.push(part.as_str());
            }
        }
        parts
    }

    #[test]
    fn long_answer_is_cut_between_paragraphs() {
        let markdown: String =
            (0..40).map(|i| format!("Абзац {i}: {}\n\n", "слово ".repeat(170))).collect();
        let chunks = rich_chunks(&markdown);
        let parts = rich_parts(&chunks);
        assert!(parts.len() > 1 && parts.len() == chunks.len(), "{} parts", parts.len());
        assert_eq!(parts.concat(), markdown);
        let html: String = parts.iter().map(|p| rich_html(p)).collect();
        assert_eq!(html, rich_html(&markdown));
        assert!(parts.iter().all(|p| rich_html(p).chars().count() <= MAX_CHARS));
    }

    /// A block past any limit of a rich message goes the HTML way, between rich parts.
    #[test]
    fn blocks_past_a_limit_go_the_html_way() {
        let row = |cell: &str| format!("|{}\n", format!(" {cell} |").repeat(25));
        let wide = row("h") + &row("---") + &row("c");
        let deep: String = (0..9).map(|d| format!("{}- {d}\n", "  ".repeat(d))).collect();
        let long = ("x".repeat(40_000), 10);
        let items = ((0..600).map(|i| format!("- {i}\n")).collect::<String>(), 1);
        for (block, html) in [(wide, 1), (deep, 1), (format!("```\n{}\n```", long.0), 10), items] {
            let markdown = format!("Before.\n\n{block}\nAfter.");
            let chunks = rich_chunks(&markdown);
            assert_eq!(chunks.len(), html + 2, "{chunks:?}");
            assert_eq!(chunks[0], Chunk::Rich("Before.\n".into()));
            assert!(chunks[1..=html].iter().all(|c| matches!(c, Chunk::Html(_))));
            let after = rich_parts(&chunks[html + 1..]).concat();
            assert_eq!(rich_html(&after), "<p>After.</p>");
        }
    }

    #[test]
    fn invisible_answers_give_no_chunks() {
        for markdown in ["", " \n\n ", "![](tg://x)", "- \n-", "[^1]:\n"] {
            assert_eq!(rich_chunks(markdown), [], "{markdown:?}");
        }
    }

    /// Any Markdown becomes rich HTML Telegram takes, and a part rendered again is the same.
    #[test]
    fn random_markdown_gives_html_telegram_takes() {
        #[rustfmt::skip]
        let parts = [
            "word ", "слово ", "😀", "**", "*", "~~", "`", "\n", "\n\n", "- ", "1. ", "> ", "# ",
            "```rust\n", "```math\n", "<", "&", "\\", " ", "$", "$$", "\\(", "\\)", "\\[", "\\]",
            "[^1]", "[^1]: ", "- [x] ", "[l](https://x.y/\"q\") ", "![i](http://x/i.png)",
            "[t](tg://x)", "|a|b|\n|-|:-:|\n", "| c |", "---\n", "<img src=x>", "    ", "3. ",
        ];
        let mut seed: u64 = 42;
        let mut random = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        for _ in 0..2000 {
            let markdown: String =
                (0..random() % 60).map(|_| parts[random() % parts.len()]).collect();
            let html = rich_html(&markdown);
            check(&html).unwrap_or_else(|e| panic!("{markdown:?} → {html:?}: {e}"));
            let again: String =
                rich_parts(&rich_chunks(&markdown)).iter().map(|p| rich_html(p)).collect();
            assert_eq!(again, html, "{markdown:?}");
        }
    }

    /// Hostile answers of a megabyte (an eighth of one in a debug build) take a fraction of a
    /// second: quadratic time would take minutes.
    #[test]
    fn hostile_answers_render_in_linear_time() {
        let (bytes, limit) = if cfg!(debug_assertions) { (1 << 17, 3.0) } else { (1 << 20, 1.0) };
        for unit in ["\\(", "\\[a\n", "`` ` ", "- ", "> ", "***", "![", "$", "|a|\n|-|\n"] {
            let markdown = unit.repeat(bytes / unit.len());
            let started = std::time::Instant::now();
            rich_chunks(&markdown);
            let seconds = started.elapsed().as_secs_f64();
            assert!(seconds < limit, "{unit:?}: {seconds} s");
        }
    }
}
