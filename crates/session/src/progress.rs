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
}

/// The page's one progress bar over a whole run: the run's weight bytes and the bytes the hash
/// reads by itself make one fraction (the bar no longer starts again between steps), and the
/// time left comes from the current step's own rate, not from the run's start (which counts
/// opening the file and the hash's first reads, and made the first estimates wildly long).
#[derive(Debug, Clone, Default)]
pub struct RunProgress {
    run: Option<ProgressUpdate>,
    hash: Option<ProgressUpdate>,
    /// The run's current step, when it began (seconds) and the bytes read (run and hash) then.
    step: Option<(Step, f64, u64)>,
}

impl RunProgress {
    /// Take one update from the worker at `now_s` seconds (any clock that only goes forward).
    pub fn update(&mut self, p: ProgressUpdate, now_s: f64) {
        if p.step == Step::Hash {
            self.hash = Some(p);
            if self.run.is_none() && self.step.is_none() {
                self.step = Some((Step::Hash, now_s, self.bytes_read()));
            }
            return;
        }
        self.run = Some(p);
        if self.step.map(|(s, ..)| s) != Some(p.step) {
            self.step = Some((p.step, now_s, self.bytes_read()));
        }
    }

    fn bytes_read(&self) -> u64 {
        self.run.map_or(0, |p| p.bytes_read) + self.hash.map_or(0, |p| p.bytes_read)
    }

    fn bytes_total(&self) -> u64 {
        self.run.map_or(0, |p| p.bytes_total) + self.hash.map_or(0, |p| p.bytes_total)
    }

    /// The run's layer count, once the run has told it.
    pub fn n_layers(&self) -> Option<u32> {
        self.run.map(|p| p.n_layers)
    }

    /// The share of every byte the run and its hash will read that is read, in [0, 1].
    pub fn fraction(&self) -> f64 {
        match self.bytes_total() {
            0 => 0.0,
            total => (self.bytes_read() as f64 / total as f64).clamp(0.0, 1.0),
        }
    }

    /// Seconds left at the current step's rate, once the step has run a second and read bytes.
    pub fn seconds_left(&self, now_s: f64) -> Option<f64> {
        let (_, started, read_then) = self.step?;
        let (seconds, bytes) = (now_s - started, self.bytes_read().saturating_sub(read_then));
        if seconds < 1.0 || bytes == 0 {
            return None;
        }
        let left = self.bytes_total().saturating_sub(self.bytes_read());
        Some(left as f64 * seconds / bytes as f64)
    }

    /// The line under the bar: the step by name, the layer, the bytes of run and hash together,
    /// and the time left ("layers: layer 3/24 · 96.0 MiB of 386 MiB read · about 12 s left").
    pub fn sentence(&self, now_s: f64) -> String {
        let eta = match self.seconds_left(now_s) {
            Some(s) if s < 90.0 => format!(" · about {:.0} s left", s.max(1.0)),
            Some(s) => format!(" · about {:.0} min left", s / 60.0),
            None => String::new(),
        };
        let (read, total) = (human_bytes(self.bytes_read()), human_bytes(self.bytes_total()));
        let hashed =
            if self.hash.is_some_and(|h| h.bytes_total > 0) { ", sha256 included" } else { "" };
        match self.run {
            None => format!("sha256: {read} of {total} read for the hash{eta}"),
            Some(p) => format!(
                "{}: layer {}/{} · {read} of {total} read{hashed}{eta}",
                p.step.name(),
                p.layers_done,
                p.n_layers
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(step: Step, layers_done: u32, read: u64, total: u64) -> ProgressUpdate {
        ProgressUpdate { step, layers_done, n_layers: 24, bytes_read: read, bytes_total: total }
    }

    #[test]
    fn one_bar_over_the_run_and_its_hash_with_the_time_left_from_the_current_step() {
        const MIB: u64 = 1 << 20;
        let mut p = RunProgress::default();
        assert_eq!(p.fraction(), 0.0);
        // The hash reads 100 MiB by itself before the run starts, slowly (10 MiB/s).
        p.update(ProgressUpdate::hashing(0, 100 * MIB), 0.0);
        p.update(ProgressUpdate::hashing(50 * MIB, 100 * MIB), 5.0);
        assert_eq!(
            p.sentence(5.0),
            "sha256: 50.00 MiB of 100.00 MiB read for the hash · about 5 s left"
        );
        p.update(ProgressUpdate::hashing(100 * MIB, 100 * MIB), 10.0);
        // The layers read 300 MiB at 100 MiB/s: the estimate is the layers' rate, not the
        // run's average since its start (which would say 20 s here).
        p.update(at(Step::Layers, 0, 0, 300 * MIB), 10.0);
        assert_eq!(p.seconds_left(10.5), None, "no estimate in a step's first second");
        p.update(at(Step::Layers, 12, 100 * MIB, 300 * MIB), 11.0);
        assert_eq!(p.fraction(), 0.5, "one fraction over run and hash: 200 of 400 MiB");
        assert_eq!(p.seconds_left(11.0), Some(2.0));
        assert_eq!(
            p.sentence(11.0),
            "layers: layer 12/24 · 200.00 MiB of 400.00 MiB read, sha256 included · about 2 s left"
        );
        // Hash reads interleaved with the layers do not restart the step's clock.
        p.update(ProgressUpdate::hashing(100 * MIB, 100 * MIB), 11.5);
        p.update(at(Step::Layers, 18, 200 * MIB, 300 * MIB), 12.0);
        assert_eq!(p.seconds_left(12.0), Some(1.0));
        // A new step starts its own clock.
        p.update(at(Step::OutputHead, 24, 290 * MIB, 300 * MIB), 12.1);
        assert_eq!(p.seconds_left(12.1), None);
        assert_eq!(p.fraction(), 390.0 / 400.0);
        // Long runs are told in minutes.
        let mut slow = RunProgress::default();
        slow.update(at(Step::Layers, 0, 0, 3000 * MIB), 0.0);
        slow.update(at(Step::Layers, 1, 10 * MIB, 3000 * MIB), 2.0);
        assert_eq!(
            slow.sentence(2.0),
            "layers: layer 1/24 · 10.00 MiB of 2.93 GiB read · about 10 min left"
        );
    }

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
        assert_eq!(layer.fraction(), 0.125);
        let hash = ProgressUpdate::hashing(1 << 20, 4 << 20);
        assert_eq!(hash.label(), "sha256");
        assert_eq!(ProgressUpdate::hashing(0, 0).fraction(), 0.0);
    }
}
