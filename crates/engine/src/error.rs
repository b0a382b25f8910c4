//! Why a run could not start or finish.

use std::fmt;

/// Why a run could not start or finish. Each variant reads as a sentence a user can act on.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EngineError {
    Model(parallax_model::ModelError),
    /// File `file` (1-based) of a comparison does not describe the same network as file 1.
    Incompatible {
        file: usize,
        difference: parallax_model::Incompatibility,
    },
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
    /// The model declares more layers than its tensors can hold (each needs at least 9).
    TooFewTensors {
        n_layers: u32,
        n_tensors: usize,
    },
    /// Grouped-query attention needs whole groups.
    HeadsNotGrouped {
        n_head: usize,
        n_head_kv: usize,
    },
    UnsupportedRopeScaling {
        kind: String,
    },
    /// A tensor whose shape the architecture cannot use.
    BadShape {
        tensor: String,
        ne: Vec<u64>,
        expected: String,
    },
    /// A kernel refused a tensor's bytes (wrong length or type).
    Kernel {
        tensor: String,
        error: parallax_quant::QuantError,
    },
    /// Neither prompt text nor token ids.
    NoPrompt,
    NoPaths,
    /// `fault` names a layer the model lacks.
    FaultLayerOutOfRange {
        fault: String,
        n_layers: u32,
    },
    /// Faults break a compared path; the reference is what they are compared against.
    FaultOnReference {
        fault: String,
    },
    /// A q4k-scales fault at a site whose weights are not Q4_K.
    NotQ4K {
        layer: u32,
        tensor: String,
        ty: String,
    },
    /// A drop-bias fault at a projection that has no bias to drop.
    NoBias {
        layer: u32,
        tensor: String,
    },
    /// The synchronous run was asked for the gpu path in the browser.
    GpuNeedsAsync,
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
    /// `--reference` names no lane of the run.
    UnknownReference {
        given: String,
        lanes: String,
    },
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
            EngineError::Incompatible { file, difference } => {
                write!(f, "file {file} cannot be compared with file 1 (A is file 1, B file {file}): {difference}")
            }
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
            EngineError::TooFewTensors { n_layers, n_tensors } => write!(
                f,
                "the model declares {n_layers} layers but holds only {n_tensors} tensors (each layer needs at least 9)"
            ),
            EngineError::HeadsNotGrouped { n_head, n_head_kv } => {
                write!(f, "{n_head} attention heads are not a multiple of {n_head_kv} KV heads")
            }
            EngineError::UnsupportedRopeScaling { kind } => {
                write!(f, "RoPE scaling `{kind}` is not supported yet")
            }
            EngineError::BadShape { tensor, ne, expected } => write!(
                f,
                "tensor `{tensor}` has shape {ne:?} (ne0 first), but the architecture needs {expected}"
            ),
            EngineError::Kernel { tensor, error } => write!(f, "tensor `{tensor}`: {error}"),
            EngineError::NoPrompt => write!(f, "give a prompt or token ids"),
            EngineError::NoPaths => write!(f, "no paths to run"),
            EngineError::FaultLayerOutOfRange { fault, n_layers } => {
                write!(
                    f,
                    "cannot inject {fault}: the model has layers 0–{}",
                    n_layers.saturating_sub(1)
                )
            }
            EngineError::FaultOnReference { fault } => {
                write!(f, "cannot inject {fault}: that is the reference path")
            }
            EngineError::NotQ4K { layer, tensor, ty } => write!(
                f,
                "cannot inject q4k-scales at layer {layer}: `{tensor}` is {ty}, not Q4_K; pick a site whose weights are Q4_K (see `parallax inspect`)"
            ),
            EngineError::NoBias { layer, tensor } => write!(
                f,
                "cannot inject drop-bias at layer {layer}: `{tensor}` has no bias to drop (qwen2 files have q/k/v biases; llama, qwen3 and gemma3 files usually do not)"
            ),
            EngineError::GpuNeedsAsync => write!(
                f,
                "in the browser the gpu path cannot be waited for synchronously; use run_async"
            ),
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
            EngineError::UnknownReference { given, lanes } => {
                write!(f, "the reference `{given}` is not a path of this run; its paths are {lanes}")
            }
            EngineError::GpuUnavailable { reason } => write!(f, "the gpu path cannot run: {reason}"),
        }
    }
}

impl std::error::Error for EngineError {}

impl From<parallax_model::ModelError> for EngineError {
    fn from(e: parallax_model::ModelError) -> Self {
        EngineError::Model(e)
    }
}
