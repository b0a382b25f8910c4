//! A file's first bytes kept from one opening to the next: the page reads a model URL's header
//! for its summary, then again for each run, and by URL each of its 1 MiB pieces is a round
//! trip ([`crate::FIRST_HEADER_CHUNK`]). A [`KeptStart`] records what a parse read from the
//! start, and serves those bytes to a later opening of the same version of the file (the caller
//! knows versions: a server's version tag and the file's size).

use std::ops::Range;
use std::sync::{Arc, Mutex};

use crate::{ByteSource, SourceBytes, SourceError};

/// The bytes a [`KeptStart`] holds from its file's start, shared with whoever keeps them.
#[derive(Clone)]
pub struct StartRecording(Arc<Mutex<Recording>>);

struct Recording {
    /// Recorded so far, while recording.
    bytes: Vec<u8>,
    limit: usize,
    /// What was recorded, once [`StartRecording::finish`]ed (or known from the start).
    finished: Option<Arc<[u8]>>,
}

impl StartRecording {
    /// The bytes recorded so far, and no more from now on.
    pub fn finish(&self) -> Arc<[u8]> {
        let mut r = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Recording { bytes, finished, .. } = &mut *r;
        finished.get_or_insert_with(|| Arc::from(std::mem::take(bytes))).clone()
    }
}

/// `inner` with the bytes from its start on held in memory, and reads inside them served from
/// there. Either recorded ([`KeptStart::recording`]): a read that begins at or before the end
/// of what it holds and goes past it adds to them, up to `limit` bytes — a header's parse reads
/// its file's first bytes in order, and a second parse of the same header (the page checks a
/// compared file against the model, then runs it) reads nothing again; or known
/// ([`KeptStart::known`]): recorded at an earlier opening of the same version of the file.
/// Every other read goes through to `inner`.
pub struct KeptStart<S> {
    inner: S,
    start: StartRecording,
}

impl<S: ByteSource> KeptStart<S> {
    /// Recording `inner`'s first bytes, up to `limit`, until the recording is finished.
    pub fn recording(inner: S, limit: usize) -> (Self, StartRecording) {
        let recording = Recording { bytes: Vec::new(), limit, finished: None };
        let start = StartRecording(Arc::new(Mutex::new(recording)));
        (KeptStart { inner, start: start.clone() }, start)
    }

    /// `inner` whose first bytes are `start` (a `start` longer than `inner` keeps only what
    /// `inner` holds).
    pub fn known(inner: S, start: Arc<[u8]>) -> Self {
        let held = (start.len() as u64).min(inner.len()) as usize;
        let start = if held < start.len() { Arc::from(&start[..held]) } else { start };
        let recording = Recording { bytes: Vec::new(), limit: 0, finished: Some(start) };
        KeptStart { inner, start: StartRecording(Arc::new(Mutex::new(recording))) }
    }

    /// `f` of the held bytes `[offset, offset + len)`, where they are all held.
    fn held<R>(&self, offset: u64, len: usize, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let r = self.start.0.lock().unwrap_or_else(|e| e.into_inner());
        let held = r.finished.as_deref().unwrap_or(&r.bytes);
        let end = offset.checked_add(len as u64)?;
        (end <= held.len() as u64).then(|| f(&held[offset as usize..end as usize]))
    }

    fn record(&self, offset: u64, buf: &[u8]) {
        let mut r = self.start.0.lock().unwrap_or_else(|e| e.into_inner());
        let (held, end) = (r.bytes.len() as u64, offset + buf.len() as u64);
        if r.finished.is_some() || offset > held || end <= held || end > r.limit as u64 {
            return;
        }
        let new = &buf[(held - offset) as usize..];
        r.bytes.extend_from_slice(new);
    }
}

impl<S: ByteSource> ByteSource for KeptStart<S> {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        if self.held(offset, buf.len(), |bytes| buf.copy_from_slice(bytes)).is_some() {
            return Ok(());
        }
        self.inner.read_exact_at(offset, buf)?;
        self.record(offset, buf);
        Ok(())
    }
    fn read_range(&self, range: Range<u64>) -> Result<SourceBytes, SourceError> {
        let len = range.end.saturating_sub(range.start) as usize;
        if let Some(bytes) = self.held(range.start, len, |bytes| SourceBytes::from(bytes.to_vec()))
        {
            return Ok(bytes);
        }
        let start = range.start;
        let bytes = self.inner.read_range(range)?;
        self.record(start, &bytes);
        Ok(bytes)
    }
    fn name(&self) -> String {
        self.inner.name()
    }
    fn prefetch(&self, ranges: &[Range<u64>]) -> Result<(), SourceError> {
        self.inner.prefetch(ranges)
    }
    fn prefetch_later(&self, groups: &[Vec<Range<u64>>]) -> Result<(), SourceError> {
        self.inner.prefetch_later(groups)
    }
    fn parts(&self) -> Vec<u64> {
        self.inner.parts()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CountingSource, Cursor, MemorySource};

    fn file(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn what_a_parse_read_from_the_start_is_served_to_the_next_opening_without_reads() {
        let bytes = file(10_000);
        let below = CountingSource::new(MemorySource::new(bytes.clone()));
        let (recorded, recording) = KeptStart::recording(&below, 4096);
        // The magic, then pieces in order (one overlapping the last), then a read elsewhere.
        let mut cursor = Cursor::new(&recorded, 0).with_chunk(1000);
        let mut magic = [0u8; 4];
        cursor.read_into(&mut magic).unwrap();
        let mut piece = vec![0u8; 2500];
        cursor.read_into(&mut piece).unwrap();
        recorded.read_exact_at(2000, &mut [0u8; 1000]).unwrap();
        recorded.read_exact_at(7000, &mut [0u8; 100]).unwrap();
        let start = recording.finish();
        // Contiguous from 0, not past the limit (the cursor's chunks ended at 3000).
        assert!(start.len() >= 3000 && start.len() <= 4096, "{}", start.len());
        assert_eq!(&start[..], &bytes[..start.len()]);
        // A second parse reads nothing below; finished, later reads are not recorded.
        let reads = below.reads();
        let mut again = vec![0u8; 2500];
        recorded.read_exact_at(4, &mut again).unwrap();
        assert_eq!(again, bytes[4..2504]);
        assert_eq!(&recorded.read_range(0..start.len() as u64).unwrap()[..], &start[..]);
        assert_eq!(below.reads(), reads, "served from what was recorded");
        recorded.read_exact_at(0, &mut [0u8; 4000]).unwrap();
        assert_eq!(recording.finish().len(), start.len());

        let counted = CountingSource::new(MemorySource::new(bytes.clone()));
        let known = KeptStart::known(&counted, start.clone());
        let mut buf = vec![0u8; 2000];
        known.read_exact_at(500, &mut buf).unwrap();
        assert_eq!(buf, bytes[500..2500]);
        assert_eq!(&known.read_range(0..3000).unwrap()[..], &bytes[..3000]);
        assert_eq!(counted.reads(), 0, "reads inside the known start reach no source");
        // Across its end, and past it: the source's bytes.
        let across = start.len() as u64 - 10;
        known.read_exact_at(across, &mut buf).unwrap();
        assert_eq!(buf, bytes[across as usize..across as usize + 2000]);
        assert_eq!(&known.read_range(9000..10_000).unwrap()[..], &bytes[9000..]);
        assert_eq!(counted.reads(), 2);
        // Out of bounds is still the source's error.
        assert!(matches!(
            known.read_exact_at(9990, &mut buf),
            Err(SourceError::OutOfBounds { .. })
        ));
    }

    #[test]
    fn a_known_start_longer_than_the_file_keeps_what_the_file_holds() {
        let bytes = file(100);
        let known = KeptStart::known(MemorySource::new(bytes[..50].to_vec()), Arc::from(bytes));
        assert!(matches!(
            known.read_exact_at(40, &mut [0u8; 20]),
            Err(SourceError::OutOfBounds { .. })
        ));
    }
}
