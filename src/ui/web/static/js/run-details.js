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

/** The failing tests' ids a failed run's result names (`failed_tests`), as pages.py. */
export function failingTests(run) {
  const names = run.status === 'failed' && run.result ? run.result.failed_tests : null;
  return Array.isArray(names) ? names.filter((name) => typeof name === 'string') : [];
}

/** One calm line for a cancelled run (never its traceback), as pages.py's cancel_note. */
export function cancelNote(run) {
  const first = String((run.error && run.error.message) || '').trim().split('\n')[0];
  return first.startsWith('cancelled') ? `This run was ${first}.`
    : 'This run was cancelled before it finished.';
}

/** A test id in <code>, free to break after each "/" and "::" (never inside a name), as the
 * server renders it (run.html); <wbr> is not copied with the text. */
export function breakableId(name) {
  const code = document.createElement('code');
  for (const part of String(name).split(/(?<=\/|::)/)) {
    if (code.firstChild) code.append(document.createElement('wbr'));
    code.append(part);
  }
  return code;
}

function renderOutcome(root, run) {
  const failures = $('[data-run-failures]', root);
  if (failures) {
    const names = failingTests(run);
    failures.hidden = names.length === 0;
    $('[data-run-failures-list]', failures).replaceChildren(...names.map((name) => {
      const item = document.createElement('li');
      item.append(breakableId(name));
      return item;
    }));
  }
  const cancelled = run.status === 'cancelled';
  const errorBox = $('[data-run-error]', root);
  errorBox.hidden = !run.error || cancelled;
  if (run.error) {
    $('[data-run-error-code]', root).textContent = run.error.code || 'error';
    $('[data-run-error-message]', root).textContent = run.error.message || '';
  }
  const note = $('[data-run-cancelled]', root);
  if (note) {
    note.hidden = !cancelled;
    if (cancelled) $('[data-run-cancelled-text]', note).textContent = cancelNote(run);
  }
}

export function renderRun(root, run) {
  setBadge($('[data-run-status]', root), run.status);
  $('[data-run-subtype]', root).textContent = run.subtype || '';
  $('[data-run-summary]', root).textContent = run.summary || '';
  const started = $('[data-run-started]', root);
  if (run.status === 'queued') {
    started.dateTime = '';
    started.textContent = 'not yet (queued)';
  } else setTime(started, run.started_at);
  setTime($('[data-run-ended]', root), run.ended_at);
  tickDuration(root, run);
  $('[data-run-result]', root).replaceChildren(valueList(run.result,
    run.status === 'running' || run.status === 'queued' ? 'Not yet.' : 'None.'));
  const empty = $('[data-output-empty]', root);
  if (empty) {
    empty.textContent = run.status === 'running' || run.status === 'queued'
      ? 'No output yet.' : 'This run printed nothing.';
  }
  renderOutcome(root, run);
}

export function tickDuration(root, run) {
  const node = $('[data-run-duration]', root);
  if (node) node.textContent = formatDuration(runDuration(run));
}
