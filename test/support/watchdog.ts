// A detached `sh` that outlives a killed test worker: vitest ends its workers without an 'exit'
// event (and a timed-out test never reaches its afterAll), so a server a test started would keep
// running for hours. The watchdog polls the test process once a second and, once it is gone,
// kills the server and removes its directory. Call `stop()` when the server was stopped normally.
import { spawn } from 'node:child_process';

const SCRIPT = 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; kill -9 "$2" 2>/dev/null; [ -n "$3" ] && rm -rf "$3"';

export interface Watchdog {
  stop(): void;
}

/** Kills `pid` (and removes `dir`, if given) once this test process is gone. */
export function watchOver(pid: number, dir?: string): Watchdog {
  const w = spawn('sh', ['-c', SCRIPT, 'sluice-test-watchdog', String(process.pid), String(pid), dir ?? ''], { stdio: 'ignore', detached: true });
  w.unref();
  return { stop: () => void w.kill() };
}
