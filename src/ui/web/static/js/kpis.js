// KPI cards: total, success rate, average duration, last status (from /api/metrics/summary).

import { api } from './api.js';
import { onRefresh } from './autorefresh.js';
import { setBadge } from './badge.js';
import { $ } from './dom.js';
import { formatCount, formatDuration, formatPercent } from './format.js';
import { on } from './live.js';

export const METRICS_MINUTES = 14 * 24 * 60;

/**
 * Fetch the summary when a run ends (debounced), on resync and on auto-refresh.
 * `extra()` gives more query parameters (the runs list's filters; with `since`/`until`
 * the dates replace the window). Returns `reload`, to call when those change.
 */
export function followMetrics(render, minutes = METRICS_MINUTES, extra = () => ({})) {
  let timer = null;
  let generation = 0;
  const load = async () => {
    generation += 1;
    const mine = generation;
    const wanted = Object.fromEntries(Object.entries(extra()).filter(([, v]) => v));
    const params = new URLSearchParams(wanted.since || wanted.until ? {} : { minutes: String(minutes) });
    for (const [name, value] of Object.entries(wanted)) params.set(name, value);
    try {
      const summary = await api(`/api/metrics/summary?${params}`);
      if (mine === generation) render(summary);
    } catch {
      // the cards keep their last figures; the banner reports lost connections
    }
  };
  const soon = () => {
    clearTimeout(timer);
    timer = setTimeout(load, 500);
  };
  on('run:completed', soon);
  on('metrics:update', soon);
  on('ledger:synced', soon);
  on('resync', soon);
  onRefresh(load);
  load();
  return load;
}

export function renderKpis(root, summary) {
  const set = (name, text) => {
    $(`[data-kpi="${name}"]`, root).textContent = text;
  };
  const note = (name, text) => {
    $(`[data-kpi-note="${name}"]`, root).textContent = text;
  };
  set('total', formatCount(summary.total));
  note('total', `${formatCount(summary.ok)} ok · ${formatCount(summary.failed)} failed`);
  set('success_rate', formatPercent(summary.success_rate));
  note('success_rate', 'of all finished runs');
  set('avg_duration_ms', formatDuration(summary.avg_duration_ms));
  note('avg_duration_ms', summary.p95_duration_ms == null
    ? '' : `95 % under ${formatDuration(summary.p95_duration_ms)}`);
  const last = $('[data-kpi="last_status"]', root);
  if (summary.last_status) {
    last.replaceChildren();
    const span = document.createElement('span');
    setBadge(span, summary.last_status);
    last.append(span);
  } else {
    last.textContent = '—';
  }
  note('last_status', 'of the latest run');
}
