//! What the three HTTP clients (Telegram, GigaChat, SaluteSpeech) share: the agent, which
//! differs between them only in its time limits and TLS roots, and the multipart form of a
//! file upload (Telegram's `sendPhoto`, GigaChat's `POST /files`).

use std::time::Duration;

/// Per-phase time limits in seconds. Set per phase, not as one global timeout: with a
/// global one, ureq resolves the host name on a new thread for every request.
#[derive(Clone, Copy)]
pub struct Limits {
    pub connect: u64,
    pub send: u64,
    pub answer: u64,
    pub body: u64,
}

/// An agent (kept-alive connections) with these limits and TLS verified by native-tls
/// against `roots`. Any status is an answer, not an error, so its body stays readable.
pub fn agent(limits: Limits, roots: ureq::tls::RootCerts) -> ureq::Agent {
    let secs = |secs| Some(Duration::from_secs(secs));
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(secs(limits.connect))
        .timeout_send_request(secs(limits.send))
        .timeout_send_body(secs(limits.send))
        .timeout_recv_response(secs(limits.answer))
        .timeout_recv_body(secs(limits.body))
        // Small buffers: the APIs send headers of a few hundred bytes, and the 128 KB
        // defaults would be a large part of the bot's memory.
        .max_response_header_size(16 * 1024)
        .input_buffer_size(32 * 1024)
        .output_buffer_size(32 * 1024)
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .provider(ureq::tls::TlsProvider::NativeTls)
                .root_certs(roots)
                .build(),
        )
        .user_agent(concat!("gigabot/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// The file of a form: the form field it goes in, its name and type, its bytes.
pub struct FilePart<'a> {
    pub field: &'a str,
    pub name: &'a str,
    pub mime: &'a str,
    pub bytes: &'a [u8],
}

/// A `multipart/form-data` body (the text fields, then the file) and its `Content-Type`.
pub fn multipart(fields: &[(&str, &str)], file: &FilePart) -> (String, Vec<u8>) {
    let boundary = uuid::Uuid::new_v4().simple().to_string();
    (format!("multipart/form-data; boundary={boundary}"), form(&boundary, fields, file))
}

/// The form with this boundary. Field values are the bot's own (numbers, JSON, rendered
/// HTML), in which a random boundary cannot occur; a file name may be a user's, and quotes
/// or line breaks in it would break the form, so they become `_`.
fn form(boundary: &str, fields: &[(&str, &str)], file: &FilePart) -> Vec<u8> {
    let name = file.name.replace(['"', '\\', '\r', '\n'], "_");
    let mut head = String::new();
    for (field, value) in fields {
        head += &format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n{value}\r\n"
        );
    }
    head += &format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{name}\"\r\n\
         Content-Type: {}\r\n\r\n",
        file.field, file.mime
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    [head.as_bytes(), file.bytes, tail.as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_has_the_fields_then_the_file() {
        let photo =
            FilePart { field: "photo", name: "image.jpg", mime: "image/jpeg", bytes: b"\xFF\xD8" };
        let body = form("B", &[("chat_id", "7")], &photo);
        let mut expected = b"--B\r\nContent-Disposition: form-data; name=\"chat_id\"\r\n\r\n7\r\n\
--B\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"image.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
            .to_vec();
        expected.extend_from_slice(b"\xFF\xD8\r\n--B--\r\n");
        assert_eq!(body, expected);
    }

    #[test]
    fn a_users_file_name_cannot_break_the_form() {
        let file =
            FilePart { field: "file", name: "a\"b\r\n\\.txt", mime: "text/plain", bytes: b"hi" };
        let text = String::from_utf8(form("B", &[("purpose", "general")], &file)).unwrap();
        assert_eq!(
            text,
            "--B\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\ngeneral\r\n--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a_b___.txt\"\r\nContent-Type: text/plain\r\n\r\nhi\r\n--B--\r\n"
        );
        let (content_type, body) = multipart(&[], &file);
        let boundary = content_type.strip_prefix("multipart/form-data; boundary=").unwrap();
        assert_eq!(boundary.len(), 32, "{content_type}");
        assert!(body.starts_with(format!("--{boundary}\r\n").as_bytes()));
        assert!(body.ends_with(format!("\r\n--{boundary}--\r\n").as_bytes()));
    }
}
