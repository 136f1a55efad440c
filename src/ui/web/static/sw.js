// The dashboard's service worker, served from the mount point (<prefix>/sw.js, scope <prefix>/).
//
// - install: cache the app shell (CSS, the shell's JS, icons, the offline page);
// - pages: network first; when the network fails, the offline page (which says it is offline
//   and shows what the browser last saw, labelled with its time);
// - shell files: network first, the cached copy when offline (refreshed on every fetch);
// - /api/*, /ws/*, the event stream, /login, /logout and anything not a GET: never touched
//   (no respondWith), so offline they fail: data is never served from a cache as current.

const CACHE = 'controlplane-shell-v1';
const SCOPE = new URL('./', self.location.href); // the mount point, with a trailing slash
const OFFLINE = new URL('offline', SCOPE).href;
const SHELL = [
  'offline',
  'manifest.webmanifest',
  'static/css/app.css',
  'static/favicon.svg',
  'static/icons/icon-192.png',
  'static/icons/icon-512.png',
  'static/js/pwa.js',
  'static/js/offline.js',
  'static/js/base.js',
  'static/js/dom.js',
  'static/js/format.js',
].map((path) => new URL(path, SCOPE).href);
const NEVER = ['api/', 'ws/', 'login', 'logout', 'sw.js'].map((path) => new URL(path, SCOPE).href);

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE)
    .then((cache) => cache.addAll(SHELL.map((href) => new Request(href, { cache: 'reload' }))))
    .then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((name) => name.startsWith('controlplane-shell-')
      && name !== CACHE).map((name) => caches.delete(name))))
    .then(() => self.clients.claim()));
});

/** Ours to answer: a GET of this mount point that is not data (API, streams) nor a login. */
function handled(request) {
  if (request.method !== 'GET') return false;
  const href = request.url.split('#')[0];
  if (!href.startsWith(SCOPE.href)) return false;
  return !NEVER.some((prefix) => href.startsWith(prefix));
}

async function page(request) {
  try {
    return await fetch(request);
  } catch {
    const cache = await caches.open(CACHE);
    return (await cache.match(OFFLINE)) || Response.error();
  }
}

async function shellFile(request, href) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok) await cache.put(href, response.clone());
    return response;
  } catch {
    return (await cache.match(href)) || Response.error();
  }
}

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (!handled(request)) return;
  const href = request.url.split('?')[0];
  if (request.mode === 'navigate') event.respondWith(page(request));
  else if (SHELL.includes(href)) event.respondWith(shellFile(request, href));
});
