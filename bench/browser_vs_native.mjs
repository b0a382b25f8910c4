// In-browser vs native, measured in one run on one machine: the same 2-path run (f32 + q8, the
// contract prompt's tokens) on the shared Qwen2.5-0.5B, natively with the CLI and in headless
// Chromium from a local file, on 1 and on 2 threads; over the built-in text, both paths and each
// alone. Where the CPU has AVX-512, the native runs on 2 threads once more with `--kernels avx2`
// (what a laptop without AVX-512 runs): the page against both baselines. Prints the times, the
// ratios and what a page load downloads.
//
//   ./dev bench-web        (builds the page and the CLI first)
//
// Needs dist/ (trunk build), PARALLAX_BIN (native binary) and /usr/bin/chromium.
import { readFileSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
// The browser tests' harness (and their playwright-core install).
import { dist, models, launchChromium, serveDist, timedRun } from '../tests/browser/harness.mjs';

const model = join(models, 'qwen2.5-coder-0.5b-instruct-q4_k_m.gguf');
const tokens = '3838,374,220,17,10,17,30';
const repeats = Number(process.env.REPEATS ?? 3);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// Whether the native kernels this machine runs by default are AVX-512's (Linux's flags).
const avx512 = (() => {
  try { return /\bavx512f\b/.test(readFileSync('/proc/cpuinfo', 'utf8')); } catch { return false; }
})();

/// The native CLI's run on `threads` threads, seconds (median of the repeats and each run);
/// `kernels` names a narrower level than the CPU's widest (`parallax run --kernels`).
function nativeRuns(threads, text = false, n = repeats, paths = 'f32,q8', kernels = 'auto') {
  const runs = [];
  const input = [...(text ? ['--builtin-text'] : ['--tokens', tokens]), '--paths', paths, '--kernels', kernels];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    try {
      execFileSync(process.env.PARALLAX_BIN, ['run', '-m', model, ...input, '--no-hash', '-q', '--threads', String(threads)], { stdio: 'ignore' });
    } catch (e) { if (e.status !== 1) throw e; }
    runs.push((performance.now() - t0) / 1000);
  }
  return runs;
}

const { server, base } = await serveDist();
const browser = await launchChromium();

/// The page's run of the chosen file on `threads` threads (`?threads=N`: the single-threaded
/// worker for 1, a threaded worker's pool for more; `query` adds `&kernels=simd128`, say), from
/// Run to the report.
async function webRuns(threads, query = '', text = false, n = repeats) {
  const runs = [];
  for (let i = 0; i < n; i++) {
    const page = await browser.newPage();
    await page.goto(`${base}?threads=${threads}${query}`);
    await page.setInputFiles('#file', model);
    await page.waitForSelector('#run:not([disabled])', { timeout: 60000 });
    if (text) await page.click('#builtin-text');
    else await page.fill('#tokens', tokens);
    await page.uncheck('#hash');
    runs.push(await timedRun(page, { timeout: 600000 }));
    const ran = await page.evaluate(() => document.querySelector('#report .px-exec')?.textContent ?? '');
    if (!ran.includes(`threads: ${threads} `)) throw new Error(`the page's run did not report ${threads} threads`);
    await page.close();
  }
  return runs;
}

// Interleaved by thread count, so a machine that slows down slows both sides alike.
const results = {};
for (const threads of [1, 2]) {
  results[threads] = { native: nativeRuns(threads), web: await webRuns(threads) };
}
// The threaded worker without relaxed SIMD (where Chromium has it, the page runs the relaxed one).
results.simd128 = await webRuns(2, '&kernels=simd128');
if (avx512) results.avx2 = nativeRuns(2, false, repeats, 'f32,q8', 'avx2');
// The built-in text (304 tokens), where the matmuls are most of the work: once each.
const text = {};
for (const threads of [1, 2]) {
  text[threads] = { native: nativeRuns(threads, true, 1), web: await webRuns(threads, '', true, 1) };
}
text.simd128 = await webRuns(2, '&kernels=simd128', true, 1);
if (avx512) text.avx2 = nativeRuns(2, true, 1, 'f32,q8', 'avx2');
// Each path alone over the text on 2 threads: which of the two carries the gap.
const alone = {};
for (const path of ['f32', 'q8']) {
  alone[path] = { native: nativeRuns(2, true, 1, path), web: await webRuns(2, `&paths=${path}`, true, 1) };
}
await browser.close();
server.close();

// What a page load downloads: the app, and one of the two workers.
const gzipped = async (f) => gzipSync(await readFile(join(dist, f)), { level: 9 }).length;
const files = await readdir(dist);
let app = 0;
for (const f of files) if (/^app-.*\.(js|wasm)$/.test(f)) app += await gzipped(f);
const single = app + await gzipped('worker.js') + await gzipped('worker_bg.wasm') + await gzipped('worker_loader.js');
// The threaded worker in its two builds: a browser with relaxed SIMD (Chromium) loads the second.
const worker = async (name) => files.includes(`${name}_bg.wasm`)
  ? app + await gzipped(`${name}.js`) + await gzipped(`${name}_bg.wasm`) + await gzipped(`${name}_loader.js`)
  : NaN;
const threaded = await worker('worker_mt');
const threadedRelaxed = await worker('worker_mt_relaxed');
const fmt = (runs) => `${median(runs).toFixed(2)} s   (runs: ${runs.map((x) => x.toFixed(2)).join(', ')})`;
for (const threads of [1, 2]) {
  console.log(`native CLI (${threads} thread${threads > 1 ? 's' : ''}):       ${fmt(results[threads].native)}`);
  console.log(`browser worker (${threads} thread${threads > 1 ? 's' : ''}):   ${fmt(results[threads].web)}`);
}
console.log(`browser worker (2 threads, simd128 only): ${fmt(results.simd128)}`);
const ratio = (a, b) => (median(a) / median(b)).toFixed(2);
console.log(`browser / native, 1 thread:  ${ratio(results[1].web, results[1].native)}×   (goal ≤ 3×)`);
console.log(`browser / native, 2 threads: ${ratio(results[2].web, results[2].native)}×   (goal ≤ 2×)`);
if (results.avx2) {
  console.log(`native CLI (2 threads, --kernels avx2): ${fmt(results.avx2)}`);
  console.log(`browser / native without AVX-512, 2 threads: ${ratio(results[2].web, results.avx2)}×`);
}
console.log(`browser, 1 thread / 2:       ${ratio(results[1].web, results[2].web)}×   (goal ≥ 1.7×)`);
console.log(`native, 1 thread / 2:        ${ratio(results[1].native, results[2].native)}×`);
console.log(`browser, 2 threads, simd128 / relaxed SIMD: ${ratio(results.simd128, results[2].web)}×`);
console.log('the built-in text (304 tokens), one run each:');
for (const threads of [1, 2]) {
  console.log(`  native ${threads} thread(s): ${text[threads].native[0].toFixed(1)} s, browser: ${text[threads].web[0].toFixed(1)} s (${ratio(text[threads].web, text[threads].native)}×)`);
}
if (text.avx2) {
  console.log(`  native 2 threads, --kernels avx2: ${text.avx2[0].toFixed(1)} s; browser / native without AVX-512 ${ratio(text[2].web, text.avx2)}×`);
}
console.log(`  browser 2 threads, simd128 only: ${text.simd128[0].toFixed(1)} s; simd128 / relaxed SIMD ${ratio(text.simd128, text[2].web)}×`);
console.log(`  browser, 1 thread / 2: ${ratio(text[1].web, text[2].web)}×   (goal ≥ 1.7×); native ${ratio(text[1].native, text[2].native)}×`);
for (const path of ['f32', 'q8']) {
  console.log(`  the ${path} path alone, 2 threads: native ${alone[path].native[0].toFixed(1)} s, browser ${alone[path].web[0].toFixed(1)} s (${ratio(alone[path].web, alone[path].native)}×)`);
}
console.log(`page load (app + one worker, wasm + js, gzip -9): ${(single / 1e6).toFixed(2)} MB single-threaded, ${(threaded / 1e6).toFixed(2)} MB threaded, ${(threadedRelaxed / 1e6).toFixed(2)} MB threaded with relaxed SIMD   (goal ≤ 1.5 MB)`);
