//! Code-point classes as llama.cpp's pre-tokenizers see them, and GPT-2's byte↔char mapping.

use crate::unicode_tables::CATEGORY_RANGES;

/// Unicode general category, collapsed to its first letter (what `\p{L}`, `\p{N}`… test).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Category {
    Unassigned,
    Number,
    Letter,
    Separator,
    Mark,
    Punctuation,
    Symbol,
    Control,
}

pub(crate) fn category(c: char) -> Category {
    let cp = c as u32;
    // The table starts at code point 0, so the partition point is at least 1.
    let idx = CATEGORY_RANGES.partition_point(|&(start, _)| start <= cp).saturating_sub(1);
    match CATEGORY_RANGES[idx].1 {
        1 => Category::Number,
        2 => Category::Letter,
        3 => Category::Separator,
        4 => Category::Mark,
        5 => Category::Punctuation,
        6 => Category::Symbol,
        7 => Category::Control,
        _ => Category::Unassigned,
    }
}

/// The Unicode `White_Space` property: what llama.cpp's splitters treat as `\s`.
/// Spelled out (rather than `char::is_whitespace`) because this exact list is part of the
/// llama.cpp contract and must not drift with the standard library's Unicode version.
pub(crate) fn is_whitespace(c: char) -> bool {
    matches!(
        c as u32,
        0x09..=0x0D
            | 0x20
            | 0x85
            | 0xA0
            | 0x1680
            | 0x2000..=0x200A
            | 0x2028
            | 0x2029
            | 0x202F
            | 0x205F
            | 0x3000
    )
}

/// The facts a splitter asks about one code point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Class {
    pub cat: Category,
    pub ws: bool,
}

impl Class {
    pub fn of(c: char) -> Class {
        Class { cat: category(c), ws: is_whitespace(c) }
    }
    pub fn letter(self) -> bool {
        self.cat == Category::Letter
    }
    pub fn number(self) -> bool {
        self.cat == Category::Number
    }
}

/// GPT-2's reversible byte → printable char table: printable Latin-1 bytes map to themselves,
/// the other 68 bytes to U+0100.. in byte order.
pub(crate) fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..256u32 {
        let printable =
            (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        let cp = if printable {
            b
        } else {
            next += 1;
            next - 1
        };
        // Every value is below U+0200, so it is a valid scalar value.
        table[b as usize] = char::from_u32(cp).unwrap_or('\u{FFFD}');
    }
    table
}

/// Inverse of [`byte_to_char_table`] for the chars it produces.
pub(crate) fn char_to_byte(c: char) -> Option<u8> {
    let cp = c as u32;
    match cp {
        0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF => Some(cp as u8),
        // The n-th non-printable byte, in byte order: 0x00..=0x20, then 0x7F..=0xA0, then 0xAD.
        0x100..=0x120 => Some((cp - 0x100) as u8),
        0x121..=0x142 => Some((cp - 0x121 + 0x7F) as u8),
        0x143 => Some(0xAD),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_map_is_a_bijection_onto_its_chars() {
        let table = byte_to_char_table();
        assert_eq!(table[b' ' as usize], 'Ġ');
        assert_eq!(table[b'\n' as usize], 'Ċ');
        assert_eq!(table[b'a' as usize], 'a');
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(table[b as usize]), Some(b), "byte {b:#04x}");
        }
        assert_eq!(char_to_byte('\u{144}'), None);
        assert_eq!(char_to_byte(' '), None);
    }

    #[test]
    fn categories_match_unicode() {
        assert_eq!(category('a'), Category::Letter);
        assert_eq!(category('é'), Category::Letter);
        assert_eq!(category('中'), Category::Letter);
        assert_eq!(category('7'), Category::Number);
        assert_eq!(category('²'), Category::Number);
        assert_eq!(category('!'), Category::Punctuation);
        assert_eq!(category('$'), Category::Symbol);
        assert_eq!(category('😀'), Category::Symbol);
        assert_eq!(category('\u{301}'), Category::Mark);
        assert_eq!(category('\t'), Category::Control);
        assert_eq!(category('\u{A0}'), Category::Separator);
        assert_eq!(category('\u{378}'), Category::Unassigned);
        assert_eq!(category('\u{10FFFF}'), Category::Unassigned);
        // Unicode 15.1 additions (llama.cpp's table is 15.1): U+2FFC is a symbol since 15.1.
        assert_eq!(category('\u{2FFC}'), Category::Symbol);
        assert!(is_whitespace('\u{3000}') && is_whitespace('\u{85}') && !is_whitespace('\u{1C}'));
    }
}
