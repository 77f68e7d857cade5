//! Properties: any config file loads, or its error is one line that names the file.
//!
//! proptest generates the inputs and shrinks a failure to a small one. The strategies mix
//! arbitrary text with the real sections and keys, values of every TOML kind and broken
//! lines, so that loading often gets as far as the checks of the values.
//! `PROPTEST_CASES=N` sets the case counts for a longer search; a failing case is saved in
//! `tests/proptest-regressions/config.txt` and tried first on every later run: commit that
//! file, as proptest recommends.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{FileFailurePersistence, TestCaseResult};

use super::super::{Needs, load, parse};

/// `default` cases, or `PROPTEST_CASES` when it is set; failures saved with the other seeds.
fn config(default: u32) -> ProptestConfig {
    let cases =
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let saved = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/proptest-regressions/config.txt");
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

/// The config's keys by section, each with values of the right type, valid or not.
#[rustfmt::skip]
const KEYS: &[(&str, &str, &[&str])] = &[
    ("telegram", "token", &["\"123456:ABC-def_1\"", "\"123:a b\"", "\"\""]),
    ("telegram", "api_url", &["\"https://api.telegram.org\"", "\"http://127.0.0.1:8081/\"", "\"api.telegram.org\"", "\"https://\""]),
    ("telegram", "poll_timeout_secs", &["30", "0", "50", "51"]),
    ("gigachat", "credentials", &["\"aWQ6c2VjcmV0\"", "\"\""]),
    ("gigachat", "client_id", &["\"id\"", "\"\""]),
    ("gigachat", "client_secret", &["\"secret\"", "\"aWQ6c2VjcmV0\""]),
    ("gigachat", "scope", &["\"GIGACHAT_API_PERS\"", "\"GIGACHAT_API_B2B\"", "\"pers\""]),
    ("gigachat", "model", &["\"GigaChat-2-Max\"", "\"\"", "\" \""]),
    ("gigachat", "auth_url", &["\"https://ngw.devices.sberbank.ru:9443/api/v2/oauth\"", "\"http://x\""]),
    ("gigachat", "base_url", &["\"https://gigachat.devices.sberbank.ru/api/v1/\"", "\"https:///x\""]),
    ("gigachat", "ca_bundle_file", &["\"/nonexistent/ca.pem\"", "\"\"", "\"/nonexistent/a\\nb\""]),
    ("gigachat", "timeout_secs", &["120", "0"]),
    ("gigachat", "profanity_check", &["true", "false"]),
    ("gigachat", "temperature", &["0.7", "0.0", "-1.0", "inf", "nan"]),
    ("gigachat", "max_tokens", &["512", "0", "4294967296"]),
    ("gigachat", "stream", &["true", "false"]),
    ("bot", "default_style", &["\"professor\"", "\"fairy\"", "\"pirate\"", "\"\""]),
    ("bot", "max_input_chars", &["4000", "0"]),
    ("bot", "state_file", &["\"gigabot-state.json\"", "\"\""]),
    ("bot", "history_messages", &["6", "0"]),
    ("bot", "history_chars", &["6000", "0"]),
    ("bot", "forget_after_days", &["30", "0"]),
    ("bot", "admins", &["[]", "[123456789]", "[-1, 9223372036854775807]"]),
    ("bot", "allowed_users", &["[]", "[1, 2]"]),
    ("bot", "requests_per_minute", &["6", "0", "4294967296"]),
    ("bot", "daily_tokens_per_user", &["0", "100000"]),
    ("bot", "transcript_dir", &["\"transcripts\"", "\"\""]),
    ("bot", "draft_interval_ms", &["1000", "0"]),
    ("log", "level", &["\"info\"", "\"debug\"", "\"trace\"", "\"INFO\""]),
    ("log", "messages", &["true", "false"]),
    ("styles", "id", &["\"professor\"", "\"a\"", "\"x-1_2\"", "\"Pirate\"", "\"\""]),
    ("styles", "title", &["\"Пират\"", "\"\"", "\"ttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt\""]),
    ("styles", "prompt", &["\"Отвечай как пират\"", "\" \""]),
];

/// TOML values of every kind, at the edges of the types the config reads.
#[rustfmt::skip]
const TOML_ATOMS: &[&str] = &[
    "true", "false", "0", "-1", "+1", "1_000", "9223372036854775807", "9223372036854775808",
    "-9223372036854775808", "0x7fffffffffffffff", "0o777", "0b101", "1.5", "-0.0", "1e400",
    "6.02e23", "inf", "-inf", "nan", "1979-05-27T07:32:00Z", "1979-05-27", "07:32:00", "\"\"",
    "''", "\"\\q\"", "\"\\u0000\"", "\"\\uD800\"", "\"a\\nb\"", "\"\"\"\nmulti\nline\n\"\"\"",
    "'''\nraw\n'''", "[]", "[1, \"a\"]", "{}", "{ a = 1 }", "[[]]", "[{}]",
];

fn toml_key() -> BoxedStrategy<String> {
    prop_oneof![
        4 => select(KEYS).prop_map(|(_, key, _)| key.to_string()),
        1 => select(&["tokne", "Token", "telegram.token", "\"token\"", "'level'", "a.b.c", "\"\"", "x-y_z"][..])
            .prop_map(str::to_string),
        1 => text(8).prop_map(|key| basic_string(&key)),
    ]
    .boxed()
}

/// A TOML basic string of `text`, escaped as TOML requires.
fn basic_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{0}'..='\u{1f}' | '\u{7f}' => out.push_str(&format!("\\u{:04X}", c as u32)),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_value() -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        select(TOML_ATOMS).prop_map(str::to_string),
        select(KEYS).prop_flat_map(|(_, _, values)| select(values)).prop_map(str::to_string),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        text(20).prop_map(|text| basic_string(&text)),
        text(20).prop_map(|text| format!("'{text}'")),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(|items| format!("[{}]", items.join(", "))),
            vec((toml_key(), inner), 0..3).prop_map(|pairs| {
                let pairs: Vec<String> = pairs.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!("{{ {} }}", pairs.join(", "))
            }),
        ]
    })
    .boxed()
}

/// One table of the config: a real section's keys, each present or not, with a value that is
/// the valid one, another of its type, or anything; sometimes an unknown key. The keys a
/// config needs (the secrets, when not in the environment; a style's fields) are mostly there,
/// so that loading often gets as far as the checks of the values.
fn toml_table(section: &'static str) -> BoxedStrategy<String> {
    let entries: Vec<BoxedStrategy<Option<String>>> = KEYS
        .iter()
        .filter(|(s, _, _)| *s == section)
        .map(|&(_, key, values)| {
            let needed = ["token", "credentials", "id", "title", "prompt"].contains(&key);
            let value = prop_oneof![
                4 => Just(values[0].to_string()),
                3 => select(values).prop_map(str::to_string),
                1 => toml_value(),
            ];
            proptest::option::weighted(if needed { 0.9 } else { 0.25 }, value)
                .prop_map(move |v| v.map(|v| format!("{key} = {v}")))
                .boxed()
        })
        .collect();
    let header = match section {
        "styles" => "[[styles]]".to_string(),
        _ => format!("[{section}]"),
    };
    let extra = proptest::option::weighted(0.1, (toml_key(), toml_value()));
    (entries, extra)
        .prop_map(move |(entries, extra)| {
            let mut lines = vec![header.clone()];
            lines.extend(entries.into_iter().flatten());
            if let Some((key, value)) = extra {
                lines.push(format!("{key} = {value}"));
            }
            lines.join("\n")
        })
        .boxed()
}

/// Lines that break a document somewhere: a stray header, a key without a value, junk.
/// (Carriage returns are left to the text property, so that this one looks further.)
#[rustfmt::skip]
const TOML_NOISE: &[&str] = &[
    "[telegram]", "[[styles]]", "[styles]", "[[bot]]", "[telegram.extra]", "[ bot ]", "[\"log\"]",
    "[]", "[x", "token =", "= 1", "token = 1 2", "# comment", "", "key\u{0} = 1",
    "\"unterminated = 1", "x = \"\"\"", "x = '''", "\u{feff}",
];

/// Config files as a person might write them, right or wrong: the real sections and keys,
/// values of the right or a wrong type, and sometimes a broken line anywhere.
fn toml_document() -> BoxedStrategy<String> {
    let section = |name, p| proptest::option::weighted(p, toml_table(name));
    let noise = prop_oneof![
        select(TOML_NOISE).prop_map(str::to_string),
        text(30),
        (toml_key(), toml_value()).prop_map(|(k, v)| format!("{k} = {v}")),
    ];
    (
        proptest::option::weighted(0.1, (toml_key(), toml_value())),
        section("telegram", 0.85),
        section("gigachat", 0.85),
        section("bot", 0.5),
        section("log", 0.5),
        vec(toml_table("styles"), 0..3),
        proptest::option::weighted(0.15, (noise, any::<Index>())),
    )
        .prop_map(|(root, telegram, gigachat, bot, log, styles, noise)| {
            let mut lines: Vec<String> = root.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            lines.extend([telegram, gigachat, bot, log].into_iter().flatten());
            lines.extend(styles);
            let mut text = lines.join("\n");
            if let Some((noise, at)) = noise {
                let mut lines: Vec<&str> = text.split('\n').collect();
                lines.insert(at.index(lines.len() + 1), &noise);
                text = lines.join("\n");
            }
            text
        })
        .boxed()
}

/// Pieces of TOML syntax, for texts that are mostly broken documents.
#[rustfmt::skip]
const TOML_PIECES: &[&str] = &[
    "[", "]", "[[", "]]", "=", " = ", "\"", "'", "\"\"\"", "'''", "\n", "\r\n", "\r", "#", ".",
    ",", "{", "}", "telegram", "token", "bot", "styles", "1", "-", "_", "\\", "\\u", "0x", "1e",
    "inf", "nan", "true", " ", "\t", "ё", "😀", "\0", "\u{feff}",
];

/// parse: the file loads, or the error is one line that starts with the file name.
fn check_parse(text: &str) -> TestCaseResult {
    if let Err(err) = parse(text, "config.toml") {
        let message = format!("{err:#}");
        check_one_line(&message)?;
        prop_assert!(message.starts_with("config.toml"), "{message}");
    }
    Ok(())
}

/// One line: no line feed, and no carriage return, which sends a terminal back to the start
/// of the line to write over it.
fn check_one_line(message: &str) -> TestCaseResult {
    prop_assert!(!message.contains('\n'), "not one line: {message:?}");
    prop_assert!(!message.contains('\r'), "a carriage return: {message:?}");
    Ok(())
}

proptest! {
    #![proptest_config(config(2048))]

    /// Documents with the real sections and keys, loaded as `gigabot` loads its config file
    /// (parsed, overridden from the environment, validated): a config, or one line.
    #[test]
    fn any_config_document_loads_or_gives_a_one_line_error(text in toml_document()) {
        let path = std::env::temp_dir().join(format!("gigabot-properties-{}.toml", std::process::id()));
        std::fs::write(&path, &text).expect("write the config file");
        let loaded = load(Some(&path), Needs::TelegramAndGigaChat);
        let _ = std::fs::remove_file(&path);
        if let Err(err) = loaded {
            check_one_line(&format!("{err:#}"))?;
        }
    }

    /// Any text at all, mostly broken TOML: no panic, one line.
    #[test]
    fn any_text_as_a_config_parses_or_gives_a_one_line_error(
        text in prop_oneof![
            vec(select(TOML_PIECES), 0..60).prop_map(|pieces| pieces.concat()),
            text(200),
            vec(any::<u8>(), 0..200).prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        ],
    ) {
        check_parse(&text)?;
    }
}
