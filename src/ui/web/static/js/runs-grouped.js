// The runs list grouped by pipeline (?group=pipeline): when runs end, fetch this same view
// again (debounced: a burst of ends is one fetch) and swap in its rows, as the server renders
// them (templates/controlplane/_runs_grouped.html), so the rows have a single renderer.

import { onRefresh } from './autorefresh.js';
import { localizeTimes } from './format.js';
import { on } from './live.js';
import { runsHref } from './runs-link.js';

export const REFRESH_MS = 500;
const BODY = '[data-runs-grouped-body]';

/** The grouped rows of a rendered page, or null when the page has none (a login page). */
export function rowsOf(html) {
  return new window.DOMParser().parseFromString(html, 'text/html').querySelector(BODY);
}

/** This view's HTML (same URL, same cookies), or null when it is not the view's page. */
export async function fetchView(path) {
  try {
    const response = await fetch(path, { headers: { Accept: 'text/html' },
      credentials: 'same-origin' });
    return response.ok ? await response.text() : null;
  } catch {
    return null; // offline: the rows stay; the connection banner says so
  }
}

/** Replace table's rows with fresh, keeping keyboard focus on the same link. */
export function swapRows(table, fresh) {
  const body = table.querySelector(BODY);
  const focused = body.contains(document.activeElement)
    ? document.activeElement.getAttribute('href') : null;
  const adopted = document.importNode(fresh, true);
  localizeTimes(adopted);
  body.replaceWith(adopted);
  if (focused) {
    const again = [...adopted.querySelectorAll('a[href]')]
      .find((a) => a.getAttribute('href') === focused);
    if (again) again.focus();
  }
}

/**
 * Follow the grouped view: refetch it when a run ends, metrics change, the ledger syncs, on
 * resync and on auto-refresh. Returns {load, soon} (load: now; soon: debounced).
 */
export function followGroups(table, { delay = REFRESH_MS, fetchPage = fetchView } = {}) {
  let timer = null;
  let generation = 0;
  const load = async () => {
    generation += 1;
    const mine = generation;
    const html = await fetchPage(window.location.pathname + window.location.search);
    const fresh = html === null ? null : rowsOf(html);
    if (fresh && mine === generation) swapRows(table, fresh);
  };
  const soon = () => {
    clearTimeout(timer);
    timer = setTimeout(load, delay);
  };
  for (const type of ['run:completed', 'metrics:update', 'ledger:synced', 'resync']) on(type, soon);
  onRefresh(load);
  return { load, soon };
}

/** Point the "List · By pipeline" links at the filters the list now shows (set without a
 * reload by runs-table.js). */
export function keepViewLinks(nav, filters) {
  if (!nav) return;
  for (const link of nav.querySelectorAll('a')) {
    const group = link.hasAttribute('data-group-pipeline') ? 'pipeline' : '';
    link.setAttribute('href', runsHref({ group, ...filters }));
  }
}
