// Errors: a refusal of something the operator just did is shown next to the control that
// caused it, and focus moves there (the banner at the top of <main> can be off-screen on a
// phone or below the fold); other errors (a background load, the connection) use the banner.
// A 409 "already running" says who started the run and when, with a link to open it.

import { api } from './api.js';
import { h, replaceChildren, runHref } from './dom.js';

let owner = null;
const RECENT_MS = 10000; // a control activated this recently caused the refusal that follows
let lastControl = null;
let lastAt = 0;
const refusals = new Map(); // source -> the refusal element shown for it

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

function removeRefusal(source) {
  const shown = refusals.get(source);
  if (shown) shown.remove();
  refusals.delete(source);
}

/** Hide the banner (if *source* showed it) and *source*'s refusal next to its control. */
export function hideBanner(source = null) {
  if (source !== null) removeRefusal(source);
  else [...refusals.keys()].forEach(removeRefusal);
  const banner = document.querySelector('[data-banner]');
  if (!banner || (source !== null && owner !== source)) return;
  banner.hidden = true;
  owner = null;
}

function visible(element) {
  return element && element.isConnected && !element.closest('[hidden], dialog:not([open])')
    && element.getClientRects().length > 0;
}

/** The control the operator activated just now, if it is still on the page. */
function recentControl() {
  return Date.now() - lastAt < RECENT_MS && visible(lastControl) ? lastControl : null;
}

/** Show *message* (and *link*) right after *control*'s button row, and focus it. */
export function showRefusal(control, message, { link = null, source = null } = {}) {
  removeRefusal(source);
  const text = h('p', { class: 'form-error refusal', role: 'alert', tabindex: '-1',
    dataset: { refusal: source || '' } }, message,
  link ? [' ', h('a', { href: link.href, text: link.text })] : null);
  const anchor = control.closest('.btnrow') || control;
  anchor.after(text);
  refusals.set(source, text);
  text.focus();
  return text;
}

function ago(iso) {
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (Number.isNaN(seconds)) return '';
  if (seconds < 90) return `${seconds} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

/** "already running: started by alice 12 s ago" for the run holding the lock. */
async function inProgressText(runId) {
  try {
    const { run } = await api(`/api/runs/${encodeURIComponent(runId)}`);
    const who = run.actor && run.actor.name ? ` by ${run.actor.name}` : '';
    const when = run.started_at || run.created_at;
    const queued = run.status === 'queued';
    return `Already ${queued ? 'queued' : 'running'}: ${queued ? 'asked' : 'started'}${who}`
      + `${when ? ` ${ago(when)}` : ''} —`;
  } catch {
    return null;
  }
}

/** A refusal of what was asked (4xx but not a login problem), not a failed load. */
function isRefusal(error) {
  const status = error && error.status;
  return status >= 400 && status < 500 && status !== 401 && status !== 403;
}

/** Show an ApiError (or any error): a refusal next to *near* (default: the control just
 * used), anything else in the banner. */
export function showError(error, { source = null, near = null } = {}) {
  const body = (error && error.body) || {};
  // "The server could not be reached" belongs to the connection: it goes when it is back.
  if (error && error.status === 0 && !near) source = 'connection';
  let control = null;
  if (isRefusal(error)) control = visible(near) ? near : recentControl();
  const show = (message, link = null) => {
    if (control) {
      if (owner === source) hideBanner(source);
      return showRefusal(control, message, { link, source });
    }
    showBanner(message, { link, source });
    return null;
  };
  if (body.error === 'run_already_in_progress' && body.run_id) {
    const link = { href: runHref(body.run_id), text: 'open it' };
    const shown = show('Already running —', link);
    inProgressText(body.run_id).then((text) => {
      if (!text) return;
      if (shown && shown.isConnected) shown.firstChild.textContent = text;
      else if (!shown && owner === source) showBanner(text, { link, source });
    });
    return;
  }
  show(error && error.message ? error.message : String(error));
}

/** Note the control the operator activates (a click in a dialog keeps the one that opened it). */
function noteControl(target) {
  const control = target && target.closest
    && target.closest('button, input[type="submit"], [role="button"], select');
  if (!control || control.closest('dialog')) return;
  lastControl = control;
  lastAt = Date.now();
}

export function initBanner() {
  document.addEventListener('click', (event) => noteControl(event.target), true);
  document.addEventListener('submit', (event) => noteControl(event.submitter), true);
  const banner = document.querySelector('[data-banner]');
  if (!banner) return;
  banner.querySelector('[data-banner-close]').addEventListener('click', () => hideBanner());
}
