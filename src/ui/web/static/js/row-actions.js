// Cancel and Rerun in each row of the runs list. The server renders them as small
// same-origin forms (they work without JavaScript, src/ui/web/run_forms.py); here a
// submit becomes the JSON call the run page makes, the row stays (live events update
// it) and a refusal is shown next to the row's button.

import { api } from './api.js';
import { url } from './base.js';
import { hideBanner, showError } from './banner.js';
import { $, runHref } from './dom.js';
import { controlsFor, rerunAsked } from './run-controls.js';
import { toast } from './toast.js';
import { watchRun } from './watch.js';

const cancelling = new Set(); // run ids whose Cancel was sent and that have not ended yet

/** What a row's controls name: the run's summary, else its pipeline, else its id. */
export function runLabel(run) {
  return run.summary || run.subtype || run.run_id;
}

/** Show the controls *run* offers in its row *tr*, named after the run. */
export function fillRowControls(tr, run) {
  const shown = controlsFor(run);
  if (!shown.cancel) cancelling.delete(run.run_id);
  const id = encodeURIComponent(run.run_id);
  for (const [kind, name] of [['cancel', 'Cancel run'], ['rerun', 'Rerun']]) {
    const form = $(`[data-row-form="${kind}"]`, tr);
    if (!form) continue;
    form.hidden = !shown[kind];
    form.action = url(`/runs/${id}/${kind}`);
    const button = $('button', form);
    button.setAttribute('aria-label', `${name} ${runLabel(run)}`);
    if (kind === 'cancel') {
      button.disabled = cancelling.has(run.run_id);
      button.textContent = button.disabled ? 'Cancelling…' : 'Cancel';
    }
  }
}

async function cancel(run, tr, button) {
  cancelling.add(run.run_id);
  fillRowControls(tr, run);
  try {
    await api(`/api/runs/${encodeURIComponent(run.run_id)}/cancel`, { method: 'POST' });
    hideBanner(`row:${run.run_id}`);
  } catch (error) {
    cancelling.delete(run.run_id);
    fillRowControls(tr, run);
    showError(error, { source: `row:${run.run_id}`, near: button });
  }
}

// Busy is aria-disabled, not disabled: the dialog gives the focus back to this button.
async function rerun(run, button) {
  if (button.getAttribute('aria-disabled') === 'true') return;
  button.setAttribute('aria-disabled', 'true');
  const drainField = $('[data-confirm] [data-drain-field]'); // the page's dialog serves drain too
  if (drainField) drainField.hidden = true;
  try {
    const answer = await rerunAsked(run);
    if (answer) {
      hideBanner(`row:${run.run_id}`);
      watchRun(answer.run_id);
      toast(`Rerun of ${runLabel(run)} started.`, { link: { href: runHref(answer.run_id), text: 'Open it' } });
    }
  } catch (error) {
    showError(error, { source: `row:${run.run_id}`, near: button });
  } finally {
    button.removeAttribute('aria-disabled');
  }
}

/** Handle the rows' forms in *body*; *runOf(runId)* answers the row's run as last seen. */
export function initRowActions(body, runOf) {
  body.addEventListener('submit', (event) => {
    const form = event.target.closest('[data-row-form]');
    const tr = form && form.closest('tr[data-run-id]');
    const run = tr && runOf(tr.dataset.runId);
    if (!run) return; // not a row we know: let the form post
    event.preventDefault();
    const button = $('button', form);
    if (form.dataset.rowForm === 'cancel') cancel(run, tr, button);
    else rerun(run, button);
  });
}
