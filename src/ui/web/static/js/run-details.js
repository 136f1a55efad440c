// The run page's header and facts: status, summary, times, code ref, params, result, error.

import { setBadge } from './badge.js';
import { $, h, replaceChildren, runHref } from './dom.js';
import { formatDuration, formatFullTime, formatValue, runDuration } from './format.js';

function fact(term, ...value) {
  return h('div', { class: 'facts__row' }, h('dt', { text: term }), h('dd', {}, ...value));
}

function runLink(runId) {
  return h('a', { href: runHref(runId), class: 'mono', text: runId });
}

function codeRef(ref) {
  if (!ref || (!ref.commit && !ref.branch)) return '—';
  return [ref.commit ? h('code', { text: ref.commit.slice(0, 12), title: ref.commit }) : 'no commit',
    ref.branch ? ` on ${ref.branch}` : '', ref.dirty ? ' (uncommitted changes)' : ''];
}

/** A small object as a definition list; nested values as JSON text. */
export function valueList(object, emptyText) {
  const entries = Object.entries(object || {}).filter(([key]) => !key.startsWith('_'));
  if (!entries.length) return h('p', { class: 'muted', text: emptyText });
  return h('dl', { class: 'facts facts--compact' },
    entries.map(([key, value]) => fact(key, typeof value === 'object' && value !== null
      ? h('pre', { class: 'json', text: JSON.stringify(value, null, 2) })
      : formatValue(value))));
}

export function renderRun(root, run) {
  setBadge($('[data-run-status]', root), run.status);
  $('[data-run-subtype]', root).textContent = run.subtype || '';
  $('[data-run-summary]', root).textContent = run.summary || '';
  const actor = run.actor || {};
  const facts = [
    fact('Run id', h('span', { class: 'mono', text: run.run_id })),
    fact('Type', run.type || '—'),
    fact('Started', h('time', { datetime: run.started_at || '', text: formatFullTime(run.started_at) })),
    fact('Ended', run.ended_at
      ? h('time', { datetime: run.ended_at, text: formatFullTime(run.ended_at) }) : '—'),
    fact('Duration', h('span', { 'data-run-duration': '', text: formatDuration(runDuration(run)) })),
    fact('By', [actor.name, actor.kind && `(${actor.kind})`].filter(Boolean).join(' ') || '—'),
    fact('Host', run.host || '—'),
    fact('Code', codeRef(run.code_ref)),
  ];
  if (run.target && Object.keys(run.target).length) {
    facts.push(fact('Target', Object.entries(run.target)
      .map(([k, v]) => `${k}: ${formatValue(v)}`).join(', ')));
  }
  if (run.action) facts.push(fact('Action', h('code', { text: run.action })));
  if (run.rerun_of) facts.push(fact('Rerun of', runLink(run.rerun_of)));
  if (run.parent_run_id) facts.push(fact('Part of', runLink(run.parent_run_id)));
  for (const artifact of run.artifacts || []) {
    facts.push(fact('Artifact', h('code', { text: artifact.path || '' })));
  }
  replaceChildren($('[data-run-facts]', root), facts);

  const params = { ...(run.params || {}) };
  const secret = params._withheld_fields || [];
  const list = valueList(params, 'None.');
  const paramBox = replaceChildren($('[data-run-params]', root), list);
  if (secret.length) {
    paramBox.append(h('p', { class: 'muted small',
      text: `Not stored (secret): ${secret.join(', ')}.` }));
  }
  replaceChildren($('[data-run-result]', root),
    valueList(run.result, run.status === 'running' || run.status === 'queued' ? 'Not yet.' : 'None.'));

  const errorBox = $('[data-run-error]', root);
  errorBox.hidden = !run.error;
  if (run.error) {
    $('[data-run-error-code]', root).textContent = run.error.code || 'error';
    $('[data-run-error-message]', root).textContent = run.error.message || '';
  }
}

export function tickDuration(root, run) {
  const node = $('[data-run-duration]', root);
  if (node) node.textContent = formatDuration(runDuration(run));
}
