//! Files in GigaChat's storage: a photo or a document is uploaded (`POST /files`) for one
//! question, asked about by its id (`attachments`), and deleted after the answer
//! (`POST /files/{id}/delete`), since GigaChat keeps files until they are deleted.

use serde::Deserialize;

use super::{Error, GigaChat, error_message};
use crate::config::Secret;

/// The largest image GigaChat takes (jpeg, png, tiff, bmp).
pub const MAX_IMAGE_BYTES: u64 = 15 << 20;
/// The largest text document GigaChat takes (txt, pdf, doc, docx, epub, ppt, pptx).
pub const MAX_TEXT_FILE_BYTES: u64 = 40 << 20;

/// Does this model see images? GigaChat-Pro, -Max and their 2.x versions do (Sber's vision
/// examples and LiteLLM's model list); the Lite models (GigaChat, GigaChat-2) are not known
/// to. A wrong guess shows: GigaChat then refuses the attachment, and the user is told.
pub fn sees_images(model: &str) -> bool {
    let model = model.to_ascii_lowercase();
    model.contains("-pro") || model.contains("-max")
}

#[derive(Deserialize)]
struct Uploaded {
    id: String,
}

impl GigaChat {
    /// Uploads one file (multipart, `purpose=general`) and returns its id. `mime` is the
    /// type GigaChat's list of formats names.
    pub fn upload_file(&mut self, name: &str, mime: &str, bytes: &[u8]) -> Result<String, Error> {
        let boundary = uuid::Uuid::new_v4().simple().to_string();
        let body = multipart(&boundary, name, mime, bytes);
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let url = format!("{}/files", self.base_url);
        let text = self.authorized("upload", |this, token| {
            let result = this
                .agent
                .post(&url)
                .header("Content-Type", &content_type)
                .header("Accept", "application/json")
                .header("Authorization", &format!("Bearer {}", token.expose()))
                .send(&body[..]);
            this.read(result)
        })?;
        let uploaded: Uploaded = serde_json::from_str(&text)
            .map_err(|err| Error::BadResponse(format!("file upload: {err}")))?;
        // It goes into a URL path when the file is deleted.
        let id = uploaded.id;
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(Error::BadResponse(
                "file upload: the id is not an id".into(),
            ));
        }
        Ok(id)
    }

    /// Deletes an uploaded file (`POST /files/{id}/delete`; the body is ignored, `{}` as the
    /// JS SDK sends).
    pub fn delete_file(&mut self, id: &str) -> Result<(), Error> {
        let url = format!("{}/files/{id}/delete", self.base_url);
        self.authorized("delete", |this, token| {
            let result = this
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .header("Accept", "application/json")
                .header("Authorization", &format!("Bearer {}", token.expose()))
                .send(&b"{}"[..]);
            this.read(result)
        })?;
        Ok(())
    }

    /// A call with the access token: a 401 with a cached token gets one new token and one
    /// retry, as chat does. The body of a 200, or the error.
    fn authorized(
        &mut self,
        what: &str,
        call: impl Fn(&GigaChat, &Secret) -> Result<(u16, String), Error>,
    ) -> Result<String, Error> {
        let had_token = self.token.is_some();
        let token = self.get_gigachat_token()?;
        let (mut status, mut text) = call(self, &token)?;
        if status == 401 && had_token {
            log::info!("gigachat {what}: the access token was refused (401); getting a new one");
            self.token = None;
            let token = self.get_gigachat_token()?;
            (status, text) = call(self, &token)?;
        }
        if status == 200 {
            return Ok(text);
        }
        let message = error_message(&text);
        log::warn!("gigachat file {what}: HTTP {status} {message}");
        Err(match status {
            401 => Error::Auth {
                status,
                message,
                check: self.key_origin.clone(),
            },
            413 => Error::TooLarge(message),
            429 => Error::RateLimited,
            500.. => Error::Server(status),
            // 400, 403 (not this client's file), 404, 415, 422: refused as made.
            _ => Error::Refused { status, message },
        })
    }
}

/// The form GigaChat's SDK sends: the text field `purpose`, then the file with its name and
/// type. The name is the user's: quotes and line breaks in it could break the form.
fn multipart(boundary: &str, name: &str, mime: &str, bytes: &[u8]) -> Vec<u8> {
    let name: String = name
        .chars()
        .map(|c| match c {
            '"' | '\\' | '\r' | '\n' => '_',
            c => c,
        })
        .collect();
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\ngeneral\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: {mime}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_has_two_parts_and_a_safe_name() {
        let body = multipart("B", "a\"b\r\n.txt", "text/plain", b"hi");
        let text = String::from_utf8(body).unwrap();
        assert_eq!(
            text,
            "--B\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\ngeneral\r\n--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a_b__.txt\"\r\nContent-Type: text/plain\r\n\r\nhi\r\n--B--\r\n"
        );
        assert!(sees_images("GigaChat-2-Max") && sees_images("GigaChat-Pro"));
        assert!(!sees_images("GigaChat-2") && !sees_images("GigaChat"));
    }
}
