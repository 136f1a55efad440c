// The live connection indicator in the top bar (its title and data-transport name the
// transport in use), and a banner when the server is gone or the login has ended (with the
// way back: the login page, returning here).

import { url } from './base.js';
import { hideBanner, showBanner } from './banner.js';
import { TRANSPORT_NAMES, loginRefusal, onState, transport } from './live.js';

const LABELS = {
  connecting: 'Connecting…',
  connected: 'Live',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
  'logged-out': 'Logged out',
};

function loginLink() {
  const here = window.location.pathname + window.location.search;
  return { href: url(`/login?next=${encodeURIComponent(here)}`), text: 'Log in again' };
}

export function initConnectionIndicator() {
  const indicator = document.querySelector('[data-conn]');
  if (!indicator) return;
  const label = indicator.querySelector('[data-conn-label]');
  onState((state) => {
    indicator.className = `conn conn--${state}`;
    indicator.dataset.state = state;
    label.textContent = LABELS[state] || state;
    const via = transport();
    indicator.dataset.transport = via || '';
    const over = via ? ` over ${TRANSPORT_NAMES[via]}` : '';
    indicator.title = state === 'connected' ? `Live updates${over}` : label.textContent;
    indicator.setAttribute('aria-label', state === 'connected' ? `Live${over}` : label.textContent);
    if (state === 'logged-out') {
      const refusal = loginRefusal();
      const detail = refusal && refusal.message ? ` ${refusal.message}` : '';
      showBanner(`Your login has ended (logged out, or its token was changed): this page no `
        + `longer updates.${detail}`, { kind: 'error', source: 'connection', link: loginLink() });
    } else if (state === 'offline') {
      showBanner('Lost the live connection to the server; reconnecting every second.',
        { kind: 'warning', source: 'connection' });
    } else if (state === 'connected') {
      hideBanner('connection');
    }
  });
}
