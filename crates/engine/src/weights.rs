//! Loading one layer's weights (and the embedding rows, and the output head in chunks) from the
//! model: only the bytes needed, released when the layer is done.

use parallax_model::{LayerTensor, Model, Param, Role, Tensor, TensorType};
use parallax_source::ByteSource;

use crate::paths::{Matrix, Storage};
use crate::{ArchConfig, EngineError};

pub struct LayerWeights {
    pub attn_norm: Vec<f32>,
    pub wq: Matrix,
    pub wk: Matrix,
    pub wv: Matrix,
    pub bq: Option<Vec<f32>>,
    pub bk: Option<Vec<f32>>,
    pub bv: Option<Vec<f32>>,
    pub q_norm: Option<Vec<f32>>,
    pub k_norm: Option<Vec<f32>>,
    pub wo: Matrix,
    pub post_attn_norm: Option<Vec<f32>>,
    pub ffn_norm: Vec<f32>,
    pub gate: Matrix,
    pub up: Matrix,
    pub down: Matrix,
    pub post_ffw_norm: Option<Vec<f32>>,
    /// Bytes read from the source for this layer.
    pub bytes: u64,
}

/// A tensor of a layer as [`LayerWeights`] holds it.
pub enum Held<'a> {
    Vector(&'a [f32]),
    Matrix(&'a Matrix),
}

impl Held<'_> {
    /// Rows `rows` (of `row_values` values each) as f32 into `out` (its old contents
    /// replaced), dequantized as [`Model::read_f32_rows`] dequantizes them: the same bits,
    /// without reading the file again.
    pub fn rows_into(
        &self,
        rows: std::ops::Range<u64>,
        row_values: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), EngineError> {
        let (start, end) = (rows.start as usize, rows.end as usize);
        out.clear();
        match self {
            Held::Vector(v) => out.extend_from_slice(&v[start * row_values..end * row_values]),
            Held::Matrix(m) => match &m.storage {
                Storage::F32 { values, .. } => {
                    out.extend_from_slice(&values[start * row_values..end * row_values])
                }
                Storage::Ggml { ty, bytes, row_bytes } => {
                    out.resize((end - start) * row_values, 0.0);
                    parallax_quant::dequantize(
                        *ty,
                        &bytes[start * row_bytes..end * row_bytes],
                        out,
                    )
                    .map_err(|error| {
                        EngineError::Model(parallax_model::ModelError::Quant {
                            tensor: m.name.clone(),
                            error,
                        })
                    })?;
                }
            },
        }
        Ok(())
    }
}

impl LayerWeights {
    /// The layer's tensor of `kind` and `param`, if the layer holds it.
    pub fn held(&self, kind: LayerTensor, param: Param) -> Option<Held<'_>> {
        use LayerTensor::*;
        match (kind, param) {
            (AttnNorm, Param::Weight) => Some(Held::Vector(&self.attn_norm)),
            (AttnQ, Param::Weight) => Some(Held::Matrix(&self.wq)),
            (AttnK, Param::Weight) => Some(Held::Matrix(&self.wk)),
            (AttnV, Param::Weight) => Some(Held::Matrix(&self.wv)),
            (AttnQ, Param::Bias) => vector(&self.bq),
            (AttnK, Param::Bias) => vector(&self.bk),
            (AttnV, Param::Bias) => vector(&self.bv),
            (AttnQNorm, Param::Weight) => vector(&self.q_norm),
            (AttnKNorm, Param::Weight) => vector(&self.k_norm),
            (AttnOutput, Param::Weight) => Some(Held::Matrix(&self.wo)),
            (PostAttentionNorm, Param::Weight) => vector(&self.post_attn_norm),
            (FfnNorm, Param::Weight) => Some(Held::Vector(&self.ffn_norm)),
            (FfnGate, Param::Weight) => Some(Held::Matrix(&self.gate)),
            (FfnUp, Param::Weight) => Some(Held::Matrix(&self.up)),
            (FfnDown, Param::Weight) => Some(Held::Matrix(&self.down)),
            (PostFfwNorm, Param::Weight) => vector(&self.post_ffw_norm),
            _ => None,
        }
    }
}

fn vector(v: &Option<Vec<f32>>) -> Option<Held<'_>> {
    v.as_deref().map(Held::Vector)
}

/// What one layer will hold in memory while it runs, estimated from the tensor table and the
/// shapes before a byte of it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerMemory {
    /// The layer's weights as held (packed bytes; values as f32 for types the dots cannot read).
    pub weights: u64,
    /// Activations of every path for every prompt position, attention scores and the f32 row
    /// tiles of dequantizing matmuls.
    pub work: u64,
}

impl LayerMemory {
    pub fn total(&self) -> u64 {
        self.weights.saturating_add(self.work)
    }
}

/// The bytes of rows `rows` of `t`.
fn rows_range(t: &Tensor, rows: std::ops::Range<u64>) -> std::ops::Range<u64> {
    let row_bytes = t.row_bytes();
    t.offset + rows.start * row_bytes..t.offset + rows.end * row_bytes
}

/// Reads tensors of one model and counts the bytes it pulled.
pub struct Loader<'m, S: ByteSource> {
    pub model: &'m Model<S>,
    pub cfg: &'m ArchConfig,
}

impl<'m, S: ByteSource> Loader<'m, S> {
    fn tensor(&self, role: Role) -> Option<&'m Tensor> {
        self.model.tensor_by_role(role)
    }

    fn require(&self, role: Role) -> Result<&'m Tensor, EngineError> {
        self.tensor(role).ok_or_else(|| EngineError::MissingTensor {
            name: role.canonical_name(),
            arch: self.cfg.name.clone(),
        })
    }

    /// A 1-D tensor (norm weight, bias) of `len` values, as f32.
    fn vector(&self, role: Role, len: usize, bytes: &mut u64) -> Result<Vec<f32>, EngineError> {
        let t = self.require(role)?;
        if t.n_elements() != len as u64 {
            return Err(shape_error(t, &format!("{len} values")));
        }
        *bytes += t.n_bytes;
        let rows = t.n_rows();
        Ok(self.model.read_f32_rows(t, 0..rows)?)
    }

    fn optional_vector(
        &self,
        role: Role,
        len: usize,
        bytes: &mut u64,
    ) -> Result<Option<Vec<f32>>, EngineError> {
        match self.tensor(role) {
            Some(_) => self.vector(role, len, bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Rows `rows` of a matrix tensor with `cols` inputs.
    pub fn matrix_rows(
        &self,
        t: &Tensor,
        cols: usize,
        rows: std::ops::Range<u64>,
    ) -> Result<(Matrix, u64), EngineError> {
        if t.row_values() != cols || t.ne.len() > 2 {
            return Err(shape_error(t, &format!("a matrix with rows of {cols} values")));
        }
        let n = (rows.end - rows.start) as usize;
        let storage = match t.ty {
            TensorType::Ggml(ty) if ty.bytes_for(cols as u64).is_some() => {
                let bytes = self.model.read_raw_rows(t, rows)?;
                let row_bytes = bytes.len() / n.max(1);
                Storage::Ggml { ty, bytes, row_bytes }
            }
            other => Storage::F32 {
                values: self.model.read_f32_rows(t, rows)?,
                from: other.name().to_string(),
            },
        };
        let read = t.row_bytes() * n as u64;
        Ok((Matrix { name: t.name.clone(), rows: n, cols, storage }, read))
    }

    fn matrix(
        &self,
        role: Role,
        rows: usize,
        cols: usize,
        bytes: &mut u64,
    ) -> Result<Matrix, EngineError> {
        let t = self.require(role)?;
        if t.n_rows() != rows as u64 {
            return Err(shape_error(t, &format!("{rows} rows of {cols} values")));
        }
        let (m, read) = self.matrix_rows(t, cols, 0..rows as u64)?;
        *bytes += read;
        Ok(m)
    }

    /// [`LayerMemory`] of layer `il` for `n_tokens` prompt positions on `n_paths` paths.
    pub fn layer_memory(&self, il: u32, n_tokens: usize, n_paths: usize) -> LayerMemory {
        let c = self.cfg;
        let weights = self
            .model
            .tensors()
            .iter()
            .filter(|t| matches!(t.role, Some(Role::Layer { layer, .. }) if layer == il))
            .map(|t| match t.ty {
                TensorType::Ggml(_) => t.n_bytes,
                // Read, then held as f32 values.
                _ => t.n_bytes.saturating_add(t.n_elements().saturating_mul(4)),
            })
            .fold(0u64, u64::saturating_add);
        let (n, q_dim, kv_dim) =
            (n_tokens as u64, (c.n_head * c.head_dim) as u64, (c.n_head_kv * c.head_dim) as u64);
        // Per path: residual, norm and projection outputs, attention output, the FFN's four
        // buffers, and one head's scores at a time per position pair.
        let per_path = n
            .saturating_mul(4 * c.n_embd as u64 + 2 * q_dim + 2 * kv_dim + 4 * c.n_ff as u64)
            .saturating_add((c.n_head as u64).saturating_mul(n).saturating_mul(n));
        let tiles = 32
            * (c.n_embd.max(c.n_ff).max(c.n_head * c.head_dim) as u64)
            * crate::worker_threads() as u64;
        let work = per_path.saturating_mul(n_paths as u64).saturating_add(tiles).saturating_mul(4);
        LayerMemory { weights, work }
    }

    /// Tells the source that layer `il`'s tensors are read next ([`ByteSource::prefetch`]): a
    /// source whose reads cost a round trip each (the browser's) fetches them in one go, a local
    /// file (the CLI's) reads them on another thread while the current layer computes.
    pub fn prefetch_layer(&self, il: u32) -> Result<(), EngineError> {
        self.hint(&self.layer_ranges(il))
    }

    /// Tells the source that rows `rows` of `t` (a chunk of the output head) are read next.
    pub fn prefetch_rows(&self, t: &Tensor, rows: std::ops::Range<u64>) -> Result<(), EngineError> {
        self.hint(std::slice::from_ref(&rows_range(t, rows)))
    }

    /// Tells the source what the run reads after the layer it hinted: layers `layers`, then
    /// the output head `head` in the chunks of rows `head_chunks` ([`ByteSource::prefetch_later`];
    /// each is hinted again in its turn, as [`Loader::prefetch_layer`] and
    /// [`Loader::prefetch_rows`] name it).
    pub fn prefetch_later(
        &self,
        layers: std::ops::Range<u32>,
        head: &Tensor,
        head_chunks: impl Iterator<Item = std::ops::Range<u64>>,
    ) -> Result<(), EngineError> {
        let mut groups: Vec<Vec<std::ops::Range<u64>>> =
            layers.map(|il| self.layer_ranges(il)).collect();
        groups.extend(head_chunks.map(|rows| vec![rows_range(head, rows)]));
        self.model
            .source()
            .prefetch_later(&groups)
            .map_err(|e| EngineError::Model(parallax_model::ModelError::Source(e)))
    }

    /// The byte ranges of layer `il`'s tensors.
    fn layer_ranges(&self, il: u32) -> Vec<std::ops::Range<u64>> {
        self.model
            .tensors()
            .iter()
            .filter(|t| matches!(t.role, Some(Role::Layer { layer, .. }) if layer == il))
            .map(|t| t.offset..t.offset.saturating_add(t.n_bytes))
            .collect()
    }

    /// Releases what [`Loader::prefetch_layer`] made the source hold.
    pub fn release_prefetch(&self) -> Result<(), EngineError> {
        self.hint(&[])
    }

    /// [`ByteSource::prefetch`] on the model's source.
    fn hint(&self, ranges: &[std::ops::Range<u64>]) -> Result<(), EngineError> {
        self.model
            .source()
            .prefetch(ranges)
            .map_err(|e| EngineError::Model(parallax_model::ModelError::Source(e)))
    }

    /// Layer `il`'s weights, read in file order: a source that streams the file (the page's
    /// fetch worker) delivers it front to back, so each tensor is taken as it arrives, with no
    /// copy of the whole layer held to serve them in another order.
    pub fn layer(&self, il: u32) -> Result<LayerWeights, EngineError> {
        use LayerTensor::*;
        use Param::{Bias, Weight};
        /// What a role is read as: a vector of `len` values (optional or not), or a matrix of
        /// rows × cols.
        #[derive(Clone, Copy)]
        enum Shape {
            Vector(usize),
            Optional(usize),
            Matrix(usize, usize),
        }
        let c = self.cfg;
        let (q_dim, kv_dim) = (c.n_head * c.head_dim, c.n_head_kv * c.head_dim);
        let wants: [(LayerTensor, Param, Shape); 16] = [
            (AttnNorm, Weight, Shape::Vector(c.n_embd)),
            (AttnQ, Weight, Shape::Matrix(q_dim, c.n_embd)),
            (AttnK, Weight, Shape::Matrix(kv_dim, c.n_embd)),
            (AttnV, Weight, Shape::Matrix(kv_dim, c.n_embd)),
            (AttnQ, Bias, Shape::Optional(q_dim)),
            (AttnK, Bias, Shape::Optional(kv_dim)),
            (AttnV, Bias, Shape::Optional(kv_dim)),
            (AttnQNorm, Weight, Shape::Optional(c.head_dim)),
            (AttnKNorm, Weight, Shape::Optional(c.head_dim)),
            (AttnOutput, Weight, Shape::Matrix(c.n_embd, q_dim)),
            (PostAttentionNorm, Weight, Shape::Optional(c.n_embd)),
            (FfnNorm, Weight, Shape::Vector(c.n_embd)),
            (FfnGate, Weight, Shape::Matrix(c.n_ff, c.n_embd)),
            (FfnUp, Weight, Shape::Matrix(c.n_ff, c.n_embd)),
            (FfnDown, Weight, Shape::Matrix(c.n_embd, c.n_ff)),
            (PostFfwNorm, Weight, Shape::Optional(c.n_embd)),
        ];
        let role = |k: usize| Role::Layer { layer: il, kind: wants[k].0, param: wants[k].1 };
        // Absent tensors sort last, in the order above (their errors name the first missing).
        let mut order: Vec<usize> = (0..wants.len()).collect();
        order.sort_by_key(|&k| self.tensor(role(k)).map_or(u64::MAX, |t| t.offset));
        let mut bytes = 0u64;
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; wants.len()];
        let mut matrices: Vec<Option<Matrix>> = (0..wants.len()).map(|_| None).collect();
        for k in order {
            match wants[k].2 {
                Shape::Vector(len) => vectors[k] = Some(self.vector(role(k), len, &mut bytes)?),
                Shape::Optional(len) => {
                    vectors[k] = self.optional_vector(role(k), len, &mut bytes)?
                }
                Shape::Matrix(rows, cols) => {
                    matrices[k] = Some(self.matrix(role(k), rows, cols, &mut bytes)?)
                }
            }
        }
        // Taken by the table's index: a required vector and every matrix were read above (or
        // their error returned).
        let mut v = |k: usize| vectors[k].take();
        let mut m = |k: usize| matrices[k].take().expect("every matrix was read");
        Ok(LayerWeights {
            attn_norm: v(0).expect("a required vector was read"),
            wq: m(1),
            wk: m(2),
            wv: m(3),
            bq: v(4),
            bk: v(5),
            bv: v(6),
            q_norm: v(7),
            k_norm: v(8),
            wo: m(9),
            post_attn_norm: v(10),
            ffn_norm: v(11).expect("a required vector was read"),
            gate: m(12),
            up: m(13),
            down: m(14),
            post_ffw_norm: v(15),
            bytes,
        })
    }

    /// The embedding rows of `tokens` only: each distinct row read once, and rows less than
    /// [`EMBEDDING_GAP_BYTES`] apart in one read with the rows between them — by URL each read
    /// is a request, and a prompt's rows one request each cost a round trip apiece (7 tokens from a
    /// server 50 ms away: 0.35 s before the first layer). Returns the rows in `tokens`' order
    /// and the bytes of the rows the prompt uses.
    pub fn embeddings(&self, tokens: &[u32]) -> Result<(Vec<f32>, u64), EngineError> {
        let t = self.require(Role::TokenEmbd)?;
        let n_embd = self.cfg.n_embd;
        if t.row_values() != n_embd {
            return Err(shape_error(t, &format!("rows of {n_embd} values")));
        }
        if let Some(&id) = tokens.iter().find(|&&id| id as u64 >= t.n_rows()) {
            return Err(EngineError::TokenOutOfRange { id, vocab: t.n_rows() });
        }
        let mut rows: Vec<u64> = tokens.iter().map(|&id| u64::from(id)).collect();
        rows.sort_unstable();
        rows.dedup();
        let gap_rows = EMBEDDING_GAP_BYTES / t.row_bytes().max(1);
        // Each distinct row's values, found by binary search in `rows`.
        let mut values = vec![0f32; rows.len() * n_embd];
        let mut first = 0;
        while first < rows.len() {
            let mut last = first;
            while last + 1 < rows.len() && rows[last + 1] - rows[last] <= gap_rows + 1 {
                last += 1;
            }
            let span = self.model.read_f32_rows(t, rows[first]..rows[last] + 1)?;
            for (k, &row) in rows.iter().enumerate().take(last + 1).skip(first) {
                let at = (row - rows[first]) as usize * n_embd;
                values[k * n_embd..(k + 1) * n_embd].copy_from_slice(&span[at..at + n_embd]);
            }
            first = last + 1;
        }
        let mut out = Vec::with_capacity(tokens.len() * n_embd);
        for &id in tokens {
            let k = rows.binary_search(&u64::from(id)).expect("every token's row was read");
            out.extend_from_slice(&values[k * n_embd..(k + 1) * n_embd]);
        }
        Ok((out, t.row_bytes() * tokens.len() as u64))
    }

    /// The output head (or the tied embedding) and the final norm.
    pub fn output_head(&self) -> Result<(&'m Tensor, Vec<f32>, u64), EngineError> {
        let head =
            self.tensor(Role::Output).map(Ok).unwrap_or_else(|| self.require(Role::TokenEmbd))?;
        let mut bytes = 0;
        let norm = self.vector(Role::OutputNorm, self.cfg.n_embd, &mut bytes)?;
        Ok((head, norm, bytes))
    }
}

/// Embedding rows at most this far apart are read together with the rows between them: about
/// what a server sends in one round trip's time on a 50 Mbit/s line, and cheap to dequantize.
const EMBEDDING_GAP_BYTES: u64 = 256 * 1024;

fn shape_error(t: &Tensor, expected: &str) -> EngineError {
    EngineError::BadShape {
        tensor: t.name.clone(),
        ne: t.ne.clone(),
        expected: expected.to_string(),
    }
}
