//! What a run is asked to do ([`RunOptions`], [`RunInput`]) and what it tells the caller on the
//! way ([`Progress`], [`Phase`]).

use parallax_report::{Mode, Scope};
use serde::{Deserialize, Serialize};

use crate::inject::Fault;
use crate::paths::PathKind;

/// What to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Paths in order. Every path runs on every file of the run ([`Lane`]); the first path on
    /// the first file is the reference unless [`RunOptions::reference`] names another lane.
    pub paths: Vec<PathKind>,
    /// The reference lane's id (`q8`, `f32@2`); `None`: the first path on the first file.
    pub reference: Option<String>,
    /// The prompt positions the output head is computed for.
    pub logits: LogitsPositions,
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

/// The prompt positions whose logits a run computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogitsPositions {
    /// Every position: per-position KL divergence, top-1 agreement and perplexity over the
    /// prompt (the output head's cost grows with the prompt).
    #[default]
    All,
    /// The last position only: what the next token will be.
    Last,
}

impl LogitsPositions {
    pub fn parse(s: &str) -> Option<LogitsPositions> {
        match s {
            "all" => Some(LogitsPositions::All),
            "last" => Some(LogitsPositions::Last),
            _ => None,
        }
    }
}

/// One path on one file: what every op of a run is stepped along. Its id is the path's
/// (`f32`, `q8`, `gpu`) on the first file and `PATH@K` on the k-th (`q8@2`, 1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lane {
    pub path: PathKind,
    /// 0-based index of the file among the run's files.
    pub file: usize,
}

impl Lane {
    pub fn id(&self) -> String {
        match self.file {
            0 => self.path.id().to_string(),
            k => format!("{}@{}", self.path.id(), k + 1),
        }
    }

    /// `PATH` or `PATH@K` (K ≥ 2, written without leading zeros), the inverse of [`Lane::id`].
    pub fn parse(s: &str) -> Option<Lane> {
        let (path, file) = match s.split_once('@') {
            None => (s, 0),
            Some((path, k)) => {
                let n: usize = k.parse().ok()?;
                if n < 2 || n.to_string() != k {
                    return None;
                }
                (path, n - 1)
            }
        };
        Some(Lane { path: PathKind::parse(path)?, file })
    }
}

impl RunOptions {
    /// The lanes of a run over `n_files` files, the reference first, then file by file in path
    /// order.
    pub fn lanes(&self, n_files: usize) -> Result<Vec<Lane>, crate::EngineError> {
        let mut lanes: Vec<Lane> = (0..n_files)
            .flat_map(|file| self.paths.iter().map(move |&path| Lane { path, file }))
            .collect();
        if let Some(id) = &self.reference {
            let at = Lane::parse(id).and_then(|r| lanes.iter().position(|l| *l == r)).ok_or_else(
                || crate::EngineError::UnknownReference {
                    given: id.clone(),
                    lanes: lanes.iter().map(Lane::id).collect::<Vec<_>>().join(", "),
                },
            )?;
            let reference = lanes.remove(at);
            lanes.insert(0, reference);
        }
        Ok(lanes)
    }
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
            reference: None,
            logits: LogitsPositions::All,
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
    /// sha256 of the first file, when computed.
    pub sha256: Option<String>,
    /// sha256 of each other file of the run, in order.
    pub other_sha256: Vec<Option<String>>,
}

/// Where a run is. Serializable (`"embedding"`, `"layer"`, `"output_head"`, `"done"`) so that a
/// front end can pass it on (the page's worker to its DOM side) without a string vocabulary of
/// its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// A run over two or more files compares their weights first, tensor by tensor.
    Weights,
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
