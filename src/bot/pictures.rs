//! A picture GigaChat drew (`gigachat.images`): its tag found in the answer, the JPEG
//! downloaded from GigaChat's storage (then deleted there), sent with `sendPhoto`, the rest
//! of the answer as its caption when it fits in one. Whatever fails, the text still goes out,
//! with a sentence saying what became of the picture.

use super::Bot;
use crate::gigachat;
use crate::render;
use crate::report::Report;
use crate::telegram::{self, CAPTION_LIMIT, MAX_PHOTO_BYTES};
use crate::texts;

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
    /// Sends the picture of an answer that has one; `None` for an answer without. Only a
    /// fatal Telegram error (a revoked token, a stop) is an `Err`.
    pub(super) fn picture(
        &mut self,
        chat_id: i64,
        reply_to: i64,
        answer: &str,
        report: &Report,
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
                log::warn!("chat {}: picture {id}: {err}", report.chat_id);
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
                log::warn!("chat {}: {err}", report.chat_id);
                self.store.count_failure("telegram photo");
                not_sent(texts::PICTURE_NOT_SENT)
            }
        }
    }
}
