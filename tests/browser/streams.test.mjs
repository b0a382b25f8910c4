// Broken streams: the page opens models by URL from a server that misbehaves on purpose
// (misbehaving_server.mjs). Each case must end in a clear sentence within a bounded time, with
// a retry where one makes sense, and leave the page usable.
// Run by `./dev test` after `trunk build`; needs /usr/bin/chromium.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile, stat } from 'node:fs/promises';
import { createMisbehaving } from './misbehaving_server.mjs';
import { dist, openPage, startPage } from './harness.mjs';

const MODEL = 'parallax-demo-qwen2.gguf';
// The page waits this long for a request (plus 1 s per MiB asked for) before giving up on it.
const TIMEOUT_S = 1;
// A limit, not a speed claim: three tries of (TIMEOUT_S + the size's allowance) at most, plus
// page start-up, with room for a loaded machine. A failure sentence later than this is a hang.
const FAILURE_SENTENCE_LIMIT_S = 20;

let server, browser, base, mis;

before(async () => {
  mis = createMisbehaving(join(dist, 'demo'));
  ({ server, base, browser } = await startPage(async (req, res, pathname) => {
    if (!pathname.startsWith('/mis/')) return false;
    await mis.handle(req, res, pathname.slice('/mis/'.length));
    return true;
  }));
});

after(async () => {
  await browser?.close();
  mis?.close();
  server?.closeAllConnections?.();
  server?.close();
});

/// Open the page on `?model=/mis/<mode>/MODEL` and wait for the status to show an error or the
/// tensor table; where the model opened, run it and wait for an error or the report (the
/// request that opens a URL brings the demo model's whole header, so a server that breaks on
/// later reads breaks the run). Returns what happened and how long it took.
async function openModel(mode, key) {
  const { page, errors } = await openPage(browser);
  const url = `/mis/${mode}/${MODEL}?k=${key}`;
  const t0 = Date.now();
  await page.goto(`${base}?http_timeout=${TIMEOUT_S}&model=${encodeURIComponent(url)}`);
  await page.waitForSelector('#status .error, #model table', { timeout: 30000 });
  if ((await page.$('#status .error')) === null) {
    await page.waitForSelector('#run:not([disabled])', { timeout: 20000 });
    await page.uncheck('#hash');
    await page.click('#run');
    await page.waitForSelector('#status .error, #report .px-verdicts', { timeout: 60000 });
  }
  const seconds = (Date.now() - t0) / 1000;
  const failed = (await page.$('#status .error')) !== null;
  return { page, errors, seconds, failed, status: await page.textContent('#status'), url };
}

/// After a failure the page still works: a good URL opens.
async function stillUsable(page) {
  await page.fill('#url', `/mis/ok/${MODEL}`);
  await page.click('#open-url');
  await page.waitForSelector('#model table', { timeout: 20000 });
  assert.match(await page.textContent('#status'), /GGUF v3/);
}

const failures = [
  ['404', /no such file \(404 Not Found\)/],
  ['500', /the server failed \(500 Internal Server Error\) \(3 tries\)/],
  ['drop', /connection failed or broke before all bytes arrived.*\(3 tries\)/],
  ['short', /(broke before all bytes arrived|the body ended early).*\(3 tries\)/],
  ['stall', /no complete answer within \d+ s \(the server stalled.*\(3 tries\)/],
  ['changed', /the file changed while it was being read: its version tag on the server went from "v1" to "v2"; open it again/],
  ['norange-drop', /(broke before all bytes arrived|the body ended early).*\(3 tries\)/],
  ['wrongstart', /the server sent bytes from (\d+), not the (?!\1)\d+ asked for/],
  ['wrongstart-0', /the server sent bytes from 1, not the 0 asked for/],
];

for (const [mode, message] of failures) {
  test(`a server that misbehaves (${mode}) ends in a clear sentence, in bounded time, and the page stays usable`, async () => {
    const { page, errors, seconds, failed, status, url } = await openModel(mode, `fail-${mode}`);
    console.log(`${mode}: ${seconds.toFixed(1)} s, ${mis.count(url)} requests: ${status}`);
    assert.ok(failed, `${mode}: no error shown (status: ${status})`);
    assert.match(status, message);
    assert.ok(seconds < FAILURE_SENTENCE_LIMIT_S, `${mode}: took ${seconds} s (limit ${FAILURE_SENTENCE_LIMIT_S} s)`);
    if (/3 tries/.test(status)) assert.ok(mis.count(url) >= 3, `${mode}: retried (${mis.count(url)} requests)`);
    await stillUsable(page);
    assert.deepEqual(errors, []);
    await page.close();
  });
}

for (const mode of ['drop-once', 'short-once', '500-once']) {
  test(`a transient failure (${mode}) is retried for the missing bytes and the model opens and runs`, async () => {
    const { page, errors, failed, status, url } = await openModel(mode, `once-${mode}`);
    assert.ok(!failed, `${mode}: ${status}`);
    const requests = mis.count(url);
    // The opening request, the failed read, and its retry at least.
    assert.ok(requests >= 3, `${mode}: ${requests} requests`);
    assert.match(await page.textContent('#report .px-verdicts h3'), /Verdict: PASS/);
    assert.deepEqual(errors, []);
    await page.close();
  });
}

test('a model URL whose file changed on its server after the page showed its summary: the run reads the new version and says so', async () => {
  const { page, errors, failed, status, url } = await openModel('replaced', 'replaced');
  assert.ok(!failed, status);
  assert.ok(mis.count(url) >= 3, `${mis.count(url)} requests`);
  assert.match(await page.textContent('#report .px-verdicts h3'), /Verdict: PASS/);
  assert.equal(await page.isVisible('#warning'), true, 'the change is said');
  const warning = await page.textContent('#warning');
  console.log(`replaced: ${warning}`);
  const size = (await stat(join(dist, 'demo', MODEL))).size;
  const mib = (n) => `${(n / 1048576).toFixed(2)} MiB \\(${n} bytes\\)`;
  assert.match(warning, new RegExp(`changed on its server since the page opened it \\(version "v1", ${mib(size)}, now version "v2", ${mib(size + 4096)}\\): this run reads it as it is now, and the model shown above is the new one\\.$`));
  // The report is of the version the run read.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#dl-json')]);
  const report = JSON.parse(await readFile(await download.path(), 'utf8'));
  assert.equal(report.model.file_bytes, size + 4096);
  assert.deepEqual(errors, []);
  await page.close();
});
