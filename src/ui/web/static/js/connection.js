// The live connection indicator in the top bar, and a banner when the server is gone.

import { hideBanner, showBanner } from './banner.js';
import { onState } from './live.js';

const LABELS = {
  connecting: 'Connecting…',
  connected: 'Live',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
};

export function initConnectionIndicator() {
  const indicator = document.querySelector('[data-conn]');
  if (!indicator) return;
  const label = indicator.querySelector('[data-conn-label]');
  onState((state) => {
    indicator.className = `conn conn--${state}`;
    indicator.dataset.state = state;
    label.textContent = LABELS[state] || state;
    if (state === 'offline') {
      showBanner('Lost the live connection to the server; retrying. Turn on Auto-refresh '
        + 'to poll meanwhile.', { kind: 'warning', source: 'connection' });
    } else if (state === 'connected') {
      hideBanner('connection');
    }
  });
}
