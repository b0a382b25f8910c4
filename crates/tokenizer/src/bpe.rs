//! Byte-level BPE merging of one pre-tokenized word (llama.cpp `llm_tokenizer_bpe_session`).
//!
//! The word's bytes are the initial symbols (each stands for its GPT-2 byte char); the adjacent
//! pair with the lowest merge rank is merged first, ties going to the leftmost pair, until no
//! ranked pair is left. Symbols are byte ranges of the word and carry their token id, so merge
//! lookups are integer-keyed and never build strings.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::hashing::Map;

/// A merge rule's rank and the token it produces (`None` when the concatenation is not in the
/// vocabulary, which llama.cpp tolerates: the symbol then falls back to single bytes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Merge {
    pub rank: u32,
    pub result: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
struct Sym {
    start: usize,
    end: usize,
    id: Option<u32>,
    prev: Option<usize>,
    next: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pair {
    rank: u32,
    left: usize,
    right: usize,
    left_id: u32,
    right_id: u32,
}

impl Ord for Pair {
    // BinaryHeap pops the greatest: make "lowest rank, then leftmost" the greatest.
    fn cmp(&self, other: &Self) -> Ordering {
        other.rank.cmp(&self.rank).then(other.left.cmp(&self.left))
    }
}

impl PartialOrd for Pair {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Reusable buffers, so encoding a long text does not allocate per word.
#[derive(Default)]
pub(crate) struct BpeScratch {
    syms: Vec<Sym>,
    heap: BinaryHeap<Pair>,
}

pub(crate) struct BpeTables<'a> {
    pub merges: &'a Map<(u32, u32), Merge>,
    /// Token of each byte's GPT-2 char.
    pub byte_token: &'a [Option<u32>; 256],
}

fn push_pair(
    t: &BpeTables,
    syms: &[Sym],
    heap: &mut BinaryHeap<Pair>,
    left: Option<usize>,
    right: Option<usize>,
) {
    let (Some(l), Some(r)) = (left, right) else {
        return;
    };
    let (Some(left_id), Some(right_id)) = (syms[l].id, syms[r].id) else {
        return;
    };
    if let Some(m) = t.merges.get(&(left_id, right_id)) {
        heap.push(Pair { rank: m.rank, left: l, right: r, left_id, right_id });
    }
}

/// Appends the tokens of `word` (raw bytes, before byte→char mapping) to `out`.
pub(crate) fn merge_word(t: &BpeTables, word: &[u8], scratch: &mut BpeScratch, out: &mut Vec<u32>) {
    let BpeScratch { syms, heap } = scratch;
    syms.clear();
    heap.clear();
    let n = word.len();
    for (i, &b) in word.iter().enumerate() {
        syms.push(Sym {
            start: i,
            end: i + 1,
            id: t.byte_token[b as usize],
            prev: i.checked_sub(1),
            next: (i + 1 < n).then_some(i + 1),
        });
    }
    for i in 1..n {
        push_pair(t, syms, heap, Some(i - 1), Some(i));
    }
    while let Some(p) = heap.pop() {
        let (l, r) = (syms[p.left], syms[p.right]);
        // A pair is stale once either side was merged into something else.
        if l.start == l.end
            || r.start == r.end
            || l.id != Some(p.left_id)
            || r.id != Some(p.right_id)
        {
            continue;
        }
        let result = t.merges.get(&(p.left_id, p.right_id)).and_then(|m| m.result);
        syms[p.left].end = r.end;
        syms[p.left].id = result;
        syms[p.left].next = r.next;
        syms[p.right].end = syms[p.right].start;
        if let Some(nx) = r.next {
            syms[nx].prev = Some(p.left);
        }
        push_pair(t, syms, heap, syms[p.left].prev, Some(p.left));
        push_pair(t, syms, heap, Some(p.left), syms[p.left].next);
    }
    let mut cur = (n > 0).then_some(0);
    while let Some(i) = cur {
        let s = syms[i];
        match s.id {
            Some(id) => out.push(id),
            None => {
                // llama.cpp looks up each byte of the symbol's UTF-8 text as a one-byte token;
                // only bytes whose GPT-2 char is ASCII ('!'..='~') can match one.
                for &b in &word[s.start..s.end] {
                    if (0x21..=0x7E).contains(&b) {
                        if let Some(id) = t.byte_token[b as usize] {
                            out.push(id);
                        }
                    }
                }
            }
        }
        cur = s.next;
    }
}
