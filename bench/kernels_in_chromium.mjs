// The kernels-vs-candle bench (bench/peers) in headless Chromium, where the page's kernels run:
// its wasm32-wasip1 builds — simd128, and simd128 with relaxed SIMD — under a WASI shim
// (@bjorn3/browser_wasi_shim) in a page, one after the other. node 20 runs relaxed SIMD only
// behind a flag, with an older V8 (tools/wasi-run.py), and wasmtime compiles with another code
// generator, so this is the browser's own figure.
//
//   node bench/kernels_in_chromium.mjs SIMD128.wasm RELAXED.wasm    (./dev bench-peers builds them)
//
// Passes PEERS_ONLY and PEERS_REPEATS on. Wall time: the shim has no thread CPU clock. Any
// wasm32-wasip1 program runs the same way; ARGS sets its arguments (default `--bench`), e.g. the
// rows × tokens products at the built-in text's token count:
//
//   ARGS=304 node bench/kernels_in_chromium.mjs SIMD128.wasm RELAXED.wasm    (prefill_wide.wasm builds)
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { root, launchChromium } from '../tests/browser/harness.mjs';

const builds = { simd128: process.argv[2], relaxed: process.argv[3] };
const shim = join(root, 'tests/browser/node_modules/@bjorn3/browser_wasi_shim/dist');
const server = createServer(async (req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  try {
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html' });
      return res.end('<!doctype html><title>kernels</title>');
    }
    if (path.startsWith('/shim/')) {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      return res.end(await readFile(join(shim, path.slice('/shim/'.length).replace(/[\/\\]/g, ''))));
    }
    const build = builds[path.slice(1)];
    if (!build) throw new Error('not found');
    res.writeHead(200, { 'content-type': 'application/wasm' });
    res.end(await readFile(build));
  } catch {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const base = `http://127.0.0.1:${server.address().port}/`;
const browser = await launchChromium();
const env = ['PEERS_ONLY', 'PEERS_REPEATS', 'PEERS_SAMPLE_MS', 'PEERS_MIN_MB']
  .filter((k) => process.env[k] !== undefined).map((k) => `${k}=${process.env[k]}`);
let status = 0;
for (const name of Object.keys(builds)) {
  const page = await browser.newPage();
  await page.goto(base);
  const out = await page.evaluate(async ({ name, env, args }) => {
    const { WASI, OpenFile, File, ConsoleStdout } = await import('/shim/index.js');
    const lines = [];
    const fds = [new OpenFile(new File([])), ConsoleStdout.lineBuffered((l) => lines.push(l)), ConsoleStdout.lineBuffered((l) => lines.push(l))];
    const wasi = new WASI(['kernels-vs-candle', ...args], env, fds);
    // Only the wall clocks: a thread CPU clock the shim would answer with 0 must read as absent.
    const clock = wasi.wasiImport.clock_time_get;
    wasi.wasiImport.clock_time_get = (id, precision, time) => (id <= 1 ? clock(id, precision, time) : 28);
    const module = await WebAssembly.compileStreaming(fetch(`/${name}`));
    const instance = await WebAssembly.instantiate(module, { wasi_snapshot_preview1: wasi.wasiImport });
    const status = wasi.start(instance);
    return { status, lines };
  }, { name, env, args: (process.env.ARGS ?? '--bench').split(' ').filter((a) => a !== '') });
  console.log(`== ${name}, in Chromium ${browser.version()} (status ${out.status})`);
  console.log(out.lines.filter((l) => l.trim() !== '').join('\n'));
  status ||= out.status;
  await page.close();
}
await browser.close();
server.close();
process.exit(status);
