// The HTTP proxy core's own CPU per request and per MB, without the gateway around it (no tunnel
// TLS, no audit, no policy): the tests' HTTPS service, the core in a child process of its own
// serving plain TCP connections with hooks shaped as the http engine's (an injected credential
// that is scrubbed from responses, a scan of response heads and bodies for it), and undici with 8
// keep-alive connections as the client. The child's process.cpuUsage() is the figure, so the
// service and the client are not in it. Given the root of a second build (a checkout with its own
// dist/), the two cores run in alternating blocks (A, B, A, B, …) in the same minutes and the
// paired ratios are printed: what a change to the core saves, steadier than the whole-path bench
// on a shared machine. Nothing asserted.
//
//   node dist/test/bench/httpCore.js [OTHER_ROOT]
//   BENCH_CORE_GETS (default 4000), BENCH_CORE_MB (default 64), BENCH_CORE_ROUNDS (default 4)
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Agent, request } from 'undici';
import { startHttpTarget } from '../support/httpTarget.js';

const GETS = Number(process.env.BENCH_CORE_GETS ?? 4000);
const MB = Number(process.env.BENCH_CORE_MB ?? 64);
const ROUNDS = Number(process.env.BENCH_CORE_ROUNDS ?? 4);
/** A directory: each core runs under valgrind's callgrind, and instructions per GET and per MB are counted instead of CPU time. */
const CALLGRIND = process.env.BENCH_CORE_CALLGRIND;
/** A directory: each core writes a V8 CPU profile there (--cpu-prof). */
const PROFILE = process.env.BENCH_CORE_PROF;
const CONCURRENCY = 8;
const HERE = fileURLToPath(import.meta.url);
/** This build's root: dist/test/bench/httpCore.js → the checkout. */
const OWN_ROOT = resolve(HERE, '../../../..');

interface CoreModules {
  createHttpProxy: (o: unknown) => { handle(c: unknown, s: AbortSignal): Promise<unknown> };
  createUpstream: (t: { url: string; ca: string }) => unknown;
  credentialEcho: (secrets: readonly string[]) => {
    upstreamHeaders(h: Record<string, string>): Record<string, string>;
    rebuild(method: string, res: unknown, count: (n: number) => void): Promise<unknown>;
    filter(count: (n: number) => void): unknown;
  };
  secretValues: (h: Record<string, string>) => string[];
}

/** The child: one proxy core from `root`'s build, serving plain TCP on a port it prints. */
async function runCore(root: string, url: string, ca: string): Promise<void> {
  const load = (p: string) => import(pathToFileURL(join(root, 'dist/gateway/httpProxy', p)).href);
  const m = { ...(await load('index.js')), ...(await load('credentialEcho.js')) } as CoreModules;
  const injected = { Authorization: 'Bearer bench-token-0123456789' };
  const echo = m.credentialEcho(m.secretValues(injected));
  const hooks = {
    classify: (req: { rawTarget: string }) => ({ action: { scrubbed: 0 }, target: req.rawTarget }),
    decide: () => Promise.resolve({ verdict: 'allow' }),
    inject: () => echo.upstreamHeaders(injected),
    transformResponse: (action: { scrubbed: number }, req: { method: string }, res: unknown) => echo.rebuild(req.method, res, (n) => (action.scrubbed += n)),
    responseFilter: (action: { scrubbed: number }) => echo.filter((n) => (action.scrubbed += n)),
    onOutcome: () => undefined,
  };
  const proxy = m.createHttpProxy({ upstream: m.createUpstream({ url, ca }), hooks });
  const controller = new AbortController();
  const server = createServer({ noDelay: true }, (socket) => void proxy.handle(socket, controller.signal));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  process.on('message', (msg) => {
    if (msg === 'cpu') {
      const u = process.cpuUsage();
      process.send!({ cpu: u.user + u.system });
    } else if (msg === 'exit') process.exit(0);
  });
  process.send!({ port: (server.address() as { port: number }).port });
}

interface Core {
  readonly name: string;
  readonly child: ChildProcess;
  readonly agent: Agent;
  readonly base: string;
  readonly outFile: string;
}

function ask<T>(child: ChildProcess, msg: string): Promise<T> {
  return new Promise((resolveAnswer) => {
    child.once('message', (m) => resolveAnswer(m as T));
    child.send(msg);
  });
}

async function startCore(name: string, root: string, url: string, ca: string, index: number): Promise<Core> {
  const profile = PROFILE === undefined ? {} : { execArgv: ['--cpu-prof', `--cpu-prof-dir=${PROFILE}`] };
  const callgrind = CALLGRIND === undefined ? profile : { execPath: 'valgrind', execArgv: ['--tool=callgrind', '--smc-check=all-non-file', `--callgrind-out-file=${join(CALLGRIND, `core${index}.out`)}`, process.execPath] };
  const child = fork(HERE, ['core', root, url, ca], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], ...callgrind });
  const [msg] = (await once(child, 'message')) as [{ port: number }];
  return { name, child, agent: new Agent({ connections: CONCURRENCY }), base: `http://127.0.0.1:${msg.port}`, outFile: `core${index}.out` };
}

/** Instructions the core's process ran while `block` ran (callgrind: counters zeroed before, dumped after). */
async function counted(core: Core, block: () => Promise<void>): Promise<number> {
  execFileSync('callgrind_control', ['-z', String(core.child.pid)]);
  await block();
  execFileSync('callgrind_control', ['-d', String(core.child.pid)]);
  const dumps = readdirSync(CALLGRIND!).filter((f) => f.startsWith(`${basename(core.outFile)}.`));
  const last = dumps.sort((a, b) => Number(a.split('.').pop()) - Number(b.split('.').pop())).pop()!;
  const totals = /^totals:\s+(\d+)/m.exec(readFileSync(join(CALLGRIND!, last), 'utf8'));
  return Number(totals![1]);
}

/** CPU µs the core's process spent while `block` ran (instructions under callgrind). */
async function metered(core: Core, block: () => Promise<void>): Promise<number> {
  if (CALLGRIND !== undefined) return counted(core, block);
  const before = (await ask<{ cpu: number }>(core.child, 'cpu')).cpu;
  await block();
  return (await ask<{ cpu: number }>(core.child, 'cpu')).cpu - before;
}

async function gets(core: Core, n: number): Promise<void> {
  let left = n;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (left-- > 0) {
        const res = await request(`${core.base}/v1/customers`, { dispatcher: core.agent });
        await res.body.text();
      }
    }),
  );
}

async function download(core: Core, mb: number): Promise<void> {
  const res = await request(`${core.base}/bytes/${mb * 1024 * 1024}`, { dispatcher: core.agent });
  let size = 0;
  for await (const c of res.body) size += (c as Buffer).length;
  if (size !== mb * 1024 * 1024) throw new Error(`download was ${size} bytes`);
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  const other = process.argv[2];
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-core-'));
  const target = await startHttpTarget();
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, target.ca);
  target.json = { customers: [{ name: 'Ada', id: 1 }, { name: 'Bob', id: 2 }] };
  const cores: Core[] = [await startCore('this build', OWN_ROOT, target.url, target.ca, 0)];
  if (other !== undefined) cores.push(await startCore(other, resolve(other), target.url, target.ca, 1));
  try {
    for (const c of cores) {
      await gets(c, 500);
      await download(c, 8);
    }
    const perGet = cores.map(() => [] as number[]);
    const perMb = cores.map(() => [] as number[]);
    for (let r = 0; r < ROUNDS; r++) {
      for (const [i, c] of cores.entries()) perGet[i]!.push((await metered(c, () => gets(c, GETS))) / GETS);
      for (const [i, c] of cores.entries()) perMb[i]!.push((await metered(c, () => download(c, MB))) / 1000 / MB);
    }
    const show = (xs: number[], digits: number) => xs.map((x) => x.toFixed(digits)).join(' ');
    for (const [i, c] of cores.entries()) {
      const [get, mb] = CALLGRIND === undefined ? ['CPU per GET (µs)', 'per MB (ms)'] : ['instructions per GET', 'per MB (thousands)'];
      console.log(`${c.name}: ${get} ${show(perGet[i]!, 0)} (median ${median(perGet[i]!).toFixed(0)}); ${mb} ${show(perMb[i]!, 2)} (median ${median(perMb[i]!).toFixed(2)})`);
    }
    if (cores.length === 2) {
      const ratio = (a: number[], b: number[]) => median(a.map((x, k) => x / b[k]!)).toFixed(2);
      console.log(`this build ÷ other, paired medians: per GET ${ratio(perGet[0]!, perGet[1]!)}×, per MB ${ratio(perMb[0]!, perMb[1]!)}×`);
    }
    console.log(`load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  } finally {
    for (const c of cores) {
      c.child.send('exit');
      await c.agent.close();
    }
    await target.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'core') await runCore(process.argv[3]!, process.argv[4]!, process.argv[5]!);
else await main();
