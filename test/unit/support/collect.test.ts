// The integration tests' reading of a child's output (test/support/binaries.ts collect): an audit
// export is verified from exactly what it returns, so it must not alter a byte of what the CLI wrote.
import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { collect } from '../../support/binaries.js';

describe('collect', () => {
  it('keeps a multi-byte character whole when a read ends inside it', async () => {
    const child = Object.assign(new EventEmitter(), { stdout: new PassThrough(), stderr: new PassThrough() });
    const done = collect(child as unknown as Parameters<typeof collect>[0]);
    // "…" (E2 80 A6) and "é" (C3 A9), each split between two writes that arrive as separate reads.
    const parts = [Buffer.from([0x7b, 0xe2, 0x80]), Buffer.from([0xa6, 0xc3]), Buffer.from([0xa9, 0x7d, 0x0a])];
    for (const p of parts) {
      const read = new Promise((r) => child.stdout.once('data', r));
      child.stdout.write(p);
      await read;
    }
    child.stdout.end();
    child.stderr.end();
    await Promise.all([new Promise((r) => child.stdout.once('end', r)), new Promise((r) => child.stderr.once('end', r))]);
    child.emit('close', 0);
    const r = await done;
    expect(r.stdout).toBe('{…é}\n');
    expect(Buffer.from(r.stdout, 'utf8')).toEqual(Buffer.concat(parts));
  });
});
