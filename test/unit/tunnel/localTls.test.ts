// TLS on the local hop of `sluice connect`: the per-user certificate (generated once, 0600, reused,
// replaced near expiry) and the PostgreSQL local side answering SSLRequest with 'S', accepting
// PostgreSQL 17's direct TLS (ALPN `postgresql`) and refusing what PostgreSQL refuses.
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { generate } from 'selfsigned';
import { afterEach, describe, expect, it } from 'vitest';
import { loadLocalCert, type LocalCert } from '../../../src/tunnel/localCert.js';
import { localSideFor } from '../../../src/tunnel/localSide.js';

const dirs: string[] = [];
const sockets: Socket[] = [];
let server: Server | undefined;
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'sluice-localtls-'));
  dirs.push(d);
  return d;
}

async function pair(): Promise<{ accepted: Socket; client: Socket }> {
  const accepted = new Promise<Socket>((resolve) => {
    server = createServer((s) => resolve(s));
  });
  server!.listen(0, '127.0.0.1');
  await once(server!, 'listening');
  const client = connect((server!.address() as { port: number }).port, '127.0.0.1');
  client.on('error', () => undefined);
  sockets.push(client, await accepted);
  return { accepted: await accepted, client };
}

function packet(code: number, body = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(8);
  head.writeInt32BE(body.length + 8, 0);
  head.writeInt32BE(code, 4);
  return Buffer.concat([head, body]);
}
const SSL_REQUEST = packet(80877103);
const startup = packet(196608, Buffer.from('user\0sluice\0database\0app\0\0'));

/** A TLS client over `raw`, trusting only the local certificate, checking the name as verify-full does. */
async function handshake(raw: Socket, cert: LocalCert, alpn?: string[]): Promise<TLSSocket> {
  const tls = tlsConnect({ socket: raw, ca: readFileSync(cert.certFile), servername: 'localhost', ...(alpn ? { ALPNProtocols: alpn } : {}) });
  sockets.push(tls);
  await once(tls, 'secureConnect');
  return tls;
}

describe('the local certificate', () => {
  it('is generated once per config directory, 0600, for localhost and the loopback addresses', async () => {
    const dir = tempDir();
    const first = await loadLocalCert(dir);
    expect(statSync(first.certFile).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'local-tls.pem')).mode & 0o777).toBe(0o600);
    const x509 = new X509Certificate(readFileSync(first.certFile));
    expect(x509.subjectAltName).toContain('DNS:localhost');
    expect(x509.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(readFileSync(first.certFile, 'utf8')).not.toContain('PRIVATE KEY');
    const again = await loadLocalCert(dir);
    expect(again.fingerprint).toBe(first.fingerprint);
  });

  it('two runs starting at once end up with one certificate', async () => {
    const dir = tempDir();
    const [a, b] = await Promise.all([loadLocalCert(dir), loadLocalCert(dir)]);
    expect(a.fingerprint).toBe(b.fingerprint);
    expect(new X509Certificate(readFileSync(a.certFile)).fingerprint256).toBe(a.fingerprint);
  });

  it('replaces a certificate close to expiry, and a file that holds no pair', async () => {
    const dir = tempDir();
    const soon = await generate([{ name: 'commonName', value: 'old' }], { keyType: 'ec', notAfterDate: new Date(Date.now() + 86_400_000) });
    writeFileSync(join(dir, 'local-tls.pem'), soon.private + soon.cert, { mode: 0o600 });
    const renewed = await loadLocalCert(dir);
    expect(renewed.fingerprint).not.toBe(new X509Certificate(soon.cert).fingerprint256);
    writeFileSync(join(dir, 'local-tls.pem'), 'garbage');
    expect((await loadLocalCert(dir)).fingerprint).not.toBe(renewed.fingerprint);
  });
});

describe('TLS on the postgres local side', () => {
  it("answers SSLRequest with 'S', then reads the startup packet over TLS and relays over it", async () => {
    const cert = await loadLocalCert(tempDir());
    const { accepted, client } = await pair();
    const opened = localSideFor('postgres').open(accepted, undefined, cert.context);
    client.write(SSL_REQUEST);
    const [answer] = (await once(client, 'data')) as [Buffer];
    expect(answer.toString()).toBe('S');
    const tls = await handshake(client, cert);
    tls.write(startup);
    const opening = await opened;
    expect(opening).toMatchObject({ purpose: 'session', answerable: true });
    expect(opening!.firstBytes.equals(startup)).toBe(true);
    expect(opening!.client).toBeDefined();
    expect(opening!.client).not.toBe(accepted);
    // What the local side writes on the new socket arrives decrypted at the client.
    opening!.client!.write('hello');
    const [got] = (await once(tls, 'data')) as [Buffer];
    expect(got.toString()).toBe('hello');
  });

  it('asks for the local password over TLS', async () => {
    const cert = await loadLocalCert(tempDir());
    const { accepted, client } = await pair();
    const opened = localSideFor('postgres').open(accepted, 'pw', cert.context);
    client.write(SSL_REQUEST);
    await once(client, 'data');
    const tls = await handshake(client, cert);
    tls.write(startup);
    const [ask] = (await once(tls, 'data')) as [Buffer];
    expect(ask.equals(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3]))).toBe(true);
    const pw = Buffer.from('pw\0');
    const msg = Buffer.alloc(5);
    msg[0] = 0x70;
    msg.writeInt32BE(pw.length + 4, 1);
    tls.write(Buffer.concat([msg, pw]));
    expect(await opened).toMatchObject({ purpose: 'session', answerable: true });
  });

  it('refuses bytes sent after SSLRequest before the handshake (CVE-2021-23214), answering nothing', async () => {
    const cert = await loadLocalCert(tempDir());
    const { accepted, client } = await pair();
    const opened = localSideFor('postgres').open(accepted, undefined, cert.context);
    const received: Buffer[] = [];
    client.on('data', (d: Buffer) => received.push(d));
    client.write(Buffer.concat([SSL_REQUEST, startup]));
    await expect(opened).rejects.toThrow(/after SSLRequest/);
    expect(Buffer.concat(received).length).toBe(0);
  });

  it('accepts direct TLS with ALPN postgresql, and refuses it without ALPN', async () => {
    const cert = await loadLocalCert(tempDir());
    const ok = await pair();
    const opened = localSideFor('postgres').open(ok.accepted, undefined, cert.context);
    const tls = await handshake(ok.client, cert, ['postgresql']);
    expect(tls.alpnProtocol).toBe('postgresql');
    tls.write(startup);
    expect((await opened)!.firstBytes.equals(startup)).toBe(true);

    const bad = await pair();
    const refused = localSideFor('postgres').open(bad.accepted, undefined, cert.context);
    const plain = tlsConnect({ socket: bad.client, ca: readFileSync(cert.certFile), servername: 'localhost' });
    plain.on('error', () => undefined);
    sockets.push(plain);
    await expect(refused).rejects.toThrow(/ALPN/);
  });

  it("without a certificate still answers 'N' and goes on in plaintext", async () => {
    const { accepted, client } = await pair();
    const opened = localSideFor('postgres').open(accepted, undefined);
    client.write(SSL_REQUEST);
    const [answer] = (await once(client, 'data')) as [Buffer];
    expect(answer.toString()).toBe('N');
    client.write(startup);
    const opening = await opened;
    expect(opening!.client).toBeUndefined();
  });
});
