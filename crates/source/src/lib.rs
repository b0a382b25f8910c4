//! Byte sources: the one way Parallax reads model bytes.
//!
//! Owns the [`ByteSource`] trait ("give me bytes `[a, b)`") and its native implementations
//! ([`FileSource`], [`MemorySource`]) plus [`CountingSource`], which records how many bytes were
//! pulled (progress bars, and tests proving readers never touch more than they need), and the
//! read-ahead wrappers that serve the trait's `prefetch` hint ([`ReadAhead`], and natively
//! [`BackgroundReadAhead`], which reads the next layer while the current one computes, and
//! [`StreamedReads`], which takes hinted spans from a stream that fetches them on its own), and
//! the wrapper that keeps a file's first bytes from one opening to the next ([`KeptStart`]).
//! Knows nothing about file formats, tensors or HTTP: a Range-request source and a browser
//! `File` source implement the same trait in their own crates.
//!
//! The trait is synchronous on purpose: in the browser the engine runs in a Web Worker, where
//! `FileReaderSync` and synchronous `XMLHttpRequest` with a `Range` header read bytes without
//! `async`, so one reader implementation serves the CLI, the worker and the tests.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

mod bytes;
mod kept;
mod streamed;
pub use bytes::SourceBytes;
pub use kept::{KeptStart, StartRecording};
pub use streamed::{SpanStream, StreamedReads};

/// Why a read failed. Every variant names the bytes that were asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceError {
    /// The range lies (partly) past the end of the source.
    OutOfBounds { offset: u64, len: u64, source_len: u64 },
    /// The underlying medium failed (I/O error, network error, browser error).
    Io { offset: u64, len: u64, message: String },
    /// The source changed while being read (size or validator changed between reads).
    Changed { message: String },
    /// The user cancelled the run.
    Cancelled,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::OutOfBounds { offset, len, source_len } => write!(
                f,
                "tried to read {len} bytes at offset {offset}, but the file has only {source_len} bytes \
                 (is it truncated?)"
            ),
            SourceError::Io { offset, len, message } => {
                write!(f, "reading {len} bytes at offset {offset} failed: {message}")
            }
            SourceError::Changed { message } => write!(f, "the file changed while it was being read: {message}"),
            SourceError::Cancelled => write!(f, "cancelled"),
        }
    }
}

impl std::error::Error for SourceError {}

/// Random access to a sequence of bytes of known length.
///
/// Implementations must return exactly the requested bytes or an error; short reads are an error
/// ([`SourceError::OutOfBounds`] past the end, [`SourceError::Io`] otherwise).
pub trait ByteSource {
    /// Total length of the source in bytes.
    fn len(&self) -> u64;

    /// Fill `buf` with the bytes `[offset, offset + buf.len())`.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError>;

    /// A short human name for messages (a path, a URL, "memory").
    fn name(&self) -> String;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A hint: the caller is about to read each of `ranges` (a model layer's tensors), in any
    /// order. A source whose every read costs a round trip (a browser `File` slice, an HTTP
    /// request) may fetch them in one go ([`ReadAhead`]); a local file may read them on another
    /// thread meanwhile ([`BackgroundReadAhead`]). No ranges releases whatever such a source
    /// holds. Wrappers pass the hint on to the source below them (one that hashes along a run
    /// reads its gap up to the hinted bytes then). The default does nothing.
    fn prefetch(&self, ranges: &[Range<u64>]) -> Result<(), SourceError> {
        let _ = ranges;
        Ok(())
    }

    /// A hint further ahead than [`ByteSource::prefetch`]: after what it hinted last, the
    /// caller reads each of `groups` (each as a `prefetch` would name it: a layer's tensors, a
    /// chunk of the output head), in this order, and still hints each group when its turn
    /// comes. A source that fetches in the background into bounded memory ([`StreamedReads`],
    /// the page's stream) keeps fetching along them while the caller computes, instead of
    /// idling until the next hint. Reads nothing itself; wrappers pass it on (one that hashes
    /// along without filling its gaps). The default does nothing.
    fn prefetch_later(&self, groups: &[Vec<Range<u64>>]) -> Result<(), SourceError> {
        let _ = groups;
        Ok(())
    }

    /// Where each part of the source begins, for a source made of several files end to end
    /// (the shards of a split GGUF, [`Shards`]); `[0]` for one file. Wrappers forward it.
    fn parts(&self) -> Vec<u64> {
        vec![0]
    }

    /// The bytes of `range`, owned: by default read into a new vector; a source that can lend
    /// them without a copy (a mapped local file) overrides it. The bounds are checked against
    /// [`ByteSource::len`] *before* allocating, so a hostile length never allocates more than
    /// the source holds.
    fn read_range(&self, range: Range<u64>) -> Result<SourceBytes, SourceError> {
        read_into_vec(self, range).map(SourceBytes::from)
    }
}

/// `range` of `source` read into a new vector with [`ByteSource::read_exact_at`], its bounds
/// checked first.
fn read_into_vec<S: ByteSource + ?Sized>(
    source: &S,
    range: Range<u64>,
) -> Result<Vec<u8>, SourceError> {
    let len = range.end.saturating_sub(range.start);
    check_bounds(range.start, len, source.len())?;
    let mut buf = vec![0u8; len as usize];
    source.read_exact_at(range.start, &mut buf)?;
    Ok(buf)
}

/// The span covering `ranges`, when it is at most `max` bytes and the ranges fill at least ¾ of
/// it — worth reading in one go; `None` otherwise (nothing hinted, too large, or so scattered
/// that one read would fetch bytes nobody asked for).
fn covering_span(ranges: &[Range<u64>], max: u64) -> Option<Range<u64>> {
    let (mut lo, mut hi, mut sum) = (u64::MAX, 0u64, 0u64);
    for r in ranges.iter().filter(|r| r.end > r.start) {
        lo = lo.min(r.start);
        hi = hi.max(r.end);
        sum = sum.saturating_add(r.end - r.start);
    }
    let span = hi.saturating_sub(lo);
    (sum > 0 && span <= max && sum.saturating_mul(4) >= span.saturating_mul(3)).then_some(lo..hi)
}

/// Check that `[offset, offset + len)` lies inside a source of `source_len` bytes.
pub fn check_bounds(offset: u64, len: u64, source_len: u64) -> Result<(), SourceError> {
    match offset.checked_add(len) {
        Some(end) if end <= source_len && usize::try_from(len).is_ok() => Ok(()),
        _ => Err(SourceError::OutOfBounds { offset, len, source_len }),
    }
}

/// A reference or a smart pointer to a source reads as the source does.
macro_rules! forward_byte_source {
    ($($ptr:ty),*) => {$(
        impl<S: ByteSource + ?Sized> ByteSource for $ptr {
            fn len(&self) -> u64 {
                (**self).len()
            }
            fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
                (**self).read_exact_at(offset, buf)
            }
            fn read_range(&self, range: Range<u64>) -> Result<SourceBytes, SourceError> {
                (**self).read_range(range)
            }
            fn prefetch(&self, ranges: &[Range<u64>]) -> Result<(), SourceError> {
                (**self).prefetch(ranges)
            }
            fn prefetch_later(&self, groups: &[Vec<Range<u64>>]) -> Result<(), SourceError> {
                (**self).prefetch_later(groups)
            }
            fn name(&self) -> String {
                (**self).name()
            }
            fn parts(&self) -> Vec<u64> {
                (**self).parts()
            }
        }
    )*};
}

forward_byte_source!(&S, Box<S>, std::sync::Arc<S>);

/// Several sources read as one, end to end: the shards of a split GGUF
/// (`name-00001-of-00003.gguf` …), in order. [`ByteSource::parts`] says where each begins, so a
/// reader can find each shard's own header.
pub struct Shards<S> {
    parts: Vec<S>,
    /// Where each part begins, then the total length.
    bounds: Vec<u64>,
}

impl<S: ByteSource> Shards<S> {
    /// `None` for no parts.
    pub fn new(parts: Vec<S>) -> Option<Shards<S>> {
        if parts.is_empty() {
            return None;
        }
        let mut bounds = vec![0u64];
        for p in &parts {
            let end = bounds[bounds.len() - 1].saturating_add(p.len());
            bounds.push(end);
        }
        Some(Shards { parts, bounds })
    }

    /// The pieces of `ranges` that lie in part `i`, as ranges within it.
    fn local(&self, i: usize, ranges: &[Range<u64>]) -> Vec<Range<u64>> {
        ranges
            .iter()
            .flat_map(|r| self.pieces(r.start, r.end))
            .filter(|(j, _, _)| *j == i)
            .map(|(_, r, _)| r)
            .collect()
    }

    /// The parts that `[start, end)` touches: (part index, range within it, where its bytes go
    /// in the request).
    fn pieces(&self, start: u64, end: u64) -> Vec<(usize, Range<u64>, u64)> {
        let mut out = Vec::new();
        for (i, w) in self.bounds.windows(2).enumerate() {
            let (lo, hi) = (start.max(w[0]), end.min(w[1]));
            if lo < hi {
                out.push((i, lo - w[0]..hi - w[0], lo - start));
            }
        }
        out
    }
}

impl<S: ByteSource> ByteSource for Shards<S> {
    fn len(&self) -> u64 {
        self.bounds[self.bounds.len() - 1]
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        check_bounds(offset, buf.len() as u64, self.len())?;
        for (i, range, at) in self.pieces(offset, offset + buf.len() as u64) {
            let at = at as usize;
            let n = (range.end - range.start) as usize;
            self.parts[i].read_exact_at(range.start, &mut buf[at..at + n])?;
        }
        Ok(())
    }
    /// A range inside one part is that part's to read (a mapped file lends its pages).
    fn read_range(&self, range: Range<u64>) -> Result<SourceBytes, SourceError> {
        check_bounds(range.start, range.end.saturating_sub(range.start), self.len())?;
        match self.pieces(range.start, range.end).as_slice() {
            [(i, local, _)] => self.parts[*i].read_range(local.clone()),
            _ => read_into_vec(self, range).map(SourceBytes::from),
        }
    }
    fn prefetch(&self, ranges: &[Range<u64>]) -> Result<(), SourceError> {
        for (i, part) in self.parts.iter().enumerate() {
            part.prefetch(&self.local(i, ranges))?;
        }
        Ok(())
    }
    fn prefetch_later(&self, groups: &[Vec<Range<u64>>]) -> Result<(), SourceError> {
        for (i, part) in self.parts.iter().enumerate() {
            let local: Vec<Vec<Range<u64>>> =
                groups.iter().map(|g| self.local(i, g)).filter(|g| !g.is_empty()).collect();
            part.prefetch_later(&local)?;
        }
        Ok(())
    }
    fn name(&self) -> String {
        shards_name(&self.parts[0].name(), self.parts.len())
    }
    fn parts(&self) -> Vec<u64> {
        self.bounds[..self.bounds.len() - 1].to_vec()
    }
}

/// How a model read from `parts` shards whose first is named `first` is named: `first` alone for
/// one part, else `first (+2 more shards)`. The page names files it has not opened yet this way
/// too, so the name it shows at once is the one the model's summary shows later.
pub fn shards_name(first: &str, parts: usize) -> String {
    match parts {
        0 | 1 => first.to_string(),
        n => format!("{first} (+{} more shards)", n - 1),
    }
}

/// A size in bytes as every tool writes it: `1023 B`, `2.26 MiB` (binary units, two decimals).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[unit])
    }
}

/// `[start, start + len)` of a source, read as a source of its own (one shard of [`Shards`]).
pub struct Window<'a, S: ?Sized> {
    inner: &'a S,
    start: u64,
    len: u64,
}

impl<'a, S: ByteSource + ?Sized> Window<'a, S> {
    /// The window, cut to the source's end.
    pub fn new(inner: &'a S, start: u64, len: u64) -> Window<'a, S> {
        let start = start.min(inner.len());
        Window { inner, start, len: len.min(inner.len() - start) }
    }

    /// `ranges` of the window as ranges of the source below.
    fn shifted(&self, ranges: &[Range<u64>]) -> Vec<Range<u64>> {
        ranges.iter().map(|r| self.start + r.start..self.start + r.end).collect()
    }
}

impl<S: ByteSource + ?Sized> ByteSource for Window<'_, S> {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        check_bounds(offset, buf.len() as u64, self.len)?;
        self.inner.read_exact_at(self.start + offset, buf)
    }
    /// Passed on, so that a source below that holds the range already (a native read-ahead's
    /// bytes for a hinted tensor) hands them over, and a file maps them, rather than being
    /// copied into a new vector.
    fn read_range(&self, range: Range<u64>) -> Result<SourceBytes, SourceError> {
        let len = range.end.saturating_sub(range.start);
        check_bounds(range.start, len, self.len)?;
        if len == 0 {
            return Ok(SourceBytes::default());
        }
        self.inner.read_range(self.start + range.start..self.start + range.end)
    }
    fn prefetch(&self, ranges: &[Range<u64>]) -> Result<(), SourceError> {
        self.inner.prefetch(&self.shifted(ranges))
    }
    fn prefetch_later(&self, groups: &[Vec<Range<u64>>]) -> Result<(), SourceError> {
        let shifted: Vec<Vec<Range<u64>>> = groups.iter().map(|g| self.shifted(g)).collect();
        self.inner.prefetch_later(&shifted)
    }
    fn name(&self) -> String {
        self.inner.name()
    }
}

/// Bytes held in memory (tests, embedded demo models, small uploads).
#[derive(Clone)]
pub struct MemorySource {
    bytes: std::sync::Arc<[u8]>,
    name: String,
}

impl MemorySource {
    pub fn new(bytes: impl Into<std::sync::Arc<[u8]>>) -> Self {
        MemorySource { bytes: bytes.into(), name: "memory".to_string() }
    }
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl ByteSource for MemorySource {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        check_bounds(offset, buf.len() as u64, self.len())?;
        let start = offset as usize;
        buf.copy_from_slice(&self.bytes[start..start + buf.len()]);
        Ok(())
    }
    fn name(&self) -> String {
        self.name.clone()
    }
}

/// A local file, never read whole: small reads with positioned reads (`pread`); a range of
/// [`FileSource::MAP_AT_LEAST`] bytes or more (a tensor) is mapped, its pages populated at once,
/// and lent as it lies in the page cache ([`SourceBytes`]) — copying it out took a sixth of a
/// short run's time (`_copy_to_iter`), mapping it a third of that. The mapping lives as long as
/// the caller keeps the bytes, so what is mapped is what a reader holds: one layer.
///
/// The price of a mapping is the one llama.cpp pays by default: a file cut short by another
/// program *while* a mapped range is in use ends the process (`SIGBUS`) instead of failing a
/// read. A file found shorter when a range is mapped is refused ([`SourceError::Changed`]), and
/// a file replaced by a new one (a rename, as downloads and editors do) keeps its old pages.
/// [`FileSource::without_mapping`] reads everything with `pread` (the CLI's `--no-mmap`).
#[cfg(not(target_arch = "wasm32"))]
pub struct FileSource {
    file: std::fs::File,
    len: u64,
    path: std::path::PathBuf,
    map: bool,
}

#[cfg(not(target_arch = "wasm32"))]
impl FileSource {
    /// Ranges from this size up are mapped; below it a read costs less than a mapping.
    pub const MAP_AT_LEAST: u64 = 256 << 10;

    pub fn open(path: impl AsRef<std::path::Path>) -> std::io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = std::fs::File::open(&path)?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "is a directory, not a model file",
            ));
        }
        Ok(FileSource { file, len: meta.len(), path, map: true })
    }
    /// The same file, every range read with `pread` and none mapped.
    pub fn without_mapping(mut self) -> Self {
        self.map = false;
        self
    }
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// `range` mapped, its pages populated; `None` where the system would not map it (a pipe,
    /// a file system without mappings): the caller reads it instead.
    fn map_range(&self, range: &Range<u64>) -> Result<Option<SourceBytes>, SourceError> {
        let len = (range.end - range.start) as usize;
        // SAFETY: the mapping is read-only and private to this process. Its bytes stay valid
        // unless another program truncates the file while they are held; that is checked
        // below for the moment of mapping and documented on the type for the rest.
        let mapped = unsafe {
            memmap2::MmapOptions::new().offset(range.start).len(len).populate().map(&self.file)
        };
        let Ok(map) = mapped else { return Ok(None) };
        match self.file.metadata() {
            Ok(meta) if meta.len() >= range.end => Ok(Some(SourceBytes::mapped(map))),
            Ok(meta) => Err(SourceError::Changed {
                message: format!(
                    "{} is {} bytes now, {} when it was opened",
                    self.path.display(),
                    meta.len(),
                    self.len
                ),
            }),
            Err(_) => Ok(None),
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl ByteSource for FileSource {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        check_bounds(offset, buf.len() as u64, self.len)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileExt;
            self.file.read_exact_at(buf, offset).map_err(|e| SourceError::Io {
                offset,
                len: buf.len() as u64,
                message: e.to_string(),
            })
        }
        #[cfg(windows)]
        {
            use std::os::windows::fs::FileExt;
            let mut done = 0usize;
            while done < buf.len() {
                let n =
                    self.file.seek_read(&mut buf[done..], offset + done as u64).map_err(|e| {
                        SourceError::Io { offset, len: buf.len() as u64, message: e.to_string() }
                    })?;
                if n == 0 {
                    return Err(SourceError::Io {
                        offset,
                        len: buf.len() as u64,
                        message: "unexpected end of file".into(),
                    });
                }
                done += n;
            }
            Ok(())
        }
    }
    fn read_range(&self, range: Range<u64>) -> Result<SourceBytes, SourceError> {
        let len = range.end.saturating_sub(range.start);
        check_bounds(range.start, len, self.len)?;
        if self.map && len >= Self::MAP_AT_LEAST {
            if let Some(bytes) = self.map_range(&range)? {
                return Ok(bytes);
            }
        }
        read_into_vec(self, range).map(SourceBytes::from)
    }
    fn name(&self) -> String {
        self.path.display().to_string()
    }
}

/// Wraps a source and counts the bytes and reads that went through it.
pub struct CountingSource<S> {
    inner: S,
    bytes_read: AtomicU64,
    reads: AtomicU64,
}

impl<S: ByteSource> CountingSource<S> {
    pub fn new(inner: S) -> Self {
        CountingSource { inner, bytes_read: AtomicU64::new(0), reads: AtomicU64::new(0) }
    }
    /// Total bytes returned by successful reads so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }
    /// Number of successful reads so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
    pub fn inner(&self) -> &S {
        &self.inner
    }
    fn count(&self, bytes: usize) {
        self.bytes_read.fetch_add(bytes as u64, Ordering::Relaxed);
        self.reads.fetch_add(1, Ordering::Relaxed);
    }
}

impl<S: ByteSource> ByteSource for CountingSource<S> {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    /// Forwarded; bytes count when a read returns them, not when they are prefetched.
    fn prefetch(&self, ranges: &[Range<u64>]) -> Result<(), SourceError> {
        self.inner.prefetch(ranges)
    }
    fn prefetch_later(&self, groups: &[Vec<Range<u64>>]) -> Result<(), SourceError> {
        self.inner.prefetch_later(groups)
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        self.inner.read_exact_at(offset, buf)?;
        self.count(buf.len());
        Ok(())
    }
    fn read_range(&self, range: Range<u64>) -> Result<SourceBytes, SourceError> {
        let bytes = self.inner.read_range(range)?;
        self.count(bytes.len());
        Ok(bytes)
    }
    fn name(&self) -> String {
        self.inner.name()
    }
    fn parts(&self) -> Vec<u64> {
        self.inner.parts()
    }
}

/// Serves [`ByteSource::prefetch`] for a source whose reads each cost a round trip: the span
/// covering the hinted ranges — when it is at most `max_window` bytes and the ranges fill at
/// least ¾ of it — is read in one call, at the first read inside it, and held; reads inside it
/// are copied from memory; every other read goes straight through. One window at a time — the
/// next hint (or an empty one) drops it — so the memory it adds is bounded by `max_window`.
///
/// In the browser a `FileReaderSync` call costs ~2 ms beyond its bytes and an HTTP Range
/// request a round trip, and a layer is a dozen tensors lying next to each other in the file:
/// one read per layer instead of one per tensor. The window is read when first needed, not when
/// hinted, because the engine hints the next layer before the current one computes: a source
/// below that reads ahead on its own ([`StreamedReads`]) has the time of that compute to fetch it.
pub struct ReadAhead<S> {
    inner: S,
    max_window: u64,
    window: std::sync::Mutex<HeldSpan>,
}

/// The span hinted last, and its bytes once read.
#[derive(Default)]
struct HeldSpan {
    hinted: Option<Range<u64>>,
    bytes: Option<(u64, SourceBytes)>,
}

impl<S: ByteSource> ReadAhead<S> {
    pub fn new(inner: S, max_window: u64) -> Self {
        ReadAhead { inner, max_window, window: std::sync::Mutex::new(HeldSpan::default()) }
    }
    pub fn inner(&self) -> &S {
        &self.inner
    }
    fn window(&self) -> std::sync::MutexGuard<'_, HeldSpan> {
        // A panic while holding the lock leaves nothing half-written that matters: the window
        // is only ever replaced whole.
        self.window.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<S: ByteSource> ByteSource for ReadAhead<S> {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        check_bounds(offset, buf.len() as u64, self.len())?;
        let end = offset + buf.len() as u64;
        let mut window = self.window();
        if let Some(span) = window.hinted.clone().filter(|s| s.start <= offset && end <= s.end) {
            window.hinted = None;
            window.bytes = Some((span.start, self.inner.read_range(span)?));
        }
        if let Some((start, bytes)) = window.bytes.as_ref() {
            if offset >= *start && end <= start + bytes.len() as u64 {
                let at = (offset - start) as usize;
                buf.copy_from_slice(&bytes[at..at + buf.len()]);
                return Ok(());
            }
        }
        drop(window);
        self.inner.read_exact_at(offset, buf)
    }
    fn name(&self) -> String {
        self.inner.name()
    }
    /// Passed on to the source below first (a source that hashes along fills its gap up to
    /// the hinted bytes then, so the window's read arrives in file order), then remembered.
    fn prefetch(&self, ranges: &[Range<u64>]) -> Result<(), SourceError> {
        let mut window = self.window();
        *window = HeldSpan::default();
        self.inner.prefetch(ranges)?;
        if let Some(span) = covering_span(ranges, self.max_window) {
            check_bounds(span.start, span.end - span.start, self.len())?;
            window.hinted = Some(span);
        }
        Ok(())
    }
    /// Passed on; the window is the last hint's alone.
    fn prefetch_later(&self, groups: &[Vec<Range<u64>>]) -> Result<(), SourceError> {
        self.inner.prefetch_later(groups)
    }
    fn parts(&self) -> Vec<u64> {
        self.inner.parts()
    }
}

/// Serves [`ByteSource::prefetch`] natively by reading the hinted ranges on a background
/// thread while the caller goes on (the CLI computes one layer while the next one's tensors
/// arrive, or, from a mapped file, while their pages are mapped). A `read_range` of exactly a
/// hinted range waits for that thread and takes its bytes — no copy; a read inside one is
/// copied from it; any other read goes straight through. One hint at a time, at most
/// `max_window` bytes in all.
#[cfg(not(target_arch = "wasm32"))]
pub struct BackgroundReadAhead<S> {
    inner: std::sync::Arc<S>,
    max_window: u64,
    state: std::sync::Mutex<Background>,
}

/// Bytes read ahead, by range.
#[cfg(not(target_arch = "wasm32"))]
type Pieces = Vec<(Range<u64>, SourceBytes)>;

#[cfg(not(target_arch = "wasm32"))]
enum Background {
    Empty,
    Reading {
        ranges: Vec<Range<u64>>,
        thread: std::thread::JoinHandle<Result<Pieces, SourceError>>,
    },
    Ready(Pieces),
}

#[cfg(not(target_arch = "wasm32"))]
impl<S: ByteSource + Send + Sync + 'static> BackgroundReadAhead<S> {
    pub fn new(inner: S, max_window: u64) -> Self {
        BackgroundReadAhead {
            inner: std::sync::Arc::new(inner),
            max_window,
            state: std::sync::Mutex::new(Background::Empty),
        }
    }
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The state, with a read of a hinted range waited for first. A failed or panicked
    /// background read leaves it empty: the caller's read then goes to the source itself and
    /// reports its own error.
    fn settled(&self, wanted: &Range<u64>) -> std::sync::MutexGuard<'_, Background> {
        // The state is only ever replaced whole, so a poisoned lock holds nothing half-made.
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let covered = |ranges: &[Range<u64>]| {
            ranges.iter().any(|r| r.start <= wanted.start && wanted.end <= r.end)
        };
        if matches!(&*state, Background::Reading { ranges, .. } if covered(ranges)) {
            if let Background::Reading { thread, .. } =
                std::mem::replace(&mut *state, Background::Empty)
            {
                if let Ok(Ok(pieces)) = thread.join() {
                    *state = Background::Ready(pieces);
                }
            }
        }
        state
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl<S: ByteSource + Send + Sync + 'static> ByteSource for BackgroundReadAhead<S> {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        check_bounds(offset, buf.len() as u64, self.len())?;
        let wanted = offset..offset + buf.len() as u64;
        if let Background::Ready(pieces) = &*self.settled(&wanted) {
            if let Some((r, bytes)) =
                pieces.iter().find(|(r, _)| r.start <= wanted.start && wanted.end <= r.end)
            {
                let at = (offset - r.start) as usize;
                buf.copy_from_slice(&bytes[at..at + buf.len()]);
                return Ok(());
            }
        }
        self.inner.read_exact_at(offset, buf)
    }
    fn read_range(&self, range: Range<u64>) -> Result<SourceBytes, SourceError> {
        check_bounds(range.start, range.end.saturating_sub(range.start), self.len())?;
        if let Background::Ready(pieces) = &mut *self.settled(&range) {
            if let Some(i) = pieces.iter().position(|(r, _)| *r == range) {
                return Ok(pieces.swap_remove(i).1);
            }
            if let Some((r, bytes)) =
                pieces.iter().find(|(r, _)| r.start <= range.start && range.end <= r.end)
            {
                let at = (range.start - r.start) as usize;
                return Ok(bytes[at..at + (range.end - range.start) as usize].to_vec().into());
            }
        }
        self.inner.read_range(range)
    }
    fn name(&self) -> String {
        self.inner.name()
    }
    fn prefetch(&self, ranges: &[Range<u64>]) -> Result<(), SourceError> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Background::Reading { thread, .. } =
            std::mem::replace(&mut *state, Background::Empty)
        {
            // Not wanted any more; wait for it rather than leave a thread reading behind us.
            let _ = thread.join();
        }
        // The source below hears the hint first, on this thread, before the reading thread
        // starts (a source that hashes along fills its gap up to the hinted bytes then).
        self.inner.prefetch(ranges)?;
        let ranges: Vec<Range<u64>> = ranges.iter().filter(|r| r.end > r.start).cloned().collect();
        let total = ranges.iter().fold(0u64, |t, r| t.saturating_add(r.end - r.start));
        if total == 0 || total > self.max_window {
            return Ok(());
        }
        for r in &ranges {
            check_bounds(r.start, r.end - r.start, self.len())?;
        }
        let inner = std::sync::Arc::clone(&self.inner);
        let todo = ranges.clone();
        let thread = std::thread::Builder::new()
            .name("parallax-read-ahead".into())
            .spawn(move || {
                todo.into_iter()
                    .map(|r| inner.read_range(r.clone()).map(|bytes| (r, bytes)))
                    .collect()
            })
            .map_err(|e| SourceError::Io {
                offset: ranges[0].start,
                len: total,
                message: format!("cannot start a reading thread: {e}"),
            })?;
        *state = Background::Reading { ranges, thread };
        Ok(())
    }
    /// Passed on: this reads one hint ahead, which a local file's compute hides.
    fn prefetch_later(&self, groups: &[Vec<Range<u64>>]) -> Result<(), SourceError> {
        self.inner.prefetch_later(groups)
    }
    fn parts(&self) -> Vec<u64> {
        self.inner.parts()
    }
}

/// The bytes a header is read in ([`Cursor`]'s read-ahead): a small model's whole header in one
/// read (one HTTP round trip in the browser, where the request that opens a model URL brings
/// the first of them), small enough to be irrelevant for memory.
pub const FIRST_HEADER_CHUNK: usize = 1 << 20;

/// A forward-only reader over a source with a small buffer, for parsing headers that are a long
/// run of small fields (GGUF metadata). It reads ahead in chunks but never past the source's end.
/// (Chunks that doubled up to 16 MiB were tried in session 21: the 0.5B's 6 MB header in 3 reads
/// instead of 6, but up to a whole chunk past the header's end, which a run then reads again —
/// 1.4 MB for that file, twice a page run by URL.)
pub struct Cursor<'a, S: ByteSource + ?Sized> {
    source: &'a S,
    pos: u64,
    buf: Vec<u8>,
    buf_start: u64,
    chunk: usize,
}

impl<'a, S: ByteSource + ?Sized> Cursor<'a, S> {
    /// The read-ahead ([`FIRST_HEADER_CHUNK`]).
    pub const DEFAULT_CHUNK: usize = FIRST_HEADER_CHUNK;

    pub fn new(source: &'a S, pos: u64) -> Self {
        Cursor { source, pos, buf: Vec::new(), buf_start: pos, chunk: Self::DEFAULT_CHUNK }
    }
    pub fn with_chunk(mut self, chunk: usize) -> Self {
        self.chunk = chunk.max(1);
        self
    }
    pub fn position(&self) -> u64 {
        self.pos
    }
    pub fn source_len(&self) -> u64 {
        self.source.len()
    }
    /// Bytes left between the position and the end of the source.
    pub fn remaining(&self) -> u64 {
        self.source.len().saturating_sub(self.pos)
    }
    pub fn seek(&mut self, pos: u64) {
        self.pos = pos;
    }

    /// Read exactly `out.len()` bytes at the position and advance.
    pub fn read_into(&mut self, out: &mut [u8]) -> Result<(), SourceError> {
        let n = out.len();
        check_bounds(self.pos, n as u64, self.source.len())?;
        let buf_end = self.buf_start + self.buf.len() as u64;
        // Serve what the buffer already holds first, so no byte is ever fetched twice.
        let mut done = 0usize;
        if self.pos >= self.buf_start && self.pos < buf_end {
            let at = (self.pos - self.buf_start) as usize;
            done = n.min(self.buf.len() - at);
            out[..done].copy_from_slice(&self.buf[at..at + done]);
            self.pos += done as u64;
        }
        let rest = n - done;
        if rest == 0 {
            return Ok(());
        }
        if rest >= self.chunk {
            self.source.read_exact_at(self.pos, &mut out[done..])?;
            self.pos += rest as u64;
            return Ok(());
        }
        let want = (self.chunk as u64).min(self.source.len() - self.pos) as usize;
        self.buf.resize(want, 0);
        self.source.read_exact_at(self.pos, &mut self.buf)?;
        self.buf_start = self.pos;
        out[done..].copy_from_slice(&self.buf[..rest]);
        self.pos += rest as u64;
        Ok(())
    }

    /// Read `len` bytes into a new vector, refusing lengths the source cannot hold *before*
    /// allocating.
    pub fn read_vec(&mut self, len: u64) -> Result<Vec<u8>, SourceError> {
        check_bounds(self.pos, len, self.source.len())?;
        let mut v = vec![0u8; len as usize];
        self.read_into(&mut v)?;
        Ok(v)
    }

    pub fn read_array<const N: usize>(&mut self) -> Result<[u8; N], SourceError> {
        let mut a = [0u8; N];
        self.read_into(&mut a)?;
        Ok(a)
    }
    pub fn u8(&mut self) -> Result<u8, SourceError> {
        Ok(self.read_array::<1>()?[0])
    }
    pub fn u16(&mut self) -> Result<u16, SourceError> {
        Ok(u16::from_le_bytes(self.read_array()?))
    }
    pub fn u32(&mut self) -> Result<u32, SourceError> {
        Ok(u32::from_le_bytes(self.read_array()?))
    }
    pub fn u64(&mut self) -> Result<u64, SourceError> {
        Ok(u64::from_le_bytes(self.read_array()?))
    }
    pub fn skip(&mut self, n: u64) -> Result<(), SourceError> {
        check_bounds(self.pos, n, self.source.len())?;
        self.pos += n;
        Ok(())
    }
}

#[cfg(test)]
// One-range hints are what these tests mean, not a typo for a range.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_writes_binary_units_with_two_decimals() {
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(2_370_000), "2.26 MiB");
    }

    #[test]
    fn shards_read_as_one_source_across_their_bounds() {
        let all: Vec<u8> = (0..=255u8).collect();
        let parts = vec![
            MemorySource::new(all[..100].to_vec()),
            MemorySource::new(all[100..101].to_vec()),
            MemorySource::new(all[101..].to_vec()),
        ];
        let s = Shards::new(parts).unwrap();
        assert_eq!((s.len(), s.parts()), (256, vec![0, 100, 101]));
        for (start, end) in [(0, 256), (95, 105), (100, 101), (99, 102), (200, 256)] {
            assert_eq!(s.read_range(start..end).unwrap(), all[start as usize..end as usize]);
        }
        assert!(s.read_range(250..257).is_err(), "past the end is refused");
        let w = Window::new(&s, 100, 50);
        assert_eq!(w.read_range(0..3).unwrap(), vec![100, 101, 102]);
        assert!(w.read_range(49..51).is_err());
        assert!(Shards::<MemorySource>::new(vec![]).is_none());
        assert_eq!(s.name(), "memory (+2 more shards)");
        assert_eq!(shards_name("m-00001-of-00003.gguf", 1), "m-00001-of-00003.gguf");
    }

    #[test]
    fn memory_source_reads_and_refuses_out_of_bounds() {
        let src = MemorySource::new(vec![1u8, 2, 3, 4, 5]);
        assert_eq!(src.read_range(1..4).unwrap(), vec![2, 3, 4]);
        let err = src.read_range(3..9).unwrap_err();
        assert_eq!(err, SourceError::OutOfBounds { offset: 3, len: 6, source_len: 5 });
        assert!(err.to_string().contains("offset 3"));
        // A huge declared length is refused without allocating.
        assert!(src.read_range(0..u64::MAX).is_err());
        assert!(check_bounds(u64::MAX, 2, 10).is_err());
    }

    #[test]
    fn read_ahead_serves_hinted_ranges_from_one_read() {
        let data: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        let src = ReadAhead::new(CountingSource::new(MemorySource::new(data.clone())), 1024);
        src.prefetch(&[500..900, 100..480]).unwrap();
        // Nothing is read until a read falls inside the hinted span; then the whole span, once.
        assert_eq!(src.inner().reads(), 0);
        assert_eq!(src.read_range(300..310).unwrap(), data[300..310]);
        assert_eq!((src.inner().reads(), src.inner().bytes_read()), (1, 800));
        // Pieces inside the window, in any order, cost nothing more and are the right bytes.
        for r in [500..900u64, 100..101, 300..700, 899..900] {
            assert_eq!(src.read_range(r.clone()).unwrap(), data[r.start as usize..r.end as usize]);
        }
        assert_eq!(src.inner().reads(), 1);
        // A read that leaves the window goes straight through, whole.
        assert_eq!(src.read_range(850..950).unwrap(), data[850..950]);
        assert_eq!((src.inner().reads(), src.inner().bytes_read()), (2, 900));
        // Over the limit, or scattered (filling under ¾ of their span): nothing is fetched, and
        // the old window is gone; no ranges releases.
        src.prefetch(&[0..2000]).unwrap();
        src.prefetch(&[0..100, 900..1000]).unwrap();
        assert_eq!(src.inner().reads(), 2);
        src.read_range(200..300).unwrap();
        assert_eq!(src.inner().reads(), 3);
        src.prefetch(&[0..1000]).unwrap();
        src.read_range(10..20).unwrap();
        assert_eq!(src.inner().reads(), 4);
        src.prefetch(&[]).unwrap();
        src.read_range(10..20).unwrap();
        // A hint replaced before any read inside it reads nothing.
        src.prefetch(&[0..1000]).unwrap();
        src.prefetch(&[1000..1500]).unwrap();
        src.read_range(10..20).unwrap();
        assert_eq!(src.inner().reads(), 6);
        // A hint past the end is the source's error, and reads stay bounds-checked.
        assert!(matches!(src.prefetch(&[4000..4100]), Err(SourceError::OutOfBounds { .. })));
        assert!(src.read_range(4090..4100).is_err());
    }

    #[test]
    fn background_read_ahead_hands_over_hinted_ranges_and_passes_the_rest_through() {
        let data: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        let src =
            BackgroundReadAhead::new(CountingSource::new(MemorySource::new(data.clone())), 1024);
        src.prefetch(&[100..400, 400..900]).unwrap();
        // Exactly a hinted range: its vector; inside one: a copy; either way no new source read.
        let mut b = [0u8; 10];
        src.read_exact_at(120, &mut b).unwrap();
        assert_eq!(b, data[120..130]);
        for r in [400..900u64, 150..250, 100..400] {
            assert_eq!(
                src.read_range(r.clone()).unwrap(),
                data[r.start as usize..r.end as usize],
                "{r:?}"
            );
        }
        assert_eq!((src.inner().reads(), src.inner().bytes_read()), (2, 800));
        // Not hinted (or already handed over whole): straight through.
        assert_eq!(src.read_range(850..950).unwrap(), data[850..950]);
        assert_eq!(src.read_range(400..900).unwrap(), data[400..900]);
        assert_eq!(src.inner().reads(), 4);
        // A hint replaced before it was used is waited for, then dropped; no ranges releases.
        src.prefetch(&[0..1000]).unwrap();
        src.prefetch(&[2000..2500]).unwrap();
        assert_eq!(src.read_range(2100..2200).unwrap(), data[2100..2200]);
        src.prefetch(&[]).unwrap();
        assert_eq!(src.read_range(2100..2200).unwrap(), data[2100..2200]);
        assert_eq!(src.inner().reads(), 7);
        assert!(matches!(src.prefetch(&[4000..4100]), Err(SourceError::OutOfBounds { .. })));
        src.prefetch(&[0..2000]).unwrap(); // over the limit: nothing read
        assert_eq!(src.inner().reads(), 7);
    }

    /// A GGUF shard is read through a window: a tensor's read through it must still take the
    /// read-ahead's vector (handed over, so the same range read again goes to the source),
    /// not a copy of it into a zeroed new one.
    #[test]
    fn a_window_passes_whole_range_reads_to_the_source_below() {
        let data: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        let src =
            BackgroundReadAhead::new(CountingSource::new(MemorySource::new(data.clone())), 1024);
        let w = Window::new(&src, 1000, 2000);
        w.prefetch(&[100..400]).unwrap();
        assert_eq!(w.read_range(100..400).unwrap(), data[1100..1400]);
        assert_eq!(src.inner().reads(), 1, "the hinted read only");
        assert_eq!(w.read_range(100..400).unwrap(), data[1100..1400]);
        assert_eq!(src.inner().reads(), 2, "handed over: a second read goes to the source");
        assert!(w.read_range(1990..2010).is_err(), "past the window's end is refused");
        assert_eq!(w.read_range(7..7).unwrap(), Vec::<u8>::new());
        assert!(w.read_range(2001..2001).is_err());
    }

    /// A background read that fails leaves the error to the read that wanted the bytes.
    #[test]
    fn background_read_ahead_reports_a_failed_read_from_the_source() {
        struct Failing;
        impl ByteSource for Failing {
            fn len(&self) -> u64 {
                100
            }
            fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
                Err(SourceError::Io {
                    offset,
                    len: buf.len() as u64,
                    message: "disk on fire".into(),
                })
            }
            fn name(&self) -> String {
                "failing".into()
            }
        }
        let src = BackgroundReadAhead::new(Failing, 1024);
        src.prefetch(&[0..50]).unwrap();
        let err = src.read_range(10..20).unwrap_err();
        assert_eq!(err, SourceError::Io { offset: 10, len: 10, message: "disk on fire".into() });
    }

    #[test]
    fn cursor_reads_across_chunk_boundaries() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let src = CountingSource::new(MemorySource::new(data.clone()));
        let mut c = Cursor::new(&src, 0).with_chunk(7);
        let mut got = Vec::new();
        while c.remaining() >= 3 {
            got.extend_from_slice(&c.read_array::<3>().unwrap());
        }
        assert_eq!(&got[..], &data[..got.len()]);
        assert!(c.read_array::<3>().is_err());
        // Read-ahead never goes past the end, and no byte is fetched twice.
        assert_eq!(src.bytes_read(), 1000);
        // Large reads straddling the buffer take the buffered part and fetch only the rest.
        let src = CountingSource::new(MemorySource::new(data.clone()));
        let mut c = Cursor::new(&src, 0).with_chunk(16);
        c.read_array::<4>().unwrap();
        let big = c.read_vec(100).unwrap();
        assert_eq!(&big[..], &data[4..104]);
        assert_eq!(src.bytes_read(), 104);
    }

    #[test]
    fn file_source_reads_positioned() {
        let dir = std::env::temp_dir().join(format!("parallax-source-test-{}", std::process::id()));
        std::fs::write(&dir, b"hello world").unwrap();
        let src = FileSource::open(&dir).unwrap();
        assert_eq!(src.len(), 11);
        assert_eq!(src.read_range(6..11).unwrap(), b"world");
        assert!(matches!(src.read_range(6..12), Err(SourceError::OutOfBounds { .. })));
        std::fs::remove_file(&dir).unwrap();
    }

    /// A temporary file of `n` patterned bytes, removed on drop.
    struct TempFile(std::path::PathBuf, Vec<u8>);

    impl TempFile {
        fn new(tag: &str, n: usize) -> TempFile {
            let path = std::env::temp_dir()
                .join(format!("parallax-source-{tag}-{}.bin", std::process::id()));
            let data: Vec<u8> = (0..n).map(|i| (i * 31 + i / 4099) as u8).collect();
            std::fs::write(&path, &data).unwrap();
            TempFile(path, data)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Tensors (ranges from `MAP_AT_LEAST` up) are the file's pages mapped, at any offset — a
    /// GGUF aligns tensors to 32 bytes, not to pages — and up to the file's last byte; small
    /// reads, and every read of a file opened `without_mapping`, are copies; all read the
    /// same bytes.
    #[test]
    fn a_file_maps_tensor_sized_ranges_and_reads_small_ones() {
        let big = FileSource::MAP_AT_LEAST;
        let file = TempFile::new("map", 3 * big as usize + 12_345);
        let (mapped, copied) = (
            FileSource::open(&file.0).unwrap(),
            FileSource::open(&file.0).unwrap().without_mapping(),
        );
        let end = file.1.len() as u64;
        for (range, maps) in [
            (0..big, true),
            (12_345..12_345 + big + 7, true),
            (end - big..end, true),
            (4096..end, true),
            (100..100 + big - 1, false),
            (end - 10..end, false),
        ] {
            let want = &file.1[range.start as usize..range.end as usize];
            let bytes = mapped.read_range(range.clone()).unwrap();
            assert_eq!((bytes.is_mapped(), bytes.len()), (maps, want.len()), "{range:?}");
            assert!(bytes == want, "{range:?}: mapped bytes differ");
            let bytes = copied.read_range(range.clone()).unwrap();
            assert!(!bytes.is_mapped() && bytes == want, "{range:?} without mapping");
        }
        assert!(matches!(
            mapped.read_range(end - big..end + 1),
            Err(SourceError::OutOfBounds { .. })
        ));
        // A mapped read handed to the caller outlives the source.
        let kept = mapped.read_range(0..big).unwrap();
        drop(mapped);
        assert!(kept == file.1[..big as usize]);
    }

    /// A file cut short after it was opened: a mapped range past its new end would end the
    /// process with SIGBUS when touched; it is refused with an error that says so instead.
    #[test]
    fn a_file_cut_short_after_opening_is_refused_not_mapped() {
        let big = FileSource::MAP_AT_LEAST;
        let file = TempFile::new("cut", 4 * big as usize);
        let src = FileSource::open(&file.0).unwrap();
        std::fs::OpenOptions::new().write(true).open(&file.0).unwrap().set_len(big).unwrap();
        match src.read_range(2 * big..3 * big) {
            Err(SourceError::Changed { message }) => {
                assert!(message.contains(&format!("{big} bytes now")), "{message}")
            }
            other => panic!("expected the file to be reported changed, got {other:?}"),
        }
        // What still lies inside the file reads (and maps) as before.
        let head = src.read_range(0..big).unwrap();
        assert!(head.is_mapped() && head == file.1[..big as usize]);
        let copied = FileSource::open(&file.0).unwrap().without_mapping();
        assert_eq!(copied.len(), big);
    }

    /// The CLI's stack: a background read-ahead over a file hands over the mapping its thread
    /// made, through a shard's window.
    #[test]
    fn a_read_ahead_over_a_file_hands_over_the_mapped_pages() {
        let big = FileSource::MAP_AT_LEAST;
        let file = TempFile::new("ahead", 4 * big as usize);
        let src = BackgroundReadAhead::new(FileSource::open(&file.0).unwrap(), 4 * big);
        let w = Window::new(&src, 96, 4 * big - 96);
        let range = 1000..1000 + 2 * big;
        w.prefetch(std::slice::from_ref(&range)).unwrap();
        let bytes = w.read_range(range).unwrap();
        assert!(bytes.is_mapped(), "the read-ahead thread's mapping, handed over");
        assert!(bytes == file.1[1096..1096 + 2 * big as usize]);
    }
}
