//! Tokens as people read them: the text a token id stands for (the report's `token_text`), its
//! whitespace made visible and quoted, the id kept for hovers. Reports older than `token_text`
//! show the vocabulary piece instead.

use crate::Report;

/// `text` with its whitespace visible — a space is ⎵, a newline ↵, a tab ⇥, other control
/// characters their Unicode control picture — in curly quotes, so a token that is one space is
/// still seen.
pub fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 6);
    out.push('“');
    for c in text.chars() {
        out.push(match c {
            ' ' => '⎵',
            '\n' => '↵',
            '\t' => '⇥',
            // U+2400.. pictures C0 controls in order; DEL has its own.
            c if (c as u32) < 0x20 => char::from_u32(0x2400 + c as u32).unwrap_or('·'),
            '\u{7f}' => '␡',
            c => c,
        });
    }
    out.push('”');
    out
}

/// Token `id` as shown: its quoted text, or `#id` when the report does not know it.
pub fn token(r: &Report, id: u32) -> String {
    match r.token_text.get(&id) {
        Some(text) => quoted(text),
        None => format!("#{id}"),
    }
}

/// Token `id` for a hover: its quoted text and id, `“⎵is” (id 374)`, or `id 374` alone when the
/// report does not know its text.
pub fn token_and_id(r: &Report, id: u32) -> String {
    match r.token_text.get(&id) {
        Some(text) => format!("{} (id {id})", quoted(text)),
        None => format!("id {id}"),
    }
}

/// The prompt's token at position `t`: its quoted text, else its vocabulary piece as stored.
pub fn prompt_token(r: &Report, t: usize) -> String {
    let id = r.prompt.tokens.get(t).copied();
    match id.and_then(|id| r.token_text.get(&id)) {
        Some(text) => quoted(text),
        None => r.prompt.pieces.get(t).cloned().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_is_visible_and_quoted() {
        assert_eq!(quoted(" is"), "“⎵is”");
        assert_eq!(quoted("\n\n"), "“↵↵”");
        assert_eq!(quoted("a\tb\u{1}\u{7f}"), "“a⇥b␁␡”");
        assert_eq!(quoted(""), "“”");
    }
}
