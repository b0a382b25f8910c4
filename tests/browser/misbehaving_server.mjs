// A model server that misbehaves on purpose, for the broken-stream tests: requests for
// /mis/<mode>/<file> serve <file> from `root` the way <mode> says. The request count is kept
// per URL, so "once" modes fail the first read after the opening request and then behave.
//
//   norange       200 with the whole body, Range ignored (python3 -m http.server)
//   drop          every Range read after the opening one: half the body, then the connection is cut
//   drop-once     the first read after the opening one is cut; later reads are served
//   stall         every read after the opening one: headers, then nothing, forever
//   short         every read: Content-Length says the whole range, the body ends at half (then close)
//   short-once    the first read after the opening one is short; later reads are served
//   404, 500      that status for every request
//   500-once      500 for the first read after the opening one, then served
//   changed       the first two requests see version "v1" (the page opens the URL for the model's
//                 summary, then again for a run: each opening brings the demo model's whole
//                 header); later reads see "v2", 4 KiB longer — the file changes under the run
//   replaced      the first request (the opening for the model's summary) sees "v1"; every later one,
//                 from the run's own opening on, "v2", 4 KiB longer — the file changed between
//                 the summary and the run
//   norange-drop  200 with the whole body, cut at half, every time
//   wrongstart    a Range read of 64 KiB or more from a byte past 0 (a layer's weights: the fetch
//                 worker's stream, then the run's own read) is answered (206) with the bytes from
//                 one byte later, its Content-Range saying so; openings and small reads are right
//   wrongstart-0  every Range request is answered from one byte later, the opening one too
import { open } from 'node:fs/promises';
import { join } from 'node:path';

export const MODES = ['norange', 'drop', 'drop-once', 'stall', 'short', 'short-once', '404', '500', '500-once', 'changed', 'replaced', 'norange-drop', 'wrongstart', 'wrongstart-0'];

export function createMisbehaving(root) {
  const counts = new Map();
  const stalled = new Set();
  async function handle(req, res, rest) {
    // rest = "<mode>/<file>" (the file may carry a ?key to get a fresh counter)
    const slash = rest.indexOf('/');
    const mode = rest.slice(0, slash);
    const name = rest.slice(slash + 1).replace(/[\/\\]/g, '');
    const key = req.url; // includes any ?query, so a test can start a fresh count
    const n = (counts.get(key) ?? 0) + 1;
    counts.set(key, n);
    const read = n >= 2; // the first request is the source's opening one
    if (mode === '404') { res.writeHead(404, { 'content-type': 'text/plain' }); res.end('no such file'); return; }
    if (mode === '500') { res.writeHead(500, { 'content-type': 'text/plain' }); res.end('broken'); return; }
    if (mode === '500-once' && n === 2) { res.writeHead(500); res.end('broken once'); return; }
    const handle = await open(join(root, name)).catch(() => null);
    if (!handle) { res.writeHead(404); res.end('no such file'); return; }
    let body, size, start = 0, end;
    try {
      size = (await handle.stat()).size;
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      const whole = mode.startsWith('norange') || !m;
      if (!whole) { start = Number(m[1]); end = Math.min(Number(m[2]), size - 1); } else { end = size - 1; }
      if (!whole && (mode === 'wrongstart-0' || (mode === 'wrongstart' && start > 0 && end - start >= 65535)) && start < end) start += 1;
      body = Buffer.alloc(end - start + 1);
      await handle.read(body, 0, body.length, start);
    } finally { await handle.close(); }
    const changed = (mode === 'changed' && n >= 3) || (mode === 'replaced' && n >= 2);
    const etag = changed ? '"v2"' : '"v1"';
    const total = changed ? size + 4096 : size;
    const headers = { 'content-type': 'application/octet-stream', 'content-length': body.length, etag };
    if (mode.startsWith('norange')) {
      res.writeHead(200, headers);
      if (mode === 'norange-drop') { res.write(body.subarray(0, body.length >> 1)); res.socket.destroy(); return; }
      res.end(body);
      return;
    }
    headers['content-range'] = `bytes ${start}-${end}/${total}`;
    headers['accept-ranges'] = 'bytes';
    res.writeHead(206, headers);
    const half = body.subarray(0, body.length >> 1);
    if (read && (mode === 'drop' || (mode === 'drop-once' && n === 2))) {
      res.write(half, () => res.socket.destroy());
      return;
    }
    if (read && mode === 'stall') {
      res.flushHeaders();
      stalled.add(res);
      return; // never finishes
    }
    if ((mode === 'short' && (read || body.length > 1)) || (mode === 'short-once' && n === 2)) {
      // The body ends early and the server closes the connection cleanly.
      res.write(half, () => res.socket.end());
      return;
    }
    res.end(body);
  }
  return {
    handle,
    /// Requests seen for a URL (path and query).
    count: (url) => counts.get(url) ?? 0,
    close: () => { for (const r of stalled) r.socket?.destroy(); stalled.clear(); },
  };
}
