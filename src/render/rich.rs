//! GigaChat's Markdown → the HTML of rich messages (Bot API 10.1): headings, tables, task lists
//! and formulas as Telegram draws them, cut between top-level blocks into messages within
//! Telegram's limits; a block too big for any rich message goes the old HTML way. Pure.

use std::ops::Range;

use pulldown_cmark::{Alignment, CodeBlockKind, Event, LinkType, Options, Parser, Tag, TagEnd};

use super::{Chunk, code_language, markdown_chunks, normalize, push_escaped, visible_text};

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

/// One top-level block: where its Markdown ends, its HTML in the rendered whole, and what it
/// costs: every element that is not inline counts as a block and a level (a list and its item
/// are two), and its widest table.
#[derive(Clone, Default)]
struct Block {
    end: usize,
    html: Range<usize>,
    blocks: usize,
    depth: usize,
    columns: usize,
}

/// The answer as rich messages within Telegram's limits, cut between top-level blocks.
pub fn rich_chunks(markdown: &str) -> Vec<Chunk> {
    // Parts are cut from the Markdown before `dollars`, so that each is converted once (at send
    // time) as it was measured; they tile it, so link definitions go with the next block.
    let markdown = normalize(markdown);
    let (converted, anchors) = dollars(&markdown);
    let (html, blocks) = render(&converted);
    let mut chunks = Vec::new();
    // The part being packed: its Markdown from `from` to `to`, its characters and blocks.
    let (mut from, mut to, mut chars, mut count) = (0, 0, 0, 0);
    for block in blocks.iter().filter(|b| shown(&html[b.html.clone()])) {
        let size = html[block.html.clone()].chars().count();
        let &Block { blocks, depth, columns, .. } = block;
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

/// Where `dollars` changed the length: (byte of its output, byte of its input) pairs, in order.
type Anchors = Vec<(usize, usize)>;

/// The byte of `dollars`' input that byte `at` of its output stands for.
fn original(anchors: &[(usize, usize)], at: usize) -> usize {
    let before = anchors.partition_point(|(output, _)| *output <= at);
    let (output, input) = before.checked_sub(1).map_or((0, 0), |i| anchors[i]);
    input + (at - output)
}

/// `\(…\)` → `$…$` and `\[…\]` → `$$…$$` (GigaChat writes them) outside code, and where the
/// length changed.
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

/// [`dollars`] on a part of the Markdown with no code in it. A delimiter looks for its closing
/// one up to the next blank line; a failed look is remembered, so that the time stays linear.
fn convert(markdown: &str, part: Range<usize>, out: &mut String, anchors: &mut Anchors) {
    let text = &markdown[..part.end];
    let (mut at, mut copied, mut blank) = (part.start, part.start, part.start);
    let mut failed = [0; 2]; // per kind (`\(`, `\[`): no closing delimiter before this byte
    while let Some(i) = text[at..].find('\\').map(|i| at + i) {
        let kind = match text.as_bytes().get(i + 1) {
            Some(b'(') => 0,
            Some(b'[') => 1,
            next => {
                at = i + if next == Some(&b'\\') { 2 } else { 1 }; // `\\` escapes the backslash
                continue;
            }
        };
        at = i + 2;
        if blank < at {
            blank = text[at..].find("\n\n").map_or(text.len(), |b| at + b);
        }
        let close =
            if at > failed[kind] { text[at..blank].find(["\\)", "\\]"][kind]) } else { None };
        let Some(close) = close.map(|c| at + c) else {
            failed[kind] = failed[kind].max(blank);
            continue;
        };
        // Inline math must not start or end with a space; display math may span lines.
        let formula = [text[at..close].trim_matches([' ', '\t']), &text[at..close]][kind];
        if !formula.trim().is_empty() {
            out.extend([&text[copied..i], ["$", "$$"][kind]]);
            anchors.push((out.len(), formula.as_ptr() as usize - text.as_ptr() as usize));
            out.extend([formula, ["$", "$$"][kind]]);
            (at, copied) = (close + 2, close + 2);
            anchors.push((out.len(), copied));
        }
    }
    out.push_str(&text[copied..]);
}

/// The rich HTML of normalized Markdown, and its top-level blocks.
fn render(markdown: &str) -> (String, Vec<Block>) {
    let (mut rich, mut blocks) = (Rich { markdown, ..Rich::default() }, Vec::new());
    for (event, range) in Parser::new_ext(markdown, OPTIONS).into_offset_iter() {
        // Each start pushes an end tag and each end pops one: an empty stack is the top level.
        if rich.stack.is_empty() {
            rich.cost = Block { html: rich.out.len()..0, ..Block::default() };
        }
        let end = range.end;
        rich.event(event, range);
        if rich.stack.is_empty() {
            let html = rich.cost.html.start..rich.out.len();
            blocks.push(Block { end, html, ..std::mem::take(&mut rich.cost) });
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
    /// Per open element, its end tag (empty if it shows none).
    stack: Vec<&'static str>,
    /// The current top-level block as far as it is rendered.
    cost: Block,
    /// Whether an `<a>` is open: Telegram forbids a link inside a link.
    in_link: bool,
    /// Where the last `<li>`'s content starts: a task's checkbox must be its first element.
    item: usize,
    /// The label of the footnote definition whose first paragraph has not started.
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

    /// Writes an element's start tag; `close` is written when it ends. No block opens inside an
    /// inline element, so a block is as deep as the stack.
    fn open(&mut self, tag: &str, close: &'static str, block: bool) {
        self.out.push_str(tag);
        self.stack.push(close);
        if block {
            self.cost.blocks += 1;
            self.cost.depth = self.cost.depth.max(self.stack.len());
        }
    }

    fn pop(&mut self) {
        let close = self.stack.pop().unwrap_or("");
        self.out.push_str(close);
        self.in_link &= close != "</a>";
    }

    fn event(&mut self, event: Event, range: Range<usize>) {
        let source = self.markdown.get(range.clone()).unwrap_or("");
        let digit_after =
            self.markdown.get(range.end..).unwrap_or("").starts_with(|c: char| c.is_ascii_digit());
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            // Where a paragraph reopened after a display formula, spaces and breaks show nothing.
            Event::SoftBreak | Event::HardBreak if self.out.ends_with("<p>") => {}
            Event::Text(text) if self.out.ends_with("<p>") => self.text(text.trim_start()),
            // Raw HTML is shown as the model wrote it: escaped text, never a tag (`<img>`).
            Event::Text(text) | Event::Html(text) | Event::InlineHtml(text) => self.text(&text),
            Event::Code(code) if self.in_link => self.text(&code),
            Event::Code(code) => self.wrap("<code>", &code, "</code>"),
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
            // pulldown-cmark takes `$5-$10` for a formula: as in Pandoc, a `$` before a digit
            // closes none. An empty formula is its dollars too.
            Event::InlineMath(math) | Event::DisplayMath(math)
                if digit_after || math.trim().is_empty() =>
            {
                self.text(source);
            }
            Event::InlineMath(math) => self.wrap("<tg-math>", &math, "</tg-math>"),
            Event::DisplayMath(math) => self.display_math(math.trim()),
        }
    }

    /// A display formula directly in a paragraph is a block: the paragraph is closed before it
    /// and reopened after. Inside a style, a link, a heading, a table cell or a tight list item
    /// (no paragraph there) it stays inline.
    fn display_math(&mut self, math: &str) {
        if self.stack.last() != Some(&"</p>") {
            return self.wrap("<tg-math>", math, "</tg-math>");
        }
        self.end_paragraph();
        self.wrap("<tg-math-block>", math, "</tg-math-block><p>");
        self.cost.blocks += 2;
    }

    /// Ends the open paragraph (its end tag written here, not by `pop`): a trailing line break
    /// is dropped, and an empty paragraph removed.
    fn end_paragraph(&mut self) {
        self.out.truncate(self.out.trim_end().len());
        match self.out.strip_suffix("<p>") {
            Some(before) => self.out.truncate(before.len()),
            None => self.out.push_str("</p>"),
        }
    }

    fn start(&mut self, tag: Tag) {
        match tag {
            Tag::Paragraph => {
                self.open("<p>", "</p>", true);
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
            // No markup of its own: its first paragraph starts with the label.
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
        let language = code_language(&kind);
        let code = format!("<pre><code class=\"language-{language}\">");
        match language.as_str() {
            "" => self.open("<pre>", "</pre>", true),
            "math" => self.open("<tg-math-block>", "</tg-math-block>", true),
            _ => self.open(&code, "</code></pre>", true),
        }
    }

    fn start_cell(&mut self) {
        let aligns = ["", " align=\"left\"", " align=\"center\"", " align=\"right\""];
        let align = aligns[self.aligns.get(self.cell).map_or(0, |a| *a as usize)];
        let (name, close) = if self.head { ("th", "</th>") } else { ("td", "</td>") };
        self.open(&format!("<{name}{align}>"), close, true);
        self.cell += 1;
    }

    /// Only links that open a page, a mail or a call are links; `tg://` (join a group, open a
    /// chat), `javascript:` and relative ones are their text. An image is a link to it too:
    /// a media block would make Telegram fetch any URL the model names.
    fn start_link(&mut self, link_type: LinkType, dest_url: &str) {
        let email = link_type == LinkType::Email;
        let url = if email { format!("mailto:{dest_url}") } else { dest_url.to_string() };
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
                self.end_paragraph();
                self.stack.last_mut().into_iter().for_each(|top| *top = "");
            }
            TagEnd::CodeBlock if self.out.ends_with('\n') => _ = self.out.pop(),
            TagEnd::HtmlBlock => self.out.truncate(self.out.trim_end_matches('\n').len()),
            TagEnd::FootnoteDefinition => self.footnote = None, // no paragraph to label
            _ => {}
        }
        self.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Telegram's rich HTML elements (Bot API 10.1), each with the attributes it takes.
    const ALLOWED: &str = "b strong i em u ins s strike del code:class mark sub sup tg-spoiler \
        a:href:name tg-math h1 h2 h3 h4 h5 h6 p pre footer hr ul ol:start:type:reversed li:value \
        input:type:checked blockquote br cite aside table:bordered:striped caption tr \
        th:colspan:rowspan:align:valign td:colspan:rowspan:align:valign details:open summary \
        tg-math-block";
    /// The elements that may stand at the top level, and those with no end tag.
    const TOP: &str =
        "h1 h2 h3 h4 h5 h6 p pre footer hr ul ol blockquote aside table details tg-math-block";
    const VOID: [&str; 3] = ["hr", "br", "input"];

    /// Why Telegram would refuse `html`, if it would: an element or attribute it does not take,
    /// a tag left open or closed out of turn, text or an inline tag at the top level, a checkbox
    /// that does not open its item, a bare `&` or `>`, a named entity other than the four.
    fn check(html: &str) -> Result<(), String> {
        let (mut open, mut rest) = (Vec::new(), html);
        while let Some(c) = rest.chars().next() {
            let at = html.len() - rest.len();
            let entity = ["&lt;", "&gt;", "&amp;", "&quot;"].iter().any(|e| rest.starts_with(e));
            if c != '<' && (open.is_empty() || (c == '&' && !entity) || c == '>') {
                return Err(format!("{c:?} at {at} in {open:?}"));
            } else if c != '<' {
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
            // Quoted values dropped, the words are the name and the attributes' names.
            let words: String = tag.split('"').step_by(2).collect();
            let mut words = words.split_whitespace().map(|w| w.strip_suffix('=').unwrap_or(w));
            let name = words.next().unwrap_or("");
            let mut elements = ALLOWED.split_whitespace().map(|e| e.split(':').collect::<Vec<_>>());
            let allowed = elements.find(|e| e[0] == name).ok_or(tag)?;
            let name = allowed[0];
            if (open.is_empty() && !TOP.split(' ').any(|t| t == name))
                || (name == "input" && !html[..at].ends_with("<li>"))
                || words.any(|w| !allowed.contains(&w))
            {
                return Err(format!("<{tag}> at {at} in {open:?}"));
            }
            if !VOID.contains(&name) {
                open.push(name);
            }
        }
        if open.is_empty() { Ok(()) } else { Err(format!("{open:?} left open")) }
    }

    #[test]
    #[rustfmt::skip]
    fn markdown_becomes_rich_html() {
        let cases = [
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
            ("x[^c]\n\n[^c]:\n    ```\n    code\n    ```\n\n    text", "<p>x<sup>[c]</sup></p><pre>code</pre><p><sup>[c]</sup> text</p>"),
            // Links only to pages, mails and calls; images as links; raw HTML as text.
            ("[ok](https://a.b/?q=\"x\"&y) [M](MAILTO:a@b) [t](tel:+7) <http://a.b> <a@b.c>",
             "<p><a href=\"https://a.b/?q=&quot;x&quot;&amp;y\">ok</a> <a href=\"MAILTO:a@b\">M</a> \
              <a href=\"tel:+7\">t</a> <a href=\"http://a.b\">http://a.b</a> <a href=\"mailto:a@b.c\">a@b.c</a></p>"),
            ("[tg](tg://resolve?domain=x) [js](javascript:alert(1)) [rel](/x)", "<p>tg js rel</p>"),
            ("[![i](http://i.png)](http://l) [`c`](http://c)", "<p><a href=\"http://l\">i</a> <a href=\"http://c\">c</a></p>"),
            ("![x](http://evil/a.png) ![y](tg://x)", "<p><a href=\"http://evil/a.png\">x</a> y</p>"),
            ("<img src=http://evil/a.png>", "<p>&lt;img src=http://evil/a.png&gt;</p>"),
            ("a <img src=\"x\"> b", "<p>a &lt;img src=\"x\"&gt; b</p>"),
            // Formulas, inline and as blocks where a paragraph holds them; prices stay text.
            ("$E=mc^2$", "<p><tg-math>E=mc^2</tg-math></p>"),
            ("$$\\int_0^1 x\\,dx$$", "<tg-math-block>\\int_0^1 x\\,dx</tg-math-block>"),
            ("\\(a+b\\) and \\[x^2\\]", "<p><tg-math>a+b</tg-math> and</p><tg-math-block>x^2</tg-math-block>"),
            ("text\n$$ y $$\nmore $$z$$ end", "<p>text</p><tg-math-block>y</tg-math-block><p>more</p><tg-math-block>z</tg-math-block><p>end</p>"),
            ("*a $$x$$* [l $$y$$](http://l)", "<p><i>a <tg-math>x</tg-math></i> <a href=\"http://l\">l <tg-math>y</tg-math></a></p>"),
            ("- $$x$$\n- y\n\n# $$h$$", "<ul><li><tg-math>x</tg-math></li><li>y</li></ul><h1><tg-math>h</tg-math></h1>"),
            ("- a\n\n  $$x$$", "<ul><li><p>a</p><tg-math-block>x</tg-math-block></li></ul>"),
            ("| f |\n|---|\n| $$z$$ |", "<table bordered><tr><th>f</th></tr><tr><td><tg-math>z</tg-math></td></tr></table>"),
            ("```math\nx^2 < 1\n```", "<tg-math-block>x^2 &lt; 1</tg-math-block>"),
            ("`\\(a\\)`\n\n```\n\\[x\\]\n```", "<p><code>\\(a\\)</code></p><pre>\\[x\\]</pre>"),
            ("стоит 100$ и 200$", "<p>стоит 100$ и 200$</p>"),
            ("от $5 до $10", "<p>от $5 до $10</p>"),
            ("$5-$10, $$ $$", "<p>$5-$10, $$ $$</p>"),
        ];
        for (markdown, html) in cases {
            assert_eq!(rich_html(markdown), html, "{markdown:?}");
            check(html).unwrap_or_else(|e| panic!("{markdown:?}: {e}"));
        }
    }

    /// LaTeX's delimiters become dollars outside code, and each byte maps back to the Markdown.
    #[test]
    #[rustfmt::skip]
    fn latex_delimiters_become_dollars_outside_code() {
        let cases = [
            ("\\( a+b \\) \\[\nx\n\\]", "$a+b$ $$\nx\n$$"),
            ("> \\[\n> x\n> \\]", "> $$\n> x\n> $$"),
            ("`\\(a\\)` \\(b\\) ``x `\\(c\\)` y``", "`\\(a\\)` $b$ ``x `\\(c\\)` y``"),
            ("```\n\\(a\\)\n```\n\n    \\(b\\)", "```\n\\(a\\)\n```\n\n    \\(b\\)"),
            ("\\\\(a\\) \\( \\) \\(a\n\nb\\) \\(c", "\\\\(a\\) \\( \\) \\(a\n\nb\\) \\(c"),
            ("\\(a \\[b\\) \\(c", "$a \\[b$ \\(c"),
            ("a\r\nb\rc\0", "a\nb\nc\u{FFFD}"),
        ];
        for (markdown, converted) in cases {
            let (output, anchors) = dollars(&normalize(markdown));
            assert_eq!(output, converted, "{markdown:?}");
            let input = normalize(markdown);
            let mapped = |at: usize| input[original(&anchors, at)..].chars().next();
            assert!(output.char_indices().all(|(at, c)| "$ ".contains(c) || mapped(at) == Some(c)));
        }
    }

    #[rustfmt::skip]
    fn rich_parts(chunks: &[Chunk]) -> Vec<&str> {
        chunks.iter().filter_map(|c| if let Chunk::Rich(p) = c { Some(p.as_str()) } else { None }).collect()
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

    /// A block past any limit of a rich message goes the HTML way, between rich parts; an
    /// answer that shows nothing makes no message.
    #[test]
    fn blocks_past_a_limit_go_the_html_way() {
        let blank = ["", " \n\n ", "![](tg://x)", "- \n-", "[^1]:\n"];
        assert!(blank.iter().all(|markdown| rich_chunks(markdown).is_empty()));
        let row = |cell: &str| format!("|{}\n", format!(" {cell} |").repeat(25));
        let wide = row("h") + &row("---") + &row("c");
        let deep: String = (0..9).map(|d| format!("{}- {d}\n", "  ".repeat(d))).collect();
        let code = format!("```\n{}\n```", "x".repeat(40_000));
        let items: String = (0..600).map(|i| format!("- {i}\n")).collect();
        for (block, html) in [(wide, 1), (deep, 1), (code, 10), (items, 1)] {
            let markdown = format!("Before.\n\n{block}\nAfter.");
            let chunks = rich_chunks(&markdown);
            assert_eq!(chunks.len(), html + 2, "{chunks:?}");
            assert_eq!(chunks[0], Chunk::Rich("Before.\n".into()));
            assert!(chunks[1..=html].iter().all(|c| matches!(c, Chunk::Html(_))));
            let after = rich_parts(&chunks[html + 1..]).concat();
            assert_eq!(rich_html(&after), "<p>After.</p>");
        }
    }

    /// Any Markdown becomes rich HTML Telegram takes; a long answer of it, parts within limits.
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
        #[rustfmt::skip]
        let refused = ["x", "<b>x</b>", "<p><img src=\"x\"></p>", "<p><a href=x>y</a></p>", "<p><b>x</p></b>",
            "<p>&nbsp;</p>", "<ul><li><p>x</p><input type=\"checkbox\"></li></ul>", "<p>x"];
        assert!(refused.iter().all(|html| check(html).is_err()), "the checker takes one");
        let mut answers = Vec::new();
        for _ in 0..2000 {
            let markdown: String =
                (0..random() % 60).map(|_| parts[random() % parts.len()]).collect();
            let html = rich_html(&markdown);
            check(&html).unwrap_or_else(|e| panic!("{markdown:?} → {html:?}: {e}"));
            answers.push(markdown);
        }
        // Without code fences, one unclosed would make the rest a single block.
        let long = normalize(&answers.join("\n\n").replace(['`', '~'], ""));
        let mut rest = long.as_str();
        for part in rich_parts(&rich_chunks(&long)) {
            let html = rich_html(part);
            assert!(check(&html).is_ok() && html.chars().count() <= MAX_CHARS, "{part:?}");
            rest = &rest[rest.find(part).expect("parts in order, each once") + part.len()..];
        }
    }

    /// Hostile answers (an eighth of a megabyte of one mark) render without a panic into
    /// messages whose size is linear in the answer. (Their time is the benchmark's to measure:
    /// `--only hostile`.)
    #[test]
    fn hostile_answers_render_into_output_linear_in_their_size() {
        let bytes = 1 << 17;
        for unit in ["\\(", "\\[a\n", "`` ` ", "- ", "> ", "***", "![", "$", "|a|\n|-|\n"] {
            let chunks = rich_chunks(&unit.repeat(bytes / unit.len()));
            let out: usize = chunks
                .iter()
                .map(|c| match c {
                    Chunk::Rich(part) => rich_html(part).len(),
                    Chunk::Html(html) => html.len(),
                })
                .sum();
            assert!(out <= 40 * bytes, "{unit:?}: {out} bytes out of {bytes}");
        }
    }
}
