// The local side of `sluice connect` per connection type: postgres reads the startup packet (and
// answers SSLRequest) before a tunnel exists; ssh relays from the first byte; unknown types fail.
import { createHash } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { CliError, LimitError } from '../../../src/errors.js';
import { byteRelay, localSideFor } from '../../../src/tunnel/localSide.js';

let server: Server | undefined;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

/** A connected pair: the accepted socket (what the local side sees) and the client's. */
async function pair(): Promise<{ accepted: Socket; client: Socket }> {
  const accepted = new Promise<Socket>((resolve) => {
    server = createServer((s) => resolve(s));
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', () => resolve()));
  const port = (server!.address() as { port: number }).port;
  const client = connect(port, '127.0.0.1');
  sockets.push(client, await accepted);
  return { accepted: await accepted, client };
}

function startupPacket(params: Record<string, string>): Buffer {
  const body = Buffer.concat([...Object.entries(params).map(([k, v]) => Buffer.from(`${k}\0${v}\0`)), Buffer.from([0])]);
  const head = Buffer.alloc(8);
  head.writeInt32BE(body.length + 8, 0);
  head.writeInt32BE(196608, 4);
  return Buffer.concat([head, body]);
}

describe('localSideFor', () => {
  it('relays ssh bytes from the first one, reading nothing; a local password travels only as a digest header', async () => {
    const side = localSideFor('ssh');
    expect(side.readsFirst).toBe(false);
    const { accepted, client } = await pair();
    expect(await side.open(accepted, undefined)).toEqual({ purpose: 'session', firstBytes: Buffer.alloc(0), answerable: false });
    const opening = await side.open(accepted, 'secret');
    expect(opening).toMatchObject({ purpose: 'session', firstBytes: Buffer.alloc(0), answerable: false });
    expect(Object.values(opening?.headers ?? {})).toEqual([`sha256:${createHash('sha256').update('secret').digest('hex')}`]);
    const closed = new Promise((resolve) => client.once('close', resolve));
    client.on('error', () => undefined);
    side.refuse(accepted, opening!, new LimitError('too many'), 'too many');
    await closed;
  });

  it('kubernetes is the byte relay: kubectl\'s HTTP goes through unread', () => {
    expect(localSideFor('kubernetes')).toBe(byteRelay);
  });

  it('the byte relay reads nothing and sends nothing first', async () => {
    const { accepted } = await pair();
    expect(await byteRelay.open(accepted, 'secret')).toEqual({ purpose: 'session', firstBytes: Buffer.alloc(0), answerable: false });
    accepted.destroy();
  });

  it('postgres answers SSLRequest with N, then hands over the startup packet to replay', async () => {
    const { accepted, client } = await pair();
    const side = localSideFor('postgres');
    expect(side.readsFirst).toBe(true);
    const opened = side.open(accepted, undefined);
    const answered = new Promise<Buffer>((resolve) => client.once('data', resolve));
    const ssl = Buffer.alloc(8);
    ssl.writeInt32BE(8, 0);
    ssl.writeInt32BE(80877103, 4);
    client.write(ssl);
    expect((await answered).toString()).toBe('N');
    const packet = startupPacket({ user: 'sluice', database: 'app' });
    client.write(packet);
    const opening = await opened;
    expect(opening).toMatchObject({ purpose: 'session', answerable: true });
    expect(opening!.firstBytes.equals(packet)).toBe(true);
  });

  it('refuses a type it does not know, naming it', () => {
    expect(() => localSideFor('rdp')).toThrow(CliError);
    expect(() => localSideFor('rdp')).toThrow(/"rdp"/);
  });
});
