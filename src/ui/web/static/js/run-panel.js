// Under an action's form: the run it started, live (status, duration, last lines, link).

import { setBadge } from './badge.js';
import { url } from './base.js';
import { h, runHref } from './dom.js';
import { formatDuration, isFinal, runDuration } from './format.js';
import { OutputView } from './output.js';
import { followRun } from './run-follower.js';

export class RunPanel {
  constructor(container) {
    this.container = container;
    this.follower = null;
    this.timer = null;
  }

  show(runId, label) {
    this.follower?.stop();
    clearInterval(this.timer);
    const status = h('span', { class: 'badge badge--queued', text: 'queued' });
    const duration = h('span', { class: 'muted small' });
    const box = h('div', { class: 'output output--mini', tabindex: '0', role: 'log',
      'aria-live': 'off', 'aria-label': `Output of ${label}` });
    const note = h('p', { class: 'output-note', hidden: true });
    this.container.replaceChildren(
      h('p', { class: 'runpanel__head' }, status, ' ',
        h('a', { href: runHref(runId), dataset: { runLink: runId } }, `Open the run ${runId}`), ' ', duration),
      note, box);
    this.container.hidden = false;
    this.container.dataset.runId = runId;
    const output = new OutputView({ box, note }, { maxLines: 200,
      logHref: url(`/api/runs/${encodeURIComponent(runId)}/log`) });
    this.follower = followRun(runId, {
      onRun: (run) => {
        setBadge(status, run.status);
        duration.textContent = formatDuration(runDuration(run));
        if (isFinal(run.status)) clearInterval(this.timer);
      },
      onEvents: (events) => output.add(events),
    });
    this.timer = setInterval(() => {
      const run = this.follower.run();
      if (run) duration.textContent = formatDuration(runDuration(run));
    }, 1000);
  }
}
