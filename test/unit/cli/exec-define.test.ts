// `defineExec`: the commander wiring of `sluice exec` (flags reach runExec, usage errors come
// before any gateway is resolved), with buffers and a gateway port that refuses at once.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defineExec } from '../../../src/commands/exec.js';
import { CliError, UsageError } from '../../../src/errors.js';
import { createFactory } from '../../../src/factory.js';
import { BufferStream, FakeClock, stdinOf } from './execFakes.js';

const configDir = mkdtempSync(join(tmpdir(), 'sluice-exec-define-'));
afterAll(() => rmSync(configDir, { recursive: true, force: true }));

function command(env: Record<string, string> = {}) {
  const stdout = new BufferStream();
  const stderr = new BufferStream();
  const io = { stdout, stderr, env: { SLUICE_CONFIG_DIR: configDir, ...env }, stdin: stdinOf(undefined) };
  const cmd = defineExec({ ...createFactory(io), clock: new FakeClock() }).exitOverride();
  return { cmd, stdout, stderr };
}

describe('sluice exec flags', () => {
  it('reports command-line mistakes before looking for a gateway', async () => {
    await expect(command().cmd.parseAsync(['pg-prod', '-i', 'select 1', '-f', 'x.sql'], { from: 'user' })).rejects.toThrow(UsageError);
    await expect(command().cmd.parseAsync(['pg-prod', '-i', 'select 1', '--format', 'xml'], { from: 'user' })).rejects.toThrow(/--format "xml"/);
    await expect(command().cmd.parseAsync(['pg-prod', '-i', 'select 1', '--timeout', 'later'], { from: 'user' })).rejects.toThrow(/--timeout "later"/);
  });

  it('passes -i, --gateway and SLUICE_TOKEN on to the request', async () => {
    const { cmd, stdout } = command({ SLUICE_TOKEN: 'slc_x' });
    const run = cmd.parseAsync(['pg-prod', '-i', 'select 1', '--json', '--no-wait', '--timeout', '5s', '--gateway', 'http://127.0.0.1:1'], { from: 'user' });
    await expect(run).rejects.toThrow(CliError);
    await expect(run).rejects.toThrow(/cannot reach the gateway at http:\/\/127\.0\.0\.1:1/);
    expect(JSON.parse(stdout.text)).toMatchObject({ status: 'error' });
  });

  it('needs a gateway (exit 2, naming the ways to give one)', async () => {
    await expect(command({ SLUICE_TOKEN: 'slc_x' }).cmd.parseAsync(['pg-prod', '-i', 'select 1'], { from: 'user' })).rejects.toThrow(/no gateway configured: pass --gateway URL/);
  });
});
