// "/metrics": KPI cards, runs and success rate per day, and a breakdown per run type.

import { initCommon } from '../common.js';
import { rateChart, runsChart, dailySeries } from '../chart.js';
import { $, h, replaceChildren } from '../dom.js';
import { formatCount, formatPercent } from '../format.js';
import { followMetrics, renderKpis } from '../kpis.js';

initCommon();

const kpis = $('[data-kpis]');
const charts = $('[data-charts]');
const days = Number.parseInt(charts.dataset.days, 10) || 14;

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
}, days * 24 * 60);
