// "/": KPI cards, the operations card and the live runs table.

import { initCommon } from '../common.js';
import { initDiagnostics } from '../diagnostics.js';
import { $ } from '../dom.js';
import { followMetrics, renderKpis } from '../kpis.js';
import { initOperations } from '../operations.js';
import { initProcesses } from '../processes.js';
import { RunsTable } from '../runs-table.js';

initCommon();

const kpis = $('[data-kpis]');
const table = new RunsTable($('[data-runs]').closest('section'));
const reloadKpis = followMetrics((summary) => renderKpis(kpis, summary), undefined,
  () => table.filters);
initOperations($('[data-operations]'));
initProcesses($('[data-processes]'));
initDiagnostics($('[data-diagnostics]'));
table.onFilters = reloadKpis;
table.start();
