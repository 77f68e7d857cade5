//! The reference desk, its plain part: a document cut into passages, the search over their
//! vectors, and the question GigaChat gets with the passages found. Reading the files,
//! embedding and storing are `desk.rs`'s.

use crate::texts;

/// A passage ends at a paragraph once it would grow past this many characters; a longer
/// paragraph is cut at spaces.
pub const PASSAGE_CHARS: usize = 1000;

/// One piece of a document: the heading it is under, and its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    pub heading: String,
    pub text: String,
}

/// A document cut at its Markdown headings (not inside ``` code) and between paragraphs.
pub fn passages(text: &str) -> Vec<Passage> {
    let (mut out, mut heading, mut paragraph, mut fenced) =
        (Vec::new(), String::new(), String::new(), false);
    for line in text.lines().chain([""]) {
        let trimmed = line.trim();
        let title = if fenced { None } else { heading_of(trimmed) };
        fenced ^= trimmed.starts_with("```");
        if title.is_none() && (fenced || !trimmed.is_empty()) {
            paragraph.push_str(line.trim_end());
            paragraph.push('\n');
            continue;
        }
        add_paragraph(&mut out, &heading, paragraph.trim());
        paragraph.clear();
        if let Some(title) = title {
            heading = title.to_string();
        }
    }
    out
}

/// `# Title` → "Title".
fn heading_of(line: &str) -> Option<&str> {
    let rest = line.trim_start_matches('#');
    let level = line.len() - rest.len();
    let title = rest.strip_prefix(' ')?.trim().trim_end_matches('#').trim();
    ((1..=6).contains(&level) && !title.is_empty()).then_some(title)
}

/// Adds a paragraph to the last passage if that is under the same heading and stays within
/// `PASSAGE_CHARS`; else it starts passages of its own.
fn add_paragraph(out: &mut Vec<Passage>, heading: &str, paragraph: &str) {
    if paragraph.is_empty() {
        return;
    }
    let fits = |p: &&mut Passage| {
        p.heading == heading
            && p.text.chars().count() + 2 + paragraph.chars().count() <= PASSAGE_CHARS
    };
    if let Some(last) = out.last_mut().filter(fits) {
        last.text = format!("{}\n\n{paragraph}", last.text);
        return;
    }
    for piece in pieces(paragraph, PASSAGE_CHARS) {
        out.push(Passage { heading: heading.to_string(), text: piece.to_string() });
    }
}

/// `text` cut at spaces (inside a word only if it has none) into pieces of at most `limit`
/// characters.
pub fn pieces(text: &str, limit: usize) -> Vec<&str> {
    let (mut out, mut rest) = (Vec::new(), text.trim());
    while rest.chars().count() > limit {
        let end = rest.char_indices().nth(limit).map_or(rest.len(), |(i, _)| i);
        let space = match rest[end..].starts_with(char::is_whitespace) {
            true => Some(end),
            false => rest[..end].rfind(char::is_whitespace).filter(|&i| i > 0),
        };
        let cut = space.unwrap_or(end);
        out.push(rest[..cut].trim_end());
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// The passages' vectors, each scaled to length 1 and laid end to end, with their ids in
/// the state: all of a passage that is kept in memory.
#[derive(Default)]
pub struct Index {
    pub ids: Vec<i64>,
    vectors: Vec<f32>,
    dim: usize,
}

impl Index {
    /// Adds a passage's vector; one of another length than the first (another model's) is
    /// refused.
    pub fn push(&mut self, id: i64, vector: &[f32]) -> bool {
        if self.dim == 0 {
            self.dim = vector.len();
        }
        if vector.is_empty() || vector.len() != self.dim {
            return false;
        }
        self.ids.push(id);
        self.vectors.extend(unit(vector));
        true
    }

    /// The ids of at most `top_k` passages nearest to `query` (cosine similarity) that score
    /// at least `min_score`, best first, with their scores.
    pub fn search(&self, query: &[f32], top_k: usize, min_score: f32) -> Vec<(i64, f32)> {
        if query.len() != self.dim {
            return Vec::new();
        }
        let query: Vec<f32> = unit(query).collect();
        let mut best: Vec<(i64, f32)> = Vec::with_capacity(top_k + 1);
        for (id, vector) in self.ids.iter().zip(self.vectors.chunks_exact(self.dim)) {
            let score = dot(&query, vector);
            if score >= min_score && (best.len() < top_k || score > best[best.len() - 1].1) {
                let at = best.partition_point(|(_, s)| *s >= score);
                best.insert(at, (*id, score));
                best.truncate(top_k);
            }
        }
        best
    }
}

/// The vector scaled to length 1 (a zero vector stays zero).
fn unit(vector: &[f32]) -> impl Iterator<Item = f32> + '_ {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
    vector.iter().map(move |x| x * scale)
}

/// Eight sums at a time, written out: the release profile optimizes for size, and only so
/// does the compiler keep them in registers (a loop over them was half as fast).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (mut s, (xs, x_tail), (ys, y_tail)) = ([0.0f32; 8], a.as_chunks::<8>(), b.as_chunks::<8>());
    for (x, y) in xs.iter().zip(ys) {
        (s[0], s[1], s[2], s[3]) =
            (s[0] + x[0] * y[0], s[1] + x[1] * y[1], s[2] + x[2] * y[2], s[3] + x[3] * y[3]);
        (s[4], s[5], s[6], s[7]) =
            (s[4] + x[4] * y[4], s[5] + x[5] * y[5], s[6] + x[6] * y[6], s[7] + x[7] * y[7]);
    }
    s.iter().sum::<f32>() + x_tail.iter().zip(y_tail).map(|(x, y)| x * y).sum::<f32>()
}

/// The question as GigaChat gets it with the passages found (file, passage), and how to use
/// them; memory keeps the question alone.
pub fn with_passages(question: &str, found: &[(String, Passage)]) -> String {
    let mut text = texts::KNOWLEDGE_INTRO.to_string();
    for (i, (file, Passage { heading, text: passage })) in found.iter().enumerate() {
        let dash = if heading.is_empty() { "" } else { " — " };
        text.push_str(&format!("\n\n[{}] {file}{dash}{heading}\n{passage}", i + 1));
    }
    text + "\n\n" + &texts::KNOWLEDGE_QUESTION.replace("{question}", question)
}

/// "Источники: prices.md, faq.md": each file once, in the order found.
pub fn sources_line(found: &[(String, Passage)]) -> String {
    let mut files: Vec<&str> = Vec::new();
    for (file, _) in found {
        if !files.contains(&file.as_str()) {
            files.push(file);
        }
    }
    texts::SOURCES.replace("{files}", &files.join(", "))
}

/// What tells a changed document (or another embedder) from the one indexed: FNV-1a (64
/// bits) of the model's name and the bytes.
pub fn fingerprint(model: &str, bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in model.bytes().chain([0]).chain(bytes.iter().copied()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests;
