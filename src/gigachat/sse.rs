//! A streamed answer: server-sent events, read with caps on a line, the answer and the stream.

use std::io::{BufRead, Read};

use serde::Deserialize;

use super::{ChoiceMessage, Completion, Error, Failure, STOPPED, Usage, bad_response, error};
use super::{MAX_ANSWER_BYTES, MAX_EVENT_BYTES, MAX_STREAM_BYTES};
use crate::sber::{Service, timeout_text};

#[derive(Deserialize)]
struct StreamEvent {
    #[serde(default)]
    choices: Vec<StreamChoice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct StreamChoice {
    #[serde(default)]
    delta: ChoiceMessage,
    finish_reason: Option<String>,
}

/// Reads server-sent events: `data: {json}` lines with `choices[0].delta.content`,
/// `finish_reason` and `usage` in the last one, then `data: [DONE]`. A line, the answer
/// and the whole stream have caps, so a server that never ends a line or a stream cannot
/// fill the memory of a small machine. After `[DONE]` the body is read to its end: only
/// then does ureq put the connection back in its pool for the next question. When `on_text`
/// says stop, the rest is not read: the connection closes, and GigaChat stops generating.
pub(super) fn read_events(
    mut reader: impl BufRead,
    on_text: &mut dyn FnMut(&str) -> bool,
    request_id: String,
    timeout_secs: u64,
) -> Result<Completion, Error> {
    let mut completion = Completion { request_id, ..Completion::default() };
    let (mut line, mut total) = (Vec::new(), 0);
    loop {
        let Some(data) = next_data(&mut reader, &mut line, &mut total, timeout_secs)? else {
            continue; // blank separators, comments, `event:` and `id:` lines
        };
        if data == "[DONE]" {
            if completion.finish_reason.is_empty() {
                completion.finish_reason = "stop".into();
            }
            // The rest is the chunked body's end; a server that sends more is not waited
            // for beyond the cap, its connection is just not reused.
            let _ = std::io::copy(&mut reader.take(64 * 1024), &mut std::io::sink());
            return Ok(completion);
        }
        let event: StreamEvent =
            serde_json::from_str(data).map_err(|err| bad_response(format!("event: {err}")))?;
        if let Some(usage) = event.usage {
            completion.usage = usage;
        }
        let Some(choice) = event.choices.into_iter().next() else {
            continue;
        };
        if let Some(reason) = choice.finish_reason {
            completion.finish_reason = reason;
        }
        let piece = choice.delta.content;
        if completion.content.len() + piece.len() > MAX_ANSWER_BYTES {
            let limit = MAX_ANSWER_BYTES >> 20;
            return Err(bad_response(format!("an answer longer than {limit} MiB")));
        }
        if !piece.is_empty() {
            completion.content.push_str(&piece);
            if !on_text(&piece) {
                completion.finish_reason = STOPPED.into();
                return Ok(completion);
            }
        }
    }
}

/// The next line of the stream into `line`, within the caps (`total`: so far); its `data:` field.
fn next_data<'a>(
    reader: &mut impl BufRead,
    line: &'a mut Vec<u8>,
    total: &mut usize,
    timeout_secs: u64,
) -> Result<Option<&'a str>, Error> {
    line.clear();
    let read = reader.take(MAX_EVENT_BYTES as u64 + 1).read_until(b'\n', line);
    let read = read.map_err(|err| match err.kind() {
        std::io::ErrorKind::TimedOut => {
            let (service, phase) = (Service::GigaChat, ureq::Timeout::RecvBody);
            let text = timeout_text(service, phase, timeout_secs, "gigachat.timeout_secs");
            error(Failure::Timeout(text))
        }
        _ => error(Failure::Interrupted(err.to_string())),
    })?;
    if read == 0 {
        return Err(error(Failure::Interrupted("the stream ended before [DONE]".into())));
    }
    *total += read;
    if read > MAX_EVENT_BYTES {
        let limit = MAX_EVENT_BYTES / 1024;
        return Err(bad_response(format!("an event line longer than {limit} KiB")));
    }
    if *total > MAX_STREAM_BYTES {
        let limit = MAX_STREAM_BYTES >> 20;
        return Err(bad_response(format!("the event stream is longer than {limit} MiB")));
    }
    let Ok(line) = std::str::from_utf8(line) else {
        return Err(bad_response("an event that is not UTF-8".into()));
    };
    Ok(line.trim_end().strip_prefix("data:").map(str::trim_start))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(content: &str) -> String {
        format!("data: {}\n\n", json!({"choices": [{"delta": {"content": content}, "index": 0}]}))
    }

    fn read(stream: &[u8]) -> (Result<Completion, Error>, String) {
        let mut seen = String::new();
        let mut cursor = std::io::Cursor::new(stream);
        let result = read_events(
            &mut cursor,
            &mut |p| {
                seen.push_str(p);
                true
            },
            "id".into(),
            5,
        );
        (result, seen)
    }

    #[test]
    fn a_stream_is_read_to_its_end_after_done() {
        let mut stream = event("При") + &event("вет");
        stream.push_str("data: [DONE]\n\n");
        let tail = b"0\r\n\r\n-- the rest of the body --";
        let mut bytes = stream.into_bytes();
        bytes.extend_from_slice(tail);
        let mut cursor = std::io::Cursor::new(&bytes[..]);
        let mut seen = String::new();
        let done = read_events(
            &mut cursor,
            &mut |p| {
                seen.push_str(p);
                true
            },
            "id".into(),
            5,
        )
        .unwrap();
        assert_eq!((done.content.as_str(), seen.as_str()), ("Привет", "Привет"));
        assert_eq!(done.finish_reason, "stop");
        assert_eq!(cursor.position() as usize, bytes.len(), "the body was not read to its end");
    }

    /// How a read failed: the kind and the text.
    fn failed(stream: &[u8]) -> (String, String) {
        let err = read(stream).0.expect_err("a failed read");
        (err.kind(), err.to_string())
    }

    #[test]
    fn an_endless_line_an_endless_stream_and_a_huge_answer_are_bad_answers() {
        let (kind, text) = failed(&vec![b'x'; MAX_EVENT_BYTES + 10]);
        assert!(kind == "bad response" && text.contains("event line"), "{text}");

        let comments = format!(": {}\n", "x".repeat(1022)).repeat(MAX_STREAM_BYTES / 1024 + 1);
        let (kind, text) = failed(comments.as_bytes());
        assert!(kind == "bad response" && text.contains("stream"), "{text}");

        let piece = "я".repeat(1000); // 2000 bytes
        let stream = event(&piece).repeat(MAX_ANSWER_BYTES / 2000 + 1);
        let (result, seen) = read(stream.as_bytes());
        let text = result.expect_err("too long").to_string();
        assert!(text.starts_with("gigachat: unreadable answer: an answer longer"), "{text}");
        assert!(seen.len() <= MAX_ANSWER_BYTES, "{} bytes passed on", seen.len());

        assert_eq!(failed(b"data: {\"choices\": []}\n\xff\xfe\n").0, "bad response");
        let (kind, text) = failed(event("обрыв").as_bytes());
        assert_eq!(kind, "interrupted");
        assert_eq!(text, "gigachat: the answer broke off: the stream ended before [DONE]");
    }
}
