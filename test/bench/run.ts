// `npm run bench`: every benchmark, printed as one table of ratios to a direct connection
// measured in the same run. See docs/performance.md for results and how to read them.
import { benchAudit } from './audit.js';
import { benchDirect } from './direct.js';
import { benchExec } from './exec.js';
import { benchExecGateway } from './execGateway.js';
import { benchIngest } from './ingest.js';
import { benchPolicy } from './policy.js';
import { benchPostgres, type Row } from './postgres.js';
import { benchSsh } from './ssh.js';
import { benchTunnel } from './tunnel.js';
import { benchHttp } from './http.js';
import { benchHttpMask } from './httpMask.js';
import { benchKubeExec } from './kubeExec.js';

const log = (s: string) => process.stderr.write(`bench: ${s}\n`);

async function main(): Promise<void> {
  // BENCH_ONLY=postgres|policy|audit runs one benchmark; BENCH_ONLY=recording only the recording comparison of the postgres one; BENCH_ONLY=ingest the ingest's cost per event; BENCH_ONLY=exec `sluice exec` against psql; BENCH_ONLY=exec-gateway the gateway's side of an exec (HTTP, no CLI) with and without pre-opened backends, against a direct connect and query; BENCH_ONLY=ssh scp and ssh through `sluice connect` against direct; BENCH_ONLY=tunnel the tunnel against the bare Node TLS relay pair, a policy's cost, CPU per transaction of every relay process; BENCH_ONLY=http HTTP requests and a download through `sluice connect` against direct; BENCH_ONLY=direct the gateway's direct PostgreSQL listener against direct and ssh -L; BENCH_ONLY=httpmask the CPU a masked JSON body's exact numbers cost; BENCH_ONLY=kubeexec a kubectl exec cat scanned for the held token against unscanned and direct.
  const only = process.env.BENCH_ONLY;
  const parts = ['postgres', 'recording', 'policy', 'audit', 'ingest', 'exec', 'exec-gateway', 'ssh', 'tunnel', 'http', 'direct', 'httpmask', 'kubeexec'];
  if (only !== undefined && !parts.includes(only)) throw new Error(`BENCH_ONLY=${only} names no benchmark; use one of ${parts.join(', ')}`);
  const rows: Row[] = [];
  if (only === undefined || only === 'postgres') rows.push(...(await benchPostgres(log)));
  if (only === 'recording') rows.push(...(await benchPostgres(log, 'recording')));
  if (only === undefined || only === 'policy') rows.push(...(await benchPolicy(log)));
  if (only === undefined || only === 'audit') rows.push(...(await benchAudit(log)));
  if (only === undefined || only === 'ingest') rows.push(...(await benchIngest(log)));
  if (only === undefined || only === 'exec') rows.push(...(await benchExec(log)));
  if (only === undefined || only === 'exec-gateway') rows.push(...(await benchExecGateway(log)));
  if (only === undefined || only === 'ssh') rows.push(...(await benchSsh(log)));
  if (only === undefined || only === 'tunnel') rows.push(...(await benchTunnel(log)));
  if (only === undefined || only === 'http') rows.push(...(await benchHttp(log)));
  if (only === undefined || only === 'direct') rows.push(...(await benchDirect(log)));
  if (only === undefined || only === 'httpmask') rows.push(...(await benchHttpMask(log)));
  if (only === undefined || only === 'kubeexec') rows.push(...(await benchKubeExec(log)));
  const fmt = (n: number | undefined) => (n === undefined ? '' : n >= 100 ? n.toFixed(0) : n.toFixed(2));
  const table = [
    ['figure', 'reference', 'measured', 'unit', 'ratio'],
    ...rows.map((r) => [r.figure, fmt(r.reference), fmt(r.value), r.unit, r.ratio === undefined ? '' : `${r.ratio.toFixed(2)}×`]),
  ];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  for (const r of table) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
  console.log('\nreference: a direct connection, unless the figure names another (÷ …); ratio: measured relative to reference (higher is better; for times, reference ÷ measured); medians of paired blocks');
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
