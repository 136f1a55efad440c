// "/metrics": the window picker, KPI cards, per-pipeline table, runs and success rate per
// day, and a breakdown per run type. Pipeline rows are clones of <template data-template=
// "pipeline-row"> (the Jinja macro of the server-rendered rows).

import { initCommon } from '../common.js';
import { rateChart, runsChart, dailySeries } from '../chart.js';
import { $, h, replaceChildren } from '../dom.js';
import { setBadge } from '../badge.js';
import { formatCount, formatDuration, formatFullTime, formatPercent } from '../format.js';
import { followMetrics, renderKpis } from '../kpis.js';

initCommon();

const kpis = $('[data-kpis]');
const charts = $('[data-charts]');
const days = Number.parseInt(charts.dataset.days, 10) || 14;
const minutes = Number.parseInt(charts.dataset.minutes, 10) || days * 24 * 60;

const windowForm = $('[data-window-form]');
if (windowForm) {
  $('[data-window-apply]', windowForm).hidden = true; // a choice applies at once
  windowForm.addEventListener('change', () => windowForm.submit());
}

function pipelineRow(p) {
  const tr = $('template[data-template="pipeline-row"]').content.firstElementChild.cloneNode(true);
  const cell = (name) => $(`[data-cell="${name}"]`, tr);
  cell('subtype').textContent = p.subtype;
  cell('total').textContent = formatCount(p.total);
  cell('ok').textContent = formatCount(p.ok);
  cell('failed').textContent = formatCount(p.failed);
  cell('rate').textContent = formatPercent(p.success_rate);
  cell('avg').textContent = formatDuration(p.avg_duration_ms);
  setBadge(cell('last_status'), p.last_status || 'unknown');
  cell('last_finished').textContent = formatFullTime(p.last_finished_at);
  cell('last_finished').dateTime = p.last_finished_at || '';
  return tr;
}

function renderPipelines(pipelines) {
  const body = $('[data-pipelines-body]');
  if (!body || !pipelines) return;
  replaceChildren(body, pipelines.length ? pipelines.map(pipelineRow)
    : h('tr', {}, h('td', { colspan: '8', class: 'muted', text: 'No runs in this period.' })));
}

function renderBreakdown(perType) {
  const rows = Object.entries(perType || {}).sort((a, b) => b[1].total - a[1].total)
    .map(([type, n]) => h('tr', {},
      h('th', { scope: 'row', text: type }),
      h('td', { class: 'num', text: formatCount(n.total) }),
      h('td', { class: 'num', text: formatCount(n.ok) }),
      h('td', { class: 'num', text: formatCount(n.failed) }),
      h('td', { class: 'num', text: formatPercent(n.ok + n.failed ? n.ok / (n.ok + n.failed) : null) })));
  replaceChildren($('[data-breakdown]'), rows.length ? rows
    : h('tr', {}, h('td', { colspan: '5', class: 'muted', text: 'No runs in this period.' })));
}

followMetrics((summary) => {
  renderKpis(kpis, summary);
  const series = dailySeries(summary.per_day || {}, days);
  replaceChildren($('[data-chart="runs"]', charts), runsChart(series));
  replaceChildren($('[data-chart="rate"]', charts), rateChart(series));
  renderBreakdown(summary.per_type);
  renderPipelines(summary.pipelines);
}, minutes);
