//! gigabot's one integration-test binary (`cargo test --test it`).
//!
//! The tests drive the real bot binary against fakes of both networks it talks to, on
//! 127.0.0.1, and assert what a user would see. One binary instead of one per file: a single
//! build, shared helpers, and `cargo test --test it NAME` to pick tests.
//!
//! Layout:
//! - `http`: a tiny HTTP/1.1 server (keep-alive, chunked, fault injection) the fakes run on;
//! - `tg_html`: Telegram's HTML parse mode, as strict as TDLib's parser;
//! - `fake_telegram`: the Bot API (long polling, sending, editing, faults, update builders,
//!   rich messages, drafts and their Stop button); its `tg_rich` reads the HTML of rich
//!   messages (Bot API 10.1) strictly as the reference has it;
//! - `fake_gigachat`: OAuth and chat completions over real TLS with a throwaway CA; its
//!   `fake_embeddings` answers `/embeddings` with deterministic vectors for retrieval tests;
//! - `fakes_selftest`: tests of the fakes themselves, through real HTTP and TLS;
//! - `soak`: thousands of updates with random faults and SIGKILLs (`soak_full` is ignored);
//! - `properties`: proptest properties of the bot fed any update or response body
//!   (`PROPTEST_CASES=N` for a longer search; those of rendering and of the config are unit
//!   tests beside their modules).

mod cli;
mod context;
mod conversation;
mod core;
mod costs;
mod deploy;
mod exercises;
mod fake_embeddings;
mod fake_gigachat;
mod fake_salute;
mod fake_telegram;
mod fakes_selftest;
mod files;
mod guest;
mod hardening;
mod harness;
mod http;
mod knowledge;
mod lesson;
mod lesson_example;
mod notices;
mod operator;
mod owner;
mod pictures;
mod properties;
mod restarts;
mod rich;
mod soak;
mod state;
mod streaming;
mod tg_html;
mod tidy;
mod voice;
