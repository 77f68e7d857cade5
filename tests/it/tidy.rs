//! The shape of `src/`, checked: imports run the one way ARCHITECTURE.md draws, decisions
//! import no store and no client, no file grows past a reading and no function past a
//! screen, every file name is unique, no `unsafe`, every public function says why it is
//! there. Rules a reviewer would otherwise have to remember (rust-analyzer keeps tests like
//! these).

use std::collections::BTreeMap;
use std::path::Path;

/// A file that fits in one reading.
const MAX_LINES: usize = 600;
/// A function that fits on a screen.
const MAX_FUNCTION_LINES: usize = 60;
/// The modules that decide: plain functions over values, tested with tables.
const DECISIONS: [&str; 2] = ["commands", "owner"];
/// What decides must not reach: the state and the services (and the effects that use them).
const EFFECTS: [&str; 7] =
    ["store", "telegram", "gigachat", "salutespeech", "sber", "stream", "bot"];

/// Every source file: (its module, its path under src/, its text). A file in `src/store/`
/// belongs to the module `store`.
fn sources() -> Vec<(String, String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let label = path.strip_prefix(&src).unwrap().to_string_lossy().to_string();
                let module = label.split(['/', '.']).next().unwrap().to_string();
                files.push((module, label, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// The layers of ARCHITECTURE.md's "Dependency direction": module → its layer (1 = top).
fn layers() -> BTreeMap<String, usize> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ARCHITECTURE.md")).unwrap();
    let section = text
        .split("## Dependency direction")
        .nth(1)
        .expect("ARCHITECTURE.md has a section \"## Dependency direction\"");
    let mut layers = BTreeMap::new();
    for line in section.lines().take_while(|l| !l.starts_with("## ")) {
        let Some((number, modules)) = line.split_once(". ") else {
            continue;
        };
        let Ok(layer) = number.trim().parse::<usize>() else {
            continue;
        };
        for module in modules.split(',') {
            layers.insert(module.trim().trim_matches('`').to_string(), layer);
        }
    }
    assert!(!layers.is_empty(), "no numbered layers in ARCHITECTURE.md");
    layers
}

/// The crate's modules a source file uses (`crate::x`, `crate::{x, y}`), comments aside;
/// an item of the crate root (`crate::STOP`) counts as `main`.
fn imports(source: &str) -> Vec<String> {
    let code: String =
        source.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    let mut found = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        // A group lists several (`crate::{a, b::C}`); a path names one.
        let names: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group.split('}').next().unwrap_or("").split(',').collect(),
            None => vec![rest],
        };
        for name in names {
            let name: String = name
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            match name.chars().next() {
                Some(c) if c.is_ascii_uppercase() => found.push("main".to_string()),
                Some(_) => found.push(name),
                None => {}
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// Each line of the file outside its `#[cfg(test)] mod tests`.
fn product_lines(source: &str) -> Vec<&str> {
    let lines: Vec<&str> = source.lines().collect();
    let end = lines
        .windows(2)
        .position(|w| w[0] == "#[cfg(test)]" && w[1].starts_with("mod tests"))
        .unwrap_or(lines.len());
    lines[..end].to_vec()
}

#[test]
fn imports_run_the_way_architecture_md_draws_them() {
    let layers = layers();
    let mut wrong = Vec::new();
    for (module, file, source) in sources() {
        let Some(&own) = layers.get(&module) else {
            wrong.push(format!("src/{file}: {module} is in no layer of ARCHITECTURE.md"));
            continue;
        };
        for import in imports(&source) {
            match layers.get(&import) {
                Some(&layer) if layer > own => {}
                Some(_) => wrong.push(format!(
                    "src/{file}: {module} (layer {own}) imports {import} (layer {}): imports go to lower layers only",
                    layers[&import]
                )),
                None => wrong.push(format!("{module} imports {import}, which is in no layer")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_file_is_longer_than_a_reading() {
    let mut wrong = Vec::new();
    // Tables of tests and their properties are read a row at a time, not as one reading.
    for (_, file, source) in
        sources().into_iter().filter(|(_, file, _)| !file.ends_with("tests.rs"))
    {
        let lines = source.lines().count();
        if lines > MAX_LINES {
            wrong.push(format!("src/{file} has {lines} lines, more than {MAX_LINES}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn there_is_no_unsafe_code() {
    for (_, file, source) in sources() {
        for (i, line) in source.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            assert!(
                !code.contains("unsafe ") && !code.contains("unsafe{"),
                "src/{file}:{}: unsafe code: {line}",
                i + 1
            );
        }
    }
}

#[test]
fn every_public_function_says_why_it_is_there() {
    let mut wrong = Vec::new();
    for (_, file, source) in sources() {
        let lines = product_lines(&source);
        for (i, line) in lines.iter().enumerate() {
            let code = line.trim_start();
            if !(code.starts_with("pub fn ") || code.starts_with("pub(crate) fn ")) {
                continue;
            }
            // The line above, past attributes, must be a doc comment.
            let documented = lines[..i]
                .iter()
                .rev()
                .map(|l| l.trim_start())
                .find(|l| !l.starts_with("#["))
                .is_some_and(|l| l.starts_with("///"));
            if !documented {
                wrong.push(format!("src/{file}:{}: {}", i + 1, code));
            }
        }
    }
    assert!(wrong.is_empty(), "undocumented:\n{}", wrong.join("\n"));
}

/// The functions of `lines` (product code): (name, its first line, how many lines), from
/// the `fn` line to the brace that closes it at the same indentation.
fn functions(lines: &[&str]) -> Vec<(String, usize, usize)> {
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let code = line.trim_start();
        let Some(at) = code.find("fn ").filter(|&at| {
            let before = &code[..at];
            before.is_empty() || before.starts_with("pub") || before.starts_with("const")
        }) else {
            continue;
        };
        let name: String =
            code[at + 3..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let indent = &line[..line.len() - code.len()];
        let closing = format!("{indent}}}");
        if code.trim_end().ends_with(';') {
            continue; // a declaration without a body
        }
        if let Some(end) = lines[i..].iter().position(|l| l.trim_end() == closing) {
            found.push((name, i + 1, end + 1));
        }
    }
    found
}

#[test]
fn no_function_is_longer_than_a_screen() {
    let mut wrong = Vec::new();
    for (_, file, source) in sources() {
        if file.ends_with("tests.rs") {
            continue;
        }
        for (name, line, length) in functions(&product_lines(&source)) {
            if length > MAX_FUNCTION_LINES {
                wrong.push(format!(
                    "src/{file}:{line}: fn {name} has {length} lines, more than {MAX_FUNCTION_LINES}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Every file name in `src/` is unique, so a name in a stack trace or a review is one place.
fn duplicate_names(files: &[String]) -> Vec<String> {
    let mut seen: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for file in files {
        let name = file.rsplit('/').next().unwrap_or(file);
        seen.entry(name).or_default().push(file);
    }
    seen.into_iter()
        .filter(|(name, paths)| paths.len() > 1 && *name != "tests.rs")
        .map(|(name, paths)| format!("{name}: {}", paths.join(", ")))
        .collect()
}

#[test]
fn every_file_name_in_src_is_unique() {
    let files: Vec<String> = sources().into_iter().map(|(_, file, _)| file).collect();
    let twice = duplicate_names(&files);
    assert!(twice.is_empty(), "file names used twice in src/:\n{}", twice.join("\n"));
}

/// What a decision module imports of the effects it must not reach.
fn decision_breaches(module: &str, source: &str) -> Vec<String> {
    if !DECISIONS.contains(&module) {
        return Vec::new();
    }
    imports(source).into_iter().filter(|i| EFFECTS.contains(&i.as_str())).collect()
}

#[test]
fn decisions_import_no_store_and_no_client() {
    let mut wrong = Vec::new();
    for (module, file, source) in sources() {
        for import in decision_breaches(&module, &source) {
            wrong.push(format!(
                "src/{file}: {module} decides, and imports {import}: read what it needs into facts (facts.rs) and let bot.rs act"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// ARCHITECTURE.md's path of one message is true: every file it names exists, and every
/// function it names (`name`, `Type::name`, `module::Type::name`) is defined in `src/`.
#[test]
fn the_path_of_one_message_in_architecture_md_is_true() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ARCHITECTURE.md")).unwrap();
    let path = text
        .split("## The path of one private text message")
        .nth(1)
        .expect("ARCHITECTURE.md has the path of one message")
        .split("\n## ")
        .next()
        .unwrap();
    let code: String = sources().into_iter().map(|(_, _, source)| source).collect();
    let mut wrong = Vec::new();
    for name in path.split('`').skip(1).step_by(2) {
        if name.starts_with("src/") {
            if !Path::new(env!("CARGO_MANIFEST_DIR")).join(name).exists() {
                wrong.push(format!("no file {name}"));
            }
        } else if name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            // `getUpdates` is an API method, `Action::Ask` a type's, `store` a module.
            let function = name.rsplit("::").next().unwrap();
            let module = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("src/{name}.rs"));
            let is_function = function.chars().all(|c| c.is_lowercase() || c == '_');
            let defined = ["(", "<"].iter().any(|c| code.contains(&format!("fn {function}{c}")));
            if is_function && !module.exists() && !defined {
                wrong.push(format!("no function {name}"));
            }
        }
    }
    assert!(wrong.is_empty(), "ARCHITECTURE.md's path: {}", wrong.join(", "));
}

/// The checks themselves can fail: a backwards import and an undocumented function are seen.
#[test]
fn the_checks_see_what_they_look_for() {
    assert_eq!(
        imports(
            "use crate::bot::Bot; // not crate::store\nuse crate::{config, texts::START, STOP};"
        ),
        ["bot", "config", "main", "texts"]
    );
    assert_eq!(product_lines("a\n#[cfg(test)]\nmod tests {\n}"), ["a"]);
    let layers = layers();
    assert!(layers["main"] < layers["bot"] && layers["bot"] < layers["telegram"]);
    // A planted long function, a name used twice, a decision reaching for the store.
    let long =
        format!("    pub(super) fn long(\n{}    ) {{\n    }}\nfn short() {{}}", "x\n".repeat(60));
    let lines: Vec<&str> = long.lines().collect();
    assert_eq!(functions(&lines), [("long".to_string(), 1, 63)]);
    let names = [
        "bot/files.rs".to_string(),
        "telegram/files.rs".into(),
        "a/tests.rs".into(),
        "tests.rs".into(),
    ];
    assert_eq!(duplicate_names(&names), ["files.rs: bot/files.rs, telegram/files.rs"]);
    assert_eq!(
        decision_breaches("owner", "use crate::store::Store;\nuse crate::facts::Facts;"),
        ["store"]
    );
    assert!(decision_breaches("bot", "use crate::store::Store;").is_empty());
}
