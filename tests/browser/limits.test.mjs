// Resource limits in the page: a prompt over the token limit, a layer over the memory budget
// and a cancelled run each end cleanly with the reason shown, and the page runs again after.
// Run by `./dev test` after `trunk build`; needs /usr/bin/chromium and the shared 0.5B model.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { models, root, openPage as openAt, modelsRequired, startPage, stopPage } from './harness.mjs';

const qwen = join(models, 'qwen2.5-coder-0.5b-instruct-q4_k_m.gguf');
// A limit, not a speed claim: Cancel must be acknowledged within this, even on a loaded machine
// (the worker checks the flag between ops; a missed check shows as a wait of a whole layer or run).
const CANCEL_LIMIT_MS = 5000;

let server, browser, base;

before(async () => {
  ({ server, base, browser } = await startPage());
});

after(() => stopPage({ server, browser }));

function openPage(query = '') {
  return openAt(browser, base + query);
}

async function statusMatches(page, re, timeout = 60000) {
  await page.waitForFunction((src) => new RegExp(src).test(document.querySelector('#status')?.textContent ?? ''), re.source, { timeout });
}

/// The demo runs to a passing verdict: the page is usable.
async function demoPasses(page) {
  await page.fill('#max-tokens', '512');
  await page.fill('#memory-budget', '1.5 GiB');
  await page.click('#demo');
  await page.waitForFunction(() => /Verdict: PASS/.test(document.querySelector('#report .px-verdicts h3')?.textContent ?? ''), null, { timeout: 60000 });
}

test('the built-in text becomes the prompt, the CLI\'s --builtin-text', async () => {
  const { page, errors } = await openPage();
  await page.fill('#tokens', '1, 2, 3');
  // Clicked until the page's handlers (attached once its wasm has loaded) answer.
  await page.waitForFunction(() => {
    document.querySelector('#builtin-text').click();
    return document.querySelector('#prompt').value.startsWith('A mechanical watch');
  }, null, { timeout: 30000, polling: 200 });
  const prompt = await page.inputValue('#prompt');
  assert.ok(prompt.startsWith('A mechanical watch keeps time'), prompt.slice(0, 80));
  assert.ok(prompt.length > 1000, `${prompt.length} characters`);
  assert.equal(await page.inputValue('#tokens'), '');
  assert.deepEqual(errors, []);
  await page.close();
});

test('a prompt over the token limit is refused with the reason, and the page runs again', async () => {
  const { page, errors } = await openPage();
  await page.fill('#max-tokens', '3');
  await page.click('#demo');
  await statusMatches(page, /the prompt has 7 tokens, more than the limit of 3; shorten it or raise the limit/);
  assert.ok(await page.$('#status .error'));
  await page.fill('#max-tokens', 'many');
  await page.click('#run');
  await statusMatches(page, /Token limit: `many` is not a whole number/);
  await demoPasses(page);
  assert.deepEqual(errors, []);
});

test('a layer over the memory budget is refused before it is loaded, with the layer and sizes', async () => {
  const { page, errors } = await openPage();
  await page.fill('#memory-budget', '100K');
  await page.click('#demo');
  await statusMatches(page, /layer 0 would need about [\d.]+ KiB \([\d.]+ KiB of weights, [\d.]+ KiB of activations\), more than the memory budget of 100\.00 KiB/);
  await page.fill('#memory-budget', 'lots');
  await page.click('#run');
  await statusMatches(page, /Memory budget: `lots` is not a size/);
  await demoPasses(page);
  assert.deepEqual(errors, []);
});

test('a cancelled run of the 0.5B stops, says so, and a new run works', async (t) => {
  if (!(await access(qwen).then(() => true, () => false))) {
    assert.ok(!modelsRequired, `${qwen} is missing (CI or PARALLAX_REQUIRE_MODELS=1): run ../shared/models/fetch.sh`);
    return t.skip(`no ${qwen}`);
  }
  const { page, errors } = await openPage();
  await page.setInputFiles('#file', qwen);
  await page.waitForSelector('#run:not([disabled])', { timeout: 60000 });
  await page.fill('#tokens', '3838, 374, 220, 17, 10, 17, 30');
  await page.click('#run');
  // Cancel in the middle of the layers.
  await page.waitForFunction(() => /layers: layer [1-9]\d*\/24/.test(document.querySelector('#progress-text')?.textContent ?? ''), null, { timeout: 120000 });
  // The residual stream's distance is drawn as each layer finishes, before any report.
  await page.waitForSelector('#live .px-live-pt', { timeout: 60000 });
  assert.match(await page.textContent('#live figcaption'), /\((\d+) of 24 done\)/);
  const t0 = Date.now();
  await page.click('#cancel');
  await statusMatches(page, /Cancelled\. Nothing was kept from the stopped run\./, CANCEL_LIMIT_MS);
  console.log(`cancel acknowledged in ${Date.now() - t0} ms`);
  assert.equal(await page.$('#report .px-report'), null, 'no report from the stopped run');
  assert.ok(await page.$('#run:not([disabled])'), 'Run is enabled again');
  assert.ok(await page.$('#cancel[disabled]'), 'Cancel is disabled again');
  await demoPasses(page);
  assert.deepEqual(errors, []);
});

test('a bad setting in the link is refused with the CLI\'s own sentence', async () => {
  // One request, one parser (parallax_session): the native binary and the page must refuse
  // `scope=bogus` with the same words.
  const bin = process.env.PARALLAX_BIN;
  assert.ok(bin, 'PARALLAX_BIN must name the native parallax binary (./dev test sets it)');
  const cli = spawnSync(bin, ['run', '-m', join(root, 'www/demo/parallax-demo-qwen2.gguf'), '-p', 'What is 2+2?', '-q', '--no-hash', '--scope', 'bogus']);
  assert.equal(cli.status, 2, String(cli.stderr));
  const sentence = String(cli.stderr).trim().replace(/^error: /, '');
  assert.equal(sentence, 'unknown scope `bogus`; the scopes are all and last');
  const { page, errors } = await openPage('?scope=bogus');
  await page.click('#demo');
  await page.waitForSelector('#status .error', { timeout: 60000 });
  const shown = (await page.textContent('#status')).trim();
  // The page writes the sentence capitalised and with a full stop, nothing else.
  assert.equal(shown, sentence[0].toUpperCase() + sentence.slice(1) + '.');
  assert.equal(await page.$('#report .px-verdicts'), null, 'nothing ran');
  // The link's setting applied once: the form's own scope runs next.
  await demoPasses(page);
  assert.deepEqual(errors, []);
});
