// The tab's one live connection, shared by every module: a WebSocket on /ws/events where it
// gets through, else an EventSource on /api/events, else polling /api/events/poll.
//
// on(type, fn) receives envelopes {id, type, run_id, at, data} ('*' for all);
// onState(fn) receives 'connecting' | 'connected' | 'reconnecting' | 'offline' |
// 'logged-out' (and is called again when the transport changes: transport() names it).
// Every transport resumes with ?last_event_id= (the server replays what was missed). A
// transport that fails before it opens (a WebSocket: or closes before its first message)
// while the server answers is blocked on the way: we move to the next at once, and every
// UPGRADE_MS try the first again alongside (switching when it opens). Any other failure
// reconnects the same transport, backing off to at most 1 s: a restarted server is found
// within a second, and logins survive restarts. An error with the server up is asked about:
// a 401 means the login really ended (logout, token changed), and we stop and say so.
// A 'resync' envelope means the replay was impossible: listeners reload their data.
// Bursts are coalesced (coalesce.js): at most one repaint per element per frame.

import { url as at } from './base.js';
import { createCoalescer } from './coalesce.js';

const listeners = new Map();
const stateListeners = new Set();
let current = null; // the transport in use: {name, opened, messages, close}
let candidate = null; // the first transport, tried again while a fallback is in use
let levels = []; // the transports this browser has, best first
let level = 0;
let state = 'connecting';
let lastId = null;
let lastSeq = null; // [epoch, seq] of lastId: a repeat (replay racing live) is dropped
let failures = 0;
let retryTimer = null;
let upgradeTimer = null;
let dropped = false; // lost the connection since the last open
const GIVE_UP_AFTER = 3; // failed attempts in a row before we say 'offline'
const MAX_BACKOFF_MS = 1000; // DECISIONS §12: live reconnect backoff is capped at 1 s
export const POLL_MS = 2000; // polling: the wait between answers without 'more'
export const UPGRADE_MS = 30000; // on a fallback: how often the WebSocket is tried again
let loginProblem = null; // {message} once the server said our login ended

export const TRANSPORT_NAMES = { ws: 'WebSocket', sse: 'server-sent events', poll: 'polling' };

function notify() {
  for (const fn of stateListeners) fn(state);
}

function setState(next) {
  if (next === state) return;
  state = next;
  notify();
}

function dispatch(envelope) {
  for (const key of [envelope.type, '*']) {
    for (const fn of listeners.get(key) || []) {
      try {
        fn(envelope);
      } catch (error) {
        console.error('live listener failed', error);
      }
    }
  }
}

const coalescer = createCoalescer(dispatch);

function parseId(id) {
  const cut = id.lastIndexOf('-');
  const seq = Number(id.slice(cut + 1));
  return cut > 0 && Number.isInteger(seq) ? [id.slice(0, cut), seq] : null;
}

/** Note *id* as the last seen; false if it was seen already (same epoch, not newer). */
function remember(id, type) {
  const parsed = parseId(id);
  if (parsed && lastSeq && type !== 'resync' && parsed[0] === lastSeq[0]
    && parsed[1] <= lastSeq[1]) return false;
  lastId = id;
  lastSeq = parsed;
  return true;
}

function resumeQuery() {
  return lastId ? `?last_event_id=${encodeURIComponent(lastId)}` : '';
}

function parse(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

// -- the transports: open(handlers) returns close(); handlers are open, message, fail -----

function openWebSocket(handlers) {
  const address = new URL(at(`/ws/events${resumeQuery()}`), window.location.href);
  address.protocol = address.protocol === 'https:' ? 'wss:' : 'ws:';
  let socket;
  try {
    socket = new WebSocket(address.href);
  } catch {
    Promise.resolve().then(handlers.fail); // blocked here: fail once the caller holds it
    return () => {};
  }
  socket.addEventListener('open', handlers.open);
  socket.addEventListener('message', (event) => {
    const envelope = parse(event.data);
    if (envelope) handlers.message(envelope, envelope.id);
  });
  socket.addEventListener('close', handlers.fail);
  return () => {
    socket.removeEventListener('close', handlers.fail);
    socket.close();
  };
}

function openEventSource(handlers) {
  const source = new EventSource(at(`/api/events${resumeQuery()}`));
  source.addEventListener('open', handlers.open);
  source.addEventListener('message', (event) => {
    const envelope = parse(event.data);
    if (envelope) handlers.message(envelope, event.lastEventId);
  });
  source.addEventListener('error', () => {
    source.close(); // we reconnect ourselves: the browser's own retry waits longer than 1 s
    handlers.fail();
  });
  return () => source.close();
}

function openPolling(handlers) {
  let stopped = false;
  let timer = null;
  let opened = false;
  const poll = async () => {
    let body;
    try {
      const response = await fetch(at(`/api/events/poll${resumeQuery()}`), {
        credentials: 'same-origin', headers: { Accept: 'application/json' }, cache: 'no-store',
      });
      if (!response.ok) throw new Error(`poll answered ${response.status}`);
      body = await response.json();
    } catch {
      if (!stopped) handlers.fail();
      return;
    }
    if (stopped) return;
    if (!opened) {
      opened = true;
      handlers.open();
    }
    for (const envelope of body.events || []) handlers.message(envelope, envelope.id);
    if (body.last_event_id && !lastId) remember(body.last_event_id, 'position');
    timer = setTimeout(poll, body.more ? 0 : POLL_MS);
  };
  poll();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

const OPENERS = { ws: openWebSocket, sse: openEventSource, poll: openPolling };

function available() {
  const found = [];
  if (typeof WebSocket === 'function') found.push('ws');
  if (typeof EventSource === 'function') found.push('sse');
  found.push('poll');
  return found;
}

function open(name) {
  const transport = { name, opened: false, messages: 0, close: () => {} };
  transport.close = OPENERS[name]({
    open: () => onOpen(transport),
    message: (envelope, id) => onMessage(transport, envelope, id),
    fail: () => onFail(transport),
  });
  return transport;
}

// -- the state machine ------------------------------------------------------------------

function onOpen(transport) {
  if (transport === candidate) { // the first transport gets through again: switch to it
    candidate = null;
    coalescer.flush();
    current.close();
    current = transport;
    level = levels.indexOf(transport.name);
  }
  if (transport !== current) return;
  transport.opened = true;
  failures = 0;
  if (state === 'connected') notify(); // the transport changed
  setState('connected');
  // Without an event id the server cannot replay what we missed: reload instead.
  if (dropped && !lastId) {
    dispatch({ type: 'resync', run_id: null, data: { reason: 'no_event_id' } });
  }
  dropped = false;
  scheduleUpgrade();
}

function onMessage(transport, envelope, id) {
  if (transport !== current) return; // a candidate delivers once it is the one
  transport.messages += 1;
  if (id && !remember(id, envelope.type)) return;
  coalescer.push(envelope);
}

function scheduleReconnect() {
  clearTimeout(retryTimer);
  const delay = Math.min(MAX_BACKOFF_MS, 125 * 2 ** Math.min(failures, 4));
  retryTimer = setTimeout(connect, delay);
}

function scheduleUpgrade() {
  clearTimeout(upgradeTimer);
  if (level > 0 && !candidate) upgradeTimer = setTimeout(tryUpgrade, UPGRADE_MS);
}

function tryUpgrade() {
  if (state !== 'connected' || level === 0 || candidate) return;
  candidate = open(levels[0]);
}

async function onFail(transport) {
  if (transport === candidate) { // still blocked: stay where we are, try again later
    candidate = null;
    transport.close();
    scheduleUpgrade();
    return;
  }
  if (transport !== current) return;
  transport.close();
  coalescer.flush();
  dropped = true;
  failures += 1;
  const blocked = !transport.opened || (transport.name === 'ws' && !transport.messages);
  const down = failures > GIVE_UP_AFTER || !navigator.onLine;
  setState(down ? 'offline' : 'reconnecting');
  const answer = await askServer();
  if (transport !== current) return; // reconnected meanwhile ('online')
  if (answer.ended) {
    loginProblem = answer.ended;
    setState('logged-out');
    return;
  }
  if (blocked && answer.reachable && level < levels.length - 1) {
    level += 1; // the server answers but this transport does not get through
    connect();
    return;
  }
  scheduleReconnect();
}

/** After a failed transport: is the server reachable, and does it refuse our login? */
async function askServer() {
  let response;
  try {
    response = await fetch(at('/api/executor'), {
      credentials: 'same-origin', headers: { Accept: 'application/json' }, cache: 'no-store',
    });
  } catch {
    return { reachable: false, ended: null }; // the server is unreachable: keep reconnecting
  }
  if (response.status !== 401 && response.status !== 403) return { reachable: true, ended: null };
  let body = {};
  try {
    body = await response.json();
  } catch {
    body = {};
  }
  return { reachable: true, ended: { status: response.status, message: body.message || '' } };
}

function connect() {
  clearTimeout(retryTimer);
  if (current) current.close();
  current = open(levels[level]);
}

/** Open the connection (once per tab). */
export function start() {
  if (current) return;
  levels = available();
  level = 0;
  connect();
  // The browser knows the network is gone: the stream is dead, reconnect when it is back.
  window.addEventListener('offline', () => {
    dropped = true;
    clearTimeout(retryTimer);
    current.close();
    setState('offline');
  });
  window.addEventListener('online', () => {
    if (state !== 'connected' && state !== 'logged-out') connect();
  });
}

/** Listen to envelopes of one type ('*': all); returns the function that stops listening. */
export function on(type, fn) {
  if (!listeners.has(type)) listeners.set(type, new Set());
  listeners.get(type).add(fn);
  return () => listeners.get(type).delete(fn);
}

/** Listen to the connection state (called at once with the current one). */
export function onState(fn) {
  stateListeners.add(fn);
  fn(state);
  return () => stateListeners.delete(fn);
}

export function connectionState() {
  return state;
}

/** The transport in use: 'ws', 'sse' or 'poll' (null before start()). */
export function transport() {
  return current ? current.name : null;
}

/** What the coalescer did: {delivered, superseded, frames}. */
export function deliveryStats() {
  return { ...coalescer.stats };
}

/** What the server said when it refused our login ({status, message}), or null. */
export function loginRefusal() {
  return loginProblem;
}
