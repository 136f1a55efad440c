// "/": KPI cards, the operations card and the live runs table.

import { initCommon } from '../common.js';
import { $ } from '../dom.js';
import { followMetrics, renderKpis } from '../kpis.js';
import { initOperations } from '../operations.js';
import { RunsTable } from '../runs-table.js';

initCommon();

const kpis = $('[data-kpis]');
followMetrics((summary) => renderKpis(kpis, summary));
initOperations($('[data-operations]'));
new RunsTable($('[data-runs]').closest('section')).start();
