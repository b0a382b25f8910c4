// What every browser test needs: where the built page and the models are, a local server with
// the page (dist/) as its origin, headless Chromium launched as this machine allows, and a page
// that records uncaught errors. Each test file adds its own routes (models, misbehaving servers).
import { createServer } from 'node:http';
import { readFile, open, access, mkdtemp, rm } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { readFileSync, readdirSync } from 'node:fs';
import assert from 'node:assert/strict';
import { join, extname, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/// The built page: dist/ (./dev test), or PARALLAX_DIST.
export const dist = process.env.PARALLAX_DIST ?? join(root, 'dist');
export const shared = join(root, '..', 'shared');
export const models = process.env.PARALLAX_MODELS ?? join(process.env.HOME ?? '', '.cache/parallax/models');
/// In CI, or with PARALLAX_REQUIRE_MODELS=1, a missing model fails instead of skipping (as the
/// Rust tests' model lookup does).
export const modelsRequired = !['', '0', 'false', undefined].includes(process.env.CI) || process.env.PARALLAX_REQUIRE_MODELS === '1';

const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css' };

/// Without the background-networking flags Chromium keeps dialling hosts this machine cannot
/// reach; without --no-sandbox it does not start as root.
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/// Headless Chromium; `extra` defaults to no GPU (the gpu test asks for WebGPU instead). Its
/// browser process carries a marker flag (ignored by Chromium) by which `tabMemory` finds it.
export function launchChromium(extra = ['--disable-gpu']) {
  const marker = `--parallax-browser=${process.pid}-${++launched}`;
  return chromium.launch({ executablePath: '/usr/bin/chromium', args: [...CHROMIUM_ARGS, ...extra, marker] })
    .then((browser) => Object.assign(browser, { parallaxMarker: marker }));
}
let launched = 0;

/// The fields of a `/proc/…/stat` file after the command name (which may hold spaces): field 1
/// is the parent pid, 11 and 12 the user and system clock ticks. Throws if the task is gone.
function procStat(path) {
  return readFileSync(path, 'utf8').replace(/^.*\) /, '').split(' ');
}

/// CPU milliseconds (user + system, at Linux's 100 ticks a second) of the process or thread whose
/// `/proc/…/stat` is `path`. Throws if it is gone.
export function cpuMs(path) {
  const stat = procStat(path);
  return (Number(stat[11]) + Number(stat[12])) * 10;
}

/// The processes of `browser` (launched by `launchChromium`), found by its marker flag and then
/// by parent: `[{ pid, cmd }]`, `cmd` the NUL-separated command line. Linux (/proc).
export function browserProcesses(browser) {
  const procs = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map((pid) => {
    try {
      return { pid, ppid: procStat(`/proc/${pid}/stat`)[1],
        cmd: readFileSync(`/proc/${pid}/cmdline`, 'utf8') };
    } catch { return null; }
  }).filter(Boolean);
  const root = procs.find((p) => p.cmd.split('\0').includes(browser.parallaxMarker));
  if (!root) return [];
  const mine = new Set([root.pid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const p of procs) if (!mine.has(p.pid) && mine.has(p.ppid)) { mine.add(p.pid); grew = true; }
  }
  return procs.filter((p) => mine.has(p.pid)).map(({ pid, cmd }) => ({ pid, cmd }));
}

/// The memory of `browser`'s tabs as the system counts it: the proportional set size (Linux
/// `smaps_rollup` Pss: each shared page split among its users) of its renderer processes, where a
/// page, its workers, their JS heaps and wasm memories live. Sampled every `everyMs` until
/// `stop()`, which resolves to the largest sum seen, in bytes. (`performance.
/// measureUserAgentSpecificMemory` counts no wasm memory, and cannot answer while a worker runs.)
export function tabMemory(browser, everyMs = 200) {
  const pss = (pid) => {
    try {
      const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
      return m ? Number(m[1]) * 1024 : 0;
    } catch { return 0; }
  };
  const renderers = () => browserProcesses(browser).filter((p) => p.cmd.includes('--type=renderer')).map((p) => p.pid);
  let peak = 0;
  const sample = () => { peak = Math.max(peak, renderers().reduce((sum, pid) => sum + pss(pid), 0)); };
  sample();
  const timer = setInterval(sample, everyMs);
  return { stop: async () => { clearInterval(timer); sample(); return peak; } };
}

/// The headers that make a page cross-origin isolated (shared memory: the page's fetch worker),
/// as `./dev serve` and `trunk serve` send them (Trunk.toml).
export const ISOLATION_HEADERS = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' };

/// A server on 127.0.0.1 serving dist/ (a folder path serves its index.html). `route(req, res,
/// pathname)` sees each request first and returns true when it answered it. The page's files
/// carry the isolation headers unless `{ isolated: false }` (a static host that sends none).
export async function serveDist(route = async () => false, { isolated = true } = {}) {
  const server = createServer(async (req, res) => {
    const pathname = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    if (await route(req, res, pathname)) return;
    const path = join(dist, pathname.replace(/\/$/, '/index.html'));
    try {
      const body = await readFile(path);
      res.writeHead(200, { 'content-type': types[extname(path)] ?? 'application/octet-stream', ...(isolated ? ISOLATION_HEADERS : {}) });
      res.end(body);
    } catch {
      res.writeHead(404);
      res.end('not found');
    }
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return { server, base: `http://127.0.0.1:${server.address().port}/` };
}

/// What a test file's `before` starts: the page's server (`route` and `options` as serveDist
/// takes them) and headless Chromium. `stopPage` closes both in its `after`.
export async function startPage(route, options) {
  const { server, base } = await serveDist(route, options);
  return { server, base, browser: await launchChromium() };
}

/// Closes what startPage started (either is missing when `before` failed before it).
export async function stopPage({ server, browser }) {
  await browser?.close();
  server?.close();
}

/// A serveDist route: /models/NAME serves NAME from the model cache over Range requests, as a
/// user's model server must.
export async function modelsRoute(req, res, pathname) {
  if (!pathname.startsWith('/models/')) return false;
  await serveRange(req, res, join(models, pathname.slice('/models/'.length).replace(/[\/\\]/g, '')));
  return true;
}

/// A serveDist of the page whose /models/NAME answers from the model cache (modelsRoute), where
/// the `missing` paths answer 404 (a copy of the page built without them, a host without its
/// service worker) and `misbehave(req, res)` sees each model request first (true: answered).
export async function serveModels({ isolated = true, missing = [], misbehave = async () => false } = {}) {
  return serveDist(async (req, res, pathname) => {
    if (missing.includes(pathname)) { res.writeHead(404); res.end(); return true; }
    if (!pathname.startsWith('/models/')) return false;
    if (await misbehave(req, res)) return true;
    return modelsRoute(req, res, pathname);
  }, { isolated });
}

/// Whether the model cache holds `name`: false lets a test skip, except under CI, where a missing
/// model fails the test file.
export async function hasModel(name) {
  const present = await access(join(models, name)).then(() => true, () => false);
  assert.ok(present || !modelsRequired, `${name} is missing from ${models}`);
  return present;
}

/// The native CLI's report JSON of `parallax run ARGS` (`PARALLAX_BIN`, which `./dev test` sets).
/// Exit status 1, a failed contract, still writes the report, which is what is compared.
export async function cliReport(args) {
  const bin = process.env.PARALLAX_BIN;
  assert.ok(bin, 'PARALLAX_BIN must name the native parallax binary (./dev test sets it)');
  const dir = await mkdtemp(join(tmpdir(), 'parallax-native-'));
  try {
    const json = join(dir, 'native.json');
    try {
      execFileSync(bin, ['run', ...args, '-q', '--json', json]);
    } catch (e) {
      if (e.status !== 1) throw e;
    }
    return await readFile(json, 'utf8');
  } finally { await rm(dir, { recursive: true, force: true }); }
}

/// Record every message the workers `page` starts post to it, from its next navigation on: each
/// as `{ at, text }` in the page's `self.__workerMessages`, `at` its arrival
/// (`performance.now()`), `text` its JSON text (a report's message is an array, its text first).
export async function recordWorkerMessages(page) {
  await page.addInitScript(() => {
    const Base = self.Worker;
    self.__workerMessages = [];
    self.Worker = class extends Base {
      constructor(...args) {
        super(...args);
        this.addEventListener('message', (e) => {
          const d = e.data;
          const text = Array.isArray(d) ? String(d[0]) : typeof d === 'string' ? d : '';
          self.__workerMessages.push({ at: performance.now(), text });
        });
      }
    };
  });
}

/// Click Run on `page` and wait for its report: seconds from the click to the first frame that
/// can show the report, timed inside the page. Playwright's waitForSelector polls at 0, 20, 50,
/// 100, 100 and then every 500 ms, so timing around it would round a run up by as much as half a
/// second; here a capturing click listener stamps the start and a mutation observer the report's
/// arrival (then the next animation frame, after the layout the report needs). The answer shown
/// before the report (`#answer`) is stamped too: `self.__parallaxRunStamps.answer`.
export async function timedRun(page, { timeout = 1800000 } = {}) {
  await page.evaluate(() => {
    const stamps = (self.__parallaxRunStamps = {});
    document.getElementById('run').addEventListener('click', () => { stamps.start = performance.now(); }, { capture: true, once: true });
    const seen = new MutationObserver(() => {
      // The answer the page shows while the whole report is drawn (a run's, not a permalink's).
      if (stamps.answer === undefined && document.querySelector('#answer .px-verdicts')) {
        requestAnimationFrame(() => { stamps.answer = performance.now(); });
      }
      if (!document.querySelector('#report .px-verdicts')) return;
      seen.disconnect();
      requestAnimationFrame(() => { stamps.end = performance.now(); });
    });
    seen.observe(document.querySelector('main'), { childList: true, subtree: true });
  });
  await page.click('#run');
  await page.waitForSelector('#report .px-verdicts', { timeout });
  await page.waitForFunction(() => self.__parallaxRunStamps.end !== undefined, null, { polling: 'raf', timeout: 10000 });
  const { start, end } = await page.evaluate(() => self.__parallaxRunStamps);
  return (end - start) / 1000;
}

/// Open `url` in a new page of `browser` (then choose `file`, when given), run `tokens` without
/// the hash, and return the report's JSON as downloaded, the page's console, and what
/// `inspect(page)` reads from the page after the run. Uncaught page errors fail.
export async function runTokens(browser, url, { tokens, file, inspect = async () => ({}) }) {
  const { page, errors } = await openPage(browser);
  const console = [];
  page.on('console', (m) => console.push(m.text()));
  await page.goto(url);
  if (file) await page.setInputFiles('#file', file);
  await page.waitForSelector('#run:not([disabled])', { timeout: 60000 });
  await page.fill('#tokens', tokens);
  await page.uncheck('#hash');
  await page.click('#run');
  await page.waitForSelector('#report .px-verdicts', { timeout: 120000 });
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#dl-json')]);
  const json = await readFile(await download.path(), 'utf8');
  const seen = await inspect(page);
  await page.close();
  assert.deepEqual(errors, []);
  return { json, console: console.join('\n'), ...seen };
}

/// A new page of `browser` at `url` (`options` as Playwright's newPage takes them: a viewport,
/// a colour scheme), with its uncaught errors collected in `errors`.
export async function openPage(browser, url, options = {}) {
  const page = await browser.newPage(options);
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  if (url !== undefined) await page.goto(url);
  return { page, errors };
}

/// Answer `req` with `file` as a model server must: 206 with Content-Range for a single
/// `bytes=a-b` Range, 200 with the length alone otherwise, an ETag either way; 404 when the
/// file is missing.
export async function serveRange(req, res, file) {
  const handle = await open(file).catch(() => null);
  if (!handle) { res.writeHead(404); res.end('no such file'); return; }
  try {
    const { size, mtimeMs } = await handle.stat();
    const etag = `"${size}-${Math.floor(mtimeMs)}"`;
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (!m) { res.writeHead(200, { 'content-length': size, 'accept-ranges': 'bytes', etag }); res.end(); return; }
    const start = Number(m[1]); const end = Math.min(Number(m[2]), size - 1);
    res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${size}`, 'accept-ranges': 'bytes', etag,
      'content-type': 'application/octet-stream', 'content-length': end - start + 1 });
    // In 1 MiB pieces through one reused buffer, each written before the next is read: a model
    // server's cost, not a copy of the whole span per request.
    const piece = Buffer.allocUnsafe(Math.min(1 << 20, end - start + 1));
    // A reader may stop before the end (the page's fetch worker cancels a body it has read far
    // enough): then no 'drain' comes, and the response ends there.
    for (let at = start; at <= end && !res.destroyed;) {
      const { bytesRead } = await handle.read(piece, 0, Math.min(piece.length, end - at + 1), at);
      if (bytesRead === 0) break;
      at += bytesRead;
      // (A response already closed has sent its 'close': nothing to wait for.)
      if (!res.write(bytesRead === piece.length ? piece : piece.subarray(0, bytesRead)) && !res.destroyed) {
        await new Promise((ok) => {
          const on = () => { res.off('drain', on); res.off('close', on); ok(); };
          res.on('drain', on); res.on('close', on);
        });
      }
    }
    res.end();
  } finally { await handle.close(); }
}

/// The page's report JSON against the native CLI's: identical bytes once the facts about where
/// and when it ran are set aside — the files' names (a URL or a chosen file's name in the page, a
/// path natively; every `file_name`, the run's files included), the execution note naming the
/// kernels' instruction set (simd128, avx2), `execution.threads` (the numbers do not depend on
/// it), and `execution.date`. The date is set aside rather
/// than pinned because the page dates a report by the browser's clock, which a test cannot pin
/// without faking the worker's `Date`; both sides must still carry one, in RFC 3339 UTC to the
/// second. On a mismatch, name the first differing line.
export function assertSameReport(webText, nativeText, what) {
  const date = /^(\s*"date": )"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"(,?)$/m;
  assert.match(webText, date, `${what}: the page's report carries no execution.date`);
  assert.match(nativeText, date, `${what}: the native report carries no execution.date`);
  // (The CLI ends its file with a newline; the page's download does not.)
  const norm = (t) => t.replace(/\n$/, '').replace(/^(\s*"file_name": ).*$/gm, '$1"…",').replace(/^(\s*)"kernels: [a-z0-9_]+",$/m, '$1"kernels: …",').replace(/^(\s*"threads": )\d+,$/m, '$1…,').replace(date, '$1"…"$2');
  const [a, b] = [norm(webText), norm(nativeText)];
  if (a === b) return;
  const [la, lb] = [a.split('\n'), b.split('\n')];
  const first = la.findIndex((line, k) => line !== lb[k]);
  const i = first >= 0 ? first : Math.min(la.length, lb.length); // one is a prefix of the other
  assert.fail(`${what}: the page's report differs from the native one at line ${i + 1}:\n  page:   ${la[i]}\n  native: ${lb[i]}`);
}
