// Cards that count runs of every process (operations, workers) reload when a run is queued,
// starts or ends anywhere (one reload per burst), on resync and with the auto-refresh.

import { onRefresh } from './autorefresh.js';
import { on } from './live.js';

export const RELOAD_DELAY_MS = 100;

/** Call *load* after run activity (coalesced), on resync and on each auto-refresh. */
export function reloadOnRunActivity(load) {
  let pending = null;
  const reloadSoon = () => {
    clearTimeout(pending);
    pending = setTimeout(load, RELOAD_DELAY_MS);
  };
  for (const type of ['run:queued', 'run:started', 'run:completed']) on(type, reloadSoon);
  on('resync', load);
  onRefresh(load);
}
