//! The students' exercises of docs/lesson.md, §7. Each fails until the exercise is done:
//! `cargo test --test it exercise -- --ignored`.

use crate::core::{WAIT, World};
use crate::fake_telegram::{self as tg, IVAN};

const EXERCISE: &str = "an exercise of docs/lesson.md: run with --ignored once solved";

#[test]
#[ignore = "an exercise of docs/lesson.md: run with --ignored once solved"]
fn exercise_third_style() {
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml"))
            .expect("config.example.toml");
    let w = World::start_with(&format!("{example}\n"));
    let answer = w.ask("/mode pirate").join("\n");
    assert!(
        answer.contains("Теперь я отвечаю в стиле"),
        "{EXERCISE}: /mode pirate said {answer:?}"
    );
}

#[test]
#[ignore = "an exercise of docs/lesson.md: run with --ignored once solved"]
fn exercise_reset_counts() {
    let w = World::start();
    w.ask("первый");
    w.ask("второй");
    let answer = w.ask("/reset").join("\n");
    assert!(
        answer.contains('4'),
        "{EXERCISE}: /reset should say it forgot 4 messages: {answer:?}"
    );
}

#[test]
#[ignore = "an exercise of docs/lesson.md: run with --ignored once solved"]
fn exercise_about() {
    let w = World::start();
    let answer = w.ask("/about").join("\n");
    assert!(
        answer.contains("GigaChat-2-Max"),
        "{EXERCISE}: /about should name the model: {answer:?}"
    );
    assert!(
        w.tg.commands().iter().any(|(c, _)| c == "about"),
        "{EXERCISE}: /about is not in the menu"
    );
}

#[test]
#[ignore = "an exercise of docs/lesson.md: run with --ignored once solved"]
fn exercise_voice() {
    let w = World::start();
    let id = w.tg.push(tg::voice(IVAN, IVAN));
    w.tg.wait_until(WAIT, "answered", |t| t.replies_to(id).len() == 1);
    let answer = &w.tg.replies_to(id)[0].text;
    assert!(
        answer.to_lowercase().contains("голосов"),
        "{EXERCISE}: a voice message got {answer:?}"
    );
    // Stickers keep the general refusal.
    let id = w.tg.push(tg::sticker(IVAN, IVAN));
    w.tg.wait_until(WAIT, "answered", |t| t.replies_to(id).len() == 1);
    assert!(!w.tg.replies_to(id)[0].text.contains("голосов"));
}
