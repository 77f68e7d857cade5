//! Photos and documents, by their formats: which file GigaChat gets and what it is asked
//! about it (the caption, or a default question), or the one sentence that says why not:
//! too big, a format GigaChat does not read, a model that does not see images.

use super::{Action, Ask, Decision, Seen, ask, decision, reply_context, strip_mentions};
use crate::incoming::{MAX_DOWNLOAD_BYTES, Message};
use crate::report::Kind;
use crate::texts;

/// The largest image GigaChat takes (jpeg, png, tiff, bmp).
pub const MAX_IMAGE_BYTES: u64 = 15 << 20;
/// The largest text document GigaChat takes (txt, pdf, doc, docx, epub, ppt, pptx).
pub const MAX_TEXT_FILE_BYTES: u64 = 40 << 20;

/// Does this model see images? GigaChat-Pro, -Max and their 2.x versions do (Sber's vision
/// examples and LiteLLM's model list); the Lite models (GigaChat, GigaChat-2) are not known
/// to. GigaChat-3-Ultra, the free model above Max, is assumed to: no source says either
/// way. A wrong guess shows: GigaChat then refuses the attachment, and the user is told.
pub fn sees_images(model: &str) -> bool {
    let model = model.to_ascii_lowercase();
    ["-pro", "-max", "-ultra"].iter().any(|tier| model.contains(tier))
}

/// A file to download from Telegram and upload to GigaChat.
#[derive(Debug, Clone)]
pub struct FileRef {
    pub file_id: String,
    /// As Telegram gave it (it may not say).
    pub size: Option<u64>,
    /// At most this many bytes are downloaded: what GigaChat takes of this kind of file.
    pub max: u64,
    /// A photo (the user sent it as a photo), else a document.
    pub photo: bool,
    /// An image (a photo, or a picture sent as a document): only some models see them.
    pub image: bool,
    /// The MIME type GigaChat's list of formats names for it.
    pub mime: &'static str,
    /// The file name for the upload and for memory's note.
    pub name: String,
}

impl FileRef {
    /// How memory notes the file: "[фото]" or "[документ report.pdf]"; never the file.
    pub fn note(&self) -> String {
        match self.photo {
            true => texts::PHOTO_NOTE.into(),
            false => texts::DOCUMENT_NOTE.replace("{name}", &self.name),
        }
    }
}

const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
const PPTX: &str = "application/vnd.openxmlformats-officedocument.presentationml.presentation";

/// The formats GigaChat reads: (extension, the MIME type apps send, the one GigaChat's list
/// names, an image?). Audio is storable too, but no model is known to listen to it.
const FORMATS: [(&str, &str, &str, bool); 13] = [
    ("txt", "text/plain", "text/plain", false),
    ("pdf", "application/pdf", "application/pdf", false),
    ("doc", "application/msword", "application/msword", false),
    ("docx", DOCX, DOCX, false),
    ("epub", "application/epub+zip", "application/epub", false),
    ("ppt", "application/vnd.ms-powerpoint", "application/ppt", false),
    ("pptx", PPTX, "application/pptx", false),
    ("jpg", "image/jpeg", "image/jpeg", true),
    ("jpeg", "image/jpeg", "image/jpeg", true),
    ("png", "image/png", "image/png", true),
    ("tif", "image/tiff", "image/tiff", true),
    ("tiff", "image/tiff", "image/tiff", true),
    ("bmp", "image/bmp", "image/bmp", true),
];

/// What to do with a photo or a document (None for other messages): ask GigaChat about it,
/// within the sender's limits, or say in one sentence why not.
pub(super) fn decide_file(
    cx: &Seen,
    message: &Message,
    sender: i64,
    in_group: bool,
) -> Option<Decision> {
    let file = match file_of(cx, message)? {
        Ok(file) => file,
        Err(text) => return Some(decision(Kind::File, Action::Notice(text))),
    };
    let caption = match in_group {
        true => strip_mentions(cx.me, message, true),
        false => message.caption.as_deref().unwrap_or("").trim().to_string(),
    };
    if let Some(text) = super::too_long(cx.config, &caption) {
        return Some(decision(Kind::TooLong, Action::Notice(text)));
    }
    let question = match (caption.is_empty(), file.photo) {
        (false, _) => caption,
        (true, true) => texts::PHOTO_QUESTION.into(),
        (true, false) => texts::DOCUMENT_QUESTION.into(),
    };
    let context = reply_context(cx, message);
    let question = Ask { question, context, file: Some(file), ..Ask::default() };
    Some(ask(cx, sender, Kind::File, question))
}

/// The file of a photo or document message, or the sentence why it cannot be asked about.
fn file_of(cx: &Seen, message: &Message) -> Option<Result<FileRef, String>> {
    let image_max = MAX_IMAGE_BYTES.min(MAX_DOWNLOAD_BYTES);
    let text_max = MAX_TEXT_FILE_BYTES.min(MAX_DOWNLOAD_BYTES);
    let file = if let Some(sizes) = &message.photo {
        // The largest size that fits (Telegram lists them smallest first, but does not say so).
        let fits = |size: Option<u64>| size.unwrap_or(0) <= image_max;
        let fitting = sizes.iter().filter(|s| fits(s.file_size));
        let Some(best) = fitting.max_by_key(|s| s.width.saturating_mul(s.height)) else {
            let smallest = sizes.iter().filter_map(|s| s.file_size).min();
            return Some(Err(too_big(smallest.unwrap_or(0), image_max, text_max)));
        };
        let (file_id, size, name) = (best.file_id.clone(), best.file_size, "photo.jpg".into());
        let (max, mime) = (image_max, "image/jpeg"); // Telegram keeps photos as JPEG.
        FileRef { file_id, size, max, photo: true, image: true, mime, name }
    } else {
        let document = message.document.as_ref()?;
        let name = document.file_name.clone().unwrap_or_default();
        let extension =
            name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
        let mime = document.mime_type.as_deref().unwrap_or("").to_ascii_lowercase();
        let by_type = || FORMATS.iter().find(|f| f.1 == mime || f.2 == mime);
        let format = FORMATS.iter().find(|f| f.0 == extension).or_else(by_type);
        let Some(&(extension, _, mime, image)) = format else {
            return Some(Err(texts::FILE_TYPE.into()));
        };
        let max = if image { image_max } else { text_max };
        let name = if name.trim().is_empty() { format!("document.{extension}") } else { name };
        if let Some(size) = document.file_size.filter(|&size| size > max) {
            return Some(Err(too_big(size, image_max, text_max)));
        }
        let (file_id, size) = (document.file_id.clone(), document.file_size);
        FileRef { file_id, size, max, photo: false, image, mime, name }
    };
    let model = &cx.config.gigachat.model;
    if file.image && !sees_images(model) {
        return Some(Err(texts::NO_IMAGES.replace("{model}", model)));
    }
    Some(Ok(file))
}

/// "Файл слишком большой (21,5 МБ)…", in MB with one decimal, as phones show sizes.
fn too_big(size: u64, image_max: u64, text_max: u64) -> String {
    let mb = |bytes: u64| format!("{:.1}", bytes as f64 / (1 << 20) as f64).replace('.', ",");
    texts::FILE_TOO_BIG
        .replace("{size}", &mb(size))
        .replace("{image_max}", &(image_max >> 20).to_string())
        .replace("{text_max}", &(text_max >> 20).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_models_see_images() {
        assert!(sees_images("GigaChat-2-Max") && sees_images("GigaChat-Pro"));
        assert!(sees_images("GigaChat-3-Ultra"));
        assert!(!sees_images("GigaChat-2") && !sees_images("GigaChat"));
    }
}
