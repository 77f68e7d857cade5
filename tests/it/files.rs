//! Photos and documents (issue 15, item 2): getFile, the download, the upload to GigaChat's
//! `/files`, the question with `attachments`, the deletion after the answer; each failure
//! in one sentence; memory keeps a note, never the file. And the fakes' file endpoints,
//! as strict as the reference (gigachat-media.md §1, §2, §5.1).

use std::time::Duration;

use serde_json::{Value, json};
use ureq::Agent;
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

use crate::core::World;
use crate::fake_gigachat::{FakeGigaChat, Reply, StoredFile};
use crate::fake_telegram::{self as tg, FakeTelegram, Fault, GROUP, IVAN};

/// The largest size of `tg::photo`, and its file_id.
const PHOTO_BYTES: usize = 138559;
const PHOTO_LARGEST: &str =
    "AgACAgIAAxkBAAItZWZxN3Jlc2VhcmNoX3Bob3RvX2lkAAJ7xzEbZ2ZxYwABBwADAgADzQADNQQ";

/// The one file GigaChat got.
fn the_file(w: &World) -> StoredFile {
    let files = w.gc.files();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

/// The last request's last message: (content, attachments).
fn asked(w: &World) -> (String, Vec<String>) {
    let request = w.gc.chat_requests().pop().expect("GigaChat was asked");
    let last = request.messages.last().unwrap().clone();
    assert_eq!(last.role, "user");
    (last.content, last.attachments)
}

/// Waits until GigaChat recorded the deletion of every uploaded file.
fn wait_deleted(w: &World) {
    w.gc.wait_until(Duration::from_secs(10), "the upload is deleted", |gc| {
        gc.files().iter().all(|f| f.deleted)
    });
}

/// Asserts a single short reply containing `needle`, and that no file was fetched or sent.
fn one_sentence_nothing_fetched(w: &World, update: Value, needle: &str) {
    let id = w.tg.push(update);
    let answer = w.answer_to(id);
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert!(answer[0].contains(needle), "{answer:?}");
    assert_eq!(answer[0].matches(". ").count(), 0, "one sentence: {answer:?}");
    assert!(w.tg.calls_of("getFile").is_empty());
    assert!(w.tg.downloads().is_empty());
    assert!(w.gc.file_requests().is_empty());
    assert!(w.gc.chat_requests().is_empty());
}

#[test]
fn a_photo_with_a_caption_is_answered_and_its_upload_deleted() {
    let w = World::start();
    let id = w.tg.push(tg::photo(IVAN, IVAN, Some("Что на схеме?")));
    let answer = w.answer_to(id);
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert!(answer[0].contains("Что на схеме?"), "{answer:?}");
    // The largest size, downloaded and uploaded as it is.
    let get_file = w.tg.calls_of("getFile");
    assert_eq!(get_file.len(), 1);
    assert_eq!(get_file[0].text("file_id").as_deref(), Some(PHOTO_LARGEST));
    assert_eq!(w.tg.downloads().len(), 1);
    let file = the_file(&w);
    assert_eq!(
        (file.mime.as_str(), file.purpose.as_str(), file.bytes.len()),
        ("image/jpeg", "general", PHOTO_BYTES)
    );
    assert_eq!(&file.bytes[..3], &[0xFF, 0xD8, 0xFF]);
    assert_eq!(asked(&w), ("Что на схеме?".to_string(), vec![file.id.clone()]));
    // Deleted after the answer.
    wait_deleted(&w);
    let requests = w.gc.file_requests();
    let last = requests.last().unwrap();
    assert_eq!(
        (last.0.as_str(), last.1.clone(), last.2),
        ("POST", format!("/api/v1/files/{}/delete", file.id), 200)
    );
    // Nothing of the URL with the token in the log.
    assert!(!w.bot.log().contains(tg::TOKEN), "{}", w.bot.log());
}

#[test]
fn a_photo_without_caption_gets_the_default_question_in_the_chats_style() {
    let w = World::start();
    w.ask("/mode fairy");
    let id = w.tg.push(tg::photo(IVAN, IVAN, None));
    assert_eq!(w.answer_to(id).len(), 1);
    let request = w.gc.chat_requests().pop().unwrap();
    assert_eq!(request.system(), Some("Отвечай как сказочный персонаж"));
    let (question, attachments) = asked(&w);
    assert_eq!(question, "Что на этом изображении? Опиши и объясни.");
    assert_eq!(attachments.len(), 1);
    wait_deleted(&w);
}

#[test]
fn the_largest_photo_size_within_the_limits_is_sent() {
    let w = World::start();
    let sizes = [(320, 240, 20_000), (1280, 960, 200_000), (8000, 6000, 16 << 20)];
    let id = w.tg.push(tg::photo_sized(IVAN, IVAN, "big", &sizes, Some("Что это?")));
    w.answer_to(id);
    assert_eq!(the_file(&w).bytes.len(), 200_000);
    let asked_for = w.tg.calls_of("getFile")[0].text("file_id").unwrap();
    assert!(asked_for.contains("big1x1280"), "{asked_for}");
}

#[test]
fn documents_are_answered_with_their_type_and_name() {
    let w = World::start();
    let pdf = tg::document_file(
        IVAN,
        IVAN,
        "report.pdf",
        Some("application/pdf"),
        48213,
        Some("Кратко?"),
    );
    w.answer_to(w.tg.push(pdf));
    let file = the_file(&w);
    assert_eq!(
        (file.filename.as_str(), file.mime.as_str(), file.bytes.len()),
        ("report.pdf", "application/pdf", 48213)
    );
    assert_eq!(asked(&w), ("Кратко?".to_string(), vec![file.id]));
    wait_deleted(&w);

    // A text file without caption: the default question. An epub: GigaChat's own MIME name.
    let txt = tg::document_file(IVAN, IVAN, "notes.txt", Some("text/plain"), 900, None);
    w.answer_to(w.tg.push(txt));
    assert_eq!(asked(&w).0, "О чём этот документ? Перескажи главное.");
    let epub = tg::document_file(IVAN, IVAN, "book.epub", Some("application/epub+zip"), 5000, None);
    w.answer_to(w.tg.push(epub));
    let files = w.gc.files();
    assert_eq!(files.last().unwrap().mime, "application/epub");
    assert_eq!(files.len(), 3);
    wait_deleted(&w);
}

/// A `;` in a file name is part of the quoted `filename` (the fake's parser reads it as
/// GigaChat's does since it honours quotes); quotes become `_` in the bot's form.
#[test]
fn a_document_name_with_a_semicolon_reaches_gigachat_whole() {
    let w = World::start();
    let name = "план; \"v2\".pdf";
    let pdf = tg::document_file(IVAN, IVAN, name, Some("application/pdf"), 1000, None);
    w.answer_to(w.tg.push(pdf));
    assert_eq!(the_file(&w).filename, "план; _v2_.pdf");
}

#[test]
fn a_file_over_the_limits_gets_one_sentence_and_nothing_is_fetched() {
    let w = World::start();
    let big =
        tg::document_file(IVAN, IVAN, "video-notes.pdf", Some("application/pdf"), 25 << 20, None);
    one_sentence_nothing_fetched(&w, big, "20 МБ");
    let picture = tg::document_file(IVAN, IVAN, "scan.png", Some("image/png"), 16 << 20, None);
    one_sentence_nothing_fetched(&w, picture, "15 МБ");
    let sizes = [(6000, 8000, 16 << 20), (9000, 12000, 30 << 20)];
    let photo = tg::photo_sized(IVAN, IVAN, "huge", &sizes, None);
    one_sentence_nothing_fetched(&w, photo, "15 МБ");
}

#[test]
fn an_unsupported_type_gets_one_sentence_and_nothing_is_fetched() {
    let w = World::start();
    let exe =
        tg::document_file(IVAN, IVAN, "setup.exe", Some("application/x-msdownload"), 4000, None);
    one_sentence_nothing_fetched(&w, exe, "не читаю");
    let unknown = tg::document_file(IVAN, IVAN, "data", Some("application/octet-stream"), 10, None);
    one_sentence_nothing_fetched(&w, unknown, "не читаю");
}

#[test]
fn a_model_that_does_not_see_images_gets_no_photo_but_documents() {
    let w = World::start_with("[gigachat]\nmodel = \"GigaChat-2\"\n");
    one_sentence_nothing_fetched(&w, tg::photo(IVAN, IVAN, Some("Что тут?")), "GigaChat-2");
    let pdf = tg::document_file(IVAN, IVAN, "a.pdf", Some("application/pdf"), 100, None);
    w.answer_to(w.tg.push(pdf));
    assert_eq!(asked(&w).1.len(), 1);
}

#[test]
fn a_failed_download_is_told_and_the_loop_goes_on() {
    let w = World::start();
    // A dropped connection, a 404 from the file server, a getFile refusal.
    w.tg.fail_next("download", Fault::Drop);
    let id = w.tg.push(tg::photo(IVAN, IVAN, Some("Что это?")));
    let answer = w.answer_to(id);
    assert_eq!(answer.len(), 1);
    assert!(answer[0].contains("скачать"), "{answer:?}");

    w.tg.lose_file(PHOTO_LARGEST);
    let answer = w.answer_to(w.tg.push(tg::photo(IVAN, IVAN, None)));
    assert!(answer[0].contains("скачать"), "{answer:?}");
    assert_eq!(w.tg.downloads().last().unwrap().1, 404);

    let invalid =
        json!({"ok": false, "error_code": 400, "description": "Bad Request: invalid file_id"});
    w.tg.fail_next("getFile", Fault::Status(400, invalid));
    let pdf = tg::document_file(IVAN, IVAN, "a.pdf", Some("application/pdf"), 100, None);
    let answer = w.answer_to(w.tg.push(pdf));
    assert!(answer[0].contains("скачать"), "{answer:?}");

    assert!(w.gc.file_requests().is_empty());
    assert!(w.gc.chat_requests().is_empty());
    assert_eq!(w.ask("Привет").len(), 1);
    assert!(!w.bot.log().contains(tg::TOKEN));
}

#[test]
fn gigachat_refusing_the_upload_or_the_attachment_is_told() {
    let w = World::start();
    w.gc.fail_next_upload(415, r#"{"status":415,"message":"Unsupported file type"}"#);
    let answer = w.answer_to(w.tg.push(tg::photo(IVAN, IVAN, Some("Что это?"))));
    assert_eq!(answer.len(), 1);
    assert!(answer[0].contains("не принял") && answer[0].contains("415"), "{answer:?}");
    assert!(w.gc.chat_requests().is_empty());

    // The model refuses the image (a wrong guess about what it sees): told, and deleted.
    w.gc.push_reply(Reply::Status(
        422,
        r#"{"status":422,"message":"Invalid params: model does not support image input"}"#.into(),
    ));
    let answer = w.answer_to(w.tg.push(tg::photo(IVAN, IVAN, Some("Что это?"))));
    assert_eq!(answer.len(), 1);
    assert!(answer[0].contains("не смог прочитать") && answer[0].contains("422"), "{answer:?}");
    wait_deleted(&w);
    assert_eq!(w.ask("Привет").len(), 1);
}

#[test]
fn memory_keeps_a_note_of_the_file_not_the_file() {
    let w = World::start();
    w.answer_to(w.tg.push(tg::photo(IVAN, IVAN, Some("Что на схеме?"))));
    let pdf = tg::document_file(IVAN, IVAN, "report.pdf", Some("application/pdf"), 300, None);
    w.answer_to(w.tg.push(pdf));
    w.ask("А подробнее?");
    let request = w.gc.chat_requests().pop().unwrap();
    let users: Vec<_> = request.messages.iter().filter(|m| m.role == "user").collect();
    assert_eq!(users[0].content, "[фото] Что на схеме?");
    assert_eq!(users[1].content, "[документ report.pdf] О чём этот документ? Перескажи главное.");
    assert!(request.messages.iter().all(|m| m.attachments.is_empty()));
    assert_eq!(users[2].content, "А подробнее?");
}

#[test]
fn in_a_group_a_photo_is_answered_when_its_caption_mentions_the_bot() {
    let w = World::start();
    w.tg.add_chat(tg::chat(GROUP));
    let quiet = w.tg.push(tg::photo(GROUP, tg::ANNA, Some("наш кот")));
    let asked_bot = w.tg.push(tg::photo(GROUP, tg::ANNA, Some("@SomeBot, что это?")));
    w.answer_to(asked_bot);
    assert!(w.tg.replies_to(quiet).is_empty());
    assert_eq!(asked(&w).0, "что это?");
    assert_eq!(w.gc.files().len(), 1);
}

// --- the fakes ---

fn trusting(fake: &FakeGigaChat) -> Agent {
    let pem = std::fs::read(fake.ca_pem_path()).unwrap();
    let tls = TlsConfig::builder()
        .provider(TlsProvider::NativeTls)
        .root_certs(RootCerts::new_with_certs(&[Certificate::from_pem(&pem).unwrap()]))
        .build();
    Agent::config_builder().http_status_as_error(false).proxy(None).tls_config(tls).build().into()
}

fn token(agent: &Agent, fake: &FakeGigaChat) -> String {
    let mut response = agent
        .post(fake.auth_url())
        .header("Authorization", format!("Basic {}", fake.credentials()))
        .header("RqUID", uuid::Uuid::new_v4().to_string())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send("scope=GIGACHAT_API_PERS")
        .unwrap();
    let body: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

/// One part of a form: name, filename, content type, bytes.
pub(crate) type FormPart<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

/// A multipart upload with these parts.
pub(crate) fn upload(
    agent: &Agent,
    fake: &FakeGigaChat,
    token: &str,
    client: Option<&str>,
    parts: &[FormPart],
) -> (u16, Value) {
    let mut body = Vec::new();
    for (name, filename, mime, bytes) in parts {
        let mut head = format!("--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"");
        if let Some(filename) = filename {
            head.push_str(&format!("; filename=\"{filename}\""));
        }
        if let Some(mime) = mime {
            head.push_str(&format!("\r\nContent-Type: {mime}"));
        }
        head.push_str("\r\n\r\n");
        body.extend_from_slice(head.as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--XyZ--\r\n");
    let mut request = agent
        .post(format!("{}/files", fake.base_url()))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "multipart/form-data; boundary=XyZ");
    if let Some(client) = client {
        request = request.header("X-Client-ID", client);
    }
    let mut response = request.send(&body[..]).unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[test]
fn fake_gigachat_files_follow_the_reference() {
    let fake = FakeGigaChat::start();
    let agent = trusting(&fake);
    let token = token(&agent, &fake);
    let purpose: FormPart = ("purpose", None, None, b"general");
    let (status, file) = upload(
        &agent,
        &fake,
        &token,
        None,
        &[purpose, ("file", Some("cat.jpg"), Some("image/jpeg"), b"\xFF\xD8\xFFjpeg")],
    );
    assert_eq!(status, 200, "{file}");
    let keys: Vec<&String> = file.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 7, "{file}");
    assert_eq!(
        (&file["object"], &file["bytes"], &file["filename"], &file["purpose"]),
        (&json!("file"), &json!(7), &json!("cat.jpg"), &json!("general"))
    );
    let id = file["id"].as_str().unwrap().to_string();

    // Strict: no purpose, no filename, a type not in §1.5, an image over 15 MB.
    let no_purpose =
        upload(&agent, &fake, &token, None, &[("file", Some("a.txt"), Some("text/plain"), b"hi")]);
    assert_eq!(no_purpose.0, 400, "{}", no_purpose.1);
    let no_name =
        upload(&agent, &fake, &token, None, &[purpose, ("file", None, Some("text/plain"), b"hi")]);
    assert_eq!(no_name.0, 400);
    let exe = upload(
        &agent,
        &fake,
        &token,
        None,
        &[purpose, ("file", Some("a.exe"), Some("application/x-msdownload"), b"MZ")],
    );
    assert_eq!(exe.0, 415);
    let huge = vec![0u8; (15 << 20) + 1];
    let big = upload(
        &agent,
        &fake,
        &token,
        None,
        &[purpose, ("file", Some("a.png"), Some("image/png"), &huge)],
    );
    assert_eq!(big, (413, json!({"status": 413, "message": "Payload too large"})));

    // Attachments: this client's files only (403 for another X-Client-ID or an unknown id).
    let chat = |client: Option<&str>, ids: Value| {
        let mut request = agent
            .post(format!("{}/chat/completions", fake.base_url()))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json");
        if let Some(client) = client {
            request = request.header("X-Client-ID", client);
        }
        let body = json!({"model": "GigaChat-2-Max", "messages": [{"role": "user", "content": "Что это?", "attachments": ids}]});
        let mut response = request.send(body.to_string()).unwrap();
        (response.status().as_u16(), response.body_mut().read_to_string().unwrap())
    };
    assert_eq!(chat(None, json!([id])).0, 200);
    let foreign = chat(Some("other"), json!([id]));
    assert_eq!(
        foreign,
        (403, format!("{{\"status\":403,\"message\":\"Access to file '{id}' is denied\"}}"))
    );
    assert_eq!(chat(None, json!(["no-such-file"])).0, 403);
    let (_, second) = upload(
        &agent,
        &fake,
        &token,
        None,
        &[purpose, ("file", Some("b.png"), Some("image/png"), b"png")],
    );
    assert_eq!(chat(None, json!([id, second["id"]])).0, 422, "one image per message");

    // Content (GET only), delete, and a deleted file is gone.
    let url = |rest: &str| format!("{}/files/{id}{rest}", fake.base_url());
    let mut content = agent
        .get(url("/content"))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(content.body_mut().read_to_vec().unwrap(), b"\xFF\xD8\xFFjpeg");
    let mut deleted = agent
        .post(url("/delete"))
        .header("Authorization", format!("Bearer {token}"))
        .send("{}")
        .unwrap();
    let deleted: Value =
        serde_json::from_str(&deleted.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(deleted, json!({"id": id, "object": "file", "deleted": true}));
    assert_eq!(chat(None, json!([id])).0, 403);
    assert!(fake.files()[0].deleted);
}

#[test]
fn fake_telegram_get_file_and_download_follow_the_reference() {
    let fake = FakeTelegram::start();
    let agent: Agent =
        Agent::config_builder().http_status_as_error(false).proxy(None).build().into();
    let call = |file_id: &str| {
        let url = format!("{}/bot{}/getFile", fake.url(), fake.token());
        let mut response = agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(json!({"file_id": file_id}).to_string())
            .unwrap();
        let body: Value =
            serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        (response.status().as_u16(), body)
    };
    fake.push(tg::photo(IVAN, IVAN, None));
    let big =
        tg::document_file(IVAN, IVAN, "big.pdf", Some("application/pdf"), (20 << 20) + 1, None);
    let big_id = big["message"]["document"]["file_id"].as_str().unwrap().to_string();
    fake.push(big);

    let (status, file) = call(PHOTO_LARGEST);
    assert_eq!(status, 200);
    assert_eq!(file["result"]["file_size"], PHOTO_BYTES);
    let path = file["result"]["file_path"].as_str().unwrap().to_string();
    assert!(path.starts_with("photos/") && path.ends_with(".jpg"), "{path}");
    assert_eq!(call("nope").1["description"], "Bad Request: invalid file_id");
    assert_eq!(
        call(&big_id),
        (
            400,
            json!({"ok": false, "error_code": 400, "description": "Bad Request: file is too big"})
        )
    );

    let download = |path: &str| {
        let mut response =
            agent.get(format!("{}/file/bot{}/{path}", fake.url(), fake.token())).call().unwrap();
        (response.status().as_u16(), response.body_mut().read_to_vec().unwrap())
    };
    let (status, bytes) = download(&path);
    assert_eq!((status, bytes.len()), (200, PHOTO_BYTES));
    let (status, body) = download("photos/missing.jpg");
    assert_eq!(status, 404);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body, json!({"ok": false, "error_code": 404, "description": "Not Found"}));
}

/// With `requests_per_minute = 2`, ten photos GigaChat refuses cost two downloads and two
/// uploads: a file counts against the limit before it is fetched, and the refusals are
/// notices, within the chat's budget. Before, a refused upload was never counted.
#[test]
fn refused_files_count_against_the_rate_limit_before_they_are_fetched() {
    let w = World::start_with("[bot]\nrequests_per_minute = 2\n");
    w.tg.set_flood_limits(None);
    for _ in 0..10 {
        w.gc.fail_next_upload(415, r#"{"status":415,"message":"Unsupported file type"}"#);
    }
    let ids: Vec<i64> =
        (0..10).map(|_| w.tg.push(tg::photo(IVAN, IVAN, Some("Что это?")))).collect();
    let last = *ids.last().unwrap();
    w.tg.wait_until(Duration::from_secs(20), "all handled", |t| {
        t.confirmed_offset() > last && t.polling()
    });
    assert_eq!(w.tg.downloads().len(), 2, "{:?}", w.tg.downloads());
    let uploads =
        w.gc.file_requests().iter().filter(|r| r.0 == "POST" && r.1.ends_with("/files")).count();
    assert_eq!(uploads, 2, "{:?}", w.gc.file_requests());
    let told = ids.iter().filter(|&&id| !w.tg.replies_to(id).is_empty()).count();
    assert!(told <= 10, "10 files got {told} replies, the chat's notice budget is 10");
}

/// Killed while GigaChat reads an uploaded photo: the file is in GigaChat's storage and no
/// answer deleted it. The next start deletes it (its id was saved at the upload). Before,
/// it stayed there for good.
#[test]
fn a_file_left_in_gigachat_by_a_kill_is_deleted_at_the_next_start() {
    let w = World::start();
    let pid = w.bot.pid();
    w.gc.set_kill_hook(1, move || crate::harness::sigkill(pid));
    let id = w.tg.push(tg::photo(IVAN, IVAN, Some("Что это?")));
    w.gc.wait_until(Duration::from_secs(15), "the kill", |gc| !gc.kill_hook_pending());
    assert!(w.gc.files().iter().all(|f| !f.deleted), "{:?}", w.gc.files());
    let World { tg, gc, env, bot } = w;
    drop(bot);
    let bot = env.spawn(&[]);
    tg.wait_until(Duration::from_secs(15), "answered after the restart", |t| {
        t.confirmed_offset() > id && t.polling()
    });
    gc.wait_until(Duration::from_secs(10), "every upload deleted", |gc| {
        gc.files().len() == 2 && gc.files().iter().all(|f| f.deleted)
    });
    assert!(bot.log().contains("left in GigaChat's storage"), "{}", bot.log());
}
