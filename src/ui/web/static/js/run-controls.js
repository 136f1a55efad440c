// Which of Cancel and Rerun a run offers, and a rerun that asks first when its action is
// destructive: one rule for the run page (pages/run.js) and the runs list (row-actions.js).

import { api } from './api.js';
import { confirmDialog } from './dialog.js';
import { isFinal } from './format.js';

/** Cancel while the run is in flight; Rerun once it ended, if an action started it. */
export function controlsFor(run) {
  const active = !isFinal(run.status);
  return { cancel: active, rerun: !active && Boolean(run.action) };
}

function postRerun(runId, body) {
  return api(`/api/runs/${encodeURIComponent(runId)}/rerun`, { method: 'POST', body, async: true });
}

/**
 * Rerun *run*: a destructive action's rerun is refused (428) until the same dialog as its
 * form says yes. Resolves to the server's answer ({run_id, …}), or null when declined.
 */
export async function rerunAsked(run) {
  try {
    return await postRerun(run.run_id, {});
  } catch (error) {
    if (error.status !== 428) throw error;
  }
  const params = Object.fromEntries(Object.entries(run.params || {})
    .filter(([key]) => !key.startsWith('_')));
  const yes = await confirmDialog({
    text: `${run.subtype} is destructive. Rerunning it runs ${run.action} again with:`,
    params,
  });
  return yes ? postRerun(run.run_id, { confirm: true }) : null;
}
