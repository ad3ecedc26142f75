// The floor of the tunnel's design, measured beside it: two Node.js processes relaying bytes with
// TLS between them — a local listener that opens one TLS connection per client (as `sluice
// connect` does) and a TLS server that connects each to the target (as the gateway does) — with no
// HTTP upgrade, protocol engine, policy or audit. Whatever Sluice costs beyond this pair is the
// engine's; what this pair costs against `ssh -L` is the price of the design (a Node process on
// each side, a TLS stream per client) that no engine work can take back. Run as a script it is one
// of the two relays: `node bareRelay.js server TARGET_PORT` or `client SERVER_PORT` (prints its
// port on stdout; the certificate comes in SLUICE_BENCH_CERT/KEY). With SLUICE_BENCH_TARGET_CA the
// server side reaches the target over verified TLS (as the gateway reaches an HTTPS service).
//
// The same file is direct mode's floor (`direct TARGET_PORT`, startBareDirectRelay): one Node
// process that answers a PostgreSQL client's SSLRequest with 'S', terminates its TLS and relays
// the bytes to the target over plain TCP — no parsing, no authentication, no audit. It is the
// least any Node implementation of the gateway's direct listener can cost per transaction.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect, createSecureContext, createServer as createTlsServer, TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { generate } from 'selfsigned';

export interface BareRelayPair {
  port: number;
  /** The two relay processes (server side first), for their CPU time. */
  pids: number[];
  stop(): Promise<void>;
}

/** Relays both ways with plain 'data' handlers (no streams piping): the cheapest a Node relay gets. */
function relayBoth(a: Socket, b: Socket): void {
  a.on('data', (d: Buffer) => b.write(d));
  b.on('data', (d: Buffer) => a.write(d));
  const end = () => {
    a.destroy();
    b.destroy();
  };
  for (const s of [a, b]) {
    s.on('error', end);
    s.on('close', end);
  }
}

async function listen(server: ReturnType<typeof createServer>): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as { port: number }).port;
}

async function runRelay(role: string, port: number): Promise<void> {
  if (role === 'direct') {
    const secureContext = createSecureContext({ cert: process.env.SLUICE_BENCH_CERT, key: process.env.SLUICE_BENCH_KEY });
    const server = createServer({ noDelay: true }, (raw) => {
      // The 8-byte SSLRequest, answered as PostgreSQL (and the gateway) answers it; then TLS on the same socket.
      raw.once('readable', function first() {
        const request = raw.read(8) as Buffer | null;
        if (request === null) return raw.once('readable', first);
        raw.write('S');
        const client = new TLSSocket(raw, { isServer: true, secureContext });
        const target = tcpConnect({ host: '127.0.0.1', port, noDelay: true });
        relayBoth(client, target);
      });
    });
    process.stdout.write(`${await listen(server)}\n`);
  } else if (role === 'server') {
    const server = createTlsServer({ cert: process.env.SLUICE_BENCH_CERT, key: process.env.SLUICE_BENCH_KEY }, (client) => {
      client.setNoDelay(true);
      const ca = process.env.SLUICE_BENCH_TARGET_CA;
      let target: Socket | TLSSocket;
      if (ca === undefined) target = tcpConnect({ host: '127.0.0.1', port, noDelay: true });
      else {
        target = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
        target.setNoDelay(true);
      }
      relayBoth(client, target);
    });
    process.stdout.write(`${await listen(server)}\n`);
  } else {
    const server = createServer({ noDelay: true }, (client) => {
      const up = tlsConnect({ host: '127.0.0.1', port, ca: process.env.SLUICE_BENCH_CERT, servername: 'localhost' });
      up.setNoDelay(true);
      relayBoth(client, up);
    });
    process.stdout.write(`${await listen(server)}\n`);
  }
}

async function spawnRelay(args: string[], env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), ...args], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  const port = Number(line.toString().trim());
  if (!(port > 0)) throw new Error(`the bare relay (${args.join(' ')}) printed no port: ${line.toString()}`);
  return { child, port };
}

async function benchCertEnv(): Promise<NodeJS.ProcessEnv> {
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }] }],
  });
  return { ...process.env, SLUICE_BENCH_CERT: pems.cert, SLUICE_BENCH_KEY: pems.private };
}

/** Direct mode's floor in front of `targetPort`: clients connect to `port` with sslmode=require. */
export async function startBareDirectRelay(targetPort: number): Promise<{ port: number; pid: number; stop(): Promise<void> }> {
  const { child, port } = await spawnRelay(['direct', String(targetPort)], await benchCertEnv());
  return {
    port,
    pid: child.pid!,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await once(child, 'exit');
      }
    },
  };
}

/**
 * Starts the pair in front of `targetPort` on loopback; `port` is where clients connect.
 * `targetCa`: the target speaks TLS with a certificate for `localhost` chaining to this CA.
 */
export async function startBareRelayPair(targetPort: number, targetCa?: string): Promise<BareRelayPair> {
  const env = await benchCertEnv();
  if (targetCa !== undefined) env.SLUICE_BENCH_TARGET_CA = targetCa;
  const children: ChildProcess[] = [];
  const stop = async () => {
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) {
        c.kill('SIGTERM');
        await once(c, 'exit');
      }
    }
  };
  try {
    const server = await spawnRelay(['server', String(targetPort)], env);
    children.push(server.child);
    const client = await spawnRelay(['client', String(server.port)], env);
    children.push(client.child);
    return { port: client.port, pids: [server.child.pid!, client.child.pid!], stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await runRelay(process.argv[2] ?? '', Number(process.argv[3]));
}
