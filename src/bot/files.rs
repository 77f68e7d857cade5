//! A photo or document on its way to GigaChat: getFile, the download (at most 20 MB), the
//! upload to GigaChat's storage; and its deletion after the answer. Each step has its own
//! sentence for the user when it fails; "typing…" shows meanwhile.

use super::{Bot, Step};
use crate::commands::FileRef;
use crate::gigachat;
use crate::report::{Outcome, Report};
use crate::telegram;
use crate::texts;

impl Bot {
    /// Fetches the file from Telegram and uploads it to GigaChat: its id there, or the text
    /// that tells the user what failed (logged and counted). Only a fatal Telegram error
    /// (a revoked token, a stop) is an `Err`.
    pub(super) fn upload(
        &mut self,
        chat_id: i64,
        file: &FileRef,
        report: &mut Report,
    ) -> Result<Step, telegram::Error> {
        self.typing.start(chat_id);
        let result = self.fetch_and_upload(file, report);
        if !matches!(result, Ok(Step::Next(_))) {
            self.typing.stop();
        }
        result
    }

    fn fetch_and_upload(
        &mut self,
        file: &FileRef,
        report: &mut Report,
    ) -> Result<Step, telegram::Error> {
        let Some(bytes) = self.fetch(&file.file_id, file.size, file.max, report)? else {
            return Ok(Step::Stop(texts::DOWNLOAD_FAILED.into()));
        };
        match self.gigachat.upload_file(&file.name, file.mime, &bytes) {
            Ok(id) => {
                log::debug!("gigachat: uploaded {} bytes as file {id}", bytes.len());
                // Saved at once (the update is not done yet): should the bot die before the
                // answer, the next start deletes the file.
                self.store.note_upload(&id);
                self.commit();
                self.store.begin();
                Ok(Step::Next(id))
            }
            Err(err) => {
                log::warn!("chat {}: file upload: {err}", report.chat_id);
                let kind = err.kind();
                self.store.count_failure(&format!("gigachat upload {kind}"));
                report.outcome = Outcome::GigaChatFailed(format!("upload {kind}"));
                let refused = |status: &str| texts::UPLOAD_REFUSED.replace("{status}", status);
                let text = match &err.failure {
                    gigachat::Failure::Refused { status, .. } => refused(&status.to_string()),
                    gigachat::Failure::TooLarge(_) => refused("413"),
                    _ => super::user_text(&err, &self.gigachat.model, false),
                };
                Ok(Step::Stop(text))
            }
        }
    }

    /// A received file's bytes (at most `max`), or None when Telegram would not give them
    /// (logged, counted, and the outcome set). Only a fatal Telegram error is an `Err`.
    pub(super) fn fetch(
        &mut self,
        file_id: &str,
        known: Option<u64>,
        max: u64,
        report: &mut Report,
    ) -> Result<Option<Vec<u8>>, telegram::Error> {
        match self.telegram.fetch_file(file_id, known, max) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(err) if err.is_fatal() => Err(err),
            Err(err) => {
                log::warn!("chat {}: {err}", report.chat_id);
                self.store.count_failure("telegram file");
                report.outcome = Outcome::FileFailed(err.to_string());
                Ok(None)
            }
        }
    }

    /// Deletes an uploaded (or drawn) file once its answer is done (or failed): GigaChat
    /// would keep it. A failure is logged, and the id stays in the state for the next start
    /// to try again.
    pub(super) fn forget_upload(&mut self, id: &str) {
        match self.gigachat.delete_file(id) {
            Ok(()) => {
                log::debug!("gigachat: deleted file {id}");
                self.store.forget_upload(id);
            }
            Err(err) => log::warn!(
                "gigachat: could not delete file {id}: {err}; trying again at the next start"
            ),
        }
    }

    /// At start-up: deletes the files a kill or a failed deletion left in GigaChat's storage.
    pub fn delete_leftover_uploads(&mut self) {
        self.store.begin();
        let ids = self.store.uploads();
        if !ids.is_empty() {
            log::info!("deleting {} file(s) left in GigaChat's storage by the last run", ids.len());
        }
        for id in ids {
            self.forget_upload(&id);
        }
        self.commit();
        self.unsaved = None;
    }
}
