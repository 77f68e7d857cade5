//! The reference desk, in effects: the owner's `.md` and `.txt` files under `knowledge.dir`
//! read (only from inside it), cut into passages, embedded by GigaChat and kept in the state;
//! then, per question, the passages nearest to it. Only a new, changed or deleted file costs
//! anything: each document is stored with the fingerprint of what was embedded.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::config::KnowledgeConfig;
use crate::gigachat::{Failure, GigaChat};
use crate::knowledge::{self, Index, Passage};
use crate::store::Store;

/// Inputs per embeddings call: the service's bound is not documented; LangChain's client
/// sent at most 90.
const MAX_INPUTS: usize = 90;
/// Documents gather until they hold this many passages, then are embedded and saved
/// together: full calls, and at most ten calls' work lost to a kill.
const GATHER_PASSAGES: usize = 10 * MAX_INPUTS;
/// A larger file is skipped: a reference desk holds notes, price lists and rules, not books.
const MAX_DOCUMENT_BYTES: u64 = 2 << 20;
/// A passage the service refuses as too long is cut in two, down to this many characters.
const MIN_PIECE_CHARS: usize = 50;
/// Of a long question, the start is embedded.
const MAX_QUERY_CHARS: usize = 2000;

/// What a refresh of the index did, for `gigabot index` and the log.
#[derive(Debug, Default)]
pub struct Refreshed {
    /// Documents readable under `knowledge.dir`, and of them the ones embedded anew.
    pub documents: usize,
    pub embedded: usize,
    pub removed: usize,
    /// Passages of the documents embedded anew; embeddings calls and their tokens.
    pub passages: usize,
    pub calls: usize,
    pub tokens: u64,
    /// Why the refresh stopped before the end (the rest waits for the next start).
    pub failed: Option<String>,
}

/// A document to embed: its path under `knowledge.dir`, its fingerprint, its passages.
type Changed = (String, String, Vec<Passage>);

/// Brings the index up to date with the files: new and changed ones gathered, embedded in
/// calls of up to `MAX_INPUTS` passages, each saved whole or not at all; deleted ones dropped.
/// An embeddings failure stops it: what is left stays as it was, the next start tries again.
pub fn refresh(
    knowledge: &KnowledgeConfig,
    gigachat: &mut GigaChat,
    store: &mut Store,
) -> Refreshed {
    let mut done = Refreshed::default();
    let indexed: HashMap<String, String> = store.documents().into_iter().collect();
    let (mut present, mut changed) = (HashSet::new(), Vec::<Changed>::new());
    for (name, path) in scan(&knowledge.dir) {
        let Some(text) = readable(&path, &name) else { continue };
        done.documents += 1;
        let fingerprint = knowledge::fingerprint(&knowledge.model, text.as_bytes());
        present.insert(name.clone());
        if indexed.get(&name) != Some(&fingerprint) {
            changed.push((name, fingerprint, knowledge::passages(&text)));
        }
        if changed.iter().map(|(.., passages)| passages.len()).sum::<usize>() >= GATHER_PASSAGES {
            embed_documents(
                &knowledge.model,
                gigachat,
                store,
                std::mem::take(&mut changed),
                &mut done,
            );
        }
    }
    embed_documents(&knowledge.model, gigachat, store, changed, &mut done);
    for gone in indexed.keys().filter(|name| !present.contains(*name)) {
        log::info!("knowledge: {gone} is gone: its passages are dropped");
        save(store, |store| store.forget_document(gone));
        done.removed += 1;
    }
    done
}

/// Embeds the documents' passages, then saves the documents in one transaction with the
/// tokens they cost; after a failure, none of them (nor any later: `done.failed`), unless
/// the service refused what it was sent (a 4xx): then the one document it refuses is left out.
fn embed_documents(
    model: &str,
    gigachat: &mut GigaChat,
    store: &mut Store,
    documents: Vec<Changed>,
    done: &mut Refreshed,
) {
    if documents.is_empty() || done.failed.is_some() {
        return;
    }
    let tagged: Vec<(usize, Passage)> = documents
        .iter()
        .enumerate()
        .flat_map(|(i, (.., passages))| passages.iter().map(move |p| (i, p.clone())))
        .collect();
    let (tokens_before, mut vectors) = (done.tokens, vec![Vec::new(); documents.len()]);
    for batch in tagged.chunks(MAX_INPUTS) {
        match embed_batch(gigachat, model, batch.to_vec(), done) {
            Ok(embedded) => embedded.into_iter().for_each(|(i, p, v)| vectors[i].push((p, v))),
            // A document's content refused: each goes alone, so one holds back no other;
            // the refused one is tried again at the next start.
            Err(err) if matches!(err.failure, Failure::Refused { status: 400 | 422, .. }) => {
                if documents.len() == 1 {
                    return log::warn!("knowledge: {} is skipped: {err}", documents[0].0);
                }
                for document in documents {
                    embed_documents(model, gigachat, store, vec![document], done);
                }
                return;
            }
            Err(err) => {
                let names: Vec<&str> = documents.iter().map(|(name, ..)| name.as_str()).collect();
                log::warn!(
                    "knowledge: {err}; {} keep what the index had, and the next start tries again",
                    names.join(", ")
                );
                done.failed = Some(err.to_string());
                return;
            }
        }
    }
    save(store, |store| {
        for ((name, fingerprint, _), passages) in documents.iter().zip(&vectors) {
            log::info!("knowledge: {name}: {} passage(s) embedded", passages.len());
            store.put_document(name, fingerprint, passages);
        }
        store.add_embedding_tokens(done.tokens - tokens_before);
    });
    done.embedded += documents.len();
    done.passages += vectors.iter().map(Vec::len).sum::<usize>();
}

/// One change of the index in a transaction of its own; a failure is logged.
fn save(store: &mut Store, change: impl FnOnce(&mut Store)) {
    store.begin();
    change(store);
    if let Err(err) = store.commit() {
        log::error!("knowledge: {err:#}");
    }
}

/// One call for passages of documents (`usize`: which); a batch the service refuses as too
/// large (413) is halved, and a lone passage cut in two, until it fits.
fn embed_batch(
    gigachat: &mut GigaChat,
    model: &str,
    mut batch: Vec<(usize, Passage)>,
    done: &mut Refreshed,
) -> Result<Vec<(usize, Passage, Vec<f32>)>, crate::gigachat::Error> {
    // The heading gives a short passage its context.
    let inputs: Vec<String> = batch
        .iter()
        .map(|(_, p)| format!("{}\n{}", p.heading, p.text).trim().to_string())
        .collect();
    done.calls += 1;
    let err = match gigachat.embed(model, &inputs) {
        Ok((vectors, tokens)) => {
            done.tokens += tokens;
            return Ok(batch.into_iter().zip(vectors).map(|((i, p), v)| (i, p, v)).collect());
        }
        Err(err) => err,
    };
    let (i, first) = (batch[0].0, &batch[0].1);
    let chars = first.text.chars().count();
    if !matches!(err.failure, Failure::TooLarge(_))
        || (batch.len() == 1 && chars < MIN_PIECE_CHARS * 2)
    {
        return Err(err);
    }
    let halves = match batch.len() {
        1 => knowledge::pieces(&first.text, chars.div_ceil(2))
            .into_iter()
            .map(|text| {
                vec![(i, Passage { heading: first.heading.clone(), text: text.to_string() })]
            })
            .collect(),
        n => {
            let second = batch.split_off(n / 2);
            vec![batch, second]
        }
    };
    let mut embedded = Vec::new();
    for half in halves {
        embedded.extend(embed_batch(gigachat, model, half, done)?);
    }
    Ok(embedded)
}

/// The `.md` and `.txt` files under `dir` and its folders, by their path inside it, sorted.
/// Anything else gets a log line naming it; hidden files and folders are passed over.
fn scan(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(root) = dir.canonicalize() else {
        log::warn!("knowledge: cannot open knowledge.dir {}", dir.display());
        return Vec::new();
    };
    let (mut found, mut folders) = (Vec::new(), vec![root.clone()]);
    while let Some(folder) = folders.pop() {
        let Ok(entries) = fs::read_dir(&folder) else {
            log::warn!("knowledge: cannot read the folder {}: skipped", folder.display());
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path.strip_prefix(&root).unwrap_or(&path).to_string_lossy().to_string();
            if name.starts_with('.') || name.contains("/.") {
                continue;
            }
            let link = entry.file_type().is_ok_and(|t| t.is_symlink());
            let skip = |why: &str| log::warn!("knowledge: {name} is skipped: {why}");
            match path.canonicalize() {
                Ok(real) if !real.starts_with(&root) => skip("it leads out of knowledge.dir"),
                Ok(real) if real.is_dir() && link => skip("a link to a folder"),
                Ok(real) if real.is_dir() => folders.push(path),
                Ok(_) if ![".md", ".txt"].iter().any(|e| name.to_lowercase().ends_with(e)) => {
                    skip("only .md and .txt files are read")
                }
                Ok(_) => found.push((name, path)),
                Err(err) => skip(&format!("cannot follow it ({err})")),
            }
        }
    }
    found.sort();
    found
}

/// A document's text, or None with a log line saying why it is skipped.
fn readable(path: &Path, name: &str) -> Option<String> {
    let why = match fs::metadata(path) {
        Ok(meta) if meta.len() > MAX_DOCUMENT_BYTES => "it is over 2 MiB".to_string(),
        Ok(_) => match fs::read(path) {
            Ok(bytes) if bytes.contains(&0) => "it holds NUL bytes (not text)".to_string(),
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) if text.trim().is_empty() => "it is empty".to_string(),
                Ok(text) => return Some(text),
                Err(_) => "it is not UTF-8 text".to_string(),
            },
            Err(err) => format!("cannot read it ({err})"),
        },
        Err(err) => format!("cannot read it ({err})"),
    };
    log::warn!("knowledge: {name} is skipped: {why}");
    None
}

/// The passages nearest to the question (one embeddings call) above `knowledge.min_score`
/// put into it, and the line naming their files; nothing when none is near, the index is
/// empty, or the call failed (logged and counted: the question then goes without them).
pub fn consult(
    knowledge: &KnowledgeConfig,
    gigachat: &mut GigaChat,
    store: &mut Store,
    index: &Index,
    question: &mut String,
) -> String {
    if index.ids.is_empty() {
        return String::new();
    }
    let query: String = question.chars().take(MAX_QUERY_CHARS).collect();
    let (vectors, tokens) = match gigachat.embed(&knowledge.model, &[query]) {
        Ok(embedded) => embedded,
        Err(err) => {
            log::warn!("knowledge: {err}; the question goes without the documents");
            store.count_failure(&format!("embeddings {}", err.kind()));
            return String::new();
        }
    };
    store.add_embedding_tokens(tokens);
    let near = index.search(&vectors[0], knowledge.top_k, knowledge.min_score);
    let found: Vec<_> = near.into_iter().filter_map(|(id, _)| store.passage(id)).collect();
    if found.is_empty() {
        return String::new();
    }
    *question = knowledge::with_passages(question, &found);
    knowledge::sources_line(&found)
}

/// Whether the index (its documents and their fingerprints) matches the files now; if not,
/// `gigabot index`, or a restart, brings it up to date.
pub fn is_current(knowledge: &KnowledgeConfig, indexed: &[(String, String)]) -> bool {
    let now: Vec<(String, String)> = scan(&knowledge.dir)
        .into_iter()
        .filter_map(|(name, path)| {
            let text = readable(&path, &name)?;
            Some((name, knowledge::fingerprint(&knowledge.model, text.as_bytes())))
        })
        .collect();
    indexed == now
}
