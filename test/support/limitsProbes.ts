// Probes for the resource-limit corpus (test/integration/adversarial-limits.test.ts): raw sockets
// that do what no well-behaved client does — stop half-way through TLS, HTTP headers, a tunnel
// upgrade or a PostgreSQL startup — and report when the other side gave up, plus the gateway
// process's resident memory and a search of its state directory.
import { once } from 'node:events';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { createBackendFramer } from '../../gateway/engines/postgres/codec/framer.js';
import type { GatewayProcess } from './binaries.js';

/** A socket whose every received byte is kept and whose close is awaited with the time it took. */
export interface Probe {
  readonly socket: Socket;
  /** Everything received so far. */
  received(): Buffer;
  /** Resolves once the peer closed (FIN or reset), with ms since the probe connected. */
  readonly closed: Promise<number>;
}

function probe(socket: Socket): Probe {
  const started = Date.now();
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  socket.on('error', () => undefined);
  // 'end' is the peer's FIN: the gateway has given up on us even if our half stays open.
  const closed = Promise.race([once(socket, 'end'), once(socket, 'close')]).then(() => Date.now() - started);
  return { socket, received: () => Buffer.concat(chunks), closed };
}

/** A TCP connection to the gateway's port that never starts TLS. */
export async function tcpProbe(gw: GatewayProcess): Promise<Probe> {
  const u = new URL(gw.url);
  const s = netConnect({ host: u.hostname, port: Number(u.port) });
  await once(s, 'connect');
  return probe(s);
}

/** A TLS connection to the gateway (trusting its CA), handshake done, nothing sent. */
export async function tlsProbe(gw: GatewayProcess): Promise<Probe> {
  const u = new URL(gw.url);
  const s = tlsConnect({ host: u.hostname, port: Number(u.port), ca: readFileSync(gw.caFile!) });
  await once(s, 'secureConnect');
  return probe(s);
}

/** Sends an upgrade request for a tunnel and waits for the status line; resolves with it. */
export async function upgrade(p: Probe, connection: string, token: string, headers: string[] = []): Promise<string> {
  p.socket.write(
    [`GET /v1/connections/${connection}/tunnel HTTP/1.1`, 'host: localhost', 'upgrade: sluice-tunnel/1', 'connection: upgrade', `authorization: Bearer ${token}`, ...headers, '', ''].join(
      '\r\n',
    ),
  );
  while (!p.received().includes('\r\n\r\n')) {
    const ended = await Promise.race([once(p.socket, 'data').then(() => false), p.closed.then(() => true)]);
    if (ended && !p.received().includes('\r\n\r\n')) throw new Error(`the gateway closed before answering the upgrade: ${p.received().toString('latin1')}`);
  }
  return p.received().toString('latin1').split('\r\n')[0]!;
}

/** A plain TCP connection to a local port (e.g. `sluice connect`'s). */
export async function localProbe(port: number): Promise<Probe> {
  const s = netConnect({ host: '127.0.0.1', port });
  await once(s, 'connect');
  return probe(s);
}

/** Whether backend bytes hold a ReadyForQuery (the session is ready for statements). */
export function hasReadyForQuery(bytes: Buffer): boolean {
  const framer = createBackendFramer();
  framer.push(bytes);
  while (framer.next()) if (framer.type === 0x5a) return true;
  return false;
}

/** A PostgreSQL session through a local port, started with `startup`, after its first ReadyForQuery. */
export async function pgProbe(port: number, startup: Buffer): Promise<Probe> {
  const p = await localProbe(port);
  p.socket.write(startup);
  while (!hasReadyForQuery(p.received())) {
    const ended = await Promise.race([once(p.socket, 'data').then(() => false), p.closed.then(() => true)]);
    if (ended) throw new Error(`the session ended during startup: ${JSON.stringify(errorsIn(p.received()))}`);
  }
  return p;
}

/** A StartupMessage from raw parameter bytes (so tests can send bytes that are not UTF-8). */
export function startupPacket(params: [string, Buffer | string][]): Buffer {
  const body = Buffer.concat([
    Buffer.from([0, 3, 0, 0]),
    ...params.flatMap(([k, v]) => [Buffer.from(`${k}\0`), Buffer.isBuffer(v) ? v : Buffer.from(v), Buffer.from([0])]),
    Buffer.from([0]),
  ]);
  const head = Buffer.alloc(4);
  head.writeInt32BE(body.length + 4);
  return Buffer.concat([head, body]);
}

/** A typed frontend message header declaring `length` (the body is the caller's to send, or not). */
export function messageHeader(type: string, length: number): Buffer {
  const h = Buffer.alloc(5);
  h[0] = type.charCodeAt(0);
  h.writeInt32BE(length, 1);
  return h;
}

/** The ErrorResponses among backend bytes, as { severity, code, message }. */
export function errorsIn(bytes: Buffer): { severity: string; code: string; message: string }[] {
  const framer = createBackendFramer();
  framer.push(bytes);
  const out: { severity: string; code: string; message: string }[] = [];
  while (framer.next()) {
    if (framer.type !== 0x45) continue;
    const fields = new Map<string, string>();
    for (const f of framer.body.toString('utf8').split('\0')) if (f.length > 0) fields.set(f[0]!, f.slice(1));
    out.push({ severity: fields.get('V') ?? fields.get('S') ?? '', code: fields.get('C') ?? '', message: fields.get('M') ?? '' });
  }
  return out;
}

/** The gateway process's resident set size in MiB (Linux /proc). */
export function rssMiB(gw: GatewayProcess): number {
  const status = readFileSync(`/proc/${gw.child.pid}/status`, 'utf8');
  const kib = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1]);
  return Math.round(kib / 102.4) / 10;
}

/** Whether `text` occurs in any file of the gateway's state directory (store, WAL, journal). */
export function stateContains(gw: GatewayProcess, text: string | Buffer): boolean {
  const walk = (dir: string): string[] =>
    readdirSync(dir).flatMap((name) => {
      const p = join(dir, name);
      return statSync(p).isDirectory() ? walk(p) : [p];
    });
  return walk(join(gw.dir, 'state')).some((f) => readFileSync(f).includes(text));
}
