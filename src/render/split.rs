//! Telegram HTML cut into messages of at most 4096 visible characters, each valid on its
//! own; and the text a user sees of a piece of HTML. Streams: time linear in the HTML, and
//! besides the chunks only a window of one message's characters in memory.

/// Telegram HTML (as markdown_to_html makes it) in chunks of at most `limit` visible characters,
/// each valid on its own: tags open at a cut are closed, then reopened in the next chunk. The
/// window in memory is `limit + 1` characters, however long the answer.
pub fn split_html(html: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(1);
    let (mut left, mut blank) = (0, true);
    for ch in visible_chars(html) {
        left += 1;
        blank &= ch.is_whitespace();
    }
    if blank {
        return Vec::new();
    }
    if left <= limit {
        return vec![html.to_string()];
    }
    let mut chunks = Vec::new();
    // `stack` holds the tags open where the last chunk ended, `from` the byte it ended at.
    let (mut stack, mut from) = (Vec::new(), 0);
    let mut window = Window::default();
    while left > 0 {
        let (count, to) = if left <= limit {
            window.read(html, from, left);
            (left, html.len())
        } else {
            window.read(html, from, limit + 1);
            let end = find_cut(&window.chars, limit);
            (end, window.ends[end])
        };
        let chunk = build_chunk(html, from, to, &mut stack);
        // Cuts go after whitespace, so a chunk of only whitespace needs a run of it at a forced
        // cut (no boundary within `limit`); the chunk before it is then full. "No blank message"
        // wins: it is dropped, and the chunks joined equal the whole minus that whitespace.
        if !window.chars[..count].iter().all(|c| c.is_whitespace()) {
            chunks.push(chunk);
        }
        left -= count;
        from = to;
    }
    chunks
}

/// The text a user sees of Telegram HTML: tags removed, entities decoded (the plain-text
/// fallback); also what Telegram counts against MESSAGE_LIMIT.
pub fn visible_text(html: &str) -> String {
    visible_chars(html).collect()
}

/// One piece of Telegram HTML: a start tag, an end tag, or one visible character.
pub(super) enum Piece<'a> {
    Open { raw: &'a str, name: &'a str },
    Close { raw: &'a str },
    Char { ch: char, raw: &'a str },
}

/// The pieces of `html` from byte `from` on, each with the byte it starts at, cut as they
/// are read. `from` must be where a piece starts; every piece ends at an ASCII `>` or `;` or
/// at a whole char, so no piece can land inside a character.
pub(super) fn pieces(html: &str, from: usize) -> impl Iterator<Item = (usize, Piece<'_>)> {
    let mut rest = html.get(from..).expect("pieces start on a character boundary");
    std::iter::from_fn(move || {
        let c = rest.chars().next()?;
        let len = match c {
            '<' => rest.find('>').map_or(rest.len(), |i| i + 1),
            '&' => decode_entity(rest).map_or(1, |(_, len)| len),
            _ => c.len_utf8(),
        };
        let at = html.len() - rest.len();
        let (raw, after) = rest.split_at(len);
        rest = after;
        let piece = if raw.starts_with("</") {
            Piece::Close { raw }
        } else if let Some(tag) = raw.strip_prefix('<') {
            let name =
                tag.split(|c: char| c.is_whitespace() || c == '>' || c == '/').next().unwrap_or("");
            Piece::Open { raw, name }
        } else {
            let ch = decode_entity(raw).map_or(c, |(ch, _)| ch);
            Piece::Char { ch, raw }
        };
        Some((at, piece))
    })
}

/// The visible characters of `html`, entities decoded.
pub(super) fn visible_chars(html: &str) -> impl Iterator<Item = char> {
    pieces(html, 0).filter_map(|(_, piece)| match piece {
        Piece::Char { ch, .. } => Some(ch),
        _ => None,
    })
}

/// The visible characters a chunk may take, read ahead of the cut; reused from chunk to chunk.
#[derive(Default)]
pub(super) struct Window {
    chars: Vec<char>,
    /// For each character, the byte where a chunk that ends just before it ends: after the
    /// character before it and the end tags right after that. Start tags before a character
    /// belong to the next chunk.
    ends: Vec<usize>,
}

impl Window {
    /// Reads the next `count` visible characters of `html` from byte `from`.
    fn read(&mut self, html: &str, from: usize, count: usize) {
        self.chars.clear();
        self.ends.clear();
        let (mut end, mut closing) = (from, false);
        for (at, piece) in pieces(html, from) {
            match piece {
                Piece::Char { .. } if self.chars.len() == count => break,
                Piece::Char { ch, raw } => {
                    self.chars.push(ch);
                    self.ends.push(end);
                    (end, closing) = (at + raw.len(), true);
                }
                Piece::Close { raw } if closing => end = at + raw.len(),
                _ => closing = false,
            }
        }
    }
}

/// The character of the entity `text` starts with (`&lt;`, `&#128512;`, `&#x41;`), and its length
/// in bytes; None leaves the `&` as written.
pub(super) fn decode_entity(text: &str) -> Option<(char, usize)> {
    let semicolon = text.bytes().take(12).position(|b| b == b';')?;
    let name = text.get(1..semicolon)?;
    let ch = match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        _ => {
            let number = name.strip_prefix('#')?;
            let (digits, radix) = match number.strip_prefix(['x', 'X']) {
                Some(hex) => (hex, 16),
                None => (number, 10),
            };
            if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
                return None;
            }
            char::from_u32(u32::from_str_radix(digits, radix).ok()?)?
        }
    };
    Some((ch, semicolon + 1))
}

/// The HTML of one chunk, the bytes `from..to` of `html`: reopens the tags in `stack`, adds the
/// pieces, closes what is still open. Leaves in `stack` the tags open at `to`, for the next chunk.
pub(super) fn build_chunk<'a>(
    html: &'a str,
    from: usize,
    to: usize,
    stack: &mut Vec<(&'a str, &'a str)>,
) -> String {
    let mut chunk: String = stack.iter().map(|(raw, _)| *raw).collect();
    for (_, piece) in pieces(html, from).take_while(|(at, _)| *at < to) {
        match piece {
            Piece::Open { raw, name } => {
                chunk.push_str(raw);
                stack.push((raw, name));
            }
            Piece::Close { raw } => {
                chunk.push_str(raw);
                stack.pop();
            }
            Piece::Char { raw, .. } => chunk.push_str(raw),
        }
    }
    for (_, name) in stack.iter().rev() {
        chunk.push_str(&format!("</{name}>"));
    }
    chunk
}

/// Where a chunk ends (exclusive) in `window`, the next `limit + 1` characters when more than
/// `limit` remain. A cut goes after a run of whitespace, so the run ends the earlier chunk.
pub(super) fn find_cut(window: &[char], limit: usize) -> usize {
    // The latest cut of each kind: paragraph, line, sentence end, space.
    let mut latest: [Option<usize>; 4] = [None; 4];
    let mut newlines = 0;
    let mut in_space = false;
    let mut last_visible: Option<char> = None; // none yet: a chunk needs more than whitespace
    for (k, &c) in window.iter().enumerate() {
        if c.is_whitespace() {
            in_space = true;
            newlines += usize::from(c == '\n');
            continue;
        }
        if let (true, Some(before)) = (in_space, last_visible) {
            let kind = match newlines {
                0 if matches!(before, '.' | '!' | '?' | '…') => 2,
                0 => 3,
                1 => 1,
                _ => 0,
            };
            latest[kind] = Some(k);
        }
        in_space = false;
        newlines = 0;
        last_visible = Some(c);
    }
    // The best kind in the chunk's last half, else the best anywhere.
    let last_half = limit / 2;
    let in_last_half = latest.iter().flatten().find(|&&k| k >= last_half);
    if let Some(&k) = in_last_half.or(latest.iter().flatten().next()) {
        return k;
    }
    // No boundary at all: cut at the limit, moved back out of an emoji or accented letter.
    let mut k = limit;
    while k > 0 && joins(window[k - 1], window[k]) {
        k -= 1;
    }
    if k == 0 { limit } else { k }
}

/// Whether `next` belongs to the same user-perceived character as `prev`: combining marks,
/// variation selectors, skin tones, emoji ZWJ sequences, flags (the common cases, no tables).
pub(super) fn joins(prev: char, next: char) -> bool {
    let regional = |c: char| ('\u{1F1E6}'..='\u{1F1FF}').contains(&c);
    prev == '\u{200D}'
        || (regional(prev) && regional(next))
        || matches!(next as u32,
            0x0300..=0x036F | 0x0483..=0x0489 | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF
            | 0x200D | 0x20D0..=0x20FF | 0xFE00..=0xFE0F | 0xFE20..=0xFE2F
            | 0x1F3FB..=0x1F3FF | 0xE0020..=0xE007F | 0xE0100..=0xE01EF)
}
