//! The forward-pass engine.
//!
//! Owns the architectures ([`ArchConfig`]: qwen2, llama, qwen3, gemma3), the shared f32 ops
//! (norms, RoPE, attention, activations), the per-path choices ([`PathKind`]: `f32` reference,
//! `q8` fused, `gpu` through `parallax-gpu` with the feature `gpu`), layer streaming (one layer's
//! weights in memory at a time; only the prompt's embedding rows; the output head in row chunks),
//! the probes at every site, and the run that turns all of it into a [`parallax_report::Report`].
//! Knows nothing about file formats (it asks `parallax-model` for tensors by role, hyperparameters
//! and the tokenizer's data), terminals or the DOM.
//!
//! By job: `options` (what to run, progress), `run` (the entry point [`Run`] and the layer loop),
//! `block` (the transformer block, one op and one probe a line), `paths` (everything in which
//! the paths differ), `probe` (statistics and comparisons at a site), `assemble` (the report),
//! `inject` (faults), `weights` (loading), `arch`, `ops`, `tokenize`, `error`.

mod arch;
mod assemble;
mod block;
mod error;
mod inject;
mod options;
mod paths;
mod probe;
mod run;
mod tokenize;
mod weights;
mod weights_diff;

pub mod ops;

pub use arch::{ArchConfig, ArchKind, RopeStyle, SUPPORTED};
pub use error::EngineError;
pub use inject::{swap_q4k_scale_min, Fault, FaultKind};
pub use options::{GpuSettings, Lane, LogitsPositions, Phase, Progress, RunInput, RunOptions};
pub use paths::{PathKind, GPU_PLACEMENT};
pub use probe::{layer_sites, SiteRows};
pub use run::{Run, RunOutput};
pub use tokenize::tokenizer_for;
pub use weights_diff::weights_diff;

/// The built-in evaluation text: a few hundred tokens of plain prose written for Parallax (how a
/// mechanical watch keeps time; public domain), long enough for per-position statistics —
/// KL divergence, same top-1, perplexity — to mean something where a one-line prompt gives a
/// handful of positions. 304 tokens for Qwen2.5, as llama.cpp tokenizes it too
/// (`tests/golden/reference/ladder_kld.json`, whose KLD figures are over this text).
pub const BUILTIN_TEXT: &str = include_str!("kld_text.txt");

/// `f(0), f(1), …, f(n − 1)`, in that order: on the rayon pool with the `parallel` feature, each
/// one task's, so every value is the one a single thread computes.
pub(crate) fn map_indices<R: Send>(n: usize, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        (0..n).into_par_iter().map(f).collect()
    }
    #[cfg(not(feature = "parallel"))]
    {
        (0..n).map(f).collect()
    }
}

/// `(a(), b())`, the two on the pool's threads at once where the build has them (the page's
/// threaded worker draws a report beside writing its JSON with it).
pub fn join<A: Send, B: Send>(
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    #[cfg(feature = "parallel")]
    {
        rayon::join(a, b)
    }
    #[cfg(not(feature = "parallel"))]
    {
        (a(), b())
    }
}

/// Threads the matmuls use (each holds one f32 row tile): the current rayon pool's, or one
/// without the `parallel` feature.
pub fn worker_threads() -> usize {
    #[cfg(feature = "parallel")]
    {
        rayon::current_num_threads()
    }
    #[cfg(not(feature = "parallel"))]
    {
        1
    }
}
