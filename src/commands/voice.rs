//! Voice notes: with a SaluteSpeech key, a note of up to a minute is recognized and then
//! asked like a typed question (within the same limits); a longer one gets one sentence.
//! Without the key there is no decision here, and the note gets the "text only" notice.

use super::{Action, Ask, Context, Decision, ask, decision, reply_context, too_long};
use crate::config::Config;
use crate::report::Kind;
use crate::salutespeech::{MAX_VOICE_BYTES, MAX_VOICE_SECS};
use crate::telegram::Message;
use crate::texts;

/// What to do with a voice note (None for other messages, and without a SaluteSpeech
/// key): recognize it and ask, within the sender's limits, or say why not.
pub(super) fn decide_voice(cx: &Context, message: &Message, sender: i64) -> Option<Decision> {
    let voice = message.voice.as_ref()?;
    cx.config.salutespeech.credentials.as_ref()?;
    let too_big = voice.file_size.is_some_and(|size| size > MAX_VOICE_BYTES);
    if voice.duration > MAX_VOICE_SECS || too_big {
        let text = texts::VOICE_TOO_LONG
            .replace("{secs}", &voice.duration.to_string())
            .replace("{max}", &MAX_VOICE_SECS.to_string());
        return Some(decision(Kind::Voice, Action::Notice(text)));
    }
    // The question is what SaluteSpeech hears; bot.rs fills it in (see `heard`).
    let question = Ask { context: reply_context(cx, message), ..Ask::default() };
    let mut decided = ask(cx, sender, Kind::Voice, question);
    if let Action::Ask(ask) = decided.action {
        decided.action = Action::Transcribe { voice: voice.clone(), ask };
    }
    Some(decided)
}

/// The recognized text as the question, or the sentence why it cannot be asked: nothing
/// recognized, or longer than `bot.max_input_chars`.
pub fn heard(config: &Config, text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(texts::VOICE_EMPTY.into());
    }
    if let Some(notice) = too_long(config, text) {
        return Err(notice);
    }
    Ok(text.to_string())
}
