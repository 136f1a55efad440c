// Every page (base.html): register the service worker (scope: the mount point), then either
// keep what this page shows as "last seen", or — on the offline shell — show it.

import { url } from './base.js';
import { rememberPage, renderLastSeen } from './offline.js';

export function registerWorker() {
  if (!('serviceWorker' in navigator)) return Promise.resolve(null);
  return navigator.serviceWorker.register(url('/sw.js'), { scope: url('/') })
    .catch(() => null); // no worker (e.g. plain http on another host): the pages still work
}

/**
 * On the offline shell: load the page that was asked for (the shell stands in for it) once
 * the server answers again — checked every `every` ms and when the browser says it is online
 * (a HEAD, which the worker leaves to the network; any answer means it is reachable).
 */
export function reloadWhenReachable(every = 3000) {
  let checking = false;
  const check = async () => {
    if (checking || !navigator.onLine) return;
    checking = true;
    try {
      await fetch(window.location.href, { method: 'HEAD', cache: 'no-store' });
      window.location.reload();
    } catch {
      checking = false; // still unreachable
    }
  };
  window.addEventListener('online', check);
  return setInterval(check, every);
}

export function initPwa(doc = document) {
  const shell = doc.querySelector('[data-offline-shell]');
  if (shell) {
    renderLastSeen(shell);
    reloadWhenReachable();
  } else {
    rememberPage(doc);
  }
  return registerWorker();
}

initPwa();
