// The live runs table on "/": the server rendered its rows, filters and "Load more" link
// (they work without JavaScript); this keeps them live. New rows are copies of the page's
// <template data-template="run-row">, rendered by the same Jinja macro as the others.

import { api } from './api.js';
import { onRefresh } from './autorefresh.js';
import { setBadge } from './badge.js';
import { showError } from './banner.js';
import { $, runHref } from './dom.js';
import { formatDuration, formatFullTime, formatTime, runDuration, statusRank } from './format.js';
import { on } from './live.js';
import { fillRowControls, initRowActions } from './row-actions.js';

const PAGE_SIZE = 50;
/** The filters the runs list keeps in the address (templates/controlplane/runs.html). */
export const FILTERS = ['q', 'type', 'status', 'subtype', 'actor', 'branch', 'since', 'until'];

/** The day after an ISO day (`YYYY-MM-DD`), for an `until` that includes its day. */
function nextDay(day) {
  const next = new Date(`${day}T00:00:00Z`);
  next.setUTCDate(next.getUTCDate() + 1);
  return next.toISOString().slice(0, 10);
}

/** Does *run* pass *filters*? The same rules as the server's RunFilter.matches. */
export function runMatches(run, filters) {
  const actor = (run.actor && run.actor.name) || '';
  const branch = (run.code_ref && run.code_ref.branch) || '';
  const started = run.started_at || run.queued_at || '';
  for (const name of ['type', 'status', 'subtype']) {
    if (filters[name] && run[name] !== filters[name]) return false;
  }
  if ((filters.actor && actor !== filters.actor) || (filters.branch && branch !== filters.branch)) return false;
  if (filters.since && started < filters.since) return false;
  if (filters.until && started >= nextDay(filters.until)) return false;
  if (!filters.q) return true;
  const haystack = [run.run_id, run.summary || '', actor, branch, JSON.stringify(run.params || {})]
    .join('\n').toLowerCase();
  return haystack.includes(filters.q.toLowerCase());
}

export class RunsTable {
  constructor(root) {
    this.body = $('[data-runs-body]', root);
    this.empty = $('[data-runs-empty]', root);
    this.loading = $('[data-runs-loading]', root);
    this.more = $('[data-load-more]', root);
    this.form = $('[data-filters]', root);
    const table = $('[data-runs]', root);
    this.commitBase = (table && table.dataset.commitBase) || ''; // the remote's commit pages
    this.rows = new Map(); // run id -> {run, tr, cells}
    this.nextBefore = null;
    this.generation = 0; // bumps on each reload, so a stale answer is dropped
    this.buffer = null;
  }

  start() {
    const params = new URLSearchParams(window.location.search);
    for (const name of FILTERS) {
      if (this.form.elements[name]) this.form.elements[name].value = params.get(name) || '';
    }
    const apply = () => {
      this.saveFilters();
      this.reload();
      this.onFilters();
    };
    let typing = null;
    this.form.addEventListener('change', () => {
      clearTimeout(typing);
      apply();
    });
    this.form.addEventListener('input', (event) => {
      if (event.target.name !== 'q') return;
      clearTimeout(typing);
      typing = setTimeout(apply, 300);
    });
    this.form.addEventListener('submit', (event) => event.preventDefault());
    const applyButton = $('[data-filters-apply]', this.form);
    if (applyButton) applyButton.hidden = true; // a change applies at once
    this.more.addEventListener('click', (event) => {
      event.preventDefault();
      this.loadMore();
    });
    for (const type of ['run:queued', 'run:started', 'run:completed']) {
      on(type, (envelope) => {
        if (this.buffer) this.buffer.push(envelope.data);
        this.upsert(envelope.data, { live: true });
      });
    }
    on('resync', () => this.reload());
    initRowActions(this.body, (runId) => this.rows.get(runId)?.run);
    onRefresh(() => this.refresh());
    setInterval(() => this.tick(), 1000);
    return this.reload();
  }

  /** Called after the filters change (the page reloads its KPIs). */
  onFilters() {}

  get filters() {
    const found = {};
    for (const name of FILTERS) {
      const field = this.form.elements[name];
      if (field) found[name] = field.value.trim();
    }
    return found;
  }

  saveFilters() {
    const url = new URL(window.location.href);
    for (const [name, value] of Object.entries(this.filters)) {
      if (value) url.searchParams.set(name, value);
      else url.searchParams.delete(name);
    }
    window.history.replaceState(null, '', url);
  }

  query(before) {
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    for (const [name, value] of Object.entries(this.filters)) if (value) params.set(name, value);
    if (before) params.set('before', before);
    return `/api/runs/recent?${params}`;
  }

  async fetchPage(before) {
    const generation = this.generation;
    try {
      const page = await api(this.query(before));
      return generation === this.generation ? page : null;
    } catch (error) {
      showError(error, { source: 'runs' });
      return null;
    } finally {
      this.loading.hidden = true;
    }
  }

  async reload() {
    this.generation += 1;
    this.loading.hidden = false;
    this.buffer = []; // live runs seen while the page loads, replayed over it
    const page = await this.fetchPage(null);
    if (!page) return;
    const seen = this.buffer;
    this.buffer = null;
    this.body.replaceChildren();
    this.rows.clear();
    this.addPage(page);
    for (const run of seen) this.upsert(run, { live: true });
  }

  /** Merge the newest page without dropping rows loaded with "load more". */
  async refresh() {
    const page = await this.fetchPage(null);
    if (!page) return;
    for (const run of page.runs) this.upsert(run);
    this.updateEmpty();
  }

  async loadMore() {
    if (!this.nextBefore) return;
    this.more.setAttribute('aria-disabled', 'true');
    const page = await this.fetchPage(this.nextBefore);
    this.more.removeAttribute('aria-disabled');
    if (page) this.addPage(page);
  }

  addPage(page) {
    for (const run of page.runs) this.upsert(run);
    this.nextBefore = page.next_before;
    this.more.hidden = !this.nextBefore;
    this.updateEmpty();
  }

  matches(run) {
    return runMatches(run, this.filters);
  }

  /** Add or update a run's row; a run never moves back (a late snapshot loses to an event). */
  upsert(run, { live = false } = {}) {
    if (!run || !run.run_id) return;
    const known = this.rows.get(run.run_id);
    if (known) {
      if (statusRank(run.status) < statusRank(known.run.status)) return;
      if (!this.matches(run)) {
        known.tr.remove();
        this.rows.delete(run.run_id);
        this.updateEmpty();
        return;
      }
      known.run = { ...known.run, ...run };
      this.fill(known);
      return;
    }
    if (!this.matches(run)) return;
    const oldest = this.body.lastElementChild;
    // A run older than every shown row belongs to a page not loaded yet.
    if (live && this.nextBefore && oldest && run.run_id < oldest.dataset.runId) return;
    const entry = this.makeRow(run);
    if (live) entry.tr.classList.add('row--new');
    this.rows.set(run.run_id, entry);
    let before = null;
    for (const tr of this.body.children) {
      if (tr.dataset.runId < run.run_id) {
        before = tr;
        break;
      }
    }
    this.body.insertBefore(entry.tr, before);
    this.updateEmpty();
  }

  makeRow(run) {
    const tr = $('template[data-template="run-row"]').content.firstElementChild.cloneNode(true);
    tr.dataset.runId = run.run_id;
    const cell = (name) => $(`[data-cell="${name}"]`, tr);
    const cells = {
      status: cell('status'), link: cell('link'), summary: cell('summary'),
      started: cell('started'), duration: cell('duration'), actor: cell('actor'),
      branch: cell('branch'), commit: cell('commit'), job: cell('job'),
    };
    cells.link.href = runHref(run.run_id);
    const entry = { run, tr, cells };
    this.fill(entry);
    return entry;
  }

  fill({ run, tr, cells }) {
    setBadge(cells.status, run.status);
    tr.dataset.status = run.status;
    cells.link.textContent = run.subtype || run.run_id;
    cells.link.title = run.run_id;
    cells.summary.textContent = run.summary || '';
    cells.started.textContent = formatTime(run.started_at);
    cells.started.dateTime = run.started_at || '';
    cells.started.title = formatFullTime(run.started_at);
    cells.duration.textContent = formatDuration(runDuration(run));
    this.fillCode(run, cells);
    const actor = run.actor || {};
    cells.actor.textContent = [actor.name, actor.kind && `(${actor.kind})`]
      .filter(Boolean).join(' ');
    fillRowControls(tr, run);
  }

  /** Branch, commit (linked to the remote's page when known) and an ingested run's CI job. */
  fillCode(run, cells) {
    const code = run.code_ref || {};
    if (cells.branch) cells.branch.textContent = code.branch || '';
    if (cells.commit) {
      const sha = code.commit || '';
      const base = this.commitBase;
      cells.commit.textContent = sha.slice(0, 8);
      cells.commit.title = sha;
      if (sha && base) cells.commit.href = base + sha;
      else cells.commit.removeAttribute('href');
    }
    if (cells.job) {
      const url = run.type === 'ci' && run.target ? String(run.target.url || '') : '';
      const safe = /^https?:\/\//.test(url);
      cells.job.hidden = !safe;
      if (safe) cells.job.href = url;
      else cells.job.removeAttribute('href');
    }
  }

  tick() {
    const now = Date.now();
    for (const { run, cells } of this.rows.values()) {
      if (run.status === 'running') cells.duration.textContent = formatDuration(runDuration(run, now));
    }
  }

  updateEmpty() {
    this.empty.hidden = this.rows.size > 0 || !this.loading.hidden;
  }
}
