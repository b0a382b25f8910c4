//! [`RunRequest`] (text, as the user gave it) → [`RunSpec`] (parsed and checked), and the page's
//! [`FormValues`] → [`RunRequest`].

use std::fmt;

use parallax_engine::{Fault, Lane, LogitsPositions, PathKind, RunInput, RunOptions};
use parallax_judge::PathMapping;
use parallax_judge::{Contract, Trace};
use parallax_model::Model;
use parallax_report::verdict::Verdicts;
use parallax_report::{Mode, Report, Scope};
use parallax_source::ByteSource;
use serde::{Deserialize, Serialize};

/// The prompt cap unless the user sets one (both front ends).
pub const DEFAULT_MAX_TOKENS: usize = 512;

/// A run as the user asked for it, every field as text or plain numbers: what the CLI's
/// arguments say and what the page posts to its worker (as JSON). Files (contracts, traces)
/// arrive as their text, read by the front end. [`RunSpec::from_request`] checks it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    /// Prompt text, tokenized with the model's tokenizer; ignored when `tokens` is set.
    pub prompt: Option<String>,
    pub tokens: Option<Vec<u32>>,
    /// Path ids, the first being the reference: `f32`, `q8`, `gpu`.
    pub paths: Vec<String>,
    /// The files the model is compared against, as the front end names them (paths, URLs):
    /// every path runs on each too (`q8@2` on the first of them).
    #[serde(default)]
    pub against: Vec<String>,
    /// The reference path's id (`q8`, `q8@2`); none: the first path on the first file.
    #[serde(default)]
    pub reference: Option<String>,
    /// The positions whose logits are computed: `all` or `last`; empty means `all`.
    #[serde(default)]
    pub logits: String,
    /// `all` or `last`; empty means `all`.
    #[serde(default)]
    pub scope: String,
    /// `free` or `replay`; empty means `free`.
    #[serde(default)]
    pub mode: String,
    /// Faults to inject into the q8 path (`KIND@LAYER[:SITE]`), for demonstrations.
    #[serde(default)]
    pub faults: Vec<String>,
    /// Hash the whole file (sha256, recorded in the report) before the run.
    #[serde(default)]
    pub sha256: bool,
    /// Contract YAML texts (pv schema) as (name, text); empty: the embedded defaults.
    #[serde(default)]
    pub contracts: Vec<(String, String)>,
    /// How contract path names map to paths, `NAME=PATH,…` on top of `apr=f32,gguf=q8`.
    #[serde(default)]
    pub map: Option<String>,
    /// External traces as (id, text): upstream `apr trace --payload` or `llama-eval-callback`.
    #[serde(default)]
    pub traces: Vec<(String, String)>,
    /// Refuse prompts longer than this many tokens (default [`DEFAULT_MAX_TOKENS`]).
    #[serde(default)]
    pub max_tokens: Option<usize>,
    /// Refuse a layer that would need more bytes than this.
    #[serde(default)]
    pub memory_budget_bytes: Option<u64>,
    /// Engine threads; none: the front end's default.
    #[serde(default)]
    pub threads: Option<usize>,
}

/// A request that can run: every value parsed, every combination checked, contracts read.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub prompt: Option<String>,
    pub tokens: Option<Vec<u32>>,
    pub paths: Vec<PathKind>,
    /// Files in the run: the model and those it is compared against.
    pub n_files: usize,
    pub reference: Option<String>,
    pub logits: LogitsPositions,
    pub scope: Scope,
    pub mode: Mode,
    pub faults: Vec<Fault>,
    pub sha256: bool,
    pub judging: Judging,
    pub max_tokens: usize,
    pub memory_budget_bytes: Option<u64>,
    pub threads: Option<usize>,
    /// The judging flags as given (`--contract NAME`, `--map SPEC`, `--trace ID=NAME`), for the
    /// command that reproduces the run.
    pub judging_args: Vec<String>,
}

/// The Parallax version that makes a report (recorded in it).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why a request cannot run. The Display is the sentence both front ends show.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpecError {
    NoPrompt,
    UnknownPath { given: String },
    NoPaths,
    RepeatedPath { path: String },
    UnknownScope { given: String },
    UnknownLogits { given: String },
    UnknownReference { given: String, lanes: String },
    FaultOnReference,
    UnknownMode { given: String },
    Fault { message: String },
    FaultWithoutQ8,
    Contract { name: String, message: String },
    Mapping { message: String },
    Trace { id: String, message: String },
    TraceId { given: String },
    Tokens { message: String },
    MaxTokens { given: String },
    MemoryBudget { message: String },
    Threads,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::NoPrompt => write!(f, "give a prompt or token ids"),
            SpecError::UnknownPath { given } => {
                write!(f, "unknown path `{given}`; the paths are f32, q8 and gpu")
            }
            SpecError::NoPaths => write!(f, "name at least one path, e.g. f32,q8"),
            SpecError::RepeatedPath { path } => {
                write!(f, "the path `{path}` is named twice; name each path once, e.g. f32,q8")
            }
            SpecError::UnknownScope { given } => {
                write!(f, "unknown scope `{given}`; the scopes are all and last")
            }
            SpecError::UnknownLogits { given } => {
                write!(f, "unknown logits positions `{given}`; they are all and last")
            }
            SpecError::UnknownReference { given, lanes } => {
                write!(
                    f,
                    "the reference `{given}` is not a path of this run; its paths are {lanes}"
                )
            }
            SpecError::FaultOnReference => write!(
                f,
                "faults break the q8 path, which is the reference here; pick another reference"
            ),
            SpecError::UnknownMode { given } => {
                write!(f, "unknown mode `{given}`; the modes are free and replay")
            }
            SpecError::Fault { message } => write!(f, "fault {message}"),
            SpecError::FaultWithoutQ8 => {
                write!(f, "faults break the q8 path, which is not among the paths")
            }
            SpecError::Contract { name, message } => write!(f, "contract {name}: {message}"),
            SpecError::Mapping { message } => write!(f, "{message}"),
            SpecError::Trace { id, message } => write!(f, "trace {id}: {message}"),
            SpecError::TraceId { given } => {
                write!(f, "a trace takes ID=FILE, e.g. apr=trace.txt; got `{given}`")
            }
            SpecError::Tokens { message } => write!(f, "token ids: {message}"),
            SpecError::MaxTokens { given } => {
                write!(f, "token limit: `{given}` is not a whole number above 0")
            }
            SpecError::MemoryBudget { message } => write!(f, "memory budget: {message}"),
            SpecError::Threads => write!(f, "threads: give a whole number above 0"),
        }
    }
}

impl std::error::Error for SpecError {}

impl RunSpec {
    /// Parse and check everything a run needs, before any byte of the model is read.
    pub fn from_request(r: &RunRequest) -> Result<RunSpec, SpecError> {
        let has_tokens = r.tokens.as_ref().is_some_and(|t| !t.is_empty());
        let has_prompt = r.prompt.as_ref().is_some_and(|p| !p.is_empty());
        if !has_tokens && !has_prompt {
            return Err(SpecError::NoPrompt);
        }
        let mut paths = Vec::new();
        for given in r.paths.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
            let path = PathKind::parse(given)
                .ok_or_else(|| SpecError::UnknownPath { given: given.to_string() })?;
            if paths.contains(&path) {
                return Err(SpecError::RepeatedPath { path: path.id().to_string() });
            }
            paths.push(path);
        }
        if paths.is_empty() {
            return Err(SpecError::NoPaths);
        }
        let scope = match r.scope.trim() {
            "" | "all" => Scope::All,
            "last" => Scope::Last,
            given => return Err(SpecError::UnknownScope { given: given.to_string() }),
        };
        let mode = match r.mode.trim() {
            "" | "free" => Mode::Free,
            "replay" => Mode::Replay,
            given => return Err(SpecError::UnknownMode { given: given.to_string() }),
        };
        let faults = r
            .faults
            .iter()
            .map(|f| f.trim())
            .filter(|f| !f.is_empty())
            .map(|f| Fault::parse(f, PathKind::Q8).map_err(|message| SpecError::Fault { message }))
            .collect::<Result<Vec<_>, _>>()?;
        if !faults.is_empty() && !paths.contains(&PathKind::Q8) {
            return Err(SpecError::FaultWithoutQ8);
        }
        let n_files = 1 + r.against.len();
        let logits = match r.logits.trim() {
            "" => LogitsPositions::All,
            given => LogitsPositions::parse(given)
                .ok_or_else(|| SpecError::UnknownLogits { given: given.to_string() })?,
        };
        let reference = r.reference.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let options = RunOptions {
            paths: paths.clone(),
            reference: reference.map(String::from),
            ..RunOptions::default()
        };
        let lanes = options.lanes(n_files).map_err(|_| SpecError::UnknownReference {
            given: reference.unwrap_or_default().to_string(),
            lanes: (0..n_files)
                .flat_map(|file| paths.iter().map(move |&path| Lane { path, file }.id()))
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        if !faults.is_empty() && lanes[0] == (Lane { path: PathKind::Q8, file: 0 }) {
            return Err(SpecError::FaultOnReference);
        }
        let judging = Judging::from_texts(&r.contracts, r.map.as_deref(), &r.traces)?;
        let max_tokens = match r.max_tokens {
            Some(0) => return Err(SpecError::MaxTokens { given: "0".into() }),
            Some(n) => n,
            None => DEFAULT_MAX_TOKENS,
        };
        if r.threads == Some(0) {
            return Err(SpecError::Threads);
        }
        Ok(RunSpec {
            prompt: r.prompt.clone().filter(|p| !p.is_empty()),
            tokens: r.tokens.clone().filter(|t| !t.is_empty()),
            paths,
            n_files,
            reference: reference.map(String::from),
            logits,
            scope,
            mode,
            faults,
            sha256: r.sha256,
            judging,
            max_tokens,
            memory_budget_bytes: r.memory_budget_bytes,
            threads: r.threads,
            judging_args: judging_args(r),
        })
    }

    /// The `parallax run` command that computes this run's report again, over `files` (the
    /// model first, then the files it is compared with, named by their last path segment) and
    /// the prompt's token ids (ids, not text, so the rerun needs no tokenizer to agree).
    pub fn reproduce(&self, files: &[&str], tokens: &[u32]) -> String {
        let mut words: Vec<String> = vec!["parallax".into(), "run".into()];
        for (k, file) in files.iter().enumerate() {
            words.push(if k == 0 { "-m" } else { "--against" }.into());
            words.push(shell_word(base_name(file)));
        }
        let ids: Vec<String> = tokens.iter().map(u32::to_string).collect();
        words.push("--tokens".into());
        words.push(ids.join(","));
        if tokens.len() > DEFAULT_MAX_TOKENS {
            words.push(format!("--max-tokens {}", tokens.len()));
        }
        let paths: Vec<&str> = self.paths.iter().map(|p| p.id()).collect();
        words.push(format!("--paths {}", paths.join(",")));
        if let Some(r) = &self.reference {
            words.push(format!("--reference {}", shell_word(r)));
        }
        if self.scope == Scope::Last {
            words.push("--scope last".into());
        }
        if self.mode == Mode::Replay {
            words.push("--mode replay".into());
        }
        if self.logits == LogitsPositions::Last {
            words.push("--logits last".into());
        }
        for f in &self.faults {
            let site = f.site.as_ref().map(|s| format!(":{s}")).unwrap_or_default();
            words.push(format!("--inject {}@{}{site}", f.kind.name(), f.layer));
        }
        words.extend(self.judging_args.iter().cloned());
        if !self.sha256 {
            words.push("--no-hash".into());
        }
        words.join(" ")
    }

    /// Record in `report` the threads its matmuls ran on, the Parallax version that made it, when
    /// (`computed_at`, seconds since the Unix epoch: each front end reads its own clock, the
    /// page having no `SystemTime`) and the command that makes it again (`execution.threads`,
    /// `execution.parallax_version`, `execution.date`, `execution.reproduce`): both front ends,
    /// alike.
    pub fn stamp(&self, report: &mut Report, computed_at: i64, threads: usize) {
        let mut files: Vec<&str> = vec![&report.model.file_name];
        files.extend(report.files.iter().skip(1).map(|f| f.file_name.as_str()));
        let command = self.reproduce(&files, &report.prompt.tokens);
        report.execution.threads = Some(threads);
        report.execution.parallax_version = Some(VERSION.to_string());
        report.execution.date = Some(parallax_report::utc_date(computed_at));
        report.execution.reproduce = Some(command);
    }

    /// The engine's options for this run.
    pub fn options(&self) -> RunOptions {
        RunOptions {
            paths: self.paths.clone(),
            reference: self.reference.clone(),
            logits: self.logits,
            mode: self.mode,
            scope: self.scope,
            max_tokens: self.max_tokens,
            faults: self.faults.clone(),
            memory_budget_bytes: self.memory_budget_bytes,
            ..RunOptions::default()
        }
    }

    /// The prompt tokenized with the model's own tokenizer (or the token ids as given).
    pub fn input<S: ByteSource>(&self, model: &Model<S>) -> Result<RunInput, String> {
        RunInput::from_prompt(model, self.prompt.clone(), self.tokens.clone())
            .map_err(|e| e.to_string())
    }

    /// Judge `report` by the request's contracts, mapping and traces (see [`Judging::judge`]).
    pub fn judge(&self, report: &mut Report) -> bool {
        self.judging.judge(report)
    }
}

/// The judging flags of `r`, as the CLI takes them.
fn judging_args(r: &RunRequest) -> Vec<String> {
    let mut args: Vec<String> = r
        .contracts
        .iter()
        .map(|(name, _)| format!("--contract {}", shell_word(base_name(name))))
        .collect();
    if let Some(map) = r.map.as_deref().filter(|m| !m.is_empty()) {
        args.push(format!("--map {}", shell_word(map)));
    }
    // The trace's file is not known here, only its id.
    for (id, _) in &r.traces {
        args.push(format!("--trace {}=TRACE_FILE", shell_word(id)));
    }
    args
}

/// A file's name without its folder or URL (and without a URL's query). A split model is named
/// by its first shard (`NAME-00001-of-00003.gguf (+2 more shards)`), which the CLI opens whole.
fn base_name(file: &str) -> &str {
    let file = file.split(" (+").next().unwrap_or(file);
    let file = file.split(['?', '#']).next().unwrap_or(file);
    file.rsplit(['/', '\\']).next().unwrap_or(file)
}

/// `word` as one shell word: as it is when it holds only safe characters, else single-quoted.
fn shell_word(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "._-+,:=@/%".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// What a report is judged by: contracts, how their path names map to paths, and imported
/// traces as extra paths. A run's and `parallax check`'s alike.
#[derive(Debug, Clone)]
pub struct Judging {
    pub contracts: Vec<Contract>,
    /// No contract was named: the embedded defaults, and for a run over two or more files the
    /// files contract too.
    pub defaults: bool,
    pub mapping: PathMapping,
    pub traces: Vec<(String, Trace)>,
}

impl Judging {
    /// From contract texts as (name, text) (none: the embedded defaults), a mapping spec
    /// (`NAME=PATH,…` over `apr=f32,gguf=q8`) and traces as (id, text).
    pub fn from_texts(
        contracts: &[(String, String)],
        map: Option<&str>,
        traces: &[(String, String)],
    ) -> Result<Judging, SpecError> {
        let defaults = contracts.is_empty();
        let contracts = if defaults {
            parallax_judge::default_contracts()
        } else {
            contracts
                .iter()
                .map(|(name, text)| {
                    Contract::from_yaml_str(text).map_err(|e| SpecError::Contract {
                        name: name.clone(),
                        message: e.to_string(),
                    })
                })
                .collect::<Result<_, _>>()?
        };
        let mapping = match map.map(str::trim).filter(|m| !m.is_empty()) {
            Some(spec) => {
                PathMapping::parse(spec).map_err(|message| SpecError::Mapping { message })?
            }
            None => PathMapping::default(),
        };
        let traces = traces
            .iter()
            .map(|(id, text)| {
                if id.trim().is_empty() {
                    return Err(SpecError::TraceId { given: format!("={id}") });
                }
                parallax_judge::parse_trace(text)
                    .map(|t| (id.clone(), t))
                    .map_err(|e| SpecError::Trace { id: id.clone(), message: e.to_string() })
            })
            .collect::<Result<_, _>>()?;
        Ok(Judging { contracts, defaults, mapping, traces })
    }

    /// Judge `report`, store the verdicts in it, and say whether every test passed.
    pub fn judge(&self, report: &mut Report) -> bool {
        let traces: Vec<(&str, &Trace)> =
            self.traces.iter().map(|(id, t)| (id.as_str(), t)).collect();
        let mut contracts = self.contracts.clone();
        let mut mapping = self.mapping.clone();
        if report.files.len() >= 2 {
            if self.defaults {
                contracts.push(parallax_judge::contract::files_contract());
            }
            let (file1, file2) = parallax_judge::contract::file_paths(&report.reference);
            for (name, path) in [("file1", file1), ("file2", file2)] {
                if mapping.resolve(name) == name {
                    mapping = mapping.with(name, &path);
                }
            }
        }
        let verdicts: Verdicts =
            parallax_judge::evaluate_with_traces(report, &traces, &contracts, &mapping);
        let passed = verdicts.passed();
        report.verdicts = Some(verdicts);
        passed
    }
}

/// Token ids as a user types them: separated by commas and/or spaces; empty text is none.
pub fn parse_tokens(text: &str) -> Result<Vec<u32>, SpecError> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<u32>().map_err(|_| SpecError::Tokens {
                message: format!("`{t}` is not a token id (a whole number from 0)"),
            })
        })
        .collect()
}

/// A thread count as a user types it (the form's field, `?threads=N`): empty is none (the front
/// end's default), else a whole number above 0.
pub fn parse_threads(text: &str) -> Result<Option<usize>, SpecError> {
    match text.trim() {
        "" => Ok(None),
        given => given.parse::<usize>().ok().filter(|&n| n > 0).map(Some).ok_or(SpecError::Threads),
    }
}

/// A memory budget as a user types it (`1.5G`, `800M`, `4096`).
pub fn parse_memory_budget(text: &str) -> Result<u64, SpecError> {
    parallax_model::parse_bytes(text).map_err(|message| SpecError::MemoryBudget { message })
}

/// The page's run form, field by field, as the DOM hands them over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormValues {
    pub prompt: String,
    pub tokens: String,
    /// Comma-separated path ids.
    pub paths: String,
    /// The "GPU" box: adds the `gpu` path.
    pub gpu: bool,
    pub scope: String,
    pub mode: String,
    /// Faults separated by commas or spaces.
    pub faults: String,
    pub hash: bool,
    /// Empty: the default.
    pub max_tokens: String,
    /// Empty: the page's default.
    pub memory_budget: String,
    /// The "Compare with…" slot: the other file's URL or name; empty: one file.
    pub against: String,
    /// The reference path's id; empty: the first path on the first file.
    pub reference: String,
    /// Threads for the run's matmuls; empty: the page's default.
    pub threads: String,
}

impl RunRequest {
    /// The request the page's form describes; `default_budget` applies when the budget field is
    /// empty. Contract texts are added by the page once read.
    pub fn from_form(form: &FormValues, default_budget: u64) -> Result<RunRequest, SpecError> {
        let tokens = parse_tokens(&form.tokens)?;
        let max_tokens = match form.max_tokens.trim() {
            "" => None,
            given => match given.parse::<usize>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(SpecError::MaxTokens { given: given.to_string() }),
            },
        };
        let memory_budget_bytes = match form.memory_budget.trim() {
            "" => default_budget,
            given => parse_memory_budget(given)?,
        };
        let threads = parse_threads(&form.threads)?;
        let mut paths: Vec<String> = form.paths.split(',').map(|p| p.trim().to_string()).collect();
        if form.gpu {
            paths.push("gpu".into());
        }
        Ok(RunRequest {
            prompt: Some(form.prompt.clone()).filter(|p| !p.is_empty()),
            tokens: Some(tokens).filter(|t| !t.is_empty()),
            paths,
            against: Some(form.against.trim().to_string())
                .filter(|a| !a.is_empty())
                .into_iter()
                .collect(),
            reference: Some(form.reference.trim().to_string()).filter(|r| !r.is_empty()),
            logits: String::new(),
            scope: form.scope.trim().to_string(),
            mode: form.mode.trim().to_string(),
            faults: form
                .faults
                .split([',', ' '])
                .filter(|f| !f.is_empty())
                .map(str::to_string)
                .collect(),
            sha256: form.hash,
            contracts: Vec::new(),
            map: None,
            traces: Vec::new(),
            max_tokens,
            memory_budget_bytes: Some(memory_budget_bytes),
            threads,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> RunRequest {
        RunRequest {
            prompt: Some("What is 2+2?".into()),
            paths: vec!["f32".into(), "q8".into()],
            ..Default::default()
        }
    }

    fn refused(r: RunRequest) -> String {
        RunSpec::from_request(&r).unwrap_err().to_string()
    }

    #[test]
    fn a_plain_request_gets_the_defaults() {
        let spec = RunSpec::from_request(&request()).unwrap();
        assert_eq!(spec.paths, vec![PathKind::F32, PathKind::Q8]);
        assert_eq!((spec.scope, spec.mode), (Scope::All, Mode::Free));
        assert_eq!(spec.max_tokens, DEFAULT_MAX_TOKENS);
        assert_eq!(spec.judging.contracts.len(), parallax_judge::default_contracts().len());
        let opts = spec.options();
        assert_eq!(opts.paths, spec.paths);
        assert!(opts.faults.is_empty());
    }

    /// The command a report carries names every setting that changes the report, the files by
    /// their last path segment (quoted when a shell would split them) and the prompt as ids.
    #[test]
    fn the_reproduce_command_names_every_setting_that_changes_the_report() {
        let spec = RunSpec::from_request(&request()).unwrap();
        assert_eq!(
            spec.reproduce(&["/models/qwen.gguf"], &[3838, 374]),
            "parallax run -m qwen.gguf --tokens 3838,374 --paths f32,q8 --no-hash"
        );
        let spec = RunSpec::from_request(&RunRequest {
            paths: vec!["q8".into()],
            against: vec!["b.gguf".into()],
            reference: Some("q8@2".into()),
            scope: "last".into(),
            mode: "replay".into(),
            logits: "last".into(),
            faults: vec!["q4k-scales@1:ffn_gate".into()],
            contracts: vec![(
                "contracts/my contract.yaml".into(),
                include_str!("../../judge/contracts/parallax-default-v1.yaml").into(),
            )],
            map: Some("apr=q8".into()),
            sha256: true,
            ..request()
        });
        // (The fault is on the q8 path of file 1, which is not the reference here.)
        let spec = spec.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            spec.reproduce(&["https://h.co/a-00001-of-00002.gguf?download=true (+1 more shards)", "C:\\m\\b.gguf"], &[1]),
            "parallax run -m a-00001-of-00002.gguf --against b.gguf --tokens 1 --paths q8 --reference q8@2 \
             --scope last --mode replay --logits last --inject q4k-scales@1:ffn_gate \
             --contract 'my contract.yaml' --map apr=q8"
        );
    }

    #[test]
    fn every_field_is_parsed() {
        let spec = RunSpec::from_request(&RunRequest {
            scope: "last".into(),
            mode: "replay".into(),
            faults: vec!["q4k-scales@1:ffn_gate".into()],
            max_tokens: Some(7),
            memory_budget_bytes: Some(1 << 20),
            threads: Some(2),
            map: Some("apr=q8".into()),
            ..request()
        })
        .unwrap();
        assert_eq!((spec.scope, spec.mode), (Scope::Last, Mode::Replay));
        assert_eq!(spec.faults.len(), 1);
        assert_eq!(spec.faults[0].layer, 1);
        assert_eq!((spec.max_tokens, spec.memory_budget_bytes), (7, Some(1 << 20)));
        assert_eq!(spec.judging.mapping.resolve("apr"), "q8");
        assert_eq!(spec.threads, Some(2));
    }

    /// The sentences are the product: both front ends print them as they are.
    #[test]
    fn bad_requests_are_refused_with_their_sentence() {
        let cases = [
            (
                RunRequest { scope: "bogus".into(), ..request() },
                "unknown scope `bogus`; the scopes are all and last",
            ),
            (
                RunRequest { mode: "fast".into(), ..request() },
                "unknown mode `fast`; the modes are free and replay",
            ),
            (
                RunRequest { paths: vec!["f32".into(), "f16".into()], ..request() },
                "unknown path `f16`; the paths are f32, q8 and gpu",
            ),
            (
                RunRequest { paths: vec!["q8".into(), "q8".into()], ..request() },
                "the path `q8` is named twice; name each path once, e.g. f32,q8",
            ),
            (
                RunRequest { paths: vec![" ".into()], ..request() },
                "name at least one path, e.g. f32,q8",
            ),
            (RunRequest { prompt: None, ..request() }, "give a prompt or token ids"),
            (
                RunRequest {
                    paths: vec!["f32".into()],
                    faults: vec!["drop-bias@1".into()],
                    ..request()
                },
                "faults break the q8 path, which is not among the paths",
            ),
            (
                RunRequest { max_tokens: Some(0), ..request() },
                "token limit: `0` is not a whole number above 0",
            ),
            (RunRequest { threads: Some(0), ..request() }, "threads: give a whole number above 0"),
        ];
        for (r, sentence) in cases {
            assert_eq!(refused(r), sentence);
        }
        assert!(refused(RunRequest { faults: vec!["melt@1".into()], ..request() })
            .starts_with("fault `melt` is not a fault kind"));
        assert!(refused(RunRequest {
            contracts: vec![("mine.yaml".into(), "metadata: [".into())],
            ..request()
        })
        .starts_with("contract mine.yaml: "));
        assert!(refused(RunRequest { map: Some("apr".into()), ..request() })
            .contains("write NAME=PATH"));
    }

    #[test]
    fn a_second_file_adds_lanes_and_a_reference_may_be_any_of_them() {
        let two = |paths: &[&str], reference: Option<&str>| RunRequest {
            paths: paths.iter().map(|p| p.to_string()).collect(),
            against: vec!["b.gguf".into()],
            reference: reference.map(String::from),
            ..request()
        };
        let spec = RunSpec::from_request(&two(&["q8"], None)).unwrap();
        assert_eq!(spec.n_files, 2);
        let lanes = spec.options().lanes(spec.n_files).unwrap();
        assert_eq!(lanes.iter().map(Lane::id).collect::<Vec<_>>(), ["q8", "q8@2"]);
        let spec = RunSpec::from_request(&two(&["f32", "q8"], Some("q8@2"))).unwrap();
        let lanes = spec.options().lanes(spec.n_files).unwrap();
        assert_eq!(lanes.iter().map(Lane::id).collect::<Vec<_>>(), ["q8@2", "f32", "q8", "f32@2"]);
        assert_eq!(
            refused(two(&["q8"], Some("f32"))),
            "the reference `f32` is not a path of this run; its paths are q8, q8@2"
        );
        assert_eq!(
            refused(two(&["q8"], Some("q8@3"))),
            "the reference `q8@3` is not a path of this run; its paths are q8, q8@2"
        );
        assert_eq!(
            refused(RunRequest { faults: vec!["drop-bias@0".into()], ..two(&["q8", "f32"], None) }),
            "faults break the q8 path, which is the reference here; pick another reference"
        );
        assert_eq!(
            refused(RunRequest { logits: "first".into(), ..request() }),
            "unknown logits positions `first`; they are all and last"
        );
        let spec = RunSpec::from_request(&RunRequest { logits: "last".into(), ..request() });
        assert_eq!(spec.unwrap().logits, LogitsPositions::Last);
    }

    #[test]
    fn the_form_becomes_a_request() {
        let form = FormValues {
            prompt: "Hi".into(),
            tokens: "".into(),
            paths: "f32,q8".into(),
            gpu: true,
            scope: "all".into(),
            mode: "free".into(),
            faults: "q4k-scales@1:ffn_gate, drop-bias@0".into(),
            hash: true,
            max_tokens: " 64 ".into(),
            memory_budget: "".into(),
            against: " https://example.org/b.gguf ".into(),
            reference: "".into(),
            threads: " 4 ".into(),
        };
        let r = RunRequest::from_form(&form, 3 << 29).unwrap();
        assert_eq!(r.threads, Some(4));
        assert_eq!(r.paths, ["f32", "q8", "gpu"]);
        assert_eq!(
            (r.against.as_slice(), r.reference.as_deref()),
            (&["https://example.org/b.gguf".to_string()][..], None)
        );
        assert_eq!(r.faults, ["q4k-scales@1:ffn_gate", "drop-bias@0"]);
        assert_eq!(
            (r.max_tokens, r.memory_budget_bytes, r.sha256),
            (Some(64), Some(3 << 29), true)
        );
        assert_eq!(r.tokens, None);
        // The worker gets the request as JSON and reads it back unchanged.
        let back: RunRequest = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        let spec = RunSpec::from_request(&r).unwrap();
        assert_eq!(spec.faults.len(), 2);

        let bad = |f: FormValues| RunRequest::from_form(&f, 1).unwrap_err().to_string();
        assert_eq!(
            bad(FormValues { tokens: "1, x".into(), ..form.clone() }),
            "token ids: `x` is not a token id (a whole number from 0)"
        );
        assert_eq!(
            bad(FormValues { max_tokens: "-3".into(), ..form.clone() }),
            "token limit: `-3` is not a whole number above 0"
        );
        assert!(bad(FormValues { memory_budget: "lots".into(), ..form.clone() })
            .starts_with("memory budget: `lots` is not a size"));
        for threads in ["0", "two", "-1", "1.5"] {
            let why = bad(FormValues { threads: threads.into(), ..form.clone() });
            assert_eq!(why, "threads: give a whole number above 0", "{threads}");
        }
        let unset = RunRequest::from_form(&FormValues { threads: "".into(), ..form.clone() }, 1);
        assert_eq!(unset.unwrap().threads, None, "empty: the page's default");
        let tokens =
            RunRequest::from_form(&FormValues { tokens: "3838 374,220".into(), ..form }, 1)
                .unwrap();
        assert_eq!(tokens.tokens, Some(vec![3838, 374, 220]));
        assert_eq!(parse_tokens(" \n ").unwrap(), Vec::<u32>::new());
    }
}
