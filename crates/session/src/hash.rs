//! The model file's sha256, hashed from the bytes the run reads anyway.
//!
//! SHA-256 takes bytes in file order only, and a run reads its file out of order: the header,
//! a few embedding rows and the final norm first, then the layers front to back, then the
//! output head — which for a tied head is the embedding at the front of the file again. Hashing
//! first and running after reads the file twice (a URL user downloads it twice). [`HashAlong`]
//! sits under the run's read-ahead instead and hashes each read as it passes, when it continues
//! the bytes hashed so far; the bytes the run skips it reads itself, once each:
//!
//! - a read that starts beyond the hashed bytes fills the gap first when the gap is no longer
//!   than the read (otherwise the read is left to be hashed later — the cheaper of the two: a
//!   far read of a norm or an embedding row costs only its own bytes again);
//! - the first hint ([`ByteSource::prefetch`]: the engine's first layer) fills the gap up to the
//!   hinted bytes, since the layers that follow are hashed as they pass; a later one only when
//!   its gap is no longer than the hinted bytes;
//! - [`HashAlong::finish`] reads what is left after the run.
//!
//! Memory stays one bounded chunk: no read is held in memory to be hashed later. So a tied head
//! costs its embedding once more (read for the hash before layer 0, and by the head after the
//! last layer); the other choice, hashing the embedding when the head reads it, would read every
//! layer again.
//!
//! With a [`SpillStore`] ([`HashAlong::with_spill`]: the page's is a file in the origin's private
//! file system, on disk) nothing is read twice from the source: a read that cannot be hashed yet
//! is kept there, and so is every byte the hash reads for itself; a later read of kept bytes —
//! by the run (the tied head) or by the hash (a layer stored out of order) — comes from the
//! store. A URL is then downloaded once, hash or not. A store that fails (full, or taken by
//! another tab) is left, and the hash goes on as without one.
//!
//! SHA-256 costs a core ~2 s per GB in wasm. With a [`Spawner`] ([`HashAlong::hashing_on`]: the
//! page's threaded build hands the jobs to its rayon pool) the reading thread only copies each
//! byte into a queue, in file order, and the compression runs as jobs beside the run — on pool
//! threads the run's serial work leaves idle. The queue holds at most [`QUEUED_AT_MOST`] bytes:
//! past that the reading thread hashes the queue itself, so memory stays bounded however far
//! the jobs fall behind.
//!
//! A local file costs nothing to read twice (the CLI maps it from the page cache): there
//! [`sha256_of`] hashes the whole file front to back on a thread of its own beside the run, and
//! the hash adds to the run's wall time only what a busy machine cannot overlap.

use std::sync::Mutex;

use parallax_source::{check_bounds, ByteSource, SourceBytes, SourceError};
use sha2::{Digest, Sha256};

/// Bytes read per gap slice: large enough that a range request's round trip costs little,
/// small enough that progress moves and memory stays bounded.
const CHUNK: u64 = 8 << 20;

/// Kept bytes inside a larger read are read from the spill store in runs of at least this many:
/// a shorter run (an embedding row kept in the middle of a layer's read) is read with the bytes
/// around it, so a read is not cut into many small ones (each a round trip by URL).
const FROM_STORE: u64 = 256 << 10;

/// A gap read at least this long is shown as progress; shorter ones (the padding between
/// tensors) take no time worth showing.
const SHOWN_GAP: u64 = 1 << 20;

/// The most bytes queued for a [`Spawner`]'s jobs before the reading thread hashes them itself:
/// a few tensors of a large model, a small share of the page's memory budget.
pub const QUEUED_AT_MOST: usize = 64 << 20;

/// Runs a job somewhere other than the calling thread (the page: `rayon::spawn` on its pool).
/// A job may run at any later time, on any thread, or never before [`HashAlong::finish`]: the
/// hash's order does not depend on when.
pub type Spawner = std::sync::Arc<dyn Fn(Box<dyn FnOnce() + Send>) + Send + Sync>;

/// SHA-256 fed in file order: on the calling thread, or through a queue drained by jobs.
enum Sink {
    Inline(Sha256),
    Offloaded(std::sync::Arc<Offload>),
}

impl Sink {
    fn update(&mut self, data: &[u8]) {
        match self {
            Sink::Inline(hasher) => hasher.update(data),
            Sink::Offloaded(offload) => Offload::push(offload, data),
        }
    }

    fn finalize(&mut self) -> String {
        let hasher = match self {
            Sink::Inline(hasher) => std::mem::take(hasher),
            Sink::Offloaded(offload) => offload.drain_all(),
        };
        hex::encode(hasher.finalize())
    }
}

/// The queue of bytes waiting to be hashed, and the hasher that takes them. Whoever holds
/// `hasher` pops the next chunk and hashes it before letting go, so chunks are hashed in the
/// order they were queued by whichever thread drains.
struct Offload {
    queue: Mutex<Queue>,
    hasher: Mutex<Sha256>,
    spawn: Spawner,
    /// [`QUEUED_AT_MOST`] (smaller in tests).
    at_most: usize,
}

#[derive(Default)]
struct Queue {
    chunks: std::collections::VecDeque<Vec<u8>>,
    /// Bytes queued or being hashed.
    bytes: usize,
    /// A job was handed to the spawner and has not yet found the queue empty.
    scheduled: bool,
}

impl Offload {
    fn push(this: &std::sync::Arc<Self>, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let (spawn, over) = {
            let mut q = lock(&this.queue);
            q.chunks.push_back(data.to_vec());
            q.bytes += data.len();
            let spawn = !q.scheduled;
            q.scheduled = true;
            (spawn, q.bytes > this.at_most)
        };
        if spawn {
            let job = std::sync::Arc::clone(this);
            (this.spawn)(Box::new(move || job.drain()));
        }
        if over {
            this.drain();
        }
    }

    /// Hash every queued chunk, in order.
    fn drain(&self) {
        let mut hasher = lock(&self.hasher);
        self.drain_into(&mut hasher);
    }

    fn drain_into(&self, hasher: &mut Sha256) {
        loop {
            let chunk = {
                let mut q = lock(&self.queue);
                match q.chunks.pop_front() {
                    Some(chunk) => chunk,
                    None => {
                        q.scheduled = false;
                        return;
                    }
                }
            };
            hasher.update(&chunk);
            lock(&self.queue).bytes -= chunk.len();
        }
    }

    /// Everything queued hashed (waiting for a job that is hashing), and the hasher taken.
    fn drain_all(&self) -> Sha256 {
        let mut hasher = lock(&self.hasher);
        self.drain_into(&mut hasher);
        std::mem::take(&mut *hasher)
    }

    fn queued_bytes(&self) -> usize {
        lock(&self.queue).bytes
    }
}

/// Where [`HashAlong`] keeps bytes of the source it cannot hash yet, or read for the hash alone,
/// so that neither is read from the source again: at the source's own offsets. The bytes are
/// the source's, so two writes over the same offsets write the same bytes.
pub trait SpillStore {
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), SourceError>;
    /// Fill `buf` from `[offset, offset + buf.len())`, every byte of which was written.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError>;
}

/// No store: the type of a [`HashAlong`] without one.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSpill;

impl SpillStore for NoSpill {
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), SourceError> {
        Err(no_store(offset, data.len()))
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        Err(no_store(offset, buf.len()))
    }
}

fn no_store(offset: u64, len: usize) -> SourceError {
    SourceError::Io { offset, len: len as u64, message: "no spill store".into() }
}

/// A store in memory, in the pieces written (tests, and small sources).
#[derive(Debug, Default)]
pub struct MemorySpill {
    pieces: Mutex<std::collections::BTreeMap<u64, Vec<u8>>>,
}

impl MemorySpill {
    /// Bytes held (pieces written over the same offsets count each time).
    pub fn bytes(&self) -> u64 {
        self.pieces.lock().unwrap_or_else(|p| p.into_inner()).values().map(|v| v.len() as u64).sum()
    }
}

impl SpillStore for MemorySpill {
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), SourceError> {
        let mut pieces = self.pieces.lock().unwrap_or_else(|p| p.into_inner());
        let longer = pieces.get(&offset).is_some_and(|p| p.len() >= data.len());
        if !longer {
            pieces.insert(offset, data.to_vec());
        }
        Ok(())
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        let pieces = self.pieces.lock().unwrap_or_else(|p| p.into_inner());
        let end = offset + buf.len() as u64;
        let mut filled = vec![false; buf.len()];
        for (&at, piece) in pieces.range(..end) {
            let (a, b) = (at.max(offset), (at + piece.len() as u64).min(end));
            if a < b {
                let (from, to) = ((a - at) as usize, (a - offset) as usize);
                let n = (b - a) as usize;
                buf[to..to + n].copy_from_slice(&piece[from..from + n]);
                filled[to..to + n].iter_mut().for_each(|f| *f = true);
            }
        }
        if filled.iter().all(|f| *f) {
            Ok(())
        } else {
            Err(SourceError::Io {
                offset,
                len: buf.len() as u64,
                message: "the spill store never kept these bytes".into(),
            })
        }
    }
}

/// A source that hashes the bytes read through it in file order and reads only what the reads
/// skip (see the module). `on_own_read(done, total)` is told after each slice of a gap this
/// source reads for the hash alone. Off ([`HashAlong::off`]), it only passes reads through.
pub struct HashAlong<S, P = fn(u64, u64), K = NoSpill> {
    inner: S,
    /// `None` when hashing is off.
    state: Option<Mutex<HashState>>,
    on_own_read: P,
    /// Where bytes are kept rather than read again (see [`SpillStore`]).
    spill: Option<K>,
}

struct HashState {
    hasher: Sink,
    /// Every byte before this offset has been hashed, none after.
    hashed_to: u64,
    /// Bytes this source read for the hash alone.
    own_bytes: u64,
    /// The digest, once [`HashAlong::finish`] has made it.
    digest: Option<String>,
    /// Whether a hint came before (the first one always fills its gap).
    hinted: bool,
    /// The source's ranges kept in the spill store: sorted, disjoint `[start, end)`.
    kept: Vec<(u64, u64)>,
    /// The spill store failed once: nothing more is kept.
    spill_failed: bool,
    /// A plan ([`ByteSource::prefetch_later`]) went below: the stream's queue is the run's.
    planned: bool,
}

impl HashState {
    fn new() -> Self {
        HashState {
            hasher: Sink::Inline(Sha256::new()),
            hashed_to: 0,
            own_bytes: 0,
            digest: None,
            hinted: false,
            kept: Vec::new(),
            spill_failed: false,
            planned: false,
        }
    }

    /// Whether every byte of `[start, end)` is kept.
    fn is_kept(&self, start: u64, end: u64) -> bool {
        // The last range starting at or before `start`.
        let i = self.kept.partition_point(|r| r.0 <= start);
        i > 0 && self.kept[i - 1].1 >= end
    }

    /// Whether any byte of `[start, end)` is kept.
    fn touches_kept(&self, start: u64, end: u64) -> bool {
        let i = self.kept.partition_point(|r| r.1 <= start);
        self.kept.get(i).is_some_and(|r| r.0 < end)
    }

    /// Note `[start, end)` as kept, merging it with the ranges it touches.
    fn keep(&mut self, start: u64, end: u64) {
        let (mut a, mut b) = (start, end);
        self.kept.retain(|&(s, e)| {
            let touches = s <= b && a <= e;
            if touches {
                a = a.min(s);
                b = b.max(e);
            }
            !touches
        });
        let at = self.kept.partition_point(|r| r.0 < a);
        self.kept.insert(at, (a, b));
    }
}

impl<S: ByteSource> HashAlong<S> {
    /// Hashing along, with no progress told.
    pub fn new(inner: S) -> Self {
        Self::with_progress(inner, |_, _| {})
    }

    /// Reads passed through, nothing hashed: [`HashAlong::finish`] gives `None`.
    pub fn off(inner: S) -> Self {
        HashAlong { inner, state: None, on_own_read: |_, _| {}, spill: None }
    }
}

impl<S: ByteSource, P: Fn(u64, u64)> HashAlong<S, P> {
    /// Hashing along; `on_own_read(done, total)` after each slice of a gap of 1 MiB or more
    /// read for the hash alone.
    pub fn with_progress(inner: S, on_own_read: P) -> Self {
        HashAlong { inner, state: Some(Mutex::new(HashState::new())), on_own_read, spill: None }
    }

    /// The same, keeping bytes in `store` instead of reading them twice (see the module).
    pub fn with_spill<K: SpillStore>(self, store: K) -> HashAlong<S, P, K> {
        self.with_spill_if(Some(store))
    }

    /// [`HashAlong::with_spill`] when there is a store.
    pub fn with_spill_if<K: SpillStore>(self, store: Option<K>) -> HashAlong<S, P, K> {
        HashAlong {
            inner: self.inner,
            state: self.state,
            on_own_read: self.on_own_read,
            spill: store,
        }
    }

    /// Hashing along when `on`, else only passing reads through.
    pub fn new_if(inner: S, on: bool, on_own_read: P) -> Self {
        let mut source = Self::with_progress(inner, on_own_read);
        if !on {
            source.state = None;
        }
        source
    }
}

impl<S: ByteSource, P: Fn(u64, u64), K: SpillStore> HashAlong<S, P, K> {
    /// The compression handed to jobs `spawn` runs (see the module), before any byte is read;
    /// the reading thread only queues the bytes. Nothing changes when hashing is off.
    pub fn hashing_on(self, spawn: Spawner) -> Self {
        self.hashing_on_at_most(spawn, QUEUED_AT_MOST)
    }

    fn hashing_on_at_most(self, spawn: Spawner, at_most: usize) -> Self {
        if let Some(state) = &self.state {
            let mut state = lock(state);
            if state.hashed_to == 0 {
                state.hasher = Sink::Offloaded(std::sync::Arc::new(Offload {
                    queue: Mutex::new(Queue::default()),
                    hasher: Mutex::new(Sha256::new()),
                    spawn,
                    at_most,
                }));
            }
        }
        self
    }

    /// [`HashAlong::hashing_on`] when there is a spawner.
    pub fn hashing_on_if(self, spawn: Option<Spawner>) -> Self {
        match spawn {
            Some(spawn) => self.hashing_on(spawn),
            None => self,
        }
    }

    /// Bytes queued for the hash's jobs and not yet hashed (0 hashing inline).
    pub fn queued_bytes(&self) -> usize {
        match self.state.as_ref().map(|s| lock(s)) {
            Some(state) => match &state.hasher {
                Sink::Offloaded(offload) => offload.queued_bytes(),
                Sink::Inline(_) => 0,
            },
            None => 0,
        }
    }
}

impl<S: ByteSource, P: Fn(u64, u64), K: SpillStore> HashAlong<S, P, K> {
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Bytes read for the hash alone so far (gaps the run skipped, and what `finish` read).
    pub fn own_bytes(&self) -> u64 {
        self.state.as_ref().map_or(0, |s| lock(s).own_bytes)
    }

    /// Every byte up to this offset is hashed.
    pub fn hashed_to(&self) -> u64 {
        self.state.as_ref().map_or(0, |s| lock(s).hashed_to)
    }

    /// Read and hash what is left, and give the lowercase hex sha256 of the whole source;
    /// `None` when hashing is off. Called again, the same digest without reading anything.
    pub fn finish(&self) -> Result<Option<String>, SourceError> {
        let Some(state) = &self.state else { return Ok(None) };
        let mut state = lock(state);
        if let Some(digest) = &state.digest {
            return Ok(Some(digest.clone()));
        }
        self.fill_to(&mut state, self.inner.len())?;
        let digest = state.hasher.finalize();
        state.digest = Some(digest.clone());
        Ok(Some(digest))
    }

    /// Read and hash `[hashed_to, to)` in slices: kept slices from the store, the others from
    /// the source (and kept, for a run that reads them later).
    fn fill_to(&self, state: &mut HashState, to: u64) -> Result<(), SourceError> {
        let start = state.hashed_to;
        if to <= start || state.digest.is_some() {
            return Ok(());
        }
        let total = to - start;
        self.hint_own_reads(state, start, to)?;
        let mut buf = vec![0u8; CHUNK.min(total) as usize];
        while state.hashed_to < to {
            let at = state.hashed_to;
            let n = CHUNK.min(to - at) as usize;
            let from_source = self.read_through(state, at, &mut buf[..n])?;
            if from_source > 0 {
                state.own_bytes += from_source;
                self.keep(state, at, &buf[..n]);
            }
            state.hasher.update(&buf[..n]);
            state.hashed_to += n as u64;
            if total >= SHOWN_GAP {
                (self.on_own_read)(state.hashed_to - start, total);
            }
        }
        Ok(())
    }

    /// A gap of more than one slice that the source below will serve is named to it before it
    /// is read, slice by slice, as a plan: a stream below (the page's) then fetches it in large
    /// requests while the slices are hashed, where each slice read alone was one synchronous
    /// request (the 0.5B's first gap, its head and embedding, 238 MB before layer 0: 30 of them).
    /// Not once the run has named its own plan, which the stream serves in turn: slices queued
    /// behind it would be fetched after the run needed them, for nothing.
    fn hint_own_reads(&self, state: &HashState, start: u64, to: u64) -> Result<(), SourceError> {
        if state.planned || to - start <= CHUNK {
            return Ok(());
        }
        let slices: Vec<Vec<std::ops::Range<u64>>> = (start..to)
            .step_by(CHUNK as usize)
            .map(|at| at..(at + CHUNK).min(to))
            .filter(|r| !state.is_kept(r.start, r.end))
            .map(|r| vec![r])
            .collect();
        self.inner.prefetch_later(&slices)
    }

    /// Fill `buf` with the bytes at `offset`: the kept parts (of [`FROM_STORE`] bytes or more)
    /// from the spill store, the rest from the source, in as few reads as that allows. Gives the
    /// bytes read from the source.
    fn read_through(
        &self,
        state: &HashState,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<u64, SourceError> {
        let end = offset + buf.len() as u64;
        let Some(store) = &self.spill else {
            self.inner.read_exact_at(offset, buf)?;
            return Ok(buf.len() as u64);
        };
        let slot = |a: u64, b: u64| (a - offset) as usize..(b - offset) as usize;
        let (mut from_source, mut pending) = (0u64, offset);
        let first = state.kept.partition_point(|r| r.1 <= offset);
        for &(start, stop) in &state.kept[first..] {
            if start >= end {
                break;
            }
            let (a, b) = (start.max(offset), stop.min(end));
            let fragment = b - a < FROM_STORE && b - a < end - offset;
            if fragment || store.read_at(a, &mut buf[slot(a, b)]).is_err() {
                continue; // read from the source with what is around it
            }
            if pending < a {
                self.inner.read_exact_at(pending, &mut buf[slot(pending, a)])?;
                from_source += a - pending;
            }
            pending = b;
        }
        if pending < end {
            self.inner.read_exact_at(pending, &mut buf[slot(pending, end)])?;
            from_source += end - pending;
        }
        Ok(from_source)
    }

    /// Before a read of `len` bytes at `offset`: a gap up to it no longer than the read is
    /// read and hashed first, so that the read's bytes hash as they pass.
    fn fill_short_gap(
        &self,
        state: &mut HashState,
        offset: u64,
        len: u64,
    ) -> Result<(), SourceError> {
        if offset > state.hashed_to && offset - state.hashed_to <= len {
            self.fill_to(state, offset)?;
        }
        Ok(())
    }

    /// After a read of `data` at `offset`: its bytes past what is hashed are hashed when they
    /// continue it, else kept (so the hash need not read them again).
    fn hash_read(&self, state: &mut HashState, offset: u64, data: &[u8]) {
        let end = offset + data.len() as u64;
        if state.digest.is_none() {
            if offset <= state.hashed_to && state.hashed_to < end {
                let at = (state.hashed_to - offset) as usize;
                state.hasher.update(&data[at..]);
                state.hashed_to = end;
            } else if offset > state.hashed_to {
                self.keep(state, offset, data);
            }
        }
    }

    /// Keep `data`, the source's bytes at `offset`, in the spill store when there is one (and
    /// it has not failed); a failing store is given up, not the run.
    fn keep(&self, state: &mut HashState, offset: u64, data: &[u8]) {
        let Some(store) = &self.spill else { return };
        let end = offset + data.len() as u64;
        if state.spill_failed || data.is_empty() || state.is_kept(offset, end) {
            return;
        }
        match store.write_at(offset, data) {
            Ok(()) => state.keep(offset, end),
            Err(_) => state.spill_failed = true,
        }
    }

    /// Whether a spill store was given and took everything it was asked to keep.
    pub fn spill_worked(&self) -> bool {
        self.spill.is_some() && self.state.as_ref().is_some_and(|s| !lock(s).spill_failed)
    }
}

/// The tensor of `summary` with the role `name` (`token_embd.weight`, `output.weight`).
fn tensor_of<'s>(
    summary: &'s parallax_model::ModelSummary,
    name: &str,
) -> Option<&'s parallax_model::TensorSummary> {
    summary.tensors.iter().find(|t| t.role.as_deref() == Some(name))
}

/// What hashing along a run of the model `summary` describes reads beyond the run's own
/// reads: the embedding (a run reads only its prompt's rows; a tied head reads it all again
/// after the last layer, long after the hash needed it), an untied head stored before the
/// layers (read by the run last), and the layers a file stores before a layer numbered lower
/// (`blk.10` before `blk.2`). The norms and padding the run skips are small beside them.
pub fn hash_extra_bytes(summary: &parallax_model::ModelSummary) -> u64 {
    let role = |name: &str| tensor_of(summary, name);
    let embedding = role("token_embd.weight").map_or(0, |t| t.bytes);
    // Each layer's first offset and bytes, by number.
    let mut layers: std::collections::BTreeMap<u64, (u64, u64)> = Default::default();
    for t in &summary.tensors {
        let number = t
            .role
            .as_deref()
            .and_then(|r| r.strip_prefix("blk."))
            .and_then(|r| r.split('.').next());
        if let Some(n) = number.and_then(|n| n.parse::<u64>().ok()) {
            let e = layers.entry(n).or_insert((u64::MAX, 0));
            e.0 = e.0.min(t.offset);
            e.1 = e.1.saturating_add(t.bytes);
        }
    }
    let first_layer = layers.values().map(|l| l.0).min().unwrap_or(u64::MAX);
    let head_first =
        role("output.weight").filter(|h| h.offset < first_layer).map_or(0, |h| h.bytes);
    let mut furthest = 0u64;
    let mut reordered = 0u64;
    for &(start, bytes) in layers.values() {
        if start < furthest {
            reordered = reordered.saturating_add(bytes);
        }
        furthest = furthest.max(start);
    }
    embedding.saturating_add(head_first).saturating_add(reordered)
}

/// The bytes of the model `summary` describes that a run never reads and its hash must: an
/// untied embedding but its prompt's rows (a tied one is read whole by the head). With a spill
/// store this is all a hash costs beyond the run's own reads.
pub fn hash_unread_bytes(summary: &parallax_model::ModelSummary) -> u64 {
    let role = |name: &str| tensor_of(summary, name);
    match role("output.weight") {
        Some(_) => role("token_embd.weight").map_or(0, |t| t.bytes),
        None => 0,
    }
}

/// What hashing the model `summary` describes costs, as the page says it beside the sha256
/// checkbox. Read by URL (`by_url`) the extra bytes are a download: those the run never reads,
/// since the page keeps on disk what the hash would read twice, or when the browser keeps
/// nothing (no private file system, or one full), [`hash_extra_bytes`]. From a local file they
/// are a read from the disk.
pub fn hash_note(summary: &parallax_model::ModelSummary, by_url: bool) -> String {
    let percent = |bytes: u64| {
        if summary.file_bytes == 0 {
            0.0
        } else {
            (bytes as f64 / summary.file_bytes as f64 * 100.0).round()
        }
    };
    let (unread, extra) = (hash_unread_bytes(summary), hash_extra_bytes(summary));
    let (unread_text, extra_text) =
        (parallax_model::human_bytes(unread), parallax_model::human_bytes(extra));
    if by_url {
        format!(
            "hashed as the run reads it: {unread_text} more to download (+{} % of the file, what the run skips); up to {extra_text} if the browser cannot keep bytes on disk",
            percent(unread)
        )
    } else {
        format!(
            "hashed as the run reads it, plus {extra_text} read once more (+{} % of the file)",
            percent(extra)
        )
    }
}

/// The lowercase hex sha256 of the whole of `source`, read front to back in ranges of 8 MiB
/// (a mapped file lends its pages: nothing is copied, and one range is mapped at a time);
/// `on_progress(done, total)` after each.
pub fn sha256_of<S: ByteSource + ?Sized>(
    source: &S,
    on_progress: impl Fn(u64, u64),
) -> Result<String, SourceError> {
    let total = source.len();
    let mut hasher = Sha256::new();
    let mut at = 0;
    while at < total {
        let end = at.saturating_add(CHUNK).min(total);
        hasher.update(&*source.read_range(at..end)?);
        at = end;
        on_progress(at, total);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Put the digests of a run's files (the model first, then each file it was compared with, as
/// [`HashAlong::finish`] or [`sha256_of`] gave them) where the report keeps them: the same fields
/// a hash before the run filled, so the report's bytes are the same.
pub fn record_sha256(report: &mut parallax_report::Report, digests: &[Option<String>]) {
    report.model.sha256 = digests.first().cloned().flatten();
    for (file, digest) in report.files.iter_mut().zip(digests) {
        file.sha256 = digest.clone();
    }
}

/// The state is only changed whole under the lock (a failed read leaves it as it was before
/// that slice; a queue's push or pop and a hasher's update are whole), so a poisoned lock
/// holds nothing half-made.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<S: ByteSource, P: Fn(u64, u64), K: SpillStore> ByteSource for HashAlong<S, P, K> {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        let Some(state) = &self.state else { return self.inner.read_exact_at(offset, buf) };
        check_bounds(offset, buf.len() as u64, self.len())?;
        // Held over the read itself: reads from two threads (a native read-ahead's and the
        // engine's) then reach the hash in the order they were served.
        let mut state = lock(state);
        self.fill_short_gap(&mut state, offset, buf.len() as u64)?;
        self.read_through(&state, offset, buf)?;
        self.hash_read(&mut state, offset, buf);
        Ok(())
    }

    /// As [`ByteSource::read_exact_at`], with the source below's own bytes when no spill store
    /// serves parts of them (a mapped file's pages, hashed where they lie).
    fn read_range(&self, range: std::ops::Range<u64>) -> Result<SourceBytes, SourceError> {
        let Some(state) = &self.state else { return self.inner.read_range(range) };
        let len = range.end.saturating_sub(range.start);
        check_bounds(range.start, len, self.len())?;
        let mut state = lock(state);
        self.fill_short_gap(&mut state, range.start, len)?;
        let bytes = if self.spill.is_some() {
            let mut buf = vec![0u8; len as usize];
            self.read_through(&state, range.start, &mut buf)?;
            SourceBytes::from(buf)
        } else {
            self.inner.read_range(range.clone())?
        };
        self.hash_read(&mut state, range.start, &bytes);
        Ok(bytes)
    }

    fn name(&self) -> String {
        self.inner.name()
    }

    /// The hinted bytes are the next layer. Before the first layer the gap is read and hashed
    /// now (it holds what the layers follow in the file: the embedding, a head stored first),
    /// so the layers hash as they pass; later, only a gap no longer than the hinted bytes (a
    /// file may store its layers as 0, 1, 10, 11, …, 2, …: the gap before layer 2 is layers
    /// the run reads, in file order, later). Then the hint goes on to the source below, less
    /// any range that touches kept bytes: those reads come from the spill store, and a source
    /// that fetches hinted bytes ahead (the page's stream) would fetch them for nothing.
    fn prefetch(&self, ranges: &[std::ops::Range<u64>]) -> Result<(), SourceError> {
        let Some(state) = &self.state else { return self.inner.prefetch(ranges) };
        let hinted = ranges.iter().filter(|r| r.end > r.start);
        let mut state = lock(state);
        if let Some(first) = hinted.clone().map(|r| r.start).min() {
            let mut bytes = 0u64;
            for r in hinted {
                check_bounds(r.start, r.end - r.start, self.len())?;
                bytes = bytes.saturating_add(r.end - r.start);
            }
            if !state.hinted || first.saturating_sub(state.hashed_to) <= bytes {
                self.fill_to(&mut state, first)?;
            }
            state.hinted = true;
        }
        let from_source: Vec<std::ops::Range<u64>> =
            ranges.iter().filter(|r| !state.touches_kept(r.start, r.end)).cloned().collect();
        drop(state);
        self.inner.prefetch(&from_source)
    }

    /// Passed on less every group any of whose ranges touches kept bytes ([`ByteSource::prefetch`]
    /// drops only those ranges; a run's layer is never partly kept when it names its plan): a
    /// run names its plan after its first hint, whose gap (for the 0.5B, the output head stored
    /// before the layers) is kept by then, and the head's chunks are read from the spill store.
    /// Passed on whole, a stream below fetched the head again at the run's end
    /// (`tests/browser/hash.test.mjs`: 70–120 MiB more than without the hash). After a plan,
    /// this source's own gap reads are no longer hinted below (see `hint_own_reads`).
    fn prefetch_later(&self, groups: &[Vec<std::ops::Range<u64>>]) -> Result<(), SourceError> {
        let Some(state) = &self.state else { return self.inner.prefetch_later(groups) };
        let mut state = lock(state);
        let from_source: Vec<Vec<std::ops::Range<u64>>> = groups
            .iter()
            .filter(|g| !g.iter().any(|r| state.touches_kept(r.start, r.end)))
            .cloned()
            .collect();
        state.planned = true;
        drop(state);
        self.inner.prefetch_later(&from_source)
    }

    fn parts(&self) -> Vec<u64> {
        self.inner.parts()
    }
}

#[cfg(test)]
// One-range hints are what these tests mean, not a typo for a range.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;
    use parallax_source::{CountingSource, MemorySource};

    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    fn sha(b: &[u8]) -> String {
        hex::encode(Sha256::digest(b))
    }

    fn source(data: &[u8]) -> HashAlong<CountingSource<MemorySource>> {
        HashAlong::new(CountingSource::new(MemorySource::new(data.to_vec())))
    }

    fn read(s: &impl ByteSource, start: u64, end: u64) -> Vec<u8> {
        s.read_range(start..end).unwrap().into_vec()
    }

    type Jobs = std::sync::Arc<Mutex<Vec<Box<dyn FnOnce() + Send>>>>;

    /// A spawner that keeps its jobs for the test to run (or not).
    fn kept_jobs() -> (Spawner, Jobs) {
        let jobs: Jobs = Default::default();
        let kept = std::sync::Arc::clone(&jobs);
        (std::sync::Arc::new(move |job| lock(&kept).push(job)), jobs)
    }

    /// Offloaded, the reading thread hashes nothing while the queue is short: the bytes wait,
    /// in file order, for the jobs (one handed out per time the queue fills from empty); run
    /// on another thread, or never (`finish` then hashes what is left), the digest is the
    /// file's, out-of-order reads and own gap reads included.
    #[test]
    fn offloaded_hashing_queues_in_file_order_for_jobs_and_gives_the_same_digest() {
        let data = bytes(300_000);
        for run_jobs in [true, false] {
            let (spawn, jobs) = kept_jobs();
            let s = source(&data).hashing_on(spawn);
            read(&s, 0, 1000);
            read(&s, 200_000, 250_000); // ahead: left for later
            read(&s, 1000, 100_000);
            s.prefetch(&[150_000..200_000]).unwrap(); // a short gap: read by the hash
            read(&s, 150_000, 200_000);
            assert_eq!(s.queued_bytes(), 200_000, "the reader hashed nothing itself");
            assert_eq!(lock(&jobs).len(), 1, "one job for a queue that never emptied");
            if run_jobs {
                let taken = std::mem::take(&mut *lock(&jobs));
                std::thread::spawn(move || taken.into_iter().for_each(|job| job())).join().unwrap();
                assert_eq!(s.queued_bytes(), 0);
            }
            assert_eq!(s.finish().unwrap(), Some(sha(&data)), "jobs run: {run_jobs}");
            assert_eq!(s.queued_bytes(), 0);
        }
    }

    /// Jobs that never run cannot make the queue grow past its bound: the reading thread then
    /// hashes the queue itself.
    #[test]
    fn an_offloaded_queue_stays_bounded_when_its_jobs_fall_behind() {
        let data = bytes(100_000);
        let (spawn, _never_run) = kept_jobs();
        let s = source(&data).hashing_on_at_most(spawn, 25_000);
        let mut most = 0;
        for at in (0..100_000).step_by(10_000) {
            read(&s, at, at + 10_000);
            most = most.max(s.queued_bytes());
        }
        assert!(most <= 25_000 && most > 0, "queued at most {most} bytes");
        assert_eq!(s.finish().unwrap(), Some(sha(&data)));
    }

    /// Jobs on threads of their own while another thread reads: the same digest.
    #[test]
    fn offloaded_jobs_on_other_threads_give_the_same_digest() {
        let data = bytes(2_000_000);
        let spawn: Spawner = std::sync::Arc::new(|job| {
            std::thread::spawn(job);
        });
        let s = source(&data).hashing_on_at_most(spawn, 300_000);
        for at in (0..2_000_000).step_by(40_000) {
            read(&s, at, at + 40_000);
        }
        assert_eq!(s.finish().unwrap(), Some(sha(&data)));
    }

    /// Hashing along a file whose tensors are mapped: their reads stay the file's pages (not
    /// copies), in order or not, and the digest is the file's.
    #[test]
    fn hashing_along_a_mapped_file_keeps_its_reads_mapped() {
        let big = parallax_source::FileSource::MAP_AT_LEAST;
        let data = bytes(3 * big as usize + 100);
        let path =
            std::env::temp_dir().join(format!("parallax-hash-mapped-{}.bin", std::process::id()));
        std::fs::write(&path, &data).unwrap();
        let s = HashAlong::new(parallax_source::FileSource::open(&path).unwrap());
        let header = s.read_range(0..100).unwrap();
        let later = s.read_range(2 * big + 100..3 * big + 100).unwrap();
        let next = s.read_range(100..big + 100).unwrap();
        let digest = s.finish().unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(!header.is_mapped() && later.is_mapped() && next.is_mapped());
        assert!(later == data[2 * big as usize + 100..] && next == data[100..big as usize + 100]);
        assert_eq!(digest, Some(sha(&data)));
    }

    /// The whole source, each byte read once, front to back, its digest sha256's; an empty
    /// source is sha256 of nothing; a read that fails is the error.
    #[test]
    fn sha256_of_reads_a_source_once_front_to_back() {
        let data = bytes(2 * CHUNK as usize + 12_345);
        let src = CountingSource::new(MemorySource::new(data.clone()));
        let seen = std::cell::RefCell::new(Vec::new());
        let digest = sha256_of(&src, |done, total| seen.borrow_mut().push((done, total))).unwrap();
        assert_eq!(digest, sha(&data));
        assert_eq!((src.bytes_read(), src.reads()), (data.len() as u64, 3));
        let total = data.len() as u64;
        assert_eq!(*seen.borrow(), [(CHUNK, total), (2 * CHUNK, total), (total, total)]);
        assert_eq!(sha256_of(&MemorySource::new(Vec::new()), |_, _| {}).unwrap(), sha(&[]));
        struct Broken;
        impl ByteSource for Broken {
            fn len(&self) -> u64 {
                100
            }
            fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
                Err(SourceError::Io { offset, len: buf.len() as u64, message: "gone".into() })
            }
            fn name(&self) -> String {
                "broken".into()
            }
        }
        let err = sha256_of(&Broken, |_, _| {});
        assert!(matches!(err, Err(SourceError::Io { .. })), "{err:?}");
    }

    #[test]
    fn reads_in_file_order_are_hashed_as_they_pass_and_cost_nothing_more() {
        let data = bytes(10_000);
        let s = source(&data);
        for (a, b) in [(0, 100), (100, 5000), (5000, 10_000)] {
            assert_eq!(read(&s, a, b), data[a as usize..b as usize]);
        }
        assert_eq!(s.finish().unwrap().as_deref(), Some(sha(&data).as_str()));
        assert_eq!((s.inner().bytes_read(), s.own_bytes()), (10_000, 0));
        // Again: the same digest, nothing read.
        assert_eq!(s.finish().unwrap(), Some(sha(&data)));
        assert_eq!(s.inner().bytes_read(), 10_000);
    }

    #[test]
    fn overlapping_and_repeated_reads_feed_only_their_new_bytes() {
        let data = bytes(1000);
        let s = source(&data);
        read(&s, 0, 300);
        read(&s, 200, 600); // overlaps: 300..600 is new
        read(&s, 0, 50); // behind: nothing new
        read(&s, 600, 600); // empty
        assert_eq!(s.hashed_to(), 600);
        assert_eq!(s.finish().unwrap(), Some(sha(&data)));
        assert_eq!(s.own_bytes(), 400);
    }

    /// A store that takes `room` bytes, then fails (a full disk, a quota).
    struct SmallSpill {
        room: u64,
        inner: MemorySpill,
    }

    impl SpillStore for SmallSpill {
        fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), SourceError> {
            if self.inner.bytes() + data.len() as u64 > self.room {
                return Err(no_store(offset, data.len()));
            }
            self.inner.write_at(offset, data)
        }
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
            self.inner.read_at(offset, buf)
        }
    }

    /// A run's shape: the header, a row of the embedding, a hint at the first layer, the layers
    /// stored as 0, 2, 1 (a layer before a lower one), then a tied head (the embedding again).
    fn run_like(s: &impl ByteSource, data: &[u8]) {
        let (header, embd, layer0, layer2, layer1) =
            (0..1000u64, 1000..600_000, 600_000..700_000, 700_000..800_000, 800_000..900_000);
        assert_eq!(read(s, header.start, header.end), data[..1000]);
        read(s, 2000, 2100); // one embedding row, far ahead of the hash
        s.prefetch(std::slice::from_ref(&layer0)).unwrap();
        for l in [layer0, layer1, layer2] {
            assert_eq!(read(s, l.start, l.end), data[l.start as usize..l.end as usize]);
        }
        assert_eq!(read(s, embd.start, embd.end), data[embd.start as usize..embd.end as usize]);
    }

    #[test]
    fn with_a_spill_store_no_byte_is_read_twice() {
        let data = bytes(900_000);
        let without = source(&data);
        run_like(&without, &data);
        assert_eq!(without.finish().unwrap(), Some(sha(&data)));
        let twice = without.inner().bytes_read() - 900_000;
        assert!(twice > 500_000, "without a store the embedding is read twice ({twice} more)");

        let store = MemorySpill::default();
        let s = source(&data).with_spill(store);
        run_like(&s, &data);
        assert_eq!(s.finish().unwrap(), Some(sha(&data)));
        assert!(s.spill_worked());
        // Each byte once, but the embedding row read ahead of the hash (under FROM_STORE, read
        // with what is around it).
        assert!(s.inner().bytes_read() <= 900_000 + 100, "{}", s.inner().bytes_read());
    }

    /// A source that notes the hints it is given.
    struct Hinted {
        inner: MemorySource,
        hints: Mutex<Vec<Vec<std::ops::Range<u64>>>>,
        later: Mutex<Vec<Vec<std::ops::Range<u64>>>>,
    }

    impl ByteSource for Hinted {
        fn len(&self) -> u64 {
            self.inner.len()
        }
        fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
            self.inner.read_exact_at(offset, buf)
        }
        fn name(&self) -> String {
            "hinted".into()
        }
        fn prefetch(&self, ranges: &[std::ops::Range<u64>]) -> Result<(), SourceError> {
            self.hints.lock().unwrap().push(ranges.to_vec());
            Ok(())
        }
        fn prefetch_later(&self, groups: &[Vec<std::ops::Range<u64>>]) -> Result<(), SourceError> {
            self.later.lock().unwrap().extend(groups.iter().cloned());
            Ok(())
        }
    }

    fn hinted(data: &[u8]) -> Hinted {
        Hinted {
            inner: MemorySource::new(data.to_vec()),
            hints: Mutex::default(),
            later: Mutex::default(),
        }
    }

    /// Groups hinted later go below less those that touch kept bytes (a tied head's chunks,
    /// served by the spill store), and read nothing; without the hash, all of them.
    #[test]
    fn groups_hinted_later_pass_below_less_those_the_spill_store_serves() {
        let data = bytes(900_000);
        let groups = [vec![700_000..800_000], vec![1000..50_000, 800_000..900_000]];
        let s = HashAlong::new(hinted(&data)).with_spill(MemorySpill::default());
        s.prefetch(&[600_000..700_000]).unwrap();
        let own = s.own_bytes();
        s.prefetch_later(&groups).unwrap();
        assert_eq!((s.hashed_to(), s.own_bytes()), (600_000, own));
        assert_eq!(*s.inner().later.lock().unwrap(), [vec![700_000..800_000]]);
        let off = HashAlong::off(hinted(&data));
        off.prefetch_later(&groups).unwrap();
        assert_eq!(*off.inner().later.lock().unwrap(), groups);
    }

    /// A long gap the hash reads for itself is named below first, slice by slice and less what
    /// is kept, so a stream fetches it ahead of the reads; not once the run has named its plan.
    #[test]
    fn a_long_own_gap_is_hinted_below_in_slices_until_the_run_names_its_plan() {
        let c = CHUNK as usize;
        let data = bytes(4 * c + 1000);
        let s = HashAlong::new(hinted(&data)).with_spill(MemorySpill::default());
        read(&s, 0, 100);
        let slice = |k: u64| 100 + k * CHUNK..100 + (k + 1) * CHUNK;
        let e = 3 * CHUNK + 500;
        read(&s, slice(2).start, slice(2).end); // far ahead of the hash: kept, a whole slice
        s.prefetch(&[e..4 * CHUNK]).unwrap();
        let later = [vec![slice(0)], vec![slice(1)], vec![slice(3).start..e]];
        assert_eq!(*s.inner().later.lock().unwrap(), later);
        assert_eq!(s.hashed_to(), e);
        s.prefetch_later(&[vec![4 * CHUNK..4 * CHUNK + 1000]]).unwrap();
        s.inner().later.lock().unwrap().clear();
        assert_eq!(s.finish().unwrap(), Some(sha(&data)));
        assert!(s.inner().later.lock().unwrap().is_empty(), "the run's plan came first");
        let short = HashAlong::new(hinted(&data)).with_spill(MemorySpill::default());
        short.prefetch(&[c as u64..c as u64 + 1]).unwrap();
        assert!(short.inner().later.lock().unwrap().is_empty(), "one slice: read at once");
    }

    /// Hinted ranges the spill store will serve are not hinted below: the page's stream would
    /// download them for nothing.
    #[test]
    fn hints_of_kept_bytes_do_not_reach_the_source_below() {
        let data = bytes(900_000);
        let s = HashAlong::new(hinted(&data)).with_spill(MemorySpill::default());
        // The first hint fills its gap: 0..600_000 is hashed and kept.
        s.prefetch(&[600_000..700_000]).unwrap();
        // A tied head's chunk (the embedding) is kept; a later layer is not; one range of
        // each in one hint: only the layer goes below.
        s.prefetch(&[1000..50_000, 800_000..900_000]).unwrap();
        s.prefetch(&[599_000..601_000]).unwrap();
        let hints = s.inner().hints.lock().unwrap().clone();
        assert_eq!(hints, vec![vec![600_000..700_000], vec![800_000..900_000], vec![]]);
        // And the reads are the file's bytes either way.
        assert_eq!(read(&s, 1000, 50_000), data[1000..50_000]);
        assert_eq!(read(&s, 600_000, 700_000), data[600_000..700_000]);
    }

    #[test]
    fn a_spill_store_that_fails_is_given_up_and_the_digest_is_the_same() {
        let data = bytes(900_000);
        // Room for the embedding, not for the layer stored out of order after it.
        let s =
            source(&data).with_spill(SmallSpill { room: 650_000, inner: MemorySpill::default() });
        run_like(&s, &data);
        assert_eq!(s.finish().unwrap(), Some(sha(&data)));
        assert!(!s.spill_worked());
        // The embedding it kept is read from it; the layer it could not keep is read again.
        assert_eq!(s.inner().bytes_read(), 900_000 + 100_000 + 100);
    }

    #[test]
    fn a_short_gap_is_filled_and_a_long_one_left_for_later() {
        let data = bytes(10_000);
        let s = source(&data);
        read(&s, 0, 100);
        // 50 bytes skipped before a 100-byte read: read for the hash now.
        read(&s, 150, 250);
        assert_eq!((s.hashed_to(), s.own_bytes()), (250, 50));
        // A small read far ahead (a norm, an embedding row): left, costs its own bytes later.
        read(&s, 9000, 9010);
        assert_eq!((s.hashed_to(), s.own_bytes()), (250, 50));
        // A hint fills the gap up to its first range; its reads then pass in order.
        s.prefetch(&[3000..4000, 2000..2500]).unwrap();
        assert_eq!((s.hashed_to(), s.own_bytes()), (2000, 1800));
        read(&s, 2000, 4000);
        assert_eq!(s.hashed_to(), 4000);
        // A later hint far ahead (layers stored 0, 1, 10, …, 2): left to be hashed in order.
        s.prefetch(&[7000..7500]).unwrap();
        assert_eq!((s.hashed_to(), s.own_bytes()), (4000, 1800));
        // Out of order (a tied head at the front, read again last): passes through.
        assert_eq!(read(&s, 100, 200), data[100..200]);
        assert_eq!(s.finish().unwrap(), Some(sha(&data)));
        assert_eq!(s.own_bytes(), 1800 + 6000);
        // Every byte was read by the run or once by the hash: never more than both.
        assert_eq!(s.inner().bytes_read(), 100 + 100 + 10 + 2000 + 100 + 1800 + 6000);
    }

    #[test]
    fn a_gap_longer_than_a_slice_is_read_in_bounded_slices_with_progress() {
        let data = bytes(2 * CHUNK as usize + 15);
        let seen = std::cell::RefCell::new(Vec::new());
        let s = HashAlong::with_progress(
            CountingSource::new(MemorySource::new(data.clone())),
            |d, t| seen.borrow_mut().push((d, t)),
        );
        read(&s, 0, 10);
        assert_eq!(s.finish().unwrap(), Some(sha(&data)));
        let total = data.len() as u64 - 10;
        assert_eq!(*seen.borrow(), vec![(CHUNK, total), (2 * CHUNK, total), (total, total)]);
        assert_eq!(s.inner().reads(), 4);
    }

    #[test]
    fn reads_and_hints_past_the_end_are_refused_and_change_nothing() {
        let data = bytes(100);
        let s = source(&data);
        read(&s, 0, 10);
        assert!(matches!(s.read_range(90..101), Err(SourceError::OutOfBounds { .. })));
        assert!(matches!(s.prefetch(&[50..200]), Err(SourceError::OutOfBounds { .. })));
        assert!(s.read_range(0..u64::MAX).is_err());
        assert_eq!((s.hashed_to(), s.own_bytes()), (10, 0));
        assert_eq!(s.finish().unwrap(), Some(sha(&data)));
    }

    #[test]
    fn the_empty_file_hashes_to_the_empty_digest_without_a_read() {
        let s = source(&[]);
        s.prefetch(&[]).unwrap();
        assert_eq!(
            s.finish().unwrap().as_deref(),
            Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        assert_eq!(s.inner().reads(), 0);
    }

    #[test]
    fn the_note_says_what_the_hash_costs_beyond_the_run() {
        let summary = |embedding: u64, file: u64| parallax_model::ModelSummary {
            file_name: "m.gguf".into(),
            file_bytes: file,
            format: "GGUF v3".into(),
            architecture: None,
            hyperparameters: None,
            metadata: Vec::new(),
            type_histogram: Vec::new(),
            tensors: vec![parallax_model::TensorSummary {
                name: "token_embd.weight".into(),
                role: Some("token_embd.weight".into()),
                ty: "Q8_0".into(),
                ne: vec![896, 151936],
                offset: 0,
                bytes: embedding,
            }],
        };
        // A tied head: the embedding (here 138 MiB of 379 MiB).
        let qwen = summary(144_643_072, 397_808_192);
        assert_eq!(
            hash_note(&qwen, true),
            "hashed as the run reads it: 0 B more to download (+0 % of the file, what the run skips); up to 137.94 MiB if the browser cannot keep bytes on disk"
        );
        assert_eq!(
            hash_note(&qwen, false),
            "hashed as the run reads it, plus 137.94 MiB read once more (+36 % of the file)"
        );
        assert_eq!(hash_extra_bytes(&summary(0, 0)), 0);
        // The real 0.5B's layout: its head before the layers, which lie as blk.0, 1, 10, 2.
        let tensor = |role: &str, offset: u64, bytes: u64| parallax_model::TensorSummary {
            name: role.into(),
            role: Some(role.into()),
            ty: "Q4_K".into(),
            ne: vec![1],
            offset,
            bytes,
        };
        let mut layout = summary(100, 2000);
        layout.tensors.extend([
            tensor("output.weight", 0, 300),
            tensor("blk.0.attn_q.weight", 400, 10),
            tensor("blk.1.attn_q.weight", 500, 20),
            tensor("blk.10.attn_q.weight", 600, 40),
            tensor("blk.2.attn_q.weight", 700, 80),
        ]);
        assert_eq!(hash_extra_bytes(&layout), 100 + 300 + 40);
        // Untied (an output head of its own): the embedding is what the run never reads.
        assert_eq!(hash_unread_bytes(&layout), 100);
        assert_eq!(hash_unread_bytes(&qwen), 0, "tied: the head reads the embedding");
        assert_eq!(
            hash_note(&summary(0, 0), true),
            "hashed as the run reads it: 0 B more to download (+0 % of the file, what the run skips); up to 0 B if the browser cannot keep bytes on disk"
        );
    }

    #[test]
    fn known_vector_and_off() {
        // FIPS 180-2 test vector "abc", read in two pieces out of order.
        let s = source(b"abc");
        read(&s, 2, 3);
        read(&s, 0, 1);
        assert_eq!(
            s.finish().unwrap().as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        let off = HashAlong::off(CountingSource::new(MemorySource::new(bytes(100))));
        off.prefetch(&[0..100]).unwrap();
        read(&off, 50, 60);
        assert_eq!(off.finish().unwrap(), None);
        assert_eq!((off.inner().bytes_read(), off.own_bytes()), (10, 0));
    }

    #[test]
    fn a_failed_read_is_the_sources_error_and_the_hash_goes_on_after_it() {
        struct FailsOnce(MemorySource, std::cell::Cell<bool>);
        impl ByteSource for FailsOnce {
            fn len(&self) -> u64 {
                self.0.len()
            }
            fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
                if self.1.replace(false) {
                    return Err(SourceError::Io {
                        offset,
                        len: buf.len() as u64,
                        message: "the network broke".into(),
                    });
                }
                self.0.read_exact_at(offset, buf)
            }
            fn name(&self) -> String {
                "flaky".into()
            }
        }
        let data = bytes(1000);
        let s = HashAlong::new(FailsOnce(MemorySource::new(data.clone()), false.into()));
        read(&s, 0, 100);
        s.inner().1.set(true);
        assert!(matches!(s.finish(), Err(SourceError::Io { .. })));
        assert_eq!(s.hashed_to(), 100);
        assert_eq!(s.finish().unwrap(), Some(sha(&data)));
    }
}
