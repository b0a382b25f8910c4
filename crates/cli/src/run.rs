//! `parallax run`: the engine on the terminal — progress on stderr, a per-layer table on stdout,
//! the report as JSON on request.

use std::io::Read;
use std::sync::atomic::AtomicBool;

use indicatif::{ProgressBar, ProgressStyle};
use parallax_engine::{PathKind, Phase, RunInput, RunOptions};
use parallax_report::{Mode, Report, Scope};
use parallax_source::{BackgroundReadAhead, ByteSource, FileSource};
use sha2::{Digest, Sha256};

use crate::{JudgeArgs, ModeArg, RunArgs, ScopeArg, Verdict};

/// Contracts, path mapping and traces as the user gave them, read and checked before any work.
struct Judging {
    contracts: Vec<parallax_judge::Contract>,
    mapping: parallax_judge::PathMapping,
    traces: Vec<(String, parallax_judge::trace::Trace)>,
}

fn load_judging(args: &JudgeArgs) -> Result<Judging, String> {
    let contracts = if args.contracts.is_empty() {
        parallax_judge::default_contracts()
    } else {
        args.contracts
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read contract {}: {e}", p.display()))?;
                parallax_judge::Contract::from_yaml_str(&text)
                    .map_err(|e| format!("contract {}: {e}", p.display()))
            })
            .collect::<Result<_, _>>()?
    };
    let mapping = match &args.map {
        Some(spec) => parallax_judge::PathMapping::parse(spec)?,
        None => parallax_judge::PathMapping::default(),
    };
    let traces = args
        .traces
        .iter()
        .map(|spec| {
            let (id, file) = spec.split_once('=').ok_or_else(|| {
                format!("--trace takes ID=FILE, e.g. apr=trace.txt; got `{spec}`")
            })?;
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read trace {file}: {e}"))?;
            let trace =
                parallax_judge::trace::parse_trace(&text).map_err(|e| format!("{file}: {e}"))?;
            Ok((id.to_string(), trace))
        })
        .collect::<Result<_, String>>()?;
    Ok(Judging { contracts, mapping, traces })
}

/// Judge `report`, store the verdicts in it, print them, and say pass or fail.
fn judge(report: &mut Report, j: &Judging) -> Verdict {
    let traces: Vec<(&str, &parallax_judge::trace::Trace)> =
        j.traces.iter().map(|(id, t)| (id.as_str(), t)).collect();
    let verdicts = parallax_judge::evaluate_with_traces(report, &traces, &j.contracts, &j.mapping);
    println!();
    for line in parallax_report::text::verdict_lines(&verdicts) {
        println!("{line}");
    }
    let passed = verdicts.passed();
    report.verdicts = Some(verdicts);
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
    let judging = load_judging(args)?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut report = Report::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    println!(
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

pub fn run(args: RunArgs) -> Result<Verdict, String> {
    let judging = load_judging(&args.judge)?;
    let paths = args
        .paths
        .iter()
        .map(|p| {
            PathKind::parse(p.trim())
                .ok_or_else(|| format!("unknown path `{p}`; the paths are f32, q8 and gpu"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if paths.is_empty() || paths.iter().enumerate().any(|(i, p)| paths[..i].contains(p)) {
        return Err("--paths needs at least one path and no path twice, e.g. --paths f32,q8".into());
    }
    // The run itself executes inside the pool: the engine's parallel loops then start on a pool
    // thread, instead of handing every matmul from the main thread to the pool and back (a
    // wake-up per matmul, a few percent of a 1-thread run). 0 = rayon's default (all cores).
    let threads = args.threads.map(|n| n.max(1)).unwrap_or(0);
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
    let model = open_reading_ahead(&args.model, args.memory_budget)?;
    let sha256 = if args.no_hash {
        None
    } else {
        Some(hash_file(&args.model, model.source().len(), args.quiet)?)
    };

    let input = RunInput {
        sha256,
        ..RunInput::from_prompt(&model, args.prompt.clone(), args.tokens.clone())
            .map_err(|e| e.to_string())?
    };
    let faults = args
        .inject
        .iter()
        .map(|spec| parallax_engine::Fault::parse(spec, PathKind::Q8))
        .collect::<Result<Vec<_>, _>>()?;
    if !faults.is_empty() && !paths.contains(&PathKind::Q8) {
        return Err("--inject breaks the q8 path, which is not among --paths".into());
    }
    let opts = RunOptions {
        faults,
        paths,
        mode: match args.mode {
            ModeArg::Free => Mode::Free,
            ModeArg::Replay => Mode::Replay,
        },
        scope: match args.scope {
            ScopeArg::All => Scope::All,
            ScopeArg::Last => Scope::Last,
        },
        max_tokens: args.max_tokens,
        memory_budget_bytes: args.memory_budget,
        gpu: Default::default(),
    };

    let bar = if args.quiet { ProgressBar::hidden() } else { ProgressBar::new(0) };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg:<22} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let cancel = &CANCEL;
    let started = std::time::Instant::now();
    let mut report = pool
        .install(|| {
            parallax_engine::run(
                &model,
                &input,
                &opts,
                &mut |p| {
                    bar.set_length(p.bytes_total);
                    bar.set_position(p.bytes_read);
                    bar.set_message(match p.phase {
                        Phase::Embedding => "embedding".to_string(),
                        Phase::Layer => format!("layer {}/{}", p.layers_done, p.n_layers),
                        Phase::OutputHead => "output head".to_string(),
                        Phase::Done => "done".to_string(),
                    });
                },
                cancel,
            )
        })
        .map_err(|e| match e {
            parallax_engine::EngineError::Cancelled => {
                "the run was cancelled (Ctrl-C); no report was written".to_string()
            }
            e => e.to_string(),
        })?;
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

    print_table(&report);
    let verdict = judge(&mut report, &judging);
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

/// The model for a run, its file read through a [`BackgroundReadAhead`]: the engine hints each
/// next layer, which is then read on a second thread while the current layer computes. The
/// window holds one layer's span, at most 256 MiB and at most a quarter of `--memory-budget`.
fn open_reading_ahead(
    path: &std::path::Path,
    memory_budget: Option<u64>,
) -> Result<parallax_model::Model<BackgroundReadAhead<FileSource>>, String> {
    const MAX_WINDOW: u64 = 256 << 20;
    let window = memory_budget.map_or(MAX_WINDOW, |b| MAX_WINDOW.min(b / 4));
    crate::open_with(path, |file| BackgroundReadAhead::new(file, window))
}

fn hash_file(path: &std::path::Path, len: u64, quiet: bool) -> Result<String, String> {
    let source =
        FileSource::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(len) };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} sha256                 [{bar:30}] {bytes}/{total_bytes}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mut file = std::fs::File::open(source.path())
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 8 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| format!("reading {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
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
    println!(
        "{} ({}, {} layers) · prompt {} tokens {:?}",
        r.model.file_name, r.model.arch, r.model.n_layers, n_tokens, r.prompt.tokens
    );
    println!(
        "statistics over {scope} ({} std) · reference {reference} · mode {:?}",
        r.std_kind, r.mode
    );
    if let Some(g) = &r.execution.gpu {
        let binding = g
            .limits
            .get("maxStorageBufferBindingSize")
            .map(|b| format!(", bindings ≤ {} MiB", b >> 20))
            .unwrap_or_default();
        println!("gpu: {} ({}, {}{binding})", g.adapter, g.backend, g.device_type);
    }
    if let Some(site) = r.layers.first().and_then(|l| l.sites.get("ffn_swigl")) {
        if let Some(s) = site.paths.get(reference) {
            println!(
                "each ffn site holds {} elements per path ({} per token)",
                s.count, site.width
            );
        }
    }
    for other in &others {
        println!();
        println!("{other} vs {reference}");
        println!(
            "{:>5}  {:>12}  {:>12}  {:>13}  {:<16} {:>8}  flags",
            "layer", "swigl σ ratio", "gate σ ratio", "worst cosine", "at site", "min SQNR"
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
            println!(
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
            println!(
                "logits (position {}): top-1 {reference} {:?} vs {other} {:?} ({}), top-10 overlap {}/10, KL {} nats, cosine {}",
                r.logits.position,
                top(reference),
                top(other),
                if c.top1_agree { "agree" } else { "DIFFER" },
                c.top10_overlap,
                fmt(c.kl, 6),
                fmt(c.cosine, 7)
            );
        }
    }
}
