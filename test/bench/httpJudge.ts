// What judging every reading of an http request costs (gateway/engines/http/readings.ts), in CPU
// time per request: the request line alone (judgeRequest on the method and normalised path)
// against the whole judgement the engine now makes (alternate methods and paths, each path's
// spellings, judgeRequest over all of them), with the rules of docs/http.md's example and a mix of
// plain, overridden, suffixed and fullwidth requests. Blocks alternate and the figure is the
// median of the paired ratios, as elsewhere on these shared machines.
// Run alone: `npm run build && node dist/test/bench/httpJudge.js`.
import { pathToFileURL } from 'node:url';
import { normaliseTarget } from '../../gateway/engines/http/path.js';
import { compileHttpPolicy, httpPolicySchema, judgeRequest } from '../../gateway/engines/http/policy.js';
import { alternateReadings, pathSpellings } from '../../gateway/engines/http/readings.js';

const PAIRS = Number(process.env.BENCH_PAIRS ?? 7);
const ROUNDS = 20_000;

const policy = compileHttpPolicy(
  httpPolicySchema.parse({
    rules: [
      { id: 'read-only', block: { methods: ['DELETE'], paths: ['/admin/**'] } },
      { id: 'refunds-need-review', review: { methods: ['POST'], paths: ['/v1/refunds'], approvers: ['finance'] } },
      { id: 'pii', mask: { json: ['$.customers[*].email', '$..card_number'], strategy: 'partial', paths: ['/v1/customers'] } },
    ],
  }),
);

const requests: { method: string; target: string; headers: string[] }[] = [
  { method: 'GET', target: '/v1/customers?page=2', headers: ['accept', 'application/json', 'user-agent', 'curl/8'] },
  { method: 'POST', target: '/v1/orders', headers: ['content-type', 'application/json'] },
  { method: 'GET', target: '/v1/customers/42/cards', headers: ['accept', '*/*'] },
  { method: 'POST', target: '/admin/users/1', headers: ['x-http-method-override', 'DELETE'] },
  { method: 'GET', target: '/v1/refunds.json', headers: [] },
  { method: 'GET', target: '/%EF%BD%81dmin/x', headers: [] },
];

const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

function lineOnly(): void {
  for (const r of requests) {
    const n = normaliseTarget(r.target);
    if (n.ok) judgeRequest(policy, policy.rules, r.method, n.path);
  }
}

function everyReading(): void {
  for (const r of requests) {
    const n = normaliseTarget(r.target);
    if (!n.ok) continue;
    const also = alternateReadings(r.method, n.target, r.headers);
    if ('reason' in also) continue;
    const paths: string[] = [];
    for (const p of [n.path, ...also.paths]) {
      const s = pathSpellings(p);
      if ('reason' in s) break;
      paths.push(...s);
    }
    judgeRequest(policy, policy.rules, r.method, n.path, { methods: also.methods, paths: paths.slice(1) });
  }
}

/** CPU µs per request of `f`. */
function perRequest(f: () => void): number {
  const start = cpuUs();
  for (let i = 0; i < ROUNDS; i++) f();
  return (cpuUs() - start) / (ROUNDS * requests.length);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export function benchHttpJudge(log: (s: string) => void): { line: number; every: number; ratio: number } {
  perRequest(lineOnly);
  perRequest(everyReading);
  const line: number[] = [];
  const every: number[] = [];
  const ratios: number[] = [];
  for (let i = 0; i < PAIRS; i++) {
    const a = perRequest(lineOnly);
    const b = perRequest(everyReading);
    line.push(a);
    every.push(b);
    ratios.push(b / a);
  }
  const out = { line: median(line), every: median(every), ratio: median(ratios) };
  log(`http judging, CPU per request: request line only ${out.line.toFixed(2)} µs, every reading ${out.every.toFixed(2)} µs, ratio ${out.ratio.toFixed(2)}×`);
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) benchHttpJudge((s) => process.stdout.write(`${s}\n`));
