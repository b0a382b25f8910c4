// Accessibility, checked by axe-core (the engine behind Lighthouse's and Chrome's audits, run
// here inside the page; WCAG 2.1 A/AA and axe's best practices): the tool before a run, after a
// run (light and dark, with a heat cell's detail open too), after a run over two files, the viewer a permalink opens, and the
// standalone HTML report have no violation at all, of any impact.
// axe is injected into pages whose Content-Security-Policy forbids scripts (the standalone
// report's `script-src 'none'`), so the pages are opened in a context that bypasses CSP for
// the scan only; the CSP itself is tested in hostile.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { root, startPage, stopPage } from './harness.mjs';

const VIEWPORT = { width: 1366, height: 800 };
const axeSource = await readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

let server, browser, base;

before(async () => {
  ({ server, base, browser } = await startPage());
});

after(() => stopPage({ server, browser }));

/// A page at `url` in a context that lets the scan's script in, with uncaught errors collected.
async function scannablePage(url, colorScheme = 'light') {
  const context = await browser.newContext({ bypassCSP: true, viewport: VIEWPORT, colorScheme, acceptDownloads: true });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  if (url !== undefined) await page.goto(url);
  return { page, errors, context };
}

/// axe's violations on `page`, one line each: the rule, its impact, what it says and the first
/// elements it names.
async function violations(page) {
  await page.addScriptTag({ content: axeSource });
  const found = await page.evaluate(async () => {
    const result = await window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
      resultTypes: ['violations'],
    });
    return result.violations.map((v) => ({
      id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length,
      targets: v.nodes.slice(0, 3).map((n) => n.target.join(' ')),
    }));
  });
  return found.map((v) => `${v.impact}: ${v.id}: ${v.help} (${v.nodes} elements, e.g. ${v.targets.join(' | ')})`);
}

/// No violation on `page` as it is, nor with every folded part (`<details>`: the passed tests,
/// the identical weights) opened.
async function assertNoViolationFoldedOrOpen(page) {
  assert.deepEqual(await violations(page), []);
  await page.evaluate(() => document.querySelectorAll('details').forEach((d) => { d.open = true; }));
  assert.deepEqual(await violations(page), [], 'with every folded part opened');
}

test('the tool before a run has no accessibility violation', async () => {
  const { page, errors, context } = await scannablePage(base);
  await page.waitForSelector('#demo');
  assert.deepEqual(await violations(page), []);
  assert.deepEqual(errors, []);
  await context.close();
});

test('every control of the intake is reached by Tab, the file picker included', async () => {
  const { page, errors, context } = await scannablePage(base);
  await page.waitForSelector('#demo');
  const reached = new Set();
  for (let i = 0; i < 40; i++) {
    await page.keyboard.press('Tab');
    reached.add(await page.evaluate(() => document.activeElement?.id ?? ''));
  }
  for (const id of ['demo', 'demo-fault', 'report-file', 'url', 'open-url', 'file', 'against-url', 'open-against', 'against-file', 'prompt', 'paths']) {
    assert.ok(reached.has(id), `#${id} is not reached by Tab (reached: ${[...reached].join(' ')})`);
  }
  // The picker, focused, shows as its drop zone outlined.
  await page.focus('#file');
  assert.notEqual(await page.$eval('#drop', (d) => getComputedStyle(d).outlineStyle), 'none');
  assert.deepEqual(errors, []);
  await context.close();
});

for (const colorScheme of ['light', 'dark']) {
  test(`the faulty demo's report in the page (${colorScheme}) has no accessibility violation`, async () => {
    const { page, errors, context } = await scannablePage(base, colorScheme);
    await page.click('#demo-fault');
    await page.waitForSelector('body.folded #report .px-summary-card', { timeout: 60000 });
    await assertNoViolationFoldedOrOpen(page);
    // With a heat cell's detail panel open (the failing cell's: its standing in the fail colour).
    await page.locator('#report figure.px-hm-cosine a[href="#px-why-q8-1-ffn_gate"]').click();
    await page.waitForSelector('#px-why-q8-1-ffn_gate.px-open');
    assert.deepEqual(await violations(page), [], 'with a cell\'s detail open');
    assert.deepEqual(errors, []);
    await context.close();
  });
}

test('a run over two files (the demo against its Q8_0 copy) has no accessibility violation', async () => {
  const requantized = process.env.PARALLAX_REQUANTIZED_MODEL;
  assert.ok(requantized, 'PARALLAX_REQUANTIZED_MODEL must name the re-quantized demo (./dev test makes it)');
  const { page, errors, context } = await scannablePage(base);
  await page.setInputFiles('#file', join(root, 'www/demo/parallax-demo-qwen2.gguf'));
  await page.waitForSelector('#run:not([disabled])', { timeout: 20000 });
  await page.setInputFiles('#against-file', requantized);
  await page.click('#run');
  await page.waitForSelector('body.folded #report .px-summary-card', { timeout: 60000 });
  await assertNoViolationFoldedOrOpen(page);
  assert.deepEqual(errors, []);
  await context.close();
});

test('the viewer a permalink opens, and the standalone HTML report, have no accessibility violation', async () => {
  const { page, errors, context } = await scannablePage(base);
  await page.click('#demo-fault');
  await page.waitForSelector('body.folded #report .px-summary-card', { timeout: 60000 });
  const link = await page.getAttribute('#permalink', 'href');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#dl-html')]);
  const html = await readFile(await download.path(), 'utf8');

  const viewer = await context.newPage();
  await viewer.goto(link);
  await viewer.waitForSelector('#report .px-summary-card', { timeout: 20000 });
  assert.deepEqual(await violations(viewer), []);

  const standalone = await context.newPage();
  await standalone.setContent(html);
  await standalone.waitForSelector('.px-summary-card');
  await assertNoViolationFoldedOrOpen(standalone);
  assert.deepEqual(errors, []);
  await context.close();
});
