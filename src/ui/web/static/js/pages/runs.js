// "/": KPI cards, the operations card and the live runs table (or, with ?group=pipeline,
// the runs grouped by pipeline).

import { initCommon } from '../common.js';
import { initDiagnostics } from '../diagnostics.js';
import { $ } from '../dom.js';
import { followMetrics, renderKpis } from '../kpis.js';
import { initOperations } from '../operations.js';
import { initProcesses } from '../processes.js';
import { followGroups, keepViewLinks } from '../runs-grouped.js';
import { FILTERS, RunsTable } from '../runs-table.js';

initCommon();

const kpis = $('[data-kpis]');
initOperations($('[data-operations]'));
initProcesses($('[data-processes]'));
initDiagnostics($('[data-diagnostics]'));
const grouped = $('[data-runs-grouped]');
if (grouped) {
  // the filters are the page's own (a plain GET form): read them from the URL
  const params = new URLSearchParams(window.location.search);
  followMetrics((summary) => renderKpis(kpis, summary), undefined,
    () => Object.fromEntries(FILTERS.map((name) => [name, params.get(name) || ''])));
  followGroups(grouped);
} else {
  const table = new RunsTable($('[data-runs]').closest('section'));
  const reloadKpis = followMetrics((summary) => renderKpis(kpis, summary), undefined,
    () => table.filters);
  table.onFilters = () => {
    reloadKpis();
    keepViewLinks($('[data-runs-view]'), table.filters);
  };
  table.start();
}
