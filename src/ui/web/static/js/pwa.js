// Every page (base.html): register the service worker (scope: the mount point), then either
// keep what this page shows as "last seen", or — on the offline shell — show it.

import { url } from './base.js';
import { rememberPage, renderLastSeen } from './offline.js';

export function registerWorker() {
  if (!('serviceWorker' in navigator)) return Promise.resolve(null);
  return navigator.serviceWorker.register(url('/sw.js'), { scope: url('/') })
    .catch(() => null); // no worker (e.g. plain http on another host): the pages still work
}

export function initPwa(doc = document) {
  const shell = doc.querySelector('[data-offline-shell]');
  if (shell) {
    renderLastSeen(shell);
    // the network is back: load the page that was asked for (this shell stands in for it)
    window.addEventListener('online', () => window.location.reload());
  } else {
    rememberPage(doc);
  }
  return registerWorker();
}

initPwa();
