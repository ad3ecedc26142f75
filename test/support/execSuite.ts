// `sluice exec` end to end, shared by exec.test.ts (direct) and exec-via-agent.test.ts (through
// `sluice agent`): the real CLI binary, the real gateway and real PostgreSQL (the arena:
// the recommended policy, a superuser target, `admin` to check the target directly). Every run
// uses a service token through SLUICE_TOKEN, as a CI job would. Covers each format, stop at the
// first error, exit codes 1/3/4/5/75/130, reviews with --no-wait and --review, -f and stdin,
// --timeout cancelling on the target, a 1M-row result with bounded CLI and gateway memory, and
// the audit trail of the exec session.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionDetail, SessionSummary } from '../../src/api/contract.js';
import type { PgClusterDetails } from './pgCluster.js';
import type { PolicyInput } from '../../gateway/policy/index.js';
import { RECOMMENDED_POLICY, SECRET_EMAILS, startArena, type Arena } from './arena.js';
import { collect, runCli, serviceToken, spawnCli, tokenCtx, waitForStderr, type CliEnv } from './binaries.js';
import { waitFor } from './pgEngineHarness.js';


/** The recommended policy with a review that lives long enough to be decided by a second command. */
const POLICY: PolicyInput = {
  rules: (RECOMMENDED_POLICY.rules ?? []).map((r) => (r.id === 'payments-review' && r.review ? { ...r, review: { ...r.review, timeout: '60s' } } : r)),
};

let arena: Arena;
let ci: CliEnv;
let approver: CliEnv;
let dir: string;

/** The CLI's agent status (`sluice agent status --json`) in `ctx`'s config directory. */
async function agentStatus(ctx: CliEnv): Promise<{ running: boolean; pid?: number; served?: number }> {
  return JSON.parse((await runCli(['agent', 'status', '--json'], ctx)).stdout) as { running: boolean; pid?: number; served?: number };
}

/**
 * The exec suite; with `via: 'agent'` every exec of the CI job goes through `sluice agent` (started
 * once in its config directory) and the last test proves they all did.
 */
export function defineExecSuite(cluster: PgClusterDetails, via: 'direct' | 'agent'): void {
let execs = 0;
beforeAll(async () => {
  arena = await startArena(cluster, { prefix: via === 'agent' ? 'execagent' : 'exec', policy: POLICY });
  ci = tokenCtx(arena.gw, serviceToken(arena.gw, 'ci-job', 'eng'));
  approver = tokenCtx(arena.gw, serviceToken(arena.gw, 'oncall', 'dba'));
  dir = mkdtempSync(join(tmpdir(), 'sluice-exec-it-'));
  if (via === 'agent') {
    const started = await runCli(['agent', 'start'], ci);
    if (started.code !== 0) throw new Error(`sluice agent start failed: ${started.stderr}`);
  }
});

afterAll(async () => {
  if (via === 'agent' && ci) await runCli(['agent', 'stop'], ci);
  await arena?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const exec = (args: string[], input?: string) => {
  execs++;
  return runCli(['exec', 'pg-prod', ...args], ci, input);
};
const cliExec = (args: string[], ctx: CliEnv, input?: string) => {
  if (ctx.configDir === ci.configDir) execs++;
  return runCli(['exec', 'pg-prod', ...args], ctx, input);
};
const spawnExec = (args: string[]) => {
  execs++;
  return spawnCli(['exec', 'pg-prod', ...args], ci);
};
const one = async (sql: string) => Object.values((await arena.admin.query(sql)).rows[0] ?? {})[0];
const reviewId = (stderr: string) => /review (R-[0-9A-Z]+)/.exec(stderr)?.[1] as string;

describe('formats', () => {
  it('table, like psql', async () => {
    const r = await exec(['--format', 'table', '-i', 'select id, name from customers order by id; insert into orders values (100, 1, 5)']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe([' id |  name', '----+--------', ' 1  | Ada', ' 2  | Grace', ' 3  | Edsger', '(3 rows)', '', 'INSERT 0 1', ''].join('\n'));
  });

  it('csv, the default when stdout is not a terminal, with masked values masked', async () => {
    const r = await exec(['-i', 'select id, name, email from customers order by id; select 1 as one']);
    expect(r.code, r.stderr).toBe(0);
    const [first, second] = r.stdout.split('\n\n');
    expect(first?.split('\n')[0]).toBe('id,name,email');
    expect(first?.split('\n')).toHaveLength(4);
    expect(second).toBe('one\n1\n');
    for (const secret of SECRET_EMAILS) expect(r.stdout).not.toContain(secret);
  });

  it('json: typed rows, then a summary per statement', async () => {
    const r = await exec(['--format', 'json', '-i', `select 1::int4 as i, 2::int8 as b, true as t, '{"a": [1]}'::jsonb as j, null::text as n, 1.50::numeric as m, 'x' as i`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual([
      { statement: 0, row: { i: 1, b: '2', t: true, j: { a: [1] }, n: null, m: '1.50', i_2: 'x' } },
      { statement: 0, command: 'SELECT 1', rows: 1 },
    ]);
  });

  it('--json: one summary object and nothing else on stdout', async () => {
    const r = await exec(['--json', '-i', 'select 1; select 2']);
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout) as { status: string; session: string; statements: unknown[] };
    expect(summary).toMatchObject({ status: 'ok', statements: [{ command: 'SELECT 1', rows: 1 }, { command: 'SELECT 1', rows: 1 }] });
    expect(summary.session).toMatch(/\S/);
  });
});

describe('errors and exit codes', () => {
  it('a multi-statement script stops at the first error (exit 1, SQLSTATE on stderr)', async () => {
    // (A relation that does not exist would be refused by masking's lineage before it reached the
    // target: this connection masks columns. A division by zero is an error of the target's.)
    const r = await exec(['-i', 'insert into orders values (200, 1, 5); select 1/0; insert into orders values (201, 1, 5)']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('sluice: ERROR 22012: division by zero');
    expect(r.stderr).toContain('stopped at statement 2');
    expect(await one('select count(*)::int from orders where id = 200')).toBe(1);
    expect(await one('select count(*)::int from orders where id = 201')).toBe(0);
  });

  it('a policy block exits 3 naming the rule, and the table is intact on the target', async () => {
    const r = await exec(['-i', 'drop table customers']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/blocked by policy rule no-ddl/);
    expect(r.stdout).toBe('');
    expect(await one('select count(*)::int from customers')).toBe(3);
  });

  it('a refused token exits 4', async () => {
    const r = await cliExec(['-i', 'select 1'], { ...ci, env: { ...(ci.env ?? {}), SLUICE_TOKEN: 'slc_not_a_real_token' } });
    expect(r.code).toBe(4);
  });

  it('usage errors exit 2 naming the flags', async () => {
    // Through an agent, the agent reads the flags and refuses them exactly as the full CLI does.
    const both = await exec(['-i', 'select 1', '-f', 'x.sql']);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/-i\/--input and -f\/--file/);
  });
});

describe('input', () => {
  it('-f FILE, -f - and piped stdin', async () => {
    const file = join(dir, 'q.sql');
    writeFileSync(file, 'select 41 + 1 as answer;\n');
    for (const [args, input] of [[['-f', file]], [['-f', '-'], 'select 41 + 1 as answer'], [[], 'select 41 + 1 as answer']] as [string[], string?][]) {
      const r = await exec(args, input);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe('answer\n42\n');
    }
  });
});

describe('reviews', () => {
  const write = (note: string) => `update payments set note = '${note}' where id = 1`;

  it('--no-wait exits 75 with the id; after approval --review runs exactly that input, once', async () => {
    const pending = await exec(['--no-wait', '-i', write('approved')]);
    expect(pending.code).toBe(75);
    const id = reviewId(pending.stderr);
    expect(pending.stderr).toContain(`sluice exec pg-prod --review ${id} -i`);
    const approve = await runCli(['reviews', 'approve', id, '--reason', 'ticket OPS-1'], approver);
    expect(approve.code, approve.stderr).toBe(0);

    const changed = await exec(['--review', id, '-i', write('changed')]);
    expect(changed.code).not.toBe(0);
    expect(await one('select note from payments where id = 1')).toBe('first');

    const ran = await exec(['--review', id, '-i', write('approved')]);
    expect(ran.code, ran.stderr).toBe(0);
    expect(await one('select note from payments where id = 1')).toBe('approved');

    await arena.admin.query("update payments set note = 'first' where id = 1");
    const again = await exec(['--review', id, '-i', write('approved')]);
    expect(again.code).not.toBe(0);
    expect(await one('select note from payments where id = 1')).toBe('first');
  });

  it('--json with --no-wait carries the review in the summary', async () => {
    const r = await exec(['--no-wait', '--json', '-i', write('json')]);
    expect(r.code).toBe(75);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: 'review_pending', review: { status: 'pending' } });
  });

  it('waits by default (a line on stderr when it is not a terminal); a rejection exits 5 and nothing runs', async () => {
    const child = spawnExec(['-i', write('rejected')]);
    const done = collect(child);
    const [, id] = await waitForStderr(child, /waiting for review (R-[0-9A-Z]+)/);
    const reject = await runCli(['reviews', 'reject', id as string, '--reason', 'not during the freeze'], approver);
    expect(reject.code, reject.stderr).toBe(0);
    const r = await done;
    expect(r.code).toBe(5);
    expect(r.stderr).toContain('not during the freeze');
    expect(await one('select note from payments where id = 1')).toBe('first');
  });

  it('Ctrl-C while waiting exits 130 and the gateway cancels the review', async () => {
    const child = spawnExec(['-i', write('interrupted')]);
    const done = collect(child);
    const [, id] = await waitForStderr(child, /waiting for review (R-[0-9A-Z]+)/);
    child.kill('SIGINT');
    expect((await done).code).toBe(130);
    await waitFor('the review to be cancelled', async () => {
      const show = await runCli(['reviews', 'show', id as string, '--json'], approver);
      return (JSON.parse(show.stdout) as { status: string }).status === 'cancelled';
    });
    expect(await one('select note from payments where id = 1')).toBe('first');
  });
});

describe('--timeout', () => {
  it('cancels the statement on the target when it fires', async () => {
    const started = Date.now();
    const r = await exec(['--timeout', '1s', '-i', 'select pg_sleep(30) as exec_timeout_probe']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cancelled after 1s (--timeout)');
    expect(Date.now() - started).toBeLessThan(15_000);
    await waitFor('pg_sleep to stop on the target', async () =>
      (await one("select count(*)::int from pg_stat_activity where state = 'active' and query like '%exec_timeout_probe%' and pid <> pg_backend_pid()")) === 0,
    );
  });
});

describe('a 1M-row result', () => {
  /** Runs a csv exec of `rows` generated rows; the CLI's peak RSS (VmHWM, polled) and the gateway's for this run alone. */
  async function bigExec(rows: number): Promise<{ lines: number; bytes: number; cliPeakKb: number; gatewayPeakKb: number }> {
    const gatewayPid = arena.gw.child.pid as number;
    // Reset the gateway's peak RSS (VmHWM) so it measures this exec alone.
    writeFileSync(`/proc/${gatewayPid}/clear_refs`, '5');
    const child = spawnExec(['--format', 'csv', '-i', `select g, md5(g::text), repeat('x', 100) from generate_series(1, ${rows}) g`]);
    let lines = 0;
    let bytes = 0;
    child.stdout?.on('data', (d: Buffer) => {
      bytes += d.length;
      for (let i = d.indexOf(10); i !== -1; i = d.indexOf(10, i + 1)) lines++;
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    // VmHWM only grows, so its last reading before the process ends is its peak.
    let cliPeakKb = 0;
    const poll = setInterval(() => {
      try {
        cliPeakKb = Math.max(cliPeakKb, vmHwmKb(child.pid as number));
      } catch {
        // the process has just exited
      }
    }, 50);
    const code = await new Promise<number | null>((r) => child.once('close', r));
    clearInterval(poll);
    expect(code, stderr).toBe(0);
    return { lines, bytes, cliPeakKb, gatewayPeakKb: vmHwmKb(gatewayPid) };
  }

  it('streams with bounded CLI and gateway memory', { timeout: 300_000 }, async () => {
    const small = await bigExec(100_000);
    const big = await bigExec(1_000_000);
    expect(small.lines).toBe(100_001);
    expect(big.lines).toBe(1_000_001);
    expect(big.bytes).toBeGreaterThan(130_000_000);
    // ~140 MB of CSV: held whole it would take several times that. Streaming, ten times the rows
    // cost the CLI and the gateway little more than a tenth did (garbage collected lazily).
    expect(small.cliPeakKb).toBeGreaterThan(0);
    expect(big.cliPeakKb).toBeLessThan(256 * 1024);
    expect(big.cliPeakKb - small.cliPeakKb).toBeLessThan(80 * 1024);
    expect(big.gatewayPeakKb - small.gatewayPeakKb).toBeLessThan(128 * 1024);
    if (via === 'agent') {
      // The agent relays the same 140 MB with pipe()'s backpressure: it holds none of it whole.
      const { pid } = await agentStatus(ci);
      expect(vmHwmKb(pid as number)).toBeLessThan(192 * 1024);
    }
  });
});

describe('the audit trail', () => {
  it('records the exec as its own session (origin exec) with its statements', async () => {
    const r = await exec(['--json', '-i', 'select 7 as audited_exec_probe; select 8']);
    expect(r.code, r.stderr).toBe(0);
    const { session } = JSON.parse(r.stdout) as { session: string };
    const list = await runCli(['sessions', '--json'], ci);
    const mine = (JSON.parse(list.stdout) as SessionSummary[]).find((s) => s.id === session);
    expect(mine).toMatchObject({ origin: 'exec', connection: 'pg-prod', kind: 'service' });
    const show = await runCli(['sessions', 'show', session, '--json'], ci);
    const detail = JSON.parse(show.stdout) as SessionDetail;
    const texts = detail.events.filter((e) => e.kind === 'query').map((e) => String(e.data.text));
    expect(texts.join('\n')).toContain('audited_exec_probe');
    expect(texts.join('\n')).toContain('select 8');
  });
});

if (via === 'agent') {
  it('every exec of the CI job went through the agent', async () => {
    const status = await agentStatus(ci);
    expect(status.running).toBe(true);
    expect(status.served).toBe(execs);
  });
}
}

function vmHwmKb(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}
