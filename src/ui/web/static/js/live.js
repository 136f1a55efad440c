// The tab's one live connection: an EventSource on /api/events, shared by every module.
//
// on(type, fn) receives envelopes {id, type, run_id, at, data} ('*' for all);
// onState(fn) receives 'connecting' | 'connected' | 'reconnecting' | 'offline' |
// 'logged-out'. On any error we reconnect ourselves with ?last_event_id= (so the server
// replays what was missed), backing off to at most 1 s: a restarted server is found within
// a second, and logins survive restarts. An error with the server up is asked about: a 401
// means the login really ended (logout, token changed), and we stop and say so.
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
const MAX_BACKOFF_MS = 1000; // DECISIONS §12: live reconnect backoff is capped at 1 s
let loginProblem = null; // {message} once the server said our login ended

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
  const delay = Math.min(MAX_BACKOFF_MS, 125 * 2 ** Math.min(failures, 4));
  retryTimer = setTimeout(connect, delay);
}

/** After a failed stream: is the server up and refusing our login? (401/403) */
async function loginEnded() {
  try {
    const response = await fetch(at('/api/executor'), {
      credentials: 'same-origin', headers: { Accept: 'application/json' }, cache: 'no-store',
    });
    if (response.status !== 401 && response.status !== 403) return null;
    let body = {};
    try {
      body = await response.json();
    } catch {
      body = {};
    }
    return { status: response.status, message: body.message || '' };
  } catch {
    return null; // the server is unreachable: keep reconnecting
  }
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
  source.addEventListener('error', async () => {
    const failed = source;
    failed.close(); // we reconnect ourselves: the browser's own retry waits longer than 1 s
    dropped = true;
    failures += 1;
    const down = failures > GIVE_UP_AFTER || !navigator.onLine;
    setState(down ? 'offline' : 'reconnecting');
    const ended = await loginEnded();
    if (failed !== source) return; // reconnected meanwhile ('online')
    if (ended) {
      loginProblem = ended;
      setState('logged-out');
      return;
    }
    scheduleReconnect();
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

/** What the server said when it refused our login ({status, message}), or null. */
export function loginRefusal() {
  return loginProblem;
}
