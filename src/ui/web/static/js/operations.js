// The operations card: the executor's queue (running, queued, paused) and its controls.

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

  const render = (state) => {
    figure('running').textContent = String(state.running.length);
    figure('queued').textContent = String(state.queued.length);
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
        showError(error, { source: 'operations' });
      } finally {
        button.textContent = label;
        load();
      }
    });
  }
  on('executor:state', (envelope) => render(envelope.data));
  on('resync', load);
  onRefresh(load);
  return load();
}
