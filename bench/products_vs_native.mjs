// The page's products against the CLI's, per core: `crates/quant/examples/prefill_wide.rs` (the
// rows × tokens products a prompt's matmuls run: the f32 one and each quantized pairing) run
// natively at every x86 kernel level this CPU has (`KERNELS=`), and its two wasm builds (simd128,
// and simd128 with relaxed SIMD) in headless Chromium (`bench/kernels_in_chromium.mjs`), at a
// 7-token prompt and at the built-in text's 304 tokens. It prints each product's rate in each and
// native / the faster browser build: how much of the page-vs-CLI ratio the arithmetic itself
// sets, before threads, reads or the page. Native runs pinned to one core; the browser is left
// on every core, where its background compiler does not share the measured core.
//
//   cargo build --release -p parallax-quant --example prefill_wide
//   RUSTFLAGS="-C target-feature=+simd128" cargo build --release -p parallax-quant \
//       --target wasm32-wasip1 --example prefill_wide     (and again with +relaxed-simd)
//   node bench/products_vs_native.mjs NATIVE SIMD128.wasm RELAXED.wasm
//
// Linux (taskset, /proc/cpuinfo). TOKENS="7 304" sets the token counts; REPEATS (3) the runs of
// each, whose best is shown (each run reports its best of 5 samples): on a shared guest a whole
// run of one product can come out 30 % slow, in Chromium and natively. `./dev bench-web` builds
// the three and runs this.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { root } from '../tests/browser/harness.mjs';

const [native, simd128, relaxed] = process.argv.slice(2);
if (!native || !simd128 || !relaxed) {
  console.error('usage: node bench/products_vs_native.mjs NATIVE SIMD128.wasm RELAXED.wasm');
  process.exit(2);
}
const tokenCounts = (process.env.TOKENS ?? '7 304').split(' ').filter((t) => t !== '');
const repeats = Number(process.env.REPEATS ?? 3);

/// `{ product: best rate }` over `runs` (each `{ product: rate }`).
function best(runs) {
  const out = {};
  for (const product of Object.keys(runs[0])) out[product] = Math.max(...runs.map((r) => r[product] ?? 0));
  return out;
}

/// `{ product: G products/s }` from prefill_wide's lines (`dot_rows`, the form the engine
/// calls, for the quantized pairings).
function rates(text) {
  const out = {};
  for (const line of text.split('\n')) {
    const m = /^(\S+): (?:rows × tokens|dot_rows) ([\d.]+) G products\/s/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

/// The kernel levels this CPU runs, widest first, as prefill_wide's `KERNELS` names them.
function levels() {
  let flags = '';
  try { flags = readFileSync('/proc/cpuinfo', 'utf8'); } catch { /* not Linux: the default level only */ }
  const has = (f) => new RegExp(`\\b${f}\\b`).test(flags);
  const out = [];
  if (has('avx512f')) out.push(has('avx512_vnni') ? 'avx512' : 'avx512 (no VNNI)');
  if (has('avx2')) out.push('avx2');
  return out.length ? out : ['default'];
}

const nativeLevels = levels();
for (const tokens of tokenCounts) {
  const runs = {};
  const add = (name, r) => (runs[name] ??= []).push(r);
  for (let i = 0; i < repeats; i++) {
    for (const level of nativeLevels) {
      const env = { ...process.env };
      if (level === 'avx2') env.KERNELS = 'avx2';
      add(`native ${level}`, rates(execFileSync('taskset', ['-c', '1', native, tokens], { encoding: 'utf8', env })));
    }
    const browser = execFileSync('node', [join(root, 'bench/kernels_in_chromium.mjs'), simd128, relaxed], {
      encoding: 'utf8',
      env: { ...process.env, ARGS: tokens },
      maxBuffer: 1 << 24,
    });
    const [, simdPart = '', relaxedPart = ''] = browser.split(/^== /m);
    add('Chromium simd128', rates(simdPart.slice(simdPart.indexOf('\n') + 1)));
    add('Chromium relaxed', rates(relaxedPart.slice(relaxedPart.indexOf('\n') + 1)));
  }
  const columns = Object.fromEntries(Object.entries(runs).map(([name, r]) => [name, best(r)]));
  const names = Object.keys(columns);
  const nativeNames = names.filter((n) => n.startsWith('native'));
  console.log(`\n${tokens} tokens, G products/s per core (${repeats === 1 ? 'one run' : `the best of ${repeats} runs`}; native / the faster browser build):`);
  console.log(`| product | ${names.join(' | ')} | ${nativeNames.map((n) => `${n.slice(7)} / browser`).join(' | ')} |`);
  console.log(`|---|${names.map(() => '---|').join('')}${nativeNames.map(() => '---|').join('')}`);
  for (const product of Object.keys(columns[names[0]])) {
    const browserBest = Math.max(columns['Chromium simd128'][product] ?? 0, columns['Chromium relaxed'][product] ?? 0);
    const cells = names.map((n) => columns[n][product]?.toFixed(1) ?? '–');
    const ratios = nativeNames.map((n) => (browserBest > 0 && columns[n][product] > 0 ? `${(columns[n][product] / browserBest).toFixed(2)}×` : '–'));
    console.log(`| ${product} | ${cells.join(' | ')} | ${ratios.join(' | ')} |`);
  }
}
