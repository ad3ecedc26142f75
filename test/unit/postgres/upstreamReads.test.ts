// Reads of a plaintext target into one reused buffer (upstreamReads.ts): a read whose bytes the
// sink still refers to after it returned must move the next read to a fresh buffer. Loopback TCP
// on both sides: a "target" that sends numbered lines in many small writes, and a "client" that
// reads nothing until the target is done, so the sink's writes back up in the kernel and in the
// socket's queue and keep referring to the bytes they were given.
import { once } from 'node:events';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { UpstreamReads } from '../../../gateway/engines/postgres/upstreamReads.js';

const LINES = 400_000;
const line = (i: number) => `${String(i).padStart(8, '0')} ${'abcdefghijklmnopqrstuvwxyz'.slice(i % 26)}\n`;

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

async function listen(onSocket: (s: Socket) => void): Promise<number> {
  const server = createServer(onSocket);
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** Relays the target's lines through UpstreamReads to a client that reads late; returns what the client got. */
async function relay(retained: (client: Socket) => boolean): Promise<{ received: string; retainedReads: number }> {
  const targetPort = await listen((s) => {
    let i = 0;
    const more = () => {
      while (i < LINES) if (!s.write(line(i++))) return void s.once('drain', more);
      s.end();
    };
    more();
  });
  let collect!: (text: string) => void;
  const got = new Promise<string>((r) => (collect = r));
  let startReading!: () => void;
  const mayRead = new Promise<void>((r) => (startReading = r));
  const clientPort = await listen((peer) => {
    peer.pause();
    const parts: Buffer[] = [];
    void mayRead.then(() => {
      peer.on('data', (d: Buffer) => parts.push(d));
      peer.on('end', () => collect(Buffer.concat(parts).toString()));
      peer.resume();
    });
  });
  const client = connect({ host: '127.0.0.1', port: clientPort });
  await once(client, 'connect');
  const { socket, reads } = UpstreamReads.connect('127.0.0.1', targetPort);
  expect(reads.take((view) => (client.write(view), retained(client)))).toBe(true);
  socket.resume();
  await once(socket, 'end');
  client.end();
  startReading();
  const received = await got;
  socket.destroy();
  return { received, retainedReads: reads.retained };
}

describe('UpstreamReads', () => {
  it('moves to a fresh buffer after a read the sink still refers to: every byte arrives as sent', async () => {
    const { received, retainedReads } = await relay((client) => client.writableLength > 0);
    expect(retainedReads).toBeGreaterThan(0);
    expect(received).toBe(Array.from({ length: LINES }, (_, i) => line(i)).join(''));
  });

  it('would corrupt the stream if it reused a buffer still referred to (the check above can fail)', async () => {
    const { received } = await relay(() => false);
    expect(received.length).toBe(Array.from({ length: LINES }, (_, i) => line(i)).join('').length);
    expect(received).not.toBe(Array.from({ length: LINES }, (_, i) => line(i)).join(''));
  });

  it('delivers reads as copies in "data" events until the reads are taken', async () => {
    const port = await listen((s) => s.end('hello'));
    const { socket } = UpstreamReads.connect('127.0.0.1', port);
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    await once(socket, 'end');
    expect(Buffer.concat(chunks).toString()).toBe('hello');
  });
});
