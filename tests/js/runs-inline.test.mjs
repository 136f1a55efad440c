// The runs list's row controls (row-actions.js, run-controls.js through runs-table.js):
// which of Cancel and Rerun a row shows, a submit becomes the JSON call (no form post), a
// destructive rerun asks first, a refusal lands next to the row's button; chat's run ids.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FakeEventSource, fire, installPage, load, run, settle } from './harness.mjs';

const FORMS = `<td><form data-row-form="cancel" method="post" hidden><button type="submit">Cancel</button></form>
  <form data-row-form="rerun" method="post" hidden><button type="submit">Rerun</button></form></td>`;
const PAGE = `
  <main><div class="banner" data-banner hidden><p data-banner-text></p><button data-banner-close>x</button></div>
  <section>
    <form data-filters><select name="status"><option value="">All</option></select>
      <button type="submit" data-filters-apply>Filter</button></form>
    <table data-runs><tbody data-runs-body></tbody></table>
    <p data-runs-empty>No runs yet.</p><p data-runs-loading hidden>Loading…</p>
    <a href="?before=x" data-load-more hidden>Load more</a>
  </section></main>
  <dialog data-confirm><p data-confirm-text></p><dl data-confirm-params></dl>
    <p data-drain-field>drain</p>
    <button data-confirm-cancel>Cancel</button><button data-confirm-ok>Yes</button></dialog>
  <template data-template="run-row"><tr data-run-id="" data-status="unknown">
    <td><span class="badge" data-cell="status"></span></td><td><a data-cell="link"></a></td>
    <td data-cell="summary"></td><td><time data-cell="started"></time></td>
    <td data-cell="duration"></td><td data-cell="actor"></td>${FORMS}</tr></template>
  <div data-toasts></div>`;

const id = (n) => `20260115T1200${String(n).padStart(2, '0')}000Z-0000abcd`;
const runs = [
  run({ run_id: id(9), status: 'running', summary: 'deploy the web tier' }),
  run({ run_id: id(8), status: 'ok', action: '/deploy', params: { env: 'prod', _withheld_fields: [] } }),
  run({ run_id: id(7), status: 'failed', summary: '', subtype: 'exec:sleep' }), // no action
  run({ run_id: id(6), status: 'ok', action: '/wipe', subtype: 'destroy:demo', params: { target: 'cache' } }),
];
let cancelAnswer = { run_id: id(9), outcome: 'cancelling' };
const { document, server, window } = installPage(PAGE, { routes: {
  '/api/runs/recent?limit=50': { runs, next_before: null },
  [`POST /api/runs/${id(9)}/cancel`]: () => cancelAnswer,
  [`POST /api/runs/${id(8)}/rerun`]: { status: 202, body: { run_id: id(10), status: 'queued' } },
  [`POST /api/runs/${id(6)}/rerun`]: (request) => (request.body.confirm
    ? { status: 202, body: { run_id: id(11), status: 'queued' } }
    : { status: 428, body: { error: 'confirmation_required', message: 'confirm' } }),
} });
// jsdom lays nothing out: a connected element counts as shown (banner.js asks its boxes).
window.Element.prototype.getClientRects = function getClientRects() {
  return this.isConnected ? [{ width: 1, height: 1 }] : [];
};
const { RunsTable } = await load('runs-table.js');
const { controlsFor } = await load('run-controls.js');
const { runIdBox, shortRunId, messageBody } = await load('chat.js');
const live = await load('live.js');
const table = new RunsTable(document.querySelector('section'));
table.start();
live.start();
await settle();
FakeEventSource.last.open();
const row = (n) => document.querySelector(`tr[data-run-id="${id(n)}"]`);
const form = (n, kind) => row(n).querySelector(`[data-row-form="${kind}"]`);
const button = (n, kind) => form(n, kind).querySelector('button');
const send = (type, data) => FakeEventSource.last.send({ type, run_id: data.run_id, data });

test('the run page\'s rule: Cancel in flight, Rerun once ended if an action started it', () => {
  assert.deepEqual(controlsFor({ status: 'queued' }), { cancel: true, rerun: false });
  assert.deepEqual(controlsFor({ status: 'ok', action: '/a' }), { cancel: false, rerun: true });
  assert.deepEqual(controlsFor({ status: 'cancelled' }), { cancel: false, rerun: false });
});

test('each row shows the control its run offers, named after the run, posting to its own URL', () => {
  assert.equal(form(9, 'cancel').hidden, false);
  assert.equal(form(9, 'rerun').hidden, true);
  assert.equal(button(9, 'cancel').getAttribute('aria-label'), 'Cancel run deploy the web tier');
  assert.equal(form(9, 'cancel').getAttribute('action'), `/runs/${encodeURIComponent(id(9))}/cancel`);
  assert.equal(form(8, 'rerun').hidden, false);
  assert.equal(form(8, 'cancel').hidden, true);
  assert.equal(form(7, 'rerun').hidden, true); // nothing of ours to rerun
  assert.equal(button(7, 'rerun').getAttribute('aria-label'), 'Rerun exec:sleep');
});

test('Cancel posts the JSON call, waits as "Cancelling…", and the live event ends the row', async () => {
  const submit = fire(form(9, 'cancel'), 'submit');
  assert.equal(submit.defaultPrevented, true); // no form post: the page stays
  await settle();
  assert.equal(server.sent(`/api/runs/${id(9)}/cancel`, 'POST').length, 1);
  assert.equal(button(9, 'cancel').disabled, true);
  assert.equal(button(9, 'cancel').textContent, 'Cancelling…');
  send('run:completed', { ...runs[0], status: 'cancelled', ended_at: '2026-01-15T12:01:00Z' });
  assert.equal(form(9, 'cancel').hidden, true);
  assert.equal(row(9).dataset.status, 'cancelled');
});

test('a refused cancel is said next to the row\'s button, which works again', async () => {
  send('run:started', { ...runs[0], run_id: id(5), status: 'running' });
  cancelAnswer = null;
  server.routes[`POST /api/runs/${id(5)}/cancel`] = { status: 409, body: { error: 'conflict',
    message: `run ${id(5)} has already ended (ok): nothing to cancel` } };
  fire(form(5, 'cancel'), 'submit');
  await settle();
  const refusal = row(5).querySelector('[role="alert"]');
  assert.match(refusal.textContent, /already ended/);
  assert.equal(document.activeElement, refusal);
  assert.equal(button(5, 'cancel').disabled, false);
  assert.equal(document.querySelector('[data-banner]').hidden, true);
});

test('Rerun starts the new run at once and says so with a link to it', async () => {
  fire(form(8, 'rerun'), 'submit');
  await settle();
  assert.deepEqual(server.sent(`/api/runs/${id(8)}/rerun`, 'POST').map((r) => r.body), [{}]);
  const toast = document.querySelector('[data-toasts]');
  assert.match(toast.textContent, /Rerun of deploying started/);
  assert.equal(toast.querySelector('a').getAttribute('href'), `/runs/${id(10)}`);
  assert.equal(button(8, 'rerun').hasAttribute('aria-disabled'), false);
});

test('a destructive rerun asks in the dialog: Cancel sends nothing more, Yes confirms', async () => {
  const dialog = document.querySelector('[data-confirm]');
  fire(form(6, 'rerun'), 'submit');
  await settle();
  assert.equal(dialog.hasAttribute('open'), true);
  assert.match(dialog.textContent, /destroy:demo is destructive.*\/wipe/);
  assert.equal(dialog.querySelector('[data-drain-field]').hidden, true);
  fire(form(6, 'rerun'), 'submit'); // a second press while it asks does nothing
  document.querySelector('[data-confirm-cancel]').click();
  await settle();
  assert.deepEqual(server.sent(`/api/runs/${id(6)}/rerun`, 'POST').map((r) => r.body), [{}]);
  fire(form(6, 'rerun'), 'submit');
  await settle();
  document.querySelector('[data-confirm-ok]').click();
  await settle();
  assert.deepEqual(server.sent(`/api/runs/${id(6)}/rerun`, 'POST').map((r) => r.body),
    [{}, {}, { confirm: true }]);
});

test('a form of a row the table does not know is left to post', () => {
  const stray = document.createElement('tr');
  stray.dataset.runId = 'unknown';
  stray.innerHTML = FORMS;
  document.querySelector('[data-runs-body]').append(stray);
  const submit = fire(stray.querySelector('[data-row-form="cancel"]'), 'submit');
  assert.equal(submit.defaultPrevented, false);
  stray.remove();
});

test('chat shows a run id as one unbreakable box with the full id as its title', () => {
  assert.equal(shortRunId(id(9)), '…0000abcd');
  const box = runIdBox(id(9));
  assert.equal(box.className, 'runid');
  assert.equal(box.title, id(9));
  const body = messageBody({ text: `see @run:${id(8)} and @run:${id(1)}`,
    runs: { [id(8)]: { status: 'ok', subtype: 'deploy', summary: '' } } });
  const link = body.querySelector('a.mention');
  assert.equal(link.title, id(8));
  assert.match(link.textContent, /deploy: …0000abcd/);
  assert.equal(body.querySelectorAll('.runid')[1].textContent, id(1)); // unknown: whole id
});
