// Numbers, times and durations for people.

const FINAL = new Set(['ok', 'failed', 'cancelled', 'interrupted']);

export function isFinal(status) {
  return FINAL.has(status);
}

/** How far a status is in a run's life: updates never move a run backwards. */
export function statusRank(status) {
  if (isFinal(status)) return 2;
  return status === 'running' ? 1 : 0;
}

export function formatDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${String(Math.floor(seconds % 60)).padStart(2, '0')} s`;
  const hours = Math.floor(minutes / 60);
  return `${hours} h ${String(minutes % 60).padStart(2, '0')} min`;
}

/** A run's duration: recorded when final, else ticking from its start. */
export function runDuration(run, now = Date.now()) {
  if (typeof run.duration_ms === 'number') return run.duration_ms;
  if (run.status === 'queued' || !run.started_at) return null;
  const started = Date.parse(run.started_at);
  return Number.isNaN(started) ? null : Math.max(0, now - started);
}

const timeFormat = new Intl.DateTimeFormat(undefined, {
  hour: '2-digit', minute: '2-digit', second: '2-digit',
});
const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
  month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
});
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

/** Local time of an ISO timestamp: the time alone if it is today. */
export function formatTime(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  const today = new Date().toDateString() === date.toDateString();
  return today ? timeFormat.format(date) : dateTimeFormat.format(date);
}

export function formatFullTime(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : fullFormat.format(date);
}

// What the server writes in a <time> for a page without JS (pages.format_time): UTC text.
const SERVER_TIME = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/;

/** The server's UTC times under *root* as the script shows every other time: local, the
 * time alone if today (formatTime), the full date and time as the title. */
export function localizeTimes(root = document) {
  for (const node of root.querySelectorAll('time[datetime]')) {
    const iso = node.getAttribute('datetime');
    if (iso && SERVER_TIME.test(node.textContent.trim())) {
      node.textContent = formatTime(iso);
      node.title = formatFullTime(iso);
    }
  }
}

export function formatPercent(rate) {
  if (rate === null || rate === undefined) return '—';
  return `${(rate * 100).toFixed(rate === 1 || rate === 0 ? 0 : 1)} %`;
}

export function formatCount(n) {
  return n === null || n === undefined ? '—' : new Intl.NumberFormat().format(n);
}

/** A parameter or result value as one line of text. */
export function formatValue(value) {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}
