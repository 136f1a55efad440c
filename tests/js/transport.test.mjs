// The live transport state machine (live.js: WebSocket, then SSE, then polling, each resuming
// from the last id) and the burst coalescer (coalesce.js).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FakeEventSource, installPage, load, settle } from './harness.mjs';

class FakeWebSocket {
  static all = [];

  constructor(url) {
    this.url = url;
    this.listeners = {};
    this.closed = false;
    FakeWebSocket.all.push(this);
  }

  static get last() {
    return FakeWebSocket.all[FakeWebSocket.all.length - 1];
  }

  addEventListener(type, fn) {
    (this.listeners[type] ||= []).push(fn);
  }

  removeEventListener(type, fn) {
    this.listeners[type] = (this.listeners[type] || []).filter((f) => f !== fn);
  }

  emit(type, event = {}) {
    for (const fn of this.listeners[type] || []) fn(event);
  }

  open() {
    this.emit('open');
  }

  send(envelope) {
    this.emit('message', { data: typeof envelope === 'string' ? envelope : JSON.stringify(envelope) });
  }

  fail() {
    this.emit('close');
  }

  close() {
    this.closed = true;
  }
}

const { document, clock, server } = installPage(`
  <header><span class="conn" data-conn role="status"><span data-conn-label>Connecting…</span></span></header>
  <main><div class="banner" data-banner hidden><p data-banner-text></p>
    <button data-banner-close>Dismiss</button></div></main>`, {
  routes: { '/api/executor': { state: 'running' } },
});
globalThis.WebSocket = FakeWebSocket;
const { createCoalescer, keyOf } = await load('coalesce.js');
const { initConnectionIndicator } = await load('connection.js');

let tabs = 0;
/** A fresh live.js (a tab of its own), started, with what its listeners saw. */
async function tab() {
  tabs += 1; // the first is the one connection.js follows
  const live = await load(tabs === 1 ? 'live.js' : `live.js?transport=${tabs}`);
  const seen = [];
  live.on('*', (envelope) => seen.push(envelope));
  live.start();
  return { live, seen };
}

const progress = (done, runId = 'r1') => ({ type: 'run:progress', run_id: runId, data: { done } });

test('coalescer: a burst of snapshots is one delivery at once and one at the frame end', () => {
  const frames = [];
  const delivered = [];
  const coalescer = createCoalescer((e) => delivered.push(e), { frame: (fn) => frames.push(fn) });
  for (let n = 0; n < 500; n += 1) coalescer.push(progress(n));
  coalescer.push({ type: 'run:completed', run_id: 'r1', data: {} });
  coalescer.push(progress(0, 'r2'));
  assert.deepEqual(delivered.map((e) => e.data.done), [0], 'the first at once, the rest wait');
  frames.shift()();
  assert.deepEqual(delivered.map((e) => [e.type, e.run_id, e.data.done]), [
    ['run:progress', 'r1', 0], ['run:progress', 'r1', 499], ['run:completed', 'r1', undefined],
    ['run:progress', 'r2', 0]], 'only the newest snapshot, in order');
  assert.deepEqual(coalescer.stats, { delivered: 4, superseded: 498, frames: 1 });
  coalescer.push(progress(500));
  assert.equal(delivered.length, 4, 'delivered in the last frame: waits for the next');
  frames.shift()();
  assert.equal(delivered.length, 5);
  frames.shift()(); // an idle frame: the keys may be delivered at once again
  coalescer.push(progress(501));
  coalescer.push({ type: 'chat:message', data: {} });
  assert.equal(delivered.length, 7, 'nothing waits: delivered at once');
  assert.equal(keyOf({ type: 'run:output', run_id: 'r1' }), null);
});

test('coalescer: a tab without animation frames is flushed by the timer', async () => {
  const delivered = [];
  const coalescer = createCoalescer((e) => delivered.push(e), { frame: () => {} });
  coalescer.push(progress(1));
  coalescer.push(progress(2));
  coalescer.push(progress(3));
  assert.equal(delivered.length, 1);
  await clock.tick(250);
  assert.deepEqual(delivered.map((e) => e.data.done), [1, 3]);
  coalescer.flush();
  await clock.tick(1000);
  assert.equal(delivered.length, 2);
});

test('the WebSocket comes first; the indicator names it; repeats are dropped', async () => {
  const { live, seen } = await tab();
  initConnectionIndicator();
  const indicator = document.querySelector('[data-conn]');
  assert.equal(live.transport(), 'ws');
  assert.equal(FakeWebSocket.last.url, 'ws://localhost/ws/events');
  FakeWebSocket.last.open();
  assert.equal(live.connectionState(), 'connected');
  assert.equal(indicator.dataset.transport, 'ws');
  assert.equal(indicator.title, 'Live updates over WebSocket');
  assert.equal(indicator.getAttribute('aria-label'), 'Live over WebSocket');
  FakeWebSocket.last.send({ id: 'e-1', type: 'chat:message', data: {} });
  FakeWebSocket.last.send({ id: 'e-2', type: 'chat:message', data: {} });
  FakeWebSocket.last.send({ id: 'e-2', type: 'chat:message', data: {} });
  FakeWebSocket.last.send('not json');
  assert.deepEqual(seen.map((e) => e.id), ['e-1', 'e-2']);
  const first = FakeWebSocket.last;
  first.fail(); // after messages: a drop, the same transport again, resuming
  await settle();
  assert.equal(live.connectionState(), 'reconnecting');
  await clock.tick(1000); // DECISIONS §12: at most 1 s
  assert.notEqual(FakeWebSocket.last, first);
  assert.equal(FakeWebSocket.last.url, 'ws://localhost/ws/events?last_event_id=e-2');
  FakeWebSocket.last.open();
  FakeWebSocket.last.send({ id: 'e-2', type: 'chat:message', data: {} });
  FakeWebSocket.last.send({ id: 'e-3', type: 'chat:message', data: {} });
  assert.deepEqual(seen.map((e) => e.id), ['e-1', 'e-2', 'e-3']);
  FakeWebSocket.last.close();
});

test('blocked WebSocket, then blocked SSE: polling, resuming; back up to the WebSocket later',
  async () => {
    const { live, seen } = await tab();
    FakeWebSocket.last.open();
    FakeWebSocket.last.send({ id: 'p-4', type: 'chat:message', data: {} });
    FakeWebSocket.last.fail();
    await settle();
    await clock.tick(1000);
    FakeWebSocket.last.fail(); // never opened, and the server answers: blocked on the way
    await settle();
    assert.equal(live.transport(), 'sse');
    assert.equal(FakeEventSource.last.url, '/api/events?last_event_id=p-4');
    server.routes['/api/events/poll?last_event_id=p-4'] = {
      events: [{ id: 'p-5', type: 'run:started', run_id: 'x', data: {} }],
      last_event_id: 'p-5', more: true };
    server.routes['/api/events/poll?last_event_id=p-5'] = { events: [], last_event_id: 'p-5',
      more: false };
    FakeEventSource.last.fail();
    await settle();
    assert.equal(live.transport(), 'poll');
    assert.equal(live.connectionState(), 'connected');
    await clock.tick(0);
    assert.deepEqual(seen.map((e) => e.id), ['p-4', 'p-5']);
    assert.equal(server.sent('/api/events/poll?last_event_id=p-5').length, 1, 'more: at once');
    await clock.tick(2000);
    assert.equal(server.sent('/api/events/poll?last_event_id=p-5').length, 2, 'then every 2 s');
    const sockets = FakeWebSocket.all.length;
    await clock.tick(28000);
    assert.equal(FakeWebSocket.all.length, sockets + 1, 'after 30 s the WebSocket is tried');
    FakeWebSocket.last.fail(); // still blocked: polling goes on
    await settle();
    assert.equal(live.transport(), 'poll');
    await clock.tick(30000);
    const candidate = FakeWebSocket.last;
    assert.equal(candidate.url, 'ws://localhost/ws/events?last_event_id=p-5');
    candidate.open();
    assert.equal(live.transport(), 'ws');
    const polls = server.sent('/api/events/poll').length;
    await clock.tick(10000);
    assert.equal(server.sent('/api/events/poll').length, polls, 'polling stopped');
    candidate.close();
  });

test('polling from no id starts where the server is; a failed poll retries within 1 s',
  async () => {
    const original = globalThis.WebSocket;
    const originalSource = globalThis.EventSource;
    globalThis.WebSocket = undefined;
    globalThis.EventSource = undefined;
    server.routes['/api/events/poll'] = { events: [], last_event_id: 'q-9', more: false };
    const { live } = await tab();
    globalThis.WebSocket = original;
    globalThis.EventSource = originalSource;
    await settle();
    assert.equal(live.transport(), 'poll');
    server.down = true;
    await clock.tick(2000);
    assert.equal(server.sent('/api/events/poll?last_event_id=q-9').length, 1);
    await settle();
    assert.equal(live.connectionState(), 'reconnecting');
    server.down = false;
    server.routes['/api/events/poll?last_event_id=q-9'] = { events: [], last_event_id: 'q-9' };
    await clock.tick(1000);
    assert.equal(live.connectionState(), 'connected');
    assert.equal(live.transport(), 'poll', 'the last transport: nowhere lower to go');
  });

test('a WebSocket that throws goes to SSE; an unreachable server keeps the transport',
  async () => {
    const original = globalThis.WebSocket;
    globalThis.WebSocket = class { constructor() { throw new Error('blocked by policy'); } };
    const { live } = await tab();
    globalThis.WebSocket = original;
    await settle();
    assert.equal(live.transport(), 'sse');
    FakeEventSource.last.open();
    server.down = true;
    FakeEventSource.last.fail();
    await settle();
    await clock.tick(1000);
    FakeEventSource.last.fail(); // never opened, but the server is down too: not blocked
    await settle();
    assert.equal(live.transport(), 'sse');
    server.down = false;
  });

test('a 401 after a failure ends the connection: logged out', async () => {
  const { live } = await tab();
  server.routes['/api/executor'] = { status: 401, body: { message: 'Log in again.' } };
  FakeWebSocket.last.fail();
  await settle();
  assert.equal(live.connectionState(), 'logged-out');
  assert.deepEqual(live.loginRefusal(), { status: 401, message: 'Log in again.' });
  assert.deepEqual(live.deliveryStats(), { delivered: 0, superseded: 0, frames: 0 });
});
