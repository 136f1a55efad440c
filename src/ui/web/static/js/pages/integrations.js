import { initCommon } from '../common.js';

initCommon();
