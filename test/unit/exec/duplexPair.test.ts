// The in-memory duplex pair the exec endpoint hands the engine: bytes cross in order, a reader
// that stops reading stops the writer (write() returns false and its callbacks wait), ending one
// side ends the other's readable, and destroying one side closes both.
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { duplexPair } from '../../../gateway/exec/duplexPair.js';

describe('duplexPair', () => {
  it('carries bytes both ways, in order', async () => {
    const [a, b] = duplexPair();
    const gotB: Buffer[] = [];
    const gotA: Buffer[] = [];
    b.on('data', (d: Buffer) => gotB.push(d));
    a.on('data', (d: Buffer) => gotA.push(d));
    a.write('one ');
    a.write('two');
    b.write('back');
    a.end();
    await once(b, 'end');
    expect(Buffer.concat(gotB).toString()).toBe('one two');
    expect(Buffer.concat(gotA).toString()).toBe('back');
  });

  it('holds the writer while the reader does not read, and releases it when it does', async () => {
    const [a, b] = duplexPair(1024);
    const chunk = Buffer.alloc(512, 1);
    let acknowledged = 0;
    let ok = true;
    let writes = 0;
    while (ok && writes < 100) {
      ok = a.write(chunk, () => acknowledged++);
      writes++;
    }
    expect(ok).toBe(false);
    // Nothing is read: the writer's buffer plus the reader's buffer bound what is in flight.
    await new Promise((r) => setImmediate(r));
    expect(writes).toBeLessThan(10);
    expect(acknowledged).toBeLessThan(writes);
    const drained = once(a, 'drain');
    let read = 0;
    b.on('data', (d: Buffer) => (read += d.length));
    await drained;
    expect(acknowledged).toBe(writes);
    await new Promise((r) => setImmediate(r));
    expect(read).toBe(writes * chunk.length);
  });

  it('ending one side ends the other side\'s readable', async () => {
    const [a, b] = duplexPair();
    b.resume();
    a.end('last');
    await once(b, 'end');
    expect(b.readableEnded).toBe(true);
  });

  it('destroying one side closes the other and fails a write waiting on it', async () => {
    const [a, b] = duplexPair(16);
    const errors: Error[] = [];
    a.on('error', (e: Error) => errors.push(e));
    a.write(Buffer.alloc(64));
    const waiting = new Promise<Error | null | undefined>((r) => a.write(Buffer.alloc(64), r));
    const closed = once(a, 'close');
    b.destroy();
    await closed;
    expect(a.destroyed).toBe(true);
    expect(b.destroyed).toBe(true);
    await expect(waiting).resolves.toBeInstanceOf(Error);
  });

  it('refuses writes once the peer is gone', async () => {
    const [a, b] = duplexPair();
    b.destroy();
    await once(a, 'close');
    expect(a.write('x')).toBe(false);
  });
});
