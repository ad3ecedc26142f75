// The whole `sluice exec` suite (test/support/execSuite.ts) again, every exec through `sluice agent`:
// the fast path must print, exit and stream exactly as the direct one.
import { inject } from 'vitest';
import { defineExecSuite } from '../support/execSuite.js';

defineExecSuite(inject('pgCluster'), 'agent');
