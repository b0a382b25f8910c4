//! The forward-pass engine.
//!
//! Owns the architectures ([`ArchConfig`]: qwen2, llama, qwen3, gemma3), the shared f32 ops
//! (norms, RoPE, attention, activations), the per-path matmuls ([`PathKind`]: `f32` reference,
//! `q8` fused, `gpu` through `parallax-gpu` with the feature `gpu`), layer streaming (one layer's weights in memory at a time; only the prompt's
//! embedding rows; the output head in row chunks), the probes at every site, and the run that
//! turns all of it into a [`parallax_report::Report`].
//! Knows nothing about file formats (it asks `parallax-model` for tensors by role), terminals or
//! the DOM.

mod arch;
mod inject;
mod matmul;
pub mod ops;
mod run;
mod tokenize;
mod weights;

use std::fmt;

pub use arch::{ArchConfig, ArchKind, RopeStyle, SUPPORTED};
pub use inject::{swap_q4k_scale_min, Fault, FaultKind};
pub use matmul::PathKind;
pub use run::{
    layer_sites, run, run_async, run_with_logits, run_with_logits_async, GpuSettings, Phase,
    Progress, RunInput, RunOptions, GPU_PLACEMENT,
};
pub use tokenize::tokenizer_for;

/// Why a run could not start or finish. Each variant reads as a sentence a user can act on.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EngineError {
    Model(parallax_model::ModelError),
    UnsupportedArch {
        arch: String,
        supported: String,
    },
    MissingHyperparameter {
        what: &'static str,
        arch: String,
    },
    MissingTensor {
        name: String,
        arch: String,
    },
    BadModel {
        message: String,
    },
    BadOptions {
        message: String,
    },
    Tokenizer {
        message: String,
    },
    EmptyPrompt,
    PromptTooLong {
        tokens: usize,
        max: usize,
    },
    /// A layer would need more memory than the run's budget (checked before it is loaded).
    OverMemoryBudget {
        layer: u32,
        weights: u64,
        work: u64,
        budget: u64,
    },
    TokenOutOfRange {
        id: u32,
        vocab: u64,
    },
    Cancelled,
    /// The `gpu` path cannot run (no adapter, device lost, out of memory, …); a run drops the
    /// path, records `reason` in the report and goes on.
    GpuUnavailable {
        reason: String,
    },
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Model(e) => write!(f, "{e}"),
            EngineError::UnsupportedArch { arch, supported } if arch.is_empty() => {
                write!(f, "the model does not name its architecture; Parallax runs {supported}")
            }
            EngineError::UnsupportedArch { arch, supported } => {
                write!(f, "architecture `{arch}` is not supported yet; Parallax runs {supported}")
            }
            EngineError::MissingHyperparameter { what, arch } => {
                write!(f, "the model's metadata lacks the {what} of its `{arch}` architecture")
            }
            EngineError::MissingTensor { name, arch } => {
                write!(f, "the model has no tensor `{name}`, which a `{arch}` forward pass needs")
            }
            EngineError::BadModel { message } => write!(f, "{message}"),
            EngineError::BadOptions { message } => write!(f, "{message}"),
            EngineError::Tokenizer { message } => write!(f, "tokenizer: {message}"),
            EngineError::EmptyPrompt => write!(f, "the prompt has no tokens"),
            EngineError::OverMemoryBudget { layer, weights, work, budget } => write!(
                f,
                "layer {layer} would need about {} ({} of weights, {} of activations), more than the memory budget \
                 of {}; raise the budget (--memory-budget, or the page's memory setting) or use a smaller model",
                parallax_model::human_bytes(weights.saturating_add(*work)),
                parallax_model::human_bytes(*weights),
                parallax_model::human_bytes(*work),
                parallax_model::human_bytes(*budget)
            ),
            EngineError::PromptTooLong { tokens, max } => write!(
                f,
                "the prompt has {tokens} tokens, more than the limit of {max}; shorten it or raise the limit \
                 (--max-tokens, or the page's token limit)"
            ),
            EngineError::TokenOutOfRange { id, vocab } => {
                write!(f, "token id {id} is outside the model's vocabulary of {vocab} tokens")
            }
            EngineError::Cancelled => write!(f, "the run was cancelled"),
            EngineError::GpuUnavailable { reason } => write!(f, "the gpu path cannot run: {reason}"),
        }
    }
}

impl std::error::Error for EngineError {}

/// Drives a future to completion on this thread. The CPU paths never wait, and natively the
/// GPU's futures complete when first polled (wgpu is polled to completion inside them), so this
/// parks only in theory; it exists so that the synchronous [`run`] adds no dependency.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// Which kernel family the fused dots dispatch to on this machine.
pub fn kernel_backend() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if parallax_quant::avx2::available() {
            return "avx2";
        }
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        return "simd128";
    }
    #[allow(unreachable_code)]
    "scalar"
}

/// Threads the matmuls use (each holds one f32 row tile).
pub(crate) fn worker_threads() -> usize {
    #[cfg(feature = "parallel")]
    {
        rayon::current_num_threads()
    }
    #[cfg(not(feature = "parallel"))]
    {
        1
    }
}
