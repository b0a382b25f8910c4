//! Progress as both front ends show it: one serializable step enum (the page's worker posts it,
//! never a string to compare) and the words for it.

use parallax_engine::{Phase, Progress};
use parallax_model::human_bytes;
use serde::{Deserialize, Serialize};

/// What a run is doing, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Reading bytes for the model's sha256 that the run has not read in file order (the hash
    /// takes the run's own reads as they pass; see `HashAlong`).
    Hash,
    /// Comparing the weights of a run's files, tensor by tensor.
    Weights,
    /// Reading the prompt's embedding rows.
    Embedding,
    /// Streaming the layers.
    Layers,
    /// The output head, in row chunks.
    OutputHead,
    Done,
}

impl Step {
    /// The step's name as the page shows it ("layers: layer 3/24 …").
    pub fn name(self) -> &'static str {
        match self {
            Step::Hash => "sha256",
            Step::Weights => "weights",
            Step::Embedding => "embedding",
            Step::Layers => "layers",
            Step::OutputHead => "output head",
            Step::Done => "done",
        }
    }
}

/// Progress after each step: bytes read so far out of the bytes the step will read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressUpdate {
    pub step: Step,
    pub layers_done: u32,
    pub n_layers: u32,
    pub bytes_read: u64,
    pub bytes_total: u64,
}

impl From<&Progress> for ProgressUpdate {
    fn from(p: &Progress) -> Self {
        ProgressUpdate {
            step: match p.phase {
                Phase::Weights => Step::Weights,
                Phase::Embedding => Step::Embedding,
                Phase::Layer => Step::Layers,
                Phase::OutputHead => Step::OutputHead,
                Phase::Done => Step::Done,
            },
            layers_done: p.layers_done,
            n_layers: p.n_layers,
            bytes_read: p.bytes_read,
            bytes_total: p.bytes_total,
        }
    }
}

impl ProgressUpdate {
    /// Hashing progress: `done` of the `total` bytes the hash reads by itself at this point.
    pub fn hashing(done: u64, total: u64) -> Self {
        ProgressUpdate {
            step: Step::Hash,
            layers_done: 0,
            n_layers: 0,
            bytes_read: done,
            bytes_total: total,
        }
    }

    /// The fraction of the step's bytes read, in [0, 1].
    pub fn fraction(&self) -> f64 {
        if self.bytes_total == 0 {
            0.0
        } else {
            (self.bytes_read as f64 / self.bytes_total as f64).clamp(0.0, 1.0)
        }
    }

    /// A short label beside a progress bar that shows the bytes itself (the CLI's).
    pub fn label(&self) -> String {
        match self.step {
            Step::Layers => format!("layer {}/{}", self.layers_done, self.n_layers),
            step => step.name().to_string(),
        }
    }

    /// A whole sentence with the bytes (the page's), with `eta` appended as it is given.
    pub fn sentence(&self, eta: &str) -> String {
        let (read, total) = (human_bytes(self.bytes_read), human_bytes(self.bytes_total));
        match self.step {
            Step::Hash => format!("sha256: {read} of {total} read for the hash"),
            step => format!(
                "{}: layer {}/{} · {read} of {total} of weights read{eta}",
                step.name(),
                self.layers_done,
                self.n_layers
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_serialize_as_snake_case_words() {
        let p = ProgressUpdate::hashing(5, 10);
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains(r#""step":"hash""#), "{json}");
        assert_eq!(serde_json::from_str::<ProgressUpdate>(&json).unwrap(), p);
        assert_eq!(serde_json::to_string(&Step::OutputHead).unwrap(), r#""output_head""#);
    }

    #[test]
    fn words_for_each_step() {
        let layer = ProgressUpdate {
            step: Step::Layers,
            layers_done: 3,
            n_layers: 24,
            bytes_read: 3 << 20,
            bytes_total: 24 << 20,
        };
        assert_eq!(layer.label(), "layer 3/24");
        assert_eq!(
            layer.sentence(", about 5 s left"),
            "layers: layer 3/24 · 3.00 MiB of 24.00 MiB of weights read, about 5 s left"
        );
        assert_eq!(layer.fraction(), 0.125);
        let hash = ProgressUpdate::hashing(1 << 20, 4 << 20);
        assert_eq!(hash.label(), "sha256");
        assert_eq!(hash.sentence(""), "sha256: 1.00 MiB of 4.00 MiB read for the hash");
        assert_eq!(ProgressUpdate::hashing(0, 0).fraction(), 0.0);
    }
}
