// What every page has: the live connection and its indicator, auto-refresh, help, toasts, chat.

import { initAutoRefresh } from './autorefresh.js';
import { initBanner } from './banner.js';
import { initChat } from './chat.js';
import { initConnectionIndicator } from './connection.js';
import { localizeTimes } from './format.js';
import { initHelp } from './help.js';
import { start } from './live.js';
import { initWatch } from './watch.js';

let done = false;

export function initCommon() {
  if (done) return;
  done = true;
  localizeTimes();
  initBanner();
  initHelp();
  initAutoRefresh();
  initConnectionIndicator();
  initWatch();
  initChat();
  start();
  // On a phone the integrations row scrolls sideways: show the current one.
  const current = document.querySelector('.subnav [aria-current="page"]');
  if (current && current.parentElement.parentElement.scrollWidth > window.innerWidth) {
    current.scrollIntoView({ block: 'nearest', inline: 'center' });
  }
}
