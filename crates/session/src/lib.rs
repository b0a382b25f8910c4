//! The run request, once for both front ends.
//!
//! Owns [`RunRequest`] (what the CLI's arguments and the page's form say, as plain text, the
//! same JSON the page posts to its worker), [`RunSpec`] (that request parsed and validated:
//! typed paths, scope, mode, faults, contracts, limits), [`FormValues`] (the page's form fields,
//! turned into a request by plain Rust so the DOM code only moves values), the model's sha256
//! hashed from the bytes the run reads ([`HashAlong`]), progress in words ([`ProgressUpdate`]) and judging a finished
//! report ([`RunSpec::judge`]). Every refusal is a [`SpecError`] whose sentence both front ends
//! show unchanged, so the CLI and the page refuse the same request with the same words.
//! Knows nothing of terminals, the DOM or files on disk: the front ends read files and hand
//! over their text.

mod hash;
mod progress;
mod request;

pub use hash::{
    hash_extra_bytes, hash_note, hash_unread_bytes, record_sha256, sha256_of, HashAlong,
    MemorySpill, NoSpill, Spawner, SpillStore, QUEUED_AT_MOST,
};
pub use progress::{ProgressUpdate, RunProgress, Step};
pub use request::{
    parse_memory_budget, parse_threads, parse_tokens, FormValues, Judging, RunRequest, RunSpec,
    SpecError, DEFAULT_MAX_TOKENS, VERSION,
};
