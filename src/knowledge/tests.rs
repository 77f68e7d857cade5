use super::*;

/// (heading, text) of each passage.
fn cut(text: &str) -> Vec<(String, String)> {
    passages(text).into_iter().map(|p| (p.heading, p.text)).collect()
}

fn pair(heading: &str, text: &str) -> (String, String) {
    (heading.to_string(), text.to_string())
}

#[test]
fn a_document_is_cut_at_headings_and_between_paragraphs() {
    let text = "Вступление.\n\n\n# Цены\nПицца — 450 ₽.\n\nДоставка — 100 ₽.\n## Часы ##\nС 10 до 22.\n\n```sh\n# not a heading\n\necho\n```\n#hashtag stays text\n";
    let want = [
        pair("", "Вступление."),
        pair("Цены", "Пицца — 450 ₽.\n\nДоставка — 100 ₽."),
        pair("Часы", "С 10 до 22.\n\n```sh\n# not a heading\n\necho\n```\n#hashtag stays text"),
    ];
    assert_eq!(cut(text), want);
    assert!(cut("").is_empty() && cut("\n\n  \n").is_empty());
}

#[test]
fn passages_stay_within_their_size_and_lose_no_word() {
    let paragraph = "слово ".repeat(150); // 900 characters
    let text = format!("# A\n{paragraph}\n\n{paragraph}\n\n{}", "x".repeat(2500));
    let got = passages(&text);
    assert!(got.iter().all(|p| p.text.chars().count() <= PASSAGE_CHARS), "{got:?}");
    // Two paragraphs that do not fit together, then a word without spaces cut in three.
    assert_eq!(got.len(), 5, "{got:?}");
    let words: usize = got.iter().map(|p| p.text.matches("слово").count()).sum();
    assert_eq!(words, 300);
    assert_eq!(got[2..].iter().map(|p| p.text.len()).sum::<usize>(), 2500);
    assert_eq!(pieces("ab cd ef", 5), ["ab cd", "ef"]);
    assert_eq!(pieces("абвгд", 2), ["аб", "вг", "д"]);
}

#[test]
fn the_search_finds_the_nearest_passages_above_the_threshold() {
    let mut index = Index::default();
    assert!(index.push(10, &[1.0, 0.0, 0.0]));
    assert!(index.push(11, &[0.0, 2.0, 0.0])); // any length: scaled to 1
    assert!(index.push(12, &[1.0, 1.0, 0.0]));
    assert!(!index.push(13, &[1.0, 0.0]), "another model's length");
    let found = index.search(&[3.0, 0.1, 0.0], 2, 0.3);
    let ids: Vec<i64> = found.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [10, 12]);
    assert!(found[0].1 > 0.99 && (found[1].1 - 0.74).abs() < 0.02, "{found:?}");
    assert_eq!(index.search(&[0.0, 0.0, 1.0], 4, 0.3), [], "nothing near enough");
    assert_eq!(index.search(&[1.0, 0.0], 4, 0.0), [], "a query of another length");
    assert_eq!(index.search(&[0.0, 1.0, 0.0], 4, 0.0).len(), 3, "all, top_k allowing");
}

#[test]
fn the_question_carries_the_passages_and_the_answer_names_their_files() {
    let passage =
        |heading: &str, text: &str| Passage { heading: heading.into(), text: text.into() };
    let found = [
        ("prices.md".to_string(), passage("Цены", "Пицца — 450 ₽.")),
        ("faq.md".to_string(), passage("", "Доставка бесплатно.")),
        ("prices.md".to_string(), passage("Напитки", "Чай — 50 ₽.")),
    ];
    let prompt = with_passages("Сколько стоит пицца?", &found);
    assert!(prompt.starts_with(texts::KNOWLEDGE_INTRO), "{prompt}");
    assert!(prompt.contains("[1] prices.md — Цены\nПицца — 450 ₽."), "{prompt}");
    assert!(prompt.contains("[2] faq.md\nДоставка бесплатно."), "{prompt}");
    assert!(prompt.ends_with("Вопрос: Сколько стоит пицца?"), "{prompt}");
    assert_eq!(sources_line(&found), "Источники: prices.md, faq.md");
}

#[test]
fn a_fingerprint_changes_with_the_bytes_and_the_model() {
    let a = fingerprint("Embeddings", b"text");
    assert_eq!(a, fingerprint("Embeddings", b"text"));
    assert_ne!(a, fingerprint("Embeddings", b"texT"));
    assert_ne!(a, fingerprint("EmbeddingsGigaR", b"text"));
    assert_eq!(a.len(), 16);
}
