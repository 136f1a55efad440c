// The error banner at the top of <main>: says what went wrong, the page stays usable.

import { h, replaceChildren, runHref } from './dom.js';

let owner = null;

/**
 * Show a message (replacing any other). link: {href, text}. source names who showed
 * it, so that hideBanner(source) only clears its own message.
 */
export function showBanner(message, { link = null, kind = 'error', source = null } = {}) {
  const banner = document.querySelector('[data-banner]');
  if (!banner) return;
  owner = source;
  banner.className = `banner banner--${kind}`;
  replaceChildren(banner.querySelector('[data-banner-text]'), message,
    link ? [' ', h('a', { href: link.href, text: link.text })] : null);
  banner.hidden = false;
}

export function hideBanner(source = null) {
  const banner = document.querySelector('[data-banner]');
  if (!banner || (source !== null && owner !== source)) return;
  banner.hidden = true;
  owner = null;
}

/** Show an ApiError (or any error) in the banner. */
export function showError(error, { source = null } = {}) {
  const body = (error && error.body) || {};
  if (body.error === 'run_already_in_progress' && body.run_id) {
    showBanner(`${error.message}.`, {
      link: { href: runHref(body.run_id), text: 'Open the run in progress' },
      source,
    });
    return;
  }
  showBanner(error && error.message ? error.message : String(error), { source });
}

export function initBanner() {
  const banner = document.querySelector('[data-banner]');
  if (!banner) return;
  banner.querySelector('[data-banner-close]').addEventListener('click', () => hideBanner());
}
