//! A picture the bot sends (`sendPhoto`), uploaded as a multipart form, since its bytes
//! come from GigaChat and Telegram has never seen them.

use super::{Error, Message, Telegram};

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
        let boundary = uuid::Uuid::new_v4().simple().to_string();
        let mut fields = vec![("chat_id", chat_id.to_string())];
        if let Some(caption) = caption {
            fields.push(("caption", caption.to_string()));
            fields.push(("parse_mode", "HTML".into()));
        }
        if let Some(id) = reply_to {
            let reply = serde_json::json!({"message_id": id, "allow_sending_without_reply": true});
            fields.push(("reply_parameters", reply.to_string()));
        }
        let body = form(&boundary, &fields, jpeg);
        let content_type = format!("multipart/form-data; boundary={boundary}");
        self.post("sendPhoto", &content_type, &body)
    }
}

/// The form: the text fields, then the photo part (`image.jpg`, `image/jpeg`). Field values
/// are the bot's own (numbers, JSON, rendered HTML); a random boundary cannot occur in them.
fn form(boundary: &str, fields: &[(&str, String)], jpeg: &[u8]) -> Vec<u8> {
    let mut head = String::new();
    for (name, value) in fields {
        head += &format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        );
    }
    head += &format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"image.jpg\"\r\n\
         Content-Type: image/jpeg\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    [head.as_bytes(), jpeg, tail.as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_has_the_fields_then_the_photo() {
        let body = form("B", &[("chat_id", "7".into())], b"\xFF\xD8");
        let mut expected = b"--B\r\nContent-Disposition: form-data; name=\"chat_id\"\r\n\r\n7\r\n\
--B\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"image.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
            .to_vec();
        expected.extend_from_slice(b"\xFF\xD8\r\n--B--\r\n");
        assert_eq!(body, expected);
    }
}
