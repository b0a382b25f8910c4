//! Pre-tokenizers: split text into words before BPE, exactly as llama.cpp's `unicode.cpp` does.
//!
//! llama.cpp names each pre-tokenizer by a regex but runs hand-written splitters for the common
//! ones (GPT-2, LLaMA-3, Qwen2). Those splitters are *the* reference, quirks included (a lone
//! trailing space, unassigned code points), so each function below follows the splitter, not
//! the regex. Positions are code-point indices; every splitter refines a list of segment
//! lengths, so several can run in sequence (the "default" pre-tokenizer chains four).

use crate::unicode::{Category, Class};

/// The pre-tokenizer families this crate implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    /// llama.cpp `LLAMA_VOCAB_PRE_TYPE_DEFAULT`: punctuation runs, GPT-2 words, digit runs,
    /// then groups of three ASCII digits.
    Default,
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    Gpt2,
    /// `(?i:'s|…)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    Llama3,
    /// As LLaMA-3 but `\p{N}` (one digit per word).
    Qwen2,
}

/// `tokenizer.ggml.pre` values accepted, as llama.cpp maps them.
pub(crate) const SUPPORTED_PRE: &[&str] =
    &["default", "gpt-2", "llama3", "llama-v3", "llama-bpe", "qwen2", "deepseek-r1-qwen", "megrez"];

impl PreTokenizer {
    /// Maps a `tokenizer.ggml.pre` value; `None` and "" mean "default" as in llama.cpp.
    pub(crate) fn from_name(name: Option<&str>) -> Option<PreTokenizer> {
        match name.unwrap_or("") {
            "" | "default" => Some(PreTokenizer::Default),
            "gpt-2" => Some(PreTokenizer::Gpt2),
            "llama3" | "llama-v3" | "llama-bpe" => Some(PreTokenizer::Llama3),
            "qwen2" | "deepseek-r1-qwen" | "megrez" => Some(PreTokenizer::Qwen2),
            _ => None,
        }
    }

    /// Splits `cps` into word lengths (in code points) that sum to `cps.len()`.
    pub(crate) fn split(self, cps: &[char], cls: &[Class], out: &mut Vec<usize>) {
        out.clear();
        if cps.is_empty() {
            return;
        }
        let whole = vec![cps.len()];
        match self {
            PreTokenizer::Gpt2 => split_gpt2(cps, cls, &whole, out),
            PreTokenizer::Llama3 => split_llama3_like(cps, cls, &whole, 3, out),
            PreTokenizer::Qwen2 => split_llama3_like(cps, cls, &whole, 1, out),
            PreTokenizer::Default => {
                let mut a = Vec::new();
                let mut b = Vec::new();
                // "[\p{P}\$\+<=>\^~\|]+" runs on llama.cpp's collapsed text: ASCII keeps its
                // own class, other code points count as punctuation only when not whitespace.
                split_runs(&whole, |i| punct_or_listed(cps[i], cls[i]), &mut a);
                split_gpt2(cps, cls, &a, &mut b);
                split_runs(&b, |i| collapsed_number(cps[i], cls[i]), &mut a);
                split_ascii_digit_triples(cps, &a, out);
            }
        }
    }
}

fn punct_or_listed(c: char, cl: Class) -> bool {
    if c.is_ascii() {
        // ASCII \p{P} plus the listed symbols: every ASCII punctuation/symbol but '`'.
        c.is_ascii_punctuation() && c != '`'
    } else {
        !cl.ws && cl.cat == Category::Punctuation
    }
}

fn collapsed_number(c: char, cl: Class) -> bool {
    if c.is_ascii() {
        c.is_ascii_digit()
    } else {
        !cl.ws && cl.cat == Category::Number
    }
}

/// A regex `[class]+` run through `std::regex_iterator`: maximal runs become words and the
/// gaps between them become words too.
fn split_runs(segs: &[usize], member: impl Fn(usize) -> bool, out: &mut Vec<usize>) {
    split_matches(segs, out, |i, end| (i..end).take_while(|&j| member(j)).count());
}

/// `[0-9][0-9][0-9]`: leftmost triples of ASCII digits; everything else is gap.
fn split_ascii_digit_triples(cps: &[char], segs: &[usize], out: &mut Vec<usize>) {
    split_matches(segs, out, |i, end| {
        if i + 3 <= end && cps[i..i + 3].iter().all(|c| c.is_ascii_digit()) {
            3
        } else {
            0
        }
    });
}

/// The words `std::regex_iterator` makes of each segment: every match, leftmost first, and
/// every gap between matches. `match_len(i, end)` is the length of the match starting at `i` in
/// a segment ending at `end`, 0 for none.
fn split_matches(segs: &[usize], out: &mut Vec<usize>, match_len: impl Fn(usize, usize) -> usize) {
    out.clear();
    let mut start = 0;
    for &len in segs {
        let end = start + len;
        let mut gap_start = start;
        let mut i = start;
        while i < end {
            let n = match_len(i, end);
            if n > 0 {
                if i > gap_start {
                    out.push(i - gap_start);
                }
                out.push(n);
                i += n;
                gap_start = i;
            } else {
                i += 1;
            }
        }
        if end > gap_start {
            out.push(end - gap_start);
        }
        start = end;
    }
}

/// View of one segment: code points outside it read as "absent" (llama.cpp's OUT_OF_RANGE,
/// whose flags are all zero).
struct Seg<'a> {
    cps: &'a [char],
    cls: &'a [Class],
    end: usize,
}

impl Seg<'_> {
    fn cpt(&self, i: usize) -> Option<char> {
        (i < self.end).then(|| self.cps[i])
    }
    fn class(&self, i: usize) -> Option<Class> {
        (i < self.end).then(|| self.cls[i])
    }
    fn letter(&self, i: usize) -> bool {
        self.class(i).is_some_and(Class::letter)
    }
    fn number(&self, i: usize) -> bool {
        self.class(i).is_some_and(Class::number)
    }
    fn ws(&self, i: usize) -> bool {
        self.class(i).is_some_and(|c| c.ws)
    }
    /// Present and neither whitespace, letter nor number: `[^\s\p{L}\p{N}]`.
    fn other(&self, i: usize) -> bool {
        self.class(i).is_some_and(|c| !c.ws && !c.letter() && !c.number())
    }
    /// The first position from `i` on where `is` does not hold: the end of a `+` run.
    fn run_end(&self, mut i: usize, is: impl Fn(&Self, usize) -> bool) -> usize {
        while is(self, i) {
            i += 1;
        }
        i
    }
}

/// Length of a contraction (`'s 't 'm 'd 're 've 'll`) starting at `pos`, if any.
/// `fold` lower-cases the letters (LLaMA-3/Qwen2) or not (GPT-2). No non-ASCII code point
/// lower-cases to one of these letters, so ASCII folding is llama.cpp's `unicode_tolower` here.
fn contraction(s: &Seg, pos: usize, fold: bool) -> Option<usize> {
    if s.cpt(pos) != Some('\'') || pos + 1 >= s.end {
        return None;
    }
    let low = |c: char| if fold { c.to_ascii_lowercase() } else { c };
    let n1 = low(s.cps[pos + 1]);
    if matches!(n1, 's' | 't' | 'm' | 'd') {
        return Some(2);
    }
    if pos + 2 < s.end {
        let n2 = low(s.cps[pos + 2]);
        if matches!((n1, n2), ('r', 'e') | ('v', 'e') | ('l', 'l')) {
            return Some(3);
        }
    }
    None
}

/// Whitespace handling shared by the splitters. Returns the end of the word starting at `pos`
/// (a whitespace run), honouring `\s*[\r\n]+` only when `newline_rule` is set.
fn whitespace_word(s: &Seg, pos: usize, newline_rule: bool) -> usize {
    let mut n = 0;
    let mut last_newline_end = None;
    while s.ws(pos + n) {
        if matches!(s.cps[pos + n], '\r' | '\n') {
            last_newline_end = Some(pos + n + 1);
        }
        n += 1;
    }
    if newline_rule {
        if let Some(e) = last_newline_end {
            // \s*[\r\n]+ : up to and including the last newline of the run.
            return e;
        }
    }
    if n > 1 && pos + n < s.end {
        // \s+(?!\S) : leave the last space to prefix the next word.
        return pos + n - 1;
    }
    if n > 0 {
        return pos + n;
    }
    // Nothing matched: the code point is a word of its own.
    pos + 1
}

fn split_llama3_like(
    cps: &[char],
    cls: &[Class],
    segs: &[usize],
    digits: usize,
    out: &mut Vec<usize>,
) {
    split_words(cps, cls, segs, out, |s, pos| {
        let c = cps[pos];
        let cl = cls[pos];
        // ' ?[^\s\p{L}\p{N}]+' can start here. llama.cpp's splitter also lets a space that
        // ends the segment start it, which yields the same one-space word as \s+ would.
        let other_starts =
            if c == ' ' { pos + 1 >= s.end || s.other(pos + 1) } else { s.other(pos) };
        if let Some(n) = contraction(s, pos, true) {
            pos + n
        } else if !(c == '\r' || c == '\n' || cl.number()) && (cl.letter() || s.letter(pos + 1)) {
            // [^\r\n\p{L}\p{N}]?\p{L}+
            s.run_end(pos + 1, Seg::letter)
        } else if cl.number() {
            // \p{N}{1,digits}
            s.run_end(pos, |s, e| s.number(e) && e - pos < digits)
        } else if other_starts {
            // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
            let e = s.run_end(pos + usize::from(c == ' '), Seg::other);
            s.run_end(e, |s, e| matches!(s.cpt(e), Some('\r' | '\n')))
        } else {
            whitespace_word(s, pos, true)
        }
    });
}

fn split_gpt2(cps: &[char], cls: &[Class], segs: &[usize], out: &mut Vec<usize>) {
    split_words(cps, cls, segs, out, |s, pos| {
        let c = cps[pos];
        // The class the optional leading space applies to.
        let look = if c == ' ' { pos + 1 } else { pos };
        let skip = usize::from(c == ' ');
        if let Some(n) = contraction(s, pos, false) {
            pos + n
        } else if s.letter(look) {
            s.run_end(pos + skip, Seg::letter)
        } else if s.number(look) {
            s.run_end(pos + skip, Seg::number)
        } else if s.other(look) {
            s.run_end(pos + skip, Seg::other)
        } else {
            whitespace_word(s, pos, false)
        }
    });
}

/// Cuts each segment into words from its start: `word_end(segment, pos)` is where the word that
/// starts at `pos` ends.
fn split_words(
    cps: &[char],
    cls: &[Class],
    segs: &[usize],
    out: &mut Vec<usize>,
    word_end: impl Fn(&Seg, usize) -> usize,
) {
    out.clear();
    let mut start = 0;
    for &len in segs {
        let s = Seg { cps, cls, end: start + len };
        let mut pos = start;
        while pos < s.end {
            let end = word_end(&s, pos);
            out.push(end - pos);
            pos = end;
        }
        start = s.end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(pre: PreTokenizer, text: &str) -> Vec<String> {
        let cps: Vec<char> = text.chars().collect();
        let cls: Vec<Class> = cps.iter().map(|&c| Class::of(c)).collect();
        let mut lens = Vec::new();
        pre.split(&cps, &cls, &mut lens);
        assert_eq!(lens.iter().sum::<usize>(), cps.len());
        let mut at = 0;
        lens.iter()
            .map(|&n| {
                let w: String = cps[at..at + n].iter().collect();
                at += n;
                w
            })
            .collect()
    }

    #[test]
    fn qwen2_splits_digits_one_by_one() {
        assert_eq!(
            words(PreTokenizer::Qwen2, "What is 2+2?"),
            ["What", " is", " ", "2", "+", "2", "?"]
        );
        assert_eq!(words(PreTokenizer::Qwen2, "x=12345"), ["x", "=", "1", "2", "3", "4", "5"]);
    }

    #[test]
    fn llama3_groups_three_digits() {
        assert_eq!(words(PreTokenizer::Llama3, "12345 678"), ["123", "45", " ", "678"]);
    }

    #[test]
    fn whitespace_rules() {
        // \s+(?!\S) leaves one space for the next word; \s*[\r\n]+ ends at the last newline.
        assert_eq!(words(PreTokenizer::Qwen2, "a   b"), ["a", "  ", " b"]);
        assert_eq!(words(PreTokenizer::Qwen2, "a \n\n  b"), ["a", " \n\n", " ", " b"]);
        assert_eq!(words(PreTokenizer::Qwen2, "end  "), ["end", "  "]);
        assert_eq!(words(PreTokenizer::Qwen2, "end "), ["end", " "]);
        assert_eq!(words(PreTokenizer::Qwen2, "\tx"), ["\tx"]);
    }

    #[test]
    fn contractions_and_punctuation() {
        assert_eq!(words(PreTokenizer::Qwen2, "it's WE'RE"), ["it", "'s", " WE", "'RE"]);
        assert_eq!(words(PreTokenizer::Gpt2, "it's WE'RE"), ["it", "'s", " WE", "'", "RE"]);
        assert_eq!(words(PreTokenizer::Qwen2, "a ...!\n\nb"), ["a", " ...!\n\n", "b"]);
    }

    #[test]
    fn default_chains_four_splitters() {
        assert_eq!(
            words(PreTokenizer::Default, "abc, 12345!"),
            ["abc", ",", " ", "123", "45", "!"]
        );
    }
}
