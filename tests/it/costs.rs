//! What answers cost the owner (issue 24, the parts done): one GigaChat session per
//! conversation, so its prompt is cached; billed tokens (total minus cached) in the log line,
//! `/stats` and the daily budget; the balance in `check` and /stats; the admins warned before
//! the package runs out, and when it has.

use crate::core::{WAIT, World};
use crate::fake_gigachat::{FakeGigaChat, FakeGigaChatOptions};
use crate::fake_telegram::{self as tg, ANNA, FakeTelegram, GROUP, IVAN};
use crate::harness::{self, BotEnv, open_state};

#[test]
fn cached_tokens_are_shown_and_not_counted_against_the_daily_budget() {
    let w = World::start_with(&format!("[bot]\nadmins = [{IVAN}]\n"));
    w.ask("Что такое ток?");
    w.ask("А напряжение?"); // the same session repeats the prompt's start: cached
    let first = w.gc.usage_of(0).expect("answered");
    let second = w.gc.usage_of(1).expect("answered");
    assert!(second.precached_prompt_tokens > 0, "{second:?}");
    // The log line says all four figures; the user's day counts what is billed.
    let log = w.bot.log();
    let cached = format!("cached={}", second.precached_prompt_tokens);
    assert!(
        log.contains(&format!("tokens={} prompt=", second.total_tokens)) && log.contains(&cached),
        "{log}"
    );
    let today: i64 = open_state(&w.env.path("gigabot.db"))
        .query_row("SELECT tokens_today FROM users WHERE id = ?1", [IVAN], |r| r.get(0))
        .unwrap();
    assert_eq!(today as u64, first.billed() + second.billed());
    assert!(second.billed() < second.total_tokens);
    // /stats: the total and how much of it the cache gave.
    let stats = w.ask("/stats").join("\n");
    let total = first.total_tokens + second.total_tokens;
    let from_cache = first.precached_prompt_tokens + second.precached_prompt_tokens;
    let share = from_cache * 100 / total;
    let line = format!(
        "всего: {total}, из них из кэша GigaChat (не оплачиваются): {from_cache} ({share}%)"
    );
    assert!(stats.contains(&line), "{stats}");
}

#[test]
fn check_shows_the_balance_or_that_the_account_pays_as_it_goes() {
    let w = World::start();
    let env = BotEnv::new(&w.tg, &w.gc);
    let (out, _) = harness::text(&env.run(&["check"]));
    assert!(out.contains("• Баланс GigaChat: оплата по факту"), "{out}");
    w.gc.set_balance(&[("GigaChat-2-Max", 991_490), ("embeddings", 5000)]);
    let (out, _) = harness::text(&env.run(&["check"]));
    let line = "• Баланс GigaChat, токенов: GigaChat-2-Max — 991490, embeddings — 5000";
    assert!(out.contains(line), "{out}");
}

/// The running bot reads the balance once it polls, off the path of any question, and /stats
/// shows the last figure it read.
#[test]
fn the_running_bot_reads_the_balance_at_start_and_not_per_answer() {
    let w = World::start_with(&format!("[bot]\nadmins = [{IVAN}]\n"));
    for question in ["Первый", "Второй", "Третий"] {
        w.ask(question);
    }
    assert_eq!(w.gc.balance_requests().len(), 1, "{}", w.gc.dump());
    let stats = w.ask("/stats").join("\n");
    assert!(stats.ends_with("Баланс GigaChat: оплата по факту (пакетов токенов нет)"), "{stats}");
}

/// Both fakes, a prepaid account with `left` tokens for the configured model, and a bot with
/// Ivan and Anna as admins (both wrote to it before), started and polling.
fn prepaid_bot(left: i64, config: &str) -> World {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start();
    gc.set_balance(&[("GigaChat-2-Max", left), ("embeddings", 5000)]);
    tg.add_chat(tg::chat(IVAN));
    tg.add_chat(tg::chat(ANNA));
    tg.add_chat(tg::chat(GROUP));
    let mut env = BotEnv::new(&tg, &gc);
    env.config(&format!(
        "[telegram]\npoll_timeout_secs = 10\n[bot]\nadmins = [{IVAN}, {ANNA}]\n{config}"
    ));
    let bot = env.spawn(&[]);
    tg.wait_until(WAIT, "the bot polls", |t| t.polling());
    World { tg, gc, env, bot }
}

/// The texts sent to `chat` that are the low-balance or the used-up warning.
fn warnings(w: &World, chat: i64) -> Vec<String> {
    let sent = w.tg.sent_to(chat).into_iter().map(|m| m.text);
    sent.filter(|text| text.contains("пакет") && text.contains("GigaChat-2-Max")).collect()
}

#[test]
fn a_low_balance_warns_each_admin_privately_once_a_day_even_across_restarts() {
    let mut w = prepaid_bot(4321, "");
    w.tg.wait_until(WAIT, "both admins warned", |_| {
        warnings(&w, IVAN).len() == 1 && warnings(&w, ANNA).len() == 1
    });
    let warning = &warnings(&w, IVAN)[0];
    assert!(
        warning.contains("осталось 4321") && warning.contains("low_balance_tokens"),
        "{warning}"
    );
    // Questions in a group and a restart the same day warn no one again, and never the group.
    let id = w.tg.push_text(GROUP, IVAN, "@SomeBot Что такое ток?");
    w.answer_to(id);
    w.bot.stop();
    w.bot = w.env.spawn(&[]);
    w.tg.wait_until(WAIT, "the bot polls again", |t| t.polling());
    w.ask("Ещё вопрос");
    assert_eq!(w.gc.balance_requests().len(), 2, "once per start: {}", w.gc.dump());
    assert_eq!((warnings(&w, IVAN).len(), warnings(&w, ANNA).len()), (1, 1));
    assert!(warnings(&w, GROUP).is_empty());
}

#[test]
fn a_402_warns_the_admins_at_once_and_the_user_gets_the_polite_error() {
    // Over the threshold at start: no warning; the first answer then uses the package up.
    let w = prepaid_bot(20_000, "");
    let first = w.ask("Первый вопрос");
    assert!(first[0].starts_with("Ответ"), "{first:?}");
    assert!(warnings(&w, ANNA).is_empty(), "{:?}", w.tg.sent_to(ANNA));
    w.gc.set_balance(&[("GigaChat-2-Max", 0)]);
    let id = w.tg.push_text(ANNA, ANNA, "Второй вопрос");
    let answer = w.answer_to(id);
    assert_eq!(answer, ["У владельца бота закончились токены GigaChat (402). Попробуйте позже."]);
    let to_anna = warnings(&w, ANNA);
    assert!(to_anna.len() == 1 && to_anna[0].contains("402"), "{to_anna:?}");
    assert_eq!(warnings(&w, IVAN).len(), 1);
    // The next 402 the same day warns no one again; the user is told again.
    assert_eq!(w.ask("Третий")[0], answer[0]);
    assert_eq!((warnings(&w, IVAN).len(), warnings(&w, ANNA).len()), (1, 1));
}

#[test]
fn no_balance_warning_when_it_is_turned_off() {
    let w = prepaid_bot(0, "low_balance_tokens = 0\n");
    let answer = w.ask("Вопрос");
    assert_eq!(answer, ["У владельца бота закончились токены GigaChat (402). Попробуйте позже."]);
    assert!(warnings(&w, IVAN).is_empty() && warnings(&w, ANNA).is_empty());
    assert!(w.ask("/stats").join("\n").contains("GigaChat-2-Max — 0"));
}

/// The free model for individuals (issue 24, item 5): GigaChat-3-Ultra on the new host,
/// `base_url = "https://api.giga.chat/v1"`, with the same key and scope. `check` finds the
/// model there, answers come from it, and a file it does not take is one clear sentence.
#[test]
fn the_free_model_on_the_new_host_is_checked_and_answers() {
    let tg = FakeTelegram::start();
    let gc = FakeGigaChat::start_with(FakeGigaChatOptions::freemium());
    assert!(gc.base_url().ends_with("/v1") && !gc.base_url().contains("/api/"));
    let mut env = BotEnv::new(&tg, &gc);
    env.config("[telegram]\npoll_timeout_secs = 10\n[gigachat]\nmodel = \"GigaChat-3-Ultra\"\n");
    let (out, _) = harness::text(&env.run(&["check"]));
    assert!(out.contains("✓ gigachat: модель из конфига GigaChat-3-Ultra доступна"), "{out}");
    let bot = env.spawn(&[]);
    tg.wait_until(WAIT, "the bot polls", |t| t.polling());
    let w = World { tg, gc, env, bot };
    let answer = w.ask("Привет");
    assert!(answer[0].starts_with("Ответ (Отвечай как научный сотрудник): Привет"), "{answer:?}");
    let request = &w.gc.chat_requests()[0];
    assert_eq!((request.model.as_str(), request.status), ("GigaChat-3-Ultra", 200));
    let id = w.tg.push(tg::photo(IVAN, IVAN, Some("Что на схеме?")));
    let refused = "GigaChat не смог прочитать этот файл (ошибка 422) — попробуйте другой файл или спросите текстом.";
    assert_eq!(w.answer_to(id), [refused]);
    assert!(w.bot.log().contains("attachments are not supported by this model"));
    let uploads = w.gc.file_requests();
    assert!(uploads.iter().all(|(_, path, _)| path.starts_with("/v1/files")), "{uploads:?}");
}
