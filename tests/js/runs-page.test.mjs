// "/" (pages/runs.js): KPI cards (kpis.js), the operations card (operations.js) and the live
// runs table (runs-table.js), on the hooks of templates/controlplane/runs.html.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FakeEventSource, fire, installPage, load, run, settle } from './harness.mjs';

const KPI = (key) => `<p data-kpi="${key}"></p><p data-kpi-note="${key}"></p>`;
const PAGE = `
  <main><div class="banner" data-banner hidden><p data-banner-text></p><button data-banner-close>x</button></div>
  <section data-kpis>${['total', 'success_rate', 'avg_duration_ms', 'last_status'].map(KPI).join('')}</section>
  <section data-operations><span data-ops-mode></span>
    <dd data-ops="running"></dd><dd data-ops="queued"></dd><dd data-ops="limit"></dd>
    <div class="btnrow"><form method="post" action="/operations/pause"><button type="submit" data-ops-command="pause">Pause queue</button></form>
    <form method="post" action="/operations/resume"><button type="submit" data-ops-command="resume">Resume queue</button></form>
    <form method="post" action="/operations/drain"><button type="submit" data-ops-command="drain">Drain</button></form></div></section>
  <section>
    <form data-filters><select name="type"><option value="">All</option><option>action</option><option>check</option></select>
      <select name="status"><option value="">All</option><option>running</option><option>ok</option><option>failed</option></select>
      <button type="submit" data-filters-apply>Filter</button></form>
    <table data-runs><tbody data-runs-body><tr data-run-id="server-row"><td>rendered</td></tr></tbody></table>
    <p data-runs-empty>No runs yet.</p><p data-runs-loading hidden>Loading…</p>
    <a href="?before=x" data-load-more hidden>Load more</a>
  </section></main>
  <template data-template="run-row"><tr data-run-id="" data-status="unknown">
    <td><span class="badge" data-cell="status"></span></td><td><a data-cell="link"></a></td>
    <td data-cell="summary"></td><td><time data-cell="started"></time></td>
    <td data-cell="duration"></td><td data-cell="actor"></td></tr></template>
  <div data-toasts></div>`;

const id = (n) => `20260115T1200${String(n).padStart(2, '0')}000Z-0000abcd`;
const page1 = { runs: [run({ run_id: id(9), status: 'running' }), run({ run_id: id(8), status: 'ok', duration_ms: 1500 }),
  run({ run_id: id(7), status: 'failed', type: 'check', actor: null })], next_before: id(7) };
let executor = { running: ['a'], queued: [], paused: false, limit: 2, elsewhere: { running: ['a', 'b'], queued: ['c'] } };
const { document, window, clock, server } = installPage(PAGE, {
  url: 'http://localhost/?status=', routes: {
    '/api/metrics/summary?minutes=20160': { total: 1234, ok: 1000, failed: 34, success_rate: 0.967,
      avg_duration_ms: 2500, p95_duration_ms: 9000, last_status: 'failed' },
    '/api/executor': () => executor,
    '/api/runs/recent?limit=50': page1,
    [`/api/runs/recent?limit=50&before=${id(7)}`]: { runs: [run({ run_id: id(3), status: 'ok' })], next_before: null },
    '/api/runs/recent?limit=50&status=failed': { runs: [page1.runs[2]], next_before: null },
  } });
await load('pages/runs.js');
await settle();
const $ = (selector) => document.querySelector(selector);
const rowIds = () => [...$('[data-runs-body]').children].map((tr) => tr.dataset.runId);
const send = (type, data) => FakeEventSource.last.send({ type, run_id: data.run_id, data });

test('KPI cards show the summary in words', () => {
  assert.match($('[data-kpi="total"]').textContent, /^1.234$/);
  assert.match($('[data-kpi-note="total"]').textContent, /1.000 ok · 34 failed/);
  assert.equal($('[data-kpi="success_rate"]').textContent, '96.7 %');
  assert.equal($('[data-kpi="avg_duration_ms"]').textContent, '2.5 s');
  assert.equal($('[data-kpi-note="avg_duration_ms"]').textContent, '95 % under 9.0 s');
  assert.equal($('[data-kpi="last_status"] .badge').textContent, 'failed');
});

test('the table replaces the rendered rows with the fetched page, newest first', () => {
  assert.deepEqual(rowIds(), [id(9), id(8), id(7)]);
  const row = $(`[data-run-id="${id(8)}"]`);
  assert.equal(row.dataset.status, 'ok');
  assert.equal(row.querySelector('[data-cell="link"]').getAttribute('href'), `/runs/${id(8)}`);
  assert.equal(row.querySelector('[data-cell="duration"]').textContent, '1.5 s');
  assert.equal(row.querySelector('[data-cell="actor"]').textContent, 'ada (user)');
  assert.equal($(`[data-run-id="${id(7)}"] [data-cell="actor"]`).textContent, '');
  assert.equal($('[data-load-more]').hidden, false);
  assert.equal($('[data-runs-empty]').hidden, true);
  assert.equal($('[data-filters-apply]').hidden, true, 'a change applies at once');
});

test('live runs: new ones at the top, updates in place, never backwards, old ones wait for their page', () => {
  send('run:queued', run({ run_id: id(10), status: 'queued', started_at: null }));
  assert.deepEqual(rowIds(), [id(10), id(9), id(8), id(7)]);
  assert.ok($(`[data-run-id="${id(10)}"]`).classList.contains('row--new'));
  send('run:completed', run({ run_id: id(9), status: 'ok', duration_ms: 61000 }));
  send('run:started', run({ run_id: id(9), status: 'running' }));
  assert.equal($(`[data-run-id="${id(9)}"]`).dataset.status, 'ok');
  send('run:started', run({ run_id: id(1), status: 'running' }));
  assert.ok(!rowIds().includes(id(1)), 'older than every shown row: not loaded yet');
  send('run:started', {});
});

test('running rows tick every second', async () => {
  send('run:started', run({ run_id: id(10), status: 'running', started_at: new Date(Date.now() - 5000).toISOString() }));
  await clock.tick(1000);
  assert.equal($(`[data-run-id="${id(10)}"] [data-cell="duration"]`).textContent, '6.0 s');
});

test('Load more appends the next page and hides itself at the end', async () => {
  fire($('[data-load-more]'), 'click');
  await settle();
  assert.deepEqual(rowIds().slice(-2), [id(7), id(3)]);
  assert.equal($('[data-load-more]').hidden, true);
  fire($('[data-load-more]'), 'click');
});

test('a filter reloads, keeps the address, and drops rows that stop matching', async () => {
  const form = $('[data-filters]');
  form.elements.status.value = 'failed';
  fire(form, 'change');
  await settle();
  assert.deepEqual(rowIds(), [id(7)]);
  assert.equal(window.location.search, '?status=failed');
  send('run:started', run({ run_id: id(11), status: 'running' }));
  assert.deepEqual(rowIds(), [id(7)], 'a running run does not match failed');
  send('run:completed', run({ run_id: id(11), status: 'failed' }));
  assert.deepEqual(rowIds(), [id(11), id(7)]);
  const submit = fire(form, 'submit');
  assert.equal(submit.defaultPrevented, true);
  form.elements.status.value = 'ok';
  send('run:completed', run({ run_id: id(11), status: 'failed', summary: 'again' }));
  assert.deepEqual(rowIds(), [id(7)], 'the filter changed: the row goes');
});

test('a failed load says so in the banner and the rows stay', async () => {
  const form = $('[data-filters]');
  form.elements.status.value = 'running';
  fire(form, 'change');
  await settle();
  assert.match($('[data-banner-text]').textContent, /No \/api\/runs\/recent/);
  assert.equal($('[data-runs-loading]').hidden, true);
});

test('resync reloads; an answer to an older request is dropped', async () => {
  const form = $('[data-filters]');
  form.elements.status.value = '';
  fire(form, 'change');
  fire(form, 'change');
  await settle();
  assert.deepEqual(rowIds(), [id(9), id(8), id(7)]);
  const before = server.sent('/api/runs/recent').length;
  send('resync', {});
  await settle();
  assert.equal(server.sent('/api/runs/recent').length, before + 1);
});

test('operations: counts include other processes, buttons follow the paused state', () => {
  assert.equal($('[data-ops="running"]').textContent, '2');
  assert.equal($('[data-ops="running"]').dataset.elsewhere, '1');
  assert.match($('[data-ops="running"]').title, /1 in other processes/);
  assert.equal($('[data-ops="queued"]').textContent, '1');
  assert.equal($('[data-ops="limit"]').textContent, '2');
  assert.equal($('[data-ops-mode]').textContent, 'accepting runs');
  assert.equal($('[data-ops-command="resume"]').disabled, true);
  send('executor:state', { running: [], queued: [], paused: true, limit: 2 });
  assert.equal($('[data-ops-mode]').textContent, 'paused');
  assert.equal($('[data-ops-command="pause"]').disabled, true);
  assert.equal($('[data-ops="running"]').textContent, '2', 'the journal still counts the others');
});

let formPosts = 0; // each command button is its form's submit (the card works without JS)
document.addEventListener('submit', (event) => {
  if (!event.target.matches('form[action^="/operations/"]')) return;
  formPosts += 1;
  event.preventDefault();
});

test('operations: Drain posts its timeout and toasts what is still running', async () => {
  executor = { running: ['a'], queued: [], paused: true, limit: 2, elsewhere: { running: [], queued: [] } };
  server.routes['POST /api/executor/drain'] = ({ body }) => ({ ...executor, timeout: body.timeout });
  const drain = $('[data-ops-command="drain"]');
  drain.disabled = false;
  fire(drain, 'click');
  await Promise.resolve(); // the command asks first (no dialog on this page: the default)
  assert.equal(drain.textContent, 'Draining…');
  await settle();
  assert.deepEqual(server.sent('/api/executor/drain', 'POST')[0].body, { timeout: 300 });
  assert.equal(drain.textContent, 'Drain');
  assert.match($('[data-toasts]').textContent, /1 run\(s\) still running, 0 still queued/);
  executor = { ...executor, running: [] };
  drain.disabled = false;
  fire(drain, 'click');
  await settle();
  assert.match($('[data-toasts]').textContent, /Queue drained/);
  assert.equal(formPosts, 0, 'with JS a command is the JSON call, not its form post');
});

test('operations: a refused command is shown; runs elsewhere reload the counts', async () => {
  server.routes['POST /api/executor/resume'] = { status: 409, body: { message: 'Not paused.' } };
  const resume = $('[data-ops-command="resume"]');
  resume.disabled = false;
  fire(resume, 'click');
  await settle();
  assert.match(document.body.textContent, /Not paused\./);
  assert.equal(formPosts, 0);
  const before = server.sent('/api/executor').length;
  send('run:started', run({ run_id: id(12) }));
  send('run:completed', run({ run_id: id(12), status: 'ok' }));
  await clock.tick(100);
  assert.equal(server.sent('/api/executor').length, before + 1, 'a burst reloads once');
  executor = null;
  server.routes['/api/executor'] = { status: 503, body: { message: 'Executor down.' } };
  send('resync', {});
  await settle();
  assert.match($('[data-banner-text]').textContent, /Executor down\./);
});

test('the KPI figures reload once after a burst of run ends', async () => {
  const before = server.sent('/api/metrics/summary').length;
  server.routes['/api/metrics/summary?minutes=20160'] = { total: 0, ok: 0, failed: 0, success_rate: null,
    avg_duration_ms: null, p95_duration_ms: null, last_status: null };
  send('run:completed', run({ run_id: id(13), status: 'ok' }));
  send('ledger:synced', {});
  await clock.tick(500);
  assert.equal(server.sent('/api/metrics/summary').length, before + 1);
  assert.equal($('[data-kpi="last_status"]').textContent, '—');
  assert.equal($('[data-kpi-note="avg_duration_ms"]').textContent, '');
  server.routes['/api/metrics/summary?minutes=20160'] = { status: 500, body: {} };
  send('run:completed', run({ run_id: id(14), status: 'ok' }));
  await clock.tick(500);
  assert.equal($('[data-kpi="success_rate"]').textContent, '—', 'a failed reload keeps the cards');
});
