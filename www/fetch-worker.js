// The fetch worker: reads the spans the run will need next from a model URL (or a chosen
// file) while the run's worker computes, and hands the bytes over through a ring in shared memory. It is only ever a
// fast path: on any surprise (a status other than 206, a different Content-Range, a changed
// ETag or Last-Modified, a body that ends early, a network error) it marks the ring failed with
// the reason and stops, and the run's worker reads everything from then on with its own checked,
// retried requests. Started by the run's worker (web/src/lib.rs, `FetchStream`) only where the
// page is cross-origin isolated, which shared memory needs.
//
// Once started, it hears nothing by message: a nested worker's messages are delivered only
// while the worker that made it returns to its event loop, which a run never does. Everything
// goes through the shared buffer instead (offsets as `FetchStream` in web/src/lib.rs has them):
//   Int32 words  [WRITTEN], [CONSUMED]  bytes written and taken so far (u32 counters that wrap);
//                [FAILED], [MESSAGE_LEN] set once the stream failed, with the reason's length;
//                [REQUESTED], [STARTED]  spans asked for, and spans this worker took up;
//                [URL_LEN], [VALIDATOR_LEN] the job: set (with TOTAL) before the first span;
//   Float64      SPANS: SLOTS × [start, end), slot k % SLOTS for the k-th span; TOTAL;
//   bytes        the URL, the validator, the failure's reason; then the ring of `capacity`
//                bytes (a power of two).
// The numbers are `parallax_web::fetch_layout`'s (web/src/lib.rs; a test holds them together).
// Requests carry only a single `Range: bytes=a-b` header, which is CORS-safelisted: no
// preflight, so any server that answers the page's synchronous reads answers these.
'use strict';

const WRITTEN = 0, CONSUMED = 1, FAILED = 2, MESSAGE_LEN = 3, REQUESTED = 4, STARTED = 5,
  URL_LEN = 6, VALIDATOR_LEN = 7;
const SPANS_AT = 256, SLOTS = 32, TOTAL_AT = 768, URL_AT = 1024, URL_MAX = 8192,
  VALIDATOR_AT = 9216, VALIDATOR_MAX = 512, MESSAGE_AT = 9728, MESSAGE_MAX = 512, RING_AT = 16384;

self.onmessage = (event) => {
  const { buffer, capacity, file } = event.data;
  const ctrl = new Int32Array(buffer, 0, 16);
  const ring = new Uint8Array(buffer, RING_AT, capacity);
  // Told to the worker that started this one, which waits for it before its run.
  self.postMessage({ kind: 'ready' });
  serve({ buffer, ctrl, ring, capacity, file: file ?? null }).catch((e) => fail(ctrl, String(e && e.message ? e.message : e)));
};

const text = (buffer, at, len) => new TextDecoder().decode(new Uint8Array(buffer, at, len).slice());

// One request is kept open across spans: a span that starts where the open body is (or a little
// past it) is read on from that body, so a run that reads its layers in file order costs one
// request per run of spans requested together (see `requestEnd`) rather than one per layer.
// Each request's start-up costs more than a layer's compute on a small model (~40 ms in
// Chromium for a 16 MiB Range on a local server, where the bytes then take ~30 ms), and
// per-span requests ran the 0.5B by URL at 1.7× its time by file. The body is read only as fast
// as the ring empties, so the server is held back by flow control, not buffered here.
// Bytes read and dropped to reach the next span in the open body rather than opening another:
// padding between tensors and the like, not a layer the run reads elsewhere (the 0.5B's layer 2
// lies 9.3 MiB between its layers 19 and 20; read across, it crossed the wire twice).
const GAP_MAX = 1024 * 1024;

async function serve(job) {
  const { buffer, ctrl } = job;
  const spans = new Float64Array(buffer, SPANS_AT, SLOTS * 2);
  for (let started = 0; ; started++) {
    let requested;
    while ((requested = Atomics.load(ctrl, REQUESTED)) === started) await change(ctrl, REQUESTED, requested);
    if (job.url === undefined) {
      job.url = text(buffer, URL_AT, Atomics.load(ctrl, URL_LEN));
      const v = Atomics.load(ctrl, VALIDATOR_LEN);
      job.validator = v > 0 ? text(buffer, VALIDATOR_AT, v) : null;
      job.total = new Float64Array(buffer, TOTAL_AT, 1)[0];
    }
    const slot = started % SLOTS;
    const [start, end] = [spans[slot * 2], spans[slot * 2 + 1]];
    Atomics.store(ctrl, STARTED, started + 1);
    const body = job.body;
    const open = (from) => {
      const until = requestEnd(job, spans, started, end);
      return job.file ? openSlice(job, from, until) : openRange(job, from, until);
    };
    if (!body || start < body.at || start - body.at > GAP_MAX || start > body.end) {
      if (body) await body.reader.cancel().catch(() => {});
      job.body = await open(start);
    } else if (end > body.end) {
      // The span runs on past the open body: the body's bytes first, then a request for the
      // rest (not the whole span again, which sent the body's last bytes twice).
      await pour(job, body, start, body.end);
      job.body = await open(body.end);
      await pour(job, job.body, body.end, end);
      continue;
    }
    await pour(job, job.body, start, end);
  }
}

// Where a request opened for the span [start, end) (slot `started`) ends: at the end of the
// spans already requested that continue it (each within GAP_MAX of the one before) — the run
// names its plan, so the spans of several layers are known ahead, handed over in batches that
// are seen whole — and not a byte past them: a span requested later that continues them opens
// a request of its own at their end. A request that runs past where the run goes next is
// cancelled with its bytes in flight already sent: opened 256 MiB on, the 0.5B (its file stores
// the output head, read last, first, then its layers 0, 1, 10–19, 2, 20–23, 3–9) took 524–545
// MiB from the server for a run that reads 381 MiB; 16 MiB on, 406–417 MiB, depending on where
// each request stood when the run's next spans arrived (tests/browser/hash.test.mjs counts what
// is sent).
function requestEnd(job, spans, started, end) {
  const requested = Atomics.load(job.ctrl, REQUESTED);
  let runEnd = end;
  for (let k = started + 1; k < requested; k++) {
    const slot = k % SLOTS;
    const [s, e] = [spans[slot * 2], spans[slot * 2 + 1]];
    if (s < runEnd || s - runEnd > GAP_MAX) break;
    runEnd = Math.max(runEnd, e);
  }
  return runEnd;
}

function fail(ctrl, reason) {
  const bytes = new TextEncoder().encode(reason).slice(0, MESSAGE_MAX);
  new Uint8Array(ctrl.buffer, MESSAGE_AT, bytes.length).set(bytes);
  Atomics.store(ctrl, MESSAGE_LEN, bytes.length);
  Atomics.store(ctrl, FAILED, 1);
  Atomics.notify(ctrl, WRITTEN);
}

// Bytes a read of an open body asks for at most.
const READ_BYTES = 1 << 20;

// An open body of the bytes [start, end) of the file: read on from `at`, with the part of the
// last chunk read that is not yet used. A server's body is read into one reused buffer where
// the stream lets a reader bring its own (fetch bodies are byte streams in Chromium): a chunk
// allocated per read is garbage the tab holds until it is collected, which took the whole tab
// past 1.2 GB on some runs of the 7B-shaped model. Not a file's: Chromium 156 stops answering
// reads into a reader's own buffer from a file's streams once ~2 GB have come that way — the
// 7B-shaped file stalled at its 21st layer, whether this worker was the run's worker's (nested)
// or the page's own (tried in session 16: 71 s, the stall's minute and the fallback, against
// 11 s); a bare page's nested worker reading it in 140 MB slices stalled after 2.1–2.7 GB, and
// read all 3.9 GB with the default reader — so a file's stream gives its own chunks.
function openBody(stream, start, end, from, ownBuffer) {
  let reader = null;
  if (ownBuffer) try { reader = stream.getReader({ mode: 'byob' }); } catch { /* not a byte stream */ }
  const buffer = reader ? new ArrayBuffer(READ_BYTES) : null;
  return { reader: reader ?? stream.getReader(), buffer, at: start, end, rest: null, from };
}

// The next chunk of `body`: a view of its reused buffer where it has one.
async function next(body) {
  try {
    if (!body.buffer) return await body.reader.read();
    const want = Math.max(1, Math.min(READ_BYTES, body.end - body.at));
    const { done, value } = await body.reader.read(new Uint8Array(body.buffer, 0, want));
    // The read took the buffer over; it comes back as the view's.
    if (value) body.buffer = value.buffer;
    return { done, value };
  } catch (e) {
    throw new Error(`${body.from} stopped sending at byte ${body.at} of the file (${e && e.message ? e.message : e})`);
  }
}

async function openRange(job, start, end) {
  const res = await fetch(job.url, { headers: { Range: `bytes=${start}-${end - 1}` } });
  if (res.status !== 206) throw new Error(`the server answered ${res.status} to a Range request`);
  const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec((res.headers.get('content-range') ?? '').trim());
  if (!m || Number(m[1]) !== start || Number(m[2]) !== end - 1 || Number(m[3]) !== job.total) {
    throw new Error(`the server's Content-Range (${res.headers.get('content-range')}) is not the bytes asked for`);
  }
  const validator = res.headers.get('etag') ?? res.headers.get('last-modified');
  if (job.validator !== null && validator !== null && validator !== job.validator) {
    throw new Error('the file changed on the server');
  }
  return openBody(res.body, start, end, 'the server', true);
}

// A chosen file's bytes [start, end), as a stream of its slice.
function openSlice(job, start, end) {
  return openBody(job.file.slice(start, end).stream(), start, end, 'the file', false);
}

// The bytes [start, end) from `body` into the ring (those before `start` dropped), in order;
// exactly those bytes or an error.
async function pour(job, body, start, end) {
  while (body.at < end) {
    let chunk = body.rest;
    body.rest = null;
    if (chunk === null) {
      const { done, value } = await next(body);
      if (done) throw new Error(`${body.from} sent ${Math.max(0, body.at - start)} of the ${end - start} bytes asked for`);
      if (body.at + value.length > body.end) throw new Error(`${body.from} sent more bytes than asked for`);
      chunk = value;
    }
    const skip = Math.max(0, start - body.at);
    if (skip >= chunk.length) { body.at += chunk.length; continue; }
    const use = Math.min(chunk.length, end - body.at);
    if (use > skip) await put(job, chunk.subarray(skip, use));
    if (use < chunk.length) body.rest = chunk.subarray(use);
    body.at += use;
  }
}

// Copy `chunk` into the ring, waiting for room while the run's worker has not taken enough.
async function put({ ctrl, ring, capacity }, chunk) {
  let off = 0;
  while (off < chunk.length) {
    const written = Atomics.load(ctrl, WRITTEN) >>> 0;
    const consumed = Atomics.load(ctrl, CONSUMED);
    const free = capacity - ((written - (consumed >>> 0)) >>> 0);
    if (free === 0) {
      await change(ctrl, CONSUMED, consumed);
      continue;
    }
    const pos = written & (capacity - 1);
    const n = Math.min(free, chunk.length - off, capacity - pos);
    ring.set(chunk.subarray(off, off + n), pos);
    Atomics.store(ctrl, WRITTEN, (written + n) | 0);
    Atomics.notify(ctrl, WRITTEN);
    off += n;
  }
}

// Resolves once ctrl[index] is no longer `value` (Atomics.waitAsync; polling where it is missing).
function change(ctrl, index, value) {
  if (typeof Atomics.waitAsync === 'function') {
    const w = Atomics.waitAsync(ctrl, index, value, 1000);
    return w.async ? w.value : Promise.resolve();
  }
  return new Promise((ok) => setTimeout(ok, 2));
}
