//! The reference desk's index in the state: documents with their fingerprints, passages with
//! their vectors. A document is replaced whole in one transaction, so a kill leaves either
//! its old passages or its new ones, never half of them.

use super::Store;
use crate::knowledge::{Index, Passage};

impl Store {
    /// The documents indexed: (path, fingerprint).
    pub fn documents(&self) -> Vec<(String, String)> {
        let sql = "SELECT path, fingerprint FROM documents ORDER BY path";
        self.rows("documents", sql, [], |r| Ok((r.get(0)?, r.get(1)?)))
    }

    /// Replaces what the index holds of `path` with these passages and their vectors.
    pub fn put_document(
        &mut self,
        path: &str,
        fingerprint: &str,
        passages: &[(Passage, Vec<f32>)],
    ) {
        self.forget_document(path);
        let sql = "INSERT INTO passages (path, heading, text, vector) VALUES (?1, ?2, ?3, ?4)";
        for (passage, vector) in passages {
            let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
            self.run("passages", sql, (path, &passage.heading, &passage.text, bytes));
        }
        let sql = "INSERT INTO documents (path, fingerprint) VALUES (?1, ?2)";
        self.run("documents", sql, [path, fingerprint]);
    }

    /// Drops a document from the index (deleted, or no longer readable).
    pub fn forget_document(&mut self, path: &str) {
        self.run("passages", "DELETE FROM passages WHERE path = ?1", [path]);
        self.run("documents", "DELETE FROM documents WHERE path = ?1", [path]);
    }

    /// Every passage's vector, for the search in memory; those of another length than the
    /// first (another model's, left by a refresh that failed) are left out, and said so.
    pub fn load_index(&self) -> Index {
        let (mut index, mut other) = (Index::default(), 0);
        let sql = "SELECT id, vector FROM passages ORDER BY id";
        let read = self.db.prepare(sql).and_then(|mut statement| {
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                let bytes: Vec<u8> = row.get(1)?;
                let vector: Vec<f32> = bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                other += usize::from(!index.push(row.get(0)?, &vector));
            }
            Ok(())
        });
        self.checked("passages", read);
        if other > 0 {
            log::warn!(
                "knowledge: {other} passage(s) of another embeddings model are not searched until gigabot index or a start embeds them again"
            );
        }
        index
    }

    /// A passage the search found: its document's path, and the passage.
    pub fn passage(&self, id: i64) -> Option<(String, Passage)> {
        let sql = "SELECT path, heading, text FROM passages WHERE id = ?1";
        self.row("passages", sql, id, |r| {
            Ok((r.get(0)?, Passage { heading: r.get(1)?, text: r.get(2)? }))
        })
    }

    /// Tokens the embeddings cost (indexing and questions), apart from chat tokens.
    pub fn add_embedding_tokens(&mut self, tokens: u64) {
        let sql = "UPDATE meta SET embedding_tokens = embedding_tokens + ?1";
        self.run("meta", sql, [tokens as i64]);
    }
}
