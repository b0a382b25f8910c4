//! The hash of the tokenizer's maps, keyed by a secret.
//!
//! The maps are keyed by a file's contents (its vocabulary and merge rules). Where an attacker
//! can predict the hash, a crafted vocabulary can put its 150 000 tokens on one probe chain and
//! make building the maps quadratic: a page that stalls for minutes on a file it was handed.
//! std's `RandomState` draws its keys from the operating system — except on
//! wasm32-unknown-unknown (the page), which has no source of randomness, where it takes two
//! addresses: the same keys for every visitor of one build. So the maps hash with SipHash-1-3
//! (std's `DefaultHasher`) after a 128-bit secret: drawn from `RandomState` by default (random
//! natively), and given by the host with [`set_hash_seed`] where that is not random (the page's
//! worker passes `crypto.getRandomValues`). Ids never depend on it: it only places keys.

use std::collections::HashMap;
use std::hash::{BuildHasher, DefaultHasher, Hasher, RandomState};
use std::sync::OnceLock;

static SEED: OnceLock<[u64; 2]> = OnceLock::new();

/// Sets the secret every tokenizer built afterwards in this process hashes its maps with.
/// Call it once, before the first tokenizer, with 128 random bits where std has no random
/// source (wasm32-unknown-unknown). Returns `false`, and changes nothing, if the secret was
/// already set or drawn (a tokenizer was built first).
pub fn set_hash_seed(seed: [u64; 2]) -> bool {
    SEED.set(seed).is_ok()
}

/// A [`BuildHasher`]: SipHash-1-3 that has already absorbed the secret, cloned for each key.
#[derive(Clone, Debug)]
pub(crate) struct SeededHash(DefaultHasher);

impl SeededHash {
    fn new() -> SeededHash {
        let seed = SEED.get_or_init(|| {
            let state = RandomState::new();
            [state.hash_one(0u64), state.hash_one(1u64)]
        });
        SeededHash::with_seed(*seed)
    }

    fn with_seed([k0, k1]: [u64; 2]) -> SeededHash {
        let mut hasher = DefaultHasher::new();
        hasher.write_u64(k0);
        hasher.write_u64(k1);
        SeededHash(hasher)
    }
}

impl BuildHasher for SeededHash {
    type Hasher = DefaultHasher;

    fn build_hasher(&self) -> DefaultHasher {
        self.0.clone()
    }
}

/// The tokenizer's hash map.
pub(crate) type Map<K, V> = HashMap<K, V, SeededHash>;

/// An empty map with room for `capacity` entries.
pub(crate) fn map_with_capacity<K, V>(capacity: usize) -> Map<K, V> {
    HashMap::with_capacity_and_hasher(capacity, SeededHash::new())
}

/// The vocabulary's index, token text → id, holding only ids: each text stays where it is, in
/// the token list every lookup is given. A map from `String` keys kept a second copy of every
/// token — 151 936 allocations and ~2 MB for Qwen2.5's vocabulary, most of a tokenizer's build.
#[derive(Clone, Debug)]
pub(crate) struct VocabIndex {
    table: hashbrown::HashTable<u32>,
    hash: SeededHash,
}

impl VocabIndex {
    pub(crate) fn with_capacity(capacity: usize) -> VocabIndex {
        VocabIndex { table: hashbrown::HashTable::with_capacity(capacity), hash: SeededHash::new() }
    }

    /// The id of `text` in `tokens` (the list the ids were added from).
    pub(crate) fn get(&self, tokens: &[String], text: &str) -> Option<u32> {
        let hash = self.hash.hash_one(text);
        self.table.find(hash, |&id| text_of(tokens, id) == text).copied()
    }

    /// Adds `id` (its text is `tokens[id]`); returns the id already there for that text, if
    /// any, and then adds nothing.
    pub(crate) fn insert(&mut self, tokens: &[String], id: u32) -> Result<(), u32> {
        let VocabIndex { table, hash } = self;
        let text = text_of(tokens, id);
        let rehash = |&other: &u32| hash.hash_one(text_of(tokens, other));
        match table.entry(hash.hash_one(text), |&other| text_of(tokens, other) == text, rehash) {
            hashbrown::hash_table::Entry::Occupied(first) => Err(*first.get()),
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert(id);
                Ok(())
            }
        }
    }
}

/// The text of `id` in `tokens`. Every id added is a position in `tokens`; one past its end
/// (never added) reads as no text rather than panicking.
fn text_of(tokens: &[String], id: u32) -> &str {
    tokens.get(id as usize).map_or("", String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_decides_where_keys_go() {
        let key = "Ġthe";
        let [a, b, a_again] =
            [[1, 2], [1, 3], [1, 2]].map(|seed| SeededHash::with_seed(seed).hash_one(key));
        assert_eq!(a, a_again, "one secret, one hash");
        assert_ne!(a, b, "another secret moves the key");
        // Not the unkeyed hash an attacker could compute.
        assert_ne!(a, std::hash::BuildHasherDefault::<DefaultHasher>::default().hash_one(key));
    }
}
