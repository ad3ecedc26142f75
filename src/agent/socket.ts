// Where the local exec agent listens, and the checks every client makes before trusting that socket
// with a bearer token. One agent per gateway URL and CA, in the config directory: the socket's name
// is a digest of both. The exec client (client.ts) computes no digest: it asks the directory's
// agents in turn, and an agent serves only a caller for whom the full CLI computes its own socket
// path, so an exec for another gateway (or the same URL with another CA) is declined and goes
// direct. The directory is 0700 and the socket 0600, both
// owned by the user: anything looser or foreign is refused, never "fixed", because whoever could
// create it could also read what is sent to it.
import { createHash } from 'node:crypto';
import { lstatSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Io } from '../io.js';
import { unsafeEntry } from './client.js';
import { settingsPath } from '../settings.js';

/** What the agent is pinned to: the gateway's URL and the CA the CLI trusts for it. */
export interface AgentTarget {
  readonly url: string;
  /** The CA file's contents (not its path: a changed file is another trust, hence another agent). */
  readonly ca?: string;
}

export function agentDir(io: Io): string {
  return join(dirname(settingsPath(io)), 'agent');
}

export function agentSocketPath(io: Io, target: AgentTarget): string {
  const digest = createHash('sha256').update(target.url).update('\0').update(target.ca ?? '').digest('hex');
  return join(agentDir(io), `${digest.slice(0, 20)}.sock`);
}

/** The agent's log, beside its socket: one line per request, never a header. */
export function agentLogPath(socketPath: string): string {
  return socketPath.replace(/\.sock$/, '.log');
}

export type SocketCheck = { state: 'ok' } | { state: 'missing' } | { state: 'unsafe'; problem: string };

/** Whether `socketPath` (and its directory) may be trusted with a token. */
export function checkAgentSocket(socketPath: string): SocketCheck {
  const dir = dirname(socketPath);
  const dirInfo = lstatOrMissing(dir);
  if (!dirInfo) return { state: 'missing' };
  const dirProblem = unsafe(dirInfo, 'directory', 0o700);
  if (dirProblem) return { state: 'unsafe', problem: `${dir}: ${dirProblem}` };
  const info = lstatOrMissing(socketPath);
  if (!info) return { state: 'missing' };
  const problem = unsafe(info, 'socket', 0o600);
  return problem ? { state: 'unsafe', problem: `${socketPath}: ${problem}` } : { state: 'ok' };
}

/** Why `info` is not a `kind` owned by us with at most `mode`'s permissions, or undefined. */
export function unsafe(info: Stats, kind: 'directory' | 'socket', mode: number): string | undefined {
  return unsafeEntry(info, kind, mode, process.getuid?.());
}

function lstatOrMissing(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
