//! Imported traces: per-site statistics another tool printed, read as one more "path".
//!
//! Two formats: upstream's `apr trace --payload` text (mean and std per layer slot, **no element
//! counts**, no token scope) and llama.cpp's `llama-eval-callback` output (each graph tensor's
//! name, op and shape, then a few values and `sum = …`: a count and a mean, no std).
//! A trace records exactly what its text says — a missing count stays `None` — so whoever
//! compares it can refuse a comparison of samples of unknown or unequal size (FALSIFY-007).
//! Site names: the apr trace's own slot names are kept (`qkv`, `ffn_out`, `output`; see
//! [`parallax_metrics::sites::ALIASES`]); llama.cpp's tensor names are mapped to Parallax's.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceFormat {
    /// `apr trace --payload` (aprender).
    AprPayload,
    /// `llama-eval-callback` (llama.cpp).
    LlamaEvalCallback,
}

impl TraceFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            TraceFormat::AprPayload => "apr trace --payload",
            TraceFormat::LlamaEvalCallback => "llama-eval-callback",
        }
    }
}

/// One site's statistics as the trace printed them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TraceStat {
    /// The site: an upstream slot name or a Parallax site name (see the module doc).
    pub site: String,
    /// The name the trace used (`ffn_swigl`, `Qcur-3`).
    pub source_name: String,
    /// Elements the statistic covers; `None` when the trace does not say.
    pub count: Option<u64>,
    /// Token positions covered, when the trace's shape says.
    pub tokens: Option<u64>,
    pub mean: Option<f64>,
    pub std: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl TraceStat {
    /// A statistic of `site`, printed as `source_name`, before its numbers are read.
    fn named(site: &str, source_name: &str) -> TraceStat {
        TraceStat { site: site.into(), source_name: source_name.into(), ..Default::default() }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TraceLayer {
    pub index: u32,
    pub sites: Vec<TraceStat>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub format: TraceFormat,
    pub model: Option<String>,
    /// The prompt's token ids, when the trace prints them.
    pub tokens: Option<Vec<u32>>,
    pub n_layers: Option<u32>,
    pub embed: Option<TraceStat>,
    pub layers: Vec<TraceLayer>,
    pub final_norm: Option<TraceStat>,
    pub logits: Option<TraceStat>,
    /// Tensor names the trace printed that map to no Parallax site (first few).
    pub ignored: Vec<String>,
}

impl Trace {
    /// The statistic of `site` (a name as the trace keeps it) at `layer` (`None`: outside layers).
    pub fn stat(&self, layer: Option<u32>, site: &str) -> Option<&TraceStat> {
        match layer {
            None => [&self.embed, &self.final_norm, &self.logits]
                .into_iter()
                .flatten()
                .find(|s| s.site == site),
            Some(i) => {
                self.layers.iter().find(|l| l.index == i)?.sites.iter().find(|s| s.site == site)
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TraceError {
    /// 1-based line of the problem (0: the text as a whole).
    pub line: usize,
    pub message: String,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "trace: {}", self.message)
        } else {
            write!(f, "trace line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for TraceError {}

fn err<T>(line: usize, message: impl Into<String>) -> Result<T, TraceError> {
    Err(TraceError { line, message: message.into() })
}

/// Read either format, telling them apart by their markers.
pub fn parse_trace(text: &str) -> Result<Trace, TraceError> {
    if text.contains("ggml_debug:") {
        parse_llama_eval_callback(text)
    } else if text.contains("LAYER-BY-LAYER") || text.contains("APR-TRACE") {
        parse_apr_payload(text)
    } else {
        err(0, "neither an `apr trace --payload` output nor a `llama-eval-callback` output")
    }
}

fn num(s: &str, line: usize, what: &str) -> Result<f64, TraceError> {
    match s.trim().trim_end_matches(',').parse::<f64>() {
        Ok(v) => Ok(v),
        Err(_) => err(line, format!("{what}: `{}` is not a number", s.trim())),
    }
}

/// `key: value, key: value` or `key= value key= value` → the value after `key`.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(key)? + key.len();
    let rest = line[at..].trim_start_matches([':', '=']).trim_start();
    let end = rest.find([',', ' ']).unwrap_or(rest.len());
    Some(&rest[..end])
}

fn range(line: &str, n: usize) -> Result<(f64, f64), TraceError> {
    // The `]` is looked for after the `[` (a `]` before it made an inverted slice).
    let Some(a) = line.find('[') else {
        return err(n, "expected `Range: [min, max]`");
    };
    let Some(len) = line[a + 1..].rfind(']') else {
        return err(n, "expected `Range: [min, max]`");
    };
    let inner = &line[a + 1..a + 1 + len];
    let Some((lo, hi)) = inner.split_once(',') else {
        return err(n, "expected `Range: [min, max]`");
    };
    Ok((num(lo, n, "range min")?, num(hi, n, "range max")?))
}

/// `apr trace --payload`.
pub fn parse_apr_payload(text: &str) -> Result<Trace, TraceError> {
    #[derive(PartialEq, Clone, Copy)]
    enum Block {
        None,
        Embed,
        Layers,
        Final,
        Head,
    }
    let mut t = Trace {
        format: TraceFormat::AprPayload,
        model: None,
        tokens: None,
        n_layers: None,
        embed: None,
        layers: Vec::new(),
        final_norm: None,
        logits: None,
        ignored: Vec::new(),
    };
    let mut block = Block::None;
    let mut cur = TraceStat::default();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if let Some(m) = line.strip_prefix("Model:") {
            t.model = Some(m.trim().to_string());
        } else if let Some(toks) = line.strip_prefix("Encoded tokens:") {
            let inner = toks.trim().trim_start_matches('[').trim_end_matches(']');
            let ids = inner
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| {
                    s.trim().parse::<u32>().map_err(|_| TraceError {
                        line: n,
                        message: format!("token id `{}`", s.trim()),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            t.tokens = Some(ids);
        } else if let Some(l) = line.strip_prefix("Layers:") {
            t.n_layers = Some(num(l, n, "layer count")? as u32);
        } else if line == "EMBEDDING:" {
            block = Block::Embed;
            cur = TraceStat::named("embed", "EMBEDDING");
        } else if line.starts_with("LAYER-BY-LAYER") {
            block = Block::Layers;
        } else if line == "FINAL LAYER NORM:" {
            block = Block::Final;
            cur = TraceStat::named("final_norm", "FINAL LAYER NORM");
        } else if line.starts_with("LM_HEAD") {
            block = Block::Head;
            cur = TraceStat::named("logits", "LM_HEAD output");
        } else if line.starts_with("Top ")
            || line.starts_with("TRACE SUMMARY")
            || line.starts_with("GENERATION")
        {
            block = Block::None;
        } else if block == Block::Layers && line.starts_with("Layer ") {
            // `Layer  0/2 [OK]`
            let idx = line["Layer ".len()..].trim_start().split('/').next().unwrap_or("");
            let Ok(index) = idx.trim().parse::<u32>() else {
                return err(n, format!("layer header `{line}`"));
            };
            t.layers.push(TraceLayer { index, sites: Vec::new() });
        } else if block == Block::Layers && line.contains("mean=") && line.contains("std=") {
            let Some(layer) = t.layers.last_mut() else {
                return err(n, "a layer statistic before any `Layer N/M` header");
            };
            let name = line.split(':').next().unwrap_or("").trim();
            let (Some(m), Some(s)) = (field(line, "mean="), field(line, "std=")) else {
                return err(n, "expected `mean= x std= y`");
            };
            layer.sites.push(TraceStat {
                site: name.to_string(),
                source_name: name.to_string(),
                mean: Some(num(m, n, "mean")?),
                std: Some(num(s, n, "std")?),
                ..Default::default()
            });
        } else if matches!(block, Block::Embed | Block::Final | Block::Head) {
            if line.starts_with("Range:") {
                let (lo, hi) = range(line, n)?;
                cur.min = Some(lo);
                cur.max = Some(hi);
            } else if line.starts_with("Mean:") {
                cur.mean = Some(num(field(line, "Mean").unwrap_or(""), n, "mean")?);
                if let Some(s) = field(line, "Std") {
                    cur.std = Some(num(s, n, "std")?);
                }
                // The block's statistics are complete once the mean line is read.
                let done = std::mem::take(&mut cur);
                match block {
                    Block::Embed => t.embed = Some(done.clone()),
                    Block::Final => t.final_norm = Some(done.clone()),
                    _ => t.logits = Some(done.clone()),
                }
                cur = done;
            }
        }
    }
    if t.layers.is_empty() {
        return err(0, "no `Layer N/M` blocks: not an `apr trace --payload` output");
    }
    if let Some(n) = t.n_layers {
        if n as usize != t.layers.len() {
            return err(0, format!("the trace announces {n} layers but lists {}", t.layers.len()));
        }
    }
    Ok(t)
}

/// llama.cpp graph tensor names → Parallax sites, most faithful first (qwen2's `ffn_down` is
/// also printed as `ffn_out`; Gemma 3's `ffn_out` is after the post-norm, so only a fallback).
const LLAMA_NAMES: &[(&str, &str)] = &[
    ("attn_norm", "attn_norm"),
    ("Qcur", "q"),
    ("Kcur", "k"),
    ("Vcur", "v"),
    ("kqv_out", "attn_out"),
    ("attn_post_norm", "attn_post_norm"),
    ("ffn_inp", "resid_attn"),
    ("ffn_norm", "ffn_norm"),
    ("ffn_gate", "ffn_gate"),
    ("ffn_up", "ffn_up"),
    ("ffn_silu", "ffn_silu"),
    ("ffn_gelu", "ffn_silu"),
    ("ffn_gate_par", "ffn_swigl"),
    ("ffn_swiglu", "ffn_swigl"),
    ("ffn_geglu", "ffn_swigl"),
    ("ffn_down", "ffn_down"),
    ("ffn_out", "ffn_down"),
    ("ffn_post_norm", "ffn_post_norm"),
    ("l_out", "resid_ffn"),
];

const LLAMA_GLOBAL: &[(&str, &str)] =
    &[("inp_embd", "embed"), ("result_norm", "final_norm"), ("result_output", "logits")];

/// Ops that only relabel or move a tensor (or rotate it, for q/k): the capture point is the op
/// before them.
const LLAMA_SKIP_OPS: &[&str] =
    &["RESHAPE", "VIEW", "PERMUTE", "TRANSPOSE", "CONT", "CPY", "ROPE", "GET_ROWS_BACK"];

/// `llama-eval-callback`.
pub fn parse_llama_eval_callback(text: &str) -> Result<Trace, TraceError> {
    struct Entry {
        name: String,
        layer: Option<u32>,
        op: String,
        shape: Vec<u64>,
        sum: Option<f64>,
        line: usize,
    }
    let mut entries: Vec<Entry> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        if let Some(at) = raw.find("ggml_debug:") {
            let rest = &raw[at + "ggml_debug:".len()..];
            let Some(eq) = rest.find(" = (") else {
                return err(n, "expected `NAME = (type) OP(…) = {ne0, ne1, ne2, ne3}`");
            };
            let name = rest[..eq].trim();
            let after = &rest[eq + " = (".len()..];
            let Some(close) = after.find(')') else {
                return err(n, "unclosed tensor type");
            };
            let op =
                after[close + 1..].trim_start().split('(').next().unwrap_or("").trim().to_string();
            let Some(shape_at) = after.rfind("= {") else {
                return err(n, "no output shape `= {…}`");
            };
            let shape_txt = after[shape_at + 3..].trim_end().trim_end_matches('}');
            let mut shape = Vec::with_capacity(4);
            for d in shape_txt.split(',') {
                match d.trim().parse::<u64>() {
                    Ok(v) if shape.len() < 4 => shape.push(v),
                    _ => return err(n, format!("bad shape `{{{shape_txt}}}`")),
                }
            }
            // The element count is the product: refuse shapes no tensor can have.
            if shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).is_none() {
                return err(n, format!("shape `{{{shape_txt}}}` has more than 2^64 elements"));
            }
            // `attn_norm-3` → layer 3; views are printed as `name (view)` and skipped below.
            let (base, layer) = match name.rsplit_once('-') {
                Some((b, l)) if !name.contains(' ') => match l.parse::<u32>() {
                    Ok(l) => (b.to_string(), Some(l)),
                    Err(_) => (name.to_string(), None),
                },
                _ => (name.to_string(), None),
            };
            entries.push(Entry { name: base, layer, op, shape, sum: None, line: n });
        } else if let Some(s) = raw.trim().strip_prefix("sum = ") {
            let Some(e) = entries.last_mut() else {
                return err(n, "`sum = …` before any tensor header");
            };
            // With ne3 > 1 one sum is printed per i3, running over the whole tensor: keep the last.
            e.sum = Some(num(s.split(',').next().unwrap_or(""), n, "sum")?);
        }
    }
    if entries.is_empty() {
        return err(0, "no `ggml_debug:` lines: not a llama-eval-callback output");
    }
    let mut t = Trace {
        format: TraceFormat::LlamaEvalCallback,
        model: None,
        tokens: None,
        n_layers: None,
        embed: None,
        layers: Vec::new(),
        final_norm: None,
        logits: None,
        ignored: Vec::new(),
    };
    let to_stat = |e: &Entry, site: &str| {
        // Checked when the line was parsed: the product fits.
        let count: u64 =
            e.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).unwrap_or(u64::MAX);
        TraceStat {
            site: site.to_string(),
            source_name: match e.layer {
                Some(l) => format!("{}-{l}", e.name),
                None => e.name.clone(),
            },
            count: Some(count),
            tokens: e.shape.get(1).copied(),
            mean: e.sum.filter(|_| count > 0).map(|s| s / count as f64),
            ..Default::default()
        }
    };
    // For each (layer, site) keep the last capture of the most faithful name.
    let mut best: Vec<(Option<u32>, &str, usize, usize)> = Vec::new(); // layer, site, priority, entry
    for (k, e) in entries.iter().enumerate() {
        if e.name.contains(' ') || LLAMA_SKIP_OPS.contains(&e.op.as_str()) {
            continue;
        }
        let table = if e.layer.is_some() { LLAMA_NAMES } else { LLAMA_GLOBAL };
        let Some(pri) = table.iter().position(|(n, _)| *n == e.name) else {
            if t.ignored.len() < 16 && !t.ignored.contains(&e.name) {
                t.ignored.push(e.name.clone());
            }
            continue;
        };
        let site = table[pri].1;
        match best.iter_mut().find(|b| b.0 == e.layer && b.1 == site) {
            Some(b) if pri <= b.2 => *b = (e.layer, site, pri, k),
            Some(_) => {}
            None => best.push((e.layer, site, pri, k)),
        }
    }
    for (layer, site, _, k) in best {
        let e = &entries[k];
        if e.sum.is_none() {
            return err(e.line, format!("tensor `{}` has no `sum = …` line", e.name));
        }
        let stat = to_stat(e, site);
        match layer {
            None => match site {
                "embed" => t.embed = Some(stat),
                "final_norm" => t.final_norm = Some(stat),
                _ => t.logits = Some(stat),
            },
            Some(l) => match t.layers.iter_mut().find(|x| x.index == l) {
                Some(x) => x.sites.push(stat),
                None => t.layers.push(TraceLayer { index: l, sites: vec![stat] }),
            },
        }
    }
    t.layers.sort_by_key(|l| l.index);
    t.n_layers = t.layers.last().map(|l| l.index + 1);
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LLAMA: &str = "\
llama_new_context_with_model: n_ctx = 512
ggml_debug:                 inp_embd = (f32)   GET_ROWS(token_embd.weight{896, 151936, 1, 1}, inp_tokens{7, 1, 1, 1}}) = {896, 7, 1, 1}
                                     [
                                       [ -0.0181,   0.0272,   0.0272, ...],
                                     ]
                                     sum = 1.750000
ggml_debug:              attn_norm-0 = (f32)        MUL(norm-0{896, 7, 1, 1}, blk.0.attn_norm.weight{896, 1, 1, 1}}) = {896, 7, 1, 1}
                                     sum = -3.500000
ggml_debug:                   Qcur-0 = (f32)    MUL_MAT(blk.0.attn_q.weight{896, 896, 1, 1}, attn_norm-0{896, 7, 1, 1}}) = {896, 7, 1, 1}
                                     sum = 10.000000
ggml_debug:                   Qcur-0 = (f32)        ADD(Qcur-0{896, 7, 1, 1}, blk.0.attn_q.bias{896, 1, 1, 1}}) = {896, 7, 1, 1}
                                     sum = 62.720000
ggml_debug:        Qcur-0 (reshaped) = (f32)    RESHAPE(Qcur-0{896, 7, 1, 1}, }) = {64, 14, 7, 1}
                                     sum = 62.720000
ggml_debug:                   Qcur-0 = (f32)       ROPE(Qcur-0 (reshaped){64, 14, 7, 1}, inp_pos{7, 1, 1, 1}}) = {64, 14, 7, 1}
                                     sum = 99.000000
ggml_debug:                ffn_out-0 = (f32)    MUL_MAT(blk.0.ffn_down.weight{4864, 896, 1, 1}, ffn_gate_par-0{4864, 7, 1, 1}}) = {896, 7, 1, 1}
                                     sum = 6.272000
ggml_debug:                  l_out-0 = (f32)        ADD(ffn_out-0{896, 7, 1, 1}, ffn_inp-0{896, 7, 1, 1}}) = {896, 7, 1, 1}
                                     sum = 0.000000
ggml_debug:                 kq_mask = (f32)       SCALE(x{1, 1, 1, 1}, }) = {32, 7, 1, 1}
                                     sum = 0.000000
";

    #[test]
    fn llama_eval_callback_gives_counts_and_means() {
        let t = parse_trace(LLAMA).unwrap();
        assert_eq!(t.format, TraceFormat::LlamaEvalCallback);
        let e = t.embed.as_ref().unwrap();
        assert_eq!((e.count, e.tokens), (Some(896 * 7), Some(7)));
        assert!((e.mean.unwrap() - 1.75 / 6272.0).abs() < 1e-12);
        // The bias-added projection, not the matmul before it nor the rotated one after.
        let q = t.stat(Some(0), "q").unwrap();
        assert!((q.mean.unwrap() - 0.01).abs() < 1e-12, "{q:?}");
        assert_eq!(q.std, None);
        assert_eq!(t.stat(Some(0), "ffn_down").unwrap().source_name, "ffn_out-0");
        assert!(t.stat(Some(0), "resid_ffn").is_some());
        assert_eq!(t.ignored, vec!["kq_mask".to_string()]);
        assert_eq!(t.n_layers, Some(1));
    }

    #[test]
    fn malformed_traces_name_the_line() {
        let bad = "ggml_debug: x-0 = (f32) ADD(a{1}, }) = {4, zz, 1, 1}\n";
        assert_eq!(parse_trace(bad).unwrap_err().line, 1);
        let no_sum = "ggml_debug: attn_norm-0 = (f32) MUL(a{1}, }) = {4, 1, 1, 1}\n";
        assert!(parse_trace(no_sum).unwrap_err().message.contains("sum"));
        assert!(parse_trace("hello").is_err());
        let apr = "LAYER-BY-LAYER ACTIVATIONS:\n  Layer  0/2 [OK]\n    qkv : mean= x std= 1\n";
        assert_eq!(parse_trace(apr).unwrap_err().line, 3);
    }

    #[test]
    fn a_range_line_with_brackets_in_the_wrong_order_is_refused() {
        // Regression (fuzzing, trace_import): `]` before `[` sliced the line backwards and panicked.
        let text = "APR-TRACE\nFINAL LAYER NORM:\n  Range: 63] x [1, \n";
        let e = parse_trace(text).unwrap_err();
        assert_eq!(e.line, 3, "{}", e.message);
        assert!(e.message.contains("Range: [min, max]"), "{}", e.message);
    }

    #[test]
    fn a_shape_whose_element_count_overflows_is_refused() {
        // Regression (fuzzing): the element count was an unchecked product and overflowed.
        let huge = "ggml_debug: attn_norm-0 = (f32) MUL(a{1}, }) = {4294967296, 4294967296, 1, 1}\n sum = 1.0\n";
        let e = parse_trace(huge).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("more than 2^64 elements"), "{}", e.message);
    }
}
