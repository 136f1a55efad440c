// The workers/processes card: one row per server worker and per process with runs in flight
// (GET /api/processes). The server renders it; this keeps it current on run events, on
// resync and with the auto-refresh.

import { api } from './api.js';
import { hideBanner, showError } from './banner.js';
import { $, $$ } from './dom.js';
import { reloadOnRunActivity } from './run-activity.js';

const STATE_BADGE = { alive: 'ok', gone: 'interrupted', stale: 'queued' };

/** Seconds as the card says them: "4 s ago", "3 min ago", "2 h ago"; "—" for none. */
export function ageText(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  if (seconds < 60) return `${Math.round(seconds)} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  return `${Math.floor(seconds / 3600)} h ago`;
}

/** The heartbeat cell: its text and its title (exec and scripts keep no heartbeat). */
export function heartbeatText(line) {
  if (line.heartbeat_age !== null && line.heartbeat_age !== undefined) {
    return { text: ageText(line.heartbeat_age), title: '' };
  }
  return { text: 'none (pid checked)', title: 'keeps no heartbeat: checked alive by pid and '
    + `start time when asked; last output ${ageText(line.last_activity_age)}` };
}

const counted = (value) => (value === null || value === undefined ? '—' : String(value));

/** Fill a row cloned from the card's <template> with one line of /api/processes. */
export function fillRow(row, line) {
  const cell = (name) => $(`[data-cell="${name}"]`, row);
  row.dataset.process = String(line.pid);
  row.dataset.state = line.state;
  cell('kind').textContent = line.kind;
  if (line.this) {
    const mine = document.createElement('span');
    mine.className = 'muted small';
    mine.textContent = '(this)';
    cell('kind').append(' ', mine);
  }
  cell('pid').textContent = String(line.pid);
  cell('host').textContent = line.host || '';
  cell('state').textContent = line.state;
  cell('state').className = `badge badge--${STATE_BADGE[line.state] || 'unknown'}`;
  const beat = heartbeatText(line);
  cell('heartbeat').textContent = beat.text;
  if (beat.title) cell('heartbeat').title = beat.title;
  else cell('heartbeat').removeAttribute('title');
  cell('running').textContent = String(line.running);
  cell('running').title = (line.runs || []).map((run) => run.subtype).join(', ');
  cell('processed').textContent = counted(line.processed);
  cell('failed').textContent = counted(line.failed);
  return row;
}

export function initProcesses(root) {
  if (!root) return null;
  const body = $('[data-processes-body]', root);
  const template = $('template[data-template="process-row"]', root);
  const render = (view) => {
    const rows = view.processes.map((line) => fillRow(
      template.content.firstElementChild.cloneNode(true), line));
    body.replaceChildren(...rows);
  };
  const load = async () => {
    try {
      render(await api('/api/processes'));
      hideBanner('processes');
    } catch (error) {
      showError(error, { source: 'processes' });
    }
  };
  reloadOnRunActivity(load);
  // A process that dies starts or ends no run: read the card again at every beat (while the
  // page is shown), so its state and its heartbeat's age do not stay as they were.
  const beat = Number(root.dataset.beatSeconds) || 5;
  setInterval(() => {
    if (document.visibilityState !== 'hidden') load();
  }, beat * 1000);
  return { load, rows: () => $$('tr', body) };
}
