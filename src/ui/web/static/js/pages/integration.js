// /integrations/<name>: a form per action, "Run now", confirmation, the run followed live.

import { ActionForm } from '../action-form.js';
import { api } from '../api.js';
import { hideBanner, showError } from '../banner.js';
import { initCommon } from '../common.js';
import { confirmDialog } from '../dialog.js';
import { $, h, replaceChildren } from '../dom.js';
import { RunPanel } from '../run-panel.js';
import { watchRun } from '../watch.js';

initCommon();

const root = $('[data-actions]');
const integration = root.dataset.integration;
const fieldOrder = JSON.parse(root.dataset.fieldOrder || '{}');

function slug(text) {
  return text.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '');
}

function actionCard(action) {
  const form = new ActionForm(action, fieldOrder[action.path] || []);
  const panel = h('div', { class: 'runpanel', hidden: true });
  const runPanel = new RunPanel(panel);
  const titleId = `f-${slug(action.path)}-title`;
  const card = h('section', { class: 'card action', 'aria-labelledby': titleId,
    dataset: { action: action.path } },
  h('div', { class: 'card__head' },
    h('h2', { id: titleId, text: action.title }),
    action.destructive ? h('span', { class: 'badge badge--danger', text: 'destructive' }) : null),
  action.description ? h('p', { text: action.description }) : null,
  h('p', { class: 'small muted' }, h('code', { text: `POST ${action.path}` }), ' · records a ',
    h('code', { text: action.subtype }), ' run'),
  form.form, panel);

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
    if (action.destructive) {
      const yes = await confirmDialog({
        text: `"${action.title}" is destructive. It runs ${action.path} with:`,
        params: built.body,
      });
      if (!yes) return;
      built.body.confirm = true;
    }
    busy = true;
    form.button.setAttribute('aria-disabled', 'true');
    form.button.textContent = 'Starting…';
    try {
      const answer = await api(built.path, { method: 'POST', body: built.body, async: true });
      hideBanner('action');
      watchRun(answer.run_id);
      runPanel.show(answer.run_id, action.title);
    } catch (error) {
      if (error.status === 422 && error.body.fields) form.showErrors(error.body.fields);
      else showError(error, { source: 'action' });
    } finally {
      busy = false;
      form.button.removeAttribute('aria-disabled');
      form.button.textContent = 'Run now';
    }
  });
  return card;
}

async function load() {
  try {
    const { actions } = await api('/api/actions');
    const mine = actions.filter((a) => a.integration === integration);
    replaceChildren(root, mine.length ? mine.map(actionCard)
      : h('p', { class: 'empty', text: 'This integration has no actions.' }));
  } catch (error) {
    $('[data-actions-loading]', root)?.remove();
    showError(error, { source: 'actions' });
  }
}

load();
