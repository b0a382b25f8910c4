// Hostile metadata: a model whose name, a tensor name, tokenizer pieces and chat template carry
// HTML, script and javascript: payloads (tools/demo-model, make-hostile-model) is inspected and
// run in the page; the report is downloaded as standalone HTML and opened, and restored from its
// permalink. The test fails if any payload runs (each would set window.__pwned) or if the
// Content-Security-Policy had to block a script (a securitypolicyviolation means markup got in).
// Run by `./dev test` (which makes the model and sets PARALLAX_HOSTILE_MODEL); needs chromium.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dist, openPage, startPage, stopPage } from './harness.mjs';

const hostile = process.env.PARALLAX_HOSTILE_MODEL;
// The strings of tools/demo-model/src/hostile.rs, as a user should see them: as text.
const NAME = `<script>window.__pwned='name-script'</script><img src=x onerror="window.__pwned='name-img'">`;
const TENSOR = `blk.0."><svg onload=window.__pwned='tensor'>`;
const PIECE = `<img src=x onerror=window.__pwned='piece-img'>`;
const TEMPLATE_START = `{% for m in messages %}<script>window.__pwned='template'</script>`;

let server, browser, base;
// The downloaded standalone report, served as a page of its own (text/html).
let standaloneHtml = '';

before(async () => {
  assert.ok(hostile, 'PARALLAX_HOSTILE_MODEL must name the hostile model (./dev test makes it)');
  ({ server, base, browser } = await startPage(async (req, res) => {
    if (req.url !== '/standalone.html') return false;
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(standaloneHtml);
    return true;
  }));
});

after(() => stopPage({ server, browser }));

/// A page that records CSP violations and anything a payload would do.
async function watchedPage() {
  const { page, errors } = await openPage(browser);
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__violations.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${e.sample || ''})`);
    });
  });
  return { page, errors };
}

/// Nothing ran, nothing was blocked, no injected element exists.
async function assertInert(page, where) {
  const state = await page.evaluate(() => ({
    pwned: window.__pwned ?? null,
    violations: window.__violations ?? [],
    injected: document.querySelectorAll('img[src="x"], svg[onload], [onerror], a[href^="javascript:"]').length,
    scripts: [...document.scripts].map((s) => s.src || `inline ${s.textContent.length} chars`),
  }));
  assert.equal(state.pwned, null, `${where}: a payload ran (${state.pwned})`);
  assert.deepEqual(state.violations, [], `${where}: the CSP had to block something`);
  assert.equal(state.injected, 0, `${where}: an injected element is in the DOM`);
  for (const s of state.scripts) assert.doesNotMatch(s, /__pwned/, `${where}: an injected script element`);
  return state;
}

test('hostile names, tensor names, tokenizer pieces and chat template stay inert in the page, the HTML report and permalinks', async () => {
  const { page, errors } = await watchedPage();
  await page.goto(base);
  await page.setInputFiles('#file', hostile);
  await page.waitForSelector('#model table', { timeout: 30000 });
  const inspected = await page.textContent('#model');
  // Metadata values are shown quoted (a `"` inside as `\"`): compare up to the first quote.
  assert.ok(inspected.includes(NAME.split('"')[0]), 'the model name is shown as text');
  assert.ok(inspected.includes(TENSOR), 'the tensor name is shown as text');
  assert.ok(inspected.includes(TEMPLATE_START), 'the chat template is shown as text');
  await assertInert(page, 'inspect');

  // Run on the three hostile token ids (the last of the 4096-token vocabulary) and one honest one.
  await page.fill('#tokens', '4093, 4094, 4095, 3838');
  await page.click('#run');
  await page.waitForSelector('#report .px-verdicts', { timeout: 90000 });
  const report = await page.textContent('#report');
  assert.ok(report.includes(NAME), 'the report header shows the name as text');
  // Tokens are shown as the text they stand for, whitespace made visible (a space is ⎵).
  assert.ok(report.includes(PIECE.replaceAll(' ', '⎵')), 'the token pieces are shown as text');
  await assertInert(page, 'run');

  // The standalone HTML report, opened as a page of its own.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#dl-html')]);
  const standalonePath = await download.path();
  const standalone = await readFile(standalonePath, 'utf8');
  const csp = /<meta http-equiv="Content-Security-Policy" content="([^"]*)"/.exec(standalone)?.[1] ?? '';
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'none'/);
  assert.doesNotMatch(standalone, /<script/i);
  standaloneHtml = standalone;
  const { page: opened } = await watchedPage();
  await opened.goto(base + 'standalone.html');
  await opened.waitForSelector('.px-report');
  assert.ok((await opened.textContent('body')).includes(NAME));
  await assertInert(opened, 'standalone report');

  // The permalink, restored in a fresh page.
  const link = await page.getAttribute('#permalink', 'href');
  const { page: linked } = await watchedPage();
  await linked.goto(link);
  await linked.waitForSelector('#report .px-verdicts', { timeout: 30000 });
  assert.ok((await linked.textContent('#report')).includes(NAME), 'the permalink shows the name as text');
  await assertInert(linked, 'permalink');
  assert.deepEqual(errors, []);
});

test('the page and the standalone report carry a Content-Security-Policy without inline script', async () => {
  const html = await readFile(join(dist, 'index.html'), 'utf8');
  const csp = /<meta http-equiv="Content-Security-Policy"\s+content="([^"]*)"/.exec(html)?.[1];
  assert.ok(csp, 'index.html has a CSP meta');
  const scriptSrc = /script-src ([^;]*)/.exec(csp)?.[1] ?? '';
  assert.doesNotMatch(scriptSrc, /'unsafe-inline'|'unsafe-eval'|\*/, `script-src ${scriptSrc}`);
  assert.match(csp, /default-src 'self'/);
  // And the browser enforces it: an inline script added to the live page does not run.
  const { page } = await watchedPage();
  await page.goto(base);
  await page.evaluate(() => {
    const s = document.createElement('script');
    s.textContent = "window.__pwned = 'test-inline'";
    document.body.append(s);
  });
  assert.equal(await page.evaluate(() => window.__pwned ?? null), null, 'an inline script ran');
  const violations = await page.evaluate(() => window.__violations);
  assert.ok(violations.some((v) => /script-src/.test(v)), `the CSP reported the blocked script: ${violations}`);
});
