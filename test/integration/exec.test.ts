// `sluice exec` end to end, straight to the gateway (no agent): the suite is test/support/execSuite.ts.
import { inject } from 'vitest';
import { defineExecSuite } from '../support/execSuite.js';

defineExecSuite(inject('pgCluster'), 'direct');
