//! The chat's memory: an exchange noted and added within its bounds, /retry's view of it;
//! and, if the owner turns it on (`bot.transcript_dir`), every exchange as a JSON line in
//! `<dir>/<chat_id>.jsonl`, so one chat's history is read, grepped or deleted with any tool.

use std::fs::Permissions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use serde_json::{Value, json};

use super::Bot;
use crate::clock;
use crate::facts::{Facts, Turn};
use crate::incoming::Message;

impl Bot {
    /// Notes the question; the memory to send with it (for /retry without the last exchange).
    pub(super) fn start_exchange(
        &mut self,
        chat_id: i64,
        question: &str,
        again: bool,
        facts: &Facts,
    ) -> Vec<Turn> {
        self.store.note_question(chat_id, question, facts.now);
        let mut history = facts.history.clone();
        if again {
            drop_last_exchange(&mut history, question);
        }
        history
    }

    /// Adds one exchange to the chat's memory, within `history_messages` and `history_chars`.
    pub(super) fn remember(
        &mut self,
        chat_id: i64,
        question: &str,
        answer: &str,
        mut history: Vec<Turn>,
    ) {
        let max_messages = self.config.bot.history_messages;
        let max_chars = self.config.bot.history_chars;
        history.push(Turn { role: "user".into(), content: question.to_string() });
        history.push(Turn { role: "assistant".into(), content: answer.to_string() });
        let mut chars: usize = history.iter().map(|t| t.content.chars().count()).sum();
        while !history.is_empty()
            && (history.len() > max_messages
                || chars > max_chars
                // An answer without its question would confuse the model.
                || history[0].role == "assistant")
        {
            chars -= history[0].content.chars().count();
            history.remove(0);
        }
        self.store.put_history(chat_id, &history);
    }

    /// The exchange's transcript line, if the owner keeps them (written once the update is
    /// saved, so never twice). `exchange`: the style, the question, the answer, the tokens.
    pub(super) fn transcript_line(
        &self,
        chat_id: i64,
        message: &Message,
        (style, question, answer, tokens): (&str, &str, &str, u64),
    ) -> Option<(i64, Value)> {
        self.config.bot.transcript_dir.as_ref()?;
        let line = json!({
            "time": clock::utc_timestamp(clock::unix_now()),
            "chat_id": chat_id,
            "user_id": message.sender().map_or(0, |u| u.id),
            "style": style,
            "question": question,
            "answer": answer,
            "tokens": tokens,
        });
        Some((chat_id, line))
    }

    /// Appends the saved update's transcript line, if any, to its chat's file.
    pub(super) fn write_transcript(&mut self) {
        if let (Some((chat_id, line)), Some(dir)) =
            (self.transcript.take(), &self.config.bot.transcript_dir)
        {
            append(dir, chat_id, &line);
        }
    }
}

/// Appends `line` (one exchange) to the chat's file. What people wrote: the folder and the
/// files are the owner's alone, whatever the umask. A failure is logged, not passed on:
/// the user has the answer already.
fn append(dir: &Path, chat_id: i64, line: &Value) {
    let path = dir.join(format!("{chat_id}.jsonl"));
    let written = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .and_then(|()| std::fs::set_permissions(dir, Permissions::from_mode(0o700)))
        .and_then(|()| {
            let mut file =
                std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&path)?;
            file.set_permissions(Permissions::from_mode(0o600))?;
            // One write per line, so a crash leaves at most a torn last line.
            file.write_all(format!("{line}\n").as_bytes())
        });
    if let Err(err) = written {
        log::error!("cannot append to the transcript {}: {err}", path.display());
    }
}

/// Removes the last user/assistant pair if it is the exchange for `question` (for /retry).
fn drop_last_exchange(history: &mut Vec<Turn>, question: &str) {
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
