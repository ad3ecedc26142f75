// README's first command: `npm run demo` must bring up a gateway, dev IdP and demo database that
// a newcomer can log in to and query through `sluice connect` — checked here with the real CLI.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findFreePort } from '../support/pgCluster.js';
import { login, newConfigDir, ROOT, runCli, waitForStderr, type GatewayProcess } from '../support/binaries.js';

const children: ReturnType<typeof spawn>[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGTERM');
});

describe('npm run demo', () => {
  it('serves a demo database a newcomer can log in to and query', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-demo-'));
    const port = await findFreePort();
    const demo = spawn(process.execPath, [join(ROOT, 'dist/gateway/dev/demo.js')], {
      cwd: dir,
      env: { ...process.env, SLUICE_DEMO_LISTEN: `127.0.0.1:${port}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(demo);
    const [, url, ca] = await waitForStderr(demo, /npx sluice login --gateway (\S+) --ca (\S+)/, 90_000);
    const gateway = { url, caFile: join(dir, ca as string) } as GatewayProcess;
    const configDir = newConfigDir();
    const res = await login(gateway, configDir, 'alice');
    expect(res.code, res.stderr).toBe(0);
    const q = await runCli(['connect', 'demo-pg', '--port', '0', '--', '/usr/lib/postgresql/15/bin/psql', '-X', '-tAc', 'select count(*) from customers'], { configDir });
    expect(q.code, q.stderr).toBe(0);
    expect(Number(q.stdout.trim())).toBeGreaterThan(0);
    // The demo's policy: card numbers arrive masked (and cannot be searched by pattern), DDL is refused.
    const masked = await runCli(['connect', 'demo-pg', '--port', '0', '--', '/usr/lib/postgresql/15/bin/psql', '-X', '-tAc', 'select card_number from customers where id = 1'], { configDir });
    expect(masked.code, masked.stderr).toBe(0);
    expect(masked.stdout.trim()).toMatch(/^\*+\d{4}$/);
    const drop = await runCli(['connect', 'demo-pg', '--port', '0', '--', '/usr/lib/postgresql/15/bin/psql', '-X', '-c', 'drop table orders'], { configDir });
    expect(drop.code).not.toBe(0);
    expect(drop.stderr).toContain('DDL is not allowed on the demo database');
  }, 150_000);
});
