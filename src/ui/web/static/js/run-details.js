// The run page's header and facts, as the server rendered them (templates/controlplane/run.html):
// what changes while a run lives is updated in place; new rows come from its <template>s.

import { setBadge } from './badge.js';
import { $ } from './dom.js';
import { formatDuration, formatFullTime, formatValue, runDuration } from './format.js';

/** A copy of the page's <template data-template="name"> (markup lives in the templates). */
export function fromTemplate(name) {
  return $(`template[data-template="${name}"]`).content.firstElementChild.cloneNode(true);
}

function factRow(term, value) {
  const row = fromTemplate('fact');
  $('dt', row).textContent = term;
  $('dd', row).append(value);
  return row;
}

/** A small object as a definition list; nested values as JSON text. */
export function valueList(object, emptyText) {
  const entries = Object.entries(object || {}).filter(([key]) => !key.startsWith('_'));
  if (!entries.length) {
    const empty = fromTemplate('empty');
    empty.textContent = emptyText;
    return empty;
  }
  const list = document.createElement('dl');
  list.className = 'facts facts--compact';
  for (const [key, value] of entries) {
    if (typeof value === 'object' && value !== null) {
      const json = fromTemplate('json');
      json.textContent = JSON.stringify(value, null, 2);
      list.append(factRow(key, json));
    } else list.append(factRow(key, formatValue(value)));
  }
  return list;
}

function setTime(node, iso) {
  node.dateTime = iso || '';
  node.textContent = formatFullTime(iso);
}

export function renderRun(root, run) {
  setBadge($('[data-run-status]', root), run.status);
  $('[data-run-subtype]', root).textContent = run.subtype || '';
  $('[data-run-summary]', root).textContent = run.summary || '';
  setTime($('[data-run-started]', root), run.started_at);
  setTime($('[data-run-ended]', root), run.ended_at);
  tickDuration(root, run);
  $('[data-run-result]', root).replaceChildren(valueList(run.result,
    run.status === 'running' || run.status === 'queued' ? 'Not yet.' : 'None.'));

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
