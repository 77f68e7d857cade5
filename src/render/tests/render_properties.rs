//! Properties: any Markdown, cut at any limit, becomes messages Telegram accepts, each at most
//! the limit long, which together show the whole answer.
//!
//! proptest generates the inputs and shrinks a failure to a small one. The strategies mix
//! arbitrary characters with alphabets of the pieces that matter (Markdown, HTML, entities,
//! emoji), so that the rare cases come often. `PROPTEST_CASES=N` sets the case counts for a
//! longer search; a failing case is saved in `tests/proptest-regressions/render.txt` and tried
//! first on every later run: commit that file, as proptest recommends.

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
