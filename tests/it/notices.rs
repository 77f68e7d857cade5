//! Notices (issue 12, item 10): "text only", "too long", "not allowed", "over the limit".
//! A user gets a few, then silence for a while, and a 429 on a notice is not waited out:
//! one user's flood never holds up everyone else's answers.

use std::time::{Duration, Instant};

use crate::core::{WAIT, World};
use crate::fake_telegram::{self as tg, ANNA, Fault, IVAN};

/// The bot's notice budget: at most this many per chat in its window (owner.rs).
const BUDGET: usize = 10;

/// Pushes `updates` and waits until the bot has handled them all; returns their ids.
fn push_all(w: &World, updates: Vec<serde_json::Value>) -> Vec<i64> {
    let ids: Vec<i64> = updates.into_iter().map(|u| w.tg.push(u)).collect();
    let last = *ids.last().expect("at least one update");
    w.tg.wait_until(WAIT, "all updates handled", |t| t.confirmed_offset() > last && t.polling());
    ids
}

/// How many of these updates got a reply.
fn replied(w: &World, ids: &[i64]) -> usize {
    ids.iter().filter(|&&id| !w.tg.replies_to(id).is_empty()).count()
}

#[test]
fn forty_stickers_get_a_handful_of_replies_and_the_next_question_an_answer() {
    let w = World::start();
    // Without the fake's flood control the old bot answers all forty quickly, so the
    // count, not a timeout, is what fails; the 429 case is the test below.
    w.tg.set_flood_limits(None);
    let ids = push_all(&w, (0..40).map(|_| tg::sticker(IVAN, IVAN)).collect());
    let replies = replied(&w, &ids);
    assert!(
        (1..=BUDGET).contains(&replies),
        "40 stickers got {replies} replies, at most {BUDGET} expected"
    );
    // The first ones are the ones answered: a flood is cut off, not sampled.
    assert_eq!(replied(&w, &ids[..replies]), replies);
    // The last of them says so, once: the silence after it is no mystery.
    let texts: Vec<String> =
        ids[..replies].iter().map(|&id| w.tg.replies_to(id)[0].text.clone()).collect();
    let said = |t: &String| t.contains("Следующие такие сообщения я пропущу: ближайшие 10 мин.");
    assert_eq!(texts.iter().filter(|t| said(t)).count(), 1, "{texts:#?}");
    assert!(said(texts.last().unwrap()), "{texts:#?}");
    assert!(
        w.bot.log().contains("notice suppressed"),
        "the log says why the rest got nothing:\n{}",
        w.bot.log()
    );
    // A question is not a notice: it is answered as ever.
    let answer = w.ask("А теперь вопрос словами");
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert!(answer[0].starts_with("Ответ ("), "{answer:?}");
}

#[test]
fn a_sticker_and_then_a_voice_note_each_get_their_reply() {
    let w = World::start();
    let ids = push_all(&w, vec![tg::sticker(IVAN, IVAN), tg::voice(IVAN, IVAN)]);
    for id in ids {
        let replies = w.tg.replies_to(id);
        assert_eq!(replies.len(), 1, "update {id}: {replies:#?}");
        assert!(replies[0].text.contains("только текст"), "{replies:#?}");
    }
}

/// Telegram's flood control answers Ivan's notice with "retry after 30": the bot drops that
/// notice instead of sleeping 30 s, so Anna, who asked right after, is answered at once.
#[test]
fn a_429_on_one_user_s_notice_does_not_hold_up_another_user_s_answer() {
    let w = World::start();
    w.tg.fail_next("sendMessage", Fault::TooManyRequests(30));
    let stickers: Vec<i64> = (0..3).map(|_| w.tg.push(tg::sticker(IVAN, IVAN))).collect();
    let pushed = Instant::now();
    let question = w.tg.push_text(ANNA, ANNA, "Что такое ток?");
    // Far below the 30 s the 429 asked for; no tight timing.
    w.tg.wait_until(Duration::from_secs(10), "Anna is answered", |t| {
        !t.replies_to(question).is_empty()
    });
    assert!(pushed.elapsed() < Duration::from_secs(10));
    assert!(w.tg.replies_to(question)[0].text.starts_with("Ответ ("));
    // The notice that met the 429 was dropped, not sent again later; the others went out.
    let calls = w.tg.calls_of("sendMessage");
    let refused = calls.iter().filter(|c| c.status == 429).count();
    assert_eq!(refused, 1, "{}", w.tg.dump());
    assert!(w.tg.replies_to(stickers[0]).is_empty(), "{}", w.tg.dump());
    assert_eq!(replied(&w, &stickers[1..]), 2, "{}", w.tg.dump());
    assert!(w.bot.log().contains("notice dropped"), "{}", w.bot.log());
}

/// "Not allowed" is a notice too: a stranger who keeps writing is refused a few times, and
/// the admin is still asked about them once.
#[test]
fn a_stranger_who_keeps_writing_is_refused_a_few_times_and_the_admin_asked_once() {
    const PETR: i64 = 222333444;
    let w = World::start_with(&format!("[bot]\nadmins = [{IVAN}]\nallowed_users = [555]\n"));
    w.tg.add_chat(tg::chat(IVAN));
    w.tg.set_flood_limits(None);
    let texts: Vec<_> =
        (0..12).map(|i| tg::private_text(PETR, &format!("Пустите, пожалуйста ({i})"))).collect();
    let ids = push_all(&w, texts);
    let refusals = replied(&w, &ids);
    assert!(
        (1..=BUDGET).contains(&refusals),
        "12 messages got {refusals} refusals, at most {BUDGET} expected"
    );
    assert!(w.tg.replies_to(ids[0])[0].text.contains(&PETR.to_string()));
    assert_eq!(w.tg.sent_to(IVAN).len(), 1, "the admin is asked once");
    assert!(w.gc.chat_requests().is_empty());
}

/// "Too many requests per minute" is a notice too.
#[test]
fn a_user_over_the_rate_limit_is_told_a_few_times_then_not_at_all() {
    let w = World::start_with("[bot]\nrequests_per_minute = 1\n");
    w.tg.set_flood_limits(None);
    let ids =
        push_all(&w, (0..12).map(|i| tg::private_text(IVAN, &format!("Вопрос {i}"))).collect());
    assert_eq!(w.gc.chat_requests().len(), 1, "one question within the limit");
    assert!(w.tg.replies_to(ids[0])[0].text.starts_with("Ответ ("));
    let told = replied(&w, &ids[1..]);
    assert!(
        (1..=BUDGET).contains(&told),
        "11 questions over the limit got {told} replies, at most {BUDGET} expected"
    );
    assert!(w.tg.replies_to(ids[1])[0].text.contains("в минуту"));
}
