// /integrations/<name>: the server-rendered forms, enhanced: "Run now" posts JSON in the
// background, a destructive action asks in a dialog, the run is followed live under its form.

import { ActionForm } from '../action-form.js';
import { api } from '../api.js';
import { hideBanner, showError } from '../banner.js';
import { initCommon } from '../common.js';
import { confirmDialog } from '../dialog.js';
import { $$ } from '../dom.js';
import { RunPanel } from '../run-panel.js';
import { watchRun } from '../watch.js';

initCommon();

function enhance(card) {
  const form = new ActionForm(card);
  const runPanel = new RunPanel(card.querySelector('[data-run-panel]'));
  const destructive = 'destructive' in card.dataset;
  const confirmed = 'confirming' in form.form.dataset; // the confirmation page already asked
  const title = card.dataset.title;
  form.markRenderedErrors();

  let busy = false;
  form.form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (busy) return;
    form.clearErrors();
    const built = form.read();
    if (built.errors) {
      form.showErrors(built.errors);
      return;
    }
    if (destructive) {
      const yes = confirmed || await confirmDialog({
        text: `"${title}" is destructive. It runs ${form.path} with:`,
        params: built.body,
      });
      if (!yes) return;
      built.body.confirm = true;
    }
    busy = true;
    const label = form.button.textContent;
    form.button.setAttribute('aria-disabled', 'true');
    form.button.textContent = 'Starting…';
    try {
      const answer = await api(built.path, { method: 'POST', body: built.body, async: true });
      hideBanner('action');
      watchRun(answer.run_id);
      runPanel.show(answer.run_id, title);
    } catch (error) {
      if (error.status === 422 && error.body.fields) form.showErrors(error.body.fields);
      else showError(error, { source: 'action' });
    } finally {
      busy = false;
      form.button.removeAttribute('aria-disabled');
      form.button.textContent = label;
    }
  });
}

$$('section[data-action]').forEach(enhance);
