// Pure helpers and DOM builders: format.js, ansi.js, dom.js, badge.js, base.js (under a prefix).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { installPage, load } from './harness.mjs';

const { document } = installPage('<div id="root"></div>', { base: '/ops/' });
const format = await load('format.js');
const { ansiNodes, stripAnsi } = await load('ansi.js');
const dom = await load('dom.js');
const { badge, setBadge } = await load('badge.js');
const { basePath, url } = await load('base.js');

test('statuses: final ones and their rank never go backwards', () => {
  assert.equal(format.isFinal('ok'), true);
  assert.equal(format.isFinal('running'), false);
  assert.deepEqual(['queued', 'running', 'failed'].map(format.statusRank), [0, 1, 2]);
});

test('durations read as people say them', () => {
  assert.equal(format.formatDuration(null), '—');
  assert.equal(format.formatDuration(Number.NaN), '—');
  assert.equal(format.formatDuration(-5), '0 ms');
  assert.equal(format.formatDuration(250), '250 ms');
  assert.equal(format.formatDuration(1500), '1.5 s');
  assert.equal(format.formatDuration(42000), '42 s');
  assert.equal(format.formatDuration(125000), '2 min 05 s');
  assert.equal(format.formatDuration(3 * 3600000 + 7 * 60000), '3 h 07 min');
});

test('a run duration is the recorded one, or ticks from its start', () => {
  assert.equal(format.runDuration({ duration_ms: 12 }), 12);
  assert.equal(format.runDuration({ status: 'queued', started_at: '2026-01-01T00:00:00Z' }), null);
  assert.equal(format.runDuration({ status: 'running' }), null);
  assert.equal(format.runDuration({ status: 'running', started_at: 'garbage' }), null);
  const started = '2026-01-15T12:00:00Z';
  assert.equal(format.runDuration({ status: 'running', started_at: started },
    Date.parse(started) + 3000), 3000);
});

test('times the server wrote in UTC are shown in local time, as every other time', () => {
  const at = '2001-02-03T04:05:06+00:00';
  const holder = document.createElement('div');
  holder.innerHTML = `<p><time datetime="${at}">2001-02-03 04:05:06 UTC</time>
    <time datetime="${at}">already local</time><time datetime="">—</time></p>`;
  const [server, local, none] = holder.querySelectorAll('time');
  format.localizeTimes(holder);
  assert.equal(server.textContent, format.formatTime(at));
  assert.equal(server.title, format.formatFullTime(at));
  assert.doesNotMatch(server.textContent, /UTC/);
  assert.equal(local.textContent, 'already local'); // a script's own time is left as it is
  assert.equal(none.textContent, '—');
});

test('times, counts, percentages and values', () => {
  assert.equal(format.formatTime(null), '—');
  assert.equal(format.formatTime('not a time'), 'not a time');
  assert.match(format.formatTime(new Date().toISOString()), /\d\d.\d\d.\d\d/);
  assert.match(format.formatTime('2001-02-03T04:05:06Z'), /\d/);
  assert.equal(format.formatFullTime(''), '—');
  assert.equal(format.formatFullTime('nope'), 'nope');
  assert.match(format.formatFullTime('2001-02-03T04:05:06Z'), /2001/);
  assert.equal(format.formatPercent(null), '—');
  assert.equal(format.formatPercent(1), '100 %');
  assert.equal(format.formatPercent(0.1234), '12.3 %');
  assert.equal(format.formatCount(undefined), '—');
  assert.match(format.formatCount(1234567), /^1.234.567$/);
  assert.equal(format.formatValue(null), '—');
  assert.equal(format.formatValue('text'), 'text');
  assert.equal(format.formatValue({ a: [1] }), '{"a":[1]}');
});

test('ansi colours become classes on spans; text stays text', () => {
  const nodes = ansiNodes('plain \u001b[1;31mred <b>\u001b[0m back \u001b[4munder\u001b[24m');
  assert.equal(nodes[0].nodeType, 3);
  assert.equal(nodes[1].className, 'ansi-fg-red ansi-bold');
  assert.equal(nodes[1].textContent, 'red <b>');
  assert.equal(nodes[1].children.length, 0, 'markup in output is never parsed');
  assert.equal(nodes[2].nodeType, 3);
  assert.equal(nodes[3].className, 'ansi-underline');
});

test('ansi: 16, 256 and true colours, backgrounds, resets', () => {
  const [a] = ansiNodes('\u001b[92;104;2;3mx');
  assert.equal(a.className, 'ansi-fg-bright-green ansi-bg-bright-blue ansi-dim ansi-italic');
  const [b] = ansiNodes('\u001b[38;5;196;48;5;240mx');
  assert.equal(b.style.color, 'rgb(255, 0, 0)');
  assert.equal(b.style.backgroundColor, 'rgb(88, 88, 88)');
  const [c] = ansiNodes('\u001b[38;5;3;48;5;9mx');
  assert.equal(c.className, 'ansi-fg-yellow ansi-bg-bright-red');
  const [d] = ansiNodes('\u001b[38;2;300;20;30;44mx');
  assert.equal(d.style.color, 'rgb(255, 20, 30)');
  assert.equal(d.className, 'ansi-bg-blue');
  const [e] = ansiNodes('\u001b[31;41;1;3;4m\u001b[39;49;22;23;24mx');
  assert.equal(e.nodeType, 3, 'everything reset one by one');
  const [f] = ansiNodes('\u001b[33;43m\u001b[mx');
  assert.equal(f.nodeType, 3, 'an empty SGR resets');
});

test('ansi: other escapes are dropped; state carries over lines', () => {
  assert.equal(stripAnsi('\u001b]0;title\u0007a\u001b[2Kb\u001b[31mc'), 'abc');
  const nodes = ansiNodes('\u001b[2K\u001b]8;;http://x\u001b\\link');
  assert.equal(nodes.map((n) => n.textContent).join(''), 'link');
  const carry = { fg: 'green', bg: null, bold: false, dim: false, italic: false, underline: false,
    rgb: null, bgRgb: null };
  assert.equal(ansiNodes('next line', carry)[0].className, 'ansi-fg-green');
});

test('h() and svg() build nodes from props; text never becomes markup', () => {
  let clicked = 0;
  const link = dom.h('a', { href: '/x', class: 'c', text: '<i>no</i>', dataset: { runId: 'r' },
    hidden: true, title: null, disabled: false, onclick: () => { clicked += 1; } },
  ' tail', null, [1, [false, 'deep']]);
  assert.equal(link.outerHTML,
    '<a href="/x" class="c" data-run-id="r" hidden="">&lt;i&gt;no&lt;/i&gt; tail1deep</a>');
  link.click();
  assert.equal(clicked, 1);
  const circle = dom.svg('circle', { r: 4 });
  assert.equal(circle.namespaceURI, 'http://www.w3.org/2000/svg');
  const root = document.getElementById('root');
  dom.replaceChildren(root, dom.h('p', { text: 'one' }), dom.h('p', { text: 'two' }));
  assert.deepEqual(dom.$$('p', root).map((p) => p.textContent), ['one', 'two']);
  assert.equal(dom.$('#root p').textContent, 'one');
});

test('every URL of ours goes under the mount point', () => {
  assert.equal(basePath(), '/ops');
  assert.equal(url('/api/runs'), '/ops/api/runs');
  assert.equal(url('relative'), 'relative');
  assert.equal(dom.runHref('a/b'), '/ops/runs/a%2Fb');
});

test('a badge says its status in words and class', () => {
  const node = badge('failed');
  assert.equal(node.className, 'badge badge--failed');
  assert.equal(node.textContent, 'failed');
  setBadge(node, null);
  assert.equal(node.dataset.status, 'unknown');
});
