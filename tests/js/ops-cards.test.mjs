// The workers/processes card (processes.js) and the settings diagnostics banners
// (diagnostics.js), on the hooks of templates/controlplane/_processes.html and _diagnostics.html.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { fire, installPage, load, settle } from './harness.mjs';

const ROW = `<tr data-process="" data-state=""><td data-cell="kind"></td><td data-cell="pid"></td>
  <td data-cell="host"></td><td><span class="badge" data-cell="state"></span></td>
  <td data-cell="heartbeat"></td><td data-cell="running"></td><td data-cell="processed"></td>
  <td data-cell="failed"></td></tr>`;
const worker = { kind: 'worker', pid: 10, host: 'vm', state: 'alive', heartbeat_age: 2.4,
  last_activity_age: 2.4, running: 0, queued: 0, processed: 5, failed: 1, runs: [], this: true };
const exec = { kind: 'exec', pid: 22, host: 'vm', state: 'alive', heartbeat_age: null,
  last_activity_age: 75, running: 1, queued: 0, processed: null, failed: null,
  runs: [{ run_id: 'r1', subtype: 'test:x', status: 'running' }], this: false };
let lines = [worker, exec];
const { document, server, clock } = installPage(`
  <main><div class="banner" data-banner hidden><p data-banner-text></p><button data-banner-close>x</button></div>
  <section data-diagnostics>
    <div class="banner" data-diagnostic="no_remote"><p class="banner__text">No git remote.</p>
      <button data-diagnostic-dismiss hidden>Dismiss</button></div>
    <div class="banner" data-diagnostic="tools_missing"><p class="banner__text">No terraform.</p>
      <button data-diagnostic-dismiss hidden>Dismiss</button></div>
  </section>
  <section data-processes data-beat-seconds="5"><table><tbody data-processes-body><tr><td>server row</td></tr></tbody></table>
    <template data-template="process-row">${ROW}</template></section></main>`, {
  routes: { '/api/processes': () => ({ processes: lines }) },
});
const { ageText, heartbeatText, initProcesses } = await load('processes.js');
const { initDiagnostics } = await load('diagnostics.js');
const { refreshNow } = await load('autorefresh.js');
const $ = (selector) => document.querySelector(selector);
const card = initProcesses($('[data-processes]'));
initDiagnostics($('[data-diagnostics]'));
await settle();

test('ages read as the card says them', () => {
  assert.equal(ageText(null), '—');
  assert.equal(ageText(2.4), '2 s ago');
  assert.equal(ageText(75), '1 min ago');
  assert.equal(ageText(7300), '2 h ago');
  assert.deepEqual(heartbeatText(worker), { text: '2 s ago', title: '' });
  assert.match(heartbeatText(exec).title, /no heartbeat.*last output 1 min ago/);
});

test('a refresh reloads the card; rows come from the template', async () => {
  assert.equal($('[data-processes-body]').textContent.trim(), 'server row');
  refreshNow();
  await settle();
  const rows = card.rows();
  assert.equal(rows.length, 2);
  assert.equal(rows[0].querySelector('[data-cell="kind"]').textContent, 'worker (this)');
  assert.equal(rows[0].querySelector('[data-cell="processed"]').textContent, '5');
  assert.equal(rows[1].querySelector('[data-cell="state"]').className, 'badge badge--ok');
  assert.equal(rows[1].querySelector('[data-cell="processed"]').textContent, '—');
  assert.equal(rows[1].querySelector('[data-cell="heartbeat"]').textContent, 'none (pid checked)');
  assert.equal(rows[1].querySelector('[data-cell="running"]').title, 'test:x');
});

test('a gone process is shown gone; a reload failure goes to the banner', async () => {
  lines = [worker, { ...exec, state: 'gone', running: 0 }];
  await card.load();
  const gone = card.rows()[1];
  assert.equal(gone.dataset.state, 'gone');
  assert.equal(gone.querySelector('[data-cell="state"]').className, 'badge badge--interrupted');
  server.routes['/api/processes'] = { status: 500, body: { message: 'boom' } };
  await card.load();
  assert.equal($('[data-banner]').hidden, false);
  assert.equal(card.rows().length, 2); // what was shown stays
});

test('each banner can be dismissed for the session; the last one hides the section', () => {
  const buttons = document.querySelectorAll('[data-diagnostic-dismiss]');
  assert.equal(buttons[0].hidden, false);
  fire(buttons[0], 'click');
  assert.equal($('[data-diagnostic="no_remote"]').hidden, true);
  assert.equal($('[data-diagnostics]').hidden, false);
  assert.deepEqual(JSON.parse(sessionStorage.getItem('scp.dismissed-diagnostics')), ['No git remote.']);
  fire(buttons[1], 'click');
  assert.equal($('[data-diagnostics]').hidden, true);
});

test('a process that dies is shown so at the next beat, with no run to announce it', async () => {
  server.routes['/api/processes'] = () => ({ processes: lines });
  lines = [worker, exec];
  refreshNow();
  await settle();
  const state = () => card.rows()[1].querySelector('[data-cell="state"]').textContent;
  assert.equal(state(), 'alive');
  lines = [worker, { ...exec, state: 'gone' }]; // killed: no run started or ended
  const before = server.sent('/api/processes').length;
  await clock.tick(5000);
  assert.equal(server.sent('/api/processes').length, before + 1);
  assert.equal(state(), 'gone');
  Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true }); // a tab behind
  await clock.tick(15000);
  assert.equal(server.sent('/api/processes').length, before + 1);
  delete document.visibilityState;
});
