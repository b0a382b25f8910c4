//! Fault injection: break one op of one path on purpose, so a user (and the test suite) can see
//! that the contract checks catch the classic porting bugs and name the layer and site where
//! they happen.
//!
//! The block asks here, at each op a fault can touch, what that path computes instead:
//! [`weights`] (the matrix: swapped or with broken Q4_K scales), [`bias`] (dropped) and
//! [`broken_scope`] (the probe's sample). Nothing else in the engine knows a fault kind.

use std::borrow::Cow;
use std::fmt;

use crate::options::Lane;
use crate::paths::{Matrix, PathKind, Storage};
use crate::weights::LayerWeights;
use crate::EngineError;

/// The kinds of fault Parallax can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// A Q4_K kernel that unpacks the 6-bit scales and mins of sub-blocks 4–7 the wrong way
    /// round (takes the min for the scale and the scale for the min).
    Q4kScales,
    /// The q/k/v biases are not added.
    DropBias,
    /// The gate and up projections are swapped.
    SwapGateUp,
    /// The probe on one path takes the last token only while the other takes all tokens — the
    /// upstream measurement artefact, reproduced.
    ScopeMismatch,
}

impl FaultKind {
    const ALL: [(FaultKind, &'static str); 4] = [
        (FaultKind::Q4kScales, "q4k-scales"),
        (FaultKind::DropBias, "drop-bias"),
        (FaultKind::SwapGateUp, "swap-gate-up"),
        (FaultKind::ScopeMismatch, "scope-mismatch"),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(k, _)| *k == self).map(|(_, n)| *n).unwrap_or("?")
    }
}

/// One injected fault: `KIND@LAYER[:SITE]`, applied to `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub layer: u32,
    /// The site it applies to; `None` for the kind's default sites.
    pub site: Option<String>,
    pub path: PathKind,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.kind.name(), self.layer)?;
        if let Some(s) = &self.site {
            write!(f, ":{s}")?;
        }
        write!(f, " on path {}", self.path.id())
    }
}

/// Matmul sites a site filter may name, per kind.
const MATMUL_SITES: &[&str] = &["q", "k", "v", "attn_proj", "ffn_gate", "ffn_up", "ffn_down"];

impl Fault {
    /// Parse `KIND@LAYER[:SITE]` for `path`.
    pub fn parse(spec: &str, path: PathKind) -> Result<Fault, String> {
        let usage = "write faults as KIND@LAYER[:SITE], e.g. q4k-scales@3:ffn_down; kinds: q4k-scales, drop-bias, swap-gate-up, scope-mismatch";
        let (kind, rest) = spec.split_once('@').ok_or_else(|| format!("`{spec}`: {usage}"))?;
        let kind = FaultKind::ALL
            .iter()
            .find(|(_, n)| *n == kind)
            .map(|(k, _)| *k)
            .ok_or_else(|| format!("`{kind}` is not a fault kind; {usage}"))?;
        let (layer, site) = match rest.split_once(':') {
            Some((l, s)) => (l, Some(s.to_string())),
            None => (rest, None),
        };
        let layer: u32 =
            layer.parse().map_err(|_| format!("`{layer}` is not a layer number; {usage}"))?;
        if let Some(s) = &site {
            let allowed: &[&str] = match kind {
                FaultKind::Q4kScales => MATMUL_SITES,
                FaultKind::DropBias => &["q", "k", "v"],
                FaultKind::SwapGateUp => &["ffn_gate", "ffn_up"],
                FaultKind::ScopeMismatch => &[],
            };
            if !allowed.is_empty() && !allowed.contains(&s.as_str()) {
                return Err(format!(
                    "{} cannot apply to site `{s}`; it applies to {}",
                    kind.name(),
                    allowed.join(", ")
                ));
            }
        }
        Ok(Fault { kind, layer, site, path })
    }

    fn site_matches(&self, site: &str) -> bool {
        match self.site.as_deref() {
            Some(s) => s == site,
            // The kind's default sites: drop-bias drops the q/k/v biases only (an output
            // projection's bias is not among its classic bugs).
            None if self.kind == FaultKind::DropBias => ["q", "k", "v"].contains(&site),
            None => true,
        }
    }

    /// Whether the fault breaks `lane`: its path on the first file (the file under test).
    fn breaks(&self, lane: Lane) -> bool {
        lane == Lane { path: self.path, file: 0 }
    }

    fn hits(&self, kind: FaultKind, layer: u32, site: &str, lane: Lane) -> bool {
        self.kind == kind && self.layer == layer && self.breaks(lane) && self.site_matches(site)
    }
}

/// Whether any of `faults` applies here.
fn any(faults: &[Fault], kind: FaultKind, layer: u32, site: &str, lane: Lane) -> bool {
    faults.iter().any(|f| f.hits(kind, layer, site, lane))
}

/// The matrix `lane` multiplies at `site` of layer `il` instead of `m`: the other of the
/// gate/up pair under `swap-gate-up` (both are swapped, whichever of the two the fault names),
/// then a copy with broken Q4_K scales under `q4k-scales`.
pub(crate) fn weights<'a>(
    faults: &[Fault],
    il: u32,
    site: &str,
    lane: Lane,
    m: &'a Matrix,
    layer: &'a LayerWeights,
) -> Result<Cow<'a, Matrix>, EngineError> {
    let swapped =
        faults.iter().any(|f| f.kind == FaultKind::SwapGateUp && f.layer == il && f.breaks(lane));
    let m = match site {
        "ffn_gate" if swapped => &layer.up,
        "ffn_up" if swapped => &layer.gate,
        _ => m,
    };
    if any(faults, FaultKind::Q4kScales, il, site, lane) {
        Ok(Cow::Owned(broken_q4k(m, il)?))
    } else {
        Ok(Cow::Borrowed(m))
    }
}

/// The bias `lane` adds at `site` of layer `il` (the product of `m`): none under
/// `drop-bias`, which refuses a projection without a bias rather than change nothing.
pub(crate) fn bias<'a>(
    faults: &[Fault],
    il: u32,
    site: &str,
    lane: Lane,
    m: &Matrix,
    bias: Option<&'a [f32]>,
) -> Result<Option<&'a [f32]>, EngineError> {
    if !any(faults, FaultKind::DropBias, il, site, lane) {
        return Ok(bias);
    }
    match bias {
        Some(_) => Ok(None),
        None => Err(EngineError::NoBias { layer: il, tensor: m.name.clone() }),
    }
}

/// The lanes whose probe at `site` of layer `il` takes the other scope (`scope-mismatch`).
pub(crate) fn broken_scope(faults: &[Fault], lanes: &[Lane], il: u32, site: &str) -> Vec<Lane> {
    lanes.iter().copied().filter(|l| any(faults, FaultKind::ScopeMismatch, il, site, *l)).collect()
}

/// A copy of `m` whose Q4_K blocks a kernel with swapped scale/min unpacking would see.
fn broken_q4k(m: &Matrix, il: u32) -> Result<Matrix, EngineError> {
    match &m.storage {
        Storage::Ggml { ty: parallax_quant::GgmlType::Q4_K, bytes, row_bytes } => {
            let mut bytes = bytes.to_vec();
            swap_q4k_scale_min(&mut bytes);
            Ok(Matrix {
                name: m.name.clone(),
                rows: m.rows,
                cols: m.cols,
                storage: Storage::Ggml {
                    ty: parallax_quant::GgmlType::Q4_K,
                    bytes: bytes.into(),
                    row_bytes: *row_bytes,
                },
            })
        }
        _ => Err(EngineError::NotQ4K {
            layer: il,
            tensor: m.name.clone(),
            ty: m.kernel_label(PathKind::F32).split(' ').next().unwrap_or("?").to_string(),
        }),
    }
}

/// Rewrite Q4_K blocks so that the correct kernel computes what a kernel with swapped scale/min
/// unpacking for sub-blocks 4–7 would: in ggml's 12-byte packing, the low 4 bits of those scales
/// and mins share bytes 8–11 (scale low nibble, min high nibble) and their top 2 bits sit in bits
/// 6–7 of bytes 0–3 (scale) and 4–7 (min).
pub fn swap_q4k_scale_min(blocks: &mut [u8]) {
    const BLOCK: usize = 144;
    for b in blocks.chunks_exact_mut(BLOCK) {
        let q = &mut b[4..16];
        for j in 0..4 {
            q[8 + j] = q[8 + j].rotate_left(4);
            let (hi_sc, hi_m) = (q[j] & 0xC0, q[4 + j] & 0xC0);
            q[j] = (q[j] & 0x3F) | hi_m;
            q[4 + j] = (q[4 + j] & 0x3F) | hi_sc;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_faults() {
        let f = Fault::parse("q4k-scales@3:ffn_down", PathKind::Q8).unwrap();
        assert_eq!(
            (f.kind, f.layer, f.site.as_deref()),
            (FaultKind::Q4kScales, 3, Some("ffn_down"))
        );
        assert_eq!(f.to_string(), "q4k-scales@3:ffn_down on path q8");
        assert_eq!(Fault::parse("drop-bias@0", PathKind::Q8).unwrap().site, None);
        assert!(Fault::parse("drop-bias@x", PathKind::Q8)
            .unwrap_err()
            .contains("not a layer number"));
        assert!(Fault::parse("melt@1", PathKind::Q8).unwrap_err().contains("not a fault kind"));
        assert!(Fault::parse("drop-bias@1:ffn_up", PathKind::Q8)
            .unwrap_err()
            .contains("applies to q, k, v"));
        assert!(Fault::parse("nolayer", PathKind::Q8).is_err());
    }

    #[test]
    fn swapped_scale_min_changes_only_sub_blocks_4_to_7() {
        // One Q4_K block with distinct 6-bit scales and mins, nibbles all 1.
        let mut block = vec![0u8; 144];
        block[0..2].copy_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
        block[2..4].copy_from_slice(&half::f16::from_f32(0.25).to_le_bytes());
        let (sc, mn): ([u8; 8], [u8; 8]) =
            ([1, 2, 3, 4, 50, 40, 30, 20], [5, 6, 7, 8, 9, 63, 33, 17]);
        let q = &mut block[4..16];
        for j in 0..4 {
            q[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
            q[j + 4] = mn[j] | ((mn[j + 4] >> 4) << 6);
            q[j + 8] = (sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4);
        }
        block[16..].fill(0x11);
        let mut good = vec![0f32; 256];
        parallax_quant::dequantize(parallax_quant::GgmlType::Q4_K, &block, &mut good).unwrap();
        let mut bad_block = block.clone();
        swap_q4k_scale_min(&mut bad_block);
        let mut bad = vec![0f32; 256];
        parallax_quant::dequantize(parallax_quant::GgmlType::Q4_K, &bad_block, &mut bad).unwrap();
        for j in 0..8 {
            let (g, b) = (good[j * 32], bad[j * 32]);
            if j < 4 {
                assert_eq!(g, b, "sub-block {j} untouched");
            } else {
                // value = d·sc·1 − dmin·m; swapped: d·m·1 − dmin·sc.
                assert_eq!(b, 0.5 * mn[j] as f32 - 0.25 * sc[j] as f32, "sub-block {j}");
            }
        }
    }
}
