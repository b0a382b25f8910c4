// In-browser vs native, measured in one run on one machine: the same 2-path run (f32 + q8, the
// contract prompt's tokens) on the shared Qwen2.5-0.5B, natively with the CLI and in headless
// Chromium from a local file. Prints both times, the ratio and the page's bundle size.
//
//   ./dev bench-web        (builds the page and the CLI first)
//
// Needs dist/ (trunk build), PARALLAX_BIN (native binary) and /usr/bin/chromium.
import { createServer } from 'node:http';
import { readFile, readdir } from 'node:fs/promises';
import { join, extname, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { createRequire } from 'node:module';

const require = createRequire(join(dirname(fileURLToPath(import.meta.url)), '..', 'tests', 'browser', 'package.json'));
const { chromium } = require('playwright-core');
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const models = process.env.PARALLAX_MODELS ?? join(process.env.HOME ?? '', '.cache/parallax/models');
const model = join(models, 'qwen2.5-coder-0.5b-instruct-q4_k_m.gguf');
const tokens = '3838,374,220,17,10,17,30';
const repeats = Number(process.env.REPEATS ?? 3);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const native = [];
for (let i = 0; i < repeats; i++) {
  const t0 = performance.now();
  try {
    execFileSync(process.env.PARALLAX_BIN, ['run', '-m', model, '--tokens', tokens, '--no-hash', '-q', '--threads', '1'], { stdio: 'ignore' });
  } catch (e) { if (e.status !== 1) throw e; }
  native.push((performance.now() - t0) / 1000);
}

const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css' };
const server = createServer(async (req, res) => {
  const path = join(dist, decodeURIComponent(new URL(req.url, 'http://x').pathname).replace(/\/$/, '/index.html'));
  let body;
  try { body = await readFile(path); } catch { res.writeHead(404); res.end(); return; }
  res.writeHead(200, { 'content-type': types[extname(path)] ?? 'application/octet-stream' });
  res.end(body);
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
const web = [];
for (let i = 0; i < repeats; i++) {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.setInputFiles('#file', model);
  await page.waitForSelector('#run:not([disabled])', { timeout: 60000 });
  await page.fill('#tokens', tokens);
  await page.uncheck('#hash');
  const t0 = performance.now();
  await page.click('#run');
  await page.waitForSelector('#report .px-verdicts', { timeout: 600000 });
  web.push((performance.now() - t0) / 1000);
  await page.close();
}
await browser.close();
server.close();

let gz = 0;
for (const f of await readdir(dist)) if (f.endsWith('.wasm') || f.endsWith('.js')) gz += gzipSync(await readFile(join(dist, f)), { level: 9 }).length;
const n = median(native), w = median(web);
console.log(`native CLI (1 thread):       ${n.toFixed(2)} s   (runs: ${native.map((x) => x.toFixed(2)).join(', ')})`);
console.log(`browser worker (1 thread):   ${w.toFixed(2)} s   (runs: ${web.map((x) => x.toFixed(2)).join(', ')})`);
console.log(`browser / native:            ${(w / n).toFixed(2)}×   (goal ≤ 3×)`);
console.log(`bundle (wasm + js, gzip -9): ${(gz / 1e6).toFixed(2)} MB   (goal ≤ 1.5 MB)`);
