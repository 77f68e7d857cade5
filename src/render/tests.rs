//! The renderer's tests: examples of what it makes of Markdown and where it cuts, and in
//! `render_properties` what any input becomes.

use super::split::*;
use super::*;

/// The entities the renderer writes, which Telegram and `visible_text` read alike.
const ENTITIES: [(&str, char); 4] = [("&lt;", '<'), ("&gt;", '>'), ("&amp;", '&'), ("&quot;", '"')];

/// An open tag: its name, where in the text it opened, and for a `<pre>` where its `<code>`
/// closed.
type Open<'a> = (&'a str, usize, Option<usize>);

/// The text Telegram shows for `html`, or why its parser would refuse it or drop some of its
/// formatting: only Telegram's tags, with only the attributes the renderer writes; balanced,
/// nested as Telegram allows; every `<`, `>`, `&` of the text and the attributes escaped.
fn telegram_text(html: &str) -> Result<String, String> {
    let (mut text, mut open, mut rest) = (String::new(), Vec::new(), html);
    while let Some(c) = rest.chars().next() {
        let len = match c {
            '<' => {
                let len = rest.find('>').ok_or("an unclosed tag")? + 1;
                match rest[1..len - 1].strip_prefix('/') {
                    Some(name) => close_tag(name, &mut open, text.len())?,
                    None => open_tag(&rest[1..len - 1], &mut open, text.len())?,
                }
                len
            }
            '&' => {
                let entity = ENTITIES.iter().find(|(entity, _)| rest.starts_with(entity));
                let (entity, ch) = entity.ok_or("a bare &")?;
                text.push(*ch);
                entity.len()
            }
            '>' => return Err("a bare >".into()),
            _ => {
                text.push(c);
                c.len_utf8()
            }
        };
        rest = &rest[len..];
    }
    match open.last() {
        Some((name, ..)) => Err(format!("<{name}> is not closed")),
        None => Ok(text),
    }
}

/// A start tag (what is between `<` and `>`), if Telegram takes it where it is: nothing in a
/// `<code>` or `<pre>` but a `<code>` that opens the `<pre>`, no link or code in a link, no
/// quote in a quote.
fn open_tag<'a>(tag: &'a str, open: &mut Vec<Open<'a>>, at: usize) -> Result<(), String> {
    let (name, attributes) = tag.split_once(' ').unwrap_or((tag, ""));
    let attribute = match name {
        "b" | "i" | "u" | "s" | "pre" | "blockquote" | "tg-spoiler" => "",
        "a" => "href=\"",
        "code" => "class=\"language-",
        _ => return Err(format!("the tag <{name}>")),
    };
    if !attributes.is_empty() || name == "a" {
        let value = attributes.strip_prefix(attribute).and_then(|v| v.strip_suffix('"'));
        let escaped = |v: &str| {
            let entity = |i: usize| ENTITIES.iter().any(|(e, _)| v[i..].starts_with(e));
            !v.contains(['"', '<', '>']) && v.match_indices('&').all(|(i, _)| entity(i))
        };
        if attribute.is_empty() || !value.is_some_and(escaped) {
            return Err(format!("the attributes of <{tag}>"));
        }
    }
    let inside = |names: &[&str]| open.iter().any(|(n, ..)| names.contains(n));
    let opens_pre = matches!(open.last(), Some(&("pre", start, None)) if start == at);
    if inside(&["code", "pre"]) && !(name == "code" && opens_pre) {
        return Err(format!("<{name}> inside code"));
    }
    if inside(&["a"]) && ["a", "code", "pre"].contains(&name) {
        return Err(format!("<{name}> inside a link"));
    }
    if inside(&["blockquote"]) && name == "blockquote" {
        return Err("a quote inside a quote".into());
    }
    open.push((name, at, None));
    Ok(())
}

/// An end tag, if it closes the innermost open tag (and a `<pre>`'s `<code>` wraps it whole).
fn close_tag(name: &str, open: &mut Vec<Open>, at: usize) -> Result<(), String> {
    match open.pop() {
        None => Err(format!("</{name}> closes nothing")),
        Some((opened, ..)) if opened != name => Err(format!("</{name}> closes <{opened}>")),
        Some((_, _, Some(code_end))) if code_end != at => Err("text after </code> in <pre>".into()),
        Some(_) => {
            if let (Some(("pre", _, code_end)), "code") = (open.last_mut(), name) {
                *code_end = Some(at);
            }
            Ok(())
        }
    }
}

/// Panics unless Telegram's parser takes `html` as it is (see `telegram_text`).
fn assert_valid(html: &str) {
    if let Err(why) = telegram_text(html) {
        panic!("Telegram would refuse or change {html:?}: {why}");
    }
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
    assert_eq!(split_checked("<b>aaaa bbbb</b>", 5), ["<b>aaaa </b>", "<b>bbbb</b>"]);
    assert_eq!(split_checked("<b>aaaa </b><i>bb</i>", 5), ["<b>aaaa </b>", "<i>bb</i>"]);
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
    assert_eq!(split_checked("ёe\u{301}e\u{301}", 2), ["ё", "e\u{301}", "e\u{301}"]);
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
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    for _ in 0..300 {
        let markdown: String = (0..random() % 80).map(|_| parts[random() % parts.len()]).collect();
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

/// The most tags open at once in `html` (every `<` of its text is escaped, so each is a tag).
fn tag_depth(html: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0);
    for (at, _) in html.match_indices('<') {
        if html[at..].starts_with("</") {
            depth = depth.saturating_sub(1);
        } else {
            depth += 1;
            deepest = deepest.max(depth);
        }
    }
    deepest
}

#[test]
fn deep_lists_are_flattened_at_four_levels() {
    #[rustfmt::skip]
    let cases = [
        ("- - - - - - x", "• \n  ◦ \n    ◦ \n      ◦ x"),
        ("1. 1. 1. 1. 1. 1. x", "1. \n  1. \n    1. \n      1. x"),
        ("- a\n  - b\n    - c\n      - d\n        - e\n          - f", "• a\n  ◦ b\n    ◦ c\n      ◦ d\n      ◦ e\n      ◦ f"),
        ("- a\n  - - - - - - b\n  - c", "• a\n  ◦ \n    ◦ \n      ◦ b\n  ◦ c"),
        ("- - - - - - [x] b\n      - [ ] c", "• \n  ◦ \n    ◦ \n      ☑ b\n      ☐ c"),
        ("- > * - > * x", "• <blockquote>\n  ◦ \n    ◦ \n      ◦ x</blockquote>"),
    ];
    assert_renders(&cases);
}

#[test]
fn emphasis_nested_in_itself_opens_one_tag() {
    #[rustfmt::skip]
    let cases = [
        ("**a **b **c** d** e**", "<b>a b c d e</b>"),
        ("*a *b* c* ~~a ~~b~~ c~~", "<i>a b c</i> <s>a b c</s>"),
        ("***~~a ***~~b~~*** c~~***", "<i><b><s>a b c</s></b></i>"),
        ("# **x** y\n\n| **A** | B |\n|-|-|\n| **1** | 2 |", "<b>x y</b>\n\n<b>A | B</b>\n<b>1</b> | 2"),
    ];
    assert_renders(&cases);
}

/// Hostile answers: whatever the nesting, the HTML grows with the answer's length, keeps few
/// tags open, and a short answer stays a few messages.
#[test]
fn deep_nesting_costs_only_the_answer_length() {
    let list_50: String = (0..50).map(|d| format!("{}- item {d}\n", "  ".repeat(d))).collect();
    let emphasis = |open: &str, close: &str, n| open.repeat(n) + "x" + &close.repeat(n);
    #[rustfmt::skip]
    let cases: [(String, usize); 9] = [
        ("- ".repeat(6000) + "x", 1),
        ("1. ".repeat(3000) + "x", 1),
        ("> ".repeat(6000) + "x", 1),
        (emphasis("*", "*", 5000), 1),
        ("**a ".repeat(3000), 3),
        (emphasis("**a ", "** b", 3000), 3),
        (emphasis("***~~a ", "~~*** b", 1000), 2),
        ("- > * ".repeat(2000) + "x", 1),
        (list_50, 1),
    ];
    let mut wrong = Vec::new();
    for (markdown, messages) in &cases {
        let label = markdown.chars().take(24).collect::<String>();
        let html = markdown_to_html(markdown);
        let depth = tag_depth(&html);
        if html.len() > 4 * markdown.len() + 64 || depth > 8 {
            wrong.push(format!("{label:?}: {} bytes, {depth} tags open", html.len()));
            continue;
        }
        assert_valid(&html);
        let chunks = split_checked(&html, MESSAGE_LIMIT);
        if chunks.len() > *messages {
            wrong.push(format!("{label:?}: {} messages", chunks.len()));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// `split_html` as it was before it streamed, kept as the oracle that the cuts did not change:
/// vectors of every piece and character of the whole HTML, cut by global index.
fn split_reference(html: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(1);
    let pieces: Vec<Piece> = pieces(html, 0).map(|(_, piece)| piece).collect();
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
    let mut chunks = Vec::new();
    let mut stack: Vec<(&str, &str)> = Vec::new();
    let (mut start, mut from) = (0, 0);
    while start < chars.len() {
        let end = match chars.len() - start <= limit {
            true => chars.len(),
            false => find_cut_reference(&chars, start, limit),
        };
        let mut to = pieces.len();
        if end < chars.len() {
            to = piece_of[end - 1] + 1;
            while matches!(pieces.get(to), Some(Piece::Close { .. })) {
                to += 1;
            }
        }
        let mut chunk: String = stack.iter().map(|(raw, _)| *raw).collect();
        for piece in &pieces[from..to] {
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
        if !chars[start..end].iter().all(|c| c.is_whitespace()) {
            chunks.push(chunk);
        }
        start = end;
        from = to;
    }
    chunks
}

/// `find_cut` as it was, over the whole text's characters.
fn find_cut_reference(chars: &[char], start: usize, limit: usize) -> usize {
    let hard = start + limit;
    let mut latest: [Option<usize>; 4] = [None; 4];
    let mut newlines = 0;
    let mut in_space = false;
    let mut last_visible: Option<char> = None;
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
    let last_half = start + limit / 2;
    let in_last_half = latest.iter().flatten().find(|&&k| k >= last_half);
    if let Some(&k) = in_last_half.or(latest.iter().flatten().next()) {
        return k;
    }
    let mut k = hard;
    while k > start && joins(chars[k - 1], chars[k]) {
        k -= 1;
    }
    if k == start { hard } else { k }
}

/// Markdown of about `bytes` bytes from pieces that reach every kind of cut: paragraphs,
/// lines, sentences, spaces, words and blank runs longer than a message, emoji, tags, entities.
fn random_answer(seed: u64, bytes: usize) -> String {
    #[rustfmt::skip]
    let parts = [
        "word ", "слово ", "Привет, мир! ", "😀", "👍🏽", "👩‍💻", "🇷🇺🇷🇺", "e\u{301}", "**", "*", "~~",
        "`", "\n", "\n\n", "- ", "  - ", "1. ", "> ", "# ", "```rust\n", "<", "&", "&amp;", ". ",
        "? ", "…", "[l](https://x.y/\"q\") ", "|a|b|\n|-|-|\n", "\t", "\u{a0}",
    ];
    let runs = ["x", " ", "\n", "😀", "ab "];
    let mut state = seed;
    let mut random = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    let mut markdown = String::new();
    while markdown.len() < bytes {
        match random() % 200 {
            0 => markdown.push_str(&runs[random() % runs.len()].repeat(random() % 6000)),
            _ => markdown.push_str(parts[random() % parts.len()]),
        }
    }
    markdown
}

#[test]
fn split_cuts_where_it_did_before_it_streamed() {
    #[rustfmt::skip]
    let html = [
        "<b>aaaa bbbb</b>", "<b>aaaa </b><i>bb</i>", "<pre>aaaa   </pre>", "a<b></b> <i>b</i>c",
        "aa</i></b><b>bb</b>", "<blockquote><a href=\"x\">aa <i>bb</i></a> cc</blockquote>",
    ];
    for html in html {
        for limit in 0..12 {
            assert_eq!(
                split_html(html, limit),
                split_reference(html, limit),
                "{html:?} at {limit}"
            );
        }
    }
    for seed in 0..200 {
        let html = markdown_to_html(&random_answer(seed, 300));
        for limit in [1, 2, 3, 5, 17, 60, 200] {
            let context = format!("seed {seed} at {limit}: {html:?}");
            assert_eq!(split_html(&html, limit), split_reference(&html, limit), "{context}");
        }
    }
}

#[test]
fn split_of_a_long_answer_cuts_where_it_did_before() {
    let html = markdown_to_html(&random_answer(7, 1 << 20));
    assert!(html.len() >= 1 << 20);
    for limit in [MESSAGE_LIMIT, 500] {
        let chunks = split_html(&html, limit);
        assert!(chunks.len() > (1 << 20) / 2 / limit, "{} chunks at {limit}", chunks.len());
        assert!(chunks == split_reference(&html, limit), "the chunks differ at {limit}");
    }
}

/// A line's container markers past sixteen are dropped before parsing (the parser's memory
/// grows with each); a line within that, and everything else, stays as it is.
#[test]
fn lines_nested_past_sixteen_markers_are_cut_to_sixteen() {
    let cases: &[(&str, &str)] = &[
        ("- a\n  - b\n> c", "- a\n  - b\n> c"),
        ("- - - x", "- - - x"),
        ("-x - y", "-x - y"),
        ("1. 2) > * + x", "1. 2) > * + x"),
        ("1234567890. x", "1234567890. x"),
    ];
    for (markdown, expected) in cases {
        assert_eq!(flatten_deep_lines(markdown), *expected, "{markdown:?}");
    }
    let deep = format!("{}x\nnext", "- ".repeat(5000));
    assert_eq!(flatten_deep_lines(&deep), format!("{}x\nnext", "- ".repeat(16)));
    let quotes = format!("{}x", ">".repeat(100));
    assert_eq!(flatten_deep_lines(&quotes), format!("{}x", ">".repeat(16)));
    let mixed = format!("{}x\n", "1. > * ".repeat(10));
    let kept = format!("{}1. ", "1. > * ".repeat(5)); // sixteen markers
    assert_eq!(flatten_deep_lines(&mixed), format!("{kept}x\n"));
}

/// Properties: any Markdown, cut at any limit, becomes messages Telegram accepts, each at most
/// the limit long, which together show the whole answer.
///
/// proptest generates the inputs and shrinks a failure to a small one. The strategies mix
/// arbitrary characters with alphabets of the pieces that matter (Markdown, HTML, entities,
/// emoji), so that the rare cases come often. `PROPTEST_CASES=N` sets the case counts for a
/// longer search; a failing case is saved in `tests/proptest-regressions/render.txt` and tried
/// first on every later run: commit that file, as proptest recommends.
mod render_properties {
    use proptest::collection::vec;
    use proptest::prelude::*;
    use proptest::sample::select;
    use proptest::test_runner::{FileFailurePersistence, TestCaseResult};

    use super::super::{MESSAGE_LIMIT, markdown_to_html, split_html, visible_text};
    use super::telegram_text;

    /// `default` cases, or `PROPTEST_CASES` when it is set; failures saved with the other seeds.
    fn config(default: u32) -> ProptestConfig {
        let cases =
            std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
        let saved = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/proptest-regressions/render.txt");
        ProptestConfig {
            failure_persistence: Some(Box::new(FileFailurePersistence::Direct(saved))),
            ..ProptestConfig::with_cases(cases)
        }
    }

    /// Words and characters that catch mistakes: Cyrillic, emoji (with skin tones, ZWJ
    /// sequences, flags), combining accents, a NUL, a BOM, the replacement character.
    #[rustfmt::skip]
    const WORDS: &[&str] = &[
        "", "a", "слово", "Привет", "ёжик", "😀", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "🇷🇺", "🏳️‍🌈", "e\u{301}",
        "\u{200D}", "\u{FE0F}", "\u{a0}", "\0", "\u{feff}", "\u{FFFD}", "\u{2028}", "\r\n", "\t", "0",
        "-1", "1.5", "https://example.com/?a=1&b=2", "/start", "/mode fairy", "@SomeBot", "<b>", "&amp;",
    ];

    fn text(max_chars: usize) -> BoxedStrategy<String> {
        prop_oneof![
            select(WORDS).prop_map(str::to_string),
            vec(any::<char>(), 0..max_chars).prop_map(String::from_iter),
        ]
        .boxed()
    }

    /// Pieces of GigaChat-style Markdown, raw HTML, entities and text that reach the renderer's
    /// special cases: emphasis, code, headings, quotes, lists, links, tables, breaks.
    #[rustfmt::skip]
    const MARKDOWN: &[&str] = &[
        "*", "**", "_", "__", "~~", "`", "``", "```", "```rust\n", "```\n", "~~~", "#", "# ", "## ",
        ">", "> ", ">> ", "-", "- ", "* ", "+ ", "1.", "1. ", "3) ", "- [ ] ", "- [x] ",
        "[", "]", "](", ")", "](https://e.com)", "[a](https://e.com/?q=\"x\"&y=1)",
        "[b](javascript:alert(1))", "![i](https://e.com/i.png)", "[c]: https://e.com",
        "<https://a.b>", "<me@x.org>", "<", ">", "&", "&amp;", "&lt;", "&gt;", "&quot;", "&#128512;",
        "&#x41;", "&#0;", "&#xD800;", "&nbsp;", "&bogus;", "&#", "<b>", "</b>", "</i>", "<br>",
        "<pre>", "</code>", "<a href=\"x\">", "<tg-spoiler>", "<!-- c -->", "\"", "'", "\\", "|",
        "| a | b |\n|---|---|\n", "---\n", "\n", "\n\n", "\r\n", "\r", "\t", " ", "  ", "    ",
        "word", "слово", "Привет, мир", "ёж", ".", ". ", "! ", "? ", "…", "😀", "👍🏽", "👩‍💻",
        "👨‍👩‍👧‍👦", "🇷🇺", "🏳️‍🌈", "e\u{301}", "\u{200D}", "\u{FE0F}", "\u{a0}", "\0", "\u{FFFD}",
    ];

    /// Runs of one piece: long words, emoji without spaces, long blank runs.
    #[rustfmt::skip]
    const RUNS: &[&str] = &[
        "x", "я", "😀", "👩‍💻", "🇷🇺", "e\u{301}", " ", "\n", "\u{a0}", "&", "<", "*", "`", "ab ",
    ];

    fn markdown(max_pieces: usize, max_run: usize) -> BoxedStrategy<String> {
        let piece = prop_oneof![
            16 => select(MARKDOWN).prop_map(str::to_string),
            2 => any::<char>().prop_map(String::from),
            1 => (select(RUNS), 1..max_run).prop_map(|(run, n)| run.repeat(n)),
        ];
        vec(piece, 0..max_pieces).prop_map(|pieces| pieces.concat()).boxed()
    }

    /// Inputs of up to a few messages (about 20 000 characters): stretches of Markdown and runs
    /// longer than a message, so that cuts fall at Telegram's real limit.
    fn long_markdown() -> BoxedStrategy<String> {
        let stretch = prop_oneof![
            4 => markdown(500, 8),
            1 => (select(RUNS), 1..6000usize).prop_map(|(run, n)| run.repeat(n)),
        ];
        vec(stretch, 0..10).prop_map(|stretches| stretches.concat()).boxed()
    }

    /// The checker these properties rely on refuses what Telegram refuses or would change, and
    /// reads the text as Telegram does.
    #[test]
    fn the_checker_sees_what_telegram_refuses() {
        #[rustfmt::skip]
        let refused = [
            "<br>", "<b>x", "<b>x</i>", "x</b>", "a < b", "x > y", "AT&T", "&nbsp;", "&#65;",
            "<b class=\"x\">x</b>", "<a>x</a>", "<a href=x>x</a>", "<a href=\"a\"b\">x</a>",
            "<a href=\"a&b\">x</a>", "<code class=\"rust\">x</code>", "<code><b>x</b></code>",
            "<pre>x<code>y</code></pre>", "<pre><code>x</code>y</pre>", "<pre><i>x</i></pre>",
            "<a href=\"x\"><a href=\"y\">z</a></a>", "<a href=\"x\"><code>y</code></a>",
            "<blockquote><b><blockquote>x</blockquote></b></blockquote>",
        ];
        for html in refused {
            assert!(telegram_text(html).is_err(), "{html:?}");
        }
        let html = "<blockquote><a href=\"https://e.com/?a=1&amp;b=&quot;2&quot;\">a <i>b</i></a> \
            c</blockquote><pre><code class=\"language-c++\">&lt;x&gt;</code></pre> &amp;";
        assert_eq!(telegram_text(html).as_deref(), Ok("a b c<x> &"));
    }

    /// Renders, splits at `limit`, and checks every chunk and the chunks together.
    fn check_split(markdown: &str, limit: usize) -> TestCaseResult {
        let html = markdown_to_html(markdown);
        let whole = visible_text(&html);
        telegram_accepts(&html, &whole)?;
        let chunks = split_html(&html, limit);
        let mut texts = Vec::new();
        for chunk in &chunks {
            let text = visible_text(chunk);
            telegram_accepts(chunk, &text)?;
            let length = text.chars().count();
            prop_assert!(length <= limit, "{length} characters > {limit}: {chunk:?}");
            prop_assert!(!text.trim().is_empty(), "a blank message: {chunk:?}");
            texts.push(text);
        }
        joined_is_whole(&whole, &texts, limit)
    }

    /// Telegram's HTML parser takes `html` as it is, and the text it shows (before its own
    /// trimming) is `visible`, as `visible_text` decodes it.
    fn telegram_accepts(html: &str, visible: &str) -> TestCaseResult {
        match telegram_text(html) {
            Ok(text) => prop_assert_eq!(text, visible, "Telegram shows another text: {:?}", html),
            Err(why) => prop_assert!(false, "Telegram refuses {html:?}: {why}"),
        }
        Ok(())
    }

    /// The chunks' texts, joined, are the whole text, except for what `split_html` documents:
    /// a run of whitespace that would be a message of its own is dropped ("no blank message").
    /// Such a run needs a cut forced inside it, so the chunk before it, if any, is full.
    fn joined_is_whole(whole: &str, texts: &[String], limit: usize) -> TestCaseResult {
        let mut rest = whole;
        for (i, text) in texts.iter().enumerate() {
            // The one place where `text` can start after nothing but whitespace.
            let start = rest
                .char_indices()
                .find(|&(at, c)| rest[at..].starts_with(text.as_str()) || !c.is_whitespace())
                .map(|(at, _)| at)
                .filter(|&at| rest[at..].starts_with(text.as_str()));
            let Some(start) = start else {
                return Err(TestCaseError::fail(format!(
                    "chunk {i} {text:?} is not what follows in the whole text: {rest:?}"
                )));
            };
            if start > 0 && i > 0 {
                let before = texts[i - 1].chars().count();
                prop_assert_eq!(
                    before,
                    limit,
                    "whitespace {:?} dropped after a chunk that is not full",
                    &rest[..start]
                );
            }
            rest = &rest[start + text.len()..];
        }
        prop_assert!(rest.chars().all(char::is_whitespace), "text lost at the end: {rest:?}");
        if let (false, Some(last)) = (rest.is_empty(), texts.last()) {
            let length = last.chars().count();
            prop_assert_eq!(
                length,
                limit,
                "trailing {:?} dropped after a chunk that is not full",
                rest
            );
        }
        Ok(())
    }

    proptest! {
        // Shrinking a 20 000-character input takes many steps, each a few milliseconds.
        #![proptest_config(ProptestConfig { max_shrink_iters: 4096, ..config(128) })]

        /// At Telegram's limit, on inputs up to several messages long.
        #[test]
        fn long_answers_become_messages_telegram_accepts(markdown in long_markdown()) {
            check_split(&markdown, MESSAGE_LIMIT)?;
        }
    }

    proptest! {
        #![proptest_config(config(512))]

        /// At small limits, so that one input is cut in many places.
        #[test]
        fn any_text_becomes_messages_telegram_accepts(
            markdown in prop_oneof![markdown(120, 40), text(300)],
            limit in 1..200usize,
        ) {
            check_split(&markdown, limit)?;
        }
    }
}
