// The tab's one live connection: an EventSource on /api/events, shared by every module.
//
// on(type, fn) receives envelopes {id, type, run_id, at, data} ('*' for all);
// onState(fn) receives 'connecting' | 'connected' | 'reconnecting' | 'offline'.
// The browser reconnects by itself (sending Last-Event-ID, so the server replays
// what was missed); when it gives up we reconnect with ?last_event_id= and back off.
// A 'resync' envelope means the replay was impossible: listeners reload their data.

import { url as at } from './base.js';

const listeners = new Map();
const stateListeners = new Set();
let source = null;
let state = 'connecting';
let lastId = null;
let failures = 0;
let retryTimer = null;
let dropped = false; // lost the connection since the last open
const GIVE_UP_AFTER = 3; // failed attempts in a row before we say 'offline'

function setState(next) {
  if (next === state) return;
  state = next;
  for (const fn of stateListeners) fn(state);
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

function scheduleReconnect() {
  clearTimeout(retryTimer);
  const delay = Math.min(30000, 1000 * 2 ** Math.min(failures, 5));
  retryTimer = setTimeout(connect, delay);
}

function connect() {
  clearTimeout(retryTimer);
  if (source) source.close();
  const query = lastId ? `?last_event_id=${encodeURIComponent(lastId)}` : '';
  source = new EventSource(at(`/api/events${query}`));
  source.addEventListener('open', () => {
    failures = 0;
    setState('connected');
    // Without an event id the server cannot replay what we missed: reload instead.
    if (dropped && !lastId) {
      dispatch({ type: 'resync', run_id: null, data: { reason: 'no_event_id' } });
    }
    dropped = false;
  });
  source.addEventListener('message', (event) => {
    let envelope;
    try {
      envelope = JSON.parse(event.data);
    } catch {
      return;
    }
    if (event.lastEventId) lastId = event.lastEventId;
    dispatch(envelope);
  });
  source.addEventListener('error', () => {
    dropped = true;
    failures += 1;
    const down = failures > GIVE_UP_AFTER || !navigator.onLine;
    setState(down ? 'offline' : 'reconnecting');
    if (source.readyState === EventSource.CLOSED) scheduleReconnect();
  });
}

/** Open the connection (once per tab). */
export function start() {
  if (source) return;
  connect();
  // The browser knows the network is gone: the stream is dead, reconnect when it is back.
  window.addEventListener('offline', () => {
    dropped = true;
    clearTimeout(retryTimer);
    source.close();
    setState('offline');
  });
  window.addEventListener('online', () => {
    if (state !== 'connected') connect();
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
