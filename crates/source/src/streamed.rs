//! Reads served from a stream that fetches hinted spans on its own, while the caller computes.
//!
//! The page reads a model (by URL, or a chosen file) in a worker whose reads must be synchronous
//! (the engine's are), yet a synchronous read fetches nothing while the layer before it computes. A second worker
//! can fetch meanwhile and hand the bytes over through shared memory; this module owns what is
//! the same on every such stream: which hinted span comes next, what a read may take from it, and
//! that any failure of the stream falls back, for good, to the source's own reads — so the
//! stream only ever makes a run faster, never different or less careful.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Mutex;

use crate::{check_bounds, covering_span, ByteSource, SourceError};

/// The bytes of requested spans, delivered in the order they were requested, by something that
/// fetches ahead on its own (the page's fetch worker).
pub trait SpanStream {
    /// Fetch `spans`, in order, after every span requested before them. They are handed over
    /// together, so that the fetcher plans its requests over all of them at once: seen one at a
    /// time, the first of a plan looked like the last, and a request opened for it ran past it
    /// into bytes the run never read there. `Err`: the stream can take no more.
    fn request(&self, spans: &[Range<u64>]) -> Result<(), String>;
    /// The next `buf.len()` bytes of the requested spans, waiting for them; with `buf` `None`,
    /// the next `len` bytes are dropped. `Err`: the stream failed or stalled, and will deliver
    /// nothing more.
    fn take(&self, buf: Option<&mut [u8]>, len: u64) -> Result<(), String>;
}

/// A source whose hinted spans ([`ByteSource::prefetch`]) arrive through a [`SpanStream`]. The
/// covering span of each hint — under the same rule as [`crate::ReadAhead`]'s window, at most
/// `max_span` bytes — is requested at once. A read that lies in a requested span at or after
/// what was already taken is served from the stream (the bytes before it dropped): a layer's
/// tensors read in file order (the page's way), or its whole span read as one window, come from
/// the stream. Any other read, and every read after the stream has failed, goes to the source
/// itself, which reports its own errors.
///
/// Groups hinted later ([`ByteSource::prefetch_later`]: the run's next layers, its output head's
/// chunks) are requested in turn as the stream is read, [`AHEAD`] spans waiting at a time, so the
/// fetching goes on while a layer computes instead of stopping at the one hinted next — the
/// stream's own buffer bounds how far ahead it gets. Groups that follow each other in the file
/// are one span ([`MERGE_GAP`]); a hint that lies in a requested span asks for nothing.
pub struct StreamedReads<S, T> {
    inner: S,
    stream: T,
    max_span: u64,
    state: Mutex<Queue>,
}

/// Spans requested from the stream and not yet read through, at most, while later groups wait
/// their turn (the page's fetch worker takes 32).
pub const AHEAD: usize = 8;

/// Groups hinted later that follow each other in the file, this close or closer (the padding
/// a format aligns tensors with), are requested as one span (up to `max_span` bytes): the
/// stream then sees the run's plan in long stretches — the 0.5B's 24 layers and head in about
/// 6 — and its fetch worker opens one request for each, where a span per layer left it 1–2
/// spans past where it was and 12 requests for one run.
pub const MERGE_GAP: u64 = 64;

#[derive(Default)]
struct Queue {
    /// Requested spans not yet taken, in order; the first one's start is where the stream is.
    spans: VecDeque<Range<u64>>,
    /// The covering spans of groups hinted later, not yet requested, in order.
    later: VecDeque<Range<u64>>,
    /// Why the stream stopped, once it has.
    broken: Option<String>,
}

impl Queue {
    /// The stream failed: nothing more is taken from it.
    fn stop(&mut self, why: String) {
        self.spans.clear();
        self.later.clear();
        self.broken = Some(why);
    }
}

impl<S: ByteSource, T: SpanStream> StreamedReads<S, T> {
    pub fn new(inner: S, stream: T, max_span: u64) -> Self {
        StreamedReads { inner, stream, max_span, state: Mutex::new(Queue::default()) }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Why reads no longer come from the stream, once they do not.
    pub fn broken(&self) -> Option<String> {
        self.queue().broken.clone()
    }

    /// Ask the stream for `first` (if any) and then for groups hinted later while fewer than
    /// [`AHEAD`] spans wait, after every span asked for before — in one batch, so the stream
    /// sees every span this call knows of together.
    fn request(&self, q: &mut Queue, first: Option<Range<u64>>) {
        if q.broken.is_some() {
            return;
        }
        let mut batch: Vec<Range<u64>> = first.into_iter().collect();
        while q.spans.len() + batch.len() < AHEAD {
            let Some(span) = q.later.pop_front() else { break };
            batch.push(span);
        }
        if batch.is_empty() {
            return;
        }
        match self.stream.request(&batch) {
            Ok(()) => q.spans.extend(batch),
            Err(why) => q.stop(why),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        // Every update leaves the queue whole (a span is popped or shortened in one step).
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Serve `[offset, offset + buf.len())` from the stream, if it lies in what is still to come.
    /// `Ok(false)`: not from the stream (the caller reads the source).
    fn serve_from_stream(
        &self,
        q: &mut Queue,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<bool, String> {
        let end = offset + buf.len() as u64;
        let Some(k) = q.spans.iter().position(|s| s.start <= offset && end <= s.end) else {
            return Ok(false);
        };
        // Drop what comes before: whole spans, then the start of this one.
        for _ in 0..k {
            let skipped = q.spans.pop_front().expect("k spans lie before");
            self.stream.take(None, skipped.end - skipped.start)?;
        }
        let span = &mut q.spans[0];
        self.stream.take(None, offset - span.start)?;
        let len = buf.len() as u64;
        self.stream.take(Some(buf), len)?;
        span.start = end;
        if span.start == span.end {
            q.spans.pop_front();
        }
        self.request(q, None);
        Ok(true)
    }
}

impl<S: ByteSource, T: SpanStream> ByteSource for StreamedReads<S, T> {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        check_bounds(offset, buf.len() as u64, self.len())?;
        {
            let mut q = self.queue();
            if q.broken.is_none() && !buf.is_empty() {
                match self.serve_from_stream(&mut q, offset, buf) {
                    Ok(true) => return Ok(()),
                    Ok(false) => {}
                    Err(why) => q.stop(why),
                }
            }
        }
        self.inner.read_exact_at(offset, buf)
    }

    /// The hint's covering span is requested, unless it already was (a group hinted later
    /// whose turn has come); a group hinted later that is hinted before its turn is requested
    /// now, and the groups before it are given up (the caller went past them).
    fn prefetch(&self, ranges: &[Range<u64>]) -> Result<(), SourceError> {
        self.inner.prefetch(ranges)?;
        let Some(span) = covering_span(ranges, self.max_span) else { return Ok(()) };
        check_bounds(span.start, span.end - span.start, self.len())?;
        let mut q = self.queue();
        let holds = |s: &Range<u64>| s.start <= span.start && span.end <= s.end;
        let first = match q.spans.iter().any(holds) {
            true => None,
            false => match q.later.iter().position(holds) {
                // Hinted before its turn: from it to the end of the stretch planned with it.
                Some(k) => {
                    let stretch = q.later.drain(..=k).next_back().expect("k + 1 drained");
                    Some(span.start..stretch.end)
                }
                None => Some(span),
            },
        };
        self.request(&mut q, first);
        Ok(())
    }

    fn prefetch_later(&self, groups: &[Vec<Range<u64>>]) -> Result<(), SourceError> {
        self.inner.prefetch_later(groups)?;
        let mut spans = Vec::with_capacity(groups.len());
        for group in groups {
            if let Some(span) = covering_span(group, self.max_span) {
                check_bounds(span.start, span.end - span.start, self.len())?;
                spans.push(span);
            }
        }
        let mut q = self.queue();
        if q.broken.is_none() {
            for span in spans {
                match q.later.back_mut() {
                    Some(last)
                        if span.start >= last.end
                            && span.start - last.end <= MERGE_GAP
                            && span.end - last.start <= self.max_span =>
                    {
                        last.end = span.end
                    }
                    _ => q.later.push_back(span),
                }
            }
            self.request(&mut q, None);
        }
        Ok(())
    }

    fn name(&self) -> String {
        self.inner.name()
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
    use crate::{CountingSource, MemorySource, ReadAhead};
    use std::cell::RefCell;

    /// A stream over a copy of the data, that can be told to fail at its n-th take.
    struct FakeStream {
        data: Vec<u8>,
        queue: RefCell<VecDeque<u64>>,
        takes: RefCell<u32>,
        fail_at_take: Option<u32>,
        taken_bytes: RefCell<u64>,
        requests: RefCell<Vec<Range<u64>>>,
        /// How many spans each request handed over together.
        batches: RefCell<Vec<usize>>,
    }

    impl FakeStream {
        fn new(data: Vec<u8>, fail_at_take: Option<u32>) -> Self {
            FakeStream {
                data,
                queue: RefCell::default(),
                takes: RefCell::new(0),
                fail_at_take,
                taken_bytes: RefCell::new(0),
                requests: RefCell::default(),
                batches: RefCell::default(),
            }
        }
    }

    impl SpanStream for &FakeStream {
        fn request(&self, spans: &[Range<u64>]) -> Result<(), String> {
            self.batches.borrow_mut().push(spans.len());
            for span in spans {
                self.requests.borrow_mut().push(span.clone());
                self.queue.borrow_mut().extend(span.clone());
            }
            Ok(())
        }
        fn take(&self, buf: Option<&mut [u8]>, len: u64) -> Result<(), String> {
            *self.takes.borrow_mut() += 1;
            if Some(*self.takes.borrow()) == self.fail_at_take {
                return Err("the server went away".into());
            }
            let mut q = self.queue.borrow_mut();
            assert!(q.len() as u64 >= len, "took more than was requested");
            let bytes: Vec<u8> = q.drain(..len as usize).map(|at| self.data[at as usize]).collect();
            *self.taken_bytes.borrow_mut() += len;
            if let Some(buf) = buf {
                buf.copy_from_slice(&bytes);
            }
            Ok(())
        }
    }

    fn data() -> Vec<u8> {
        (0..=255u8).cycle().take(8192).collect()
    }

    /// The stream's data as a counted source, read through `stream`.
    fn over(stream: &FakeStream) -> StreamedReads<CountingSource<MemorySource>, &FakeStream> {
        StreamedReads::new(
            CountingSource::new(MemorySource::new(stream.data.clone())),
            stream,
            1024,
        )
    }

    #[test]
    fn hinted_spans_are_read_from_the_stream_in_order_and_the_rest_from_the_source() {
        let data = data();
        let stream = FakeStream::new(data.clone(), None);
        let src = over(&stream);
        src.prefetch(&[100..400, 400..900]).unwrap();
        src.prefetch(&[2000..2500]).unwrap();
        // In the first span, past its start (the bytes before are dropped), then the rest of it.
        for r in [150..200u64, 200..900] {
            assert_eq!(src.read_range(r.clone()).unwrap(), data[r.start as usize..r.end as usize]);
        }
        // Behind the stream: from the source.
        assert_eq!(src.read_range(120..130).unwrap(), data[120..130]);
        assert_eq!(src.inner().reads(), 1);
        // The second span, whole.
        assert_eq!(src.read_range(2000..2500).unwrap(), data[2000..2500]);
        assert_eq!(*stream.taken_bytes.borrow(), 800 + 500);
        // Over the limit or scattered: nothing requested; reads go to the source.
        src.prefetch(&[0..2000]).unwrap();
        src.prefetch(&[0..100, 900..1000]).unwrap();
        assert_eq!(src.read_range(0..100).unwrap(), data[0..100]);
        assert_eq!(src.inner().reads(), 2);
        assert!(src.broken().is_none());
        // A hint past the end is refused as the source refuses it.
        assert!(matches!(src.prefetch(&[8000..8300]), Err(SourceError::OutOfBounds { .. })));
    }

    #[test]
    fn a_read_of_a_later_span_drops_the_spans_before_it() {
        let data = data();
        let stream = FakeStream::new(data.clone(), None);
        let src = over(&stream);
        src.prefetch(&[0..500]).unwrap();
        src.prefetch(&[1000..1500]).unwrap();
        assert_eq!(src.read_range(1200..1300).unwrap(), data[1200..1300]);
        assert_eq!(src.read_range(100..200).unwrap(), data[100..200]);
        assert_eq!(src.inner().reads(), 1);
        assert_eq!(*stream.taken_bytes.borrow(), 500 + 300);
    }

    /// Under the page's window reader, which reads each hinted span whole at its first read:
    /// every byte of the run's layers comes from the stream, none from the source.
    #[test]
    fn under_a_read_ahead_window_each_layer_is_one_streamed_span() {
        let data = data();
        let stream = FakeStream::new(data.clone(), None);
        let src = ReadAhead::new(over(&stream), 1024);
        let layers = [100..300u64, 300..900, 900..1500];
        src.prefetch(&[layers[0].start..200, 200..layers[0].end]).unwrap();
        for k in 0..layers.len() {
            let l = &layers[k];
            for r in [l.start + 50..l.end, l.start..l.start + 50] {
                assert_eq!(
                    src.read_range(r.clone()).unwrap(),
                    data[r.start as usize..r.end as usize]
                );
            }
            // The next layer is hinted once this one is read, before it computes (the engine's
            // order).
            if k + 1 < layers.len() {
                src.prefetch(std::slice::from_ref(&layers[k + 1])).unwrap();
            }
        }
        assert_eq!(src.inner().inner().reads(), 0);
        assert_eq!(*stream.taken_bytes.borrow(), 1400);
    }

    /// The run's way: layer 0 hinted, every later layer hinted later, then each hinted in turn
    /// as the one before computes. The stream is asked for each span once, in order, never more
    /// than `AHEAD` ahead of what is read, and every byte comes from it.
    #[test]
    fn groups_hinted_later_are_requested_in_turn_as_the_stream_is_read() {
        let data = data();
        let stream = FakeStream::new(data.clone(), None);
        let src = ReadAhead::new(over(&stream), 1024);
        // Too long to be one span together (max 1024): one span each.
        let layers: Vec<Range<u64>> = (0..12u64).map(|k| 600 * k..600 * k + 600).collect();
        let halves = |l: &Range<u64>| vec![l.start..l.start + 100, l.start + 100..l.end];
        src.prefetch(&halves(&layers[0])).unwrap();
        let later: Vec<Vec<Range<u64>>> = layers[1..].iter().map(halves).collect();
        src.prefetch_later(&later).unwrap();
        assert_eq!(*stream.requests.borrow(), layers[..AHEAD]);
        // The plan in one batch after the first hint: the stream sees how the first span goes on.
        assert_eq!(*stream.batches.borrow(), [1, AHEAD - 1]);
        for (k, l) in layers.iter().enumerate() {
            for r in halves(l) {
                assert_eq!(
                    src.read_range(r.clone()).unwrap(),
                    data[r.start as usize..r.end as usize]
                );
            }
            let requested = stream.requests.borrow().len();
            assert!(requested <= (k + 1 + AHEAD).min(layers.len()), "layer {k}: {requested}");
            if let Some(next) = layers.get(k + 1) {
                src.prefetch(&halves(next)).unwrap();
            }
        }
        assert_eq!(*stream.requests.borrow(), layers, "each span once, in order");
        assert_eq!(src.inner().inner().reads(), 0);
        assert_eq!(*stream.taken_bytes.borrow(), 7200);
    }

    /// A group hinted before its turn: the groups planned before it are given up (never asked
    /// for), and what is read of them comes from the source.
    #[test]
    fn a_group_hinted_before_its_turn_gives_up_the_ones_before_it() {
        let data = data();
        let stream = FakeStream::new(data.clone(), None);
        let src = over(&stream);
        // Further apart than MERGE_GAP: one span each.
        let later: Vec<Vec<Range<u64>>> =
            (0..20u64).map(|k| vec![200 * k..200 * k + 100]).collect();
        src.prefetch_later(&later).unwrap();
        assert_eq!(stream.requests.borrow().len(), AHEAD);
        src.prefetch(&[3000..3100]).unwrap();
        assert_eq!(stream.requests.borrow().last(), Some(&(3000..3100)));
        assert_eq!(src.read_range(3000..3100).unwrap(), data[3000..3100]);
        // 3200.. was planned after it: requested in turn; AHEAD..15 never.
        let requested = stream.requests.borrow().clone();
        assert!(!requested.iter().any(|r| (200 * AHEAD as u64..3000).contains(&r.start)));
        assert!(requested.contains(&(3200..3300)));
        assert_eq!(src.read_range(1800..1900).unwrap(), data[1800..1900]);
        assert_eq!(src.inner().reads(), 1);
        // Later groups out of bounds are refused as hints are.
        assert!(matches!(
            src.prefetch_later(&[vec![8100..8200], vec![9000..9100]]),
            Err(SourceError::OutOfBounds { .. })
        ));
    }

    /// Groups that follow each other in the file (padding between them at most MERGE_GAP) are
    /// asked for as one span up to `max_span`; their hints in turn ask for nothing more; one
    /// hinted before its turn asks from its start to its stretch's end; and every byte read
    /// comes from the stream.
    #[test]
    fn groups_that_follow_each_other_are_requested_as_one_span() {
        let data = data();
        let stream = FakeStream::new(data.clone(), None);
        let src = over(&stream);
        // Six groups of 300 with 10 bytes of padding, then one 2000 bytes on, then four more.
        let mut groups: Vec<Range<u64>> = (0..6u64).map(|k| 310 * k..310 * k + 300).collect();
        groups.extend((0..4u64).map(|k| 3860 + 310 * k..3860 + 310 * k + 300));
        let later: Vec<Vec<Range<u64>>> = groups.iter().map(|g| vec![g.clone()]).collect();
        src.prefetch_later(&later).unwrap();
        // At most 1024 bytes a span: groups 0–2, 3–5, then 6–8 and 9.
        let stretches = [0..920, 930..1850, 3860..4780, 4790..5090];
        assert_eq!(*stream.requests.borrow(), stretches);
        for g in &groups[..6] {
            src.prefetch(std::slice::from_ref(g)).unwrap();
            let r = g.start as usize..g.end as usize;
            assert_eq!(src.read_range(g.clone()).unwrap(), data[r]);
        }
        assert_eq!(stream.requests.borrow().len(), 4, "hints inside requested spans ask nothing");
        assert_eq!(src.inner().reads(), 0);

        // Hinted before its turn: from its start to the end of the stretch it was planned in
        // (stretches of 3 groups here, at most 600 bytes).
        let stream = FakeStream::new(data.clone(), None);
        let src = StreamedReads::new(MemorySource::new(data.clone()), &stream, 600);
        let later: Vec<Vec<Range<u64>>> =
            (0..40u64).map(|k| vec![200 * k..200 * k + 200]).collect();
        src.prefetch_later(&later).unwrap();
        assert_eq!(*stream.requests.borrow().last().unwrap(), 4200..4800, "AHEAD stretches");
        src.prefetch(&[6200..6400]).unwrap();
        assert_eq!(*stream.requests.borrow().last().unwrap(), 6200..6600);
        assert_eq!(src.read_range(6200..6400).unwrap(), data[6200..6400]);
        assert_eq!(*stream.taken_bytes.borrow(), 4800 + 200, "the stretches before it dropped");
    }

    #[test]
    fn a_failed_stream_hands_every_read_to_the_source_for_good() {
        let data = data();
        // The second take fails: the first read has dropped the bytes before it, then fails.
        let stream = FakeStream::new(data.clone(), Some(2));
        let src = over(&stream);
        src.prefetch(&[0..1000]).unwrap();
        assert_eq!(src.read_range(10..20).unwrap(), data[10..20]);
        assert_eq!(src.broken().as_deref(), Some("the server went away"));
        src.prefetch(&[1000..2000]).unwrap();
        assert_eq!(src.read_range(1000..2000).unwrap(), data[1000..2000]);
        assert_eq!(src.read_range(500..600).unwrap(), data[500..600]);
        assert_eq!(src.inner().reads(), 3);
        assert_eq!(*stream.takes.borrow(), 2);
        // Nor is anything hinted later asked of it.
        let asked = stream.requests.borrow().len();
        src.prefetch_later(&[vec![2000..2100], vec![2100..2200]]).unwrap();
        assert_eq!(stream.requests.borrow().len(), asked);
    }
}
