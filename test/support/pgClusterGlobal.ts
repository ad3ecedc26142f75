// vitest globalSetup: one throwaway PostgreSQL cluster per test run, handed to test files with
// `inject('pgCluster')`. Enable it by listing this file in `test.globalSetup` in vitest.config.ts.
import type { TestProject } from 'vitest/node';
import { startPgCluster, type PgClusterDetails } from './pgCluster.js';

declare module 'vitest' {
  export interface ProvidedContext {
    pgCluster: PgClusterDetails;
  }
}

export default async function setup(project: Pick<TestProject, 'provide'>): Promise<() => Promise<void>> {
  const { stop, ...details } = await startPgCluster();
  project.provide('pgCluster', details);
  return stop;
}
