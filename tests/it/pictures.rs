//! Pictures (issue 15, item 4): with `gigachat.images = true` GigaChat may draw; its
//! `<img src="ID" fuse="true"/>` is downloaded from `/files/{id}/content` and sent with
//! `sendPhoto` (multipart), the rest of the answer as the caption or after the photo. The
//! fakes' text2image answer and sendPhoto, as strict as gigachat-media.md §3 and §5.2.

use crate::core::{WAIT, World};
use crate::fake_gigachat::Reply;
use crate::fake_telegram::{self as tg, Fault, IVAN};
use crate::harness::sigkill;

const IMAGES_ON: &str = "[gigachat]\nimages = true\n";

/// The bytes the fake drew (the only file it stores in these tests).
fn drawn_bytes(w: &World) -> Vec<u8> {
    let files = w.gc.files();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].bytes.clone()
}

#[test]
fn a_drawing_comes_as_a_photo_with_the_rest_as_its_caption() {
    let w = World::start_with(IMAGES_ON);
    let id = w.tg.push_text(IVAN, IVAN, "Нарисуй кота");
    let answer = w.answer_to(id);
    assert_eq!(answer, ["вот мой рисунок: Нарисуй кота"], "{}", w.bot.log());
    // The request let GigaChat draw, and was not streamed (drafts would show progress).
    let request = w.gc.chat_requests().pop().unwrap();
    assert_eq!(request.function_call, Some("auto".into()));
    assert!(!request.stream);
    // One photo, the bytes GigaChat drew, a reply to the question, the caption in HTML.
    let sent = w.tg.sent_to(IVAN);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    let (_, question) = w.tg.message_of(id).unwrap();
    assert_eq!(sent[0].reply_to, Some(question));
    assert_eq!(sent[0].photo.as_deref(), Some(&drawn_bytes(&w)[..]));
    assert_eq!(sent[0].parse_mode.as_deref(), Some("HTML"));
    let calls = w.tg.calls_of("sendPhoto");
    assert_eq!((calls.len(), calls[0].status), (1, 200));
    // Downloaded with GET, then deleted from GigaChat's storage.
    let file = w.gc.files()[0].clone();
    let requests = w.gc.file_requests();
    let content = format!("/api/v1/files/{}/content", file.id);
    assert!(requests.iter().any(|r| r.0 == "GET" && r.1 == content && r.2 == 200), "{requests:?}");
    assert!(file.deleted, "{requests:?}");
    // Memory keeps the text and a note, not the picture.
    w.ask("А теперь опиши его");
    let request = w.gc.chat_requests().pop().unwrap();
    let remembered = &request.messages[request.messages.len() - 2];
    assert_eq!(remembered.role, "assistant");
    assert_eq!(remembered.content, "[рисунок] вот мой рисунок: Нарисуй кота");
}

#[test]
fn a_rest_longer_than_a_caption_follows_the_photo() {
    let w = World::start_with(IMAGES_ON);
    let long = "Кот. ".repeat(300);
    w.gc.set_drawing_text(&long);
    let id = w.tg.push_text(IVAN, IVAN, "нарисуй кота и расскажи о котах");
    let answer = w.answer_to(id);
    let sent = w.tg.sent_to(IVAN);
    assert_eq!(sent.len(), 2, "{sent:#?}\n{}", w.bot.log());
    assert!(sent[0].photo.is_some() && sent[0].text.is_empty(), "{sent:#?}");
    assert!(sent[1].photo.is_none() && sent[1].message_id > sent[0].message_id);
    assert_eq!(answer[1], long.trim());
}

/// A kill after the photo went out and before the text did: the restart sends the text,
/// not a second photo, and GigaChat is not asked (and paid) again.
#[test]
fn killed_between_the_photo_and_the_text_the_photo_is_not_sent_twice() {
    let w = World::start_with(IMAGES_ON);
    let long = "Кот. ".repeat(300);
    w.gc.set_drawing_text(&long);
    let pid = w.bot.pid();
    w.tg.set_kill_hook("sendRichMessage", 1, move || sigkill(pid));
    let id = w.tg.push_text(IVAN, IVAN, "нарисуй кота и расскажи о котах");
    w.tg.wait_until(WAIT, "the kill", |t| !t.kill_hook_pending());
    assert_eq!(w.tg.calls_of("sendPhoto").len(), 1, "the photo went out first");
    let World { tg, gc, env, bot } = w;
    drop(bot);
    let bot = env.spawn(&[]);
    tg.wait_until(WAIT, "the text after the restart", |t| {
        t.sent_to(IVAN).len() >= 2 && t.confirmed_offset() > id && t.polling()
    });
    let sent = tg.sent_to(IVAN);
    let photos = sent.iter().filter(|m| m.photo.is_some()).count();
    assert_eq!((photos, sent.len()), (1, 2), "{}", tg.dump());
    assert_eq!(sent[1].text, long.trim());
    assert_eq!(gc.chat_requests().len(), 1, "asked again: {}", bot.log());
}

#[test]
fn with_images_off_gigachat_is_not_asked_to_draw_and_a_stray_tag_is_only_mentioned() {
    let w = World::start_with("[gigachat]\nstream = false\n");
    w.ask("Нарисуй кота");
    let request = w.gc.chat_requests().pop().unwrap();
    assert_eq!(request.function_call, None);
    assert!(request.body.get("function_call").is_none(), "{}", request.body);
    // Should GigaChat send a picture anyway: no download, the text and a note.
    w.gc.push_reply(Reply::Text(
        "<img src=\"3727db23-91a3-44fa-a6b7-9f0a311d3e9e\" fuse=\"true\"/> Вот кот.".into(),
    ));
    let answer = w.ask("Нарисуй кота ещё раз");
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert!(answer[0].starts_with("Вот кот."), "{answer:?}");
    assert!(answer[0].contains("рисунки в этом боте выключены"), "{answer:?}");
    assert!(!answer[0].contains("<img"), "{answer:?}");
    assert!(w.gc.file_requests().is_empty());
    assert!(w.tg.calls_of("sendPhoto").is_empty());
}

#[test]
fn a_failed_download_still_gives_the_text_and_says_so() {
    let w = World::start_with(IMAGES_ON);
    w.gc.fail_next_content(500, "{\"status\":500,\"message\":\"Internal Server Error\"}");
    let answer = w.ask("Нарисуй кота");
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert!(answer[0].starts_with("вот мой рисунок: Нарисуй кота"), "{answer:?}");
    assert!(answer[0].contains("скачать её не удалось"), "{answer:?}");
    assert!(w.tg.calls_of("sendPhoto").is_empty());
    assert!(w.bot.log().contains("picture"), "{}", w.bot.log());
    // Not fetched, but still deleted from GigaChat's storage (before, it stayed there).
    let files = w.gc.files();
    assert!(files.len() == 1 && files[0].deleted, "{files:?}");
}

#[test]
fn a_refused_photo_still_gives_the_text_and_says_so() {
    let w = World::start_with(IMAGES_ON);
    let refusal = serde_json::json!({"ok": false, "error_code": 400, "description": "Bad Request: IMAGE_PROCESS_FAILED"});
    w.tg.fail_next("sendPhoto", Fault::Status(400, refusal));
    let answer = w.ask("Нарисуй кота");
    assert_eq!(answer.len(), 1, "{answer:?}\n{}", w.bot.log());
    assert!(answer[0].starts_with("вот мой рисунок: Нарисуй кота"), "{answer:?}");
    assert!(answer[0].contains("Telegram её не принял"), "{answer:?}");
    let calls = w.tg.calls_of("sendPhoto");
    assert_eq!((calls.len(), calls[0].status), (1, 400));
    assert!(w.tg.sent_to(IVAN).iter().all(|m| m.photo.is_none()));
}

#[test]
fn the_fakes_send_photo_is_strict() {
    // Through the bot's own client is not possible for malformed forms, so: a JSON
    // sendPhoto (no file part) and a string photo are refused like the real server does.
    let w = World::start_with(IMAGES_ON);
    w.ask("Привет"); // Ivan's chat exists from his first message on.
    let agent = ureq::Agent::new_with_defaults();
    let url = format!("{}/bot{}/sendPhoto", w.tg.url(), tg::TOKEN);
    let call = |body: serde_json::Value| {
        let mut response = agent
            .post(&url)
            .config()
            .http_status_as_error(false)
            .build()
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes())
            .unwrap();
        response.body_mut().read_to_string().unwrap()
    };
    let none = call(serde_json::json!({"chat_id": IVAN}));
    assert!(none.contains("there is no photo in the request"), "{none}");
    let string = call(serde_json::json!({"chat_id": IVAN, "photo": "abc"}));
    assert!(string.contains("wrong file identifier"), "{string}");
    // A multipart form: a caption over 1024 characters, broken HTML, an unknown chat.
    let form = |fields: &[(&str, &str)]| {
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(
                format!(
                    "--B\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(b"--B\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n\xFF\xD8\xFF\xD9\r\n--B--\r\n");
        let mut response = agent
            .post(&url)
            .config()
            .http_status_as_error(false)
            .build()
            .header("Content-Type", "multipart/form-data; boundary=B")
            .send(&body[..])
            .unwrap();
        response.body_mut().read_to_string().unwrap()
    };
    let ivan = IVAN.to_string();
    let long = "я".repeat(1025);
    let too_long = form(&[("chat_id", &ivan), ("caption", &long)]);
    assert!(too_long.contains("message caption is too long"), "{too_long}");
    let fits =
        form(&[("chat_id", &ivan), ("caption", &"<b>я</b>".repeat(1024)), ("parse_mode", "HTML")]);
    assert!(fits.contains("\"ok\":true"), "{fits}");
    let broken = form(&[("chat_id", &ivan), ("caption", "<b>кот"), ("parse_mode", "HTML")]);
    assert!(broken.contains("can't parse entities"), "{broken}");
    let nowhere = form(&[("chat_id", "42"), ("caption", "кот")]);
    assert!(nowhere.contains("chat not found"), "{nowhere}");
}
