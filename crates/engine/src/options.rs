//! What a run is asked to do ([`RunOptions`], [`RunInput`]) and what it tells the caller on the
//! way ([`Progress`], [`Phase`]).

use parallax_report::{Mode, Scope};
use serde::{Deserialize, Serialize};

use crate::inject::Fault;
use crate::paths::PathKind;

/// What to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Paths in order; the first is the reference.
    pub paths: Vec<PathKind>,
    pub mode: Mode,
    pub scope: Scope,
    /// Refuse prompts longer than this (memory and time grow with it).
    pub max_tokens: usize,
    /// Ops broken on purpose (`--inject`).
    pub faults: Vec<Fault>,
    /// Refuse to load a layer whose weights and activations would take more bytes than this
    /// (checked before the layer is read; `None`: no limit).
    pub memory_budget_bytes: Option<u64>,
    /// How the `gpu` path finds its device (only read when `paths` holds it).
    pub gpu: GpuSettings,
}

/// How the `gpu` path finds its device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuSettings {
    /// Act as if there were no adapter (tests of the fallback; a user's "CPU only" switch).
    pub disabled: bool,
    /// Destroy the device after this many GPU matmuls, as a driver reset would (tests of the
    /// mid-run fallback).
    pub lose_device_after: Option<u32>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            paths: vec![PathKind::F32, PathKind::Q8],
            mode: Mode::Free,
            scope: Scope::All,
            max_tokens: 512,
            faults: Vec::new(),
            memory_budget_bytes: None,
            gpu: GpuSettings::default(),
        }
    }
}

/// What the report says about the input, beyond the model itself.
#[derive(Debug, Clone, Default)]
pub struct RunInput {
    pub tokens: Vec<u32>,
    pub text: Option<String>,
    pub pieces: Vec<String>,
    pub sha256: Option<String>,
}

/// Where a run is. Serializable (`"embedding"`, `"layer"`, `"output_head"`, `"done"`) so that a
/// front end can pass it on (the page's worker to its DOM side) without a string vocabulary of
/// its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Embedding,
    Layer,
    OutputHead,
    Done,
}

/// Progress after each step: bytes of weights read so far out of the bytes the run will read.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub phase: Phase,
    /// Layers finished.
    pub layers_done: u32,
    pub n_layers: u32,
    pub bytes_read: u64,
    pub bytes_total: u64,
}

#[cfg(test)]
mod tests {
    use super::Phase;

    #[test]
    fn phase_serializes_as_snake_case() {
        let text = serde_json::to_string(&[Phase::Embedding, Phase::OutputHead]).unwrap();
        assert_eq!(text, r#"["embedding","output_head"]"#);
        let back: Vec<Phase> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, [Phase::Embedding, Phase::OutputHead]);
    }
}
