//! The students' exercises of docs/lesson.md, §7. Each fails until the exercise is done:
//! `cargo test --test it exercises::exercise_ -- --ignored`. And `the_hints_solve_the_exercises` does
//! each exercise the way its hint says, in a copy of the project, and runs their tests and
//! the ones an exercise could break: a hint that leads nowhere fails here, not in class.
//! It builds the copy (minutes the first time), so `.ci/run` runs it on its own, after
//! the suite: `cargo test --test it the_hints_solve -- --ignored`.

use std::path::Path;
use std::process::Command;

use crate::core::{WAIT, World};
use crate::fake_telegram::{self as tg, IVAN};

const EXERCISE: &str = "an exercise of docs/lesson.md: run with --ignored once solved";

#[test]
#[ignore = "an exercise of docs/lesson.md: run with --ignored once solved"]
fn exercise_third_style() {
    // The student's own config.toml, which the bot reads from the folder it runs in.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml");
    let config = std::fs::read_to_string(path)
        .unwrap_or_else(|_| panic!("{EXERCISE}: copy config.example.toml to config.toml first"));
    let w = World::start_with(&format!("{config}\n"));
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
    assert!(answer.contains('4'), "{EXERCISE}: /reset should say it forgot 4 messages: {answer:?}");
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

/// Each exercise solved as its hint in docs/lesson.md says: the file and the place the hint
/// names, and a change of the size a student would make.
const SOLUTIONS: &[(&str, &str, &str)] = &[
    // 2. "Action::Reset in Bot::act: self.store.history(chat_id).len() before
    //    forget_chat; the text is RESET_DONE in texts.rs."
    (
        "src/bot.rs",
        "                self.store.forget_chat(chat_id);
                self.notice(chat_id, reply_to, texts::RESET_DONE, None)",
        "                let forgotten = self.store.history(chat_id).len();
                self.store.forget_chat(chat_id);
                let text = texts::RESET_DONE.replace(\"{n}\", &forgotten.to_string());
                self.notice(chat_id, reply_to, &text, None)",
    ),
    (
        "src/texts.rs",
        "pub const RESET_DONE: &str = \"Я забыл наш разговор. Начнём заново!\";",
        "pub const RESET_DONE: &str = \"Я забыл {n} сообщения нашего разговора. Начнём заново!\";",
    ),
    // 3. "command_action in commands.rs: a branch "about" with cx.config.gigachat.model;
    //    the menu is MENU in texts.rs."
    (
        "src/commands.rs",
        "        \"mode\" => decide_mode(cx, command.args.trim()),",
        "        \"about\" => Action::Reply(format!(\"Я gigabot и отвечаю через {}.\", cx.config.gigachat.model), None),
        \"mode\" => decide_mode(cx, command.args.trim()),",
    ),
    (
        "src/texts.rs",
        "    (\"help\", \"Справка\"),",
        "    (\"help\", \"Справка\"),
    (\"about\", \"О боте\"),",
    ),
    // 4. "the field voice of Message (incoming.rs) and the branch let Some(text) =
    //    message.text… in decide_message (commands.rs); the text goes into texts.rs."
    (
        "src/commands.rs",
        "        return decision(Kind::NonText, Action::Notice(texts::NOT_TEXT.into()));",
        "        let text = match message.voice.is_some() {
            true => \"Голосовые я пока не слушаю — напишите, пожалуйста, текстом.\",
            false => texts::NOT_TEXT,
        };
        return decision(Kind::NonText, Action::Notice(text.into()));",
    ),
];

#[test]
#[ignore = "builds a copy of the project: .ci/run runs it after the suite"]
fn the_hints_solve_the_exercises() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let copy = std::env::temp_dir().join(format!("gigabot-exercises-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copy);
    for item in ["Cargo.toml", "Cargo.lock", "config.example.toml", "ARCHITECTURE.md"] {
        std::fs::copy(root.join(item), copy_path(&copy, item)).unwrap();
    }
    for dir in ["src", "tests", "examples", "docs"] {
        copy_dir(&root.join(dir), &copy.join(dir));
    }
    // 1. "Copy config.example.toml to config.toml and add a [[styles]] with id pirate."
    let example = std::fs::read_to_string(root.join("config.example.toml")).unwrap();
    let pirate =
        "\n[[styles]]\nid = \"pirate\"\ntitle = \"Пират\"\nprompt = \"Отвечай как пират\"\n";
    std::fs::write(copy.join("config.toml"), format!("{example}{pirate}")).unwrap();
    for (file, from, to) in SOLUTIONS {
        let path = copy.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(from),
            "the hint's place is not in {file} any more: update the exercise in docs/lesson.md and here:\n{from}"
        );
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }
    // The exercises, and the tests an exercise could break (the menu, the replies to
    // stickers and voice notes, /start's list).
    let status = Command::new(env!("CARGO"))
        .args(["test", "--test", "it", "--", "--include-ignored", "exercise_"])
        .args(["core::stickers", "core::start_names", "cli::a_webhook_is_deleted"])
        .current_dir(&copy)
        // Its own target folder, kept between runs: the tests under way use the main one.
        .env("CARGO_TARGET_DIR", root.join("target/exercises"))
        .status()
        .expect("run cargo in the copy");
    let _ = std::fs::remove_dir_all(&copy);
    assert!(status.success(), "the exercises, solved as the hints say, fail (output above)");
}

fn copy_path(copy: &Path, item: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(copy).unwrap();
    copy.join(item)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}
