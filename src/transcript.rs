//! The full history of conversations, if the owner turns it on (`bot.transcript_dir`):
//! one JSON line per exchange in `<dir>/<chat_id>.jsonl`, so one chat's history is read,
//! grepped or deleted with ordinary tools.

use std::fs::Permissions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use serde_json::Value;

/// Appends `line` (one exchange) to the chat's file. What people wrote: the folder and the
/// files are the owner's alone, whatever the umask. A failure is logged, not passed on:
/// the user still gets the answer.
pub fn append(dir: &Path, chat_id: i64, line: &Value) {
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
