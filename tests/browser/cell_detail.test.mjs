// Click a cell to see why: after a run, a heatmap cell opens its site's panel (the band it
// leaves, the matrix behind it, both paths' histograms, the elements furthest apart) in place,
// without touching the address; its "close" link closes it; the panels are reachable by
// keyboard from their index. A permalink's view has the cells but not the panels, and says
// where the detail is. Run by `./dev test` after `trunk build`; needs /usr/bin/chromium.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openPage, startPage, stopPage } from './harness.mjs';

let server, browser, base;

before(async () => {
  ({ server, base, browser } = await startPage());
});

after(() => stopPage({ server, browser }));

const PANEL = '#px-why-q8-1-ffn_gate';

/// Whether the panel shows, and its text.
function panelState(page) {
  return page.evaluate((sel) => {
    const p = document.querySelector(sel);
    return p && { shown: getComputedStyle(p).display !== 'none', open: p.classList.contains('px-open'), text: p.textContent };
  }, PANEL);
}

test('a heatmap cell opens its site up close, in place, and closes again; the keyboard reaches every panel', async () => {
  const { page, errors } = await openPage(browser, base, { viewport: { width: 1366, height: 800 } });
  await page.click('#demo-fault');
  await page.waitForSelector('body.folded #report .px-summary-card', { timeout: 60000 });
  const address = page.url();
  assert.equal((await panelState(page)).shown, false, 'panels start closed');

  // The faulty cell of the cosine heatmap: layer 1, ffn_gate.
  await page.locator(`#report figure.px-hm-cosine a[href="${PANEL}"]`).click();
  const open = await panelState(page);
  assert.ok(open.shown && open.open, 'the cell opened its panel');
  assert.match(open.text, /Layer 1 · ffn_gate: q8 against f32/);
  assert.match(open.text, /Weights: blk\.1\.ffn_gate\.weight, Q4_K, \d+ × \d+/);
  assert.match(open.text, /outside the band/);
  assert.match(open.text, /The elements furthest from f32/);
  assert.equal(await page.locator(`${PANEL} .px-why-hist path`).count(), 2, 'both paths\' histograms');
  assert.equal(await page.locator(`${PANEL} .px-why-worst tr`).count(), 1 + 5, 'five elements');
  assert.equal(page.url(), address, 'the address (a permalink\'s, say) is left as it was');
  // The page scrolls to the panel (smoothly, where the user allows motion).
  await page.waitForFunction((sel) => {
    const r = document.querySelector(sel).getBoundingClientRect();
    return r.top > -2 && r.top < window.innerHeight;
  }, PANEL, { timeout: 5000 });

  // Another cell closes the first; "close" closes the second.
  await page.locator('#report figure.px-hm-cosine a[href="#px-why-q8-0-ffn_gate"]').click();
  assert.equal((await panelState(page)).shown, false, 'one panel at a time');
  assert.equal(await page.locator('.px-why.px-open').count(), 1);
  await page.locator('#px-why-q8-0-ffn_gate .px-why-close').click();
  assert.equal(await page.locator('.px-why.px-open').count(), 0);

  // By keyboard: the index of cells, then Enter on a layer.
  await page.locator('#cell-details .px-why-index summary').first().focus();
  await page.keyboard.press('Enter');
  await page.locator(`#cell-details .px-why-index a[href="${PANEL}"]`).focus();
  await page.keyboard.press('Enter');
  assert.ok((await panelState(page)).open, 'Enter on the index opened the panel');
  assert.equal(page.url(), address);

  // A permalink's view: the same cells, no panels, and a sentence saying where they are.
  const link = await page.getAttribute('#permalink', 'href');
  const linked = await browser.newPage();
  await linked.goto(link);
  await linked.waitForSelector('#report .px-verdicts', { timeout: 20000 });
  assert.equal(await linked.locator('.px-why').count(), 0);
  await linked.locator(`#report figure.px-hm-cosine a[href="${PANEL}"]`).click();
  assert.match(await linked.textContent('#status'), /detail is in the run's own report/);
  assert.equal(linked.url(), link, 'the permalink stays in the address');
  await linked.close();
  assert.deepEqual(errors, []);
});
