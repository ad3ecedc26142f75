// A fixture Kubernetes API server for integration tests (no real API server can run on these
// machines): Node https with a CA generated per fixture, a required bearer token (compared in
// constant time; 401 with a Status otherwise, as the real server answers), and an access log the
// test reads to prove what reached the target and what never did. It speaks the real API's
// shapes (kubeObjects.ts) for discovery, namespaces, pods, secrets and events, including
// server-side printing Tables and watch streams, and serves `pods/exec` and `pods/attach` over
// WebSocket with the `v5.channel.k8s.io` subprotocol (or `v4.channel.k8s.io` when the fixture is
// told to offer only that): a real `sh` per exec, without a pty, its stdin/stdout/stderr on
// channels 0/1/2 and its exit on the status channel 3. `pods/portforward` is served as kubectl
// 1.31+ asks for it, SPDY/3.1 tunnelled in a WebSocket (kubePortForward.ts), to 127.0.0.1:PORT.
// A TokenReview endpoint answers with the
// reviewed token echoed in `spec` (the caller's own when the review names none), gzip-coded
// whatever the client asked for, as a service that ignores Accept-Encoding does. stop() closes
// every socket and kills every child.
import { spawn, type ChildProcess } from 'node:child_process';
import { timingSafeEqual, randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { generate } from 'selfsigned';
import { WebSocketServer, type WebSocket } from 'ws';
import { servePortForward, SPDY_PORTFORWARD_PROTOCOL } from './kubePortForward.js';
import { classifyPath, handleResource } from './kubeRoutes.js';
import { namespace, pod, secret, type StoredObject } from './kubeObjects.js';

export interface AccessEntry {
  readonly method: string;
  /** The request-target exactly as received. */
  readonly url: string;
  /** Whether the request carried the fixture's token (401 otherwise). */
  readonly authorized: boolean;
  readonly status: number;
  /** The WebSocket subprotocol chosen, for exec/attach. */
  readonly subprotocol?: string;
  /** What an upgrade request asked for (`Upgrade` and `Sec-WebSocket-Protocol`). */
  readonly upgrade?: string;
}

export interface KubeFixture {
  /** `https://127.0.0.1:PORT` */
  readonly server: string;
  /** PEM of the CA that signed the server's certificate. */
  readonly ca: string;
  /** The bearer token the server requires. */
  readonly token: string;
  /** A client certificate (CN sluice-gateway, signed by the CA) the server accepts instead of the token. */
  readonly clientCert: string;
  readonly clientKey: string;
  readonly log: AccessEntry[];
  /** The objects the server holds (tests check deletions on the target itself). */
  readonly objects: StoredObject[];
  /** Every command an exec started, as argv. */
  readonly execs: string[][];
  stop(): Promise<void>;
}

export const EXEC_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io'] as const;

export async function startKubeFixture(opts: { protocols?: readonly string[] } = {}): Promise<KubeFixture> {
  const offered = opts.protocols ?? EXEC_PROTOCOLS;
  const caPems = await generate([{ name: 'commonName', value: 'sluice-fixture-ca' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  const leaf = await generate([{ name: 'commonName', value: 'kube-apiserver' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    ca: { key: caPems.private, cert: caPems.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }, { type: 2, value: 'localhost' }] },
    ],
  });
  const client = await generate([{ name: 'commonName', value: 'sluice-gateway' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    ca: { key: caPems.private, cert: caPems.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true },
      { name: 'extKeyUsage', clientAuth: true },
    ],
  });
  const token = randomBytes(24).toString('base64url');
  const expected = Buffer.from(`Bearer ${token}`);
  const log: AccessEntry[] = [];
  const execs: string[][] = [];
  const children = new Set<ChildProcess>();
  const sockets = new Set<Socket>();
  const objects: StoredObject[] = [
    namespace('default'),
    namespace('staging'),
    namespace('kube-system'),
    pod('default', 'web-1'),
    pod('default', 'web-2'),
    pod('staging', 'worker-1'),
    secret('default', 'db-credentials', { password: 'fixture-db-password' }),
  ];
  // As the API server: a bearer token, when sent, decides; else a verified client certificate.
  const authorized = (req: IncomingMessage) => {
    if (req.headers.authorization !== undefined) {
      const got = Buffer.from(req.headers.authorization);
      return got.length === expected.length && timingSafeEqual(got, expected);
    }
    const tls = req.socket as import('node:tls').TLSSocket;
    return tls.authorized && tls.getPeerCertificate().subject?.CN === 'sluice-gateway';
  };

  const server = https.createServer({ key: leaf.private, cert: leaf.cert, ca: caPems.cert, requestCert: true, rejectUnauthorized: false }, (req: IncomingMessage, res: ServerResponse) => {
    const ok = authorized(req);
    res.on('finish', () => log.push({ method: req.method ?? '', url: req.url ?? '', authorized: ok, status: res.statusCode }));
    if (!ok) return sendJson(res, 401, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
    if (req.method === 'POST' && new URL(req.url ?? '/', 'https://fixture').pathname === '/apis/authentication.k8s.io/v1/tokenreviews') return tokenReview(req, res);
    const { status, body, stream } = handleResource(objects, req);
    if (stream) return stream(res);
    sendJson(res, status, body);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });

  const wss = new WebSocketServer({
    noServer: true,
    // As an API server behind a proxy that compresses could: accepts permessage-deflate when offered.
    perMessageDeflate: { threshold: 0 },
    handleProtocols: (protocols: Set<string>) => offered.find((p) => protocols.has(p)) ?? false,
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const entry = { method: req.method ?? '', url: req.url ?? '', authorized: authorized(req), upgrade: `${req.headers.upgrade ?? ''}; ${req.headers['sec-websocket-protocol'] ?? ''}` };
    const path = classifyPath(req.url ?? '');
    const refuse = (status: number, text: string) => {
      log.push({ ...entry, status });
      socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message: text, code: status })}`);
    };
    if (!entry.authorized) return refuse(401, 'Unauthorized');
    if (path?.kind !== 'pods' || !['exec', 'attach', 'portforward'].includes(path.subresource) || !objects.some((o) => o.kind === 'pods' && o.namespace === path.namespace && o.name === path.name)) return refuse(404, 'Not Found');
    const asked = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    if (path.subresource === 'portforward') {
      // kubectl's SPDY tunnelled in WebSocket; its plain SPDY/3.1 fallback is not served.
      if (String(req.headers.upgrade).toLowerCase() !== 'websocket' || !asked.includes(SPDY_PORTFORWARD_PROTOCOL)) return refuse(400, 'Bad Request');
      log.push({ ...entry, status: 101, subprotocol: SPDY_PORTFORWARD_PROTOCOL });
      return servePortForward(req, socket, head, token, sockets);
    }
    // SPDY/3.1 (kubectl's fallback) is not served; nor is a WebSocket with no protocol offered here.
    if (String(req.headers.upgrade).toLowerCase() !== 'websocket' || !offered.some((p) => asked.includes(p))) return refuse(400, 'Bad Request');
    wss.handleUpgrade(req, socket, head, (ws) => {
      log.push({ ...entry, status: 101, subprotocol: ws.protocol });
      const query = new URL(req.url ?? '/', 'https://fixture').searchParams;
      const argv = path.subresource === 'attach' ? ['sh'] : query.getAll('command');
      execs.push(argv);
      if (argv[0] === PRINT_TOKEN) printToken(socket, ws, argv[1] ?? '', token);
      else runExec(ws, argv, query.get('tty') === 'true', children);
    });
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    server: `https://127.0.0.1:${port}`,
    ca: caPems.cert,
    token,
    clientCert: client.cert,
    clientKey: client.private,
    log,
    objects,
    execs,
    async stop() {
      for (const c of children) c.kill('SIGKILL');
      for (const s of sockets) s.destroy();
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A TokenReview that authenticates every token and echoes it back in `spec`, gzip-coded. */
function tokenReview(req: IncomingMessage, res: ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    let spec: { token?: string } = {};
    try {
      spec = ((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { spec?: { token?: string } }).spec ?? {});
    } catch {
      // an empty or broken review reviews the caller's own token
    }
    const token = spec.token || /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] || '';
    const body = gzipSync(JSON.stringify({ kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1', metadata: {}, spec: { token }, status: { authenticated: true, user: { username: 'system:serviceaccount:default:gateway' } } }));
    res.writeHead(201, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': body.length });
    res.end(body);
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** The remotecommand channels (k8s.io/apimachinery/pkg/util/remotecommand). */
const enum Channel {
  Stdin = 0,
  Stdout = 1,
  Stderr = 2,
  Error = 3,
  Resize = 4,
  /** v5: `[255, n]` closes stream n (the client's stdin EOF). */
  Close = 255,
}

/**
 * The exec command that makes the "container" print the fixture's own token (as a pod sharing the
 * gateway's service-account token would), framed as `how` says: `one-frame`, `two-messages` (two
 * stdout messages), `two-frames` (one message in two fragments) or `two-writes` (one frame in two
 * TCP writes), the split inside the token. Written on the socket by hand so the framing is exact.
 */
export const PRINT_TOKEN = 'sluice-fixture-print-token';

function printToken(socket: Socket, ws: WebSocket, how: string, token: string): void {
  const frame = (opcode: number, payload: Buffer, fin = true) => Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode, payload.length]), payload]);
  const stdout = (text: string) => Buffer.concat([Buffer.from([Channel.Stdout]), Buffer.from(text)]);
  const text = `token: ${token}\n`;
  const half = 7 + Math.floor(token.length / 2);
  const parts =
    how === 'two-messages'
      ? [frame(2, stdout(text.slice(0, half))), frame(2, stdout(text.slice(half)))]
      : how === 'two-frames'
        ? [frame(2, stdout(text.slice(0, half)), false), frame(0, Buffer.from(text.slice(half)))]
        : how === 'two-writes'
          ? ((f) => [f.subarray(0, 3 + half), f.subarray(3 + half)])(frame(2, stdout(text)))
          : [frame(2, stdout(text))];
  const status = frame(2, Buffer.concat([Buffer.from([Channel.Error]), Buffer.from(JSON.stringify({ metadata: {}, status: 'Success' }))]));
  socket.setNoDelay(true);
  // Channels 1 and 2 announced by empty frames first, as the API server's streams (and runExec) do.
  socket.write(Buffer.concat([frame(2, stdout('')), frame(2, Buffer.from([Channel.Stderr]))]));
  socket.write(parts[0]!);
  // A pause between the writes so they leave as separate TCP segments and reach the gateway in separate reads.
  setTimeout(() => {
    for (const p of parts.slice(1)) socket.write(p);
    socket.write(status);
    ws.close(1000);
  }, 150);
}

/** Runs argv without a pty; with a tty requested, stderr joins stdout as a terminal would show it. */
function runExec(ws: WebSocket, argv: string[], tty: boolean, children: Set<ChildProcess>): void {
  const send = (channel: Channel, data: Buffer | string) => {
    if (ws.readyState === ws.OPEN) ws.send(Buffer.concat([Buffer.from([channel]), Buffer.from(data)]));
  };
  if (argv.length === 0) {
    send(Channel.Error, JSON.stringify({ metadata: {}, status: 'Failure', message: 'you must specify at least 1 command', reason: 'BadRequest', code: 400 }));
    ws.close(1000);
    return;
  }
  const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', PS1: '$ ', HOME: '/tmp' } });
  children.add(child);
  // Channels 1 and 2 are announced by an empty frame, as the API server's streams do.
  send(Channel.Stdout, Buffer.alloc(0));
  if (!tty) send(Channel.Stderr, Buffer.alloc(0));
  child.stdout.on('data', (d: Buffer) => send(Channel.Stdout, d));
  child.stderr.on('data', (d: Buffer) => send(tty ? Channel.Stdout : Channel.Stderr, d));
  child.stdin.on('error', () => undefined);
  ws.on('message', (data: Buffer) => {
    const channel = data[0];
    if (channel === Channel.Stdin) child.stdin.write(data.subarray(1));
    else if (channel === Channel.Close && data[1] === Channel.Stdin) child.stdin.end();
  });
  ws.on('close', () => child.kill('SIGKILL'));
  child.on('error', (err) => {
    send(Channel.Error, JSON.stringify({ metadata: {}, status: 'Failure', message: `exec failed: ${err.message}`, reason: 'InternalError', code: 500 }));
    ws.close(1000);
  });
  child.on('close', (code, signal) => {
    children.delete(child);
    const exit = code ?? (signal ? 128 + 9 : 1);
    const statusFrame =
      exit === 0
        ? { metadata: {}, status: 'Success' }
        : { metadata: {}, status: 'Failure', message: `command terminated with non-zero exit code: exit status ${exit}`, reason: 'NonZeroExitCode', details: { causes: [{ reason: 'ExitCode', message: String(exit) }] } };
    send(Channel.Error, JSON.stringify(statusFrame));
    ws.close(1000);
  });
}
