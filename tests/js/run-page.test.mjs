// The run page (pages/run.js) end to end in the DOM: run-details.js, run-follower.js, output.js.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FakeEventSource, fire, installPage, load, run, settle } from './harness.mjs';

const RUN_ID = '20260115T120000000Z-0000abcd';
const API = `/api/runs/${RUN_ID}`;
const line = (seq, text, stream = 'stdout') => ({ seq, type: 'run:output', data: { stream, line: text } });

// The hooks of templates/controlplane/run.html that the page's modules use.
const PAGE = `
  <main><div class="banner" data-banner hidden><p data-banner-text></p><button data-banner-close>x</button></div>
  <div data-run-page data-run-id="${RUN_ID}">
    <h1><span data-run-subtype>deploy</span> <span class="badge" data-run-status>queued</span></h1>
    <p data-run-summary></p>
    <form method="post" action="/runs/${RUN_ID}/cancel"><button type="submit" data-run-cancel hidden>Cancel run</button></form>
    <form method="post" action="/runs/${RUN_ID}/rerun"><button type="submit" data-run-rerun hidden>Rerun</button></form>
    <a href="${API}/log" data-run-log>Download raw log</a>
    <div data-run-progress hidden><progress></progress><span data-run-progress-text></span></div>
    <section data-run-error hidden><code data-run-error-code></code> <span data-run-error-message></span></section>
    <dl><time data-run-started></time><time data-run-ended></time><span data-run-duration></span></dl>
    <div data-run-result></div>
    <span data-output-follow></span><button data-output-jump hidden>Jump</button>
    <p data-output-note hidden></p>
    <div data-output><div class="line">server-rendered line</div></div>
    <p data-output-empty hidden>No output yet.</p>
    <ol data-run-mentions></ol><p data-run-mentions-empty>None.</p>
  </div></main>
  <dialog data-confirm><p data-confirm-text></p><dl data-confirm-params></dl>
    <button data-confirm-cancel>Cancel</button><button data-confirm-ok>Yes</button></dialog>
  <template data-template="fact"><div class="facts__row"><dt></dt><dd></dd></div></template>
  <template data-template="json"><pre class="json"></pre></template>
  <template data-template="empty"><p class="muted"></p></template>
  <div data-toasts></div>`;

let answerRun = run({ run_id: RUN_ID, status: 'running', action: 'POST /deploy', params: { env: 'prod', _secret: 'x' } });
const { document, clock, server, jsdomErrors } = installPage(PAGE, { routes: {
  [API]: () => ({ run: answerRun, events: [line(1, 'one'), line(2, '\u001b[31mtwo\u001b[0m', 'stderr')] }),
  [`/api/chat?run_id=${RUN_ID}&limit=100`]: { messages: [] },
} });
let releaseEvents;
server.routes[`${API}/events?after=2`] = () => new Promise((resolve) => {
  releaseEvents = () => resolve({ status: 'running', events: [line(3, 'three')] });
});
await load('pages/run.js');
const { OutputView } = await load('output.js');
const { breakableId, valueList } = await load('run-details.js');
const $ = (selector) => document.querySelector(selector);
const outputText = () => [...$('[data-output]').children].map((n) => n.textContent);

test('the fetched run and its output replace what the server rendered', async () => {
  await settle();
  await clock.tick(16);
  assert.equal($('[data-run-status]').textContent, 'running');
  assert.equal($('[data-run-summary]').textContent, 'deploying');
  assert.deepEqual(outputText(), ['one', 'two']);
  assert.equal($('[data-output] .line--stderr span').className, 'ansi-fg-red');
  assert.equal($('[data-run-cancel]').hidden, false);
  assert.equal($('[data-run-rerun]').hidden, true);
  assert.equal($('[data-run-result]').textContent, 'Not yet.');
  assert.equal(document.title, 'deploy running · Control plane');
});

test('while the live connection is down the page polls; live lines held meanwhile come after', async () => {
  await clock.tick(2000); // poll: GET events?after=2, held open
  assert.equal(server.sent(`${API}/events`).length, 1);
  FakeEventSource.last.open();
  FakeEventSource.last.send({ type: 'run:output', run_id: RUN_ID, data: { seq: 4, stream: 'stdout', line: 'four' } });
  FakeEventSource.last.send({ type: 'run:output', run_id: 'another-run', data: { seq: 9, line: 'not ours' } });
  releaseEvents();
  await settle();
  await clock.tick(16);
  assert.deepEqual(outputText(), ['one', 'two', 'three', 'four']);
  FakeEventSource.last.send({ type: 'run:output', run_id: RUN_ID, data: { seq: 4, stream: 'stdout', line: 'four' } });
  await clock.tick(16);
  assert.equal(outputText().length, 4, 'a repeated seq is shown once');
  await clock.tick(4000);
  assert.equal(server.sent(`${API}/events`).length, 1, 'connected: no polling');
});

test('progress and the ticking duration', async () => {
  FakeEventSource.last.send({ type: 'run:progress', run_id: RUN_ID, data: { done: 3, total: 4 } });
  assert.equal($('[data-run-progress]').hidden, false);
  assert.equal($('[data-run-progress-text]').textContent, '3 of 4');
  assert.equal($('progress').value, 3);
  await clock.tick(1000);
  assert.match($('[data-run-duration]').textContent, /min/);
});

let posted = 0; // form posts the page let through (each button is its form's submit)
document.addEventListener('submit', (event) => { posted += 1; event.preventDefault(); });

test('Cancel posts once and says so; a refusal shows and re-enables it', async () => {
  server.routes[`POST ${API}/cancel`] = { status: 409, body: { message: 'It has ended.' } };
  fire($('[data-run-cancel]'), 'click');
  assert.equal($('[data-run-cancel]').textContent, 'Cancelling…');
  await settle();
  assert.equal($('[data-run-cancel]').disabled, false);
  assert.match(document.body.textContent, /It has ended\./);
  server.routes[`POST ${API}/cancel`] = { status: 202, body: {} };
  fire($('[data-run-cancel]'), 'click');
  await settle();
  assert.equal(server.sent(`${API}/cancel`, 'POST').length, 2);
  assert.equal($('[data-run-cancel]').disabled, true);
  assert.equal(posted, 0, 'the button is its form\'s submit: with JS the JSON call goes instead');
});

test('the end of the run: facts, error, Rerun instead of Cancel, a toast', async () => {
  FakeEventSource.last.send({ type: 'run:completed', run_id: RUN_ID, data: {
    ...answerRun, status: 'failed', ended_at: '2026-01-15T12:01:00Z', duration_ms: 61000,
    result: { deployed: 2, details: { a: 1 }, _hidden: 1 }, error: { code: 'exit_1', message: 'boom' } } });
  FakeEventSource.last.send({ type: 'run:started', run_id: RUN_ID, data: { status: 'running' } });
  assert.equal($('[data-run-status]').textContent, 'failed', 'never moves backwards');
  assert.equal($('[data-run-cancel]').hidden, true);
  assert.equal($('[data-run-rerun]').hidden, false);
  assert.equal($('[data-run-error]').hidden, false);
  assert.equal($('[data-run-error-code]').textContent, 'exit_1');
  assert.equal($('[data-run-duration]').textContent, '1 min 01 s');
  assert.deepEqual([...$('[data-run-result]').querySelectorAll('dt')].map((n) => n.textContent),
    ['deployed', 'details']);
  assert.equal($('[data-run-result] pre').textContent, '{\n  "a": 1\n}');
  assert.match($('[data-toasts]').textContent, /deploy ended: failed/);
  FakeEventSource.last.send({ type: 'resync', data: {} });
  await settle();
});

test('Rerun of a destructive action asks first (428), then goes to the new run', async () => {
  answerRun = { ...answerRun, status: 'failed' };
  server.routes[`POST ${API}/rerun`] = ({ body }) => (body.confirm
    ? { status: 202, body: { run_id: 'new-run' } }
    : { status: 428, body: { message: 'Confirm first.' } });
  fire($('[data-run-rerun]'), 'click');
  await settle();
  const dialog = $('[data-confirm]');
  assert.equal(dialog.open, true);
  assert.deepEqual([...dialog.querySelectorAll('dt')].map((n) => n.textContent), ['env'],
    'parameters starting with _ are not shown');
  fire($('[data-confirm-ok]'), 'click');
  await settle();
  assert.deepEqual(server.sent(`${API}/rerun`).map((r) => r.body), [{}, { confirm: true }]);
  assert.ok(jsdomErrors.some((message) => message.includes('navigation')), 'went to the new run');
  fire($('[data-run-rerun]'), 'click');
  await settle();
  fire($('[data-confirm-cancel]'), 'click');
  await settle();
  assert.equal(server.sent(`${API}/rerun`).length, 3, 'no is no');
  assert.equal(posted, 0, 'no form post');
  server.routes[`POST ${API}/rerun`] = { status: 500, body: { message: 'Server broke.' } };
  fire($('[data-run-rerun]'), 'click');
  await settle();
  assert.match($('[data-banner-text]').textContent, /Server broke\./);
  assert.equal($('[data-run-rerun]').disabled, false);
});

test('output: at most maxLines in the DOM, a note with the raw log link, a truncation marker', async () => {
  const box = document.createElement('div');
  const note = document.createElement('p');
  const empty = document.createElement('p');
  document.body.append(box, note, empty);
  const view = new OutputView({ box, note, empty }, { maxLines: 3, logHref: '/log' });
  view.add([{ type: 'run:progress', data: {} }]);
  assert.equal(view.frame, null, 'nothing to draw');
  view.add([1, 2, 3, 4, 5].map((n) => line(n, `l${n}`)));
  await clock.tick(16);
  assert.deepEqual([...box.children].map((n) => n.textContent), ['l3', 'l4', 'l5']);
  assert.match(note.textContent, /^2 earlier lines hidden/);
  view.add([line(6, 'progress 10%\rprogress 90%\r'), { type: 'run:truncated', data: { omitted_events: 1000 } }]);
  await clock.tick(16);
  assert.equal(box.children[1].textContent, 'progress 90%');
  assert.match(box.lastChild.textContent, /1.000 events left out/);
  assert.equal(box.lastChild.querySelector('a').getAttribute('href'), '/log');
  assert.equal(empty.hidden, true);
  const plain = new OutputView({ box: document.createElement('div'), note: document.createElement('p') }, { maxLines: 1 });
  plain.add([line(1, 'a'), line(2, null), { type: 'run:truncated', data: {} }]);
  await clock.tick(16);
  plain.add([line(3, 'b')]);
  await clock.tick(16);
  assert.match(plain.note.textContent, /see the raw log/);
});

test('output: reading up pauses following; Jump resumes', async () => {
  const box = document.createElement('div');
  const jump = document.createElement('button');
  const follow = document.createElement('span');
  const view = new OutputView({ box, jump, follow });
  Object.defineProperty(box, 'scrollHeight', { value: 1000, configurable: true });
  Object.defineProperty(box, 'clientHeight', { value: 100, configurable: true });
  box.scrollTop = 100;
  fire(box, 'scroll');
  assert.equal(view.following, false);
  assert.equal(jump.hidden, false);
  assert.equal(follow.textContent, 'Paused while you read');
  fire(jump, 'click');
  assert.equal(view.following, true);
  assert.equal(box.dataset.following, 'yes');
});

test('a value list shows an empty text when there is nothing', () => {
  assert.equal(valueList(null, 'None.').textContent, 'None.');
});

test('a failing test id breaks after "/" and "::" only; its text is the id, markup escaped', () => {
  const code = breakableId('tests/unit/test_a.py::TestX::test_<b>');
  assert.equal(code.textContent, 'tests/unit/test_a.py::TestX::test_<b>');
  assert.equal(code.querySelectorAll('wbr').length, 4);
  assert.equal(code.innerHTML, 'tests/<wbr>unit/<wbr>test_a.py::<wbr>TestX::<wbr>test_&lt;b&gt;');
  assert.equal(breakableId('plain').innerHTML, 'plain');
});
