//! A kill at a chosen moment, then a restart: the user gets one answer per question. Each
//! test kills the bot where a bot that loses or repeats updates would show it: while it
//! answers (a bot that counts the update as handled before answering loses it), and after
//! it answered but before Telegram heard that it did (a bot that does not save what it
//! handled answers again, since Telegram delivers the update again).
//! Kills mid-stream and mid multi-part answer are in `streaming`.

use crate::core::{WAIT, World};
use crate::fake_telegram::IVAN;
use crate::harness::sigkill;

/// Asks a question and kills the bot in its next call of `method`; returns the question's
/// update id.
fn kill_at(w: World, method: &str, question: &str) -> (World, i64) {
    let pid = w.bot.pid();
    w.tg.set_kill_hook(method, 1, move || sigkill(pid));
    let id = w.tg.push_text(IVAN, IVAN, question);
    w.tg.wait_until(WAIT, "the kill", |t| !t.kill_hook_pending());
    (w, id)
}

fn restart(w: World) -> World {
    let World { tg, gc, env, bot } = w;
    drop(bot);
    let bot = env.spawn(&[]);
    tg.wait_until(WAIT, "the bot polls again", |t| t.polling());
    World { tg, gc, env, bot }
}

#[test]
fn killed_while_sending_the_answer_the_bot_answers_once_after_the_restart() {
    let w = World::start();
    w.ask("разминка");
    let (w, id) = kill_at(w, "sendRichMessage", "Что такое закон Ома?");
    assert!(w.tg.replies_to(id).is_empty(), "the answer never reached Telegram");
    let w = restart(w);
    w.tg.wait_until(WAIT, "the answer after the restart", |t| {
        t.replies_to(id).len() == 1 && t.confirmed_offset() > id
    });
    let replies = w.tg.replies_to(id);
    assert_eq!(replies.len(), 1, "{}", w.tg.dump());
    assert!(replies[0].text.contains("закон Ома"), "{:?}", replies[0].text);
}

#[test]
fn killed_after_answering_before_telegram_heard_of_it_the_bot_does_not_answer_again() {
    let w = World::start();
    w.ask("разминка");
    // The poll after the answer dies: Telegram never learns the update was handled and
    // delivers it again to the next bot.
    let (w, id) = kill_at(w, "getUpdates", "Что такое закон Ома?");
    assert_eq!(w.tg.replies_to(id).len(), 1, "answered before the kill");
    assert!(w.tg.confirmed_offset() <= id, "Telegram still holds the update");
    let w = restart(w);
    let next = w.tg.push_text(IVAN, IVAN, "А сила тока?");
    w.tg.wait_until(WAIT, "the next question answered", |t| {
        t.replies_to(next).len() == 1 && t.confirmed_offset() > next
    });
    assert_eq!(w.tg.replies_to(id).len(), 1, "answered twice: {}", w.tg.dump());
    // Nor was GigaChat asked (and paid) again: the warm-up, the question, the next one.
    assert_eq!(w.gc.chat_requests().len(), 3);
}
