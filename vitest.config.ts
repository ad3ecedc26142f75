import { defineConfig } from 'vitest/config';

// Integration tests start real servers (IdP, gateway, PostgreSQL) and real child processes;
// they run in forks so a crashing child cannot take the runner with it.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts', 'gateway/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    globalSetup: ['test/support/pgClusterGlobal.ts'],
  },
});
