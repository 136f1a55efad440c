// "/metrics" (pages/metrics.js, chart.js, runs-link.js): the duration trend, the per-day table
// and every chart's links to the filtered runs list, under a mount point, for one pipeline.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { fire, installPage, load, settle } from './harness.mjs';

const daysAgo = (n) => new Date(Date.now() - n * 86400000).toISOString().slice(0, 10);
const [today, yesterday] = [daysAgo(0), daysAgo(1)];
const KPI = (key) => `<p data-kpi="${key}"></p><p data-kpi-note="${key}"></p>`;
const summary = {
  total: 6, ok: 4, failed: 1, success_rate: 0.8, avg_duration_ms: 900, p95_duration_ms: 2000,
  last_status: 'ok', per_type: {}, pipelines: [],
  per_day: { [today]: { total: 4, ok: 3, failed: 1 }, [yesterday]: { total: 2, ok: 1, failed: 0 } },
};
const trend = [{ day: yesterday, runs: 2, p50_s: 1.5, p95_s: 12 },
  { day: today, runs: 4, p50_s: 0.25, p95_s: null }];
const query = 'minutes=4320&subtype=ci%3Alint';
const { document, clock, server } = installPage(`
  <section data-kpis>${['total', 'success_rate', 'avg_duration_ms', 'last_status'].map(KPI).join('')}</section>
  <div data-charts data-days="3" data-minutes="4320" data-subtype="ci:lint">
    <div data-chart="runs"></div><div data-chart="rate"></div><div data-chart="durations"></div></div>
  <table><tbody data-breakdown></tbody></table>
  <table><tbody data-per-day-body></tbody></table>`, {
  base: '/ops',
  routes: { [`/ops/api/metrics/summary?${query}`]: () => summary,
    [`/ops/api/metrics/durations?${query}`]: () => ({ window_minutes: 4320, duration_trend: trend }) },
});
await load('pages/metrics.js');
await settle();
const { durationChart, trendSeries, widthOf } = await load('chart.js');
const { runsHref } = await load('runs-link.js');
const $ = (selector) => document.querySelector(selector);
const dayLink = (day, status = '') => `/ops/?since=${day}&until=${day}${status ? `&status=${status}` : ''}&subtype=ci%3Alint`;

test('runs-link: the runs list with only the filters given, under the mount point', () => {
  assert.equal(runsHref({ since: '2026-01-02', until: '2026-01-02', status: '', subtype: 'a b' }),
    '/ops/?since=2026-01-02&until=2026-01-02&subtype=a+b');
  assert.equal(runsHref({}), '/ops/');
});

test('each day, and its ok and failed parts, link to exactly those runs by name', () => {
  const links = [...document.querySelectorAll('[data-chart="runs"] a')];
  const named = Object.fromEntries(links.map((a) => [a.getAttribute('aria-label'), a.getAttribute('href')]));
  assert.deepEqual(named, {
    [`4 runs on ${today}: 3 ok, 1 failed`]: dayLink(today),
    [`3 ok runs on ${today}`]: dayLink(today, 'ok'),
    [`1 failed run on ${today}`]: dayLink(today, 'failed'),
    [`2 runs on ${yesterday}: 1 ok, 0 failed, 1 other`]: dayLink(yesterday),
    [`1 ok run on ${yesterday}`]: dayLink(yesterday, 'ok'),
  });
  assert.equal($('[data-chart="runs"] svg').getAttribute('role'), 'group', 'links stay reachable');
  const dots = [...document.querySelectorAll('[data-chart="rate"] a')].map((a) => a.getAttribute('href'));
  assert.deepEqual(dots, [dayLink(yesterday), dayLink(today)]);
});

test('the duration chart: p50 and p95 lines, a named link per day with a duration', () => {
  const chart = $('[data-chart="durations"] svg');
  assert.equal(chart.querySelectorAll('path.chart__line--p95').length, 1);
  const links = [...chart.querySelectorAll('a')];
  assert.equal(links.length, 1, 'today has no p95: no point');
  assert.equal(links[0].getAttribute('aria-label'), `2 runs on ${yesterday}: p50 1.5 s, p95 12 s`);
  assert.equal(links[0].getAttribute('href'), dayLink(yesterday));
  assert.deepEqual([...chart.querySelectorAll('.chart__tick--y')].map((t) => t.textContent),
    ['0 s', '10 s', '20 s']);
  const series = trendSeries(trend, 3);
  assert.deepEqual(series.map((p) => p.runs), [0, 2, 4]);
  const plain = durationChart(series);
  assert.equal(plain.querySelector('a'), null, 'without link: titled groups');
  assert.match(plain.querySelector('g title').textContent, /p95 12 s/);
  assert.equal(durationChart(trendSeries([{ day: today, runs: 1, p50_s: 250, p95_s: 250 }], 2))
    .querySelectorAll('.chart__tick--y')[2].textContent, '5 min');
  assert.equal(durationChart(trendSeries([{ day: today, runs: 1, p50_s: 0.2, p95_s: 7000 }], 1))
    .querySelector('a, g title').textContent, `1 run on ${today}: p50 0.2 s, p95 1.9 h`);
});

test('the per-day table: newest first, counts that link, p50 and p95', () => {
  const rows = [...document.querySelectorAll('[data-per-day-body] tr')];
  assert.deepEqual(rows.map((r) => [...r.children].map((c) => c.textContent)),
    [[today, '4', '3', '1', '250 ms', '—'], [yesterday, '2', '1', '0', '1.5 s', '12 s']]);
  const failed = rows[0].querySelector(`a[aria-label="1 failed run on ${today}"]`);
  assert.equal(failed.getAttribute('href'), dayLink(today, 'failed'));
  assert.equal(rows[1].children[3].querySelector('a'), null, 'no link to nothing');
});

test('charts are drawn at their box width, again after a resize', async () => {
  assert.equal(widthOf({ clientWidth: 390.6 }), 390);
  assert.equal(widthOf({ clientWidth: 100 }), 240);
  assert.equal(widthOf(null), 640);
  const box = $('[data-chart="runs"]');
  Object.defineProperty(box, 'clientWidth', { value: 350, configurable: true });
  fire(globalThis.window, 'resize');
  await clock.tick(150);
  assert.equal(box.querySelector('svg').getAttribute('viewBox'), '0 0 350 220');
  assert.equal(server.sent('/ops/api/metrics/durations').length, 1, 'a resize fetches nothing');
});
