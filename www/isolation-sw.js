// Cross-origin isolation for hosts that cannot send headers (a static host such as GitHub
// Pages). Shared memory — which the page's fetch worker needs to read a model URL while the run
// computes — exists only on a page served with `Cross-Origin-Opener-Policy: same-origin` and
// `Cross-Origin-Embedder-Policy: require-corp`. `./dev serve` and `trunk serve` send them
// (Trunk.toml); elsewhere the page registers this service worker, which serves the page's own
// files again with those headers added, and reloads once (web/src/bin/app.rs,
// `isolate_by_service_worker`).
//
// It never caches, and touches only GET requests for this origin's own files: a model read
// with a `Range` header, and anything from another origin, goes to the network untouched
// (cross-origin model servers are read in CORS mode, which `require-corp` allows).
'use strict';

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET' || request.headers.has('range')) return;
  if (new URL(request.url).origin !== self.location.origin) return;
  event.respondWith(fetch(request).then((response) => {
    // An opaque or error answer passes as it is.
    if (response.status === 0) return response;
    const headers = new Headers(response.headers);
    headers.set('Cross-Origin-Opener-Policy', 'same-origin');
    headers.set('Cross-Origin-Embedder-Policy', 'require-corp');
    headers.set('Cross-Origin-Resource-Policy', 'same-origin');
    return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
  }));
});
