// "/?group=pipeline" (pages/runs.js + runs-grouped.js): the rows are the server's render of
// the same view, fetched again (once per burst) when runs end; focus stays on its link.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FakeEventSource, installPage, load, run, settle } from './harness.mjs';

const KPI = (key) => `<p data-kpi="${key}"></p><p data-kpi-note="${key}"></p>`;
const rowsHtml = (rows) => `<tbody data-runs-grouped-body>${rows.map(([name, total]) =>
  `<tr data-pipeline="${name}"><th><a href="/?subtype=${name}">${name}</a></th>
   <td data-cell="total">${total}</td></tr>`).join('')}</tbody>`;
const PAGE = (rows) => `<main>
  <section data-kpis>${['total', 'success_rate', 'avg_duration_ms', 'last_status'].map(KPI).join('')}</section>
  <section data-operations><span data-ops-mode></span>
    <dd data-ops="running"></dd><dd data-ops="queued"></dd><dd data-ops="limit"></dd></section>
  <table data-runs-grouped>${rowsHtml(rows)}</table></main><div data-toasts></div>`;

let view = { status: 200, type: 'text/html', body: PAGE([['nightly', 3], ['lint', 2]]) };
const { document, clock, server } = installPage(PAGE([['nightly', 3], ['lint', 2]]), {
  url: 'http://localhost/?group=pipeline&actor=carol', routes: {
    '/api/metrics/summary?minutes=20160&actor=carol': { total: 5, ok: 4, failed: 1,
      success_rate: 0.8, avg_duration_ms: 1000, p95_duration_ms: 2000, last_status: 'ok' },
    '/api/executor': { running: [], queued: [], paused: false, limit: 2 },
    '/?group=pipeline&actor=carol': () => view,
  } });
await load('pages/runs.js');
await settle();
const $ = (selector) => document.querySelector(selector);
const totals = () => [...document.querySelectorAll('[data-runs-grouped-body] tr')]
  .map((tr) => [tr.dataset.pipeline, tr.querySelector('[data-cell="total"]').textContent]);
const send = (type, data) => FakeEventSource.last.send({ type, run_id: data.run_id, data });
const viewFetches = () => server.sent('/?group=pipeline').length;

test('the KPIs follow the filters of the URL, not a runs table', () => {
  assert.equal($('[data-kpi="total"]').textContent, '5');
  assert.equal(viewFetches(), 0);
});

test('a burst of ended runs refetches the view once and swaps its rows', async () => {
  view = { status: 200, type: 'text/html', body: PAGE([['nightly', 4], ['lint', 2], ['deploy', 1]]) };
  $('a[href="/?subtype=lint"]').focus();
  for (let n = 0; n < 5; n += 1) send('run:completed', run({ run_id: `r${n}`, status: 'ok' }));
  await clock.tick(499);
  assert.equal(viewFetches(), 0);
  await clock.tick(10);
  assert.equal(viewFetches(), 1);
  assert.deepEqual(totals(), [['nightly', '4'], ['lint', '2'], ['deploy', '1']]);
  assert.equal(document.activeElement.getAttribute('href'), '/?subtype=lint');
});

test('a page without the grouped rows (login ended, an error) leaves the rows as they are',
  async () => {
    view = { status: 401, type: 'text/html', body: '<p>log in</p>' };
    send('run:completed', run({ run_id: 'r9', status: 'ok' }));
    await clock.tick(600);
    view = { status: 200, type: 'text/html', body: '<p>no table here</p>' };
    send('run:completed', run({ run_id: 'r10', status: 'ok' }));
    await clock.tick(600);
    server.down = true;
    send('run:completed', run({ run_id: 'r11', status: 'ok' }));
    await clock.tick(600);
    server.down = false;
    assert.equal(viewFetches(), 4);
    assert.deepEqual(totals(), [['nightly', '4'], ['lint', '2'], ['deploy', '1']]);
  });

test('the view links follow filters the list applied without a reload', async () => {
  const { keepViewLinks } = await load('runs-grouped.js');
  const nav = document.createElement('nav');
  nav.innerHTML = '<a href="/">List</a> <a href="/?group=pipeline" data-group-pipeline>By pipeline</a>';
  keepViewLinks(nav, { q: '', actor: 'carol', status: 'failed' });
  assert.deepEqual([...nav.querySelectorAll('a')].map((a) => a.getAttribute('href')),
    ['/?actor=carol&status=failed', '/?group=pipeline&actor=carol&status=failed']);
  keepViewLinks(null, {});
});
