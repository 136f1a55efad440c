// The operations card: the executor's queue (running, queued, paused) and its controls.
// Running and queued count every process of the clone: this server's executor plus the
// runs in flight elsewhere (`controlplane exec`, scripts, other workers) from the journal.

import { api } from './api.js';
import { hideBanner, showError } from './banner.js';
import { confirmDialog } from './dialog.js';
import { $, $$ } from './dom.js';
import { on } from './live.js';
import { reloadOnRunActivity } from './run-activity.js';
import { toast } from './toast.js';

export const DRAIN_SECONDS = 300;

/** What each command asks before it acts (resume asks nothing). */
const QUESTIONS = {
  pause: ['Pause the queue? Queued runs wait until you resume; running runs go on.', 'Pause'],
  drain: ['Drain: pause the queue and wait for the running runs to end?', 'Drain'],
  'cancel-queued': ['Cancel every queued run? They are recorded as cancelled.', 'Cancel them'],
};

/** Ask first (a confirmation dialog); for a drain, also how long to wait. Null means no. */
async function ask(command) {
  const question = QUESTIONS[command];
  if (!question) return {};
  const dialog = $('[data-confirm]');
  if (!dialog) return command === 'drain' ? { timeout: DRAIN_SECONDS } : {};
  const field = $('[data-drain-field]', dialog);
  if (field) field.hidden = command !== 'drain';
  const yes = await confirmDialog({ text: question[0], confirmLabel: question[1] });
  if (!yes) return null;
  if (command !== 'drain') return {};
  const input = $('[data-drain-timeout]', dialog);
  const seconds = input ? Number(input.value) : DRAIN_SECONDS;
  return { timeout: Number.isFinite(seconds) && input.value !== '' ? seconds : DRAIN_SECONDS };
}

/** The toast after a drain: what still runs and what still waits. */
export function drainMessage(state) {
  const remaining = state.remaining || { running: state.running, queued: state.queued };
  const running = remaining.running.length;
  const queued = remaining.queued.length;
  if (!running && !queued) return 'Queue drained: nothing is running or queued.';
  return `Queue paused; ${running} run(s) still running, ${queued} still queued.`;
}

export function initOperations(root) {
  const figure = (name) => $(`[data-ops="${name}"]`, root);
  const mode = $('[data-ops-mode]', root);
  const buttons = $$('[data-ops-command]', root);

  let elsewhere = { running: [], queued: [] };
  const count = (state, kind) => {
    const ids = new Set([...state[kind], ...elsewhere[kind]]);
    const others = elsewhere[kind].filter((id) => !state[kind].includes(id)).length;
    const cell = figure(kind);
    cell.textContent = String(ids.size);
    cell.title = others ? `${others} in other processes (controlplane exec, scripts)` : '';
    cell.dataset.elsewhere = String(others);
  };

  const render = (state) => {
    if (state.elsewhere) elsewhere = state.elsewhere; // executor:state events carry ours only
    count(state, 'running');
    count(state, 'queued');
    figure('limit').textContent = String(state.limit);
    mode.textContent = state.paused ? 'paused' : 'accepting runs';
    mode.className = `badge ${state.paused ? 'badge--queued' : 'badge--ok'}`;
    for (const button of buttons) {
      const command = button.dataset.opsCommand;
      if (command === 'cancel-queued') {
        button.disabled = state.queued.length + elsewhere.queued.length === 0;
      } else if (command === 'resume') button.disabled = !state.paused;
      else button.disabled = command === 'pause' && state.paused; // a paused queue can drain
    }
  };

  const load = async () => {
    try {
      render(await api('/api/executor'));
      hideBanner('operations');
    } catch (error) {
      showError(error, { source: 'operations' });
    }
  };

  for (const button of buttons) {
    // Each button is its form's submit (the card works without JS): here it asks in a dialog
    // and sends the JSON call instead.
    button.addEventListener('click', async (event) => {
      event.preventDefault();
      const command = button.dataset.opsCommand;
      const label = button.textContent;
      const body = await ask(command);
      if (body === null) return;
      button.disabled = true;
      if (command === 'drain') button.textContent = 'Draining…';
      try {
        const state = await api(`/api/executor/${command}`, { method: 'POST', body });
        render(state);
        hideBanner('operations');
        if (command === 'drain') toast(drainMessage(state), { kind: 'info' });
        if (command === 'cancel-queued') {
          const n = (state.cancelled || []).length;
          toast(n ? `Cancelled ${n} queued run(s).` : 'Nothing was queued.', { kind: 'info' });
        }
      } catch (error) {
        showError(error, { source: 'operations', near: button });
      } finally {
        button.textContent = label;
        load();
      }
    });
  }
  on('executor:state', (envelope) => render(envelope.data));
  // a run of another process started or ended: the journal's count changed
  reloadOnRunActivity(load);
  return load();
}
