// HTTP through the gateway against the service directly (issue 17's targets: at least 0.5× direct
// for both). The test's own HTTPS service (test/support/httpTarget.ts), the real gateway with an
// http connection (a policy with a block rule, so every request is normalised and judged), and
// `sluice connect` as the local end; undici as the client on both sides. Figures: requests per
// second of a small JSON GET over 8 keep-alive connections for BENCH_HTTP_SECONDS (default 5) each
// way, alternating, and MB/s of a BENCH_HTTP_MB (default 256) MB download. Nothing asserted.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { openTunnel, serviceToken, startGateway, tokenCtx } from '../support/binaries.js';
import { startHttpTarget } from '../support/httpTarget.js';
import type { Row } from './postgres.js';

const MB = Number(process.env.BENCH_HTTP_MB ?? 256);
const SECONDS = Number(process.env.BENCH_HTTP_SECONDS ?? 5);
const CONCURRENCY = 8;

export async function benchHttp(log: (s: string) => void): Promise<Row[]> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-http-'));
  const target = await startHttpTarget();
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, target.ca);
  const gw = await startGateway({
    env: { BENCH_TOKEN: 'Bearer bench-token-0123456789' },
    connections: [
      {
        name: 'bench',
        type: 'http',
        target: { url: target.url, ca: caFile, headers: { Authorization: { env: 'BENCH_TOKEN' } } },
        allow: { groups: ['bench'] },
        policy: { rules: [{ id: 'no-admin', block: { paths: ['/admin/**'] } }] },
      },
    ],
    extra: { log: { level: 'warn' } },
  });
  let tunnel: Awaited<ReturnType<typeof openTunnel>> | undefined;
  const direct = new Agent({ connections: CONCURRENCY, connect: { ca: target.ca } });
  const via = new Agent({ connections: CONCURRENCY });
  try {
    tunnel = await openTunnel('bench', tokenCtx(gw, serviceToken(gw, 'bench', 'bench')));
    const directUrl = target.url;
    const viaUrl = `http://127.0.0.1:${tunnel.port}`;
    target.json = { customers: [{ name: 'Ada', id: 1 }, { name: 'Bob', id: 2 }] };

    const rps = async (base: string, agent: Agent) => {
      let count = 0;
      const until = performance.now() + SECONDS * 1000;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (performance.now() < until) {
            const res = await request(`${base}/v1/customers`, { dispatcher: agent });
            await res.body.json();
            count++;
          }
        }),
      );
      return count / SECONDS;
    };
    await rps(directUrl, direct);
    await rps(viaUrl, via);
    log(`GET small JSON, ${CONCURRENCY} keep-alive connections, ${SECONDS} s each way, alternating twice …`);
    const d: number[] = [];
    const v: number[] = [];
    for (let i = 0; i < 2; i++) {
      d.push(await rps(directUrl, direct));
      v.push(await rps(viaUrl, via));
    }
    const rd = Math.max(...d);
    const rv = Math.max(...v);
    log(`requests/s direct ${rd.toFixed(0)}, through sluice ${rv.toFixed(0)}`);

    const download = async (base: string, agent: Agent) => {
      const t0 = performance.now();
      const res = await request(`${base}/bytes/${MB * 1024 * 1024}`, { dispatcher: agent });
      let size = 0;
      for await (const c of res.body) size += (c as Buffer).length;
      if (size !== MB * 1024 * 1024) throw new Error(`download was ${size} bytes`);
      return MB / ((performance.now() - t0) / 1000);
    };
    log(`${MB} MB download, direct and through the tunnel …`);
    const md = await download(directUrl, direct);
    const mv = await download(viaUrl, via);
    log(`download direct ${md.toFixed(1)} MB/s, through sluice ${mv.toFixed(1)} MB/s`);
    return [
      { figure: `http GET small JSON, ${CONCURRENCY} keep-alive (target ≥ 0.5×)`, reference: rd, value: rv, unit: 'req/s', ratio: rv / rd },
      { figure: `http ${MB} MB download (target ≥ 0.5×)`, reference: md, value: mv, unit: 'MB/s', ratio: mv / md },
    ];
  } finally {
    await direct.close();
    await via.close();
    await tunnel?.stop();
    await gw.stop();
    await target.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
