// The "last seen" store (offline.js) and the page side of the PWA (pwa.js), under /ops.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { installPage, load, settle } from './harness.mjs';

function row(id, status, name, summary, started = '2026-01-15T11:58:00Z', extra = '') {
  return `<tr data-run-id="${id}" data-status="${status}"${extra}>
    <td><span data-cell="status">${status}</span></td><td><a data-cell="link">${name}</a></td>
    <td data-cell="summary">${summary}</td>
    <td><time data-cell="started" datetime="${started}">x</time></td></tr>`;
}

const { window, document, clock, server, jsdomErrors } = installPage(`<header><span data-conn data-state="connecting">
  </span></header><main><div data-banner></div><table><tbody data-runs>
  ${row('r1', 'ok', 'deploy', 'shipped')}
  ${row('', 'unknown', '', '')}
  ${row('r-hidden', 'failed', 'hidden one', '', '', ' hidden')}
  </tbody></table></main>`, { base: '/ops', url: 'http://localhost/ops/?q=x' });
document.title = 'Runs · Control plane';
const registered = [];
Object.defineProperty(window.navigator, 'serviceWorker', { configurable: true, value: {
  register: (script, options) => {
    registered.push({ script, options });
    return Promise.resolve({});
  },
} });
const offline = await load('offline.js');
const { initPwa, reloadWhenReachable } = await load('pwa.js'); // runs initPwa() on this page once

test('the worker is registered once, from the mount point, with the mount point as scope', () => {
  assert.deepEqual(registered, [{ script: '/ops/sw.js', options: { scope: '/ops/' } }]);
});

test('a page of data is kept at load: its title, address, and visible runs', () => {
  const seen = offline.loadLastSeen();
  assert.equal(offline.storageKey(), 'controlplane.lastSeen:/ops');
  assert.equal(seen.title, 'Runs');
  assert.equal(seen.path, '/ops/?q=x');
  assert.equal(seen.savedAt, new Date(clock.now).toISOString());
  assert.deepEqual(seen.runs, [{ id: 'r1', status: 'ok', name: 'deploy', summary: 'shipped',
    started: '2026-01-15T11:58:00Z' }]);
});

test('a live update is kept again (at most twice a second), with its own time', async () => {
  const firstSaved = offline.loadLastSeen().savedAt;
  await clock.tick(10_000);
  document.querySelector('[data-runs]').insertAdjacentHTML('afterbegin',
    row('r2', 'running', 'test', 'live one'));
  await settle();
  assert.equal(offline.loadLastSeen().savedAt, firstSaved, 'not before the throttle');
  await clock.tick(500);
  const seen = offline.loadLastSeen();
  assert.equal(seen.savedAt, new Date(clock.now).toISOString());
  assert.deepEqual(seen.runs.map((r) => r.id), ['r2', 'r1']);
});

test('a banner (going offline) changes nothing kept: the time stays the data\'s', async () => {
  const before = offline.loadLastSeen().savedAt;
  document.querySelector('[data-banner]').textContent = 'Lost the live connection';
  await clock.tick(1000);
  assert.equal(offline.loadLastSeen().savedAt, before);
});

test('while the connection is live the same data is confirmed as seen later', async () => {
  const indicator = document.querySelector('[data-conn]');
  const before = offline.loadLastSeen().savedAt;
  indicator.dataset.state = 'offline';
  await clock.tick(30_000);
  assert.equal(offline.loadLastSeen().savedAt, before, 'offline: nothing new was seen');
  indicator.dataset.state = 'connected';
  await clock.tick(30_000);
  const confirmed = Date.parse(offline.loadLastSeen().savedAt);
  assert.ok(confirmed > Date.parse(before) && clock.now - confirmed < 30_000, 'confirmed lately');
  assert.equal(offline.live(), true);
});

test('at most 20 runs are kept', () => {
  const doc = new window.DOMParser().parseFromString(`<main><table>${Array.from({ length: 30 },
    (_, i) => row(`r${i}`, 'ok', 'n', 's')).join('')}</table></main>`, 'text/html');
  assert.equal(offline.snapshot(doc).runs.length, offline.MAX_RUNS);
});

test('error pages and the shell itself are not kept as last seen', () => {
  const before = localStorage.getItem(offline.storageKey());
  for (const markup of ['<main><section class="errorpage">404</section></main>',
    '<main><section data-offline-shell></section></main>']) {
    const doc = new window.DOMParser().parseFromString(markup, 'text/html');
    assert.equal(offline.worthRemembering(doc), false);
    offline.rememberPage(doc)();
  }
  assert.equal(localStorage.getItem(offline.storageKey()), before);
});

test('what is stored is read back only when it is ours and dated', () => {
  const key = offline.storageKey();
  const kept = localStorage.getItem(key);
  for (const junk of ['not json', '{"runs": []}', '{"savedAt": "never"}', 'null']) {
    localStorage.setItem(key, junk);
    assert.equal(offline.loadLastSeen(), null, junk);
  }
  localStorage.setItem(key, '{"savedAt": "2026-01-15T12:00:00Z", "runs": "x"}');
  assert.deepEqual(offline.loadLastSeen().runs, []);
  localStorage.setItem(key, kept);
});

test('the headline says offline, when it was last seen and how long ago', () => {
  const now = Date.parse('2026-01-15T12:00:00Z');
  const seen = { savedAt: '2026-01-15T11:55:00Z', title: 'Runs', runs: [{}, {}], runStatus: null };
  assert.match(offline.headline(seen, now), /^Offline — last seen .+ \(5 min ago\): Runs, 2 runs$/);
  assert.match(offline.headline({ ...seen, runs: [], runStatus: 'failed', title: '',
    path: '/ops/runs/x' }, now), /\): \/ops\/runs\/x, status failed$/);
  assert.equal(offline.headline(null), 'Offline — nothing seen yet in this browser.');
  assert.equal(offline.ago('2026-01-15T11:59:30Z', now), 'just now');
  assert.equal(offline.ago('2026-01-15T09:00:00Z', now), '3 h ago');
  assert.equal(offline.ago('2026-01-12T12:00:00Z', now), '3 days ago');
});

const SHELL = `<section data-offline-shell><p data-last-seen-text></p>
  <p><time data-last-seen-time hidden></time></p><ul data-last-seen-runs hidden></ul></section>`;

test('the offline shell shows the last seen runs, labelled with their time, as text', () => {
  const doc = new window.DOMParser().parseFromString(SHELL, 'text/html');
  const section = doc.querySelector('[data-offline-shell]');
  const seen = { savedAt: '2026-01-15T11:55:00Z', title: 'Runs', runStatus: null,
    runs: [{ id: 'r1', status: 'ok', name: '<b>deploy</b>', summary: 'shipped', started: '' }] };
  offline.renderLastSeen(section, seen, Date.parse('2026-01-15T12:00:00Z'));
  assert.match(section.querySelector('[data-last-seen-text]').textContent, /^Offline — last seen/);
  const when = section.querySelector('[data-last-seen-time]');
  assert.equal(when.hidden, false);
  assert.equal(when.getAttribute('datetime'), seen.savedAt);
  assert.match(when.textContent, /^Last seen data, as of .+; not current\.$/);
  const list = section.querySelector('[data-last-seen-runs]');
  assert.equal(list.hidden, false);
  assert.equal(list.querySelector('b'), null, 'names are text, never markup');
  assert.match(list.textContent, /ok <b>deploy<\/b> — shipped/);
});

test('with nothing kept the shell says so and shows no list', () => {
  localStorage.removeItem(offline.storageKey());
  const doc = new window.DOMParser().parseFromString(SHELL, 'text/html');
  initPwa(doc);
  assert.equal(doc.querySelector('[data-last-seen-text]').textContent,
    'Offline — nothing seen yet in this browser.');
  assert.equal(doc.querySelector('[data-last-seen-runs]').hidden, true);
  assert.equal(localStorage.getItem(offline.storageKey()), null, 'the shell keeps nothing');
});

test('the shell loads the asked-for page once the server answers again, not before', async () => {
  server.down = true;
  const timer = reloadWhenReachable(3000);
  await clock.tick(9000);
  const heads = server.requests.filter((r) => r.method === 'HEAD');
  assert.ok(heads.length >= 3, 'every 3 s');
  assert.ok(heads.every((r) => r.path === 'http://localhost/ops/?q=x'), 'the asked-for page');
  assert.deepEqual(jsdomErrors.filter((e) => e.includes('navigation')), [], 'no reload yet');
  server.down = false;
  await clock.tick(3000);
  assert.ok(jsdomErrors.some((e) => e.includes('navigation')), 'reloaded');
  clearInterval(timer);
});
