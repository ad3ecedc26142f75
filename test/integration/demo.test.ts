// README's first command: `npm run demo` must bring up a gateway, dev IdP and demo database a
// newcomer can use, and every command it prints must work as printed. The test reads the printed
// steps and runs each line in a shell, as a person pasting it would: `npx sluice` resolves to this
// build's CLI and `psql` to the test cluster's, through a PATH of two shims. Two "terminals" (alice
// and bob) each have their own environment; the demo's `export SLUICE_CONFIG_DIR=…` line is what
// keeps bob's login from replacing alice's. R-XXXX and ID are the only placeholders filled in.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import type { SessionSummary } from '../../src/api/contract.js';
import { findFreePort } from '../support/pgCluster.js';
import { approveDeviceOverHttp } from '../support/deviceApproval.js';
import { CLI_BIN, collect, newConfigDir, ROOT, waitForStderr, type CliResult } from '../support/binaries.js';

const cluster = inject('pgCluster');
const children: ChildProcess[] = [];
const dirs: string[] = [];
/**
 * Signals a shell's whole process group: /bin/sh does not always exec its last command, so a
 * signal to the shell alone would leave the CLI it started running after the test.
 */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    // The group has already exited.
  }
}
const shells: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGTERM');
  for (const c of shells) signalGroup(c, 'SIGTERM');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A bin directory whose `npx sluice` is this build's CLI and whose `psql` is the cluster's. */
function shims(): string {
  const bin = mkdtempSync(join(tmpdir(), 'sluice-demo-bin-'));
  dirs.push(bin);
  writeFileSync(join(bin, 'npx'), `#!/bin/sh\n[ "$1" = sluice ] || { echo "unexpected npx $1" >&2; exit 127; }\nshift\nexec "${process.execPath}" "${CLI_BIN}" "$@"\n`);
  chmodSync(join(bin, 'npx'), 0o755);
  symlinkSync(cluster.psqlPath, join(bin, 'psql'));
  return bin;
}

describe('npm run demo', () => {
  it('every command it prints works as printed, for two users at once', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'sluice-demo-'));
    dirs.push(cwd);
    const port = await findFreePort();
    const demo = spawn(process.execPath, [join(ROOT, 'dist/gateway/dev/demo.js')], { cwd, env: { ...process.env, SLUICE_DEMO_LISTEN: `127.0.0.1:${port}`, SLUICE_DEMO_PG_LISTEN: '127.0.0.1:0' }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(demo);
    const [printed] = await waitForStderr(demo, /Sluice demo is running\.[\s\S]*Ctrl-C stops the demo\./, 90_000);
    const ca = readFileSync(join(cwd, /--ca (\S+)/.exec(printed)![1] as string));

    const { DISPLAY: _d, WAYLAND_DISPLAY: _w, SLUICE_TOKEN: _t, SLUICE_GATEWAY: _g, SLUICE_CA: _c, SLUICE_CONFIG_DIR: _s, ...base } = process.env;
    const bin = shims();
    // alice's terminal stands for the user's own config directory; bob's starts as a copy of it.
    const aliceDir = newConfigDir();
    dirs.push(aliceDir);
    const alice: NodeJS.ProcessEnv = { ...base, PATH: `${bin}:${base.PATH ?? ''}`, SLUICE_CONFIG_DIR: aliceDir };
    const terminals = { alice, bob: { ...alice } };
    let terminal: keyof typeof terminals = 'alice';
    const sh = (line: string) => {
      // Its own process group (detached), so the shell and what it started are signalled together.
      const child = spawn('/bin/sh', ['-c', line], { cwd, env: terminals[terminal], stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      shells.push(child);
      return child;
    };
    const run = (line: string): Promise<CliResult> => collect(sh(line));

    let reviewId: string | undefined;
    let held: Promise<CliResult> | undefined;
    let tunnel: ChildProcess | undefined;
    let tunnelPort: string | undefined;
    const ran: string[] = [];
    for (const raw of printed.split('\n')) {
      if (/^\S/.test(raw)) {
        if (/second terminal/.test(raw)) terminal = 'bob';
        else if (/alice's terminal|audit trail/.test(raw)) terminal = 'alice';
        continue;
      }
      const line = raw.trim();
      if (!/^(npx sluice|psql|export) /.test(line)) continue;
      ran.push(`${terminal}: ${line}`);
      const hint = /\s#\s(.*)$/.exec(line)?.[1] ?? '';
      if (line.startsWith('export ')) {
        const [, name, value] = /^export (\w+)=(\S+)$/.exec(line)!;
        terminals[terminal][name as string] = value;
      } else if (line.includes('sluice login')) {
        const child = sh(line);
        const done = collect(child);
        const [, uri] = await waitForStderr(child, /or open (\S+)/);
        await approveDeviceOverHttp(uri as string, /sign in as "(\w+)"/.exec(hint)![1] as string, { ca });
        const res = await done;
        expect(res.code, res.stderr).toBe(0);
      } else if (line.startsWith('npx sluice connect demo-pg ') && !line.includes(' -- ')) {
        tunnel = sh(line);
        tunnelPort = (await waitForStderr(tunnel, /demo-pg is ready on 127\.0\.0\.1:(\d+) as alice@example\.com/))[1];
      } else if (line.startsWith('psql ')) {
        // The tunnel above took 5433 unless something else holds it; its own banner says which.
        // With stdin at EOF psql connects (or fails with exit 2) and ends.
        const res = await run(line.replace('port=5433', `port=${tunnelPort}`));
        expect(res.code, res.stderr).toBe(0);
        signalGroup(tunnel!, 'SIGINT');
      } else if (line.includes('update orders')) {
        const child = sh(line);
        held = collect(child);
        reviewId = (await waitForStderr(child, /held for review (R-[2-9A-Z]{4})/))[1];
      } else if (line.includes('drop table')) {
        const res = await run(line);
        expect(res.code).not.toBe(0);
        expect(res.stderr).toContain('DDL is not allowed on the demo database');
      } else {
        let actual = line.replace('R-XXXX', reviewId ?? 'R-XXXX');
        if (/sessions replay ID\b/.test(line)) {
          const listed = JSON.parse((await run('npx sluice sessions --json')).stdout) as SessionSummary[];
          actual = actual.replace(/replay ID\b/, `replay ${listed.find((s) => s.status !== 'open')!.id}`);
        }
        const res = await run(actual);
        expect(res.code, `${line}\n${res.stderr}`).toBe(0);
        if (line.includes('card_number')) expect(res.stdout).toMatch(/\*{4,}\d{4}/);
        if (line.includes('audit verify')) expect(res.stdout + res.stderr).toContain('verified:');
      }
    }
    // bob's update ran once alice approved it, and the steps covered both users and the trail.
    expect((await held!).code).toBe(0);
    expect(ran).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^bob: export SLUICE_CONFIG_DIR=/),
        expect.stringMatching(/^bob: npx sluice login /),
        expect.stringMatching(/^alice: npx sluice reviews approve R-XXXX/),
        'alice: npx sluice audit key > audit-key.pem',
        'alice: npx sluice audit export > trail.jsonl',
        'alice: npx sluice audit verify trail.jsonl --key audit-key.pem',
      ]),
    );
  }, 180_000);
});
