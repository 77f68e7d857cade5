//! The GigaChat fake's `POST /embeddings`: strict like the reference (gigachat-api.md §4
//! "Embeddings"), with vectors that make retrieval testable.
//!
//! The real vectors come from a neural model. A test needs less: that a passage and a
//! question about it land near each other, that unrelated texts do not, and that the same
//! text always gets the same vector. So a text's vector here is a bag of crude stems
//! ([`embedding_of`]), and tests can compute the similarities they expect.
//!
//! The real bounds are not documented (UNCONFIRMED). The bot is designed to send at most 90
//! inputs per call and to split an input the service refuses as too long, so the fake
//! refuses more than [`MAX_INPUTS`] inputs and an input over its limit
//! ([`DEFAULT_INPUT_LIMIT`] characters, settable) with 413. `fake_gigachat` routes the
//! requests here and keeps [`Embeddings`] in its state.

#![allow(dead_code)] // a toolbox: not every test uses every part

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fake_gigachat::{NO_SUCH_MODEL, json_object, status_body, tokens};
use crate::fake_telegram::SplitMix;
use crate::http::Request;

/// The length of every vector. The real length is not documented (1024 for EmbeddingsGigaR
/// per a third-party page): clients must read it from the answer, never hard-code it.
pub const EMBEDDING_DIMENSION: usize = 256;
/// Inputs one call may have: the bot's own batch size, since the real bound is unknown.
pub const MAX_INPUTS: usize = 90;
/// Characters one input may have until `set_embedding_input_limit` says otherwise.
pub const DEFAULT_INPUT_LIMIT: usize = 4000;
/// Shorter words ("и", "по", "с") say little about a text's topic: they are dropped.
const MIN_WORD_CHARS: usize = 3;
/// A stem is a word's first characters, so that inflected forms of a longer word
/// ("маргарита", "маргариту") meet.
const STEM_CHARS: usize = 5;
/// The package of a prepaid balance that embeddings spend (gigachat-api.md §4).
const PACKAGE: &str = "embeddings";

/// A request to `/embeddings`, as far as the fake could read it (recorded even when refused).
#[derive(Debug, Clone)]
pub struct EmbeddingRequest {
    /// "" if the body had no model string.
    pub model: String,
    /// The strings of `input` in order (one for a single string); anything else left out.
    pub inputs: Vec<String>,
    /// The status answered: 0 if the connection was dropped.
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub at: Instant,
}

impl EmbeddingRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::http::header(&self.headers, name)
    }
}

/// The embeddings part of the fake's state.
pub struct Embeddings {
    /// Faults for the next calls: status (0 = drop the connection) and body.
    pub faults: VecDeque<(u16, String)>,
    /// Characters an input may have.
    pub input_limit: usize,
    /// How long each call takes before its answer (a slow service, for a kill mid-index).
    pub delay: Duration,
    pub requests: Vec<EmbeddingRequest>,
    /// The `prompt_tokens` of every answered input, summed.
    pub tokens: u64,
}

impl Default for Embeddings {
    fn default() -> Self {
        Embeddings {
            faults: VecDeque::new(),
            input_limit: DEFAULT_INPUT_LIMIT,
            delay: Duration::ZERO,
            requests: Vec::new(),
            tokens: 0,
        }
    }
}

impl Embeddings {
    /// Answers one call and records it: status (0 = drop the connection) and JSON body.
    /// `token` is the fake's token check, `models` its (id, type) list, `balance` its
    /// prepaid packages, whose "embeddings" one the answer spends.
    pub fn answer(
        &mut self,
        request: &Request,
        token: Result<(), String>,
        models: &[(String, String)],
        balance: Option<&mut Vec<(String, i64)>>,
    ) -> (u16, String) {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let (status, answer) = match self.respond(request, &body, token, models, balance) {
            Ok(answer) => (200, answer),
            Err(refusal) => refusal,
        };
        self.requests.push(EmbeddingRequest {
            model: body["model"].as_str().unwrap_or_default().to_string(),
            inputs: readable_inputs(&body["input"]),
            status,
            headers: request.headers.clone(),
            at: Instant::now(),
        });
        (status, answer)
    }

    /// The checks in order: the token (401); a queued fault, after the token so that a
    /// queued 401 is like an expired token; the body (400, 422); the model (404); the
    /// bounds (413); the package (402). Err is anything but an answer of vectors.
    fn respond(
        &mut self,
        request: &Request,
        body: &Value,
        token: Result<(), String>,
        models: &[(String, String)],
        balance: Option<&mut Vec<(String, i64)>>,
    ) -> Result<String, (u16, String)> {
        token.map_err(|body| (401, body))?;
        if let Some(fault) = self.faults.pop_front() {
            return Err(fault);
        }
        let (model, inputs) = parse(request, body)?;
        if !models.iter().any(|(id, kind)| id == model && kind == "embedder") {
            return Err((404, NO_SUCH_MODEL.into()));
        }
        check_bounds(&inputs, self.input_limit)?;
        let package = balance.into_iter().flatten().find(|(usage, _)| usage == PACKAGE);
        if package.as_ref().is_some_and(|(_, left)| *left <= 0) {
            return Err((402, status_body(402, "Payment Required")));
        }
        let (answer, spent) = list(model, &inputs);
        if let Some((_, left)) = package {
            // Spent whole even past the end, like chat: the package shows 0, never a debt.
            *left = (*left - spent as i64).max(0);
        }
        self.tokens += spent;
        Ok(answer)
    }
}

/// `model` and the inputs of a body, checked the way chat checks its own (400 for a body
/// that is not JSON, 422 "Invalid params" for a field): `input` is a non-empty string or a
/// non-empty list of non-empty strings. Unknown fields are ignored.
fn parse<'a>(request: &Request, body: &'a Value) -> Result<(&'a str, Vec<&'a str>), (u16, String)> {
    let invalid = |message: &str| (422, status_body(422, &format!("Invalid params: {message}")));
    let body = json_object(request, body)?;
    let Some(model) = body.get("model").and_then(Value::as_str) else {
        return Err(invalid("model must be a string"));
    };
    let inputs: Vec<&Value> = match body.get("input") {
        Some(Value::Array(list)) if !list.is_empty() => list.iter().collect(),
        Some(single @ Value::String(_)) => vec![single],
        _ => return Err(invalid("input must be a string or a non-empty array of strings")),
    };
    let mut texts = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        match input.as_str() {
            Some("") => return Err(invalid(&format!("input[{i}] must not be empty"))),
            Some(text) => texts.push(text),
            None => return Err(invalid(&format!("input[{i}] must be a string"))),
        }
    }
    Ok((model, texts))
}

/// The fake's bounds (the real ones are UNCONFIRMED): at most `MAX_INPUTS` inputs, and
/// none longer than `limit` characters; the first input over it is named by its index
/// (from 0, like `index` in the answer).
fn check_bounds(inputs: &[&str], limit: usize) -> Result<(), (u16, String)> {
    let too_large = |message: String| (413, status_body(413, &message));
    if inputs.len() > MAX_INPUTS {
        let count = inputs.len();
        return Err(too_large(format!(
            "Too many inputs: {count} (at most {MAX_INPUTS} per request)"
        )));
    }
    for (i, input) in inputs.iter().enumerate() {
        let chars = input.chars().count();
        if chars > limit {
            return Err(too_large(format!(
                "Input {i} is too long: {chars} characters (at most {limit})"
            )));
        }
    }
    Ok(())
}

/// The answer, in the field order of the SDK's recorded data (serde_json would sort the
/// keys), and the tokens it reports. `prompt_tokens` is the fake's rule, not the service's:
/// an input's characters / 4, rounded up, at least 1.
fn list(model: &str, inputs: &[&str]) -> (String, u64) {
    let mut spent = 0;
    let data: Vec<String> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let prompt_tokens = tokens(text.chars().count()) as u64;
            spent += prompt_tokens;
            let vector = json!(embedding_of(text));
            format!(
                "{{\"object\":\"embedding\",\"embedding\":{vector},\"index\":{i},\"usage\":{{\"prompt_tokens\":{prompt_tokens}}}}}"
            )
        })
        .collect();
    let body =
        format!("{{\"object\":\"list\",\"data\":[{}],\"model\":{}}}", data.join(","), json!(model));
    (body, spent)
}

/// The strings of `input` for the record: whatever could be read, valid or not.
fn readable_inputs(input: &Value) -> Vec<String> {
    match input {
        Value::String(text) => vec![text.clone()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).map(String::from).collect(),
        _ => Vec::new(),
    }
}

/// The vector the fake answers for `text`, so tests can compute the similarities they
/// expect. Deterministic: each distinct stem of the text ([`stems`]) gets a pseudo-random
/// ±1 vector seeded by the stem's FNV-1a hash; the text's vector is their sum (presence,
/// not counts) scaled to length 1. Texts sharing stems point the same way; texts sharing
/// none are nearly orthogonal (cosine about 0 ± 0.06). A text with no stems gets the fixed
/// unit vector with every component 1/16.
pub fn embedding_of(text: &str) -> Vec<f32> {
    let fixed = vec![1.0 / (EMBEDDING_DIMENSION as f32).sqrt(); EMBEDDING_DIMENSION];
    let mut sum = [0i32; EMBEDDING_DIMENSION];
    for stem in stems(text) {
        let mut random = SplitMix(fnv1a(stem.as_bytes()));
        for block in sum.chunks_mut(64) {
            let bits = random.next();
            for (j, component) in block.iter_mut().enumerate() {
                *component += if (bits >> j) & 1 == 1 { 1 } else { -1 };
            }
        }
    }
    let norm = sum.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    if norm == 0.0 {
        return fixed; // no stems (or, unlikely beyond measure, stems that cancel out)
    }
    sum.iter().map(|&x| (f64::from(x) / norm) as f32).collect()
}

/// The distinct stems of `text`: lower-cased, split into words of letters and digits (any
/// script: Cyrillic is what users write), words shorter than 3 characters dropped, each
/// cut to its first 5 characters. A crude stemmer: forms of a longer word meet ("маргарита",
/// "маргариту" → "марга"), forms of a five-letter word do not ("пицца", "пиццы"), and
/// unrelated words with the same first five letters do.
pub fn stems(text: &str) -> BTreeSet<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| word.chars().count() >= MIN_WORD_CHARS)
        .map(|word| word.chars().take(STEM_CHARS).collect())
        .collect()
}

/// The cosine of two vectors (their dot product, as the fake's are of length 1).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

/// 64-bit FNV-1a: a stable seed for a stem (std's hasher may change between releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[test]
fn stems_are_long_words_cut_to_five_letters() {
    let found: Vec<String> = stems("Пиццы и ПИЦЦА, 450 р. по-домашнему; ok").into_iter().collect();
    assert_eq!(found, ["450", "домаш", "пицца", "пиццы"]);
    assert!(stems("и по 1 a").is_empty());
    assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c, "the published FNV-1a test vector");
}
