// /integrations/<name>: the server-rendered forms, enhanced: "Run now" posts JSON in the
// background, a destructive action asks in a dialog, the run is followed live under its form.

import { ActionForm } from '../action-form.js';
import { api } from '../api.js';
import { onRefresh } from '../autorefresh.js';
import { setBadge } from '../badge.js';
import { hideBanner, showError } from '../banner.js';
import { initCommon } from '../common.js';
import { confirmDialog } from '../dialog.js';
import { $, $$, runHref } from '../dom.js';
import { formatDuration, formatFullTime, formatTime, isFinal, runDuration, statusRank } from '../format.js';
import { on } from '../live.js';
import { RunPanel } from '../run-panel.js';
import { watchRun } from '../watch.js';

initCommon();

const RUN_LABEL = 'Run now';

/** The card's "Last run" line and its Run button, from the action's newest run: the button
 *  stays disabled (aria-disabled) "Running…" while that run is queued or running (every tab,
 *  live events). */
export class LastRun {
  constructor(card, button) {
    this.card = card;
    this.button = button;
    this.line = $('[data-last-run]', card);
    this.run = null;
    if (button.dataset.running) this.run = { run_id: button.dataset.running, status: 'running' };
  }

  get running() {
    return Boolean(this.run && !isFinal(this.run.status));
  }

  update(run) {
    const known = this.run;
    const same = Boolean(run && known && run.run_id === known.run_id);
    if (!run || (!same && run.action !== this.card.dataset.action)) return;
    if (known && run.run_id < known.run_id) return; // an older run of the action
    if (same && statusRank(run.status) < statusRank(known.status)) return;
    this.run = { ...(same ? known : {}), ...run };
    this.render();
  }

  render() {
    const run = this.run;
    if (this.line && run && run.started_at !== undefined) {
      const part = (name) => $(`[data-last="${name}"]`, this.line);
      this.line.hidden = false;
      setBadge(part('status'), run.status);
      part('link').href = runHref(run.run_id);
      part('time').textContent = run.status === 'queued' ? 'queued' : formatTime(run.started_at);
      part('time').dateTime = run.started_at || '';
      part('time').title = formatFullTime(run.started_at);
      part('duration').textContent = formatDuration(runDuration(run));
      part('actor').textContent = (run.actor && run.actor.name) || '—';
    }
    // aria-disabled, not disabled: it stays focusable, and pressing it anyway asks the
    // server, whose 409 says next to it who started the run and when (docs/operator.md).
    if (this.running) this.button.setAttribute('aria-disabled', 'true');
    else this.button.removeAttribute('aria-disabled');
    this.button.textContent = this.running ? 'Running…' : RUN_LABEL;
    if (this.running) this.button.dataset.running = run.run_id;
    else delete this.button.dataset.running;
  }

  /** Ask the server how the run shown as running is doing (a missed end, a refresh). */
  async check() {
    if (!this.running) return;
    try {
      const answer = await api(`/api/runs/${encodeURIComponent(this.run.run_id)}`);
      this.update(answer.run);
    } catch {
      // the banner reports lost connections; the next event or refresh tries again
    }
  }
}

function enhance(card) {
  const form = new ActionForm(card);
  const runPanel = new RunPanel(card.querySelector('[data-run-panel]'));
  const destructive = 'destructive' in card.dataset;
  const confirmed = 'confirming' in form.form.dataset; // the confirmation page already asked
  const title = card.dataset.title;
  form.markRenderedErrors();

  const last = new LastRun(card, form.button);
  for (const type of ['run:queued', 'run:started', 'run:completed']) {
    on(type, (envelope) => last.update(envelope.data));
  }
  on('resync', () => last.check());
  onRefresh(() => last.check());
  if (last.running) last.check();

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
    form.button.setAttribute('aria-disabled', 'true');
    form.button.textContent = 'Starting…';
    try {
      const answer = await api(built.path, { method: 'POST', body: built.body, async: true });
      hideBanner('action');
      watchRun(answer.run_id);
      last.update({ action: card.dataset.action, run_id: answer.run_id, status: answer.status || 'queued' });
      runPanel.show(answer.run_id, title);
    } catch (error) {
      if (error.status === 422 && error.body.fields) form.showErrors(error.body.fields);
      else showError(error, { source: 'action' });
    } finally {
      busy = false;
      form.button.removeAttribute('aria-disabled');
      last.render();
    }
  });
}

$$('section[data-action]').forEach(enhance);
