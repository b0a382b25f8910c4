// What every browser test needs: where the built page and the models are, a local server with
// the page (dist/) as its origin, headless Chromium launched as this machine allows, and a page
// that records uncaught errors. Each test file adds its own routes (models, misbehaving servers).
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { join, extname, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/// The built page: dist/ (./dev test), or PARALLAX_DIST.
export const dist = process.env.PARALLAX_DIST ?? join(root, 'dist');
export const shared = join(root, '..', 'shared');
export const models = process.env.PARALLAX_MODELS ?? join(process.env.HOME ?? '', '.cache/parallax/models');

const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css' };

/// Without the background-networking flags Chromium keeps dialling hosts this machine cannot
/// reach; without --no-sandbox it does not start as root.
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/// Headless Chromium; `extra` defaults to no GPU (the gpu test asks for WebGPU instead).
export function launchChromium(extra = ['--disable-gpu']) {
  return chromium.launch({ executablePath: '/usr/bin/chromium', args: [...CHROMIUM_ARGS, ...extra] });
}

/// A server on 127.0.0.1 serving dist/ (a folder path serves its index.html). `route(req, res,
/// pathname)` sees each request first and returns true when it answered it.
export async function serveDist(route = async () => false) {
  const server = createServer(async (req, res) => {
    const pathname = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    if (await route(req, res, pathname)) return;
    const path = join(dist, pathname.replace(/\/$/, '/index.html'));
    try {
      const body = await readFile(path);
      res.writeHead(200, { 'content-type': types[extname(path)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404);
      res.end('not found');
    }
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return { server, base: `http://127.0.0.1:${server.address().port}/` };
}

/// A new page of `browser` at `url`, with its uncaught errors collected in `errors`.
export async function openPage(browser, url) {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  if (url !== undefined) await page.goto(url);
  return { page, errors };
}
