// Tracers attached to a running relay process for the measured window only, so start-up work is
// not counted: `strace -c -f` (system calls per transaction, every thread) and `perf record -g`
// (where the main thread's CPU goes, by category, in µs per transaction). Both attach by process
// id: starting the process under strace would trace its start-up too and put its pid behind
// strace's. Used by profile.ts (PROFILE_STRACE=1, PROFILE_PERF=1, PROFILE_BARE=1); the categories
// are those of docs/performance.md's "Where the gateway's CPU per transaction goes beyond the bare
// relay".
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';

export interface Tracer {
  /** The tracer itself: killed by the caller's cleanup if the run fails before stop(). */
  readonly child: ChildProcess;
  /** Stops tracing (waits for the tracer to write its output) and prints figures per transaction. */
  stop(transactions: number, cpuMicrosPerTransaction: number): Promise<void>;
}

function need(program: string, debianPackage: string): void {
  try {
    execFileSync('sh', ['-c', `command -v ${program}`], { stdio: 'ignore' });
  } catch {
    throw new Error(`${program} is not installed: apt-get install ${debianPackage}`);
  }
}

/** Waits until the tracer has opened its output and, for a ptrace tracer, shows as the process's tracer. */
async function attached(child: ChildProcess, file: string, pid?: number): Promise<void> {
  const traced = () => pid === undefined || /^TracerPid:\s*[1-9]/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  for (let i = 0; i < 500 && !(existsSync(file) && traced()); i++) {
    if (child.exitCode !== null) throw new Error(`${String(child.spawnfile)} exited with ${child.exitCode} before attaching`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function interrupt(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGINT');
  await exited;
}

/** `strace -c -f -p PID` for the window: calls per transaction of every system call above 0.05. */
export async function startStrace(pid: number, file: string): Promise<Tracer> {
  need('strace', 'strace');
  const child = spawn('strace', ['-c', '-f', '-p', String(pid), '-o', file], { stdio: 'ignore' });
  await attached(child, file, pid);
  return {
    child,
    async stop(transactions) {
      await interrupt(child);
      console.log('system calls per transaction (strace -c -f, all threads, the measured window only):');
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        // "% time  seconds  usecs/call  calls  [errors]  syscall"
        const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$/.exec(line);
        if (!m || m[2] === 'total') continue;
        const per = Number(m[1]) / transactions;
        if (per >= 0.05) console.log(`${per.toFixed(2).padStart(8)}  ${m[2]}`);
      }
    },
  };
}

/**
 * Where the main thread's samples fall, first match wins, in this order: a sample inside a socket
 * write counts as the write (TLS encryption and the kernel's send included) even when engine code
 * called it, so "engine JS" is the engine's own work.
 */
const CATEGORIES: readonly (readonly [string, RegExp])[] = [
  ['socket writes (TLS encrypt, send)', /StreamBase::Write|DoTryWrite|uv__write|uv_try_write/],
  ['epoll wait', /epoll_pwait/],
  ['GC on the main thread', /Scavenger|Heap::|MarkCompact|IncrementalMarking|GCTracer/],
  ['socket reads (syscall)', /^ksys_read$|^read$/],
  ['TLS decrypt', /SSL_read|ssl3_read/],
  ['audit (gateway/audit, sessionAudit)', /gateway\/audit\/|sessionAudit/],
  ['engine JS (gateway/engines)', /gateway\/engines\//],
  ['timers and immediates', /processImmediate|listOnTimeout|CheckImmediate/],
  ['microtasks (promises)', /RunMicrotasks|processTicksAndRejections/],
  ['Node streams JS', /node:internal\/streams|stream_base_commons/],
];

/**
 * `perf record -g -p PID` for the window. The process must run with `--perf-basic-prof` for its
 * JavaScript frames to have names (without it every JS frame counts as "other"). Native and kernel
 * frames are named from the binaries and are exact; JavaScript frames are named from the map V8
 * appends as it compiles, and code compiled later at a freed address keeps the first name, so the
 * split between the JavaScript categories (engine, audit, Node streams) can move between runs
 * while their sum does not: read them together.
 */
export async function startPerf(pid: number, file: string): Promise<Tracer> {
  need('perf', 'linux-perf');
  const child = spawn('perf', ['record', '-F', '2999', '-g', '-p', String(pid), '-o', file], { stdio: 'ignore' });
  await attached(child, file);
  return {
    child,
    async stop(transactions, cpuPerTx) {
      await interrupt(child);
      const script = execFileSync('perf', ['script', '-i', file, '-F', 'tid,ip,sym'], { encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'ignore'] });
      const counts = new Map<string, number>();
      let total = 0;
      let tid = '';
      let frames: string[] = [];
      const flush = () => {
        if (frames.length === 0) return;
        total++;
        const name = tid !== String(pid) ? 'other threads (ingest, GC helpers, libuv)' : (CATEGORIES.find(([, re]) => frames.some((f) => re.test(f)))?.[0] ?? 'other on the main thread');
        counts.set(name, (counts.get(name) ?? 0) + 1);
        frames = [];
      };
      for (const line of script.split('\n')) {
        // A sample is a line with its thread id alone (right-aligned, so maybe indented), then its frames.
        if (line.trim() === '') flush();
        else if (/^\s*\d+\s*$/.test(line)) {
          flush();
          tid = line.trim();
        } else frames.push(line.trim().replace(/^[0-9a-f]+\s+/, ''));
      }
      flush();
      console.log(`CPU per transaction by category (perf, ${total} samples; shares of ${cpuPerTx.toFixed(1)} µs; the JavaScript categories' split is approximate, their sum is not):`);
      for (const [name, n] of [...counts].sort((a, b) => b[1] - a[1])) console.log(`${((n / total) * cpuPerTx).toFixed(1).padStart(8)} µs  ${name}`);
    },
  };
}
