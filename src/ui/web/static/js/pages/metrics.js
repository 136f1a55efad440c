// "/metrics": the window and pipeline pickers, KPI cards, per-pipeline table, runs, success
// rate and duration (p50/p95) per day, the per-day table and a breakdown per run type. Every
// chart's day and status, and every per-day count, links to those runs in the runs list.
// Pipeline rows are clones of <template data-template="pipeline-row"> (the Jinja macro).

import { api } from '../api.js';
import { initCommon } from '../common.js';
import { dailySeries, durationChart, rateChart, runsChart, trendSeries, widthOf } from '../chart.js';
import { $, h, replaceChildren } from '../dom.js';
import { setBadge } from '../badge.js';
import { formatCount, formatDuration, formatFullTime, formatPercent } from '../format.js';
import { followMetrics, renderKpis } from '../kpis.js';
import { dayLinker, runsHref } from '../runs-link.js';

initCommon();

const kpis = $('[data-kpis]');
const charts = $('[data-charts]');
const days = Number.parseInt(charts.dataset.days, 10) || 14;
const minutes = Number.parseInt(charts.dataset.minutes, 10) || days * 24 * 60;
const subtype = charts.dataset.subtype || '';
const link = dayLinker(subtype);
let latest = { summary: null, trend: null };

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

/** A count that links to the day's runs (of a status), or a plain 0. */
function countCell(day, count, status, noun) {
  const text = formatCount(count);
  return h('td', { class: 'num' }, count ? h('a', {
    href: runsHref({ since: day, until: day, status, subtype }),
    'aria-label': `${count} ${noun}${count === 1 ? '' : 's'} on ${day}`, text }) : text);
}

/** The per-day table (newest first): counts that link to the runs, p50 and p95. */
export function renderPerDay(perDay, trend) {
  const body = $('[data-per-day-body]');
  if (!body) return;
  const durations = new Map((trend || []).map((t) => [t.day, t]));
  const seconds = (value) => (typeof value === 'number' ? formatDuration(value * 1000) : '—');
  const rows = Object.entries(perDay || {}).sort((a, b) => (a[0] < b[0] ? 1 : -1))
    .map(([day, n]) => {
      const t = durations.get(day) || {};
      return h('tr', {}, h('th', { scope: 'row', text: day }),
        countCell(day, n.total, '', 'run'), countCell(day, n.ok, 'ok', 'ok run'),
        countCell(day, n.failed, 'failed', 'failed run'),
        h('td', { class: 'num', text: seconds(t.p50_s) }),
        h('td', { class: 'num', text: seconds(t.p95_s) }));
    });
  replaceChildren(body, rows.length ? rows
    : h('tr', {}, h('td', { colspan: '6', class: 'muted', text: 'No runs in this period.' })));
}

function drawCharts() {
  const { summary, trend } = latest;
  if (summary) {
    const series = dailySeries(summary.per_day || {}, days);
    const runsBox = $('[data-chart="runs"]', charts);
    const rateBox = $('[data-chart="rate"]', charts);
    replaceChildren(runsBox, runsChart(series, { width: widthOf(runsBox), link }));
    replaceChildren(rateBox, rateChart(series, { width: widthOf(rateBox), link }));
  }
  const durationsBox = $('[data-chart="durations"]', charts);
  if (trend && durationsBox) {
    replaceChildren(durationsBox, durationChart(trendSeries(trend, days),
      { width: widthOf(durationsBox), link }));
  }
}

async function loadTrend() {
  const params = new URLSearchParams({ minutes: String(minutes) });
  if (subtype) params.set('subtype', subtype);
  try {
    const answer = await api(`/api/metrics/durations?${params}`);
    latest = { ...latest, trend: answer.duration_trend };
  } catch {
    return; // the chart keeps its last figures; the banner reports lost connections
  }
  drawCharts();
  if (latest.summary) renderPerDay(latest.summary.per_day, latest.trend);
}

let resizeTimer = null;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(drawCharts, 150); // drawn at the boxes' new widths
});

followMetrics((summary) => {
  latest = { ...latest, summary };
  renderKpis(kpis, summary);
  drawCharts();
  renderBreakdown(summary.per_type);
  renderPipelines(summary.pipelines);
  loadTrend();
}, minutes, () => ({ subtype }));
