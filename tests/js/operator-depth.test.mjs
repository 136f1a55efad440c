// Issue 17's operator depth in the DOM: the metrics page's window picker and per-pipeline
// table (cloned from its <template>), and KPI cards that refetch on `metrics:update`.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FakeEventSource, fire, installPage, load, settle } from './harness.mjs';

const KPI = (key) => `<p data-kpi="${key}"></p><p data-kpi-note="${key}"></p>`;
const summary = {
  total: 3, ok: 2, failed: 1, success_rate: 0.6667, avg_duration_ms: 1500, p95_duration_ms: 2000,
  last_status: 'failed', per_day: {}, per_type: {}, window_minutes: 60,
  last_finished_at: '2026-12-06T10:00:00.000Z',
  pipelines: [{ subtype: 'ci:lint', total: 2, ok: 1, failed: 1, success_rate: 0.5,
    avg_duration_ms: 1000, last_status: 'failed', last_finished_at: '2026-12-06T10:00:00.000Z' }],
};
const { document, clock, server } = installPage(`
  <form data-window-form><select name="window"><option value="1h" selected>1h</option><option value="7d">7d</option></select>
    <button type="submit" data-window-apply>Show</button></form>
  <section data-kpis>${['total', 'success_rate', 'avg_duration_ms', 'last_status'].map(KPI).join('')}</section>
  <table><tbody data-pipelines-body><tr><td>server row</td></tr></tbody></table>
  <template data-template="pipeline-row"><tr><th data-cell="subtype"></th><td data-cell="total"></td>
    <td data-cell="ok"></td><td data-cell="failed"></td><td data-cell="rate"></td><td data-cell="avg"></td>
    <td><span class="badge" data-cell="last_status"></span></td><td><time data-cell="last_finished"></time></td></tr></template>
  <div data-charts data-days="1" data-minutes="60"><div data-chart="runs"></div><div data-chart="rate"></div></div>
  <table><tbody data-breakdown></tbody></table>`, {
  routes: { '/api/metrics/summary?minutes=60': () => summary },
});
await load('pages/metrics.js');
await settle();
const $ = (selector) => document.querySelector(selector);

test('the window picker applies on change; its button is for pages without JavaScript', () => {
  const form = $('[data-window-form]');
  assert.equal($('[data-window-apply]').hidden, true);
  let submitted = 0;
  form.submit = () => { submitted += 1; };
  fire(form, 'change');
  assert.equal(submitted, 1);
});

test('the per-pipeline table is drawn from the summary of the page\'s window', () => {
  assert.equal(server.sent('/api/metrics/summary?minutes=60').length, 1);
  const cells = [...$('[data-pipelines-body] tr').children].map((c) => c.textContent.trim());
  assert.deepEqual(cells.slice(0, 6), ['ci:lint', '2', '1', '1', '50.0 %', '1.0 s']);
  assert.equal($('[data-cell="last_status"]').textContent, 'failed');
  assert.equal($('[data-cell="last_finished"]').dateTime, '2026-12-06T10:00:00.000Z');
});

test('metrics:update refetches the figures (debounced); an empty window says so', async () => {
  summary.pipelines = [];
  summary.total = 4;
  FakeEventSource.last.open();
  FakeEventSource.last.send({ type: 'metrics:update', run_id: null, data: {} });
  FakeEventSource.last.send({ type: 'metrics:update', run_id: null, data: {} });
  await clock.tick(500);
  assert.equal(server.sent('/api/metrics/summary?minutes=60').length, 2);
  assert.equal($('[data-kpi="total"]').textContent, '4');
  assert.equal($('[data-pipelines-body]').textContent, 'No runs in this period.');
});
