//! Files in GigaChat's storage: a photo or a document is uploaded (`POST /files`) for one
//! question, asked about by its id (`attachments`), and deleted after the answer
//! (`POST /files/{id}/delete`), since GigaChat keeps files until they are deleted.

use serde::Deserialize;

use super::{Error, GigaChat};
use crate::config::Secret;
use crate::net::{FilePart, multipart};
use crate::sber::error_message;

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

/// A picture in an answer: GigaChat's tag `<img src="ID" fuse="true"/>` (text may come
/// before and after it). Returns the file's id and the rest of the text without the tag;
/// only that shape counts (a `<video …/>` or a tag in other words is left as text).
pub fn drawn_picture(answer: &str) -> Option<(String, String)> {
    let start = answer.find("<img src=\"")?;
    let after = &answer[start + "<img src=\"".len()..];
    let (id, tail) = after.split_once('"')?;
    let tail = tail.trim_start().strip_prefix("fuse=\"true\"")?.trim_start();
    let rest = tail.strip_prefix("/>").or_else(|| tail.strip_prefix('>'))?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return None;
    }
    let text = format!("{} {}", answer[..start].trim_end(), rest.trim_start());
    Some((id.to_string(), text.trim().to_string()))
}

#[derive(Deserialize)]
struct Uploaded {
    id: String,
}

impl GigaChat {
    /// Uploads one file (multipart, `purpose=general`) and returns its id. `mime` is the
    /// type GigaChat's list of formats names.
    pub fn upload_file(&mut self, name: &str, mime: &str, bytes: &[u8]) -> Result<String, Error> {
        let file = FilePart { field: "file", name, mime, bytes };
        let (content_type, body) = multipart(&[("purpose", "general")], &file);
        let url = format!("{}/files", self.base_url);
        let text = self.authorized("upload", |this, token| {
            let result = this
                .agent
                .post(&url)
                .header("Content-Type", &content_type)
                .header("Accept", "application/json")
                .header("Authorization", &format!("Bearer {}", token.expose()))
                .send(&body[..]);
            this.read(result).map(|(status, text)| (status, text.into_bytes()))
        })?;
        let uploaded: Uploaded = serde_json::from_slice(&text)
            .map_err(|err| Error::BadResponse(format!("file upload: {err}")))?;
        // It goes into a URL path when the file is deleted.
        let id = uploaded.id;
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(Error::BadResponse("file upload: the id is not an id".into()));
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
            this.read(result).map(|(status, text)| (status, text.into_bytes()))
        })?;
        Ok(())
    }

    /// The bytes of a picture GigaChat drew (`GET /files/{id}/content`), at most `max` of
    /// them. GigaChat sends JPEG; anything else (its type is not documented, so the bytes
    /// are checked) is a bad answer.
    pub fn download_image(&mut self, id: &str, max: usize) -> Result<Vec<u8>, Error> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(Error::BadResponse("a picture without an id".into()));
        }
        let url = format!("{}/files/{id}/content", self.base_url);
        let bytes = self.authorized("download", |this, token| {
            let result = this
                .agent
                .get(&url)
                .header("Accept", "application/jpg")
                .header("Authorization", &format!("Bearer {}", token.expose()))
                .call();
            let mut response = result.map_err(|err| this.transport_error(err))?;
            let status = response.status().as_u16();
            let bytes = response.body_mut().with_config().limit(max as u64).read_to_vec().map_err(
                |err| match err {
                    ureq::Error::BodyExceedsLimit(_) => {
                        Error::BadResponse(format!("a picture of more than {max} bytes"))
                    }
                    other => this.transport_error(other),
                },
            )?;
            Ok((status, bytes))
        })?;
        if !bytes.starts_with(&[0xFF, 0xD8]) {
            return Err(Error::BadResponse("the picture is not a JPEG".into()));
        }
        Ok(bytes)
    }

    /// A call with the access token: a 401 with a cached token gets one new token and one
    /// retry, as chat does. The body of a 200, or the error.
    fn authorized(
        &mut self,
        what: &str,
        call: impl Fn(&GigaChat, &Secret) -> Result<(u16, Vec<u8>), Error>,
    ) -> Result<Vec<u8>, Error> {
        let had_token = self.oauth.has_token();
        let token = self.get_gigachat_token()?;
        let (mut status, mut text) = call(self, &token)?;
        if status == 401 && had_token {
            log::info!("gigachat {what}: the access token was refused (401); getting a new one");
            self.oauth.forget();
            let token = self.get_gigachat_token()?;
            (status, text) = call(self, &token)?;
        }
        if status == 200 {
            return Ok(text);
        }
        let message = error_message(&String::from_utf8_lossy(&text));
        log::warn!("gigachat file {what}: HTTP {status} {message}");
        Err(match status {
            401 => Error::Auth { status, message, check: self.key_origin.clone() },
            413 => Error::TooLarge(message),
            429 => Error::RateLimited,
            500.. => Error::Server(status),
            // 400, 403 (not this client's file), 404, 415, 422: refused as made.
            _ => Error::Refused { status, message },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_models_see_images() {
        assert!(sees_images("GigaChat-2-Max") && sees_images("GigaChat-Pro"));
        assert!(!sees_images("GigaChat-2") && !sees_images("GigaChat"));
    }

    #[test]
    fn a_picture_is_found_only_in_its_own_tag() {
        let found =
            drawn_picture("Запускаю. <img src=\"3727db23-91a3\" fuse=\"true\"/> - вот кот.");
        assert_eq!(found, Some(("3727db23-91a3".into(), "Запускаю. - вот кот.".into())));
        let only = drawn_picture("<img src=\"a1\" fuse=\"true\" />");
        assert_eq!(only, Some(("a1".into(), String::new())));
        assert_eq!(drawn_picture("<img src=\"a1\"/> нет fuse"), None);
        assert_eq!(drawn_picture("<img src=\"a b\" fuse=\"true\"/>"), None);
        assert_eq!(drawn_picture("<video cover=\"x\" src=\"a1\" fuse=\"true\"/>"), None);
        assert_eq!(drawn_picture("просто текст"), None);
    }
}
