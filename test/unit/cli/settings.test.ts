// The settings file: read without conf, written through it, at the path conf itself uses.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import Conf from 'conf';
import { afterAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/errors.js';
import type { Io } from '../../../src/io.js';
import { openSettings, settingsPath } from '../../../src/settings.js';

const root = mkdtempSync(join(tmpdir(), 'sluice-cli-settings-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const io = (env: NodeJS.ProcessEnv): Io => ({ stdin: new PassThrough(), stdout: new PassThrough(), stderr: new PassThrough(), env });

describe('settings', () => {
  it('a missing file reads as empty; a write creates it 0600 and later reads see it', async () => {
    const dir = join(root, 'a');
    const s = await openSettings(io({ SLUICE_CONFIG_DIR: dir }));
    expect(s.path).toBe(join(dir, 'settings.json'));
    expect(s.get('gateway')).toBeUndefined();
    await s.set('gateway', 'https://gw.example.com');
    expect(s.get('gateway')).toBe('https://gw.example.com');
    expect(statSync(s.path).mode & 0o777).toBe(0o600);
    expect((await openSettings(io({ SLUICE_CONFIG_DIR: dir }))).get('gateway')).toBe('https://gw.example.com');
  });

  it('is the file conf uses, with or without SLUICE_CONFIG_DIR', () => {
    const dir = join(root, 'b');
    expect(settingsPath(io({ SLUICE_CONFIG_DIR: dir }))).toBe(new Conf({ projectName: 'sluice', projectSuffix: '', configName: 'settings', cwd: dir }).path);
    if (process.platform === 'linux') {
      const xdg = join(root, 'xdg');
      const saved = process.env.XDG_CONFIG_HOME;
      process.env.XDG_CONFIG_HOME = xdg;
      try {
        // conf (env-paths) reads process.env; ours reads io.env, which is process.env in the CLI.
        expect(settingsPath(io({ XDG_CONFIG_HOME: xdg }))).toBe(new Conf({ projectName: 'sluice', projectSuffix: '', configName: 'settings' }).path);
      } finally {
        if (saved === undefined) delete process.env.XDG_CONFIG_HOME;
        else process.env.XDG_CONFIG_HOME = saved;
      }
    }
  });

  it('a file that is not JSON is a usage error naming it and what to do', async () => {
    const dir = join(root, 'c');
    await (await openSettings(io({ SLUICE_CONFIG_DIR: dir }))).set('gateway', 'https://x.example');
    writeFileSync(join(dir, 'settings.json'), '{ broken');
    const err = await openSettings(io({ SLUICE_CONFIG_DIR: dir })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toBe(
      `the settings file ${join(dir, 'settings.json')} is not valid JSON: fix it or delete it (then run \`sluice config set gateway URL\` or \`sluice login\` again)`,
    );
    expect(readFileSync(join(dir, 'settings.json'), 'utf8')).toBe('{ broken');
  });
});
