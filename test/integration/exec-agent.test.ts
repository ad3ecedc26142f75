// `sluice agent` end to end, through bin/sluice.js, the real gateway and PostgreSQL: the agent relays
// execs and holds no identity (a login switch takes effect at the next exec; the token is in
// neither its log nor its environment); an agent killed mid-exec breaks that exec off and cancels
// the statement, and the next exec goes direct; a socket that is not ours or is too open is never
// sent a token. The whole exec suite through the agent is exec-via-agent.test.ts.
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startArena, type Arena } from '../support/arena.js';
import { CLI_BIN, cliEnv, collect, login, runCli, serviceToken, spawnCli, tokenCtx, type CliEnv } from '../support/binaries.js';
import { waitFor } from '../support/pgEngineHarness.js';

const cluster = inject('pgCluster');

let arena: Arena;
let token: string;

beforeAll(async () => {
  arena = await startArena(cluster, { prefix: 'execagentcases' });
  token = serviceToken(arena.gw, 'agent-ci', 'eng');
});

afterAll(async () => {
  await arena?.stop();
});

interface Status {
  running: boolean;
  state?: string;
  socket: string;
  pid?: number;
  served?: number;
}
const status = async (ctx: CliEnv): Promise<Status> => JSON.parse((await runCli(['agent', 'status', '--json'], ctx)).stdout) as Status;
/** Whether `pid` is a live process (a zombie left for a reaper that never comes counts as gone). */
const running = (pid: number): boolean => {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
};
const one = async (sql: string) => Object.values((await arena.admin.query(sql)).rows[0] ?? {})[0];

/** A CI-style context with a started agent; stopped by the returned function. */
async function withAgent(env: Record<string, string> = {}): Promise<{ ctx: CliEnv; agent: Status; stop: () => Promise<void> }> {
  const base = tokenCtx(arena.gw, token);
  const ctx = { ...base, env: { ...base.env, ...env } };
  const started = await runCli(['agent', 'start'], ctx);
  expect(started.code, started.stderr).toBe(0);
  const agent = await status(ctx);
  expect(agent).toMatchObject({ running: true, served: 0 });
  return {
    ctx,
    agent,
    stop: async () => {
      await runCli(['agent', 'stop'], ctx);
      rmSync(ctx.configDir, { recursive: true, force: true });
    },
  };
}

describe('the agent relays', () => {
  it('execs, and the token is in neither its log nor its environment', async () => {
    const { ctx, agent, stop } = await withAgent();
    try {
      const r = await runCli(['exec', 'pg-prod', '-i', 'select 6 * 7 as answer'], ctx);
      expect(r).toMatchObject({ code: 0, stdout: 'answer\n42\n', stderr: '' });
      expect((await status(ctx)).served).toBe(1);
      const log = readFileSync(agent.socket.replace(/\.sock$/, '.log'), 'utf8');
      expect(log).toContain('exec "pg-prod" exit 0');
      expect(log).not.toContain(token);
      expect(readFileSync(`/proc/${agent.pid}/environ`, 'utf8')).not.toContain(token);
    } finally {
      await stop();
    }
  });

  it('a second start is a no-op; stop removes the socket; status then exits 1', async () => {
    const { ctx, agent, stop } = await withAgent();
    try {
      const again = await runCli(['agent', 'start'], ctx);
      expect(again.code).toBe(0);
      expect(again.stderr).toContain(`already runs (pid ${agent.pid})`);
      expect((await runCli(['agent', 'stop'], ctx)).code).toBe(0);
      expect(existsSync(agent.socket)).toBe(false);
      await waitFor('the stopped agent to exit', () => !running(agent.pid as number));
      const after = await runCli(['agent', 'status'], ctx);
      expect(after.code).toBe(1);
      expect(after.stderr).toContain('no agent runs');
    } finally {
      await stop();
    }
  });
});

describe('the client is a pipe; the agent runs the exec as the caller', () => {
  it("reads -f FILE relative to the caller's working directory, not the agent's", async () => {
    const { ctx, stop } = await withAgent();
    const cwd = mkdtempSync(join(tmpdir(), 'sluice-agent-cwd-'));
    try {
      writeFileSync(join(cwd, 'relative.sql'), 'select 40 + 2 as from_file');
      const child = spawn(process.execPath, [CLI_BIN, 'exec', 'pg-prod', '-f', 'relative.sql'], { cwd, env: cliEnv(ctx), stdio: ['pipe', 'pipe', 'pipe'] });
      const r = await collect(child);
      expect(r).toMatchObject({ code: 0, stdout: 'from_file\n42\n', stderr: '' });
      expect((await status(ctx)).served).toBe(1);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
      await stop();
    }
  });

  it('leaves stdin unread when the input is -i (a loop reading the same pipe keeps its lines)', async () => {
    const { ctx, stop } = await withAgent();
    try {
      const script = `"${process.execPath}" "${CLI_BIN}" exec pg-prod -i 'select 1 as one'; cat`;
      const child = spawn('sh', ['-c', script], { env: cliEnv(ctx), stdio: ['pipe', 'pipe', 'pipe'] });
      child.stdin.end('the rest of the pipe\n');
      const r = await collect(child);
      expect(r).toMatchObject({ code: 0, stdout: 'one\n1\nthe rest of the pipe\n', stderr: '' });
      expect((await status(ctx)).served).toBe(1);
    } finally {
      await stop();
    }
  });

  it('declines an exec for another gateway, which then goes direct with the direct answer', async () => {
    const { ctx, agent, stop } = await withAgent();
    const plainCtx = tokenCtx(arena.gw, token);
    try {
      // Nothing listens there: the direct answer is a refused connection, and no agent may serve it.
      const closed = createServer();
      await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
      const port = (closed.address() as { port: number }).port;
      await new Promise((r) => closed.close(r));
      const args = ['exec', 'pg-prod', '--gateway', `https://127.0.0.1:${port}`, '-i', 'select 1'];
      const [viaAgent, direct] = [await runCli(args, ctx), await runCli(args, plainCtx)];
      expect(direct.code).toBe(1);
      expect(viaAgent).toEqual(direct);
      expect((await status(ctx)).served).toBe(0);
      expect(readFileSync(agent.socket.replace(/\.sock$/, '.log'), 'utf8')).toContain('declined: another gateway');
    } finally {
      rmSync(plainCtx.configDir, { recursive: true, force: true });
      await stop();
    }
  });

  it('waits for a review on a terminal with the spinner, as the full CLI does', async () => {
    // A person's terminal: the spinner animates only outside CI (yocto-spinner reads CI), so this
    // test's agent and clients run without it, as they would from a developer's shell.
    const ci = process.env.CI;
    delete process.env.CI;
    // The agent draws the spinner for the terminal the caller describes: started from the same shell.
    const { ctx, stop } = await withAgent({ TERM: 'xterm' });
    const plainCtx = tokenCtx(arena.gw, token);
    try {
      // script(1) gives the CLI a terminal; the review (payments-review) expires after 2 s unanswered.
      const onTerminal = (c: CliEnv) => {
        const cmd = `"${process.execPath}" "${CLI_BIN}" exec pg-prod -i "update payments set note = 'tty' where id = 1"`;
        return collect(spawn('script', ['-qefc', cmd, '/dev/null'], { env: { ...cliEnv(c), TERM: 'xterm' }, stdio: ['pipe', 'pipe', 'pipe'] }));
      };
      const viaAgent = await onTerminal(ctx);
      const direct = await onTerminal(plainCtx);
      expect((await status(ctx)).served).toBe(1);
      for (const r of [viaAgent, direct]) {
        expect(r.code).toBe(5);
        // The spinner's frame and its cursor moves, then the error once it stopped.
        expect(r.stdout).toMatch(/⠋.*waiting for review R-[0-9A-Z]+/);
        expect(r.stdout).toContain('\x1b[');
      }
      // Past the frames drawn while waiting (their number depends on timing), the same bytes.
      const end = (s: string) => s.slice(s.lastIndexOf('\x1b[?2026l')).replace(/R-[0-9A-Z]+/g, 'R-ID');
      expect(end(viaAgent.stdout)).toBe(end(direct.stdout));
      expect(end(direct.stdout)).toContain('sluice: review R-ID expired without a decision');
      expect(await one('select note from payments where id = 1')).toBe('first');
    } finally {
      rmSync(plainCtx.configDir, { recursive: true, force: true });
      await stop();
      if (ci !== undefined) process.env.CI = ci;
    }
  });
});

describe('an agent that cannot reach its gateway', () => {
  it('answers so that exec sends the request itself: the same message and exit code as without an agent', async () => {
    // A port nothing listens on: the agent's connect is refused, so nothing was sent.
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as { port: number }).port;
    await new Promise((r) => closed.close(r));
    const gateway = `https://127.0.0.1:${port}`;
    const withAgentCtx = tokenCtx(arena.gw, token);
    const plainCtx = tokenCtx(arena.gw, token);
    try {
      expect((await runCli(['agent', 'start', '--gateway', gateway], withAgentCtx)).code).toBe(0);
      const args = ['exec', 'pg-prod', '--gateway', gateway, '-i', 'select 1'];
      const [viaAgent, direct] = [await runCli(args, withAgentCtx), await runCli(args, plainCtx)];
      expect(direct.code).toBe(1);
      expect(direct.stderr).toContain('connection refused');
      expect(viaAgent).toEqual(direct);
      const agentStatus = JSON.parse((await runCli(['agent', 'status', '--json', '--gateway', gateway], withAgentCtx)).stdout) as Status;
      expect(agentStatus.served).toBe(1);
    } finally {
      await runCli(['agent', 'stop', '--gateway', gateway], withAgentCtx);
      for (const c of [withAgentCtx, plainCtx]) rmSync(c.configDir, { recursive: true, force: true });
    }
  });
});

describe('idle exit', () => {
  it('the agent exits after --idle without an exec and removes its socket; exec then goes direct', async () => {
    const ctx = tokenCtx(arena.gw, token);
    try {
      expect((await runCli(['agent', 'start', '--idle', '2s'], ctx)).code).toBe(0);
      const { socket, pid } = await status(ctx);
      expect((await runCli(['exec', 'pg-prod', '-i', 'select 1'], ctx)).code).toBe(0);
      await waitFor('the idle agent to exit', async () => !existsSync(socket) && !running(pid as number));
      expect(readFileSync(socket.replace(/\.sock$/, '.log'), 'utf8')).toContain('stopping: idle');
      const r = await runCli(['exec', 'pg-prod', '-i', 'select 1 as direct'], ctx);
      expect(r).toMatchObject({ code: 0, stdout: 'direct\n1\n', stderr: '' });
    } finally {
      rmSync(ctx.configDir, { recursive: true, force: true });
    }
  });
});

describe('a login switch', () => {
  it('takes effect at the next exec: the agent relays whatever identity the CLI reads now', async () => {
    const configDir = join(arena.gw.dir, 'login-switch');
    mkdirSync(configDir);
    const ctx: CliEnv = { configDir };
    expect((await login(arena.gw, configDir, 'alice')).code).toBe(0);
    const started = await runCli(['agent', 'start'], ctx);
    expect(started.code, started.stderr).toBe(0);
    try {
      const asAlice = await runCli(['exec', 'pg-prod', '--json', '-i', 'select 1'], ctx);
      expect(asAlice.code, asAlice.stderr).toBe(0);
      const { session } = JSON.parse(asAlice.stdout) as { session: string };
      const sessions = JSON.parse((await runCli(['sessions', '--json'], ctx)).stdout) as { id: string; email: string | null }[];
      expect(sessions.find((s) => s.id === session)?.email).toBe('alice@example.com');

      expect((await login(arena.gw, configDir, 'bob')).code).toBe(0);
      // bob is not in `eng`: the gateway refuses him, whoever logged in before.
      const asBob = await runCli(['exec', 'pg-prod', '-i', 'select 1'], ctx);
      expect(asBob.code).toBe(4);
      // Where logins live in a file (no keyring here), both execs took the fast path.
      if (existsSync(join(configDir, 'tokens.json'))) expect((await status(ctx)).served).toBe(2);
    } finally {
      await runCli(['agent', 'stop'], ctx);
    }
  });
});

describe('an agent that dies', () => {
  it('mid-exec breaks that exec off (exit 1) and the statement is cancelled; the next exec goes direct, silently', async () => {
    const { ctx, agent, stop } = await withAgent();
    try {
      const child = spawnCli(['exec', 'pg-prod', '-i', 'select pg_sleep(60) as agent_killed_probe'], ctx);
      const done = collect(child);
      const running = "select count(*)::int from pg_stat_activity where state = 'active' and query like '%agent_killed_probe%' and pid <> pg_backend_pid()";
      await waitFor('the statement to run on the target', async () => (await one(running)) === 1);
      process.kill(agent.pid as number, 'SIGKILL');
      const r = await done;
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("the gateway's answer broke off");
      // The gateway saw its request go away and cancelled the statement.
      await waitFor('pg_sleep to stop on the target', async () => (await one(running)) === 0);

      // The socket is left behind, stale: exec goes direct without a word.
      expect(existsSync(agent.socket)).toBe(true);
      const next = await runCli(['exec', 'pg-prod', '-i', 'select 1 as direct'], ctx);
      expect(next).toMatchObject({ code: 0, stdout: 'direct\n1\n', stderr: '' });
      expect((await status(ctx)).state).toBe('stale');
      // start cleans the stale socket up and starts afresh.
      const restarted = await runCli(['agent', 'start'], ctx);
      expect(restarted.code, restarted.stderr).toBe(0);
      expect((await status(ctx)).running).toBe(true);
    } finally {
      await stop();
    }
  });
});

describe('a socket not to trust', () => {
  /** A listener at the agent's socket path that records whether anyone connected. */
  async function impostor(socket: string): Promise<{ server: Server; connections: () => number }> {
    let n = 0;
    const server = createServer((s) => {
      n++;
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(socket, r));
    return { server, connections: () => n };
  }

  for (const [what, spoil, expected] of [
    ['mode 0666', (sock: string) => chmodSync(sock, 0o666), /mode 0666 is looser than 0600/],
    ['owned by another user', (sock: string) => chownSync(sock, 65534, 65534), /owned by uid 65534/],
    ['in a directory of mode 0755', (sock: string) => chmodSync(join(sock, '..'), 0o755), /mode 0755 is looser than 0700/],
  ] as const) {
    it(`is refused when ${what}: the exec goes direct with a warning and the socket is sent nothing`, async () => {
      const ctx = tokenCtx(arena.gw, token);
      try {
        // Learn the socket path from a real agent, then put an impostor there.
        expect((await runCli(['agent', 'start'], ctx)).code).toBe(0);
        const { socket } = await status(ctx);
        expect((await runCli(['agent', 'stop'], ctx)).code).toBe(0);
        const fake = await impostor(socket);
        try {
          chmodSync(socket, 0o600);
          if (process.getuid?.() !== 0 && what === 'owned by another user') return; // only root can chown
          spoil(socket);
          const r = await runCli(['exec', 'pg-prod', '-i', 'select 1 as direct'], ctx);
          expect(r.code, r.stderr).toBe(0);
          expect(r.stdout).toBe('direct\n1\n');
          expect(r.stderr).toMatch(expected);
          expect(r.stderr).toContain('running the exec directly');
          expect(fake.connections()).toBe(0);
          // start refuses it too, rather than replacing it.
          const start = await runCli(['agent', 'start'], ctx);
          expect(start.code).toBe(1);
          expect(start.stderr).toMatch(expected);
        } finally {
          fake.server.close();
        }
      } finally {
        rmSync(ctx.configDir, { recursive: true, force: true });
      }
    });
  }

  it('the agent directory and socket are created 0700 and 0600', async () => {
    const { agent, stop } = await withAgent();
    try {
      const dir = join(agent.socket, '..');
      expect(readdirSync(dir).some((f) => f.endsWith('.sock'))).toBe(true);
      expect(statSync(dir).mode & 0o777).toBe(0o700);
      expect(statSync(agent.socket).mode & 0o777).toBe(0o600);
    } finally {
      await stop();
    }
  });
});
