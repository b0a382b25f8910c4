//! Turning a finished run into its [`Report`]: the model facts, the execution notes, the logits
//! record, and the byte estimate progress is measured against.

use std::collections::{BTreeMap, BTreeSet};

use indexmap::IndexMap;
use parallax_metrics::positions::{compare_positions_by, Position, TokenLogits};
use parallax_metrics::{probabilities_of, top_k, LogitsCompare, Stats, STD_KIND};
use parallax_model::{Model, Role, Tensor};
use parallax_report::{
    Execution, FileInfo, LayerRecord, LogitsRecord, ModelInfo, PathLogits, PerToken, Prompt,
    Report, SiteRecord, TensorDiff, TokenSite, SCHEMA,
};
use parallax_source::ByteSource;

use crate::arch::{Activation, ArchConfig};
use crate::options::{Lane, RunInput, RunOptions};
use crate::probe::{layer_sites, Probe};

/// The execution notes known before the run: the ops every path shares, the faults, the
/// kernels. The loop adds each matmul's kernel label.
pub(crate) fn execution(cfg: &ArchConfig, opts: &RunOptions) -> Execution {
    let activation = if cfg.activation == Activation::Silu { "SiLU" } else { "GELU (tanh)" };
    Execution {
        shared_ops: vec![
            "embedding lookup (dequantized rows)".into(),
            "RMSNorm (f64 sum of squares, as ggml)".into(),
            "RoPE (ggml's angle recurrence)".into(),
            "attention softmax (f64 sum, as ggml)".into(),
            format!("FFN activation: {activation}"),
        ],
        injected: opts.faults.iter().map(|f| f.to_string()).collect(),
        notes: vec![
            format!("kernels: {}", parallax_quant::backend()),
            "f32 path: attention q·k and p·v in f32".into(),
            "q8 path: llama.cpp CPU semantics beyond the weight matmuls — K/V as f16 (default KV cache), \
             q and softmax probabilities converted to f16 for the two attention matmuls, GELU from ggml's f16 table"
                .into(),
        ],
        ..Default::default()
    }
}

/// Each lane's top tokens and statistics of its logits (rows of `vocab`: every prompt position,
/// cut to the run's scope, or the last position only), the comparison of the last position with
/// the reference's, and — when every position was computed — each position's distributions
/// compared (summarised in `compare`, and per position).
pub(crate) fn logits_record(
    probe: &Probe,
    tokens: &[u32],
    logits: &[Vec<f32>],
    vocab: usize,
) -> (LogitsRecord, IndexMap<String, Vec<TokenLogits>>) {
    let n = probe.n_tokens;
    let rows = logits[0].len() / vocab;
    let last = |l: &Vec<f32>| l[(rows - 1) * vocab..].to_vec();
    let mut rec =
        LogitsRecord { position: (n - 1) as u32, paths: IndexMap::new(), compare: IndexMap::new() };
    for (id, l) in probe.ids.iter().zip(logits) {
        let scoped = if rows == n { probe.scoped(l, vocab) } else { l.as_slice() };
        let last_row = last(l);
        let top = top_k(&last_row, 10);
        let ids: Vec<u32> = top.iter().map(|t| t.0).collect();
        let top_p = probabilities_of(&last_row, &ids).unwrap_or_default();
        rec.paths.insert(id.clone(), PathLogits { top, top_p, stats: Stats::of(scoped) });
    }
    let ref_last = last(&logits[0]);
    let mut per_token = IndexMap::new();
    for (id, l) in probe.ids.iter().zip(logits).skip(1) {
        let Some(mut c) = LogitsCompare::of(&ref_last, &last(l)) else { continue };
        if rows == n {
            let positions = compare_positions_by(&logits[0], l, vocab, &tokens[1..], by_position);
            if let Some((summary, per)) = positions {
                c.positions = Some(summary);
                per_token.insert(id.clone(), per);
            }
        }
        rec.compare.insert(id.clone(), c);
    }
    (rec, per_token)
}

/// `[one(0), …, one(n − 1)]`, the positions in parallel with the `parallel` feature (each is
/// computed alone; what is summed over them is summed afterwards, in order).
fn by_position(
    n: usize,
    one: &(dyn Fn(usize) -> Option<Position> + Sync),
) -> Vec<Option<Position>> {
    crate::map_indices(n, one)
}

/// What the probes recorded, in the order the run visited the sites.
pub(crate) struct Probes {
    pub embed: (SiteRecord, TokenSite),
    pub layers: Vec<LayerRecord>,
    pub per_token_layers: Vec<IndexMap<String, TokenSite>>,
    pub final_norm: (SiteRecord, TokenSite),
    pub logits: LogitsRecord,
    pub per_token_logits: IndexMap<String, Vec<TokenLogits>>,
    /// The files' weights compared (runs over two or more files).
    pub weights: Vec<TensorDiff>,
}

/// How many tensors of each type `model` holds, in the order the types first appear.
fn type_histogram<S: ByteSource>(model: &Model<S>) -> IndexMap<String, u64> {
    let mut types = IndexMap::new();
    for t in model.tensors() {
        *types.entry(t.ty.to_string()).or_insert(0) += 1;
    }
    types
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn report<S: ByteSource>(
    files: &[&Model<S>],
    cfg: &ArchConfig,
    input: &RunInput,
    opts: &RunOptions,
    lanes: &[Lane],
    n_vocab: u64,
    probes: Probes,
    execution: Execution,
) -> Report {
    let model = files[0];
    let summary = model.summary();
    let Probes {
        embed: (embed, embed_tok),
        layers,
        per_token_layers,
        final_norm,
        logits,
        per_token_logits,
        weights,
    } = probes;
    let (final_norm, final_tok) = final_norm;
    let files_info = if files.len() < 2 {
        Vec::new()
    } else {
        files
            .iter()
            .enumerate()
            .map(|(k, f)| {
                let summary = f.summary();
                FileInfo {
                    file_name: summary.file_name,
                    format: summary.format,
                    bytes: f.source().len(),
                    sha256: if k == 0 {
                        input.sha256.clone()
                    } else {
                        input.other_sha256.get(k - 1).cloned().flatten()
                    },
                    types: type_histogram(f),
                    paths: lanes.iter().filter(|l| l.file == k).map(Lane::id).collect(),
                }
            })
            .collect()
    };
    let token_text = token_text(model, &input.tokens, &logits, &per_token_logits);
    Report {
        schema: SCHEMA.into(),
        model: ModelInfo {
            name: model.display_name().map(str::to_string),
            file_name: summary.file_name,
            format: summary.format,
            arch: cfg.name.clone(),
            n_layers: cfg.n_layers,
            n_embd: cfg.n_embd as u64,
            n_vocab,
            file_bytes: model.source().len(),
            sha256: input.sha256.clone(),
            ffn_activation: Some(
                if cfg.activation == Activation::Silu { "silu" } else { "gelu_tanh" }.into(),
            ),
        },
        files: files_info,
        weights,
        prompt: Prompt {
            text: input.text.clone(),
            tokens: input.tokens.clone(),
            pieces: input.pieces.clone(),
        },
        token_text,
        paths: lanes.iter().map(Lane::id).collect(),
        reference: lanes[0].id(),
        mode: opts.mode,
        scope: opts.scope,
        std_kind: STD_KIND.into(),
        site_order: layer_sites(cfg).into_iter().map(String::from).collect(),
        embed,
        layers,
        final_norm,
        logits,
        per_token: PerToken {
            embed: embed_tok,
            layers: per_token_layers,
            final_norm: final_tok,
            logits: per_token_logits,
        },
        execution,
        verdicts: None,
    }
}

/// The text of every token id a report names: the prompt's, each path's top tokens at the last
/// position, and each position's top-1 of every path and of the reference.
fn token_text<S: ByteSource>(
    model: &Model<S>,
    prompt: &[u32],
    logits: &LogitsRecord,
    per_token: &IndexMap<String, Vec<TokenLogits>>,
) -> BTreeMap<u32, String> {
    let mut ids: BTreeSet<u32> = prompt.iter().copied().collect();
    ids.extend(logits.paths.values().flat_map(|p| p.top.iter().map(|t| t.0)));
    ids.extend(per_token.values().flatten().flat_map(|t| [t.top1, t.reference_top1]));
    let ids: Vec<u32> = ids.into_iter().collect();
    let Some(texts) = model.token_display_texts(&ids) else { return BTreeMap::new() };
    ids.into_iter().zip(texts).filter_map(|(id, text)| Some((id, text?))).collect()
}

/// Bytes the run will read: every layer tensor, the prompt's embedding rows, the output head.
pub(crate) fn estimate_bytes<S: ByteSource>(
    model: &Model<S>,
    cfg: &ArchConfig,
    head: &Tensor,
    n_tokens: usize,
) -> u64 {
    let layers: u64 = model
        .tensors()
        .iter()
        .filter(|t| matches!(t.role, Some(Role::Layer { layer, .. }) if layer < cfg.n_layers))
        .map(|t| t.n_bytes)
        .sum();
    let embd =
        model.tensor_by_role(Role::TokenEmbd).map(|t| t.row_bytes() * n_tokens as u64).unwrap_or(0);
    let norm = model.tensor_by_role(Role::OutputNorm).map(|t| t.n_bytes).unwrap_or(0);
    layers + embd + head.n_bytes + norm
}
