// The stage of the adversarial http corpora (test/integration/adversarial-http-*.test.ts): the
// tests' own HTTPS service (with its access log) behind the real gateway, one `sluice connect`
// tunnel, the real curl, and a raw socket for what curl will not send. Every corpus uses the same
// credential, so each can search whatever the client received for it.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensureProgram } from './pgCluster.js';
import { exportAndVerify, openTunnel, serviceToken, startGateway, tokenCtx, type CliEnv, type GatewayProcess, type Tunnel } from './binaries.js';
import { startHttpTarget, type HttpTarget } from './httpTarget.js';

const execFileAsync = promisify(execFile);

/** The token the gateway injects; long enough to be scrubbed, unique enough to search for. */
export const CORPUS_SECRET = 'corpus-secret-token-5d1e08b7c4a2';
export const CORPUS_AUTH = `Bearer ${CORPUS_SECRET}`;

export interface HttpReply {
  readonly status: number;
  /** The final response's head, as received. */
  readonly headers: string;
  readonly body: string;
}

export interface HttpCorpus {
  readonly target: HttpTarget;
  readonly gw: GatewayProcess;
  readonly base: string;
  readonly port: number;
  /** curl through the tunnel (`--path-as-is`, the head kept with `-D -`). */
  curl(args: string[]): Promise<HttpReply>;
  /** Writes `bytes` on a fresh connection to the tunnel and returns everything read until it closes (or `until` matches). */
  raw(bytes: string | Buffer, until?: RegExp): Promise<string>;
  /** The whole audit trail, exported and verified, as text. */
  trail(): Promise<string>;
  stop(): Promise<void>;
}

/** curl (`--path-as-is`, the head kept with `-D -`): the final response, past any 1xx heads. */
export async function curl(args: string[]): Promise<HttpReply> {
  const { stdout } = await execFileAsync('curl', ['-sS', '-D', '-', '--path-as-is', ...args], { maxBuffer: 64 * 1024 * 1024, encoding: 'latin1' });
  const parts = stdout.split('\r\n\r\n');
  let i = 0;
  while (i + 1 < parts.length && /^HTTP\/1\.1 1\d\d/.test(parts[i]!)) i++;
  const headers = parts[i] ?? '';
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(headers)?.[1] ?? 0), headers, body: parts.slice(i + 1).join('\r\n\r\n') };
}

/** Starts the service, a gateway with one http connection `corpus-api` holding `rules`, and a tunnel. */
export async function startHttpCorpus(rules: unknown[]): Promise<HttpCorpus> {
  ensureProgram('/usr/bin/curl', 'curl');
  const work = mkdtempSync(join(tmpdir(), 'sluice-http-corpus-'));
  const target = await startHttpTarget();
  let gw: GatewayProcess | undefined;
  let tunnel: Tunnel | undefined;
  try {
    writeFileSync(join(work, 'ca.pem'), target.ca);
    gw = await startGateway({
      env: { CORPUS_TOKEN: CORPUS_AUTH },
      extra: { audit: { readers: ['auditors'] } },
      connections: [{ name: 'corpus-api', type: 'http', target: { url: target.url, ca: join(work, 'ca.pem'), headers: { Authorization: { env: 'CORPUS_TOKEN' } } }, allow: { groups: ['eng'] }, policy: { rules } }],
    });
    const ctx: CliEnv = tokenCtx(gw, serviceToken(gw, 'attacker', 'eng,auditors'));
    tunnel = await openTunnel('corpus-api', ctx);
  } catch (err) {
    await tunnel?.stop();
    await gw?.stop();
    await target.close();
    rmSync(work, { recursive: true, force: true });
    throw err;
  }
  const port = tunnel.port;
  const base = `http://127.0.0.1:${port}`;
  const gateway = gw;
  const open = tunnel;
  const auditor = tokenCtx(gateway, serviceToken(gateway, 'auditor', 'auditors'));
  return {
    target,
    gw: gateway,
    base,
    port,
    curl,
    raw: (bytes, until) =>
      new Promise<string>((resolve, reject) => {
        let text = '';
        const s = connect(port, '127.0.0.1', () => s.write(bytes));
        s.setEncoding('latin1');
        s.on('data', (d: string) => {
          text += d;
          if (until?.test(text)) return void s.destroy();
          // A complete answer with a length ends the exchange: close rather than wait for keep-alive.
          const m = /\r\ncontent-length: (\d+)\r\n[\s\S]*?\r\n\r\n/i.exec(text);
          if (m !== null && text.length >= m.index + m[0].length + Number(m[1])) s.end();
        });
        s.on('error', reject);
        s.on('close', () => resolve(text));
      }),
    async trail() {
      const { trail, verify } = await exportAndVerify(auditor, work);
      if (verify.code !== 0) throw new Error(`the exported trail does not verify: ${verify.stderr}`);
      return trail;
    },
    async stop() {
      await open.stop();
      await gateway.stop();
      await target.close();
      rmSync(work, { recursive: true, force: true });
    },
  };
}
