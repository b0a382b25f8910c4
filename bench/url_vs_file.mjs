// By URL against the same file dropped in, in one page and one run: the 2-path run (f32 + q8,
// the contract prompt's tokens, no hash) of a model read from a local Range server — streamed
// through the fetch worker where the page is cross-origin isolated — and from a chosen file;
// then by URL from a server that sends no isolation headers (the page isolates itself through
// its service worker). Prints each time, the ratio, and the tab's peak memory (the renderer
// processes' PSS: the page, its workers, their JS heaps and wasm memories; harness `tabMemory`).
//
//   node bench/url_vs_file.mjs [MODEL_FILE_NAME]    (./dev bench-web runs it on the 0.5B)
//   HASH=1 keeps the sha256 box on; ONLY=file or ONLY=url times that alone
//
// Needs dist/ (trunk build) and /usr/bin/chromium.
import { join } from 'node:path';
import { models, launchChromium, serveDist, modelsRoute, tabMemory, timedRun } from '../tests/browser/harness.mjs';

const name = process.argv[2] ?? 'qwen2.5-coder-0.5b-instruct-q4_k_m.gguf';
const tokens = '3838,374,220,17,10,17,30';
const repeats = Number(process.env.REPEATS ?? 3);
// HASH=1 keeps the page's sha256 box as it opens (on): the run a user starts by default.
const hashed = process.env.HASH === '1';
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const browser = await launchChromium();

async function once(base, how) {
  const page = await browser.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(m.text()));
  await page.goto(how === 'file' ? base : `${base}?model=/models/${name}`);
  if (how === 'file') await page.setInputFiles('#file', join(models, name));
  await page.waitForSelector('#run:not([disabled])', { timeout: 120000 });
  await page.fill('#tokens', tokens);
  if (!hashed) await page.uncheck('#hash');
  const isolated = await page.evaluate(() => self.crossOriginIsolated);
  const memory = tabMemory(browser);
  const seconds = await timedRun(page);
  const peak = await memory.stop();
  await page.close();
  return { seconds, isolated, peak, streamed: !logs.some((l) => /not streamed/.test(l)) };
}

const results = {};
// ONLY=file (or url) measures that one alone: no ratio is printed then.
const only = process.env.ONLY;
for (const [how, isolated] of [['file', true], ['url', true], ['url', false]].filter(([h]) => !only || h === only)) {
  const { server, base } = await serveDist(modelsRoute, { isolated });
  const key = `${how}${isolated ? '' : ' (no headers)'}`;
  results[key] = [];
  for (let i = 0; i < repeats; i++) results[key].push(await once(base, how));
  server.close();
}
await browser.close();

const t = (k) => median(results[k].map((r) => r.seconds));
const gib = (b) => (b / 2 ** 30).toFixed(2);
for (const [k, rs] of Object.entries(results)) {
  const peak = Math.max(...rs.map((r) => r.peak));
  const how = k.startsWith('url') ? (rs.every((r) => r.streamed) ? '  streamed' : '  one request per layer') : '';
  const isolated = rs.every((r) => r.isolated) ? '' : ' (not isolated)';
  console.log(`${name} ${k.padEnd(16)} ${t(k).toFixed(2)} s  (runs: ${rs.map((r) => r.seconds.toFixed(2)).join(', ')})` +
    `  tab memory peak ${gib(peak)} GiB${isolated}${how}`);
}
if (!only) console.log(`by URL / by file: ${(t('url') / t('file')).toFixed(2)}×  (goal ≤ 1.2×); from a server without isolation headers: ${(t('url (no headers)') / t('file')).toFixed(2)}×`);
