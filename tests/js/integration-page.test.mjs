// /integrations/<name> (pages/integration.js): the server-rendered action forms read back
// (action-form.js), the confirmation of a destructive action, the run followed live
// under its form (run-panel.js); the field hooks are those of templates/controlplane/_form.html.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FakeEventSource, fire, installPage, load, settle } from './harness.mjs';

const field = (name, kind, control, { hint = false, extra = '', error = '' } = {}) => `
  <div class="field" data-field="${name}" data-kind="${kind}" ${extra}>
    <label for="a-${name}">${name}</label>${control.replace('ID', `id="a-${name}" name="${name}"`)}
    ${hint ? `<p class="hint" id="a-${name}-hint">hint</p>` : ''}
    <p class="field-error" id="a-${name}-error"${error ? '' : ' hidden'}>${error}</p></div>`;

const DEPLOY = `<section class="card action" data-action="/api/deploy/<env>" data-title="Deploy">
  <form data-action-form novalidate>
    ${field('env', 'string', '<input ID type="text" value="prod">', { extra: 'data-in-url', hint: true })}
    ${field('replicas', 'integer', '<input ID type="number" value="3">')}
    ${field('ratio', 'number', '<input ID type="number" value="">')}
    ${field('tier', 'enum', `<select ID data-choices='["small", 2, null]'><option value="">—</option><option>small</option><option>2</option></select>`)}
    ${field('dry_run', 'boolean', '<input ID type="checkbox" checked>')}
    ${field('hosts', 'array', '<textarea ID>a\n b \n\n</textarea>', { extra: 'data-items="string"' })}
    ${field('ports', 'array', '<textarea ID>[80, "443"]</textarea>', { extra: 'data-items="integer"' })}
    ${field('labels', 'object', '<textarea ID>{"team": "ops"}</textarea>')}
    ${field('note', 'string', '<input ID type="text" value="">')}
    <p data-form-error hidden></p>
    <div class="btnrow"><button type="submit">Run now</button></div>
  </form><div data-run-panel hidden></div></section>`;
const WIPE = `<section class="card action" data-action="/api/wipe" data-title="Wipe" data-destructive>
  <form data-action-form novalidate>
    ${field('target', 'string', '<input ID type="text" value="cache">', { error: 'Was refused.' })}
    <p data-form-error hidden></p>
    <div class="btnrow"><button type="submit">Run now</button></div>
  </form><div data-run-panel hidden></div></section>`;
const PAGE = `<main><div class="banner" data-banner hidden><p data-banner-text></p><button data-banner-close>x</button></div>
  ${DEPLOY}${WIPE}</main>
  <dialog data-confirm><p data-confirm-text></p><dl data-confirm-params></dl>
    <button data-confirm-cancel>Cancel</button><button data-confirm-ok>Yes</button></dialog>
  <div data-toasts></div>`;

const RUN_ID = '20260115T120000000Z-00001111';
const { document, clock, server } = installPage(PAGE, { routes: {
  [`/api/runs/${RUN_ID}`]: { run: { run_id: RUN_ID, status: 'running', started_at: '2026-01-15T11:59:58Z' },
    events: [{ seq: 1, type: 'run:output', data: { line: 'starting' } }] },
} });
await load('pages/integration.js');
await load('pages/integrations.js');
const { ActionForm } = await load('action-form.js');
const [deployCard, wipeCard] = document.querySelectorAll('section[data-action]');
const $ = (selector, root = document) => root.querySelector(selector);

test('the rendered form has the controls the test expects', () => {
  assert.equal($('#a-tier', deployCard).tagName, 'SELECT');
  assert.equal($('#a-hosts', deployCard).tagName, 'TEXTAREA');
  assert.equal($('#a-dry_run', deployCard).type, 'checkbox');
});

test('a form is read back as typed JSON; the address takes its path parameter', () => {
  $('#a-tier', deployCard).value = '2';
  const { path, body } = new ActionForm(deployCard).read();
  assert.equal(path, '/api/deploy/prod');
  assert.deepEqual(body, { replicas: 3, tier: 2, dry_run: true, hosts: ['a', 'b'], ports: [80, 443],
    labels: { team: 'ops' } });
});

test('bad JSON and an empty path parameter are caught before sending', () => {
  $('#a-labels', deployCard).value = '{nope';
  $('#a-env', deployCard).value = '';
  $('#a-tier', deployCard).value = '';
  const form = new ActionForm(deployCard);
  assert.deepEqual(form.read().errors, { env: 'Required: it is part of the address.', labels: 'Enter valid JSON.' });
  fire($('form', deployCard), 'submit');
  assert.equal($('#a-labels', deployCard).getAttribute('aria-invalid'), 'true');
  assert.equal($('#a-env', deployCard).getAttribute('aria-describedby'), 'a-env-hint a-env-error');
  assert.equal(document.activeElement, $('#a-env', deployCard));
  assert.equal(server.requests.length, 0, 'nothing sent');
  $('#a-labels', deployCard).value = '';
  $('#a-env', deployCard).value = 'stage';
});

test('Run now posts in the background and follows the run under the form', async () => {
  server.routes['POST /api/deploy/stage'] = { status: 202, body: { run_id: RUN_ID } };
  fire($('form', deployCard), 'submit');
  assert.equal($('button', deployCard).textContent, 'Starting…');
  fire($('form', deployCard), 'submit'); // a double submit is one run
  await settle();
  const posts = server.sent('/api/deploy/stage', 'POST');
  assert.equal(posts.length, 1);
  assert.equal(posts[0].headers.Prefer, 'respond-async');
  assert.equal($('#a-labels', deployCard).hasAttribute('aria-invalid'), false, 'errors cleared');
  const panel = $('[data-run-panel]', deployCard);
  assert.equal(panel.hidden, false);
  assert.equal(panel.dataset.runId, RUN_ID);
  await clock.tick(1000);
  assert.equal($('.badge', panel).textContent, 'running');
  assert.equal($('.output', panel).textContent, 'starting');
  assert.match($('.muted', panel).textContent, /s$/);
  FakeEventSource.last.open();
  FakeEventSource.last.send({ type: 'run:completed', run_id: RUN_ID, data: { run_id: RUN_ID, status: 'ok', duration_ms: 2000, subtype: 'deploy' } });
  assert.equal($('.badge', panel).textContent, 'ok');
  assert.equal($('.muted', panel).textContent, '2.0 s');
  await clock.tick(1000);
  assert.match($('[data-toasts]').textContent, /deploy ended: ok/);
});

test('a 422 puts the server messages next to the fields, the rest above the button', async () => {
  server.routes['POST /api/deploy/stage'] = { status: 422, body: { message: 'invalid',
    fields: { 'replicas.0': 'Too many.', other: 'Unknown field.' } } };
  fire($('form', deployCard), 'submit');
  await settle();
  assert.equal($('#a-replicas-error', deployCard).textContent, 'Too many.');
  assert.equal($('[data-form-error]', deployCard).textContent, 'Check the highlighted fields. other: Unknown field.');
  server.routes['POST /api/deploy/stage'] = { status: 503, body: { message: 'Bus down.' } };
  fire($('form', deployCard), 'submit');
  await settle();
  assert.match(document.body.textContent, /Bus down\./);
});

test('errors the server rendered (a no-JS post answered 422) are marked and focused', () => {
  assert.equal($('#a-target', wipeCard).getAttribute('aria-invalid'), 'true');
});

test('a destructive action asks first; no sends nothing, yes sends confirm: true', async () => {
  server.routes['POST /api/wipe'] = { status: 202, body: { run_id: RUN_ID } };
  fire($('form', wipeCard), 'submit');
  await settle();
  const dialog = $('[data-confirm]');
  assert.equal(dialog.open, true);
  assert.match($('[data-confirm-text]').textContent, /"Wipe" is destructive/);
  fire($('[data-confirm-cancel]'), 'click');
  await settle();
  assert.equal(server.sent('/api/wipe').length, 0);
  fire($('form', wipeCard), 'submit');
  await settle();
  fire($('[data-confirm-ok]'), 'click');
  await settle();
  assert.deepEqual(server.sent('/api/wipe', 'POST')[0].body, { target: 'cache', confirm: true });
});

test('enum, number and list edge cases', () => {
  const card = document.createElement('section');
  card.dataset.action = '/api/x';
  card.innerHTML = `<form data-action-form><p data-form-error></p><button type="submit">Go</button>
    ${field('n', 'integer', '<input ID type="text" value="">')}
    ${field('t', 'enum', '<input ID value="free" data-choices=\'["a"]\'>')}
    ${field('l', 'array', '<textarea ID>["x"]</textarea>')}
    ${field('bad', 'array', '<textarea ID>[1,</textarea>')}
    ${field('k', 'enum', '<input ID value="1">')}</form>`;
  const form = new ActionForm(card);
  assert.deepEqual(form.read(), { errors: { bad: 'Enter valid JSON.' } });
  $('#a-bad', card).value = ' ';
  assert.deepEqual(form.read().body, { t: 'free', l: ['x'], k: '1' });
  Object.defineProperty($('#a-n', card), 'validity', { value: { badInput: true } });
  assert.deepEqual(form.read().errors, { n: 'Enter a number.' });
  form.showErrors(null);
  assert.equal($('[data-form-error]', card).textContent, 'Check the highlighted fields.');
});
