// The operations card: the executor's queue (running, queued, paused) and its controls.
// Running and queued count every process of the clone: this server's executor plus the
// runs in flight elsewhere (`controlplane exec`, scripts, other workers) from the journal.

import { api } from './api.js';
import { onRefresh } from './autorefresh.js';
import { hideBanner, showError } from './banner.js';
import { $, $$ } from './dom.js';
import { on } from './live.js';
import { toast } from './toast.js';

const DRAIN_SECONDS = 30;

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
      button.disabled = command === 'resume' ? !state.paused : state.paused;
    }
  };

  const load = async () => {
    try {
      render(await api('/api/executor'));
    } catch (error) {
      showError(error, { source: 'operations' });
    }
  };

  for (const button of buttons) {
    button.addEventListener('click', async () => {
      const command = button.dataset.opsCommand;
      const label = button.textContent;
      button.disabled = true;
      if (command === 'drain') button.textContent = 'Draining…';
      try {
        const state = await api(`/api/executor/${command}`, {
          method: 'POST', body: command === 'drain' ? { timeout: DRAIN_SECONDS } : {},
        });
        render(state);
        hideBanner('operations');
        if (command === 'drain') {
          toast(state.running.length
            ? `Queue paused; ${state.running.length} run(s) still running.`
            : 'Queue drained: nothing is running.', { kind: 'info' });
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
  let pending = null;
  const reloadSoon = () => {
    clearTimeout(pending);
    pending = setTimeout(load, 100);
  };
  for (const type of ['run:queued', 'run:started', 'run:completed']) on(type, reloadSoon);
  on('resync', load);
  onRefresh(load);
  return load();
}
