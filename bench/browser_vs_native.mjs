// In-browser vs native, measured in one run on one machine: the same 2-path run (f32 + q8, the
// contract prompt's tokens) on the shared Qwen2.5-0.5B, natively with the CLI and in headless
// Chromium from a local file. Prints both times, the ratio and the page's bundle size.
//
//   ./dev bench-web        (builds the page and the CLI first)
//
// Needs dist/ (trunk build), PARALLAX_BIN (native binary) and /usr/bin/chromium.
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
// The browser tests' harness (and their playwright-core install).
import { dist, models, launchChromium, serveDist } from '../tests/browser/harness.mjs';

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

const { server, base } = await serveDist();
const browser = await launchChromium();
const web = [];
for (let i = 0; i < repeats; i++) {
  const page = await browser.newPage();
  await page.goto(base);
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
