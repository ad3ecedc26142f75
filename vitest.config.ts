import { defineConfig } from 'vitest/config';

// Two projects: `unit` runs in seconds with no database or child process (`npm run test:unit`);
// `integration` starts real servers (IdP, gateway, PostgreSQL) and real child processes, in forks
// so a crashing child cannot take the runner with it. `npm test` runs both.
export default defineConfig({
  test: {
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts', 'test/unit/**/*.test.tsx', 'src/**/*.test.ts', 'gateway/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/support/pgClusterGlobal.ts'],
        },
      },
    ],
  },
});
