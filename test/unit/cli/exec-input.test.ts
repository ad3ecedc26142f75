// Where `sluice exec` takes its SQL from: -i, -f FILE, -f - and piped stdin; exactly one of them.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ExecEvent } from '../../../src/api/contract.js';
import { fakeExec, run } from './execFakes.js';

const OK: ExecEvent[] = [{ type: 'end', status: 'ok', statements: 1 }];
const dir = mkdtempSync(join(tmpdir(), 'sluice-exec-input-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('sluice exec input', () => {
  it('-i sends the text as given', async () => {
    const client = fakeExec(OK);
    expect((await run({ input: 'select 1; select 2' }, { client })).code).toBe(0);
    expect(client.calls[0]).toEqual({ name: 'pg-prod', request: { input: 'select 1; select 2' } });
  });

  it('-f reads the file, and the --no-wait hint names it', async () => {
    const file = join(dir, 'fix payments.sql');
    writeFileSync(file, 'update payments set note = null where id = 1;\n');
    const client = fakeExec([
      { type: 'review', id: 'R-8F3K', status: 'pending' },
      { type: 'end', status: 'review_pending', statements: 1 },
    ]);
    const r = await run({ input: undefined, file, wait: false }, { client });
    expect(client.calls[0]?.request).toEqual({ input: 'update payments set note = null where id = 1;\n', wait: false });
    expect(r.code).toBe(75);
    expect(r.stderr).toBe(`sluice: review R-8F3K is pending; once it is approved, run: sluice exec pg-prod --review R-8F3K -f '${file}'\n`);
  });

  it('-f - and piped stdin read stdin', async () => {
    for (const file of ['-', undefined]) {
      const client = fakeExec(OK);
      const r = await run({ input: undefined, ...(file ? { file } : {}) }, { client, stdin: 'select now();\n' });
      expect(r.code).toBe(0);
      expect(client.calls[0]?.request.input).toBe('select now();\n');
    }
  });

  it('-i wins over a stdin that is merely not a terminal (CI runners), and stdin is not read', async () => {
    const client = fakeExec(OK);
    expect((await run({ input: 'select 1' }, { client, stdin: 'select 2' })).code).toBe(0);
    expect(client.calls[0]?.request.input).toBe('select 1');
  });

  it('exit 2, naming the flags, for no input, two inputs, empty input or an unreadable file', async () => {
    const cases: [Parameters<typeof run>[0], string | undefined, RegExp][] = [
      [{ input: undefined }, undefined, /no SQL to run: pass the SQL with -i\/--input TEXT, -f\/--file PATH \(- for stdin\), or pipe it on stdin/],
      [{ input: 'select 1', file: '-' }, 'select 2', /-i\/--input and -f\/--file both given/],
      [{ input: '  ' }, undefined, /-i\/--input is empty/],
      [{ input: undefined }, '\n', /stdin was empty/],
      [{ input: undefined, file: join(dir, 'missing.sql') }, undefined, /cannot read -f\/--file .*missing\.sql: ENOENT/],
      [{ input: undefined, file: dir }, undefined, /is a directory/],
    ];
    mkdirSync(dir, { recursive: true });
    for (const [opts, stdin, message] of cases) {
      const client = fakeExec(OK);
      const r = await run(opts, { client, ...(stdin !== undefined ? { stdin } : {}) });
      expect(r.code, JSON.stringify(opts)).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(client.calls).toHaveLength(0);
    }
  });
});
