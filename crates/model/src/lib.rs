//! One model view over GGUF and APR files.
//!
//! Owns: format detection, the [`Model`] (tensors with their [`Role`], hyperparameters, rows read
//! and dequantized to f32 on demand), the inspect [`ModelSummary`] that the CLI and the page both
//! show, and GGUF→APR conversion ([`convert`]). The rest of Parallax asks for
//! `blk.3.ffn_gate.weight` and never learns which writer named it what.
//! Knows nothing about forward passes, probes or reports.

mod compat;
pub mod convert;
mod names;
mod shard_names;
mod summary;
mod tokenizer;

use std::fmt;
use std::ops::Range;

use parallax_apr::AprFile;
use parallax_gguf::GgufFile;
use parallax_source::{ByteSource, SourceBytes, Window};

pub use compat::{check_compatible, counterpart, Incompatibility, Side};
pub use names::{LayerTensor, Param, Role};
pub use parallax_apr::TensorType;
pub use parallax_source::human_bytes;
pub use parallax_tokenizer::TokenizerConfig;
pub use shard_names::{order_chosen_files, shard_file_names, ChoiceError};
pub use summary::{
    parse_bytes, Hyperparameters, MetaEntry, ModelSummary, TensorSummary, TypeCount,
};

/// Which container the bytes are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Gguf { version: u32 },
    Apr { major: u8, minor: u8 },
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Format::Gguf { version } => write!(f, "GGUF v{version}"),
            Format::Apr { major, minor } => write!(f, "APR v{major}.{minor}"),
        }
    }
}

/// One tensor, whatever the container.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// The name as stored in the file.
    pub name: String,
    /// What the tensor is for, when Parallax knows (see [`Role::canonical_name`]).
    pub role: Option<Role>,
    pub ty: TensorType,
    /// ggml shape: `ne[0]` values per row, then rows (`ne[1]`), then higher dims.
    pub ne: Vec<u64>,
    /// Absolute offset of the payload in the file.
    pub offset: u64,
    pub n_bytes: u64,
}

impl Tensor {
    /// Values per row (`ne[0]`; 1 for a scalar).
    pub fn row_values(&self) -> usize {
        self.ne.first().copied().unwrap_or(1) as usize
    }
    /// Rows: every dimension above `ne[0]` flattened.
    pub fn n_rows(&self) -> u64 {
        self.ne.iter().skip(1).product()
    }
    pub fn n_elements(&self) -> u64 {
        self.ne.iter().product()
    }
    /// Bytes per row of the payload (0 for a tensor without rows).
    pub fn row_bytes(&self) -> u64 {
        self.n_bytes / self.n_rows().max(1)
    }
}

/// Why a model could not be opened or read.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ModelError {
    Gguf(parallax_gguf::GgufError),
    Apr(parallax_apr::AprError),
    Source(parallax_source::SourceError),
    /// The first bytes are neither GGUF nor APR.
    UnknownFormat {
        magic: [u8; 4],
    },
    /// The file holds no tensor of that name or role.
    NoSuchTensor {
        name: String,
    },
    /// The tensor's type cannot be turned into f32 here.
    Unsupported {
        tensor: String,
        ty: String,
    },
    Quant {
        tensor: String,
        error: parallax_quant::QuantError,
    },
    /// A GGUF split into shards that do not fit together (count, order, tensors).
    Split {
        message: String,
    },
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::Gguf(e) => write!(f, "{e}"),
            ModelError::Apr(e) => write!(f, "{e}"),
            ModelError::Source(e) => write!(f, "{e}"),
            ModelError::UnknownFormat { magic } => write!(
                f,
                "not a GGUF or APR model file (it starts with {}); Parallax reads GGUF v2/v3 and APR v2",
                describe_magic(magic)
            ),
            ModelError::NoSuchTensor { name } => write!(f, "the model has no tensor `{name}`"),
            ModelError::Unsupported { tensor, ty } => {
                write!(f, "tensor `{tensor}` has type {ty}, which Parallax cannot dequantize yet")
            }
            ModelError::Quant { tensor, error } => write!(f, "tensor `{tensor}`: {error}"),
            ModelError::Split { message } => write!(f, "split GGUF: {message}"),
        }
    }
}

impl std::error::Error for ModelError {}

fn describe_magic(m: &[u8; 4]) -> String {
    if m.iter().all(|b| b.is_ascii_graphic()) {
        format!("\"{}\"", String::from_utf8_lossy(m))
    } else {
        format!("bytes {:02x} {:02x} {:02x} {:02x}", m[0], m[1], m[2], m[3])
    }
}

enum Container<S> {
    /// `shards` holds the other shards of a split GGUF (with where each begins in `source`);
    /// `file` is the first, which carries the metadata.
    Gguf {
        file: Box<GgufFile>,
        shards: Vec<(u64, GgufFile)>,
        source: S,
    },
    Apr(Box<AprFile<S>>),
}

/// An opened model file: header parsed, tensors listed, no weights read.
pub struct Model<S: ByteSource> {
    container: Container<S>,
    tensors: Vec<Tensor>,
    architecture: Option<String>,
}

impl<S: ByteSource> Model<S> {
    /// Detect the format from the first bytes and read the header (never the weights).
    pub fn open(source: S) -> Result<Self, ModelError> {
        let mut magic = [0u8; 4];
        if source.len() < 4 {
            return Err(ModelError::Source(parallax_source::SourceError::OutOfBounds {
                offset: 0,
                len: 4,
                source_len: source.len(),
            }));
        }
        source.read_exact_at(0, &mut magic).map_err(ModelError::Source)?;
        match &magic {
            // GGUF, also byte-swapped ("FUGG") so the reader can name big-endian files.
            b"GGUF" | b"FUGG" => Self::open_gguf(source),
            // Any "APR?" goes to the APR reader, which names unsupported versions.
            m if &m[..3] == b"APR" => Self::open_apr(source),
            _ => Err(ModelError::UnknownFormat { magic }),
        }
    }

    fn open_gguf(source: S) -> Result<Self, ModelError> {
        let starts = source.parts();
        let shard_len =
            |k: usize| starts.get(k + 1).copied().unwrap_or(source.len()).saturating_sub(starts[k]);
        let file =
            GgufFile::read(&Window::new(&source, 0, shard_len(0))).map_err(ModelError::Gguf)?;
        let shards = Self::read_shards(&file, &source, &starts, shard_len)?;
        let architecture = file.get_str("general.architecture").map(str::to_string);
        let arch = architecture.as_deref().unwrap_or("");
        let all = std::iter::once((0, &file)).chain(shards.iter().map(|(b, f)| (*b, f)));
        let tensors = all
            .flat_map(|(base, f)| f.tensors().iter().map(move |t| (base, t)))
            .map(|(base, t)| Tensor {
                role: Role::from_name(&t.name, arch),
                name: t.name.clone(),
                ty: TensorType::Ggml(t.ty),
                ne: t.dims.clone(),
                offset: base + t.offset,
                n_bytes: t.n_bytes,
            })
            .collect();
        Ok(Model {
            container: Container::Gguf { file: Box::new(file), shards, source },
            tensors,
            architecture,
        })
    }

    /// The headers of shards 2… of a split GGUF (llama.cpp's `gguf-split` layout: every shard a
    /// GGUF of its own with `split.no`, `split.count` and, on the first, `split.tensors.count`),
    /// each with where it begins; none for a whole file. Checked before any tensor is read.
    fn read_shards(
        first: &GgufFile,
        source: &S,
        starts: &[u64],
        shard_len: impl Fn(usize) -> u64,
    ) -> Result<Vec<(u64, GgufFile)>, ModelError> {
        let split = |message: String| ModelError::Split { message };
        let count = first.get_u64("split.count").unwrap_or(1);
        if count != starts.len() as u64 {
            return Err(split(if starts.len() == 1 {
                format!(
                    "{} is shard 1 of {count} (split.count); open it as NAME-00001-of-{count:05}.gguf with the other shards beside it",
                    source.name()
                )
            } else {
                format!("split.count is {count}, but {} files were given", starts.len())
            }));
        }
        let mut shards = Vec::with_capacity(starts.len() - 1);
        for (k, &base) in starts.iter().enumerate().skip(1) {
            let f = GgufFile::read(&Window::new(source, base, shard_len(k)))
                .map_err(|e| split(format!("shard {} of {count}: {e}", k + 1)))?;
            let no = f.get_u64("split.no");
            if no != Some(k as u64) {
                return Err(split(format!(
                    "shard {} of {count} says it is split.no {}; give the shards in order",
                    k + 1,
                    no.map_or("(none)".to_string(), |n| n.to_string())
                )));
            }
            shards.push((base, f));
        }
        if count > 1 {
            let total: usize = first.tensors().len()
                + shards.iter().map(|(_, f)| f.tensors().len()).sum::<usize>();
            if let Some(want) = first.get_u64("split.tensors.count") {
                if want != total as u64 {
                    return Err(split(format!(
                        "split.tensors.count is {want}, but the shards hold {total} tensors"
                    )));
                }
            }
            let mut names = std::collections::HashSet::new();
            let every = first.tensors().iter().chain(shards.iter().flat_map(|(_, f)| f.tensors()));
            for t in every {
                if !names.insert(t.name.as_str()) {
                    return Err(split(format!("tensor `{}` is in two shards", t.name)));
                }
            }
        }
        Ok(shards)
    }

    fn open_apr(source: S) -> Result<Self, ModelError> {
        let file = AprFile::open(source).map_err(ModelError::Apr)?;
        let architecture = file.hyperparameters().ok().and_then(|h| h.architecture);
        let arch = architecture.as_deref().unwrap_or("");
        let tensors = file
            .tensors()
            .iter()
            .map(|t| Tensor {
                role: Role::from_name(&t.name, arch),
                name: t.name.clone(),
                ty: t.dtype,
                ne: t.ne(),
                offset: t.file_offset(),
                n_bytes: t.size,
            })
            .collect();
        Ok(Model { container: Container::Apr(Box::new(file)), tensors, architecture })
    }

    pub fn format(&self) -> Format {
        match &self.container {
            Container::Gguf { file, .. } => Format::Gguf { version: file.version() },
            Container::Apr(file) => {
                let (major, minor) = file.header().version;
                Format::Apr { major, minor }
            }
        }
    }

    pub fn source(&self) -> &S {
        match &self.container {
            Container::Gguf { source, .. } => source,
            Container::Apr(file) => file.source(),
        }
    }

    /// `general.architecture` (GGUF) or `architecture` (APR).
    pub fn architecture(&self) -> Option<&str> {
        self.architecture.as_deref()
    }

    /// The GGUF header, when the file is a GGUF.
    pub fn gguf(&self) -> Option<&GgufFile> {
        match &self.container {
            Container::Gguf { file, .. } => Some(file),
            Container::Apr(_) => None,
        }
    }

    /// The APR file, when the file is an APR.
    pub fn apr(&self) -> Option<&AprFile<S>> {
        match &self.container {
            Container::Apr(file) => Some(file),
            Container::Gguf { .. } => None,
        }
    }

    pub fn tensors(&self) -> &[Tensor] {
        &self.tensors
    }

    /// A tensor by its name in the file, or by its canonical GGUF name
    /// (`blk.0.ffn_gate.weight` finds `model.layers.0.mlp.gate_proj.weight` in an HF-named APR).
    pub fn tensor(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|t| t.name == name).or_else(|| {
            let arch = self.architecture().unwrap_or("");
            let role = Role::from_name(name, arch)?;
            self.tensor_by_role(role)
        })
    }

    pub fn tensor_by_role(&self, role: Role) -> Option<&Tensor> {
        self.tensors.iter().find(|t| t.role == Some(role))
    }

    /// The raw payload bytes of rows `rows` (ne1 index) of `tensor`, reading only those bytes.
    pub fn read_raw_rows(
        &self,
        tensor: &Tensor,
        rows: Range<u64>,
    ) -> Result<SourceBytes, ModelError> {
        match &self.container {
            Container::Gguf { file, shards, source } => {
                let first_len = shards.first().map_or(source.len(), |(b, _)| *b);
                let mut at = std::iter::once((0, first_len, &**file)).chain(
                    shards.iter().enumerate().map(|(k, (base, f))| {
                        let end = shards.get(k + 1).map_or(source.len(), |(b, _)| *b);
                        (*base, end - base, f)
                    }),
                );
                let (base, len, f, info) = at
                    .find_map(|(b, l, f)| f.tensor(&tensor.name).map(|i| (b, l, f, i)))
                    .ok_or_else(|| no_such(&tensor.name))?;
                f.tensor_rows(&Window::new(source, base, len), info, rows).map_err(ModelError::Gguf)
            }
            Container::Apr(file) => file.tensor_rows(&tensor.name, rows).map_err(ModelError::Apr),
        }
    }

    /// Rows `rows` of `tensor` dequantized to f32 (bit-exact with ggml for GGML types).
    pub fn read_f32_rows(&self, tensor: &Tensor, rows: Range<u64>) -> Result<Vec<f32>, ModelError> {
        let mut out = Vec::new();
        self.read_f32_rows_into(tensor, rows, &mut out)?;
        Ok(out)
    }

    /// [`Model::read_f32_rows`] into `out` (its old contents replaced), so that a caller reading
    /// chunk after chunk reuses one buffer instead of mapping, zeroing and freeing one each time.
    pub fn read_f32_rows_into(
        &self,
        tensor: &Tensor,
        rows: Range<u64>,
        out: &mut Vec<f32>,
    ) -> Result<(), ModelError> {
        match (&self.container, tensor.ty) {
            (Container::Apr(file), _) => {
                *out = file.tensor_rows_f32(&tensor.name, rows).map_err(ModelError::Apr)?;
                Ok(())
            }
            (Container::Gguf { .. }, TensorType::Ggml(ty)) => {
                if !ty.is_dequantizable() {
                    return Err(ModelError::Unsupported {
                        tensor: tensor.name.clone(),
                        ty: ty.name().into(),
                    });
                }
                let bytes = self.read_raw_rows(tensor, rows.clone())?;
                let n = (rows.end - rows.start) as usize * tensor.row_values();
                out.clear();
                out.resize(n, 0.0);
                parallax_quant::dequantize(ty, &bytes, out)
                    .map_err(|error| ModelError::Quant { tensor: tensor.name.clone(), error })
            }
            (Container::Gguf { .. }, other) => Err(ModelError::Unsupported {
                tensor: tensor.name.clone(),
                ty: other.name().into(),
            }),
        }
    }

    /// The inspect summary with long metadata arrays previewed.
    pub fn summary(&self) -> ModelSummary {
        summary::summarize(self, false)
    }

    /// The inspect summary with every metadata array element.
    pub fn summary_full(&self) -> ModelSummary {
        summary::summarize(self, true)
    }

    /// Hyperparameters read from the metadata (missing ones are `None`).
    pub fn hyperparameters(&self) -> Hyperparameters {
        summary::hyperparameters(self)
    }
}

fn no_such(name: &str) -> ModelError {
    ModelError::NoSuchTensor { name: name.to_string() }
}
