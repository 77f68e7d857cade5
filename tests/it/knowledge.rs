//! The reference desk (issue 25): the owner's documents under `knowledge.dir` embedded into
//! the state, the passages near a question sent with it and named under the answer; only
//! what changed costs anything; unreadable files skipped with a line; failures lose nothing.

use std::fs;
use std::os::unix::fs::symlink;
use std::time::Duration;

use crate::core::{WAIT, World};
use crate::fake_gigachat::FakeGigaChat;
use crate::fake_telegram::{self as tg, FakeTelegram, IVAN};
use crate::harness::{self, BotEnv};

const PRICES: &str =
    "# Цены\n\nПицца Маргарита стоит 450 рублей, пицца Пепперони стоит 520 рублей.\n";
const HOURS: &str =
    "# Часы работы\n\nКлуб открыт по субботам и воскресеньям с десяти утра до восьми вечера.\n";
const RULES: &str = "Правила клуба: приходить без опозданий, шахматные часы не ронять.\n";

/// A bot whose `knowledge.dir` holds prices.md, docs/hours.md and rules.txt, started and
/// polling; Ivan is an admin.
fn desk() -> World {
    let (tg, gc) = (FakeTelegram::start(), FakeGigaChat::start());
    let env = desk_env(&tg, &gc);
    let bot = env.spawn(&[]);
    tg.wait_until(WAIT, "the bot polls", |t| t.polling());
    World { tg, gc, env, bot }
}

fn desk_env(tg: &FakeTelegram, gc: &FakeGigaChat) -> BotEnv {
    let mut env = BotEnv::new(tg, gc);
    let docs = env.path("docs");
    fs::create_dir_all(docs.join("club")).unwrap();
    fs::write(docs.join("prices.md"), PRICES).unwrap();
    fs::write(docs.join("club/hours.md"), HOURS).unwrap();
    fs::write(docs.join("rules.txt"), RULES).unwrap();
    env.config(&format!(
        "[telegram]\npoll_timeout_secs = 10\n[bot]\nadmins = [{IVAN}]\n[knowledge]\ndir = \"docs\"\n"
    ));
    env
}

/// The inputs of every embeddings call so far.
fn embedded(gc: &FakeGigaChat) -> Vec<Vec<String>> {
    gc.embedding_requests().into_iter().map(|r| r.inputs).collect()
}

#[test]
fn the_question_carries_the_right_passage_and_the_answer_names_its_file() {
    let w = desk();
    // Three documents, one call at start: their passages go together.
    let calls = embedded(&w.gc);
    assert!(calls.len() == 1 && calls[0].len() == 3, "{calls:?}");
    let answer = w.ask("Сколько стоит пицца Маргарита?").join("\n");
    let asked = w.gc.chat_requests().pop().unwrap();
    let question = asked.last_user().unwrap();
    assert!(
        question.contains("Пицца Маргарита стоит 450 рублей") && question.contains("prices.md"),
        "{question}"
    );
    assert!(!question.contains("субботам") && !question.contains("шахматные"), "{question}");
    assert!(question.ends_with("Вопрос: Сколько стоит пицца Маргарита?"), "{question}");
    assert!(answer.ends_with("Источники: prices.md"), "{answer}");
    // The style still applies, and memory keeps the question alone.
    assert_eq!(asked.system(), Some("Отвечай как научный сотрудник"));
    let next = w.ask("Когда открыт клуб по субботам?").join("\n");
    assert!(next.ends_with("Источники: club/hours.md"), "{next}");
    let asked = w.gc.chat_requests().pop().unwrap();
    assert_eq!(asked.messages[1].content, "Сколько стоит пицца Маргарита?");
    // Embedding tokens apart from chat tokens.
    let stats = w.ask("/stats").join("\n");
    let tokens = w.gc.embedding_tokens();
    assert!(
        stats.contains(&format!("Токенов на поиск по документам (эмбеддинги): {tokens}")),
        "{stats}"
    );
}

#[test]
fn a_question_the_documents_do_not_touch_is_answered_as_before() {
    let w = desk();
    let answer = w.ask("Почему небо голубое?").join("\n");
    assert_eq!(w.gc.chat_requests()[0].last_user(), Some("Почему небо голубое?"));
    assert!(!answer.contains("Источники"), "{answer}");
    assert_eq!(embedded(&w.gc).len(), 2, "the question was embedded once");
}

#[test]
fn a_restart_embeds_only_what_changed_and_drops_what_is_gone() {
    let mut w = desk();
    let docs = w.env.path("docs");
    w.bot.stop();
    w.bot = w.env.spawn(&[]);
    w.bot.wait_log("Бот запущен", WAIT);
    assert_eq!(embedded(&w.gc).len(), 1, "nothing changed, nothing embedded");
    fs::write(docs.join("club/hours.md"), HOURS.replace("восьми", "девяти")).unwrap();
    fs::remove_file(docs.join("prices.md")).unwrap();
    w.bot.stop();
    w.bot = w.env.spawn(&[]);
    w.bot.wait_log("Бот запущен", WAIT);
    let calls = embedded(&w.gc);
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(calls[1].len() == 1 && calls[1][0].contains("девяти вечера"), "{calls:?}");
    let answer = w.ask("Сколько стоит пицца Маргарита?").join("\n");
    assert!(!answer.contains("prices.md"), "{answer}");
    let question = w.gc.chat_requests().pop().unwrap();
    assert!(!question.last_user().unwrap().contains("450"), "{question:?}");
}

#[test]
fn unreadable_files_are_skipped_with_a_line_naming_them() {
    let (tg, gc) = (FakeTelegram::start(), FakeGigaChat::start());
    let env = desk_env(&tg, &gc);
    let docs = env.path("docs");
    fs::write(docs.join("latin1.md"), b"Caf\xe9 au lait\n").unwrap();
    fs::write(docs.join("binary.txt"), b"text\0with NUL\n").unwrap();
    fs::write(docs.join("photo.png"), b"\x89PNG\r\n").unwrap();
    fs::write(docs.join("empty.md"), "\n \n").unwrap();
    fs::write(env.path("secret.md"), "не для бота\n").unwrap();
    symlink(env.path("secret.md"), docs.join("outside.md")).unwrap();
    let out = env.run(&["index"]);
    let (stdout, log) = harness::text(&out);
    assert!(out.status.success(), "{stdout}{log}");
    for (name, why) in [
        ("latin1.md", "not UTF-8"),
        ("binary.txt", "NUL"),
        ("photo.png", "only .md and .txt"),
        ("empty.md", "empty"),
        ("outside.md", "leads out of knowledge.dir"),
    ] {
        assert!(
            log.contains(&format!("knowledge: {name} is skipped: ")) && log.contains(why),
            "{name}: {log}"
        );
    }
    assert!(stdout.contains("документов 3"), "{stdout}");
    let inputs = embedded(&gc).concat().join("\n");
    assert!(!inputs.contains("не для бота") && !inputs.contains("Caf"), "{inputs}");
}

#[test]
fn an_embeddings_failure_at_question_time_still_answers() {
    let w = desk();
    w.gc.fail_next_embeddings(503, "{\"status\":503,\"message\":\"Service Unavailable\"}");
    let answer = w.ask("Сколько стоит пицца Маргарита?");
    assert!(answer[0].starts_with("Ответ"), "{answer:?}");
    assert!(!answer.join("\n").contains("Источники"), "{answer:?}");
    assert!(w.bot.log().contains("the question goes without the documents"), "{}", w.bot.log());
}

#[test]
fn an_input_the_service_finds_too_long_is_cut_until_it_fits() {
    let (tg, gc) = (FakeTelegram::start(), FakeGigaChat::start());
    gc.set_embedding_input_limit(300);
    let env = desk_env(&tg, &gc);
    let long = "Шахматный клуб проводит турниры каждый месяц. ".repeat(20); // 920 characters
    fs::write(env.path("docs/tournaments.md"), format!("# Турниры\n\n{long}\n")).unwrap();
    let (stdout, log) = harness::text(&env.run(&["index"]));
    assert!(stdout.contains("документов 4"), "{stdout}{log}");
    let requests = gc.embedding_requests();
    assert!(requests.iter().any(|r| r.status == 413), "{requests:?}");
    let sent: usize = requests
        .iter()
        .filter(|r| r.status == 200)
        .flat_map(|r| &r.inputs)
        .map(|input| input.matches("турниры").count())
        .sum();
    assert_eq!(sent, 20, "every sentence embedded once");
}

/// `gigabot index` killed at any moment leaves an index that holds whole documents only,
/// and the next run completes it, embedding again at most the gathering the kill cut short.
#[test]
fn a_kill_during_index_leaves_an_index_the_next_run_completes() {
    let (tg, gc) = (FakeTelegram::start(), FakeGigaChat::start());
    let env = desk_env(&tg, &gc);
    for i in 0..1000 {
        let note = format!("Заметка номер {i}: шахматы.\n");
        fs::write(env.path(&format!("docs/note{i:04}.md")), note).unwrap();
    }
    let (check, _) = harness::text(&env.run(&["check"]));
    assert!(check.contains("индекса ещё нет"), "{check}");
    // 1003 passages: 900 gathered and saved together (10 calls), then the rest (2 calls);
    // the kill lands in the second gathering.
    gc.set_embedding_delay(Duration::from_millis(100));
    let mut index = env.spawn(&["index"]);
    gc.wait_until(WAIT, "the first gathering saved", |gc| gc.embedding_requests().len() >= 11);
    index.signal("KILL");
    index.wait_exit(WAIT);
    gc.set_embedding_delay(Duration::ZERO);
    let before = embedded(&gc);
    assert!(before.len() < 12, "killed before the end: {}", before.len());
    let (check, _) = harness::text(&env.run(&["check"]));
    assert!(check.contains("файлы в knowledge.dir изменились"), "{check}");
    let (stdout, log) = harness::text(&env.run(&["index"]));
    assert!(stdout.contains("документов 1003"), "{stdout}{log}");
    let all = embedded(&gc).concat();
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 1003);
    assert!(all.len() - unique.len() <= 900, "at most a gathering again: {}", all.len());
    let (check, _) = harness::text(&env.run(&["check"]));
    assert!(check.contains("✓ справочная: в индексе документов 1003, фрагментов 1003"), "{check}");
    // Every document is in the index once, whole.
    let state = harness::open_state(&env.path("gigabot.db"));
    let rows: i64 = state.query_row("SELECT count(*) FROM passages", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 1003);
}

/// Guest mode answers from the documents too: a service bot summoned into any chat.
#[test]
fn a_guest_question_is_answered_from_the_documents() {
    let w = desk();
    let (id, _) = w.tg.push_guest(tg::chat(-4242), IVAN, "@SomeBot Сколько стоит пицца Маргарита?");
    w.tg.wait_until(WAIT, "the guest answer", |t| t.confirmed_offset() > id && t.polling());
    let answers = w.tg.guest_answers();
    assert_eq!(answers.len(), 1, "{}", w.tg.dump());
    assert!(answers[0].text.ends_with("Источники: prices.md"), "{}", answers[0].text);
    let question = w.gc.chat_requests().pop().unwrap();
    assert!(question.last_user().unwrap().contains("450 рублей"), "{question:?}");
}

/// `check` says which embedder models the key has when `knowledge.model` is not one of them
/// (a chat model, say), and `index` then fails loudly, keeping nothing half-built.
#[test]
fn a_chat_model_as_the_embedder_is_named_by_check_and_index_fails() {
    let (tg, gc) = (FakeTelegram::start(), FakeGigaChat::start());
    let mut env = desk_env(&tg, &gc);
    let (check, _) = harness::text(&env.run(&["check"]));
    assert!(!check.contains("модели эмбеддингов"), "{check}");
    env.config("[knowledge]\ndir = \"docs\"\nmodel = \"GigaChat-2-Max\"\n");
    let out = env.run(&["check"]);
    let (check, _) = harness::text(&out);
    assert!(
        check.contains("✗ справочная: модели эмбеддингов GigaChat-2-Max нет в списке: задайте knowledge.model одной из: Embeddings, Embeddings-2, EmbeddingsGigaR"),
        "{check}"
    );
    assert_eq!(out.status.code(), Some(1));
    let out = env.run(&["index"]);
    let (stdout, log) = harness::text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{log}");
    assert!(stdout.contains("404") && log.contains("keep what the index had"), "{stdout}{log}");
    assert!(stdout.contains("документов 3, из них заново проиндексировано 0"), "{stdout}");
}

/// A document whose content the service refuses (422) holds back no other: the call is made
/// again document by document, the refused one is left out with a line, and the rest is saved.
#[test]
fn a_refused_document_holds_back_no_other() {
    let (tg, gc) = (FakeTelegram::start(), FakeGigaChat::start());
    let env = desk_env(&tg, &gc);
    let refused = "{\"status\":422,\"message\":\"Invalid params: input is refused\"}";
    gc.fail_next_embeddings(422, refused); // the three documents together
    gc.fail_next_embeddings(422, refused); // then club/hours.md alone, the first by name
    let out = env.run(&["index"]);
    let (stdout, log) = harness::text(&out);
    assert!(out.status.success(), "{stdout}{log}");
    assert!(
        log.contains("knowledge: club/hours.md is skipped: gigachat: request refused (422"),
        "{log}"
    );
    assert!(stdout.contains("документов 3, из них заново проиндексировано 2"), "{stdout}");
    let calls: Vec<usize> = gc.embedding_requests().iter().map(|r| r.inputs.len()).collect();
    assert_eq!(calls, [3, 1, 1, 1]);
    let (check, _) = harness::text(&env.run(&["check"]));
    assert!(check.contains("в индексе документов 2") && check.contains("изменились"), "{check}");
}

/// `index` without a folder, or while the bot holds the state, says what to do.
#[test]
fn index_says_what_to_do_without_a_folder_or_beside_a_running_bot() {
    let (tg, gc) = (FakeTelegram::start(), FakeGigaChat::start());
    let mut env = BotEnv::new(&tg, &gc);
    let out = env.run(&["index"]);
    let (_, log) = harness::text(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(log.contains("knowledge.dir is not set"), "{log}");
    env = desk_env(&tg, &gc);
    let _bot = env.spawn(&[]);
    tg.wait_until(WAIT, "the bot polls", |t| t.polling());
    let out = env.run(&["index"]);
    let (_, log) = harness::text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains("another gigabot is running"), "{log}");
}
