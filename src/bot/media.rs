//! What is not text: a photo or document on its way to GigaChat (getFile, the download, the
//! upload to its storage, the deletion after the answer), a voice note on its way to a
//! question (the download, SaluteSpeech), a picture GigaChat drew (downloaded, sent with
//! `sendPhoto`, the rest of the answer as its caption when it fits). Each failing step has
//! its own sentence, and an answer's text goes out whatever became of its picture.

use super::Bot;
use crate::commands::{self, FileRef, MAX_VOICE_BYTES};
use crate::gigachat;
use crate::incoming::{Message, Voice};
use crate::render;
use crate::report::Outcome;
use crate::salutespeech;
use crate::stream::Waiting;
use crate::telegram::{self, CAPTION_LIMIT, MAX_PHOTO_BYTES};
use crate::texts;

/// A step before GigaChat is asked (a file uploaded, a voice note heard): what to go on
/// with, or the sentence that tells the user why not and how the update ends.
pub(super) enum Step {
    Next(String),
    Stop(String, Outcome),
}

/// What became of a picture in an answer.
pub(super) struct Drawn {
    /// The text still to send as messages: the answer without its tag (none when the
    /// caption held it), and a sentence if the picture did not go out.
    pub text: String,
    /// What memory and transcript keep: "[рисунок]" and the text, not the picture.
    pub remembered: String,
    /// The photo went out.
    pub sent: bool,
}

impl Bot {
    /// The file from Telegram uploaded to GigaChat: its id there, or the text that tells what
    /// failed (logged, counted); "typing…" meanwhile. Only a fatal Telegram error is an `Err`.
    pub(super) fn upload(&mut self, chat_id: i64, file: &FileRef) -> Result<Step, telegram::Error> {
        self.typing.start(Waiting::Typing(chat_id));
        let result = self.fetch_and_upload(chat_id, file);
        if !matches!(result, Ok(Step::Next(_))) {
            self.typing.stop();
        }
        result
    }

    fn fetch_and_upload(&mut self, chat_id: i64, file: &FileRef) -> Result<Step, telegram::Error> {
        let bytes = match self.telegram.fetch_file(&file.file_id, file.size, file.max) {
            Ok(bytes) => bytes,
            Err(err) => return self.not_fetched(chat_id, err, texts::DOWNLOAD_FAILED),
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
                log::warn!("chat {chat_id}: file upload: {err}");
                let kind = err.kind();
                self.store.count_failure(&format!("gigachat upload {kind}"));
                let refused = |status: &str| texts::UPLOAD_REFUSED.replace("{status}", status);
                let text = match &err.failure {
                    gigachat::Failure::Refused { status, .. } => refused(&status.to_string()),
                    gigachat::Failure::TooLarge(_) => refused("413"),
                    _ => super::user_text(&err, &self.gigachat.model, false),
                };
                Ok(Step::Stop(text, Outcome::UploadFailed(kind)))
            }
        }
    }

    /// A file Telegram would not give: fatal ends the update; else logged, counted, told `text`.
    fn not_fetched(
        &mut self,
        chat_id: i64,
        err: telegram::Error,
        text: &str,
    ) -> Result<Step, telegram::Error> {
        if err.is_fatal() {
            return Err(err);
        }
        log::warn!("chat {chat_id}: {err}");
        self.store.count_failure("telegram file");
        Ok(Step::Stop(text.into(), Outcome::FileFailed(err.to_string())))
    }

    /// Deletes an uploaded (or drawn) file once its answer is done (or failed): GigaChat would keep
    /// it. A failure is logged, and the id stays in the state for the next start to try again.
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

    /// The question a voice note asks, or the sentence why none (nothing recognized, too long,
    /// a failure: logged and counted); "typing…" meanwhile. Only a fatal Telegram error is `Err`.
    pub(super) fn hear(&mut self, chat_id: i64, voice: &Voice) -> Result<Step, telegram::Error> {
        self.typing.start(Waiting::Typing(chat_id));
        let heard = self.fetch_and_hear(chat_id, voice);
        self.typing.stop();
        Ok(match heard? {
            Step::Next(text) => match commands::heard(&self.config, &text) {
                Ok(question) => Step::Next(question),
                Err(text) => Step::Stop(text, Outcome::RecognitionFailed("nothing to ask".into())),
            },
            stop => stop,
        })
    }

    /// The recognized text, or the sentence that tells the user what failed.
    fn fetch_and_hear(&mut self, chat_id: i64, voice: &Voice) -> Result<Step, telegram::Error> {
        let fetched = self.telegram.fetch_file(&voice.file_id, voice.file_size, MAX_VOICE_BYTES);
        let bytes = match fetched {
            Ok(bytes) => bytes,
            Err(err) => return self.not_fetched(chat_id, err, texts::VOICE_DOWNLOAD_FAILED),
        };
        let Some(speech) = self.salutespeech.as_mut() else {
            // Decided with a key, so the client exists; should it not, say it plainly.
            let failed = Outcome::RecognitionFailed("no key".into());
            return Ok(Step::Stop(texts::NOT_TEXT.into(), failed));
        };
        match speech.recognize(&bytes) {
            Ok(text) => Ok(Step::Next(text)),
            Err(err) => {
                log::warn!("chat {chat_id}: {err}");
                let kind = err.kind();
                self.store.count_failure(&format!("salutespeech {kind}"));
                Ok(Step::Stop(speech_text(&err), Outcome::RecognitionFailed(kind)))
            }
        }
    }

    /// A voice note without a SaluteSpeech key gets the "text only" notice; the first one
    /// also tells the log which setting would make the bot listen.
    pub(super) fn note_no_speech_key(&mut self, message: &Message) {
        if message.voice.is_none() || self.salutespeech.is_some() || self.voice_hint_logged {
            return;
        }
        self.voice_hint_logged = true;
        log::info!(
            "a voice note got the text-only reply: set SALUTE_SPEECH_CREDENTIALS (salutespeech.credentials) to a SaluteSpeech key to have voice notes recognized"
        );
    }

    /// Sends the picture of an answer that has one (`gigachat.images`); `None` for an answer
    /// without. Only a fatal Telegram error (a revoked token, a stop) is an `Err`.
    pub(super) fn picture(
        &mut self,
        chat_id: i64,
        reply_to: i64,
        answer: &str,
    ) -> Result<Option<Drawn>, telegram::Error> {
        let Some((id, rest)) = gigachat::drawn_picture(answer) else {
            return Ok(None);
        };
        let remembered = format!("{} {rest}", texts::PICTURE_NOTE).trim().to_string();
        // The picture did not go out: the text, and a note that says why.
        let not_sent = |note: &str| {
            let text = format!("{rest}\n\n{note}").trim().to_string();
            Ok(Some(Drawn { text, remembered: remembered.clone(), sent: false }))
        };
        if !self.gigachat.images {
            // GigaChat was not asked to draw: the picture is not fetched, only mentioned.
            return not_sent(texts::PICTURES_OFF);
        }
        // GigaChat keeps drawn files like uploaded ones until they are deleted, fetched or
        // not; noted first, so that a kill leaves the id for the next start.
        self.store.note_upload(&id);
        let fetched = self.gigachat.download_image(&id, MAX_PHOTO_BYTES);
        self.forget_upload(&id);
        let jpeg = match fetched {
            Ok(jpeg) => jpeg,
            Err(err) => {
                log::warn!("chat {chat_id}: picture {id}: {err}");
                self.store.count_failure(&format!("gigachat picture {}", err.kind()));
                return not_sent(texts::PICTURE_NOT_FETCHED);
            }
        };
        let html = render::markdown_to_html(&rest);
        let visible = render::visible_text(&html);
        let fits = !visible.trim().is_empty() && visible.chars().count() <= CAPTION_LIMIT;
        let caption = fits.then_some(html.as_str());
        match self.telegram.send_photo(chat_id, Some(reply_to), &jpeg, caption) {
            Ok(_) => {
                self.store.must_save();
                let text = if fits { String::new() } else { rest };
                Ok(Some(Drawn { text, remembered, sent: true }))
            }
            Err(err) if err.is_fatal() => Err(err),
            Err(err) => {
                log::warn!("chat {chat_id}: {err}");
                self.store.count_failure("telegram photo");
                not_sent(texts::PICTURE_NOT_SENT)
            }
        }
    }
}

/// The Russian sentence for a recognition failure.
fn speech_text(err: &salutespeech::Error) -> String {
    use salutespeech::Failure as E;
    let status = |code: u16| texts::VOICE_FAILED.replace("{status}", &code.to_string());
    match &err.failure {
        E::Auth { status: code, .. } => status(*code),
        E::TooLarge(_) => status(413),
        E::RateLimited => status(429),
        E::Server(code) | E::Refused { status: code, .. } => status(*code),
        // GigaChat's own: SaluteSpeech gives no 402 or 404 of these meanings, nor a stream.
        E::PaymentRequired => status(402),
        E::UnknownModel(_) => status(404),
        E::Timeout(_) | E::Tls(_) | E::Network(_) | E::BadResponse(_) | E::Interrupted(_) => {
            texts::VOICE_UNREACHABLE.into()
        }
    }
}
