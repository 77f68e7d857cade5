//! The owner's transcript of an exchange, and /retry's view of the chat's memory.

use serde_json::json;

use super::Bot;
use crate::clock;
use crate::store::Turn;
use crate::telegram::User;
use crate::transcript;

impl Bot {
    /// Appends the exchange to the chat's transcript, if the owner keeps them.
    pub(super) fn write_transcript(
        &self,
        chat_id: i64,
        from: Option<&User>,
        style: &str,
        question: &str,
        answer: &str,
        tokens: u64,
    ) {
        let Some(dir) = &self.config.bot.transcript_dir else {
            return;
        };
        let line = json!({
            "time": clock::utc_timestamp(clock::unix_now()),
            "chat_id": chat_id,
            "user_id": from.map_or(0, |u| u.id),
            "style": style,
            "question": question,
            "answer": answer,
            "tokens": tokens,
        });
        transcript::append(dir, chat_id, &line);
    }
}

/// Removes the last user/assistant pair if it is the exchange for `question` (for /retry).
pub(super) fn drop_last_exchange(history: &mut Vec<Turn>, question: &str) {
    let n = history.len();
    if n >= 2
        && history[n - 2].role == "user"
        && history[n - 2].content == question
        && history[n - 1].role == "assistant"
    {
        history.truncate(n - 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_drops_only_the_matching_exchange() {
        let turn = |role: &str, content: &str| Turn { role: role.into(), content: content.into() };
        let mut history = vec![
            turn("user", "a"),
            turn("assistant", "A"),
            turn("user", "b"),
            turn("assistant", "B"),
        ];
        drop_last_exchange(&mut history, "a");
        assert_eq!(history.len(), 4);
        drop_last_exchange(&mut history, "b");
        assert_eq!(history, vec![turn("user", "a"), turn("assistant", "A")]);
    }
}
