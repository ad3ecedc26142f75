// `sluice-gateway --version` prints package.json's version (the one the CLI reports too).
import { readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { main } from '../../../gateway/main.js';
import { ROOT } from '../../support/binaries.js';

describe('sluice-gateway --version', () => {
  it('prints the package version on stdout and exits 0', async () => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    stdout.on('data', (d: Buffer) => (out += d.toString()));
    const code = await main(['--version'], { stdout, stderr, env: {} });
    expect(code).toBe(0);
    const { version } = JSON.parse(readFileSync(`${ROOT}/package.json`, 'utf8')) as { version: string };
    expect(out.trim()).toBe(version);
  });
});
