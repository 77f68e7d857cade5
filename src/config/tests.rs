//! The config as the bot loads it, from TOML text and an environment given in the test; in
//! `config_properties`, what any file becomes.

use super::validate::is_authorization_key;
use super::*;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let pairs: Vec<(String, String)> =
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

fn load_text(text: &str, env: &[(&str, &str)]) -> Result<Config> {
    let mut config = parse(text, "config.toml")?;
    settle(&mut config, env_of(env), Needs::TelegramAndGigaChat)?;
    Ok(config)
}

const ENV: &[(&str, &str)] =
    &[("TELEGRAM_TOKEN", "123456:ABC-def_1"), ("GIGACHAT_CREDENTIALS", "aWQ6c2VjcmV0")];

#[test]
fn empty_file_with_env_secrets_gives_the_documented_defaults() {
    let c = load_text("", ENV).unwrap();
    assert_eq!(c.telegram.api_url, "https://api.telegram.org");
    assert_eq!(c.telegram.poll_timeout_secs, 30);
    assert_eq!(c.gigachat.scope, "GIGACHAT_API_PERS");
    assert_eq!(c.gigachat.model, "GigaChat-2-Max");
    assert_eq!(c.gigachat.auth_url, "https://ngw.devices.sberbank.ru:9443/api/v2/oauth");
    assert_eq!(c.gigachat.base_url, "https://gigachat.devices.sberbank.ru/api/v1");
    assert_eq!(c.gigachat.timeout_secs, 120);
    assert!(c.gigachat.profanity_check);
    assert_eq!(c.bot.default_style, "professor");
    assert_eq!(c.bot.max_input_chars, 4000);
    let ids: Vec<&str> = c.styles.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["professor", "fairy"]);
    assert_eq!(c.styles[0].prompt, "Отвечай как научный сотрудник");
    assert_eq!(c.styles[1].title, "Сказочный персонаж");
}

#[test]
fn the_example_config_is_valid_and_shows_the_defaults() {
    let mut example = load_text(include_str!("../../config.example.toml"), ENV).unwrap();
    let mut defaults = load_text("", ENV).unwrap();
    // The example starts with the built-in styles; students add more (docs/lesson.md).
    let builtin: Vec<String> = defaults.styles.iter().map(|s| format!("{s:?}")).collect();
    let shown: Vec<String> = example.styles.iter().map(|s| format!("{s:?}")).collect();
    assert_eq!(shown[..builtin.len()], builtin[..]);
    example.styles.clear();
    defaults.styles.clear();
    assert_eq!(format!("{example:?}"), format!("{defaults:?}"));
}

#[test]
fn the_draft_interval_loads_under_its_old_name_and_is_range_checked() {
    let c = load_text("[bot]\nstream_edit_interval_ms = 1500\n", ENV).unwrap();
    assert_eq!(c.bot.draft_interval_ms, 1500);
    let err = load_text("[bot]\ndraft_interval_ms = 600000\n", ENV).unwrap_err();
    assert!(err.to_string().contains("bot.draft_interval_ms"), "{err}");
}

#[test]
fn environment_wins_over_the_file() {
    let text = "[gigachat]\nmodel = \"GigaChat-2\"\nscope = \"GIGACHAT_API_B2B\"\n";
    let mut env = ENV.to_vec();
    env.push(("GIGACHAT_MODEL", "GigaChat-2-Pro"));
    let c = load_text(text, &env).unwrap();
    assert_eq!(c.gigachat.model, "GigaChat-2-Pro");
    assert_eq!(c.gigachat.scope, "GIGACHAT_API_B2B");
}

#[test]
fn a_typo_names_the_line_and_key_but_not_the_value() {
    let text = "[telegram]\ntokne = \"123:secretvalue\"\n";
    let err = load_text(text, ENV).unwrap_err().to_string();
    assert!(err.starts_with("config.toml:2: `[telegram] tokne`: "), "{err}");
    assert!(err.contains("unknown field `tokne`"), "{err}");
    assert!(err.contains("`token`"), "{err}");
    assert!(!err.contains("secretvalue"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

#[test]
fn a_line_without_an_equals_sign_names_its_key_but_never_its_value() {
    for text in [
        "[telegram]\ntoken: \"123456:AAHsecretvalue\"\n",
        "[telegram]\ntoken \"123456:AAHsecretvalue\"\n",
        "[telegram]\ntoken = \"123456:AAHsecretvalue\n",
        "[telegram]\n\"123456:AAHsecretvalue\"\n",
    ] {
        let err = load_text(text, ENV).unwrap_err().to_string();
        assert!(err.starts_with("config.toml:2: "), "{err}");
        assert!(!err.contains("AAHsecret") && !err.contains("123456"), "{err}");
    }
    let err = load_text("[telegram]\ntoken: \"x\"\n", ENV).unwrap_err().to_string();
    assert!(err.contains("`[telegram] token`"), "{err}");
}

#[test]
fn empty_values_in_the_file_count_as_not_set() {
    let text = "[gigachat]\ncredentials = \"\"\nclient_id = \"id\"\nclient_secret = \"secret\"\nca_bundle_file = \"\"\n[bot]\ntranscript_dir = \"\"\n";
    let env: Vec<_> = ENV.iter().filter(|(k, _)| *k != "GIGACHAT_CREDENTIALS").copied().collect();
    let c = load_text(text, &env).unwrap();
    // The key is made from client_id and client_secret, not taken as "".
    assert_eq!(c.gigachat.credentials.unwrap().expose(), "aWQ6c2VjcmV0");
    assert!(c.gigachat.ca_bundle_file.is_none() && c.bot.transcript_dir.is_none());
    let err = load_text("[telegram]\ntoken = \" \"\n", &[]).unwrap_err().to_string();
    assert!(err.starts_with("TELEGRAM_TOKEN is not set"), "{err}");
}

#[test]
fn errors_stay_on_one_line() {
    let err = load_text("a\rb = 1\n", ENV).unwrap_err().to_string();
    assert!(!err.contains('\r') && !err.contains('\n'), "{err:?}");
    // `a` is no key of the config, so the line is all the error says of where.
    assert!(err.starts_with("config.toml:1: key with no value"), "{err:?}");
    assert_eq!(one_line("/tmp/a\nb"), "/tmp/a\\nb");
}

#[test]
fn a_wrong_type_names_the_key() {
    let err = load_text("[telegram]\npoll_timeout_secs = \"30\"\n", ENV).unwrap_err().to_string();
    assert!(err.starts_with("config.toml:2: `[telegram] poll_timeout_secs`: "), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

#[test]
fn missing_secrets_say_where_to_get_them_all_at_once() {
    let err = load_text("", &[]).unwrap_err().to_string();
    assert!(err.contains("TELEGRAM_TOKEN is not set"), "{err}");
    assert!(err.contains("@BotFather"), "{err}");
    assert!(err.contains("GIGACHAT_CREDENTIALS is not set"), "{err}");
    let err = load_text("", &ENV[..1]).unwrap_err().to_string();
    assert!(err.starts_with("GIGACHAT_CREDENTIALS is not set"), "{err}");
}

#[test]
fn numbers_out_of_range_are_refused_before_any_arithmetic() {
    for (text, key) in [
        ("[bot]\nforget_after_days = 213503982334601\n", "bot.forget_after_days"),
        ("[bot]\nhistory_chars = 18446744073709551615\n", "bot.history_chars"),
        ("[bot]\nhistory_messages = 100000\n", "bot.history_messages"),
        ("[bot]\nmax_input_chars = 0\n", "bot.max_input_chars"),
        ("[bot]\nrequests_per_minute = 4000000000\n", "bot.requests_per_minute"),
        ("[bot]\ndaily_tokens_per_user = 18446744073709551615\n", "bot.daily_tokens_per_user"),
        ("[gigachat]\ntimeout_secs = 0\n", "gigachat.timeout_secs"),
        ("[gigachat]\ntimeout_secs = 18446744073709551615\n", "gigachat.timeout_secs"),
        ("[gigachat]\nmax_tokens = 0\n", "gigachat.max_tokens"),
        ("[telegram]\npoll_timeout_secs = 0\n", "telegram.poll_timeout_secs"),
        ("[bot]\nlow_balance_tokens = 18446744073709551615\n", "bot.low_balance_tokens"),
        ("[knowledge]\ntop_k = 0\n", "knowledge.top_k"),
        ("[knowledge]\ntop_k = 21\n", "knowledge.top_k"),
    ] {
        let err = load_text(text, ENV).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{key} = ")), "{text:?}: {err}");
        assert!(err.contains("is out of range: use "), "{err}");
    }
    // The edges themselves are fine.
    load_text("[bot]\nforget_after_days = 36500\n[gigachat]\ntimeout_secs = 600\n", ENV).unwrap();
    load_text("[knowledge]\ntop_k = 20\nmin_score = 1.0\n", ENV).unwrap();
}

#[test]
fn a_reference_desk_needs_a_folder_and_a_score_between_0_and_1() {
    for (text, says) in [
        ("[knowledge]\nmin_score = 1.5\n", "knowledge.min_score is out of range: use 0.0..=1.0"),
        ("[knowledge]\nmin_score = -0.1\n", "knowledge.min_score is out of range"),
        ("[knowledge]\nmin_score = nan\n", "knowledge.min_score is out of range"),
        ("[knowledge]\ndir = \"/no/such/folder\"\n", "knowledge.dir is not a folder: create it"),
        ("[knowledge]\ndir = \"Cargo.toml\"\n", "knowledge.dir is not a folder"),
    ] {
        let err = load_text(text, ENV).unwrap_err().to_string();
        assert!(err.starts_with(says), "{text:?}: {err}");
    }
    assert_eq!(load_text("", ENV).unwrap().knowledge.dir.as_os_str(), "", "off by default");
    load_text("[knowledge]\ndir = \"src\"\n", ENV).unwrap();
}

#[test]
fn errors_name_the_variable_or_the_file_the_value_came_from() {
    let mut env = ENV.to_vec();
    env.push(("GIGABOT_LOG", "trace"));
    let err = load_text("[log]\nlevel = \"info\"\n", &env).unwrap_err();
    assert!(err.to_string().starts_with("GIGABOT_LOG is not a level"), "{err}");
    let err = load_text("[log]\nlevel = \"loud\"\n", ENV).unwrap_err();
    assert!(err.to_string().starts_with("log.level in config.toml is not a level"), "{err}");
    let text = "[telegram]\ntoken = \"123:a b\"\n";
    let err = load_text(text, &ENV[1..]).unwrap_err().to_string();
    assert!(err.starts_with("telegram.token in config.toml does not"), "{err}");
    let c = load_text("", ENV).unwrap();
    assert_eq!(c.origin("telegram.token"), "TELEGRAM_TOKEN");
    assert_eq!(c.gigachat.key_origin, "GIGACHAT_CREDENTIALS and gigachat.scope in config.toml");
}

#[test]
fn client_id_and_secret_make_the_authorization_key() {
    let env = [
        ("TELEGRAM_TOKEN", "1:a"),
        ("GIGACHAT_CLIENT_ID", "id"),
        ("GIGACHAT_CLIENT_SECRET", "secret"),
    ];
    let c = load_text("", &env).unwrap();
    assert_eq!(c.gigachat.credentials.unwrap().expose(), "aWQ6c2VjcmV0");
}

#[test]
fn a_client_secret_that_is_already_the_key_is_used_as_is() {
    // The lesson's way: GIGACHAT_CLIENT_SECRET holds the Base64 key, no client id.
    let env = [("TELEGRAM_TOKEN", "1:a"), ("GIGACHAT_CLIENT_SECRET", "aWQ6c2VjcmV0")];
    let c = load_text("", &env).unwrap();
    assert_eq!(c.gigachat.credentials.unwrap().expose(), "aWQ6c2VjcmV0");
    // A plain client secret (a UUID) is not mistaken for a key.
    assert!(!is_authorization_key("0f3e6a2c-1b7d-4c55-9a0e-3d2f1c4b5a69"));
}

#[test]
fn only_base64_of_id_colon_secret_is_an_authorization_key() {
    assert!(is_authorization_key("aWQ6c2VjcmV0")); // id:secret
    assert!(is_authorization_key(" 0LrQu9GO0Yc60YHQtdC60YDQtdGC\n")); // ключ:секрет
    for not_a_key in ["", "not base64!", "aWQ6c2VjcmV0=", "aWQ6", "OnNlY3JldA==", "/w=="] {
        assert!(!is_authorization_key(not_a_key), "{not_a_key:?}");
    }
}

#[test]
fn unknown_default_style_lists_the_styles() {
    let err = load_text("[bot]\ndefault_style = \"pirate\"\n", ENV).unwrap_err().to_string();
    assert!(err.contains("bot.default_style = \"pirate\""), "{err}");
    assert!(err.contains("professor, fairy"), "{err}");
}

#[test]
fn style_ids_must_fit_callback_data_and_be_unique() {
    let style = |id: &str| format!("[[styles]]\nid = \"{id}\"\ntitle = \"T\"\nprompt = \"P\"\n");
    let default = "[bot]\ndefault_style = \"a\"\n";
    let ok = format!("{default}{}{}", style("a"), style("b-2_c"));
    assert_eq!(load_text(&ok, ENV).unwrap().styles.len(), 2);
    for bad in ["Pirate", "пират", "a b", &"x".repeat(33), ""] {
        let text = format!("{default}{}{}", style("a"), style(bad));
        let err = load_text(&text, ENV).unwrap_err().to_string();
        assert!(err.contains("is not allowed"), "{bad}: {err}");
    }
    let twice = format!("{default}{}{}", style("a"), style("a"));
    let err = load_text(&twice, ENV).unwrap_err().to_string();
    assert!(err.contains("used twice"), "{err}");
}

#[test]
fn urls_are_checked_and_trimmed() {
    let mut env = ENV.to_vec();
    env.push(("TELEGRAM_API_URL", "http://127.0.0.1:8081/"));
    let c = load_text("", &env).unwrap();
    assert_eq!(c.telegram.api_url, "http://127.0.0.1:8081");
    let err =
        load_text("[gigachat]\nbase_url = \"http://x/api/v1\"\n", ENV).unwrap_err().to_string();
    assert!(err.contains("must start with https://"), "{err}");
}

#[test]
fn a_malformed_token_is_refused_without_printing_it() {
    let env = [("TELEGRAM_TOKEN", "\"123:abc\""), ("GIGACHAT_CREDENTIALS", "aWQ6c2VjcmV0")];
    let err = load_text("", &env).unwrap_err().to_string();
    assert!(err.contains("does not look like a bot token"), "{err}");
    assert!(!err.contains("abc"), "{err}");
}

#[test]
fn secrets_do_not_debug_print() {
    let c = load_text("", ENV).unwrap();
    let dump = format!("{c:?}");
    assert!(!dump.contains("ABC-def_1"), "{dump}");
    assert!(!dump.contains("aWQ6c2VjcmV0"), "{dump}");
}

#[test]
fn an_unreadable_ca_file_names_the_file() {
    let mut env = ENV.to_vec();
    env.push(("GIGACHAT_CA_BUNDLE_FILE", "/nonexistent/ca.pem"));
    let err = load_text("", &env).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    assert!(err.contains("gosuslugi.ru/crt"), "{err}");
}

#[test]
fn salutespeech_is_optional_with_documented_defaults_and_env_overrides() {
    let c = load_text("", ENV).unwrap();
    let ss = &c.salutespeech;
    assert!(ss.credentials.is_none());
    assert_eq!(ss.scope, "SALUTE_SPEECH_PERS");
    assert_eq!(ss.auth_url, c.gigachat.auth_url);
    assert_eq!(ss.url, "https://smartspeech.sber.ru/rest/v1");
    // Empty means not set, in the file as in the environment.
    let c = load_text("[salutespeech]\ncredentials = \" \"\n", ENV).unwrap();
    assert!(c.salutespeech.credentials.is_none());
    let mut env = ENV.to_vec();
    env.extend([
        ("SALUTE_SPEECH_CREDENTIALS", " c3M6a2V5 "),
        ("SALUTE_SPEECH_URL", "https://127.0.0.1:1/rest/v1/"),
    ]);
    let c = load_text("[salutespeech]\ncredentials = \"from-file\"\n", &env).unwrap();
    let ss = &c.salutespeech;
    assert_eq!(ss.credentials.as_ref().unwrap().expose(), "c3M6a2V5");
    assert_eq!(ss.url, "https://127.0.0.1:1/rest/v1");
    assert_eq!(ss.key_origin, "SALUTE_SPEECH_CREDENTIALS and salutespeech.scope in config.toml");
    assert!(!format!("{c:?}").contains("c3M6a2V5"));
}

#[test]
fn salutespeech_urls_and_scope_are_checked() {
    let err = load_text("[salutespeech]\nurl = \"http://x/rest\"\n", ENV).unwrap_err();
    assert!(err.to_string().contains("salutespeech.url"), "{err}");
    assert!(err.to_string().contains("https://"), "{err}");
    let err = load_text("[salutespeech]\nscope = \"GIGACHAT_API_PERS\"\n", ENV).unwrap_err();
    assert!(err.to_string().contains("not a SaluteSpeech scope"), "{err}");
}

// --- secrets never reach an error ---

/// Secrets as they really look: GigaChat's Base64 authorization key, a bot token, and a
/// client secret (a UUID).
const KEY: &str = "MDE5YjEyMzQtNTY3OC05YWJjLWRlZjAtMTIzNDU2Nzg5YWJjOjQ1NmRlZjc4LTEyMzQtNTY3OC05YWJjLWRlZjAxMjM0NTY3OA==";
const TOKEN: &str = "7000000001:AAHk3fJ9xQ2mV8pL5rT1wZ6yB4nC7dE0gHs";
const CLIENT_SECRET: &str = "0f3e6a2c-1b7d-4c55-9a0e-3d2f1c4b5a69";

/// No six characters in a row of any of the secrets above are in `text`, in any letter case
/// (`GIGABOT_LOG` is lowercased before it is checked).
fn assert_no_secret(text: &str) {
    let lower = text.to_lowercase();
    for secret in [KEY, TOKEN, CLIENT_SECRET] {
        let chars: Vec<char> = secret.to_lowercase().chars().collect();
        for window in chars.windows(6) {
            let part: String = window.iter().collect();
            assert!(!lower.contains(&part), "{part:?} of a secret in: {text}");
        }
    }
}

/// The error of a config that must not load, checked to hold no secret.
fn error_of(text: &str, env: &[(&str, &str)]) -> String {
    let err = match load_text(text, env) {
        Ok(_) => panic!("loaded: {text:?} with {env:?}"),
        Err(err) => format!("{err:#}"),
    };
    assert_no_secret(&err);
    err
}

#[test]
fn a_secret_on_the_line_after_its_key_is_never_shown() {
    let cases = [
        ("telegram", "token", TOKEN),
        ("gigachat", "credentials", KEY),
        ("gigachat", "client_secret", CLIENT_SECRET),
        ("salutespeech", "credentials", KEY),
    ];
    for (section, key, secret) in cases {
        for text in [
            format!("[{section}]\n{key} =\n{secret}\n"),
            format!("[{section}]\n{key} =\n  {secret}\n"),
            format!("[{section}]\n{key}\n{secret}\n"),
            format!("[{section}]\n{key} =\n\"{secret}\"\n"),
        ] {
            let err = error_of(&text, ENV);
            assert!(err.starts_with("config.toml:"), "{err}");
        }
    }
}

#[test]
fn a_stray_line_with_a_secret_is_never_shown() {
    let styles =
        "[bot]\ndefault_style = \"a\"\n[[styles]]\nid = \"a\"\ntitle = \"T\"\nprompt = \"P\"\n";
    for secret in [KEY, TOKEN, CLIENT_SECRET] {
        for line in [
            secret.to_string(),
            format!("{secret} = 1"),
            format!("\"{secret}\" = 1"),
            format!("{secret} = \"x\""),
        ] {
            for before in [styles, "[telegram]\n", ""] {
                let err = error_of(&format!("{before}{line}\n"), ENV);
                let at = format!("config.toml:{}: ", before.lines().count() + 1);
                assert!(err.starts_with(&at), "{err}");
            }
        }
    }
    // The line says where; the error still lists the keys that would be right.
    let err = error_of(&format!("{styles}\"{KEY}\" = 1\n"), ENV);
    assert!(err.contains("an unknown key, expected one of `id`, `title`, `prompt`"), "{err}");
    // A plausible typo is still named.
    let err = error_of(&format!("{styles}promt = \"x\"\n"), ENV);
    assert!(err.starts_with("config.toml:7: `[[styles]] promt`: unknown field `promt`"), "{err}");
}

#[test]
fn a_value_of_the_wrong_type_is_never_quoted() {
    for (section, key, value) in [
        ("gigachat", "timeout_secs", format!("\"{KEY}\"")),
        ("gigachat", "timeout_secs", format!("'{KEY}'")),
        ("telegram", "poll_timeout_secs", format!("\"{TOKEN}\"")),
        ("gigachat", "temperature", format!("\"{CLIENT_SECRET}\"")),
        ("log", "messages", format!("\"{KEY}\"")),
        ("bot", "admins", format!("[\"{TOKEN}\"]")),
    ] {
        let err = error_of(&format!("[{section}]\n{key} = {value}\n"), ENV);
        let start = format!("config.toml:2: `[{section}] {key}`: invalid type: string \"…\"");
        assert!(err.starts_with(&start), "{err}");
    }
}

#[test]
fn the_table_of_keys_is_the_structs() {
    // What serde lists after "expected" for an unknown key: the struct's fields and aliases.
    let listed = |text: &str| -> Vec<String> {
        let message = toml::from_str::<Config>(text).unwrap_err().message().to_string();
        let (_, expected) = message.split_once("expected ").expect("a list of keys");
        let expected = expected.trim_start_matches("one of ").replace(" or ", ", ");
        let mut keys: Vec<String> =
            expected.split(", ").map(|k| k.trim_matches('`').to_string()).collect();
        keys.sort();
        keys
    };
    let sorted = |keys: &[&str]| {
        let mut keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        keys.sort();
        keys
    };
    let sections: Vec<&str> = SECTIONS.iter().map(|(section, _)| *section).collect();
    assert_eq!(listed("zz = 1"), sorted(&sections));
    for (section, keys) in SECTIONS {
        let header = match section {
            "styles" => "[[styles]]".to_string(),
            _ => format!("[{section}]"),
        };
        assert_eq!(listed(&format!("{header}\nzz = 1\n")), sorted(keys), "{section}");
    }
}

#[test]
fn toml_errors_keep_their_syntax_and_numbers() {
    let err = error_of("[telegram]\ntoken = \"a\\q\"\n", ENV);
    assert!(err.ends_with("expected `b`, `e`, `f`, `n`, `r`, `\\`, `\"`, `x`, `u`, `U`"), "{err}");
    let err = error_of("[gigachat]\ntimeout_secs = -1\n", ENV);
    assert!(err.ends_with("invalid value: integer `-1`, expected u64"), "{err}");
    let err = error_of("[telegram]\ntoken = \"x\"\ntoken = \"y\"\n", ENV);
    assert_eq!(err, "config.toml:3: `[telegram] token`: duplicate key");
}

#[test]
fn a_scope_is_never_echoed() {
    for secret in [KEY, CLIENT_SECRET] {
        let err = error_of("", &[ENV, &[("GIGACHAT_SCOPE", secret)]].concat());
        assert!(err.starts_with("GIGACHAT_SCOPE is not a GigaChat scope: use GIGACHAT_API_PERS"));
        let err = error_of(&format!("[gigachat]\nscope = \"{secret}\"\n"), ENV);
        assert!(err.starts_with("gigachat.scope in config.toml is not a GigaChat scope"), "{err}");
        let err = error_of("", &[ENV, &[("SALUTE_SPEECH_SCOPE", secret)]].concat());
        assert!(err.starts_with("SALUTE_SPEECH_SCOPE is not a SaluteSpeech scope: use "), "{err}");
        let err = error_of(&format!("[salutespeech]\nscope = \"{secret}\"\n"), ENV);
        assert!(err.contains("salutespeech.scope in config.toml is not a SaluteSpeech"), "{err}");
    }
}

#[test]
fn a_log_level_is_never_echoed() {
    for secret in [KEY, TOKEN, CLIENT_SECRET] {
        let err = error_of("", &[ENV, &[("GIGABOT_LOG", secret)]].concat());
        assert_eq!(err, "GIGABOT_LOG is not a level: use error, warn, info or debug");
        let err = error_of(&format!("[log]\nlevel = \"{secret}\"\n"), ENV);
        assert!(err.starts_with("log.level in config.toml is not a level: use error"), "{err}");
    }
}

#[test]
fn a_url_is_shown_without_a_token_a_password_or_a_query() {
    let not_a_url = "is not a URL: it must start with https:// or http://";
    let cases = [
        ("TELEGRAM_API_URL", format!("api.telegram.org/bot{TOKEN}"), not_a_url.to_string()),
        ("TELEGRAM_API_URL", TOKEN.to_string(), not_a_url.to_string()),
        ("GIGACHAT_BASE_URL", KEY.to_string(), not_a_url.to_string()),
        ("TELEGRAM_API_URL", format!("https:///bot{TOKEN}/"), "= \"https:///bot***\"".into()),
        (
            "GIGACHAT_AUTH_URL",
            format!("http://id:{CLIENT_SECRET}@ngw.devices.sberbank.ru:9443/api/v2/oauth"),
            "= \"http://***@ngw.devices.sberbank.ru:9443/api/v2/oauth\" must".into(),
        ),
        (
            "GIGACHAT_BASE_URL",
            format!("http://gigachat.devices.sberbank.ru/api/v1?key={KEY}"),
            "= \"http://gigachat.devices.sberbank.ru/api/v1?…\" must".into(),
        ),
        ("SALUTE_SPEECH_URL", format!("https:// {KEY}"), "= \"https://***\" has no host".into()),
    ];
    for (var, url, shown) in cases {
        let err = error_of("", &[ENV, &[(var, url.as_str())]].concat());
        assert!(err.starts_with(&format!("{var} {shown}")), "{err}");
    }
}

#[test]
fn a_long_value_is_described_not_quoted() {
    let err = error_of(&format!("[bot]\ndefault_style = \"{KEY}\"\n"), ENV);
    assert!(err.starts_with("bot.default_style = (a value of 100 characters) is not"), "{err}");
    let style = format!("[[styles]]\nid = \"{TOKEN}\"\ntitle = \"T\"\nprompt = \"P\"\n");
    let err = error_of(&style, ENV);
    assert!(err.starts_with("styles #1: id (a value of 46 characters) is not allowed"), "{err}");
}

#[test]
fn load_scrubs_every_secret_it_knows_of_from_its_errors() {
    // A style named like a secret: the error quotes the style, but not the secret.
    let secret = "s3cr3t-Passw0rd";
    let text = format!("[bot]\ndefault_style = \"{secret}\"\n");
    let env = [ENV, &[("GIGACHAT_CLIENT_SECRET", secret)]].concat();
    let load = |text: &str, env: &[(&str, &str)]| {
        let file = Some((text, "config.toml"));
        load_from(file, env_of(env), Needs::TelegramAndGigaChat).unwrap_err().to_string()
    };
    assert!(load(&text, &env).starts_with("bot.default_style = \"***\" is not"));
    // From the file's own secrets too, also when the file is refused.
    let in_file = format!("[gigachat]\nclient_secret = \"{secret}\"\n{text}");
    assert!(load(&in_file, ENV).starts_with("bot.default_style = \"***\" is not"));
    // Short values are left alone; the case of the letters does not matter.
    let secrets = ["secret".to_string(), "ABCDEFGH12".to_string()];
    assert_eq!(scrub::scrub("a secret: abcdefgh12.", &secrets), "a secret: ***.");
}

/// Properties: any config file loads, or its error is one line that names the file.
///
/// proptest generates the inputs and shrinks a failure to a small one. The strategies mix
/// arbitrary text with the real sections and keys, values of every TOML kind and broken
/// lines, so that loading often gets as far as the checks of the values.
/// `PROPTEST_CASES=N` sets the case counts for a longer search; a failing case is saved in
/// `tests/proptest-regressions/config.txt` and tried first on every later run: commit that
/// file, as proptest recommends.
mod config_properties {
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
        ("bot", "low_balance_tokens", &["10000", "0"]),
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
                    let pairs: Vec<String> =
                        pairs.iter().map(|(k, v)| format!("{k} = {v}")).collect();
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
                let mut lines: Vec<String> =
                    root.iter().map(|(k, v)| format!("{k} = {v}")).collect();
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
}
