//! Judging a parity report against contracts.
//!
//! Owns contracts ([`contract`]: the `pv` YAML schema read unchanged, each test's prediction
//! parsed into a check, Parallax's own embedded contracts in `contracts/`), imported traces of
//! other tools ([`trace`]: `apr trace --payload`, `llama-eval-callback`), and [`evaluate`]: every
//! falsification test of every contract becomes a verdict — PASS, FAIL, REFUSED (samples of
//! unknown or unequal size: the FALSIFY-007 lesson) or NOT MEASURABLE (with the reason) — with
//! its worst value, where it was, and the element counts it was computed from; and the first
//! divergence: the earliest (layer, site) in execution order that leaves a band, with, in replay
//! mode, whether the op alone already leaves it (root) or only the accumulated error does
//! (propagated). Works on a saved report alone, so a report can be re-judged without the model;
//! traces join as extra paths ([`evaluate_with_traces`]).
//! The verdicts it produces are the report's `verdicts` section (`parallax_report::verdict`);
//! site names come from `parallax_metrics::sites`.
//! Knows nothing about models, kernels or terminals.

pub mod contract;
pub mod trace;

mod checks;
mod divergence;
mod evaluate;
mod mapping;
mod sample;

pub use contract::{default_contracts, Contract, ContractError};
pub use evaluate::{evaluate, evaluate_with_traces};
pub use mapping::PathMapping;
pub use trace::{parse_trace, Trace};
