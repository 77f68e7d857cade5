//! A picture the bot sends (`sendPhoto`), uploaded as a multipart form, since its bytes
//! come from GigaChat and Telegram has never seen them.

use super::{Error, Message, Telegram};
use crate::net::{FilePart, multipart};

/// The largest photo a bot may upload (Bot API "Sending files": 10 MB for photos).
pub const MAX_PHOTO_BYTES: usize = 10 << 20;

/// Telegram's limit on a caption's visible text, in Unicode code points, after parsing.
pub const CAPTION_LIMIT: usize = 1024;

impl Telegram {
    /// Sends a JPEG as a photo, with `caption` (Telegram HTML, at most 1024 visible
    /// characters) if any, as a reply to `reply_to`. One try: a photo that fails is
    /// reported, and the caller sends the text on its own, so nothing is lost and no
    /// picture comes twice.
    pub fn send_photo(
        &self,
        chat_id: i64,
        reply_to: Option<i64>,
        jpeg: &[u8],
        caption: Option<&str>,
    ) -> Result<Message, Error> {
        let chat_id = chat_id.to_string();
        let mut fields = vec![("chat_id", chat_id.as_str())];
        if let Some(caption) = caption {
            fields.extend([("caption", caption), ("parse_mode", "HTML")]);
        }
        let reply = reply_to.map(|id| {
            serde_json::json!({"message_id": id, "allow_sending_without_reply": true}).to_string()
        });
        if let Some(reply) = &reply {
            fields.push(("reply_parameters", reply));
        }
        let photo = FilePart { field: "photo", name: "image.jpg", mime: "image/jpeg", bytes: jpeg };
        let (content_type, body) = multipart(&fields, &photo);
        self.post("sendPhoto", &content_type, &body)
    }
}
