// api.js, banner.js, toast.js, help.js, autorefresh.js, dialog.js against a page's markup.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { fire, installPage, load } from './harness.mjs';

const { document, window, clock, server } = installPage(`
  <div class="banner" data-banner hidden><p data-banner-text></p>
    <button type="button" data-banner-close>Dismiss</button></div>
  <section data-help="runs" hidden><button data-help-dismiss>Got it</button></section>
  <button data-help-show="runs">How to use this page</button>
  <button data-help-show="missing">Nothing</button>
  <input type="checkbox" data-autorefresh>
  <button id="opener">Open</button>
  <dialog data-confirm><p data-confirm-text></p><dl data-confirm-params></dl>
    <button data-confirm-cancel>Cancel</button><button data-confirm-ok>Yes</button></dialog>
  <div data-toasts></div>`, { base: '/ops', csrf: 'tok-9' });
const { api, ApiError } = await load('api.js');
const banner = await load('banner.js');
const { toast } = await load('toast.js');
const { initHelp } = await load('help.js');
const autorefresh = await load('autorefresh.js');
const { confirmDialog } = await load('dialog.js');

const bannerBox = () => document.querySelector('[data-banner]');

test('GET sends no CSRF header; JSON comes back parsed', async () => {
  server.routes['/ops/api/runs'] = { runs: [1] };
  assert.deepEqual(await api('/api/runs'), { runs: [1] });
  const [request] = server.sent('/ops/api/runs');
  assert.equal(request.headers['X-CSRF-Token'], undefined);
  assert.equal(request.headers.Accept, 'application/json');
});

test('a write carries the page CSRF token, JSON body and Prefer: respond-async', async () => {
  server.routes['POST /ops/api/do'] = { status: 202, body: { run_id: 'r1' } };
  assert.deepEqual(await api('/api/do', { method: 'POST', body: { a: 1 }, async: true }),
    { run_id: 'r1' });
  const request = server.sent('/ops/api/do', 'POST').pop();
  assert.equal(request.headers['X-CSRF-Token'], 'tok-9');
  assert.equal(request.headers.Prefer, 'respond-async');
  assert.deepEqual(request.body, { a: 1 });
  server.routes['DELETE /ops/api/thing'] = { status: 204, body: '', type: 'text/plain' };
  assert.equal(await api('/api/thing', { method: 'DELETE' }), null);
});

test('refusals become ApiError with the server message, status and body', async () => {
  server.routes['POST /ops/api/bad'] = { status: 422, body: { message: 'name: required', fields: {} } };
  const error = await api('/api/bad', { method: 'POST', body: {} }).catch((e) => e);
  assert.ok(error instanceof ApiError);
  assert.equal(error.status, 422);
  assert.equal(error.message, 'name: required');
  server.routes['/ops/api/secret'] = { status: 403, body: {} };
  assert.match((await api('/api/secret').catch((e) => e)).message, /not logged in/);
  server.routes['/ops/api/broken'] = { status: 500, body: '{oops', type: 'application/json' };
  const broken = await api('/api/broken').catch((e) => e);
  assert.equal(broken.message, 'The server answered 500.');
  assert.deepEqual(broken.body, {});
});

test('an unreachable server is status 0 with what to check', async () => {
  server.down = true;
  const error = await api('/api/runs').catch((e) => e);
  server.down = false;
  assert.equal(error.status, 0);
  assert.match(error.message, /could not be reached/);
});

test('the banner shows one message; a source clears only its own', () => {
  banner.initBanner();
  banner.showBanner('first', { source: 'a', kind: 'warning' });
  assert.equal(bannerBox().hidden, false);
  assert.equal(bannerBox().className, 'banner banner--warning');
  banner.hideBanner('b');
  assert.equal(bannerBox().hidden, false, 'another source leaves it');
  banner.hideBanner('a');
  assert.equal(bannerBox().hidden, true);
  banner.showBanner('second');
  fire(document.querySelector('[data-banner-close]'), 'click');
  assert.equal(bannerBox().hidden, true);
});

test('showError: a run in progress links to it; anything else says its message', () => {
  banner.showError(new ApiError(409, { error: 'run_already_in_progress', run_id: 'r 1' },
    'deploy is already running'));
  const link = document.querySelector('[data-banner-text] a');
  assert.equal(link.getAttribute('href'), '/ops/runs/r%201');
  assert.match(document.querySelector('[data-banner-text]').textContent, /already running/i);
  banner.showError('plain words');
  assert.equal(document.querySelector('[data-banner-text]').textContent, 'plain words');
});

test('a background load that could not reach the server is cleared when the connection is back', () => {
  banner.showError(new ApiError(0, null, 'The server could not be reached.'), { source: 'processes' });
  assert.equal(bannerBox().hidden, false);
  banner.hideBanner('processes');
  assert.equal(bannerBox().hidden, false, 'the connection owns it, not the card');
  banner.hideBanner('connection');
  assert.equal(bannerBox().hidden, true);
});

test('toasts go away after 10 s, stay while hovered or focused, and on Dismiss', async () => {
  const item = toast('Run ended', { kind: 'ok', link: { href: '/r', text: 'Open' } });
  assert.equal(item.className, 'toast toast--ok');
  assert.equal(item.querySelector('a').textContent, 'Open');
  fire(item, 'mouseenter');
  await clock.tick(20000);
  assert.ok(item.isConnected, 'kept while pointed at');
  fire(item, 'mouseleave');
  fire(item, 'focusin');
  await clock.tick(20000);
  assert.ok(item.isConnected, 'kept while focused');
  fire(item, 'focusout');
  await clock.tick(10001);
  assert.equal(item.isConnected, false);
  const other = toast('again');
  fire(other.querySelector('button'), 'click');
  assert.equal(other.isConnected, false);
});

test('help cards: dismissed ones stay hidden; "How to use" shows them again', () => {
  localStorage.setItem('scp.help.runs', 'dismissed');
  initHelp();
  const card = document.querySelector('[data-help="runs"]');
  assert.equal(card.hidden, true);
  fire(document.querySelector('[data-help-show="runs"]'), 'click');
  assert.equal(card.hidden, false);
  assert.equal(localStorage.getItem('scp.help.runs'), null);
  assert.equal(document.activeElement, card.querySelector('[data-help-dismiss]'));
  fire(card.querySelector('[data-help-dismiss]'), 'click');
  assert.equal(card.hidden, true);
  assert.equal(localStorage.getItem('scp.help.runs'), 'dismissed');
  fire(document.querySelector('[data-help-show="missing"]'), 'click');
});

test('auto-refresh polls every 5 s while on, remembered across pages', async () => {
  localStorage.setItem('scp.autorefresh', 'on');
  let calls = 0;
  const stop = autorefresh.onRefresh(() => { calls += 1; });
  autorefresh.onRefresh(() => { throw new Error('a failing refresher is contained'); });
  autorefresh.initAutoRefresh();
  const box = document.querySelector('[data-autorefresh]');
  assert.equal(box.checked, true);
  assert.equal(autorefresh.isAutoRefreshOn(), true);
  await clock.tick(10000);
  assert.equal(calls, 2);
  box.checked = false;
  fire(box, 'change');
  assert.equal(localStorage.getItem('scp.autorefresh'), 'off');
  await clock.tick(10000);
  assert.equal(calls, 2);
  box.checked = true;
  fire(box, 'change');
  await clock.tick(0);
  assert.equal(calls, 3, 'turning it on refreshes at once');
  stop();
});

test('the confirmation dialog: Cancel has the focus and answers no; Yes answers yes', async () => {
  const opener = document.getElementById('opener');
  opener.focus();
  const dialog = document.querySelector('[data-confirm]');
  const no = confirmDialog({ text: 'Really?', params: { env: 'prod', n: { a: 1 } } });
  assert.equal(dialog.open, true);
  assert.equal(document.activeElement, dialog.querySelector('[data-confirm-cancel]'));
  assert.equal(dialog.querySelector('[data-confirm-text]').textContent, 'Really?');
  assert.deepEqual([...dialog.querySelectorAll('dd')].map((n) => n.textContent),
    ['prod', '{"a":1}']);
  fire(dialog.querySelector('[data-confirm-cancel]'), 'click');
  assert.equal(await no, false);
  assert.equal(document.activeElement, opener, 'focus goes back to the opener');
  const yes = confirmDialog({ text: 'Sure?', confirmLabel: 'Delete' });
  assert.equal(dialog.querySelector('[data-confirm-ok]').textContent, 'Delete');
  fire(dialog.querySelector('[data-confirm-ok]'), 'click');
  assert.equal(await yes, true);
});

test('Tab stays inside the dialog', async () => {
  const dialog = document.querySelector('[data-confirm]');
  const answer = confirmDialog({ text: 'Tab around' });
  const [cancel, ok] = [dialog.querySelector('[data-confirm-cancel]'), dialog.querySelector('[data-confirm-ok]')];
  ok.focus();
  assert.equal(fire(dialog.querySelector('[data-confirm-ok]'), 'keydown', { key: 'Tab' }).defaultPrevented, true);
  assert.equal(document.activeElement, cancel);
  fire(cancel, 'keydown', { key: 'Tab', shiftKey: true });
  assert.equal(document.activeElement, ok);
  assert.equal(fire(ok, 'keydown', { key: 'Enter' }).defaultPrevented, false);
  fire(ok, 'keydown', { key: 'Tab', shiftKey: true });
  window.document.querySelector('[data-confirm]').close('cancel');
  assert.equal(await answer, false);
});
