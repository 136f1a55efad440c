// The run page: header, live output, progress, Cancel and Rerun.

import { api } from '../api.js';
import { hideBanner, showError } from '../banner.js';
import { followMentions } from '../chat.js';
import { initCommon } from '../common.js';
import { $, runHref } from '../dom.js';
import { isFinal } from '../format.js';
import { OutputView } from '../output.js';
import { controlsFor, rerunAsked } from '../run-controls.js';
import { followRun } from '../run-follower.js';
import { failingTests, renderRun, tickDuration } from '../run-details.js';
import { noteRun, watchRun } from '../watch.js';

initCommon();

const root = $('[data-run-page]');
const runId = root.dataset.runId;
followMentions($('[data-run-mentions]', root), $('[data-run-mentions-empty]', root), runId);
const cancelButton = $('[data-run-cancel]', root);
const rerunButton = $('[data-run-rerun]', root);
const retryButton = $('[data-run-retry-failed]', root);
const progress = $('[data-run-progress]', root);
const output = new OutputView({
  box: $('[data-output]', root),
  note: $('[data-output-note]', root),
  jump: $('[data-output-jump]', root),
  follow: $('[data-output-follow]', root),
  empty: $('[data-output-empty]', root),
}, { maxLines: 2000, logHref: $('[data-run-log]', root).getAttribute('href') });

let watching = false;
let cancelling = false;

function showControls(run) {
  const shown = controlsFor(run); // the runs list's rows offer the same
  cancelButton.hidden = !shown.cancel;
  cancelButton.disabled = cancelling;
  cancelButton.textContent = cancelling ? 'Cancelling…' : 'Cancel run';
  rerunButton.hidden = !shown.rerun;
  if (retryButton) {
    const failing = failingTests(run).length;
    retryButton.hidden = !failing || !run.action || root.dataset.retrySupported !== 'yes';
    retryButton.textContent = `Retry failed (${failing})`;
  }
}

const follower = followRun(runId, {
  onRun(run) {
    renderRun(root, run);
    if (isFinal(run.status)) {
      cancelling = false;
      noteRun(run);
    } else if (!watching) {
      watching = true;
      watchRun(runId);
    }
    showControls(run);
    document.title = `${run.subtype} ${run.status} · Control plane`;
  },
  onEvents(events) {
    output.add(events);
  },
  onProgress({ done, total }) {
    progress.hidden = false;
    const bar = $('progress', progress);
    bar.max = Math.max(1, total);
    bar.value = Math.min(done, bar.max);
    $('[data-run-progress-text]', progress).textContent = `${done} of ${total}`;
  },
  onError(error) {
    showError(error, { source: 'run' });
  },
});

setInterval(() => {
  const run = follower.run();
  if (run && run.status === 'running') tickDuration(root, run);
}, 1000);

// Each button is its form's submit (the page works without JS): here it is a JSON call.
cancelButton.addEventListener('click', async (event) => {
  event.preventDefault();
  cancelling = true;
  showControls(follower.run() || { status: 'running' });
  try {
    await api(`/api/runs/${encodeURIComponent(runId)}/cancel`, { method: 'POST' });
    hideBanner('run');
  } catch (error) {
    cancelling = false;
    showControls(follower.run() || { status: 'running' });
    showError(error, { source: 'run' });
  }
});

rerunButton.addEventListener('click', async (event) => {
  event.preventDefault();
  rerunButton.disabled = true;
  try {
    const answer = await rerunAsked(follower.run() || { run_id: runId });
    if (answer) {
      watchRun(answer.run_id);
      window.location.assign(runHref(answer.run_id));
    }
  } catch (error) {
    showError(error, { source: 'run' });
  } finally {
    rerunButton.disabled = false;
  }
});

// "Retry failed": a new run of the same action with only the failing tests' node ids.
if (retryButton) {
  retryButton.addEventListener('click', async (event) => {
    event.preventDefault();
    retryButton.disabled = true;
    try {
      const answer = await api(`/api/runs/${encodeURIComponent(runId)}/retry-failed`,
        { method: 'POST', body: {}, async: true });
      watchRun(answer.run_id);
      window.location.assign(runHref(answer.run_id));
    } catch (error) {
      showError(error, { source: 'run', near: retryButton });
    } finally {
      retryButton.disabled = false;
    }
  });
}
