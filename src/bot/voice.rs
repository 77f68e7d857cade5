//! A voice note on its way to a question: getFile, the download, SaluteSpeech's
//! recognition; the recognized text shown to the user in «» (so a misheard word is seen),
//! then asked like a typed question. Each failing step has its own sentence.

use super::{Bot, Step};
use crate::commands::{self, Ask};
use crate::report::{Outcome, Report};
use crate::salutespeech::{self, MAX_VOICE_BYTES};
use crate::telegram::{self, Message, Voice};
use crate::texts;

impl Bot {
    /// Recognizes the note and answers it as a question, with what was heard shown in «»
    /// as the answer's first message (so both go out, and are recorded, as one answer); a
    /// failure is told in one sentence, within the chat's notice budget. Only a fatal
    /// Telegram error is an `Err`.
    pub(super) fn transcribe(
        &mut self,
        message: &Message,
        voice: &Voice,
        mut ask: Ask,
        report: &mut Report,
    ) -> Result<(), telegram::Error> {
        let (chat_id, reply_to) = (message.chat.id, message.message_id);
        self.typing.start(chat_id);
        let heard = self.hear(voice, report);
        self.typing.stop();
        let heard = match heard? {
            Step::Next(text) => commands::heard(&self.config, &text),
            Step::Stop(text) => Err(text),
        };
        match heard {
            Ok(question) => {
                ask.shown = Some(texts::VOICE_HEARD.replace("{text}", &question));
                ask.question = question;
                self.handle_message(message, &ask, report)
            }
            Err(text) => {
                if report.outcome == Outcome::Nothing {
                    report.outcome = Outcome::RecognitionFailed("nothing to ask".into());
                }
                self.notice(chat_id, Some(reply_to), &text, None)?;
                Ok(())
            }
        }
    }

    /// The recognized text, or the sentence that tells the user what failed (logged and
    /// counted).
    fn hear(&mut self, voice: &Voice, report: &mut Report) -> Result<Step, telegram::Error> {
        let fetched = self.fetch(&voice.file_id, voice.file_size, MAX_VOICE_BYTES, report)?;
        let Some(bytes) = fetched else {
            return Ok(Step::Stop(texts::VOICE_DOWNLOAD_FAILED.into()));
        };
        let Some(speech) = self.salutespeech.as_mut() else {
            // Decided with a key, so the client exists; should it not, say it plainly.
            return Ok(Step::Stop(texts::NOT_TEXT.into()));
        };
        match speech.recognize(&bytes) {
            Ok(text) => Ok(Step::Next(text)),
            Err(err) => {
                log::warn!("chat {}: {err}", report.chat_id);
                let kind = err.kind();
                self.store.count_failure(&format!("salutespeech {kind}"));
                report.outcome = Outcome::RecognitionFailed(kind);
                Ok(Step::Stop(speech_text(&err)))
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
