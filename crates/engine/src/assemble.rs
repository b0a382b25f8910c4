//! Turning a finished run into its [`Report`]: the model facts, the execution notes, the logits
//! record, and the byte estimate progress is measured against.

use indexmap::IndexMap;
use parallax_metrics::{top_k, LogitsCompare, Stats, STD_KIND};
use parallax_model::{Model, Role, Tensor};
use parallax_report::{
    Execution, LayerRecord, LogitsRecord, ModelInfo, PathLogits, PerToken, Prompt, Report,
    SiteRecord, TokenSite, SCHEMA,
};
use parallax_source::ByteSource;

use crate::arch::{Activation, ArchConfig};
use crate::options::{RunInput, RunOptions};
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

/// Each path's top tokens and statistics of its logits (`n_tokens` rows of `vocab`, cut to the
/// run's scope), and the comparison of the last position with the reference's.
pub(crate) fn logits_record(
    opts: &RunOptions,
    probe: &Probe,
    logits: &[Vec<f32>],
    vocab: usize,
) -> LogitsRecord {
    let n = probe.n_tokens;
    let last = |l: &Vec<f32>| l[(n - 1) * vocab..].to_vec();
    let mut rec =
        LogitsRecord { position: (n - 1) as u32, paths: IndexMap::new(), compare: IndexMap::new() };
    for (p, l) in opts.paths.iter().zip(logits) {
        let scoped = probe.scoped(l, vocab);
        rec.paths.insert(
            p.id().into(),
            PathLogits { top: top_k(&last(l), 10), stats: Stats::of(scoped) },
        );
    }
    let ref_last = last(&logits[0]);
    for (p, l) in opts.paths.iter().zip(logits).skip(1) {
        if let Some(c) = LogitsCompare::of(&ref_last, &last(l)) {
            rec.compare.insert(p.id().into(), c);
        }
    }
    rec
}

/// What the probes recorded, in the order the run visited the sites.
pub(crate) struct Probes {
    pub embed: (SiteRecord, TokenSite),
    pub layers: Vec<LayerRecord>,
    pub per_token_layers: Vec<IndexMap<String, TokenSite>>,
    pub final_norm: (SiteRecord, TokenSite),
    pub logits: LogitsRecord,
}

pub(crate) fn report<S: ByteSource>(
    model: &Model<S>,
    cfg: &ArchConfig,
    input: &RunInput,
    opts: &RunOptions,
    n_vocab: u64,
    probes: Probes,
    execution: Execution,
) -> Report {
    let summary = model.summary();
    let Probes { embed: (embed, embed_tok), layers, per_token_layers, final_norm, logits } = probes;
    let (final_norm, final_tok) = final_norm;
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
        },
        prompt: Prompt {
            text: input.text.clone(),
            tokens: input.tokens.clone(),
            pieces: input.pieces.clone(),
        },
        paths: opts.paths.iter().map(|p| p.id().to_string()).collect(),
        reference: opts.paths[0].id().into(),
        mode: opts.mode,
        scope: opts.scope,
        std_kind: STD_KIND.into(),
        site_order: layer_sites(cfg).into_iter().map(String::from).collect(),
        embed,
        layers,
        final_norm,
        logits,
        per_token: PerToken { embed: embed_tok, layers: per_token_layers, final_norm: final_tok },
        execution,
        verdicts: None,
    }
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
    let embd = model
        .tensor_by_role(Role::TokenEmbd)
        .map(|t| t.n_bytes / t.n_rows().max(1) * n_tokens as u64)
        .unwrap_or(0);
    let norm = model.tensor_by_role(Role::OutputNorm).map(|t| t.n_bytes).unwrap_or(0);
    layers + embd + head.n_bytes + norm
}
