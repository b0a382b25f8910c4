//! One model view over GGUF and APR files.
//!
//! Owns: format detection, the [`Model`] (tensors with their [`Role`], hyperparameters, rows read
//! and dequantized to f32 on demand), the inspect [`ModelSummary`] that the CLI and the page both
//! show, and GGUF→APR conversion ([`convert`]). The rest of Parallax asks for
//! `blk.3.ffn_gate.weight` and never learns which writer named it what.
//! Knows nothing about forward passes, probes or reports.

pub mod convert;
mod names;
mod summary;
mod tokenizer;

use std::fmt;
use std::ops::Range;

use parallax_apr::AprFile;
use parallax_gguf::GgufFile;
use parallax_source::ByteSource;

pub use names::{LayerTensor, Param, Role};
pub use parallax_apr::TensorType;
pub use parallax_tokenizer::TokenizerConfig;
pub use summary::{
    human_bytes, parse_bytes, Hyperparameters, MetaEntry, ModelSummary, TensorSummary, TypeCount,
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
    Gguf { file: Box<GgufFile>, source: S },
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
        let file = GgufFile::read(&source).map_err(ModelError::Gguf)?;
        let architecture = file.get_str("general.architecture").map(str::to_string);
        let arch = architecture.as_deref().unwrap_or("");
        let tensors = file
            .tensors()
            .iter()
            .map(|t| Tensor {
                role: Role::from_name(&t.name, arch),
                name: t.name.clone(),
                ty: TensorType::Ggml(t.ty),
                ne: t.dims.clone(),
                offset: t.offset,
                n_bytes: t.n_bytes,
            })
            .collect();
        Ok(Model {
            container: Container::Gguf { file: Box::new(file), source },
            tensors,
            architecture,
        })
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
    pub fn read_raw_rows(&self, tensor: &Tensor, rows: Range<u64>) -> Result<Vec<u8>, ModelError> {
        match &self.container {
            Container::Gguf { file, source } => {
                let info = file.tensor(&tensor.name).ok_or_else(|| no_such(&tensor.name))?;
                file.tensor_rows(source, info, rows).map_err(ModelError::Gguf)
            }
            Container::Apr(file) => file.tensor_rows(&tensor.name, rows).map_err(ModelError::Apr),
        }
    }

    /// Rows `rows` of `tensor` dequantized to f32 (bit-exact with ggml for GGML types).
    pub fn read_f32_rows(&self, tensor: &Tensor, rows: Range<u64>) -> Result<Vec<f32>, ModelError> {
        match (&self.container, tensor.ty) {
            (Container::Apr(file), _) => {
                file.tensor_rows_f32(&tensor.name, rows).map_err(ModelError::Apr)
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
                let mut out = vec![0f32; n];
                parallax_quant::dequantize(ty, &bytes, &mut out)
                    .map_err(|error| ModelError::Quant { tensor: tensor.name.clone(), error })?;
                Ok(out)
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
