// The live layer and what every page has: live.js, connection.js, watch.js, chat.js, common.js.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FakeEventSource, fire, installPage, load, run, settle } from './harness.mjs';

const RUN_ID = '20260115T120000000Z-0000abcd';
const { document, window, clock, server } = installPage(`
  <header><span class="conn" data-conn><span data-conn-label>Connecting…</span></span>
    <input type="checkbox" data-autorefresh>
    <nav class="subnav"><ul><li><a aria-current="page" href="/i/x">x</a></li></ul></nav></header>
  <main><div class="banner" data-banner hidden><p data-banner-text></p>
    <button data-banner-close>Dismiss</button></div>
    <ol data-mentions></ol><p data-mentions-empty>None yet.</p></main>
  <div data-toasts></div>`, {
  routes: {
    '/api/chat?limit=50': { messages: [
      { message_id: 'm2', at: '2026-01-15T11:00:00Z', author: { name: 'bob' }, text: 'second' },
      { message_id: 'm1', at: '2026-01-15T10:00:00Z', author: {}, text: `see @run:${RUN_ID} and @run:20260101T000000000Z-ffffffff`,
        runs: { [RUN_ID]: { status: 'failed', subtype: 'deploy', summary: 'it broke' } } },
    ] },
    [`/api/chat?run_id=${RUN_ID}&limit=100`]: { messages: [
      { message_id: 'm1', at: '2026-01-15T10:00:00Z', text: 'mention', mentions: [RUN_ID] },
    ] },
  },
});
sessionStorage.setItem('scp.watched', '["watched-before-navigation"]');
const live = await load('live.js');
const { initCommon } = await load('common.js');
const { watchRun, noteRun } = await load('watch.js');
const { followMentions, messageBody } = await load('chat.js');

const states = [];
const seen = [];
live.onState((state) => states.push(state));
live.on('*', (envelope) => seen.push(envelope));
live.on('boom', () => { throw new Error('one failing listener does not stop the others'); });
const indicator = () => document.querySelector('[data-conn]');
const bannerShown = () => !document.querySelector('[data-banner]').hidden;
const toasts = () => [...document.querySelectorAll('[data-toasts] .toast')];

test('initCommon opens one EventSource and the indicator follows its state', () => {
  const originalError = console.error;
  console.error = () => {};
  initCommon();
  initCommon();
  console.error = originalError;
  assert.equal(FakeEventSource.all.length, 1);
  assert.equal(FakeEventSource.last.url, '/api/events');
  assert.equal(indicator().dataset.state, 'connecting');
  FakeEventSource.last.open();
  assert.equal(live.connectionState(), 'connected');
  assert.equal(indicator().className, 'conn conn--connected');
  assert.equal(document.querySelector('[data-conn-label]').textContent, 'Live');
  assert.ok(document.querySelector('.chatpanel'), 'the chat panel is on the page');
});

test('envelopes reach listeners of their type and *; bad data is dropped', () => {
  let typed = 0;
  const stop = live.on('run:started', () => { typed += 1; });
  const errors = [];
  const originalError = console.error;
  console.error = (...args) => errors.push(args);
  FakeEventSource.last.send({ type: 'run:started', run_id: 'r', data: {} }, '5-0');
  FakeEventSource.last.send('not json', '6-0');
  FakeEventSource.last.send({ type: 'boom', data: {} });
  console.error = originalError;
  stop();
  FakeEventSource.last.send({ type: 'run:started', run_id: 'r', data: {} }, '7-0');
  assert.equal(typed, 1);
  assert.deepEqual(seen.map((e) => e.type), ['run:started', 'boom', 'run:started']);
  assert.equal(errors.length, 1, 'the failing listener is reported once');
});

test('a drop reconnects with the last event id; many failures say offline in the banner', async () => {
  FakeEventSource.last.fail();
  assert.equal(live.connectionState(), 'reconnecting');
  for (let i = 0; i < 3; i += 1) FakeEventSource.last.fail();
  assert.equal(live.connectionState(), 'offline');
  assert.ok(bannerShown());
  FakeEventSource.last.fail({ closed: true });
  const before = FakeEventSource.all.length;
  await clock.tick(30000);
  assert.equal(FakeEventSource.all.length, before + 1);
  assert.equal(FakeEventSource.last.url, '/api/events?last_event_id=7-0');
  FakeEventSource.last.open();
  assert.equal(bannerShown(), false, 'connected again: the warning goes');
  assert.ok(!seen.some((e) => e.type === 'resync'), 'with an event id the server replays');
});

test('the browser going offline closes the stream; online reconnects', () => {
  const current = FakeEventSource.last;
  window.dispatchEvent(new window.Event('offline'));
  assert.equal(current.readyState, FakeEventSource.CLOSED);
  assert.equal(live.connectionState(), 'offline');
  window.dispatchEvent(new window.Event('online'));
  assert.notEqual(FakeEventSource.last, current);
  FakeEventSource.last.open();
  window.dispatchEvent(new window.Event('online'));
  assert.equal(live.connectionState(), 'connected');
});

test('watched runs toast once when they end, even if the end came first', async () => {
  watchRun('r-1');
  assert.deepEqual(JSON.parse(sessionStorage.getItem('scp.watched')),
    ['watched-before-navigation', 'r-1']);
  FakeEventSource.last.send({ type: 'run:completed', run_id: 'r-1',
    data: run({ run_id: 'r-1', status: 'failed' }) });
  FakeEventSource.last.send({ type: 'run:completed', run_id: 'r-2',
    data: run({ run_id: 'r-2', status: 'ok', subtype: null }) });
  assert.equal(toasts().length, 1);
  assert.equal(toasts()[0].className, 'toast toast--failed');
  watchRun('r-2');
  assert.match(toasts()[1].textContent, /Run ended: ok/);
  noteRun(run({ run_id: 'watched-before-navigation', status: 'cancelled' }));
  assert.equal(toasts()[2].className, 'toast toast--info');
  noteRun(run({ run_id: 'watched-before-navigation', status: 'cancelled' }));
  noteRun(null);
  assert.equal(toasts().length, 3);
  for (let i = 0; i < 205; i += 1) {
    FakeEventSource.last.send({ type: 'run:completed', data: run({ run_id: `bulk-${i}`, status: 'ok' }) });
  }
  watchRun('bulk-0');
  assert.equal(toasts().length, 3, 'only the 200 latest ends are remembered');
  await clock.tick(11000);
});

test('a connection that dropped before any event id asks listeners to resync', async () => {
  const fresh = await load('live.js?tab=2'); // a second tab's module state
  const envelopes = [];
  fresh.on('resync', (envelope) => envelopes.push(envelope));
  fresh.start();
  fresh.start();
  const source = FakeEventSource.last;
  source.open();
  source.fail({ closed: true });
  await clock.tick(2000);
  assert.equal(FakeEventSource.last.url, '/api/events', 'no id to resume from');
  FakeEventSource.last.open();
  assert.deepEqual(envelopes.map((e) => e.data.reason), ['no_event_id']);
  FakeEventSource.all.push(FakeEventSource.all.find((s) => s.url.includes('last_event_id=7-0')
    && s.readyState === FakeEventSource.OPEN)); // later tests talk to the first tab again
});

test('chat panel: opens, loads messages oldest first, mentions become links', async () => {
  const toggle = document.querySelector('.chatpanel__toggle');
  FakeEventSource.last.send({ type: 'chat:message', data: { message_id: 'early', at: '2026-01-15T09:00:00Z', text: 'x' } });
  assert.ok(toggle.classList.contains('chatpanel__toggle--unread'));
  fire(toggle, 'click');
  await settle();
  const items = [...document.querySelectorAll('.chatlog .chatmsg')];
  assert.deepEqual(items.map((li) => li.dataset.messageId), ['m1', 'm2']);
  const mention = items[0].querySelector('a.mention');
  assert.equal(mention.getAttribute('href'), `/runs/${RUN_ID}`);
  assert.match(mention.textContent, /failed deploy: it broke/);
  assert.match(items[0].textContent, /@run:20260101T000000000Z-ffffffff/, 'unknown ids stay text');
  assert.match(items[0].textContent, /someone/);
  assert.equal(document.activeElement, document.getElementById('chat-input'));
  FakeEventSource.last.send({ type: 'chat:message', data: { message_id: 'm3', at: '2026-01-15T12:00:00Z', text: 'live' } });
  FakeEventSource.last.send({ type: 'chat:message', data: { message_id: 'm3', at: '2026-01-15T12:00:00Z', text: 'live' } });
  assert.equal(document.querySelectorAll('.chatlog .chatmsg').length, 3, 'a repeat is shown once');
  fire(toggle, 'click');
  assert.equal(document.getElementById('chat-body').hidden, true);
});

test('chat: sending posts the text; a refusal gives it back with the reason', async () => {
  const input = document.getElementById('chat-input');
  const form = document.querySelector('.chatform');
  const status = document.querySelector('.chatform__status');
  fire(form, 'submit');
  assert.equal(status.textContent, 'Write a message first.');
  server.routes['POST /api/chat'] = ({ body }) => ({ message_id: 'm4', at: '2026-01-15T12:01:00Z', text: body.text });
  input.value = '  hello  ';
  fire(form, 'submit');
  assert.equal(input.value, '', 'cleared at once');
  await settle();
  assert.deepEqual(server.sent('/api/chat', 'POST').pop().body, { text: 'hello' });
  assert.match(document.querySelector('.chatlog').lastElementChild.textContent, /hello/);
  server.routes['POST /api/chat'] = { status: 422, body: { message: 'bad', fields: { text: 'Too long.' } } };
  input.value = 'x'.repeat(10);
  fire(form, 'submit');
  await settle();
  assert.equal(input.value, 'x'.repeat(10));
  assert.equal(status.textContent, 'Too long.');
});

test('chat: @run: autocomplete with arrows, Enter and Escape', async () => {
  const input = document.getElementById('chat-input');
  const list = document.getElementById('chat-suggestions');
  const other = '20260114T080000000Z-11112222';
  server.routes['/api/runs/search?q=2026&limit=8'] = { runs: [
    run({ status: 'ok' }), run({ run_id: other, subtype: 'build', summary: null })] };
  server.routes['/api/runs/search?q=zzz&limit=8'] = { status: 500, body: {} };
  input.value = 'look at @run:2026';
  fire(input, 'input');
  await settle();
  assert.equal(list.hidden, false);
  assert.equal(input.getAttribute('aria-activedescendant'), 'chat-option-0');
  fire(input, 'keydown', { key: 'ArrowDown' });
  assert.equal(input.getAttribute('aria-activedescendant'), 'chat-option-1');
  fire(input, 'keydown', { key: 'ArrowDown' });
  fire(input, 'keydown', { key: 'ArrowUp' });
  fire(input, 'keydown', { key: 'ArrowUp' });
  fire(input, 'keydown', { key: 'ArrowUp' });
  const enter = fire(input, 'keydown', { key: 'Enter' });
  assert.equal(enter.defaultPrevented, true, 'Enter picks, it does not send');
  assert.equal(input.value, `look at @run:${other} `);
  assert.equal(list.hidden, true);
  input.value = '@run:zzz';
  fire(input, 'input');
  await settle();
  assert.equal(list.textContent, 'No run matches');
  fire(input, 'keydown', { key: 'ArrowDown' });
  fire(input, 'keydown', { key: 'Escape' });
  assert.equal(list.hidden, true);
  fire(input, 'keydown', { key: 'ArrowDown' });
  input.value = '@run:2026';
  fire(input, 'input');
  await settle();
  fire(list.querySelector('li'), 'mousedown');
  assert.equal(input.value, `@run:${RUN_ID} `);
  input.value = 'no trigger';
  fire(input, 'input');
  fire(input, 'blur');
  await clock.tick(200);
  assert.equal(list.hidden, true);
});

test('a run page lists the messages that mention it, new ones live', async () => {
  const log = document.querySelector('[data-mentions]');
  const empty = document.querySelector('[data-mentions-empty]');
  await followMentions(log, empty, RUN_ID);
  assert.equal(log.children.length, 1);
  assert.equal(empty.hidden, true);
  FakeEventSource.last.send({ type: 'chat:message', data: { message_id: 'n1', at: '2026-01-15T12:00:00Z', text: 'elsewhere', mentions: [] } });
  FakeEventSource.last.send({ type: 'chat:message', data: { message_id: 'n2', at: '2026-01-15T12:00:00Z', text: 'here', mentions: [RUN_ID] } });
  assert.equal(log.children.length, 2);
  await followMentions(document.createElement('ol'), empty, 'no-such-run');
  assert.equal(messageBody({}).textContent, '');
});

test('@run: a blur just before the next mention (Send, then typing on) leaves its list open', async () => {
  const input = document.getElementById('chat-input');
  const list = document.getElementById('chat-suggestions');
  fire(input, 'blur');
  input.focus();
  input.value = '@run:2026';
  fire(input, 'input');
  await settle();
  await clock.tick(200);
  assert.equal(list.hidden, false);
});
