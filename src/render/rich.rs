//! GigaChat's Markdown → the HTML of rich messages (Bot API 10.1). Being written.

use super::{Chunk, markdown_chunks};

/// The answer as rich messages within Telegram's limits, cut between top-level blocks.
pub fn rich_chunks(markdown: &str) -> Vec<Chunk> {
    markdown_chunks(markdown).into_iter().map(Chunk::Html).collect()
}

/// The rich HTML of a part made by [`rich_chunks`].
pub fn rich_html(markdown: &str) -> String {
    super::markdown_to_html(markdown)
}
