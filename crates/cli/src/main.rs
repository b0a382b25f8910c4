//! `parallax`: the native command line over the same engine the web page runs.
//!
//! Owns argument parsing, terminal output and exit codes (0 success, 1 contract failure,
//! 2 input error). Knows nothing of file formats or kernels beyond what `parallax-model` exposes.

use std::io::{self, IsTerminal, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use parallax_model::{human_bytes, Model, ModelSummary};
use parallax_source::{FileSource, Shards};

/// `println!` that survives a closed pipe (`parallax run … | head`): the lines nobody reads are
/// dropped, and the run still writes its files and exits with its verdict. Other write errors
/// are said on stderr.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                eprintln!("warning: cannot write to stdout: {e}");
            }
        }
    }};
}

mod diff;
mod run;

#[derive(Parser)]
#[command(
    name = "parallax",
    version,
    about = "Shows where two forward paths of one quantized LLM part ways."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Metadata, architecture, tensor table and type histogram of a GGUF or APR file.
    Inspect {
        /// The model file (GGUF v2/v3 or APR v2).
        #[arg(short, long)]
        model: PathBuf,
        /// Print the summary as JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Show every element of long metadata arrays (tokenizer vocabularies) instead of a preview.
        #[arg(long)]
        full: bool,
    },
    /// Write rows of one tensor, dequantized, as raw little-endian f32 to stdout.
    Dump {
        #[arg(short, long)]
        model: PathBuf,
        /// Tensor name as stored in the file, or its canonical GGUF name (`blk.0.ffn_gate.weight`).
        #[arg(short, long)]
        tensor: String,
        /// Rows A..B (half-open; a row is one ne1 index holding ne0 values). Default: all rows.
        #[arg(long, value_parser = parse_rows)]
        rows: Option<Range<u64>>,
    },
    /// Run the model along several paths with the same probes and print where they part ways.
    Run(Box<RunArgs>),
    /// Re-judge a saved report against contracts, without the model. Exit 0 pass, 1 fail.
    Check {
        /// A report written by `parallax run --json`.
        report: PathBuf,
        #[command(flatten)]
        judge: JudgeArgs,
        /// Write the report with the new verdicts as standalone HTML.
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// Print the token ids and pieces the model's tokenizer makes of a text.
    Tokenize {
        #[arg(short, long)]
        model: PathBuf,
        /// The text to tokenize.
        #[arg(short, long)]
        prompt: String,
        /// Do not add BOS/EOS even when the model asks for them.
        #[arg(long)]
        no_special: bool,
    },
    /// Compare the weights of files of one network tensor by tensor, dequantized (a quantized file
    /// against its F32 source, a GGUF against its APR import). Exit 2 if they are not one network.
    Diff(diff::DiffArgs),
}

/// `--kernels`: a [`parallax_cpu::Level`], or the CPU's widest.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Kernels {
    Auto,
    Avx512,
    Avx2,
    Scalar,
}

impl Kernels {
    fn level(self) -> Option<parallax_cpu::Level> {
        match self {
            Kernels::Auto => None,
            Kernels::Avx512 => Some(parallax_cpu::Level::Avx512),
            Kernels::Avx2 => Some(parallax_cpu::Level::Avx2),
            Kernels::Scalar => Some(parallax_cpu::Level::Scalar),
        }
    }
}

#[derive(clap::Args)]
struct RunArgs {
    #[arg(short, long)]
    model: PathBuf,
    /// Compare the model with another file of it (another quantization, a conversion; GGUF or
    /// APR); repeatable. Every path runs on each file: `q8@2` is q8 on the first of them.
    #[arg(long, value_name = "FILE")]
    against: Vec<PathBuf>,
    /// The path the others are compared with (default: the first path on the model), e.g.
    /// `--paths q8 --against B --reference q8` compares q8@2 with q8, as llama.cpp's KLD does.
    #[arg(long, value_name = "PATH")]
    reference: Option<String>,
    /// The prompt positions whose logits are computed: `all` (per-position KL divergence,
    /// top-1 agreement and perplexity over the prompt) or `last` (faster on long prompts).
    #[arg(long, default_value = "all")]
    logits: String,
    /// The prompt text (tokenized with the model's own tokenizer, BOS as the model asks).
    #[arg(
        short,
        long,
        conflicts_with_all = ["tokens", "text", "builtin_text"],
        required_unless_present_any = ["tokens", "text", "builtin_text"]
    )]
    prompt: Option<String>,
    /// The prompt read from a UTF-8 text file (up to --max-tokens tokens), e.g. a passage to
    /// measure KL divergence over.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["tokens", "builtin_text"])]
    text: Option<PathBuf>,
    /// The built-in evaluation text as the prompt: 304 tokens of plain prose on Qwen2.5 (the
    /// text of llama.cpp's KLD golden), for per-position KL divergence across files.
    #[arg(long, conflicts_with = "tokens")]
    builtin_text: bool,
    /// Token ids instead of a prompt, comma separated: `--tokens 3838,374,220`.
    #[arg(long, value_delimiter = ',')]
    tokens: Option<Vec<u32>>,
    /// Paths to run, the first being the reference: f32 (dequantized weights, f32 activations),
    /// q8 (activations quantized per block as llama.cpp does, fused integer dots) and gpu (the
    /// matmuls as WGSL kernels through wgpu; dropped with a warning when no adapter exists).
    #[arg(long, value_delimiter = ',', default_value = "f32,q8")]
    paths: Vec<String>,
    /// Token scope of the per-site statistics: `all` prompt positions or the `last` one.
    #[arg(long, default_value = "all")]
    scope: String,
    /// `free`: each path keeps its own residual stream; `replay`: every layer of every path
    /// starts from the reference's residual stream, so each layer shows its own divergence.
    #[arg(long, default_value = "free")]
    mode: String,
    /// Write the report (schema parallax.report/1) to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write a standalone HTML report (charts, no script, opens offline) to this file.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Skip hashing the model file (the report's sha256 is then null).
    #[arg(long)]
    no_hash: bool,
    /// Read the model files with `pread` instead of mapping each tensor's pages. Mapping
    /// saves copying the weights out of the page cache, but a file truncated by another
    /// program while a layer computes ends the process (as in llama.cpp, whose flag this is).
    #[arg(long)]
    no_mmap: bool,
    /// The widest x86 vector kernels the run may use: `auto` (the CPU's widest), `avx512`,
    /// `avx2` or `scalar` (the reference code). The report is the same bytes at every level but
    /// for its `kernels:` note — run it twice to see that, or what the wide kernels buy.
    #[arg(long, value_enum, default_value = "auto")]
    kernels: Kernels,
    /// Refuse prompts longer than this many tokens.
    #[arg(long, default_value_t = 512)]
    max_tokens: usize,
    /// Refuse to load a layer that would need more memory than this (weights plus activations,
    /// estimated before it is read), e.g. 1.5G, 800M. Default: no limit.
    #[arg(long, value_name = "SIZE")]
    memory_budget: Option<String>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// Break one op of the q8 path on purpose, to see the contracts catch it:
    /// KIND@LAYER[:SITE] with KIND one of q4k-scales, drop-bias, swap-gate-up, scope-mismatch.
    #[arg(long = "inject", value_name = "KIND@LAYER[:SITE]")]
    inject: Vec<String>,
    #[command(flatten)]
    judge: JudgeArgs,
}

#[derive(clap::Args)]
pub struct JudgeArgs {
    /// A contract YAML (pv schema) to judge by; repeatable. Default: Parallax's own contract and
    /// the restated upstream apr-vs-gguf-forward-parity-v1.
    #[arg(long = "contract", value_name = "FILE")]
    contracts: Vec<PathBuf>,
    /// How contract path names map to Parallax's paths. Default: apr=f32,gguf=q8.
    #[arg(long, value_name = "NAME=PATH,…")]
    map: Option<String>,
    /// An external trace to judge as an extra path, ID=FILE (upstream `apr trace --payload`
    /// text or llama.cpp `llama-eval-callback` output); repeatable.
    #[arg(long = "trace", value_name = "ID=FILE")]
    traces: Vec<String>,
}

/// What a successful command concluded: exit 0, or exit 1 when a contract failed.
pub enum Verdict {
    Pass,
    Fail,
}

fn parse_rows(s: &str) -> Result<Range<u64>, String> {
    let (a, b) =
        s.split_once("..").ok_or_else(|| format!("expected A..B, e.g. 0..16, got `{s}`"))?;
    let a: u64 = a.trim().parse().map_err(|_| format!("`{a}` is not a row number"))?;
    let b: u64 = b.trim().parse().map_err(|_| format!("`{b}` is not a row number"))?;
    if b <= a {
        return Err(format!("the range {a}..{b} is empty; the end must be greater than the start"));
    }
    Ok(a..b)
}

/// A run allocates each layer's activations and frees them at the layer's end. glibc serves
/// blocks over 128 KiB (a layer's are megabytes) with fresh `mmap`s and returns them on `free`,
/// so every layer paid for page faults and zeroing again: a third of a 7-token run's time, in
/// the kernel. Blocks up to 32 MiB (glibc's ceiling for the setting) now come from the heap,
/// and a freed heap top is kept for the next layer instead of being trimmed. The peak memory
/// grows a little, as freed blocks stay with the process: 7–35 MB in `bench/peak_memory.py`'s
/// runs (session 14), still flat in the number of layers.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets allocator parameters; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
    }
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect { model, json, full } => {
            inspect(&model, json, full).map(|_| Verdict::Pass)
        }
        Command::Dump { model, tensor, rows } => dump(&model, &tensor, rows).map(|_| Verdict::Pass),
        Command::Run(args) => run::run(*args),
        Command::Check { report, judge, html } => run::check(&report, &judge, html.as_deref()),
        Command::Tokenize { model, prompt, no_special } => {
            tokenize(&model, &prompt, !no_special).map(|_| Verdict::Pass)
        }
        Command::Diff(args) => diff::diff(&args).map(|_| Verdict::Pass),
    };
    match result {
        Ok(Verdict::Pass) => ExitCode::SUCCESS,
        Ok(Verdict::Fail) => ExitCode::from(1),
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn tokenize(path: &Path, prompt: &str, add_special: bool) -> Result<(), String> {
    let model = open(path)?;
    let tokenizer = parallax_engine::tokenizer_for(&model).map_err(|e| e.to_string())?;
    let ids = tokenizer.encode(prompt, add_special);
    say!("{} tokens: {:?}", ids.len(), ids);
    for id in ids {
        say!("{id:>8}  {:?}", tokenizer.token_text(id).unwrap_or("?"));
    }
    Ok(())
}

fn open(path: &Path) -> Result<Model<Shards<FileSource>>, String> {
    open_with(path, true, |file| file)
}

/// The model at `path`, its file read through `wrap` (e.g. a read-ahead), its tensors mapped
/// when `map` ([`FileSource`]). A shard of a split GGUF (`NAME-00001-of-00003.gguf`) opens with
/// all its shards, as one model.
fn open_with<S: parallax_source::ByteSource>(
    path: &std::path::Path,
    map: bool,
    wrap: impl FnOnce(Shards<FileSource>) -> S,
) -> Result<Model<S>, String> {
    let source = open_file(path, map)?;
    Model::open(wrap(source)).map_err(|e| format!("{}: {e}", path.display()))
}

/// The file at `path` as a source: the shards of a split GGUF end to end, in order, when its
/// name says it is one (`NAME-0000K-of-0000N.gguf`, as llama.cpp's `gguf-split` names them).
pub(crate) fn open_file(path: &Path, map: bool) -> Result<Shards<FileSource>, String> {
    let mut files = Vec::new();
    for p in shard_paths(path) {
        let file = FileSource::open(&p).map_err(|e| format!("cannot open {}: {e}", p.display()))?;
        files.push(if map { file } else { file.without_mapping() });
    }
    Ok(Shards::new(files).expect("at least the path itself"))
}

/// `path`, or every shard of the split GGUF whose shard `path` is.
fn shard_paths(path: &Path) -> Vec<std::path::PathBuf> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    match parallax_model::shard_file_names(name) {
        Some(names) => names.iter().map(|n| path.with_file_name(n)).collect(),
        None => vec![path.to_path_buf()],
    }
}

fn inspect(path: &Path, json: bool, full: bool) -> Result<(), String> {
    let model = open(path)?;
    let summary = if full { model.summary_full() } else { model.summary() };
    let mut out = io::stdout().lock();
    let written = if json {
        serde_json::to_writer_pretty(&mut out, &summary)
            .map_err(io::Error::other)
            .and_then(|_| writeln!(out))
    } else {
        print_summary(&mut out, &summary)
    };
    match written {
        Ok(()) => Ok(()),
        // `parallax inspect … | head` closes the pipe early: not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(format!("cannot write to stdout: {e}")),
    }
}

fn print_summary(out: &mut impl Write, s: &ModelSummary) -> io::Result<()> {
    writeln!(
        out,
        "{}  ({}, {}, {} tensors)",
        s.file_name,
        s.format,
        human_bytes(s.file_bytes),
        s.tensors.len()
    )?;
    writeln!(out)?;
    writeln!(out, "architecture  {}", s.architecture.as_deref().unwrap_or("unknown"))?;
    if let Some(h) = &s.hyperparameters {
        for (k, v) in h.facts() {
            writeln!(out, "{k:<13} {v}")?;
        }
    }
    writeln!(out)?;
    writeln!(out, "tensor types")?;
    for t in &s.type_histogram {
        writeln!(
            out,
            "  {:<8} {:>5} tensors {:>14} elements {:>10}",
            t.ty,
            t.tensors,
            t.elements,
            human_bytes(t.bytes)
        )?;
    }
    writeln!(out)?;
    writeln!(out, "metadata ({} keys)", s.metadata.len())?;
    let key_w = s.metadata.iter().map(|m| m.key.len()).max().unwrap_or(0).min(48);
    for m in &s.metadata {
        writeln!(out, "  {:<key_w$}  {:<12} {}", m.key, m.value_type, m.value)?;
    }
    writeln!(out)?;
    let name_w = s.tensors.iter().map(|t| t.name.len()).max().unwrap_or(4).max(4);
    // HF-named files (APR from `apr import`) get a column with the canonical GGUF name.
    let show_role = s.tensors.iter().any(|t| t.role.as_deref().is_some_and(|r| r != t.name));
    let role_w = if show_role {
        s.tensors.iter().filter_map(|t| t.role.as_ref()).map(|r| r.len()).max().unwrap_or(4)
    } else {
        0
    };
    let role = |r: &str| if show_role { format!("{r:<role_w$}  ") } else { String::new() };
    writeln!(
        out,
        "{:<name_w$}  {}{:<7} {:<22} {:>12} {:>12}",
        "name",
        role("role"),
        "type",
        "shape (ne0, ne1, …)",
        "offset",
        "bytes"
    )?;
    for t in &s.tensors {
        let shape = t.ne.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(" × ");
        let r = role(t.role.as_deref().unwrap_or("—"));
        writeln!(
            out,
            "{:<name_w$}  {r}{:<7} {:<22} {:>12} {:>12}",
            t.name, t.ty, shape, t.offset, t.bytes
        )?;
    }
    Ok(())
}

fn dump(path: &Path, name: &str, rows: Option<Range<u64>>) -> Result<(), String> {
    let model = open(path)?;
    let tensor = model.tensor(name).ok_or_else(|| {
        let similar: Vec<&str> = model
            .tensors()
            .iter()
            .map(|t| t.name.as_str())
            .filter(|n| n.contains(name) || name.contains(*n))
            .take(5)
            .collect();
        if similar.is_empty() {
            format!(
                "no tensor named `{name}` (see `parallax inspect -m {}` for the list)",
                path.display()
            )
        } else {
            format!("no tensor named `{name}`; similar: {}", similar.join(", "))
        }
    })?;
    let n_rows = tensor.n_rows();
    let rows = rows.unwrap_or(0..n_rows);
    if rows.end > n_rows {
        return Err(format!(
            "`{}` has {n_rows} rows (0..{n_rows}); asked for {}..{}",
            tensor.name, rows.start, rows.end
        ));
    }
    let stdout = io::stdout();
    if stdout.is_terminal() {
        return Err(
            "refusing to write binary f32 data to a terminal; redirect it, e.g. `> rows.f32`"
                .into(),
        );
    }
    let mut out = io::BufWriter::new(stdout.lock());
    // Bounded memory: a few MiB of dequantized values at a time, whatever the tensor's size.
    let row_values = tensor.row_values().max(1);
    let chunk = ((4usize << 20) / (row_values * 4)).max(1) as u64;
    let mut start = rows.start;
    while start < rows.end {
        let end = (start + chunk).min(rows.end);
        let values = model.read_f32_rows(tensor, start..end).map_err(|e| e.to_string())?;
        let mut bytes = Vec::with_capacity(values.len() * 4);
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        match out.write_all(&bytes) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            r => r.map_err(|e| format!("cannot write to stdout: {e}"))?,
        }
        start = end;
    }
    match out.flush() {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(format!("cannot write to stdout: {e}"))
        }
        _ => Ok(()),
    }
}
