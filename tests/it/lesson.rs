//! docs/lesson.md quotes the code; these tests keep the quotes true.

/// Every ```rust block in docs/lesson.md appears, line for line, in a file under src/ (its
/// folders too) or in
/// examples/lesson.rs (the lesson's bot in Rust, which the lesson walks through first).
#[test]
fn lesson_excerpts_are_verbatim_in_src() {
    let root = env!("CARGO_MANIFEST_DIR");
    let lesson = std::fs::read_to_string(format!("{root}/docs/lesson.md")).expect("docs/lesson.md");
    let sources: Vec<(String, String)> = rust_files(&format!("{root}/src"))
        .into_iter()
        .chain([format!("{root}/examples/lesson.rs").into()])
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read a source file");
            (path.display().to_string(), text)
        })
        .collect();
    let excerpts = rust_blocks(&lesson);
    assert!(excerpts.len() >= 10, "only {} excerpts found", excerpts.len());
    for excerpt in &excerpts {
        assert!(
            sources.iter().any(|(_, text)| text.contains(excerpt.as_str())),
            "this excerpt of docs/lesson.md is not in src/ or examples/lesson.rs any more; update the lesson:\n{excerpt}"
        );
    }
}

/// The .rs files under `dir`, in its folders too.
fn rust_files(dir: &str) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("src/") {
        let path = entry.expect("a file in src/").path();
        if path.is_dir() {
            files.extend(rust_files(&path.display().to_string()));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The ```rust fenced blocks of a Markdown text (a fence may be indented in a list).
fn rust_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in markdown.lines() {
        let fence = line.trim_start();
        match current.as_mut() {
            None if fence == "```rust" => current = Some(Vec::new()),
            Some(_) if fence == "```" => blocks.push(current.take().unwrap_or_default().join("\n")),
            Some(lines) => lines.push(line),
            None => {}
        }
    }
    blocks
}

#[test]
fn the_excerpt_finder_sees_indented_fences() {
    let text =
        "a\n```rust\nfn x() {}\n```\n1. b\n   ```rust\n   let y = 1;\n   ```\n```sh\nls\n```\n";
    assert_eq!(rust_blocks(text), ["fn x() {}", "   let y = 1;"]);
}

/// Every source file docs/lesson.md, README.md and ARCHITECTURE.md name (`src/bot/media.rs`,
/// `bot/memory.rs`) exists: a file that was renamed or folded away is a wrong pointer.
#[test]
fn the_docs_point_at_files_that_exist() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut wrong = Vec::new();
    for doc in ["docs/lesson.md", "README.md", "ARCHITECTURE.md"] {
        let text = std::fs::read_to_string(format!("{root}/{doc}")).expect("a doc");
        for word in text.split(|c: char| c.is_whitespace() || "`()[],;:«»".contains(c)) {
            let file = word.strip_suffix(".rs").filter(|p| p.contains('/') && !p.starts_with("//"));
            let Some(path) = file else {
                continue;
            };
            let path = format!("{}.rs", path.strip_prefix("src/").unwrap_or(path));
            let in_src = std::path::Path::new(root).join("src").join(&path).exists();
            let elsewhere = std::path::Path::new(root).join(&path).exists();
            if !in_src && !elsewhere {
                wrong.push(format!("{doc}: {word}"));
            }
        }
    }
    assert!(wrong.is_empty(), "files the docs name that do not exist: {wrong:?}");
}
