//! Files in GigaChat's storage: a photo or a document is uploaded (`POST /files`) for one
//! question, asked about by its id (`attachments`), and deleted after the answer
//! (`POST /files/{id}/delete`), since GigaChat keeps files until they are deleted.

use serde::Deserialize;

use super::{Error, GigaChat, bad_response};
use crate::net::{FilePart, multipart};
use crate::sber::{Api, Request};

/// A picture in an answer: GigaChat's tag `<img src="ID" fuse="true"/>` (text may come
/// before and after it). Returns the file's id and the rest of the text without the tag;
/// only that shape counts (a `<video …/>` or a tag in other words is left as text).
pub fn drawn_picture(answer: &str) -> Option<(String, String)> {
    let start = answer.find("<img src=\"")?;
    let after = &answer[start + "<img src=\"".len()..];
    let (id, tail) = after.split_once('"')?;
    let tail = tail.trim_start().strip_prefix("fuse=\"true\"")?.trim_start();
    let rest = tail.strip_prefix("/>").or_else(|| tail.strip_prefix('>'))?;
    if !is_file_id(id) {
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
    /// Uploads one file (multipart, `purpose=general`): its id. `mime` as GigaChat's list names it.
    pub fn upload_file(&mut self, name: &str, mime: &str, bytes: &[u8]) -> Result<String, Error> {
        let file = FilePart { field: "file", name, mime, bytes };
        let (content_type, body) = multipart(&[("purpose", "general")], &file);
        let text = self.sber.call(&Request {
            what: "file upload",
            api: Api::Files,
            url: format!("{}/files", self.base_url),
            accept: "application/json",
            body: Some((&content_type, &body)),
            session: None,
        })?;
        let uploaded: Uploaded = serde_json::from_str(&text)
            .map_err(|err| bad_response(format!("file upload: {err}")))?;
        // It goes into a URL path when the file is deleted.
        let id = uploaded.id;
        if !is_file_id(&id) {
            return Err(bad_response("file upload: the id is not an id".into()));
        }
        Ok(id)
    }

    /// Deletes an uploaded file (`POST /files/{id}/delete`, with the JS SDK's ignored body `{}`).
    pub fn delete_file(&mut self, id: &str) -> Result<(), Error> {
        self.sber.call(&Request {
            what: "file delete",
            api: Api::Files,
            url: format!("{}/files/{id}/delete", self.base_url),
            accept: "application/json",
            body: Some(("application/json", b"{}")),
            session: None,
        })?;
        Ok(())
    }

    /// The bytes of a picture GigaChat drew (`GET /files/{id}/content`), at most `max`: a JPEG,
    /// checked by its bytes (the type is not documented); anything else is a bad answer.
    pub fn download_image(&mut self, id: &str, max: usize) -> Result<Vec<u8>, Error> {
        if !is_file_id(id) {
            return Err(bad_response("a picture without an id".into()));
        }
        let (mut response, _) = self.sber.send(&Request {
            what: "file download",
            api: Api::Files,
            url: format!("{}/files/{id}/content", self.base_url),
            accept: "application/jpg",
            body: None,
            session: None,
        })?;
        let body = response.body_mut().with_config().limit(max as u64);
        let bytes = body.read_to_vec().map_err(|err| match err {
            ureq::Error::BodyExceedsLimit(_) => {
                bad_response(format!("a picture of more than {max} bytes"))
            }
            other => self.sber.transport_error(other),
        })?;
        if !bytes.starts_with(&[0xFF, 0xD8]) {
            return Err(bad_response("the picture is not a JPEG".into()));
        }
        Ok(bytes)
    }
}

/// An id GigaChat could have given (it goes into a URL path).
fn is_file_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

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
