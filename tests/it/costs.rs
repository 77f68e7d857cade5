//! What answers cost the owner (issue 24, the parts done): one GigaChat session per
//! conversation, so its prompt is cached; billed tokens (total minus cached) in the log line,
//! `/stats` and the daily budget; the balance in `check`.

use crate::core::World;
use crate::fake_telegram::IVAN;
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
