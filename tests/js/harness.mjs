// A browser for node --test: jsdom's window as the globals the dashboard's modules use, a
// manual clock, and fakes of the network APIs (fetch, EventSource) that tests answer.
// Each test file runs in its own process, so one page (installPage) per file.

import { JSDOM, VirtualConsole } from 'jsdom';

export const JS = new URL('../../src/ui/web/static/js/', import.meta.url);

/** Import a dashboard module (path below static/js) after the page is installed. */
export function load(path) {
  return import(new URL(path, JS).href);
}

const GLOBALS = ['window', 'document', 'navigator', 'location', 'history', 'Node', 'Element',
  'HTMLElement', 'Event', 'CustomEvent', 'KeyboardEvent', 'MouseEvent', 'FocusEvent',
  'DocumentFragment', 'localStorage', 'sessionStorage', 'getComputedStyle'];

function define(name, value) {
  Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
}

/** jsdom lacks these: a modal <dialog>, scrollIntoView and CSS.escape. */
function polyfill(window) {
  const dialog = window.HTMLDialogElement.prototype;
  dialog.showModal = function showModal() {
    this.setAttribute('open', '');
  };
  dialog.close = function close(value) {
    if (value !== undefined) this.returnValue = value;
    this.removeAttribute('open');
    this.dispatchEvent(new window.Event('close'));
  };
  window.HTMLElement.prototype.scrollIntoView = function scrollIntoView() {};
  window.CSS = { escape: (text) => String(text).replace(/["\\\]]/g, '\\$&') };
}

/** A clock that moves only when told: setTimeout, setInterval, requestAnimationFrame, Date.now. */
export class Clock {
  constructor(start = Date.parse('2026-01-15T12:00:00Z')) {
    this.now = start;
    this.timers = new Map();
    this.nextId = 1;
    const schedule = (fn, ms, repeat) => {
      const id = this.nextId++;
      this.timers.set(id, { fn, at: this.now + Math.max(0, ms || 0), every: repeat ? ms : null });
      return id;
    };
    const cancel = (id) => this.timers.delete(id);
    define('setTimeout', (fn, ms) => schedule(fn, ms, false));
    define('setInterval', (fn, ms) => schedule(fn, ms, true));
    define('clearTimeout', cancel);
    define('clearInterval', cancel);
    define('requestAnimationFrame', (fn) => schedule(() => fn(this.now), 16, false));
    define('cancelAnimationFrame', cancel);
    const realNow = Date.now;
    this.restoreNow = () => { Date.now = realNow; };
    Date.now = () => this.now;
  }

  /** Move time forward, running what falls due (and the microtasks each one queues). */
  async tick(ms) {
    const end = this.now + ms;
    for (;;) {
      const due = [...this.timers.entries()].filter(([, t]) => t.at <= end)
        .sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      const [id, timer] = due;
      this.now = Math.max(this.now, timer.at);
      if (timer.every === null) this.timers.delete(id);
      else timer.at = this.now + Math.max(1, timer.every);
      timer.fn();
      await settle();
    }
    this.now = end;
    await settle();
  }
}

/** Let pending promise chains (fetch answers, awaits) run to the end. */
export async function settle(rounds = 20) {
  for (let i = 0; i < rounds; i += 1) await new Promise((resolve) => setImmediate(resolve));
}

/**
 * The server, as fetch meets it: routes maps 'METHOD /path?query' (or '/path?query' for GET)
 * to a body, a {status: number, body} answer, or a function (request) => either. Unmatched: 404.
 * Every request is kept in `requests` ({method, path, headers, body}).
 */
export class FakeServer {
  constructor(routes = {}) {
    this.routes = { ...routes };
    this.requests = [];
    this.down = false;
    define('fetch', (input, init = {}) => this.fetch(String(input), init));
  }

  async fetch(path, init) {
    const method = init.method || 'GET';
    const request = { method, path, headers: init.headers || {},
      body: init.body === undefined ? undefined : JSON.parse(init.body) };
    this.requests.push(request);
    if (this.down) throw new TypeError('Failed to fetch');
    const route = this.routes[`${method} ${path}`] ?? (method === 'GET' ? this.routes[path] : undefined);
    let answer = typeof route === 'function' ? await route(request) : route;
    if (answer === undefined) answer = { status: 404, body: { error: 'not_found', message: `No ${path}.` } };
    if (typeof answer?.status !== 'number') answer = { status: 200, body: answer };
    const text = typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body ?? null);
    const empty = answer.status === 204 || answer.status === 304;
    return new Response(empty ? null : text, { status: answer.status,
      headers: { 'Content-Type': answer.type || 'application/json' } });
  }

  /** Requests whose path starts with prefix (and method, if given). */
  sent(prefix, method = null) {
    return this.requests.filter((r) => r.path.startsWith(prefix) && (!method || r.method === method));
  }
}

/** The browser's EventSource, driven by the test: open(), send(envelope, id), fail(). */
export class FakeEventSource {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 2;
  static all = [];

  constructor(url) {
    this.url = url;
    this.readyState = FakeEventSource.CONNECTING;
    this.listeners = {};
    FakeEventSource.all.push(this);
  }

  static get last() {
    return FakeEventSource.all[FakeEventSource.all.length - 1];
  }

  addEventListener(type, fn) {
    (this.listeners[type] ||= []).push(fn);
  }

  emit(type, event = {}) {
    for (const fn of this.listeners[type] || []) fn(event);
  }

  open() {
    this.readyState = FakeEventSource.OPEN;
    this.emit('open');
  }

  send(envelope, id = '') {
    this.emit('message', { data: typeof envelope === 'string' ? envelope : JSON.stringify(envelope),
      lastEventId: id });
  }

  /** A dropped connection: the browser retries (CONNECTING) or gives up (closed: true). */
  fail({ closed = false } = {}) {
    this.readyState = closed ? FakeEventSource.CLOSED : FakeEventSource.CONNECTING;
    this.emit('error');
  }

  close() {
    this.readyState = FakeEventSource.CLOSED;
  }
}

/**
 * Install a page: body is the markup inside <body>, base the mount point meta.
 * Returns {window, document, clock, server, jsdomErrors} (jsdomErrors: what jsdom reports,
 * e.g. "Not implemented: navigation" when a page calls location.assign).
 */
export function installPage(body = '', { base = '', csrf = 'token-1', url = 'http://localhost/',
  routes = {} } = {}) {
  const jsdomErrors = [];
  const virtualConsole = new VirtualConsole();
  virtualConsole.on('jsdomError', (error) => jsdomErrors.push(error.message));
  const dom = new JSDOM(`<!doctype html><html><head>
    <meta name="csrf-token" content="${csrf}"><meta name="controlplane-base" content="${base}">
    </head><body>${body}</body></html>`, { url, virtualConsole });
  const { window } = dom;
  polyfill(window);
  for (const name of GLOBALS) define(name, window[name]);
  define('CSS', window.CSS);
  define('EventSource', FakeEventSource);
  window.EventSource = FakeEventSource;
  const clock = new Clock();
  const server = new FakeServer(routes);
  return { window, document: window.document, clock, server, jsdomErrors };
}

/** Fire a DOM event of the window's own kind on node. */
export function fire(node, type, init = {}) {
  const { window } = globalThis;
  const Kind = type.startsWith('key') ? window.KeyboardEvent
    : (type.startsWith('mouse') || type === 'click') ? window.MouseEvent : window.Event;
  const event = new Kind(type, { bubbles: true, cancelable: true, ...init });
  node.dispatchEvent(event);
  return event;
}

/** A run record as the API answers it. */
export function run(overrides = {}) {
  return {
    run_id: '20260115T120000000Z-0000abcd', type: 'action', subtype: 'deploy',
    status: 'running', summary: 'deploying', started_at: '2026-01-15T11:59:00Z',
    actor: { name: 'ada', kind: 'user' }, ...overrides,
  };
}
