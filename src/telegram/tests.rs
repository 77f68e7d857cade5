//! Unit tests of the Telegram client.

use super::retry::{retry_delay, time_to_say_again};
use super::*;
use crate::incoming::{MessageEntity, entity_text, utf16_range_to_bytes};

#[test]
fn redacts_the_token_from_urls_in_errors() {
    let token = "7000000001:AAHsecret_Token-xyz";
    let text = format!("bad uri: http://h/bot{token}/getMe and http://h/bot123:other/x");
    let clean = redact_token(&text, token);
    assert!(!clean.contains("AAHsecret"), "{clean}");
    assert!(!clean.contains("123:other"), "{clean}");
    assert_eq!(clean, "bad uri: http://h/bot***/getMe and http://h/bot***/x");
}

#[test]
fn after_any_number_of_failures_the_next_try_comes_within_13_seconds() {
    let delays: Vec<u64> = (0..8).map(|n| retry_delay(n).as_secs()).collect();
    assert_eq!(delays[..4], [1, 2, 4, 8], "quick at first");
    for n in 0..100 {
        let delay = retry_delay(n);
        assert!(delay + delay / 4 <= Duration::from_millis(12_500), "try {n}: {delay:?}");
    }
}

#[test]
fn long_trouble_is_reported_after_one_and_five_minutes_then_every_fifteen() {
    let secs = Duration::from_secs;
    let mut said = Vec::new();
    let mut previous = Duration::ZERO;
    for t in (0..3600).step_by(10) {
        if time_to_say_again(previous, secs(t)) {
            said.push(t);
        }
        previous = secs(t);
    }
    assert_eq!(said, [60, 300, 1200, 2100, 3000]);
    assert_eq!(minutes_seconds(secs(185)), "3 min 5 s");
    assert_eq!(host_of("https://api.telegram.org"), "api.telegram.org");
    assert_eq!(host_of("http://127.0.0.1:8081/x"), "127.0.0.1:8081");
    assert_eq!(host_of("https://bot:0f3e6a2c-1b7d@api.telegram.org/bot1:AA"), "api.telegram.org");
    assert_eq!(host_of("http://127.0.0.1:8081?token=1:AA"), "127.0.0.1:8081");
}

#[test]
fn utf16_offsets_map_to_bytes() {
    // The fixture: "👋 @SomeBot, …" has the mention at UTF-16 offset 3.
    let text = "👋 @SomeBot, объясни";
    let entity = MessageEntity { kind: "mention".into(), offset: 3, length: 8, user: None };
    assert_eq!(entity_text(text, &entity), Some("@SomeBot"));
    let past_end = MessageEntity { offset: 30, ..entity.clone() };
    assert_eq!(entity_text(text, &past_end), None);
    let overflowing = MessageEntity { offset: usize::MAX, ..entity };
    assert_eq!(entity_text(text, &overflowing), None);
    assert_eq!(utf16_range_to_bytes("ab", 0, 2), Some((0, 2)));
    assert_eq!(utf16_range_to_bytes("ab", 2, 2), Some((2, 2)));
    // Inside a surrogate pair is not a boundary.
    assert_eq!(utf16_range_to_bytes("👋", 1, 2), None);
}

#[test]
fn update_errors_do_not_quote_message_texts() {
    assert_eq!(
        without_strings(r#"invalid type: string "секрет", expected i64 at line 1"#),
        r#"invalid type: string "…", expected i64 at line 1"#
    );
    assert_eq!(without_strings("missing field `chat`"), "missing field `chat`");
}

#[test]
fn broken_updates_keep_their_id() {
    let broken = json!({"update_id": 7, "message": {"message_id": "not a number"}});
    let update = parse_update(broken).unwrap();
    assert_eq!(update.update_id, 7);
    assert!(update.message.is_none());
    assert!(parse_update(json!({"no_id": true})).is_none());
    let sticker = json!({"update_id": 8, "message": {"message_id": 1, "chat": {"id": 5, "type": "private"}, "sticker": {"emoji": "😂"}}});
    let update = parse_update(sticker).unwrap();
    assert!(update.message.unwrap().has_non_text_content());
}

/// A name that does not resolve (`.invalid` never does, RFC 6761): no connection was made,
/// nothing was sent, so the message is sent again later, never taken as "most likely
/// arrived". (Before, the lookup failure counted as a lost answer.)
#[test]
fn a_failed_name_lookup_is_never_sent() {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let err = agent.get("http://gigabot-test.invalid/bot1:x/getMe").call().unwrap_err();
    assert!(retry::never_sent(&err), "{err:?}");
    let refused = agent.get("http://127.0.0.1:1/").call().unwrap_err();
    assert!(retry::never_sent(&refused), "{refused:?}");
}

/// What a failure of a call does next, as a table: (method, failure, flood policy, tries
/// failed before) → the pause before the next try, or none (give up and return the error).
#[test]
fn when_a_call_is_tried_again() {
    use retry::pause_before_retry;
    let server = || ErrorKind::Server("Internal Server Error: restart (500)".into());
    let lost = || ErrorKind::Lost("connection reset".into());
    let secs = |s: u64| Some(Duration::from_secs(s));
    // 429: waited out up to a minute for an answer, never for a notice; polls always.
    assert_eq!(
        pause_before_retry("sendMessage", &ErrorKind::RetryAfter(7), OnFlood::Wait, 0),
        secs(7)
    );
    assert_eq!(
        pause_before_retry("sendMessage", &ErrorKind::RetryAfter(61), OnFlood::Wait, 0),
        None
    );
    assert_eq!(
        pause_before_retry("sendMessage", &ErrorKind::RetryAfter(1), OnFlood::GiveUp, 0),
        None
    );
    assert_eq!(
        pause_before_retry("getUpdates", &ErrorKind::RetryAfter(3600), OnFlood::Wait, 0),
        secs(60)
    );
    // A 5xx on a call about one chat: four tries; on polling: for as long as it lasts.
    for failures in 0..3 {
        let pause = pause_before_retry("sendMessage", &server(), OnFlood::Wait, failures);
        assert!(pause.is_some_and(|p| p >= Duration::from_secs(1)), "try {failures}: {pause:?}");
    }
    assert_eq!(pause_before_retry("sendMessage", &server(), OnFlood::Wait, 3), None);
    assert!(pause_before_retry("getUpdates", &server(), OnFlood::Wait, 30).is_some());
    // A lost answer: a message may have arrived, so it is not sent again; a poll is.
    assert_eq!(pause_before_retry("sendMessage", &lost(), OnFlood::Wait, 0), None);
    assert!(pause_before_retry("getUpdates", &lost(), OnFlood::Wait, 0).is_some());
    // Refusals and a revoked token: never.
    assert_eq!(pause_before_retry("getUpdates", &ErrorKind::Unauthorized, OnFlood::Wait, 0), None);
}
