//! [`SourceBytes`]: what [`crate::ByteSource::read_range`] gives, the bytes of a range, owned.

use std::fmt;
use std::ops::Deref;

/// The bytes of one read, owned by the caller until dropped: a vector the source filled, or
/// natively the file's own pages mapped into the process ([`crate::FileSource`] maps the
/// tensors it is asked for instead of copying them out of the page cache). Reads as a `[u8]`.
pub struct SourceBytes(Repr);

enum Repr {
    Owned(Vec<u8>),
    #[cfg(not(target_arch = "wasm32"))]
    Mapped(memmap2::Mmap),
}

impl SourceBytes {
    /// The bytes as a vector: the same vector when the source filled one, a copy of a mapping.
    pub fn into_vec(self) -> Vec<u8> {
        match self.0 {
            Repr::Owned(v) => v,
            #[cfg(not(target_arch = "wasm32"))]
            Repr::Mapped(m) => m.to_vec(),
        }
    }

    /// Whether the bytes are the file's pages mapped, not a copy of them.
    pub fn is_mapped(&self) -> bool {
        match self.0 {
            Repr::Owned(_) => false,
            #[cfg(not(target_arch = "wasm32"))]
            Repr::Mapped(_) => true,
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn mapped(map: memmap2::Mmap) -> SourceBytes {
        SourceBytes(Repr::Mapped(map))
    }
}

impl Deref for SourceBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Owned(v) => v,
            #[cfg(not(target_arch = "wasm32"))]
            Repr::Mapped(m) => m,
        }
    }
}

/// A clone is a vector of the same bytes (a mapping's pages are copied).
impl Clone for SourceBytes {
    fn clone(&self) -> SourceBytes {
        SourceBytes::from(self.to_vec())
    }
}

impl AsRef<[u8]> for SourceBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl From<Vec<u8>> for SourceBytes {
    fn from(v: Vec<u8>) -> SourceBytes {
        SourceBytes(Repr::Owned(v))
    }
}

impl From<SourceBytes> for Vec<u8> {
    fn from(bytes: SourceBytes) -> Vec<u8> {
        bytes.into_vec()
    }
}

impl Default for SourceBytes {
    fn default() -> SourceBytes {
        SourceBytes(Repr::Owned(Vec::new()))
    }
}

impl fmt::Debug for SourceBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl PartialEq for SourceBytes {
    fn eq(&self, other: &SourceBytes) -> bool {
        **self == **other
    }
}

impl Eq for SourceBytes {}

impl PartialEq<[u8]> for SourceBytes {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}

impl PartialEq<&[u8]> for SourceBytes {
    fn eq(&self, other: &&[u8]) -> bool {
        **self == **other
    }
}

impl PartialEq<Vec<u8>> for SourceBytes {
    fn eq(&self, other: &Vec<u8>) -> bool {
        **self == **other
    }
}

impl<const N: usize> PartialEq<[u8; N]> for SourceBytes {
    fn eq(&self, other: &[u8; N]) -> bool {
        **self == other[..]
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for SourceBytes {
    fn eq(&self, other: &&[u8; N]) -> bool {
        **self == other[..]
    }
}
