// The upstream login against scripted fake targets: the cases a real PostgreSQL will not produce
// on demand (a target that refuses TLS, stuffs bytes after 'S', skips SCRAM's final message, asks
// for GSSAPI, never answers, or is busy), MD5 hashing, startup contents and cancel delivery.
import { createHash } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { cancelUpstream, connectUpstream, UpstreamError, type UpstreamOptions } from '../../../gateway/engines/postgres/upstream.js';
import type { PostgresTarget } from '../../../gateway/model.js';
import { build } from './builder.js';

const PASSWORD = 'pw-Sup3r-s3cret';

/** Reads a client's messages off a socket, untyped (first) or typed. */
class Peer {
  private buf = Buffer.alloc(0);
  private wake: (() => void) | undefined;

  constructor(readonly socket: Socket) {
    socket.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake?.();
    });
    socket.on('error', () => undefined);
  }

  private async take(n: number): Promise<Buffer> {
    while (this.buf.length < n) await new Promise<void>((r) => (this.wake = r));
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  async untyped(): Promise<Buffer> {
    const len = (await this.take(4)).readInt32BE(0);
    return this.take(len - 4);
  }

  async typed(): Promise<{ type: string; body: Buffer }> {
    const head = await this.take(5);
    return { type: String.fromCharCode(head[0]!), body: await this.take(head.readInt32BE(1) - 4) };
  }
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function fakeTarget(script: (peer: Peer) => Promise<void>): Promise<number> {
  const server = createServer((socket) => {
    script(new Peer(socket)).catch(() => socket.destroy());
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

function options(port: number, over: Partial<PostgresTarget> = {}, timeoutMs = 2000): UpstreamOptions {
  return {
    connectionName: 'pg-test',
    target: { host: '127.0.0.1', port, database: 'app', user: 'gw', password: PASSWORD, sslmode: 'disable', ...over },
    database: 'app',
    parameters: [['application_name', 'sluice:alice']],
    timeoutMs,
  };
}

async function failure(p: Promise<unknown>): Promise<UpstreamError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UpstreamError);
  expect((err as Error).message).not.toContain(PASSWORD);
  return err as UpstreamError;
}

const ok = build().int32(0).typed('R');
const ready = build().byte('I').typed('Z');

describe('connectUpstream', () => {
  it('sends the startup parameters, answers MD5 correctly and collects the startup', async () => {
    let startup: Buffer | undefined;
    let answer = '';
    const port = await fakeTarget(async (peer) => {
      startup = await peer.untyped();
      peer.socket.write(build().int32(5).raw(Buffer.from('salt')).typed('R'));
      answer = (await peer.typed()).body.toString('utf8', 0, 35);
      const status = build().cstring('server_version').cstring('15.0').typed('S');
      const notice = build().byte('S').cstring('NOTICE').byte(0).typed('N');
      peer.socket.write(Buffer.concat([ok, status, build().int32(42).int32(99).typed('K'), ready, notice]));
    });
    const up = await connectUpstream(options(port));
    up.socket.destroy();
    expect(startup).toEqual(
      build().int32(196608).cstring('user').cstring('gw').cstring('database').cstring('app')
        .cstring('application_name').cstring('sluice:alice').byte(0).body(),
    );
    const inner = createHash('md5').update(`${PASSWORD}gw`).digest('hex');
    expect(answer).toBe(`md5${createHash('md5').update(inner).update('salt').digest('hex')}`);
    expect(up.parameters.get('server_version')).toBe('15.0');
    expect(up.startupFrames).toHaveLength(1);
    expect(up.backendKey).toEqual({ pid: 42, secret: 99 });
    expect(up.transactionStatus).toBe('I');
    expect(up.pending[0]).toBe(0x4e); // the NoticeResponse that came after ReadyForQuery
  });

  it('a rejected password becomes 28P01 without the password', async () => {
    const port = await fakeTarget(async (peer) => {
      await peer.untyped();
      peer.socket.write(build().int32(3).typed('R'));
      await peer.typed();
      peer.socket.end(build().byte('S').cstring('FATAL').byte('C').cstring('28P01').byte('M').cstring('password authentication failed').byte(0).typed('E'));
    });
    const err = await failure(connectUpstream(options(port)));
    expect(err).toMatchObject({ code: 'credential-rejected', sqlstate: '28P01', message: "the gateway's credential for pg-test was rejected" });
  });

  it("keeps the target's own SQLSTATE when it refuses the session", async () => {
    const port = await fakeTarget(async (peer) => {
      await peer.untyped();
      peer.socket.end(build().byte('C').cstring('53300').byte('M').cstring('sorry, too many clients already').byte(0).typed('E'));
    });
    const err = await failure(connectUpstream(options(port)));
    expect(err).toMatchObject({ code: 'refused', sqlstate: '53300' });
    expect(err.message).toContain('sorry, too many clients already');
  });

  it('refuses AuthenticationOk before the SCRAM signature was verified', async () => {
    const port = await fakeTarget(async (peer) => {
      await peer.untyped();
      peer.socket.write(build().int32(10).cstring('SCRAM-SHA-256').byte(0).typed('R'));
      await peer.typed();
      peer.socket.write(Buffer.concat([ok, ready]));
    });
    expect(await failure(connectUpstream(options(port)))).toMatchObject({ code: 'target-misbehaved', sqlstate: '08006' });
  });

  it('names an authentication method it does not support', async () => {
    const port = await fakeTarget(async (peer) => {
      await peer.untyped();
      peer.socket.write(build().int32(7).typed('R'));
    });
    const err = await failure(connectUpstream(options(port)));
    expect(err).toMatchObject({ code: 'auth-unsupported', sqlstate: '28000' });
    expect(err.message).toContain('GSSAPI');
  });

  it('sslmode require against a target without TLS is 08006', async () => {
    const port = await fakeTarget(async (peer) => {
      expect((await peer.untyped()).readInt32BE(0)).toBe(80877103);
      peer.socket.write('N');
    });
    const err = await failure(connectUpstream(options(port, { sslmode: 'require' })));
    expect(err).toMatchObject({ code: 'tls', sqlstate: '08006' });
    expect(err.message).toBe('cannot reach the target of connection pg-test: it does not accept TLS (sslmode require)');
  });

  it("refuses bytes stuffed after the target's 'S'", async () => {
    const port = await fakeTarget(async (peer) => {
      await peer.untyped();
      peer.socket.write(Buffer.concat([Buffer.from('S'), ok]));
    });
    expect(await failure(connectUpstream(options(port, { sslmode: 'require' })))).toMatchObject({ code: 'target-misbehaved' });
  });

  it('times out a target that never answers', async () => {
    const port = await fakeTarget(async (peer) => {
      await peer.untyped();
    });
    const started = Date.now();
    const err = await failure(connectUpstream(options(port, {}, 300)));
    expect(err).toMatchObject({ code: 'unreachable', sqlstate: '08006', message: 'cannot reach the target of connection pg-test: timed out' });
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('reports a refused port and a shutdown', async () => {
    const port = await fakeTarget(async () => undefined);
    await new Promise((r) => servers.pop()!.close(r));
    expect(await failure(connectUpstream(options(port)))).toMatchObject({
      sqlstate: '08006',
      message: 'cannot reach the target of connection pg-test: connection refused',
    });
    const silent = await fakeTarget(async (peer) => {
      await peer.untyped();
    });
    const abort = new AbortController();
    const pending = connectUpstream({ ...options(silent), signal: abort.signal });
    setTimeout(() => abort.abort(), 50);
    expect(await failure(pending)).toMatchObject({ code: 'aborted', sqlstate: '57P01' });
  });
});

describe('cancelUpstream', () => {
  it('delivers the real key on a new connection', async () => {
    let received: Buffer | undefined;
    const port = await fakeTarget(async (peer) => {
      received = await peer.untyped();
      peer.socket.end();
    });
    await cancelUpstream({ connectionName: 'pg-test', target: options(port).target, pid: 7, secret: -8, timeoutMs: 2000 });
    expect(received).toEqual(build().int32(80877102).int32(7).int32(-8).body());
  });
});
