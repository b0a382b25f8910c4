// Reading a model by URL as fast as from a file: where the page is cross-origin isolated, a
// fetch worker streams each layer into shared memory while the one before computes
// (www/fetch-worker.js, `FetchStream`), for a URL and a dropped file alike; a page from a server
// that sends no isolation headers isolates itself through its service worker
// (www/isolation-sw.js); where it cannot, or where the fetch worker meets a surprise, the page's
// own checked requests read on. Every way, the report is the same bytes as the file's.
// Run by `./dev test` after `trunk build`; needs /usr/bin/chromium and the shared 0.5B.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { open, readFile } from 'node:fs/promises';
import { models, hasModel, launchChromium, assertSameReport, serveModels, runTokens, openPage } from './harness.mjs';

const MODEL = 'qwen2.5-coder-0.5b-instruct-q4_k_m.gguf';
const TOKENS = '3838, 374, 220, 17, 10, 17, 30';
let browser, fromFile, skip = false;

before(async () => {
  skip = !(await hasModel(MODEL));
  browser = await launchChromium();
});

after(async () => { await browser?.close(); });

/// A server of the page (with or without the isolation headers, without its service worker
/// when asked) whose /models/NAME answers Range requests, through `misbehave` first.
function serve({ isolated, misbehave, noServiceWorker = false }) {
  return serveModels({ isolated, misbehave, missing: noServiceWorker ? ['/isolation-sw.js'] : [] });
}

/// Open `url` (and choose `file`), run the contract prompt's tokens without the hash, and return
/// the report's JSON, the page's console, and whether the page was cross-origin isolated and
/// controlled by its service worker.
function run(url, file) {
  return runTokens(browser, url, {
    tokens: TOKENS,
    file,
    inspect: async (page) => ({
      isolated: await page.evaluate(() => self.crossOriginIsolated),
      controlled: await page.evaluate(() => navigator.serviceWorker?.controller !== null),
    }),
  });
}

/// The report of the same file dropped in (once).
async function fileReport() {
  if (!fromFile) {
    const { server, base } = await serve({ isolated: true });
    try {
      const r = await run(base, join(models, MODEL));
      // A dropped file streams through a fetch worker too.
      assert.match(r.console, new RegExp(`${MODEL}: streamed by a fetch worker`));
      fromFile = r.json;
    } finally { server.close(); }
  }
  return fromFile;
}

test('a page served without isolation headers isolates itself and streams a model URL: the report is the file\'s', async (t) => {
  if (skip) return t.skip(`${MODEL} not in ${models}`);
  // The fetch worker's requests (8 MiB or more: the header is read in 1 MiB pieces).
  const spans = [];
  const misbehave = async (req) => {
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (m && Number(m[2]) - Number(m[1]) >= 8 << 20) spans.push(req.headers.range);
    return false;
  };
  const { server, base } = await serve({ isolated: false, misbehave });
  try {
    const r = await run(`${base}?model=/models/${MODEL}`);
    assert.ok(r.isolated, 'the service worker made the page cross-origin isolated');
    assert.ok(r.controlled, 'the page is controlled by its service worker');
    assert.match(r.console, /streamed by a fetch worker/);
    assert.doesNotMatch(r.console, /not streamed|fetch worker stopped/);
    // Layers that follow each other in the file come through one open request
    // (www/fetch-worker.js), not a request per layer, whose start-up cost more than the layer's
    // compute. This file stores its layers in name order (0, 1, 10–19, 2, 20–23, 3–9), so the
    // run's order leaves the file's three times, steps over layer 2 once (from 19 to 20: no
    // request reads across a layer the run reads elsewhere), and goes to the output head (at
    // the file's start) last: 6 requests, where one per layer would be 25 or more — 7 where the
    // fetch worker takes up layer 0, hinted alone, before the run's plan arrives just after it.
    console.log(`the fetch worker's requests: ${spans.join(', ')}`);
    assert.ok(spans.length >= 1 && spans.length <= 7, `${spans.length} requests for 24 layers and the head: ${spans.join(', ')}`);
    assertSameReport(r.json, await fileReport(), 'by URL, streamed');
  } finally { server.close(); }
});

test('where the page cannot be isolated, a model URL is read by the page\'s own requests, says why, and reports the same', async (t) => {
  if (skip) return t.skip(`${MODEL} not in ${models}`);
  const { server, base } = await serve({ isolated: false, noServiceWorker: true });
  try {
    const r = await run(`${base}?model=/models/${MODEL}`);
    assert.equal(r.isolated, false);
    assert.match(r.console, /not streamed: the page is not cross-origin isolated/);
    assertSameReport(r.json, await fileReport(), 'by URL, not isolated');
  } finally { server.close(); }
});

test('a fetch worker that meets a failing server hands the rest of the run to the page\'s checked requests', async (t) => {
  if (skip) return t.skip(`${MODEL} not in ${models}`);
  // The first request for 8 MiB or more (a layer's span: the header is read in 1 MiB pieces) is
  // refused once.
  let refused = 0;
  const misbehave = async (req, res) => {
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (!m || refused > 0 || Number(m[2]) - Number(m[1]) < 8 << 20) return false;
    refused += 1;
    res.writeHead(503, { 'content-type': 'text/plain' });
    res.end('busy');
    return true;
  };
  const { server, base } = await serve({ isolated: true, misbehave });
  try {
    const r = await run(`${base}?model=/models/${MODEL}`);
    assert.equal(refused, 1);
    assert.match(r.console, /the fetch worker stopped \(the server answered 503 to a Range request\); reading by single requests from here/);
    assertSameReport(r.json, await fileReport(), 'by URL, after the fetch worker stopped');
  } finally { server.close(); }
});

test('a fetch worker whose response breaks off mid-body hands the rest of the run to the page\'s checked requests', async (t) => {
  if (skip) return t.skip(`${MODEL} not in ${models}`);
  // The first request for 8 MiB or more (the fetch worker's: the header is read in 1 MiB pieces)
  // sends its headers and 3 MiB of the bytes asked for, then the connection drops.
  let broken = 0;
  const misbehave = async (req, res) => {
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (!m || broken > 0 || Number(m[2]) - Number(m[1]) < 8 << 20) return false;
    broken += 1;
    const file = await open(join(models, MODEL));
    try {
      const { size } = await file.stat();
      const [start, end] = [Number(m[1]), Math.min(Number(m[2]), size - 1)];
      const part = Buffer.alloc(3 << 20);
      await file.read(part, 0, part.length, start);
      res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${size}`, 'accept-ranges': 'bytes',
        'content-type': 'application/octet-stream', 'content-length': end - start + 1 });
      res.write(part, () => res.destroy());
    } finally { await file.close(); }
    return true;
  };
  const { server, base } = await serve({ isolated: true, misbehave });
  try {
    const r = await run(`${base}?model=/models/${MODEL}`);
    assert.equal(broken, 1);
    assert.match(r.console, /the fetch worker stopped \(the server stopped sending at byte \d+ of the file \(.+\)\); reading by single requests from here/);
    assertSameReport(r.json, await fileReport(), 'by URL, after the fetch worker\'s response broke off');
  } finally { server.close(); }
});

/// A server of the isolated page that notes each model request's URL and byte range ([start,
/// end)) in `ranges`, in the order they came.
async function serveNotingRanges() {
  const ranges = [];
  const misbehave = async (req) => {
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (m) ranges.push({ url: req.url, range: [Number(m[1]), Number(m[2]) + 1] });
    return false;
  };
  return { ranges, ...(await serve({ isolated: true, misbehave })) };
}

test('a model URL\'s header is downloaded once for the summary and the run: the run asks only for its version', async (t) => {
  if (skip) return t.skip(`${MODEL} not in ${models}`);
  const { ranges, server, base } = await serveNotingRanges();
  try {
    const { page, errors } = await openPage(browser, `${base}?model=/models/${MODEL}`);
    await page.waitForSelector('#run:not([disabled])', { timeout: 60000 });
    // The summary read the header from the file's start, in 1 MiB pieces (the 0.5B's is 6 MB).
    const summary = ranges.splice(0).map((r) => r.range);
    const headerEnd = Math.max(...summary.map(([, end]) => end));
    assert.ok(summary.length >= 5 && summary.every(([start]) => start < headerEnd), JSON.stringify(summary));
    await page.fill('#tokens', TOKENS);
    await page.uncheck('#hash');
    await page.click('#run');
    await page.waitForSelector('#report .px-verdicts', { timeout: 120000 });
    // The run opened the URL again (its first 1 MiB, whose answer names the file's version:
    // the same) and read the rest of the header from what the summary kept.
    const again = ranges.map((r) => r.range).filter(([start, end]) => summary.some(([s, e]) => s === start && e === end));
    console.log(`the summary's requests: ${summary.length} (the header's pieces to byte ${headerEnd}); the run's: ${ranges.length}, of them the summary's again: ${JSON.stringify(again)}`);
    assert.deepEqual(again, [[0, 1 << 20]]);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#dl-json')]);
    assertSameReport(await readFile(await download.path(), 'utf8'), await fileReport(), 'by URL, the header kept');
    assert.deepEqual(errors, []);
    await page.close();
  } finally { server.close(); }
});

test('comparing two model URLs reads each header once: the compared file\'s check and its run share one download', async (t) => {
  if (skip) return t.skip(`${MODEL} not in ${models}`);
  const { ranges, server, base } = await serveNotingRanges();
  try {
    // The same file at a second URL: one network, compared with itself.
    const against = `/models/${MODEL}?copy=1`;
    const { page, errors } = await openPage(browser, `${base}?model=/models/${MODEL}&against=${encodeURIComponent(against)}`);
    await page.waitForSelector('#run:not([disabled])', { timeout: 60000 });
    await page.fill('#tokens', TOKENS);
    await page.uncheck('#hash');
    await page.click('#run');
    await page.waitForSelector('#report .px-verdicts', { timeout: 240000 });
    // Its header's 1 MiB pieces (the opening one and those after it), each asked for once:
    // the check that it is the model's network parsed it, and the run's parse took the same
    // bytes (they were asked twice before).
    const pieces = ranges.filter((r) => r.url.endsWith('?copy=1') && r.range[1] - r.range[0] === 1 << 20).map((r) => r.range.join('-'));
    console.log(`the compared file's header pieces: ${pieces.length}: ${pieces.join(', ')}`);
    assert.ok(pieces.length >= 6, pieces.join(', '));
    assert.equal(new Set(pieces).size, pieces.length, `a piece asked twice: ${pieces.join(', ')}`);
    assert.equal(await page.$$eval('#report .px-files tr', (r) => r.length) > 0, true, 'two files in the report');
    assert.deepEqual(errors, []);
    await page.close();
  } finally { server.close(); }
});
