// Toasts when runs end: for runs started from this tab and the run a page shows.

import { runHref } from './dom.js';
import { isFinal } from './format.js';
import { on } from './live.js';
import { toast } from './toast.js';

const KEY = 'scp.watched';
const recentlyEnded = new Map(); // run id -> final run, in case the end beat the watch
const MAX_RECENT = 200;

function load() {
  try {
    return new Set(JSON.parse(sessionStorage.getItem(KEY) || '[]'));
  } catch {
    return new Set();
  }
}

const watched = load();

function save() {
  try {
    sessionStorage.setItem(KEY, JSON.stringify(Array.from(watched).slice(-50)));
  } catch {
    // a tab without storage only loses its watch list on navigation
  }
}

function announce(run) {
  watched.delete(run.run_id);
  save();
  const kind = run.status === 'ok' ? 'ok' : (run.status === 'failed' ? 'failed' : 'info');
  toast(`${run.subtype || 'Run'} ended: ${run.status}.`, {
    kind, link: { href: runHref(run.run_id), text: 'Open the run' },
  });
}

/** Toast when this run ends (at once if it already has). */
export function watchRun(runId) {
  const ended = recentlyEnded.get(runId);
  if (ended) {
    announce(ended);
    return;
  }
  watched.add(runId);
  save();
}

/** Toast for a final run seen by other means (a fetch) if it is watched. */
export function noteRun(run) {
  if (run && isFinal(run.status) && watched.has(run.run_id)) announce(run);
}

export function initWatch() {
  on('run:completed', (envelope) => {
    const run = envelope.data || {};
    recentlyEnded.set(run.run_id, run);
    if (recentlyEnded.size > MAX_RECENT) {
      recentlyEnded.delete(recentlyEnded.keys().next().value);
    }
    if (watched.has(run.run_id)) announce(run);
  });
}
