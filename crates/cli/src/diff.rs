//! `parallax diff`: the weights of files of one network compared tensor by tensor, dequantized —
//! a quantized file against its F32 source, a GGUF against its APR import. Progress on stderr,
//! the table worst first on stdout, the diff as JSON on request.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use indicatif::{ProgressBar, ProgressStyle};
use parallax_model::{check_compatible, human_bytes, Model};
use parallax_report::{type_recipe, DiffFile, TensorDiff, WeightCompare, WeightsReport};
use parallax_source::{ByteSource, FileSource, Shards};

#[derive(clap::Args)]
pub struct DiffArgs {
    /// The first file (A): every other file is compared with it.
    #[arg(short, long)]
    model: PathBuf,
    /// A file to compare with the first (B, then C, …); repeatable. Tensor types and the
    /// container (GGUF or APR) may differ; the network may not.
    #[arg(long = "against", value_name = "FILE", required = true)]
    against: Vec<PathBuf>,
    /// Write the diff (schema parallax.weights/1) to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

/// The letter a file goes by in the table and the sentences: A, B, C, …
fn letter(index: usize) -> char {
    (b'A' + (index % 26) as u8) as char
}

pub fn diff(args: &DiffArgs) -> Result<(), String> {
    let paths: Vec<&PathBuf> = std::iter::once(&args.model).chain(&args.against).collect();
    let models = paths.iter().map(|p| crate::open(p)).collect::<Result<Vec<_>, _>>()?;
    // Before any weight is read: a pair that is not one network ends here, with its first
    // difference.
    for (k, other) in models.iter().enumerate().skip(1) {
        check_compatible(&models[0], other).map_err(|difference| {
            format!(
                "the files cannot be compared (A is {}, B is {}): {difference}",
                paths[0].display(),
                paths[k].display()
            )
        })?;
    }

    // Ctrl-C stops between chunks with a sentence; a second one ends the process at once.
    static CANCEL: AtomicBool = AtomicBool::new(false);
    let _ = ctrlc::set_handler(|| {
        if CANCEL.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    let bar = if args.quiet { ProgressBar::hidden() } else { ProgressBar::new(0) };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} comparing weights [{bar:30}] {pos}/{len} tensors, {elapsed}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let refs: Vec<&Model<Shards<FileSource>>> = models.iter().collect();
    let weights = parallax_engine::weights_diff(
        &refs,
        |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
        &CANCEL,
    )
    .map_err(|e| match e {
        parallax_engine::EngineError::Cancelled => {
            "the diff was cancelled (Ctrl-C); nothing was written".to_string()
        }
        e => e.to_string(),
    })?;
    bar.finish_and_clear();
    if !args.quiet {
        eprintln!(
            "compared {} tensors × {} files in {:.2} s",
            weights.len(),
            models.len(),
            started.elapsed().as_secs_f64()
        );
    }

    let files: Vec<DiffFile> = models.iter().map(diff_file).collect();
    let mut out = std::io::stdout().lock();
    match print_files(&mut out, &files, &weights)
        .and_then(|_| print_table(&mut out, &weights, models.len()))
    {
        // `parallax diff … | head` closes the pipe early: not an error, and the JSON is still
        // written.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(format!("cannot write to stdout: {e}"))
        }
        _ => {}
    }
    if let Some(path) = &args.json {
        let report = WeightsReport::new(files, weights);
        std::fs::write(path, report.to_json() + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

fn diff_file<S: ByteSource>(model: &Model<S>) -> DiffFile {
    let mut types = BTreeMap::new();
    for t in model.tensors() {
        *types.entry(t.ty.name().to_string()).or_insert(0) += 1;
    }
    DiffFile {
        name: model.source().name(),
        format: model.format().to_string(),
        bytes: model.source().len(),
        types,
    }
}

/// One line per file: its letter, name, format, size, type histogram and its types as
/// llama-quantize would be asked for them.
fn print_files(out: &mut impl Write, files: &[DiffFile], weights: &[TensorDiff]) -> io::Result<()> {
    for (k, f) in files.iter().enumerate() {
        let mut types: Vec<(&String, &u64)> = f.types.iter().collect();
        types.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let types: Vec<String> = types.iter().map(|(ty, n)| format!("{ty} ×{n}")).collect();
        writeln!(
            out,
            "{}  {}  ({}, {})  {}",
            letter(k),
            f.name,
            f.format,
            human_bytes(f.bytes),
            types.join(", ")
        )?;
        let recipe = type_recipe(weights, k);
        if recipe.len() > 1 {
            writeln!(out, "   as llama-quantize types: {}", recipe.join(" "))?;
        }
    }
    writeln!(out)
}

/// Comparisons worst first (by rel_l2; an infinite one first), the identical ones counted.
fn print_table(out: &mut impl Write, weights: &[TensorDiff], n_files: usize) -> io::Result<()> {
    let mut rows: Vec<(&TensorDiff, &WeightCompare)> = weights
        .iter()
        .flat_map(|w| w.compares.iter().map(move |c| (w, c)))
        .filter(|(_, c)| !c.identical)
        .collect();
    // `None` is an infinite rel_l2: worst of all.
    let worst = |c: &WeightCompare| c.rel_l2.unwrap_or(f64::INFINITY);
    rows.sort_by(|a, b| worst(b.1).total_cmp(&worst(a.1)));
    let name_width = rows.iter().map(|(w, _)| w.name.len()).max().unwrap_or(0).max(6);
    // "Q4_K → Q8_0": the type in A, then in the file compared.
    let types = |w: &TensorDiff, k: usize| {
        let ty = |i: usize| w.files.get(i).map_or("?", |f| f.ty.as_str());
        format!("{} → {}", ty(0), ty(k))
    };
    let types_width =
        rows.iter().map(|(w, c)| types(w, c.file as usize - 1).chars().count()).max().unwrap_or(0);
    if !rows.is_empty() {
        writeln!(
            out,
            "{:<name_width$}  {:>4}  {:<types_width$}  {:>10} {:>8} {:>10} {:>10}",
            "tensor", "file", "types", "rel_l2", "SQNR dB", "max |Δ|", "cosine"
        )?;
    }
    let number = |v: Option<f64>, write: fn(f64) -> String| v.map_or("—".to_string(), write);
    for (w, c) in &rows {
        let k = c.file as usize - 1;
        writeln!(
            out,
            "{:<name_width$}  {:>4}  {:<types_width$}  {:>10} {:>8} {:>10} {:>10}",
            w.name,
            letter(k),
            types(w, k),
            c.rel_l2.map_or("∞".to_string(), |v| format!("{v:.3e}")),
            number(c.sqnr_db, |v| format!("{v:.2}")),
            number(c.max_abs, |v| format!("{v:.3e}")),
            number(c.cosine, |v| format!("{v:.7}")),
        )?;
    }
    for k in 1..n_files {
        let identical = weights
            .iter()
            .filter(|w| w.compares.iter().any(|c| c.file as usize == k + 1 && c.identical))
            .count();
        let against = if n_files > 2 { format!(" in {}", letter(k)) } else { String::new() };
        let all = if identical == weights.len() { "all " } else { "" };
        writeln!(
            out,
            "{all}{identical} tensor{} identical{against}",
            if identical == 1 { "" } else { "s" }
        )?;
    }
    Ok(())
}
