// "/metrics" (pages/metrics.js): KPI cards, per-day charts as SVG (chart.js), the breakdown.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FakeEventSource, installPage, load, settle } from './harness.mjs';

const KPI = (key) => `<p data-kpi="${key}"></p><p data-kpi-note="${key}"></p>`;
const NOW = new Date().getTime(); // chart.js counts days from the real clock (new Date())
const today = new Date(NOW).toISOString().slice(0, 10);
const daysAgo = (n) => new Date(NOW - n * 86400000).toISOString().slice(0, 10);
const summary = {
  total: 13, ok: 9, failed: 3, success_rate: 0.75, avg_duration_ms: 900, p95_duration_ms: null,
  last_status: 'ok',
  per_day: { [today]: { total: 10, ok: 7, failed: 2 }, [daysAgo(2)]: { total: 3, ok: 2, failed: 1 } },
  per_type: { check: { total: 3, ok: 2, failed: 1 }, action: { total: 10, ok: 7, failed: 2 }, demo: { total: 0, ok: 0, failed: 0 } },
};
const { document, clock, server } = installPage(`
  <section data-kpis>${['total', 'success_rate', 'avg_duration_ms', 'last_status'].map(KPI).join('')}</section>
  <div data-charts data-days="7"><div data-chart="runs"></div><div data-chart="rate"></div></div>
  <table><tbody data-breakdown></tbody></table>`, {
  routes: { '/api/metrics/summary?minutes=10080': () => summary },
});
await load('pages/metrics.js');
await settle();
const { dailySeries, rateChart, runsChart } = await load('chart.js');
const $ = (selector) => document.querySelector(selector);

test('a zero-filled series of the last days, oldest first', () => {
  const series = dailySeries(summary.per_day, 7);
  assert.equal(series.length, 7);
  assert.equal(series[6].day, today);
  assert.deepEqual(series[4], { day: daysAgo(2), total: 3, ok: 2, failed: 1 });
  assert.deepEqual(series[0], { day: daysAgo(6), total: 0, ok: 0, failed: 0 });
});

test('runs per day: stacked bars with titles, the axis to a round top', () => {
  const chart = $('[data-chart="runs"] svg');
  assert.equal(chart.getAttribute('aria-label'), 'Runs per day over 7 days: 13 in all');
  const bars = chart.querySelectorAll('g.chart__bar');
  assert.equal(bars.length, 7);
  assert.equal(bars[6].querySelector('title').textContent, `10 runs on ${today}: 7 ok, 2 failed, 1 other`);
  assert.deepEqual([...bars[6].querySelectorAll('rect.chart__rect')].map((r) => r.getAttribute('class')),
    ['chart__rect chart__rect--ok', 'chart__rect chart__rect--failed', 'chart__rect chart__rect--other']);
  assert.deepEqual([...chart.querySelectorAll('.chart__tick--y')].map((t) => t.textContent), ['0', '5', '10']);
  assert.equal(chart.querySelector('[style]'), null, 'no style attributes (CSP)');
});

test('success rate: dots on days with finished runs, gaps elsewhere', () => {
  const chart = $('[data-chart="rate"] svg');
  assert.equal(chart.querySelectorAll('circle').length, 2);
  const path = chart.querySelector('path').getAttribute('d');
  assert.equal((path.match(/M/g) || []).length, 2, 'a gap between the two days');
  assert.match(chart.querySelector('a title').textContent, /67 % of 3 finished runs on /);
  const empty = rateChart(dailySeries({}, 3));
  assert.equal(empty.querySelector('path'), null);
  const big = runsChart([{ day: '2026-01-01', total: 130, ok: 130, failed: 0 }]);
  assert.equal(big.querySelectorAll('.chart__tick--y')[2].textContent, '200');
  const many = runsChart(dailySeries({}, 30));
  assert.equal(many.querySelectorAll('text.chart__tick:not(.chart__tick--y)').length, 6);
});

test('the breakdown per type, most runs first', () => {
  const rows = [...$('[data-breakdown]').querySelectorAll('tr')];
  assert.deepEqual(rows.map((r) => r.querySelector('th').textContent), ['action', 'check', 'demo']);
  assert.equal(rows[0].lastElementChild.textContent, '77.8 %');
  assert.equal(rows[2].lastElementChild.textContent, '—');
});

test('a run ending redraws; an empty period says so', async () => {
  summary.per_type = {};
  FakeEventSource.last.open();
  FakeEventSource.last.send({ type: 'run:completed', run_id: 'r', data: { run_id: 'r', status: 'ok' } });
  await clock.tick(500);
  assert.equal(server.sent('/api/metrics/summary').length, 2);
  assert.equal($('[data-breakdown]').textContent, 'No runs in this period.');
});
