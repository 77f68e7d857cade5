//! Files users send: where one is (`getFile`), and its bytes (the download URL). The URL
//! holds the token like every request URL, so errors name "file download", never the URL.

use serde_json::json;

use super::error::Envelope;
use super::{Error, ErrorKind, OnFlood, Telegram};
use crate::incoming::File;

impl Telegram {
    /// Where a received file can be downloaded (`file_path`, valid for an hour). Network trouble
    /// is waited out; a refusal ("invalid file_id", "file is too big") returns at once.
    pub fn get_file(&self, file_id: &str) -> Result<File, Error> {
        self.call("getFile", &json!({ "file_id": file_id }), OnFlood::Wait)
    }

    /// A received file, at most `max` bytes: getFile, then the download. `known`: the message's
    /// size, for when getFile gives none; a bigger file is refused before any byte is read.
    pub fn fetch_file(&self, id: &str, known: Option<u64>, max: u64) -> Result<Vec<u8>, Error> {
        let found = self.get_file(id)?;
        let size = found.file_size.or(known).unwrap_or(0);
        let Some(path) = found.file_path.filter(|_| size <= max) else {
            let description = format!("a file of {size} bytes, more than {max}");
            let kind = ErrorKind::Rejected { code: 400, description, migrate_to_chat_id: None };
            return Err(Error { method: "getFile", kind });
        };
        self.download(&path, max)
    }

    /// The bytes of a file by its `file_path` from getFile, at most `max` of them. One try:
    /// a download that fails is the user's to send again, not the loop's to wait for.
    pub fn download(&self, file_path: &str, max: u64) -> Result<Vec<u8>, Error> {
        let fail = |kind| Error { method: "file download", kind };
        let path = file_path.trim_start_matches('/');
        let url = format!("{}/file/bot{}/{path}", self.api_url, self.token.expose());
        let mut response =
            self.agent.get(&url).call().map_err(|err| fail(self.unanswered(&err)))?;
        let status = response.status().as_u16();
        let body = response.body_mut().with_config().limit(max);
        if status != 200 {
            // Telegram answers a JSON envelope ("Not Found"), an nginx in front an HTML page.
            let bytes = body.read_to_vec().unwrap_or_default();
            let description = serde_json::from_slice::<Envelope>(&bytes)
                .ok()
                .and_then(|e| e.description)
                .unwrap_or_else(|| format!("HTTP {status}"));
            let kind = ErrorKind::Rejected { code: status, description, migrate_to_chat_id: None };
            return Err(fail(kind));
        }
        body.read_to_vec().map_err(|err| {
            fail(ErrorKind::Lost(match err {
                ureq::Error::BodyExceedsLimit(_) => format!("the file is larger than {max} bytes"),
                other => self.detail(&other),
            }))
        })
    }
}
