//! `parallax run`: the engine on the terminal — progress on stderr, a per-layer table on stdout,
//! the report as JSON on request.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};

use indicatif::{ProgressBar, ProgressStyle};
use parallax_report::{Report, Scope};
use parallax_session::{Judging, ProgressUpdate, RunRequest, RunSpec, SpecError};
use parallax_source::{BackgroundReadAhead, ByteSource, FileSource, Shards};

use crate::{JudgeArgs, RunArgs, Verdict};

/// Contract and trace files read into (name, text) pairs; the session parses them.
fn judging_texts(args: &JudgeArgs) -> Result<JudgingTexts, String> {
    let contracts = args
        .contracts
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .map(|text| (p.display().to_string(), text))
                .map_err(|e| format!("cannot read contract {}: {e}", p.display()))
        })
        .collect::<Result<_, _>>()?;
    let traces = args
        .traces
        .iter()
        .map(|spec| {
            let (id, file) = spec
                .split_once('=')
                .ok_or_else(|| SpecError::TraceId { given: spec.clone() }.to_string())?;
            std::fs::read_to_string(file)
                .map(|text| (id.to_string(), text))
                .map_err(|e| format!("cannot read trace {file}: {e}"))
        })
        .collect::<Result<_, String>>()?;
    Ok(JudgingTexts { contracts, traces, map: args.map.clone() })
}

struct JudgingTexts {
    contracts: Vec<(String, String)>,
    traces: Vec<(String, String)>,
    map: Option<String>,
}

/// Judge `report`, store the verdicts in it, print them, and say pass or fail.
fn judge(report: &mut Report, judging: &Judging) -> Verdict {
    let passed = judging.judge(report);
    say!();
    if let Some(verdicts) = &report.verdicts {
        for line in parallax_report::text::verdict_lines(verdicts) {
            say!("{line}");
        }
    }
    if passed {
        Verdict::Pass
    } else {
        Verdict::Fail
    }
}

pub fn check(
    path: &std::path::Path,
    args: &JudgeArgs,
    html: Option<&std::path::Path>,
) -> Result<Verdict, String> {
    let texts = judging_texts(args)?;
    let judging = Judging::from_texts(&texts.contracts, texts.map.as_deref(), &texts.traces)
        .map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut report = Report::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    say!(
        "{} ({}, {} layers) · {} tokens · paths {} · scope {} · mode {:?}",
        report.model.file_name,
        report.model.arch,
        report.model.n_layers,
        report.prompt.tokens.len(),
        report.paths.join(","),
        report.scope.as_str(),
        report.mode
    );
    let verdict = judge(&mut report, &judging);
    if let Some(out) = html {
        std::fs::write(out, parallax_report::html::render_standalone(&report))
            .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    }
    Ok(verdict)
}

/// The run request the arguments describe: the same one the page posts to its worker.
fn request(args: &RunArgs) -> Result<RunRequest, String> {
    let texts = judging_texts(&args.judge)?;
    let memory_budget_bytes = args
        .memory_budget
        .as_deref()
        .map(parallax_session::parse_memory_budget)
        .transpose()
        .map_err(|e| e.to_string())?;
    let prompt = match (&args.text, args.builtin_text) {
        (Some(path), _) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the text {}: {e}", path.display()))?,
        ),
        (None, true) => Some(parallax_engine::BUILTIN_TEXT.to_string()),
        (None, false) => args.prompt.clone(),
    };
    Ok(RunRequest {
        prompt,
        tokens: args.tokens.clone(),
        paths: args.paths.clone(),
        against: args.against.iter().map(|p| p.display().to_string()).collect(),
        reference: args.reference.clone(),
        logits: args.logits.clone(),
        scope: args.scope.clone(),
        mode: args.mode.clone(),
        faults: args.inject.clone(),
        sha256: !args.no_hash,
        contracts: texts.contracts,
        map: texts.map,
        traces: texts.traces,
        max_tokens: Some(args.max_tokens),
        memory_budget_bytes,
        threads: args.threads,
    })
}

pub fn run(args: RunArgs) -> Result<Verdict, String> {
    // Before any kernel runs: the dispatchers ask on every call.
    if let Some(level) = args.kernels.level() {
        parallax_cpu::cap(level).map_err(|e| format!("--kernels {}: {e}", level.name()))?;
    }
    let spec = RunSpec::from_request(&request(&args)?).map_err(|e| e.to_string())?;
    // Read before the run, so a malformed one is refused before any work.
    let pinned_date = source_date_epoch()?;
    // The run itself executes inside the pool: the engine's parallel loops then start on a pool
    // thread, instead of handing every matmul from the main thread to the pool and back (a
    // wake-up per matmul, a few percent of a 1-thread run). 0 = rayon's default (all cores).
    let threads = spec.threads.unwrap_or(0);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| format!("cannot start {threads} threads: {e}"))?;
    // Ctrl-C asks the engine to stop at the next layer (the run then ends with a sentence and
    // writes nothing); a second Ctrl-C ends the process at once.
    static CANCEL: AtomicBool = AtomicBool::new(false);
    let _ = ctrlc::set_handler(|| {
        if CANCEL.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    let bar = progress_bar(
        args.quiet,
        "{spinner} {msg:<22} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    );
    // The hashes start first: they then overlap the headers' parsing too.
    let files: Vec<&std::path::Path> = std::iter::once(args.model.as_path())
        .chain(args.against.iter().map(|p| p.as_path()))
        .collect();
    let hashing = match spec.sha256 {
        true => Some(Hashing::start(&files, !args.no_mmap)?),
        false => None,
    };
    let open =
        |path: &std::path::Path| open_reading_ahead(path, spec.memory_budget_bytes, !args.no_mmap);
    let model = open(&args.model)?;
    let others = args.against.iter().map(|p| open(p)).collect::<Result<Vec<_>, _>>()?;
    // Files that are not one network are refused before a layer is read, naming the first
    // difference (the engine checks again; this names the files as the user gave them).
    for (path, other) in args.against.iter().zip(&others) {
        parallax_model::check_compatible(&model, other).map_err(|e| {
            format!("{} cannot be compared with {}: {e}", path.display(), args.model.display())
        })?;
    }
    let input = spec.input(&model)?;
    let opts = spec.options();

    let cancel = &CANCEL;
    let started = std::time::Instant::now();
    let mut report = pool
        .install(|| {
            parallax_engine::Run::new(&model, &input, &opts)
                .against(&others)
                .progress(|p| {
                    let p = ProgressUpdate::from(p);
                    bar.set_length(p.bytes_total);
                    bar.set_position(p.bytes_read);
                    bar.set_message(p.label());
                })
                .cancel(cancel)
                .run()
        })
        .map_err(|e| match e {
            parallax_engine::EngineError::Cancelled => {
                "the run was cancelled (Ctrl-C); no report was written".to_string()
            }
            e => e.to_string(),
        })?;
    if let Some(hashing) = hashing {
        parallax_session::record_sha256(&mut report, &hashing.finish(&bar)?);
    }
    bar.finish_and_clear();
    if !args.quiet {
        eprintln!(
            "ran {} layers × {} paths in {:.2} s",
            report.layers.len(),
            report.paths.len(),
            started.elapsed().as_secs_f64()
        );
    }
    if let Some(why) = &report.execution.gpu_unavailable {
        eprintln!("warning: {why}");
    }

    let computed_at = pinned_date.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    });
    spec.stamp(&mut report, computed_at, pool.current_num_threads());
    print_table(&report);
    let verdict = judge(&mut report, &spec.judging);
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json() + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if let Some(path) = &args.html {
        std::fs::write(path, parallax_report::html::render_standalone(&report))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(verdict)
}

/// `SOURCE_DATE_EPOCH`, when set: the date to write into the report instead of the clock's (the
/// reproducible-builds convention, so a pipeline can ask for byte-identical reports).
fn source_date_epoch() -> Result<Option<i64>, String> {
    let Ok(text) = std::env::var("SOURCE_DATE_EPOCH") else { return Ok(None) };
    text.trim().parse::<i64>().map(Some).map_err(|_| {
        format!(
            "SOURCE_DATE_EPOCH must be whole seconds since 1970-01-01 UTC (it is `{text}`); \
             unset it to date the report by the clock"
        )
    })
}

fn progress_bar(quiet: bool, template: &str) -> ProgressBar {
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(0) };
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// What the CLI's model files are read through: a [`BackgroundReadAhead`].
type RunSource = BackgroundReadAhead<Shards<FileSource>>;

/// The model for a run, read through a [`BackgroundReadAhead`]: the engine hints each next
/// layer, whose tensors are then mapped (read, with `--no-mmap`) on a second thread while the
/// current layer computes. The window holds one layer's span, at most 256 MiB and at most a
/// quarter of `--memory-budget`.
fn open_reading_ahead(
    path: &std::path::Path,
    memory_budget: Option<u64>,
    map: bool,
) -> Result<parallax_model::Model<RunSource>, String> {
    const MAX_WINDOW: u64 = 256 << 20;
    let window = memory_budget.map_or(MAX_WINDOW, |b| MAX_WINDOW.min(b / 4));
    crate::open_with(path, map, |file| BackgroundReadAhead::new(file, window))
}

/// The sha256 of a run's files, each hashed whole, front to back, on a thread of its own while
/// the run computes ([`parallax_session::sha256_of`]). A local file costs nothing to read twice
/// (its pages are mapped from the page cache), so the page's way — hashing the run's own reads
/// as they pass, in file order, which a run's order defeats for the bytes before its layers —
/// would only put the hash on the run's path: it had doubled a 7-token run's time.
struct Hashing {
    files: Vec<HashingFile>,
}

/// One file's hash: its thread, the bytes it has hashed so far, and the file's length.
struct HashingFile {
    name: String,
    thread: std::thread::JoinHandle<Result<String, String>>,
    done: std::sync::Arc<AtomicU64>,
    len: u64,
}

impl Hashing {
    fn start(paths: &[&std::path::Path], map: bool) -> Result<Hashing, String> {
        let mut files = Vec::new();
        for path in paths {
            let source = crate::open_file(path, map)?;
            let (name, len) = (path.display().to_string(), source.len());
            let done = std::sync::Arc::new(AtomicU64::new(0));
            let told = std::sync::Arc::clone(&done);
            let what = name.clone();
            let thread = std::thread::Builder::new()
                .name("parallax-sha256".into())
                .spawn(move || {
                    parallax_session::sha256_of(&source, |at, _| told.store(at, Relaxed))
                        .map_err(|e| format!("hashing {what}: {e}"))
                })
                .map_err(|e| format!("cannot start a thread to hash {name}: {e}"))?;
            files.push(HashingFile { name, thread, done, len });
        }
        Ok(Hashing { files })
    }

    /// Each file's digest, in order, waiting for the hashes still going (shown on `bar`).
    fn finish(self, bar: &ProgressBar) -> Result<Vec<Option<String>>, String> {
        bar.set_message(parallax_session::Step::Hash.name());
        bar.set_length(self.files.iter().map(|f| f.len).sum());
        while self.files.iter().any(|f| !f.thread.is_finished()) {
            bar.set_position(self.files.iter().map(|f| f.done.load(Relaxed)).sum());
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        self.files
            .into_iter()
            .map(|f| match f.thread.join() {
                Ok(digest) => digest.map(Some),
                Err(_) => Err(format!("hashing {} failed", f.name)),
            })
            .collect()
    }
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) => format!("{v:.digits$}"),
        None => "—".into(),
    }
}

fn print_table(r: &Report) {
    let reference = &r.reference;
    let others: Vec<&String> = r.paths.iter().filter(|p| *p != reference).collect();
    let n_tokens = r.prompt.tokens.len();
    let scope = match r.scope {
        Scope::All => format!("all {n_tokens} tokens"),
        Scope::Last => "the last token".to_string(),
    };
    say!(
        "{} ({}, {} layers) · prompt {} tokens {:?}",
        r.model.file_name,
        r.model.arch,
        r.model.n_layers,
        n_tokens,
        r.prompt.tokens
    );
    say!(
        "statistics over {scope} ({} std) · reference {reference} · mode {:?}",
        r.std_kind,
        r.mode
    );
    if let Some(g) = &r.execution.gpu {
        let binding = g
            .limits
            .get("maxStorageBufferBindingSize")
            .map(|b| format!(", bindings ≤ {} MiB", b >> 20))
            .unwrap_or_default();
        say!("gpu: {} ({}, {}{binding})", g.adapter, g.backend, g.device_type);
    }
    if let Some(site) = r.layers.first().and_then(|l| l.sites.get("ffn_swigl")) {
        if let Some(s) = site.paths.get(reference) {
            say!("each ffn site holds {} elements per path ({} per token)", s.count, site.width);
        }
    }
    for other in &others {
        say!();
        say!("{other} vs {reference}");
        say!(
            "{:>5}  {:>12}  {:>12}  {:>13}  {:<16} {:>8}  flags",
            "layer",
            "swigl σ ratio",
            "gate σ ratio",
            "worst cosine",
            "at site",
            "min SQNR"
        );
        for l in &r.layers {
            let ratio = |site: &str| {
                l.sites.get(site).and_then(|s| s.compare.get(*other)).and_then(|c| c.std_ratio)
            };
            let mut worst: Option<(f64, &str)> = None;
            let mut min_sqnr: Option<f64> = None;
            let mut flags = Vec::new();
            for (name, site) in &l.sites {
                if let Some(c) = site.compare.get(*other) {
                    if let Some(cos) = c.cosine {
                        if worst.is_none_or(|(w, _)| cos < w) {
                            worst = Some((cos, name));
                        }
                    }
                    if let Some(q) = c.sqnr_db {
                        min_sqnr = Some(min_sqnr.map_or(q, |m: f64| m.min(q)));
                    }
                }
                for (p, s) in &site.paths {
                    if s.has_non_finite() {
                        flags.push(format!("{p}:{name} NaN/Inf"));
                    }
                }
            }
            say!(
                "{:>5}  {:>12}  {:>12}  {:>13}  {:<16} {:>8}  {}",
                l.index,
                fmt(ratio("ffn_swigl"), 5),
                fmt(ratio("ffn_gate"), 5),
                fmt(worst.map(|w| w.0), 8),
                worst.map(|w| w.1).unwrap_or("—"),
                fmt(min_sqnr, 1),
                flags.join(" ")
            );
        }
        if let Some(c) = r.logits.compare.get(*other) {
            let top = |p: &str| r.logits.paths.get(p).and_then(|l| l.top.first()).map(|t| t.0);
            say!(
                "logits (position {}): top-1 {reference} {:?} vs {other} {:?} ({}), top-10 overlap {}/10, KL {} nats, cosine {}",
                r.logits.position,
                top(reference),
                top(other),
                if c.top1_agree { "agree" } else { "DIFFER" },
                c.top10_overlap,
                fmt(c.kl, 6),
                fmt(c.cosine, 7)
            );
            if let Some(noise) = c.logit_noise {
                let mut line = format!(
                    "  logit noise {} (std of {other} − {reference}), tie margin {} (3·√2 × noise)",
                    fmt(Some(noise), 4),
                    fmt(c.tie_margin, 4)
                );
                if let Some(f) = &c.top1_flip {
                    line.push_str(&format!(
                        "; top-1 flip across {} logits of the reference ({})",
                        fmt(Some(f.margin), 4),
                        if c.tie_margin.is_some_and(|m| f.margin <= m) {
                            "a tie"
                        } else {
                            "not a tie"
                        }
                    ));
                }
                if c.top10_ties > 0 {
                    line.push_str(&format!("; {} top-10 swaps within it", c.top10_ties));
                }
                say!("{line}");
            }
            if let Some(p) = &c.positions {
                say!(
                    "over all {} positions: KLD mean {} ± {}, median {}, p99 {}, max {} nats (reverse mean {}); same top-1 {:.1} % ({}/{}); RMS Δp {:.4}{}",
                    p.n,
                    sci(p.kld.mean),
                    p.kld.stderr.map_or("—".into(), sci),
                    sci(p.kld.median),
                    sci(p.kld.p99),
                    sci(p.kld.max),
                    sci(p.kld_reverse.mean),
                    100.0 * p.same_top1,
                    p.same_top1_count,
                    p.n,
                    p.dp_rms,
                    p.ppl_ratio.map_or(String::new(), |r| format!(
                        "; perplexity of the prompt {} vs {reference} {} (×{r:.4})",
                        fmt(p.ppl_path, 3),
                        fmt(p.ppl_reference, 3)
                    ))
                );
            }
        }
        let file_of = |id: &str| parallax_engine::Lane::parse(id).map(|l| l.file);
        if file_of(other) != file_of(reference) {
            print_local_ranking(r, other);
        }
    }
    if !r.weights.is_empty() {
        let identical = r.weights.iter().filter(|t| t.compares.iter().all(|c| c.identical)).count();
        say!();
        say!("weights: {identical} of {} tensors identical after dequantization", r.weights.len());
    }
}

/// A small number as `1.23e-4`, a larger one with four decimals.
fn sci(v: f64) -> String {
    if v != 0.0 && v.abs() < 1e-3 {
        format!("{v:.2e}")
    } else {
        format!("{v:.4}")
    }
}

/// Where the other file's own tensors differ most: each matmul fed the reference's input
/// (`local`), so what accumulated before it is not counted — the tensors a quantization hurts.
/// The same ranking as the HTML report's.
fn print_local_ranking(r: &Report, lane: &str) {
    let rankings = parallax_report::html::compare::tensor_rankings(r);
    let Some(ranking) = rankings.iter().find(|k| k.lane == lane) else { return };
    say!("{lane}: tensors by their own error (each fed the reference's input), worst first");
    for s in ranking.sites.iter().take(10) {
        let types = match (&s.reference_type, &s.lane_type) {
            (Some(a), Some(b)) => format!("  {a} → {b}"),
            _ => String::new(),
        };
        say!("  layer {:>3} {:<10} rel-L2 {:.5}{types}", s.layer, s.site, s.local_rel_l2);
    }
}
