//! SentencePiece-style merging (llama.cpp `llm_tokenizer_spm_session`).
//!
//! Characters are the initial symbols; any adjacent pair whose concatenation is a vocabulary
//! token may merge, the highest-scoring first (ties: leftmost). Leftover symbols that are not
//! tokens are emitted as byte tokens `<0xXX>`.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::hashing::VocabIndex;

#[derive(Debug, Clone, Copy)]
struct Sym {
    start: usize,
    end: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}

impl Ord for Bigram {
    // Highest score first, then leftmost. Scores are checked for NaN at construction, and
    // `partial_cmp` (not `total_cmp`) keeps llama.cpp's `<`, for which -0.0 == 0.0.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .partial_cmp(&other.score)
            .unwrap_or(Ordering::Equal)
            .then(other.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

pub(crate) struct SpmTables<'a> {
    pub vocab: &'a VocabIndex,
    pub tokens: &'a [String],
    pub scores: &'a [f32],
    /// `<0xXX>` token (or, failing that, the one-byte token) of each byte.
    pub byte_token: &'a [Option<u32>; 256],
    /// Emitted for a byte without a byte token (llama.cpp throws there).
    pub unk: Option<u32>,
}

fn try_add(
    t: &SpmTables,
    text: &str,
    syms: &[Sym],
    heap: &mut BinaryHeap<Bigram>,
    left: Option<usize>,
    right: Option<usize>,
) {
    let (Some(l), Some(r)) = (left, right) else {
        return;
    };
    let piece = &text[syms[l].start..syms[r].end];
    if let Some(id) = t.vocab.get(t.tokens, piece) {
        let score = t.scores.get(id as usize).copied().unwrap_or(0.0);
        heap.push(Bigram { score, left: l, right: r, size: piece.len() });
    }
}

/// Appends the tokens of `text` (spaces already escaped to U+2581) to `out`.
pub(crate) fn tokenize(t: &SpmTables, text: &str, out: &mut Vec<u32>) {
    let mut syms: Vec<Sym> = Vec::with_capacity(text.len());
    for (i, (start, c)) in text.char_indices().enumerate() {
        syms.push(Sym {
            start,
            end: start + c.len_utf8(),
            prev: i.checked_sub(1),
            next: Some(i + 1),
        });
    }
    if let Some(last) = syms.last_mut() {
        last.next = None;
    }
    let mut heap = BinaryHeap::new();
    for i in 1..syms.len() {
        try_add(t, text, &syms, &mut heap, Some(i - 1), Some(i));
    }
    while let Some(b) = heap.pop() {
        let (l, r) = (syms[b.left], syms[b.right]);
        let (ln, rn) = (l.end - l.start, r.end - r.start);
        if ln == 0 || rn == 0 || ln + rn != b.size {
            continue;
        }
        syms[b.left].end = r.end;
        syms[b.left].next = r.next;
        syms[b.right].end = syms[b.right].start;
        if let Some(nx) = r.next {
            syms[nx].prev = Some(b.left);
        }
        try_add(t, text, &syms, &mut heap, syms[b.left].prev, Some(b.left));
        try_add(t, text, &syms, &mut heap, Some(b.left), syms[b.left].next);
    }
    let mut cur = (!syms.is_empty()).then_some(0);
    while let Some(i) = cur {
        let s = syms[i];
        let piece = &text[s.start..s.end];
        // Merged symbols are always tokens; only single characters can miss. (llama.cpp's
        // `rev_merge` re-segmentation therefore never fires on valid UTF-8 and is not needed.)
        if let Some(id) = t.vocab.get(t.tokens, piece) {
            out.push(id);
        } else {
            for &byte in piece.as_bytes() {
                if let Some(id) = t.byte_token[byte as usize].or(t.unk) {
                    out.push(id);
                }
            }
        }
        cur = s.next;
    }
}
