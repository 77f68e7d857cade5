//! Rich messages (Bot API 10.1 `sendRichMessage`, `sendRichMessageDraft`): the `html` of an
//! `InputRichMessage`, read as strictly as shared/reference/telegram-10x.md ("Rich messages")
//! describes it, for the fake Bot API.
//!
//! Tags, attributes and entity references are read by `tg_html`'s `Lexer` (TDLib's reading,
//! in its rich dialect); on top of that this module builds the tree, checks where each tag
//! may stand and what attributes it may carry, applies the documented limits, and turns the
//! tree into the `RichBlock`s of the sent `Message.rich_message` and into the text a user
//! reads (a line per block).
//!
//! Only the documented tags are accepted; anything else is refused with a TDLib-style detail
//! ("Unsupported start tag …", "Unmatched end tag …", byte offsets into the raw string). How
//! Telegram words its refusals of rich messages is UNCONFIRMED (telegram-10x.md: "expect a 400
//! `Bad Request: …`"), so the descriptions here are the fake's: `can't parse rich message:
//! <detail>` for what cannot be read, and one line per limit. Where the reference is silent
//! the fake takes the stricter reading, so that a wrong guess fails in a test rather than in
//! front of a user; each such choice is marked UNCONFIRMED below.

#![allow(dead_code)] // a toolbox: not every test uses every part

use serde_json::{Map, Value, json};

use crate::tg_html::{Attribute, Dialect, Lexer};

/// "At most 32 768 UTF-8 characters of text (formula source and custom-emoji text
/// included)": counted in code points, as TDLib's `utf8_length` counts.
pub const MAX_CHARS: usize = 32768;
/// "At most 500 blocks (nested blocks, list items, table rows, quotations, details count)".
pub const MAX_BLOCKS: usize = 500;
/// "At most 16 levels of nesting". Which elements make a level is UNCONFIRMED: the fake
/// counts every element that is not inline formatting (a list and its item are two levels,
/// a table, its row and its cell three), the strictest reading.
pub const MAX_DEPTH: usize = 16;
/// "At most 20 columns in a table" (a cell counts its `colspan`; a `rowspan` from above
/// takes its columns in the rows below).
pub const MAX_COLUMNS: usize = 20;
/// No limit on nested inline formatting is documented; the fake refuses more than this,
/// so that its recursion stays small.
const MAX_ELEMENT_DEPTH: usize = 100;

/// The limits' descriptions (after "Bad Request: "). UNCONFIRMED: the fake's wording
/// ("message is too long" is what Telegram says of a plain message over its limit).
pub const TOO_LONG: &str = "message is too long";
pub const TOO_MANY_BLOCKS: &str = "message has too many blocks";
pub const TOO_DEEP: &str = "message is nested too deeply";
pub const TOO_MANY_COLUMNS: &str = "table has too many columns";

/// Inline formatting and inline objects: text-level tags.
const INLINE: [&str; 20] = [
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "code",
    "mark",
    "sub",
    "sup",
    "tg-spoiler",
    "a",
    "tg-reference",
    "tg-emoji",
    "tg-time",
    "tg-math",
    "br",
];

/// Blocks (`<a name>` is also an anchor block at the top level; `<tg-thinking>` exists in
/// drafts only).
const BLOCKS: [&str; 19] = [
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "p",
    "pre",
    "footer",
    "hr",
    "ul",
    "ol",
    "blockquote",
    "aside",
    "table",
    "details",
    "tg-math-block",
    "tg-thinking",
    "a",
];

/// Parts of blocks: list items and their checkboxes, table parts, a summary, a credit.
const PARTS: [&str; 8] = ["li", "input", "caption", "tr", "th", "td", "summary", "cite"];

/// Media blocks: Telegram itself fetches their HTTP(S) URLs. The bot must never send one, so
/// the fake refuses them (and the fake records the refusal; see `Refusal::Media`).
pub const MEDIA: [&str; 8] =
    ["img", "video", "audio", "figure", "figcaption", "tg-map", "tg-collage", "tg-slideshow"];

/// Elements without content: `<br>`, `<hr/>`, `<input …>`.
const VOID: [&str; 3] = ["br", "hr", "input"];

/// Links, references and times can't contain each other (the fake's rule, as the parse
/// mode's: one text can have one link).
const LINKS: [&str; 3] = ["a", "tg-reference", "tg-time"];

/// Why a rich message is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// It can't be read, or a tag or attribute isn't allowed where it is: the detail after
    /// "can't parse rich message: ".
    Parse(String),
    /// Over a documented limit: the description after "Bad Request: ".
    Limit(&'static str),
    /// A media block: its tag, byte offset, and URL (`src`), if any.
    Media { tag: String, offset: usize, url: Option<String> },
}

impl Refusal {
    /// The `description` of the 400 answer.
    pub fn description(&self) -> String {
        match self {
            Refusal::Parse(detail) => format!("Bad Request: can't parse rich message: {detail}"),
            Refusal::Limit(what) => format!("Bad Request: {what}"),
            Refusal::Media { tag, offset, .. } => format!(
                "Bad Request: can't parse rich message: media block \"{tag}\" at byte offset \
                 {offset}: the fake refuses media, whose URLs Telegram would fetch"
            ),
        }
    }
}

impl From<String> for Refusal {
    fn from(detail: String) -> Refusal {
        Refusal::Parse(detail)
    }
}

/// A rich message as Telegram would show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rich {
    /// The `blocks` of its `RichMessage` (Bot API types `RichBlock…`, `RichText…`).
    pub blocks: Vec<Value>,
    /// What a user reads: a line per block, list items with their labels, table cells
    /// separated by " | ".
    pub text: String,
    /// Characters of text, formulas and emoji, as counted against `MAX_CHARS`.
    pub chars: usize,
    /// Blocks, list items and table rows, as counted against `MAX_BLOCKS`.
    pub block_count: usize,
}

/// Reads the `html` of a rich message; `draft` allows `<tg-thinking>` (sendRichMessageDraft
/// only: "allowed only in drafts").
pub fn parse(html: &str, draft: bool) -> Result<Rich, Refusal> {
    let root = read_tree(html, draft)?;
    check_children(&root, &Context::default())?;
    let mut counts = Counts::default();
    let blocks = blocks_of(&root.children, true, &mut counts)?;
    if counts.chars > MAX_CHARS {
        return Err(Refusal::Limit(TOO_LONG));
    }
    if counts.blocks > MAX_BLOCKS {
        return Err(Refusal::Limit(TOO_MANY_BLOCKS));
    }
    let text = blocks.iter().map(block_text).filter(|t| !t.is_empty()).collect::<Vec<_>>();
    Ok(Rich { text: text.join("\n"), blocks, chars: counts.chars, block_count: counts.blocks })
}

// --- the tree ---

#[derive(Debug)]
struct Element {
    /// Lower case; "" for the root.
    tag: String,
    attributes: Vec<Attribute>,
    /// Byte offset of its `<`.
    offset: usize,
    children: Vec<Node>,
}

#[derive(Debug)]
enum Node {
    /// Text with its entity references decoded, and the byte offset where it starts.
    Text(String, usize),
    Element(Element),
}

impl Element {
    fn attribute(&self, name: &str) -> Option<&str> {
        let found = self.attributes.iter().find(|a| a.name == name)?;
        Some(found.value.as_deref().unwrap_or(""))
    }

    fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|child| match child {
            Node::Element(element) => Some(element),
            Node::Text(..) => None,
        })
    }

    /// The text of an element that holds only text (code, formulas, emoji).
    fn text(&self) -> String {
        let texts = self.children.iter().filter_map(|child| match child {
            Node::Text(text, _) => Some(text.as_str()),
            Node::Element(_) => None,
        });
        texts.collect()
    }

    /// `<a name="…">`: an anchor, not a link.
    fn is_anchor(&self) -> bool {
        self.tag == "a" && self.attribute("name").is_some()
    }
}

fn is_inline(tag: &str) -> bool {
    INLINE.contains(&tag)
}

fn is_block(tag: &str) -> bool {
    BLOCKS.contains(&tag) && tag != "a"
}

/// Reads the tags into a tree, checking that they are known and balanced.
fn read_tree(html: &str, draft: bool) -> Result<Element, Refusal> {
    let s = html.as_bytes();
    let mut lexer = Lexer { s, pos: 0, dialect: Dialect::Rich };
    let mut stack =
        vec![Element { tag: String::new(), attributes: vec![], offset: 0, children: vec![] }];
    let mut text: Vec<u8> = Vec::new();
    let mut text_start = 0;
    while lexer.pos < s.len() {
        let c = s[lexer.pos];
        if c != b'<' {
            if text.is_empty() {
                text_start = lexer.pos;
            }
            if c == b'&' {
                let (ch, next) = lexer.entity(lexer.pos)?.expect("rich entities are never literal");
                text.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                lexer.pos = next;
            } else {
                text.push(c);
                lexer.pos += 1;
            }
            continue;
        }
        if !text.is_empty() {
            let run = String::from_utf8(std::mem::take(&mut text)).expect("UTF-8 in, UTF-8 out");
            top(&mut stack).children.push(Node::Text(run, text_start));
        }
        let begin = lexer.pos;
        lexer.pos += 1;
        if lexer.at(begin + 1) == b'/' {
            end_tag(&mut lexer, &mut stack, begin)?;
        } else {
            start_tag(&mut lexer, &mut stack, begin, draft)?;
        }
        lexer.pos += 1; // past '>'
    }
    if !text.is_empty() {
        let run = String::from_utf8(text).expect("UTF-8 in, UTF-8 out");
        top(&mut stack).children.push(Node::Text(run, text_start));
    }
    if stack.len() > 1 {
        let tag = &top(&mut stack).tag;
        return Err(format!("Can't find end tag corresponding to start tag \"{tag}\"").into());
    }
    Ok(stack.pop().expect("the root"))
}

fn top(stack: &mut [Element]) -> &mut Element {
    stack.last_mut().expect("the root stays")
}

fn start_tag(
    lexer: &mut Lexer,
    stack: &mut Vec<Element>,
    begin: usize,
    draft: bool,
) -> Result<(), Refusal> {
    let tag = lexer.start_tag_name(begin)?;
    if MEDIA.contains(&tag.as_str()) {
        let url = lexer.attributes(&tag, begin).ok().and_then(|(attributes, _)| {
            attributes.into_iter().find(|a| a.name == "src").and_then(|a| a.value)
        });
        return Err(Refusal::Media { tag, offset: begin, url });
    }
    let known = is_inline(&tag) || BLOCKS.contains(&tag.as_str()) || PARTS.contains(&tag.as_str());
    if !known || (tag == "tg-thinking" && !draft) {
        return Err(format!("Unsupported start tag \"{tag}\" at byte offset {begin}").into());
    }
    let (attributes, closed) = lexer.attributes(&tag, begin)?;
    let element = Element { tag, attributes, offset: begin, children: vec![] };
    if VOID.contains(&element.tag.as_str()) {
        top(stack).children.push(Node::Element(element));
        return Ok(());
    }
    if closed {
        return Err(format!(
            "Tag \"{}\" at byte offset {begin} can't close itself: only <br/>, <hr/> and \
             <input/> do",
            element.tag
        )
        .into());
    }
    let levels = stack.iter().skip(1).filter(|e| !is_inline(&e.tag)).count();
    if !is_inline(&element.tag) && levels >= MAX_DEPTH {
        return Err(Refusal::Limit(TOO_DEEP));
    }
    if stack.len() > MAX_ELEMENT_DEPTH {
        return Err(format!(
            "Tags nested more than {MAX_ELEMENT_DEPTH} deep at byte offset {begin} (the fake's \
             guard)"
        )
        .into());
    }
    stack.push(element);
    Ok(())
}

/// `</tag>` closes the innermost open tag, which must be that tag (`</>` is refused: the
/// fake's rule, where TDLib's parse mode would close the innermost tag).
fn end_tag(lexer: &mut Lexer, stack: &mut Vec<Element>, begin: usize) -> Result<(), Refusal> {
    if stack.len() == 1 {
        return Err(format!("Unexpected end tag at byte offset {begin}").into());
    }
    let name = lexer.end_tag(begin)?;
    let open = &top(stack).tag;
    if name != *open {
        return Err(format!(
            "Unmatched end tag at byte offset {begin}, expected \"</{open}>\", found \"</{name}>\""
        )
        .into());
    }
    let element = stack.pop().expect("checked above");
    top(stack).children.push(Node::Element(element));
    Ok(())
}

// --- where tags may stand ---

/// What an element may hold.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Content {
    /// The top level: blocks only.
    Blocks,
    /// A list item, a quotation, details: blocks and inline content (inline runs become
    /// paragraphs).
    Flow,
    /// Text and inline formatting.
    Phrasing,
    /// Text only: code, formulas ("formula source is treated as raw LaTeX"), emoji.
    Text,
    /// `<pre>`: text, or one `<code class="language-x">` and nothing else.
    Pre,
    /// `<ul>`, `<ol>`: list items.
    List,
    /// `<table>`: a caption, then rows.
    Table,
    /// `<tr>`: cells.
    Row,
}

fn content_of(tag: &str) -> Content {
    match tag {
        "" => Content::Blocks,
        "li" | "blockquote" | "details" => Content::Flow,
        "code" | "tg-math" | "tg-math-block" | "tg-emoji" => Content::Text,
        "pre" => Content::Pre,
        "ul" | "ol" => Content::List,
        "table" => Content::Table,
        "tr" => Content::Row,
        _ => Content::Phrasing,
    }
}

/// What the ancestors of an element allow.
#[derive(Debug, Clone, Default)]
struct Context {
    /// Inside a `<blockquote>`: `<br>` is allowed ("`<blockquote>` (with `<br>`, `<cite>`)";
    /// elsewhere UNCONFIRMED, so refused).
    in_blockquote: bool,
    /// The link, reference or time this is inside, if any.
    in_link: Option<&'static str>,
}

fn place(element: &Element) -> String {
    match element.tag.as_str() {
        "" => "at the top level".into(),
        tag => format!("in <{tag}>"),
    }
}

/// Checks the children of `parent`, then each child element, recursively.
fn check_children(parent: &Element, context: &Context) -> Result<(), Refusal> {
    let content = content_of(&parent.tag);
    for child in &parent.children {
        let element = match child {
            Node::Text(text, offset) => {
                let only_blocks = matches!(
                    content,
                    Content::Blocks | Content::List | Content::Table | Content::Row
                );
                let pre_with_code = content == Content::Pre && parent.elements().next().is_some();
                if (only_blocks && !text.trim().is_empty()) || pre_with_code {
                    return Err(format!(
                        "Text at byte offset {offset} is not allowed {}",
                        place(parent)
                    )
                    .into());
                }
                continue;
            }
            Node::Element(element) => element,
        };
        if !allowed(content, parent, element) {
            let (tag, offset) = (&element.tag, element.offset);
            return Err(format!(
                "Tag \"{tag}\" at byte offset {offset} is not allowed {}",
                place(parent)
            )
            .into());
        }
        check_element(parent, element, context)?;
        let mut inner = context.clone();
        inner.in_blockquote |= element.tag == "blockquote";
        if LINKS.contains(&element.tag.as_str()) {
            inner.in_link = LINKS.iter().copied().find(|l| *l == element.tag);
        }
        check_children(element, &inner)?;
    }
    check_order(parent)
}

/// Whether `element` may stand directly in `parent`, whose content is `content`.
fn allowed(content: Content, parent: &Element, element: &Element) -> bool {
    let tag = element.tag.as_str();
    let part_of = |parent_tag: &str, part: &str| parent.tag == parent_tag && tag == part;
    match content {
        Content::Blocks => is_block(tag) || element.is_anchor(),
        Content::Flow => {
            is_block(tag)
                || is_inline(tag)
                || part_of("li", "input")
                || part_of("blockquote", "cite")
                || part_of("details", "summary")
        }
        Content::Phrasing => is_inline(tag),
        Content::Text => false,
        Content::Pre => tag == "code",
        Content::List => tag == "li",
        Content::Table => tag == "caption" || tag == "tr",
        Content::Row => tag == "th" || tag == "td",
    }
}

/// The rules of one element in its place: `<br>` in quotations only, no link in a link, an
/// anchor is empty, and its attributes.
fn check_element(parent: &Element, element: &Element, context: &Context) -> Result<(), Refusal> {
    let (tag, offset) = (element.tag.as_str(), element.offset);
    if tag == "br" && !context.in_blockquote {
        return Err(
            format!("Tag \"br\" at byte offset {offset} is allowed only in <blockquote>").into()
        );
    }
    if let Some(outer) = context.in_link.filter(|_| LINKS.contains(&tag)) {
        return Err(format!(
            "Tag \"{tag}\" at byte offset {offset} is nested in \"{outer}\": links, references \
             and times can't contain each other"
        )
        .into());
    }
    if element.is_anchor() && !element.children.is_empty() {
        return Err(format!("Tag \"a\" with a name at byte offset {offset} must be empty").into());
    }
    check_attributes(parent, element)
}

/// Counts and order inside an element: a list has items, a table rows, a row cells; a
/// checkbox starts its item; a summary starts its details (and is required: `summary` is a
/// required field of `RichBlockDetails`); a caption starts its table; one credit per quotation.
fn check_order(parent: &Element) -> Result<(), Refusal> {
    let (tag, offset) = (parent.tag.as_str(), parent.offset);
    let significant: Vec<&Node> = parent
        .children
        .iter()
        .filter(|n| !matches!(n, Node::Text(text, _) if text.trim().is_empty()))
        .collect();
    let first_tag = match significant.first() {
        Some(Node::Element(e)) => Some(e.tag.as_str()),
        _ => None,
    };
    let count = |name: &str| parent.elements().filter(|e| e.tag == name).count();
    let fail =
        |what: &str| Err(Refusal::Parse(format!("Tag \"{tag}\" at byte offset {offset} {what}")));
    match tag {
        "ul" | "ol" if count("li") == 0 => fail("has no <li>"),
        "table" if count("tr") == 0 => fail("has no <tr>"),
        "tr" if count("th") + count("td") == 0 => fail("has no <th> or <td>"),
        "table"
            if count("caption") > 1 || (count("caption") == 1 && first_tag != Some("caption")) =>
        {
            fail("must start with its only <caption>")
        }
        "li" if count("input") > 1 || (count("input") == 1 && first_tag != Some("input")) => {
            fail("must start with its only checkbox <input>")
        }
        "details" if count("summary") != 1 || first_tag != Some("summary") => {
            fail("must start with its only <summary>")
        }
        "blockquote" if count("cite") > 1 => fail("has more than one <cite>"),
        "pre" if parent.elements().count() > 1 => fail("holds more than one <code>"),
        _ => Ok(()),
    }
}

// --- attributes ---

/// What an attribute's value may be.
#[derive(Debug, Clone, Copy)]
enum Allowed {
    /// Present or absent (`checked`, `checked=""`, `checked="checked"`).
    Flag,
    /// An integer, at least this.
    Integer(i64),
    OneOf(&'static [&'static str]),
    /// Any non-empty text.
    Text,
    /// Any text.
    AnyText,
    /// A link of an allowed scheme (see `link_kind`).
    Href,
    /// `language-X`, only on the `<code>` of a `<pre>`.
    Language,
}

/// The attributes each tag may have (telegram-10x.md "Rich HTML"); any other is refused.
fn attribute_rule(tag: &str, name: &str) -> Option<Allowed> {
    Some(match (tag, name) {
        ("a", "href") => Allowed::Href,
        ("a", "name") | ("tg-reference", "name") => Allowed::Text,
        ("tg-emoji", "emoji-id") => Allowed::Integer(1),
        ("tg-time", "unix") => Allowed::Integer(i64::MIN),
        ("tg-time", "format") => Allowed::AnyText,
        ("code", "class") => Allowed::Language,
        ("ol", "start") | ("li", "value") => Allowed::Integer(i64::MIN),
        ("ol", "type") => Allowed::OneOf(&["1", "a", "A", "i", "I"]),
        ("ol", "reversed")
        | ("input", "checked")
        | ("table", "bordered" | "striped")
        | ("details", "open") => Allowed::Flag,
        ("input", "type") => Allowed::OneOf(&["checkbox"]),
        ("td" | "th", "colspan" | "rowspan") => Allowed::Integer(1),
        ("td" | "th", "align") => Allowed::OneOf(&["left", "center", "right"]),
        ("td" | "th", "valign") => Allowed::OneOf(&["top", "middle", "bottom"]),
        _ => return None,
    })
}

/// Attributes a tag must have.
const REQUIRED: [(&str, &str, &str); 4] = [
    ("tg-reference", "name", ""),
    // TDLib's detail for the parse mode's `<tg-emoji>` and `<tg-time>`.
    ("tg-emoji", "emoji-id", "Invalid custom emoji identifier specified"),
    ("tg-time", "unix", "Invalid Unix time specified"),
    ("input", "type", ""),
];

fn check_attributes(parent: &Element, element: &Element) -> Result<(), Refusal> {
    let (tag, offset) = (element.tag.as_str(), element.offset);
    for (i, Attribute { name, value }) in element.attributes.iter().enumerate() {
        let what = format!("attribute \"{name}\" in the tag \"{tag}\" at byte offset {offset}");
        let misplaced =
            (name == "class" && parent.tag != "pre") || (name == "value" && parent.tag != "ol");
        let Some(rule) = attribute_rule(tag, name).filter(|_| !misplaced) else {
            return Err(format!("Unsupported {what}").into());
        };
        if element.attributes[..i].iter().any(|a| a.name == *name) {
            return Err(format!("Duplicate {what}").into());
        }
        if !valid_value(rule, name, value.as_deref()) {
            let detail = REQUIRED.iter().find(|r| (r.0, r.1) == (tag, name.as_str()));
            if let Some((.., detail)) = detail.filter(|r| !r.2.is_empty()) {
                return Err(Refusal::Parse(detail.to_string()));
            }
            let shown = value.as_deref().unwrap_or("");
            return Err(format!("Invalid value \"{shown}\" of the {what}").into());
        }
    }
    for (required_tag, name, detail) in REQUIRED {
        if tag == required_tag && element.attribute(name).is_none() {
            return Err(match detail {
                "" => format!(
                    "Tag \"{tag}\" at byte offset {offset} must have the attribute \"{name}\""
                )
                .into(),
                detail => Refusal::Parse(detail.to_string()),
            });
        }
    }
    if tag == "a" && element.attribute("href").is_some() == element.attribute("name").is_some() {
        return Err(
            format!("Tag \"a\" at byte offset {offset} must have either href or name").into()
        );
    }
    Ok(())
}

fn valid_value(rule: Allowed, name: &str, value: Option<&str>) -> bool {
    match (rule, value) {
        (Allowed::Flag, None) => true,
        (Allowed::Flag, Some(value)) => value.is_empty() || value == name,
        (_, None) => false,
        (Allowed::Integer(min), Some(value)) => value.parse::<i64>().is_ok_and(|n| n >= min),
        (Allowed::OneOf(values), Some(value)) => values.contains(&value),
        (Allowed::Text, Some(value)) => !value.is_empty(),
        (Allowed::AnyText, Some(_)) => true,
        (Allowed::Href, Some(url)) => link_kind(url).is_some(),
        (Allowed::Language, Some(class)) => {
            class.strip_prefix("language-").is_some_and(|l| !l.is_empty())
        }
    }
}

/// The rich text type of a link, if its scheme is allowed: "http(s), `mailto:`, `tel:`,
/// `tg://user?id=`, `#anchor`" (schemes compared case-insensitively).
fn link_kind(url: &str) -> Option<&'static str> {
    let lower = url.to_ascii_lowercase();
    let after = |prefix: &str| lower.strip_prefix(prefix).filter(|rest| !rest.is_empty());
    if after("http://").or(after("https://")).is_some() {
        Some("url")
    } else if after("mailto:").is_some() {
        Some("email_address")
    } else if after("tel:").is_some() {
        Some("phone_number")
    } else if after("tg://user?id=").is_some_and(|id| id.bytes().all(|b| b.is_ascii_digit())) {
        Some("text_mention")
    } else if lower.starts_with('#') {
        Some("anchor_link") // "#" alone: back to the top of the message
    } else {
        None
    }
}

// --- the RichBlocks ---

#[derive(Debug, Default)]
struct Counts {
    chars: usize,
    blocks: usize,
}

/// The blocks of a list of nodes: block elements, and inline runs as paragraphs
/// (`top`: the top level, where `<a name>` is an anchor block).
fn blocks_of(nodes: &[Node], top: bool, counts: &mut Counts) -> Result<Vec<Value>, Refusal> {
    let mut blocks = Vec::new();
    let mut run: Vec<&Node> = Vec::new();
    for node in nodes {
        let block = match node {
            Node::Element(e) if is_block(&e.tag) || (top && e.is_anchor()) => e,
            Node::Element(e) if ["input", "cite", "summary"].contains(&e.tag.as_str()) => continue,
            inline => {
                run.push(inline);
                continue;
            }
        };
        paragraph(&mut run, &mut blocks, counts);
        blocks.push(block_of(block, counts)?);
    }
    paragraph(&mut run, &mut blocks, counts);
    Ok(blocks)
}

/// An inline run as a paragraph, unless it is only white space.
fn paragraph(run: &mut Vec<&Node>, blocks: &mut Vec<Value>, counts: &mut Counts) {
    let blank = run.iter().all(|n| matches!(n, Node::Text(text, _) if text.trim().is_empty()));
    if !blank {
        counts.blocks += 1;
        blocks.push(json!({"type": "paragraph", "text": rich_text(run.iter().copied(), counts)}));
    }
    run.clear();
}

fn block_of(e: &Element, counts: &mut Counts) -> Result<Value, Refusal> {
    counts.blocks += 1;
    let text = |counts: &mut Counts| rich_text(e.children.iter(), counts);
    Ok(match e.tag.as_str() {
        "p" => json!({"type": "paragraph", "text": text(counts)}),
        heading @ ("h1" | "h2" | "h3" | "h4" | "h5" | "h6") => {
            json!({"type": "heading", "text": text(counts), "size": heading[1..].parse::<u8>().expect("h1–h6")})
        }
        "footer" => json!({"type": "footer", "text": text(counts)}),
        "aside" => json!({"type": "pullquote", "text": text(counts)}),
        "tg-thinking" => json!({"type": "thinking", "text": text(counts)}),
        "hr" => json!({"type": "divider"}),
        "a" => json!({"type": "anchor", "name": e.attribute("name")}),
        "tg-math-block" => {
            let expression = e.text();
            counts.chars += expression.chars().count();
            json!({"type": "mathematical_expression", "expression": expression})
        }
        "pre" => {
            let code = e.elements().next();
            let source = code.map_or_else(|| e.text(), Element::text);
            counts.chars += source.chars().count();
            let mut block = json!({"type": "pre", "text": source});
            let language =
                code.and_then(|c| c.attribute("class")).and_then(|c| c.strip_prefix("language-"));
            if let Some(language) = language {
                block["language"] = json!(language);
            }
            block
        }
        "ul" | "ol" => list_of(e, counts)?,
        "blockquote" => {
            let mut block =
                json!({"type": "blockquote", "blocks": blocks_of(&e.children, false, counts)?});
            if let Some(cite) = e.elements().find(|c| c.tag == "cite") {
                block["credit"] = rich_text(cite.children.iter(), counts);
            }
            block
        }
        "details" => {
            let summary = e.elements().find(|c| c.tag == "summary").expect("checked: a summary");
            let mut block = json!({
                "type": "details",
                "summary": rich_text(summary.children.iter(), counts),
                "blocks": blocks_of(&e.children, false, counts)?,
            });
            if e.attribute("open").is_some() {
                block["is_open"] = json!(true);
            }
            block
        }
        "table" => table_of(e, counts)?,
        other => unreachable!("{other} is a checked block"),
    })
}

/// A list: each item's label ("•", or its number in the list's type), checkbox, blocks.
fn list_of(list: &Element, counts: &mut Counts) -> Result<Value, Refusal> {
    let ordered = list.tag == "ol";
    let items: Vec<&Element> = list.elements().collect();
    let reversed = list.attribute("reversed").is_some();
    let kind = list.attribute("type").unwrap_or("1");
    let start = list.attribute("start").and_then(|s| s.parse().ok());
    let mut number: i64 = start.unwrap_or(if reversed { items.len() as i64 } else { 1 });
    let mut out = Vec::new();
    for item in items {
        counts.blocks += 1;
        if let Some(value) = item.attribute("value").and_then(|v| v.parse().ok()) {
            number = value;
        }
        let label = if ordered { format!("{}.", ordinal(number, kind)) } else { "•".to_string() };
        let mut json = json!({"label": label, "blocks": blocks_of(&item.children, false, counts)?});
        if let Some(checkbox) = item.elements().find(|e| e.tag == "input") {
            json["has_checkbox"] = json!(true);
            if checkbox.attribute("checked").is_some() {
                json["is_checked"] = json!(true);
            }
        }
        if ordered {
            json["value"] = json!(number);
            json["type"] = json!(kind);
        }
        out.push(json);
        number += if reversed { -1 } else { 1 };
    }
    Ok(json!({"type": "list", "items": out}))
}

/// A list number in the list's type: "1", "a"/"A" (letters), "i"/"I" (Roman numerals).
fn ordinal(number: i64, kind: &str) -> String {
    let letters = |n: i64| {
        let mut n = n.max(1);
        let mut out = Vec::new();
        while n > 0 {
            n -= 1;
            out.push((b'a' + (n % 26) as u8) as char);
            n /= 26;
        }
        out.iter().rev().collect::<String>()
    };
    let roman = |n: i64| {
        let mut n = n.clamp(1, 3999);
        let mut out = String::new();
        for (value, digits) in [
            (1000, "m"),
            (900, "cm"),
            (500, "d"),
            (400, "cd"),
            (100, "c"),
            (90, "xc"),
            (50, "l"),
            (40, "xl"),
            (10, "x"),
            (9, "ix"),
            (5, "v"),
            (4, "iv"),
            (1, "i"),
        ] {
            while n >= value {
                out.push_str(digits);
                n -= value;
            }
        }
        out
    };
    match kind {
        "a" => letters(number),
        "A" => letters(number).to_uppercase(),
        "i" => roman(number),
        "I" => roman(number).to_uppercase(),
        _ => number.to_string(),
    }
}

/// A table: its cells row by row, its caption, its columns checked against `MAX_COLUMNS`.
fn table_of(table: &Element, counts: &mut Counts) -> Result<Value, Refusal> {
    let mut rows = Vec::new();
    for row in table.elements().filter(|e| e.tag == "tr") {
        counts.blocks += 1;
        let cells = row.elements().map(|cell| {
            let span =
                |name: &str| cell.attribute(name).and_then(|v| v.parse::<i64>().ok()).unwrap_or(1);
            cell_of(cell, span("colspan"), span("rowspan"), counts)
        });
        rows.push(Value::Array(cells.collect()));
    }
    let mut block = json!({"type": "table", "cells": rows});
    if table_columns(&block) > MAX_COLUMNS {
        return Err(Refusal::Limit(TOO_MANY_COLUMNS));
    }
    for (attribute, field) in [("bordered", "is_bordered"), ("striped", "is_striped")] {
        if table.attribute(attribute).is_some() {
            block[field] = json!(true);
        }
    }
    if let Some(caption) = table.elements().find(|e| e.tag == "caption") {
        block["caption"] = rich_text(caption.children.iter(), counts);
    }
    Ok(block)
}

fn cell_of(cell: &Element, colspan: i64, rowspan: i64, counts: &mut Counts) -> Value {
    let mut json = Map::new();
    if !cell.children.is_empty() {
        json.insert("text".into(), rich_text(cell.children.iter(), counts));
    }
    if cell.tag == "th" {
        json.insert("is_header".into(), json!(true));
    }
    for (name, span) in [("colspan", colspan), ("rowspan", rowspan)] {
        if span > 1 {
            json.insert(name.into(), json!(span));
        }
    }
    // Both are required fields of RichBlockTableCell.
    json.insert("align".into(), json!(cell.attribute("align").unwrap_or("left")));
    json.insert("valign".into(), json!(cell.attribute("valign").unwrap_or("top")));
    Value::Object(json)
}

/// Inline content as `RichText`: a string for plain text, an object for one formatted
/// piece, an array for several.
fn rich_text<'a>(nodes: impl Iterator<Item = &'a Node>, counts: &mut Counts) -> Value {
    let mut pieces: Vec<Value> = Vec::new();
    for node in nodes {
        let piece = match node {
            Node::Text(text, _) => {
                counts.chars += text.chars().count();
                json!(text)
            }
            Node::Element(e) => inline_of(e, counts),
        };
        match (pieces.last_mut(), &piece) {
            (Some(Value::String(last)), Value::String(more)) => last.push_str(more),
            _ => pieces.push(piece),
        }
    }
    match pieces.len() {
        0 => json!(""),
        1 => pieces.pop().expect("one piece"),
        _ => Value::Array(pieces),
    }
}

fn inline_of(e: &Element, counts: &mut Counts) -> Value {
    let formatted = |kind: &str, counts: &mut Counts| json!({"type": kind, "text": rich_text(e.children.iter(), counts)});
    match e.tag.as_str() {
        "b" | "strong" => formatted("bold", counts),
        "i" | "em" => formatted("italic", counts),
        "u" | "ins" => formatted("underline", counts),
        "s" | "strike" | "del" => formatted("strikethrough", counts),
        "tg-spoiler" => formatted("spoiler", counts),
        "mark" => formatted("marked", counts),
        "sub" => formatted("subscript", counts),
        "sup" => formatted("superscript", counts),
        "code" => formatted("code", counts),
        "br" => {
            counts.chars += 1;
            json!("\n")
        }
        "tg-math" => {
            let expression = e.text();
            counts.chars += expression.chars().count();
            json!({"type": "mathematical_expression", "expression": expression})
        }
        "tg-emoji" => {
            let alternative = e.text();
            counts.chars += alternative.chars().count();
            json!({
                "type": "custom_emoji",
                "custom_emoji_id": e.attribute("emoji-id"),
                "alternative_text": alternative,
            })
        }
        "tg-time" => {
            let mut json = formatted("date_time", counts);
            json["unix_time"] = json!(e.attribute("unix").and_then(|u| u.parse::<i64>().ok()));
            json["date_time_format"] = json!(e.attribute("format").unwrap_or(""));
            json
        }
        "tg-reference" => {
            let mut json = formatted("reference", counts);
            json["name"] = json!(e.attribute("name"));
            json
        }
        "a" if e.is_anchor() => json!({"type": "anchor", "name": e.attribute("name")}),
        "a" => link_of(e, formatted("url", counts)),
        other => unreachable!("{other} is a checked inline tag"),
    }
}

/// A link as its rich text type: a URL, an e-mail address, a phone number, a user, an anchor.
fn link_of(e: &Element, mut json: Value) -> Value {
    let href = e.attribute("href").expect("checked: a link has href");
    let kind = link_kind(href).expect("checked: an allowed link");
    json["type"] = json!(kind);
    let after = |scheme: &str| href.get(scheme.len()..).unwrap_or("").to_string();
    match kind {
        "url" => json["url"] = json!(href),
        "email_address" => json["email_address"] = json!(after("mailto:")),
        "phone_number" => json["phone_number"] = json!(after("tel:")),
        "anchor_link" => json["anchor_name"] = json!(after("#")),
        _ => {
            let id: i64 = after("tg://user?id=").parse().unwrap_or(0);
            json["user"] = json!({"id": id, "is_bot": false, "first_name": ""});
        }
    }
    json
}

/// The columns of a table block: a cell counts its `colspan`, and a `rowspan` from above
/// takes its columns in the rows below. A span over `MAX_COLUMNS` counts as one more, so a
/// huge `colspan` is refused without being laid out.
pub fn table_columns(table: &Value) -> usize {
    // Rows still covered, per column, by a rowspan from above.
    let mut covered: Vec<i64> = Vec::new();
    let mut columns = 0;
    for row in table["cells"].as_array().into_iter().flatten() {
        let mut column = 0;
        for cell in row.as_array().into_iter().flatten() {
            while covered.get(column).is_some_and(|rows| *rows > 0) {
                column += 1;
            }
            let span = |name: &str| cell[name].as_i64().unwrap_or(1);
            let end = column + span("colspan").clamp(1, MAX_COLUMNS as i64 + 1) as usize;
            if covered.len() < end {
                covered.resize(end, 0);
            }
            covered[column..end].fill(span("rowspan"));
            column = end;
        }
        let width = covered.iter().rposition(|rows| *rows > 0).map_or(0, |last| last + 1);
        columns = columns.max(width.max(column));
        covered.iter_mut().for_each(|rows| *rows = (*rows - 1).max(0));
    }
    columns
}

// --- what tests look for ---

/// The blocks of type `kind` ("heading", "table", "pre", "list", "thinking",
/// "mathematical_expression", …) among `blocks` and the blocks nested in them (quotations,
/// details, list items), in reading order.
pub fn find_blocks(blocks: &[Value], kind: &str) -> Vec<Value> {
    let mut found = Vec::new();
    for block in blocks {
        if block["type"] == kind {
            found.push(block.clone());
        }
        found.extend(find_blocks(&nested_blocks(block), kind));
    }
    found
}

/// The pieces of rich text of type `kind` ("mathematical_expression" of `<tg-math>`,
/// "bold", "url", "code", …) anywhere in `blocks`: their texts, captions, credits,
/// summaries, table cells and nested blocks, in reading order.
pub fn find_inline(blocks: &[Value], kind: &str) -> Vec<Value> {
    let mut found = Vec::new();
    for block in blocks {
        for field in ["text", "summary", "caption", "credit"] {
            inline_in(&block[field], kind, &mut found);
        }
        let cells = block["cells"].as_array().into_iter().flatten();
        for cell in cells.flat_map(|row| row.as_array().into_iter().flatten()) {
            inline_in(&cell["text"], kind, &mut found);
        }
        found.extend(find_inline(&nested_blocks(block), kind));
    }
    found
}

/// The blocks directly inside a block: a quotation's or details' blocks, list items' blocks.
fn nested_blocks(block: &Value) -> Vec<Value> {
    let own = block["blocks"].as_array().into_iter().flatten();
    let items = block["items"].as_array().into_iter().flatten();
    let in_items = items.flat_map(|item| item["blocks"].as_array().into_iter().flatten());
    own.chain(in_items).cloned().collect()
}

fn inline_in(text: &Value, kind: &str, found: &mut Vec<Value>) {
    match text {
        Value::Array(pieces) => pieces.iter().for_each(|piece| inline_in(piece, kind, found)),
        Value::Object(piece) => {
            if piece.get("type").is_some_and(|t| t == kind) {
                found.push(text.clone());
            }
            if let Some(inner) = piece.get("text") {
                inline_in(inner, kind, found);
            }
        }
        _ => {}
    }
}

// --- the text a user reads ---

/// The text of a `RichText`.
pub fn plain(text: &Value) -> String {
    match text {
        Value::String(s) => s.clone(),
        Value::Array(pieces) => pieces.iter().map(plain).collect(),
        Value::Object(piece) => match piece.get("type").and_then(Value::as_str) {
            Some("mathematical_expression") => piece["expression"].as_str().unwrap_or("").into(),
            Some("custom_emoji") => piece["alternative_text"].as_str().unwrap_or("").into(),
            _ => piece.get("text").map(plain).unwrap_or_default(),
        },
        _ => String::new(),
    }
}

/// The text of a block: its lines, trimmed.
pub fn block_text(block: &Value) -> String {
    let lines = |blocks: &Value| -> Vec<String> {
        let blocks = blocks.as_array().into_iter().flatten();
        blocks.map(block_text).filter(|t| !t.is_empty()).collect()
    };
    let text = match block["type"].as_str().unwrap_or("") {
        "mathematical_expression" => block["expression"].as_str().unwrap_or("").to_string(),
        "divider" | "anchor" => String::new(),
        "list" => {
            let items = block["items"].as_array().into_iter().flatten().map(|item| {
                let checkbox = match (item["has_checkbox"] == true, item["is_checked"] == true) {
                    (false, _) => "",
                    (true, false) => "[ ] ",
                    (true, true) => "[x] ",
                };
                let label = item["label"].as_str().unwrap_or("");
                format!("{label} {checkbox}{}", lines(&item["blocks"]).join("\n"))
            });
            items.collect::<Vec<_>>().join("\n")
        }
        "blockquote" => {
            let mut text = lines(&block["blocks"]);
            if let Some(credit) = block.get("credit") {
                text.push(format!("— {}", plain(credit).trim()));
            }
            text.join("\n")
        }
        "details" => [vec![plain(&block["summary"])], lines(&block["blocks"])].concat().join("\n"),
        "table" => {
            let caption = block.get("caption").map(plain).into_iter();
            let rows = block["cells"].as_array().into_iter().flatten().map(|row| {
                let cells = row.as_array().into_iter().flatten();
                cells
                    .map(|c| c.get("text").map(plain).unwrap_or_default().trim().to_string())
                    .collect::<Vec<_>>()
                    .join(" | ")
            });
            caption.chain(rows).collect::<Vec<_>>().join("\n")
        }
        _ => plain(&block["text"]),
    };
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(html: &str) -> String {
        match parse(html, false) {
            Ok(rich) => panic!("accepted {html}: {rich:?}"),
            Err(refusal) => refusal.description(),
        }
    }

    fn detail(html: &str) -> String {
        let description = err(html);
        let detail = description.strip_prefix("Bad Request: can't parse rich message: ");
        detail.unwrap_or_else(|| panic!("{html}: {description}")).to_string()
    }

    fn blocks(html: &str) -> Vec<Value> {
        parse(html, false).unwrap_or_else(|e| panic!("{html}: {}", e.description())).blocks
    }

    #[test]
    fn every_documented_block_becomes_its_rich_block() {
        let html = "<h2>Закон Ома</h2><p>Ток: <tg-math>I = U / R</tg-math>, <b>жирно</b></p>\
            <tg-math-block>E = mc^2</tg-math-block><hr/><footer>f</footer><aside>a</aside>\
            <pre><code class=\"language-rust\">fn main() {}</code></pre><pre>plain</pre>";
        let got = blocks(html);
        assert_eq!(got[0], json!({"type": "heading", "text": "Закон Ома", "size": 2}));
        assert_eq!(
            got[1],
            json!({"type": "paragraph", "text": [
                "Ток: ",
                {"type": "mathematical_expression", "expression": "I = U / R"},
                ", ",
                {"type": "bold", "text": "жирно"},
            ]})
        );
        assert_eq!(got[2], json!({"type": "mathematical_expression", "expression": "E = mc^2"}));
        assert_eq!(got[3], json!({"type": "divider"}));
        assert_eq!(got[5], json!({"type": "pullquote", "text": "a"}));
        assert_eq!(got[6], json!({"type": "pre", "text": "fn main() {}", "language": "rust"}));
        assert_eq!(got[7], json!({"type": "pre", "text": "plain"}));
    }

    #[test]
    fn lists_tables_quotes_and_details() {
        let rich = parse(
            "<ol start=\"3\"><li>a<ul><li><input type=\"checkbox\" checked/> done</li>\
             <li><input type=checkbox> todo</li></ul></li><li>b</li></ol>\
             <table bordered><caption>T</caption><tr><th colspan=\"2\">h</th></tr>\
             <tr><td align=\"right\">1</td><td>2</td></tr></table>\
             <blockquote>q<br>r<cite>Автор</cite></blockquote>\
             <details open><summary>S</summary><p>hidden</p></details>",
            false,
        )
        .unwrap();
        assert_eq!(
            rich.text,
            "3. a\n• [x] done\n• [ ] todo\n4. b\nT\nh\n1 | 2\nq\nr\n— Автор\nS\nhidden"
        );
        let list = &rich.blocks[0];
        assert_eq!(list["items"][0]["label"], "3.");
        assert_eq!(list["items"][0]["blocks"][1]["items"][0]["is_checked"], true);
        assert_eq!(rich.blocks[1]["cells"][0][0]["colspan"], 2);
        assert_eq!(rich.blocks[1]["cells"][1][0]["align"], "right");
        assert_eq!(rich.blocks[2]["credit"], "Автор");
        assert_eq!(rich.blocks[3]["is_open"], true);
        // ol; li "a" and its paragraph, the ul, two items and their paragraphs; li "b" and
        // its paragraph; table, two rows; blockquote and its paragraph; details and its p.
        assert_eq!(rich.block_count, 17);
    }

    #[test]
    fn unknown_tags_attributes_and_misplaced_tags_are_refused() {
        assert_eq!(
            detail("<p>a<span>b</span></p>"),
            "Unsupported start tag \"span\" at byte offset 4"
        );
        assert_eq!(detail("<div>x</div>"), "Unsupported start tag \"div\" at byte offset 0");
        assert_eq!(
            detail("<p class=\"x\">a</p>"),
            "Unsupported attribute \"class\" in the tag \"p\" at byte offset 0"
        );
        assert_eq!(detail("plain"), "Text at byte offset 0 is not allowed at the top level");
        assert_eq!(
            detail("<b>x</b>"),
            "Tag \"b\" at byte offset 0 is not allowed at the top level"
        );
        assert_eq!(detail("<p><p>x</p></p>"), "Tag \"p\" at byte offset 3 is not allowed in <p>");
        assert_eq!(
            detail("<p>a<br>b</p>"),
            "Tag \"br\" at byte offset 4 is allowed only in <blockquote>"
        );
        assert_eq!(
            detail("<li>x</li>"),
            "Tag \"li\" at byte offset 0 is not allowed at the top level"
        );
        assert_eq!(detail("<ul>x<li>y</li></ul>"), "Text at byte offset 4 is not allowed in <ul>");
        assert_eq!(
            detail("<p><code class=\"language-c\">x</code></p>"),
            "Unsupported attribute \"class\" in the tag \"code\" at byte offset 3"
        );
        assert_eq!(
            detail("<p><code><b>x</b></code></p>"),
            "Tag \"b\" at byte offset 9 is not allowed in <code>"
        );
        assert_eq!(
            detail("<p><tg-math>a<sup>2</sup></tg-math></p>"),
            "Tag \"sup\" at byte offset 13 is not allowed in <tg-math>"
        );
        assert_eq!(
            detail("<p>a<tg-thinking>x</tg-thinking></p>"),
            "Unsupported start tag \"tg-thinking\" at byte offset 4"
        );
        assert!(parse("<tg-thinking>Думаю…</tg-thinking>", true).is_ok());
        assert_eq!(
            detail("<details><p>x</p></details>"),
            "Tag \"details\" at byte offset 0 must start with its only <summary>"
        );
        assert_eq!(detail("<ul></ul>"), "Tag \"ul\" at byte offset 0 has no <li>");
        assert_eq!(
            detail("<table><tr><td>1</td></tr><caption>c</caption></table>"),
            "Tag \"table\" at byte offset 0 must start with its only <caption>"
        );
        assert_eq!(
            detail("<pre>x<code>y</code></pre>"),
            "Text at byte offset 5 is not allowed in <pre>"
        );
        assert_eq!(
            detail("<p/>"),
            "Tag \"p\" at byte offset 0 can't close itself: only <br/>, <hr/> and <input/> do"
        );
    }

    #[test]
    fn tags_must_balance() {
        assert_eq!(
            detail("<p><b><i>x</b></i></p>"),
            "Unmatched end tag at byte offset 10, expected \"</i>\", found \"</b>\""
        );
        assert_eq!(detail("<p>x</p></p>"), "Unexpected end tag at byte offset 8");
        assert_eq!(detail("<p>x"), "Can't find end tag corresponding to start tag \"p\"");
        assert_eq!(
            detail("<p>x</>"),
            "Unmatched end tag at byte offset 4, expected \"</p>\", found \"</>\""
        );
        assert_eq!(detail("<p>a < b</p>"), "Unsupported start tag \"\" at byte offset 5");
        assert_eq!(detail("<p>AT&T</p>"), "Unsupported HTML entity at byte offset 5");
        assert_eq!(detail("<p>&copy;</p>"), "Unsupported HTML entity at byte offset 3");
        let text =
            parse("<p>&lt;&amp;&nbsp;&hellip;&mdash;&#8364;&#x41;&apos;</p>", false).unwrap().text;
        assert_eq!(text, "<&\u{a0}…—€A'");
    }

    #[test]
    fn attributes_are_checked() {
        assert_eq!(
            detail("<p><a href=\"javascript:alert(1)\">x</a></p>"),
            "Invalid value \"javascript:alert(1)\" of the attribute \"href\" in the tag \"a\" at byte offset 3"
        );
        assert_eq!(
            detail("<p><a>x</a></p>"),
            "Tag \"a\" at byte offset 3 must have either href or name"
        );
        assert_eq!(
            detail("<p><a name=\"n\">x</a></p>"),
            "Tag \"a\" with a name at byte offset 3 must be empty"
        );
        assert_eq!(
            detail("<p><tg-emoji emoji-id=\"x\">👍</tg-emoji></p>"),
            "Invalid custom emoji identifier specified"
        );
        assert_eq!(detail("<p><tg-time>x</tg-time></p>"), "Invalid Unix time specified");
        assert_eq!(
            detail("<table><tr><td colspan=\"0\">x</td></tr></table>"),
            "Invalid value \"0\" of the attribute \"colspan\" in the tag \"td\" at byte offset 11"
        );
        assert_eq!(
            detail("<ol type=\"x\"><li>a</li></ol>"),
            "Invalid value \"x\" of the attribute \"type\" in the tag \"ol\" at byte offset 0"
        );
        assert_eq!(
            detail("<ul><li value=\"2\">a</li></ul>"),
            "Unsupported attribute \"value\" in the tag \"li\" at byte offset 4"
        );
        assert_eq!(
            detail("<details open=\"no\"><summary>s</summary></details>"),
            "Invalid value \"no\" of the attribute \"open\" in the tag \"details\" at byte offset 0"
        );
        assert_eq!(
            detail("<p><a href=\"#a\" href=\"#b\">x</a></p>"),
            "Duplicate attribute \"href\" in the tag \"a\" at byte offset 3"
        );
        for href in [
            "https://e.com",
            "http://e.com/?a=1&amp;b",
            "mailto:a@b.c",
            "tel:+100",
            "tg://user?id=42",
            "#top",
            "#",
        ] {
            assert!(parse(&format!("<p><a href=\"{href}\">x</a></p>"), false).is_ok(), "{href}");
        }
        for href in ["ftp://e.com", "https://", "tg://resolve?domain=x", "e.com", "file:///etc"] {
            assert!(parse(&format!("<p><a href=\"{href}\">x</a></p>"), false).is_err(), "{href}");
        }
    }

    #[test]
    fn media_blocks_are_refused_with_their_url() {
        assert_eq!(
            parse("<p>x</p><img src=\"http://evil.example/a.png\">", false),
            Err(Refusal::Media {
                tag: "img".into(),
                offset: 8,
                url: Some("http://evil.example/a.png".into())
            })
        );
        for tag in MEDIA {
            assert!(
                matches!(parse(&format!("<{tag}></{tag}>"), false), Err(Refusal::Media { .. })),
                "{tag}"
            );
        }
    }

    #[test]
    fn limits() {
        let chars = |n: usize| format!("<p>{}</p>", "ж".repeat(n));
        assert_eq!(parse(&chars(MAX_CHARS), false).map(|r| r.chars), Ok(MAX_CHARS));
        assert_eq!(parse(&chars(MAX_CHARS + 1), false), Err(Refusal::Limit(TOO_LONG)));
        let formula = format!("<p>{}<tg-math>x</tg-math></p>", "ж".repeat(MAX_CHARS));
        assert_eq!(parse(&formula, false), Err(Refusal::Limit(TOO_LONG)), "formulas count");
        let ps = |n: usize| "<p>x</p>".repeat(n);
        assert!(parse(&ps(MAX_BLOCKS), false).is_ok());
        assert_eq!(parse(&ps(MAX_BLOCKS + 1), false), Err(Refusal::Limit(TOO_MANY_BLOCKS)));
        let row = |n: usize| format!("<table><tr>{}</tr></table>", "<td>x</td>".repeat(n));
        assert!(parse(&row(MAX_COLUMNS), false).is_ok());
        assert_eq!(parse(&row(MAX_COLUMNS + 1), false), Err(Refusal::Limit(TOO_MANY_COLUMNS)));
        let spans = "<table><tr><td colspan=\"19\">a</td><td rowspan=\"2\">b</td></tr>\
            <tr><td colspan=\"19\">c</td><td>d</td></tr></table>";
        assert_eq!(
            parse(spans, false),
            Err(Refusal::Limit(TOO_MANY_COLUMNS)),
            "a rowspan takes its column below"
        );
        // Eight nested lists are 16 levels (each <ul> and <li> is one).
        let nested = |n: usize| format!("{}x{}", "<ul><li>".repeat(n), "</li></ul>".repeat(n));
        assert!(parse(&nested(8), false).is_ok());
        assert_eq!(
            parse(
                &format!(
                    "{}x{}",
                    "<ul><li>".repeat(8) + "<p>",
                    "</p>".to_string() + &"</li></ul>".repeat(8)
                ),
                false
            ),
            Err(Refusal::Limit(TOO_DEEP))
        );
        let deep_bold = format!("<p>{}x{}</p>", "<b>".repeat(200), "</b>".repeat(200));
        assert!(detail(&deep_bold).starts_with("Tags nested more than 100 deep"));
    }

    /// What tests look for: blocks and inline pieces at any depth, a table's columns.
    #[test]
    fn finders_see_nested_blocks_and_inline_pieces() {
        let rich = blocks(
            "<h2>Итог</h2><blockquote><p>Пусть <tg-math>a^2</tg-math></p>\
             <tg-math-block>E=mc^2</tg-math-block></blockquote>\
             <ul><li><input type=\"checkbox\" checked> <b>сделано</b></li>\
             <li><input type=\"checkbox\"> нет</li></ul>\
             <table><tr><td colspan=\"2\">a</td><td rowspan=\"2\"><i>b</i></td></tr>\
             <tr><td>c</td></tr></table>",
        );
        assert_eq!(find_blocks(&rich, "heading")[0]["size"], 2);
        let formulas = find_blocks(&rich, "mathematical_expression");
        assert_eq!(formulas.len(), 1, "the inline formula is not a block: {formulas:?}");
        assert_eq!(formulas[0]["expression"], "E=mc^2");
        let inline = find_inline(&rich, "mathematical_expression");
        assert_eq!(inline, [json!({"type": "mathematical_expression", "expression": "a^2"})]);
        assert_eq!(find_inline(&rich, "bold")[0]["text"], "сделано");
        assert_eq!(find_inline(&rich, "italic")[0]["text"], "b", "table cells are searched");
        let items = &find_blocks(&rich, "list")[0]["items"];
        let checked = |i: usize| (items[i]["has_checkbox"] == true, items[i]["is_checked"] == true);
        assert_eq!((checked(0), checked(1)), ((true, true), (true, false)));
        let table = &find_blocks(&rich, "table")[0];
        assert_eq!(table_columns(table), 3);
        assert_eq!(table_columns(&json!({"type": "table", "cells": []})), 0);
    }
}
