// "Last seen": what a page of ours last received (its runs, its title, when), kept in
// localStorage per mount point, and the offline shell that shows it, labelled as the last
// seen data with its time — never as current. The service worker never caches API data.

import { basePath } from './base.js';
import { h, replaceChildren } from './dom.js';
import { formatFullTime, formatTime } from './format.js';

export const MAX_RUNS = 20;
const KEY_PREFIX = 'controlplane.lastSeen:';
const TITLE_SUFFIX = / · Control plane$/;

/** The localStorage key of this mount point ('' and '/ops' keep their own). */
export function storageKey() {
  return KEY_PREFIX + (basePath() || '/');
}

function cellText(row, name) {
  const cell = row.querySelector(`[data-cell="${name}"]`);
  return cell ? cell.textContent.trim() : '';
}

/** What the page shows now: its title, address, and the runs in its tables (at most 20). */
export function snapshot(doc = document, now = Date.now()) {
  const runs = [];
  for (const row of doc.querySelectorAll('main tr[data-run-id]')) {
    if (!row.dataset.runId || row.hidden) continue;
    const started = row.querySelector('[data-cell="started"]');
    runs.push({
      id: row.dataset.runId,
      status: row.dataset.status || cellText(row, 'status'),
      name: cellText(row, 'link') || row.dataset.runId,
      summary: cellText(row, 'summary'),
      started: started ? started.getAttribute('datetime') || '' : '',
    });
    if (runs.length >= MAX_RUNS) break;
  }
  const status = doc.querySelector('[data-run-status]');
  return {
    savedAt: new Date(now).toISOString(),
    title: doc.title.replace(TITLE_SUFFIX, ''),
    path: window.location.pathname + window.location.search,
    runStatus: status ? status.dataset.status || status.textContent.trim() : null,
    runs,
  };
}

/** Keep a snapshot (a full or private-mode storage is not worth an error). */
export function saveLastSeen(seen) {
  try {
    localStorage.setItem(storageKey(), JSON.stringify(seen));
    return true;
  } catch {
    return false;
  }
}

/** The last snapshot kept, or null (none, or not one of ours). */
export function loadLastSeen() {
  let seen;
  try {
    seen = JSON.parse(localStorage.getItem(storageKey()) || 'null');
  } catch {
    return null;
  }
  if (!seen || typeof seen.savedAt !== 'string' || Number.isNaN(Date.parse(seen.savedAt))) {
    return null;
  }
  return { ...seen, runs: Array.isArray(seen.runs) ? seen.runs : [] };
}

/** How long ago, in words ('just now', '5 min ago', '3 h ago', '2 days ago'). */
export function ago(iso, now = Date.now()) {
  const minutes = Math.floor((now - Date.parse(iso)) / 60000);
  if (minutes < 1) return 'just now';
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.floor(hours / 24)} days ago`;
}

/** The shell's one line: 'Offline — last seen <time> (<ago>): <page>, N runs'. */
export function headline(seen, now = Date.now()) {
  if (!seen) return 'Offline — nothing seen yet in this browser.';
  const what = [seen.title || seen.path];
  if (seen.runStatus) what.push(`status ${seen.runStatus}`);
  if (seen.runs.length) what.push(`${seen.runs.length} run${seen.runs.length === 1 ? '' : 's'}`);
  return `Offline — last seen ${formatTime(seen.savedAt)} (${ago(seen.savedAt, now)}): `
    + `${what.join(', ')}`;
}

/** Fill the offline shell's [data-last-seen] section from the kept snapshot. */
export function renderLastSeen(section, seen = loadLastSeen(), now = Date.now()) {
  const text = section.querySelector('[data-last-seen-text]');
  text.textContent = headline(seen, now);
  const when = section.querySelector('[data-last-seen-time]');
  const list = section.querySelector('[data-last-seen-runs]');
  if (!seen) {
    when.hidden = true;
    list.hidden = true;
    return;
  }
  when.hidden = false;
  when.textContent = `Last seen data, as of ${formatFullTime(seen.savedAt)}; not current.`;
  when.setAttribute('datetime', seen.savedAt);
  list.hidden = seen.runs.length === 0;
  replaceChildren(list, seen.runs.map((run) => h('li', { class: 'lastseen__run' },
    h('span', { class: `badge badge--${run.status}`, 'data-status': run.status, text: run.status }),
    ' ', h('span', { class: 'mono', text: run.name }),
    run.summary ? ` — ${run.summary}` : '',
    run.started ? h('span', { class: 'muted small', text: ` (started ${formatTime(run.started)})` }) : '')));
}

/** Pages of data only: not an error page, not the offline shell itself. */
export function worthRemembering(doc = document) {
  return !doc.querySelector('.errorpage, [data-offline-shell]');
}

function content(seen) {
  return JSON.stringify({ ...seen, savedAt: null });
}

/** True while the live connection says the page is current (the top bar's indicator). */
export function live(doc = document) {
  const indicator = doc.querySelector('[data-conn]');
  return Boolean(indicator && indicator.dataset.state === 'connected');
}

/**
 * Keep what this page shows now; again when what it shows changes (live updates; at most
 * once per `every` ms), and every `confirm` ms while the live connection is up (the same
 * data, seen as current later). Banners and toasts change nothing kept.
 * Returns the function that stops it.
 */
export function rememberPage(doc = document, { every = 500, confirm = 30_000 } = {}) {
  if (!worthRemembering(doc)) return () => {};
  let kept = snapshot(doc);
  saveLastSeen(kept);
  const save = (force) => {
    const seen = snapshot(doc);
    if (!force && content(seen) === content(kept)) return;
    kept = seen;
    saveLastSeen(seen);
  };
  let timer = null;
  const confirmer = setInterval(() => {
    if (live(doc)) save(true);
  }, confirm);
  const main = doc.querySelector('main');
  const observer = main && window.MutationObserver ? new window.MutationObserver(() => {
    if (timer !== null) return;
    timer = setTimeout(() => {
      timer = null;
      save(false);
    }, every);
  }) : null;
  if (observer) {
    observer.observe(main, { childList: true, subtree: true, characterData: true,
      attributes: true, attributeFilter: ['data-status'] });
  }
  return () => {
    if (observer) observer.disconnect();
    clearTimeout(timer);
    clearInterval(confirmer);
  };
}
