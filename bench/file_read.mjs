// What reading a chosen file costs Chromium, apart from any run: a dedicated worker reads the
// 0.5B's whole file (468.6 MiB) and copies it into a 64 MiB shared ring, as the page's fetch
// worker does, by each way a worker can read a File — its stream (the chunks Chromium gives, as
// the page reads), `FileReaderSync` and `Blob.arrayBuffer()` in pieces — and prints each read's
// time and the CPU time all of Chromium's processes spent on it (the browser process reads the
// file and sends it over IPC; the renderer receives and copies it). On a 2-vCPU machine that CPU
// time is taken from the run's threads: the floor under a short run's time in the page.
//
//   node bench/file_read.mjs              every method 4 times, interleaved
//   REPEATS=2 node bench/file_read.mjs
//
// Needs /usr/bin/chromium (no dist/: the page served is this file's own) and Linux (/proc).
import { join } from 'node:path';
import { models, launchChromium, serveDist, browserProcesses, cpuMs, ISOLATION_HEADERS } from '../tests/browser/harness.mjs';

const name = 'qwen2.5-coder-0.5b-instruct-q4_k_m.gguf';
const repeats = Number(process.env.REPEATS ?? 4);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/// CPU milliseconds (user + system) of all of `browser`'s processes.
function chromiumCpuMs(browser) {
  let ms = 0;
  for (const { pid } of browserProcesses(browser)) {
    try { ms += cpuMs(`/proc/${pid}/stat`); } catch { /* gone */ }
  }
  return ms;
}

// The worker: reads `file` by `method` (in `piece`-byte slices where it takes slices) into a
// shared ring, as the fetch worker pours a span, and answers the milliseconds and bytes.
const worker = `
onmessage = async ({ data: { file, method, piece } }) => {
  const ring = new Uint8Array(new SharedArrayBuffer(64 << 20));
  let pos = 0, bytes = 0, chunks = 0;
  const put = (u8) => {
    for (let off = 0; off < u8.length;) {
      const n = Math.min(u8.length - off, ring.length - pos);
      ring.set(u8.subarray(off, off + n), pos);
      pos = (pos + n) % ring.length;
      off += n;
    }
    bytes += u8.length;
    chunks += 1;
  };
  const t0 = performance.now();
  if (method === 'stream') {
    const reader = file.stream().getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      put(value);
    }
  } else {
    const reader = method === 'FileReaderSync' ? new FileReaderSync() : null;
    for (let at = 0; at < file.size; at += piece) {
      const slice = file.slice(at, Math.min(file.size, at + piece));
      put(new Uint8Array(reader ? reader.readAsArrayBuffer(slice) : await slice.arrayBuffer()));
    }
  }
  postMessage({ ms: performance.now() - t0, bytes, chunks });
};`;

const { server, base } = await serveDist(async (req, res, pathname) => {
  if (pathname !== '/file-read.html') return false;
  // Isolated, for the shared ring.
  res.writeHead(200, { 'content-type': 'text/html', ...ISOLATION_HEADERS });
  res.end('<!doctype html><input type="file" id="file">');
  return true;
});
const browser = await launchChromium(['--disable-gpu']);
const page = await browser.newPage();
await page.goto(`${base}file-read.html`);
await page.setInputFiles('#file', join(models, name));

const methods = [['stream', 0], ['FileReaderSync', 16 << 20], ['FileReaderSync', 32 << 20], ['arrayBuffer()', 16 << 20]];
const label = (method, piece) => `${method}${piece ? ` in ${piece >> 20} MiB slices` : ''}`;
const results = new Map(methods.map(([m, piece]) => [label(m, piece), []]));
for (let i = 0; i < repeats; i++) {
  for (const [method, piece] of methods) {
    const cpu0 = chromiumCpuMs(browser);
    const r = await page.evaluate(async ({ worker, method, piece }) => {
      const w = new Worker(URL.createObjectURL(new Blob([worker], { type: 'text/javascript' })));
      const file = document.querySelector('#file').files[0];
      const out = await new Promise((ok) => { w.onmessage = (e) => ok(e.data); w.postMessage({ file, method, piece }); });
      w.terminate();
      return out;
    }, { worker, method, piece });
    results.get(label(method, piece)).push({ ...r, cpuMs: chromiumCpuMs(browser) - cpu0 });
  }
}
await browser.close();
server.close();

const size = results.values().next().value[0].bytes;
console.log(`${name} (${(size / 2 ** 20).toFixed(1)} MiB) read whole by a worker into a shared ring, median of ${repeats}:`);
for (const [label, rs] of results) {
  const ms = median(rs.map((r) => r.ms));
  const cpu = median(rs.map((r) => r.cpuMs));
  const chunks = label === 'stream' ? ` (${median(rs.map((r) => r.chunks))} chunks)` : '';
  console.log(`  ${label.padEnd(34)} ${(ms / 1000).toFixed(2)} s, ${(size / 2 ** 20 / (ms / 1000)).toFixed(0)} MiB/s; Chromium's CPU ${(cpu / 1000).toFixed(2)} s (${(cpu / 1000 / (size / 2 ** 30)).toFixed(2)} s a GiB)${chunks}`);
  console.log(`    each: ${rs.map((r) => `${(r.ms / 1000).toFixed(2)} s / CPU ${(r.cpuMs / 1000).toFixed(2)} s`).join(', ')}`);
}
