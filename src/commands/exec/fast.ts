// What the local agent (src/agent/server.ts) runs for one `sluice exec` client (src/agent/client.ts):
// the command line read as commander reads it, the gateway resolved from the caller's flags,
// environment, settings and working directory, and the same runExec as the full CLI, writing to
// the caller's streams through the agent's frames. The agent serves only what the full CLI would
// have sent to it, and declines (the client then runs the full CLI) before anything observable
// happened whenever it is not sure to behave exactly as the full command.
import { resolve } from 'node:path';
import { agentSocketPath } from '../../agent/socket.js';
import { resolveGatewayTarget, type GatewayTarget } from '../../api/gatewayTarget.js';
import type { Agent as HttpAgent } from 'node:http';
import { createExecClient } from '../../api/exec.js';
import { REFRESH_MARGIN_SECONDS, type CredentialSource } from '../../auth/credentials.js';
import { readTokenFile, tokenFilePath } from '../../auth/tokenFile.js';
import { reportFailure } from '../../errors.js';
import type { GatewayFlags } from '../../factory.js';
import { say, type Io } from '../../io.js';
import { systemClock } from '../../runtime.js';
import { openSettings, type SettingsStore } from '../../settings.js';
import { runExec, type ExecOptions } from './run.js';

type FastFlags = Omit<ExecOptions, 'name'> & GatewayFlags;

/** Options that take a value, by every spelling commander accepts for them. */
const VALUED: Record<string, keyof FastFlags> = {
  '-i': 'input',
  '--input': 'input',
  '-f': 'file',
  '--file': 'file',
  '--format': 'format',
  '--review': 'review',
  '--timeout': 'timeout',
  '--gateway': 'gateway',
  '--ca': 'ca',
};

/**
 * `argv` as exec's options, or undefined for anything the full parser should judge: unknown or
 * repeated flags, `--`, help, a value that looks like a flag, not exactly one connection name.
 */
export function parseFastArgs(argv: readonly string[]): ({ name: string } & FastFlags) | undefined {
  if (argv[0] !== 'exec') return undefined;
  const flags: Partial<Record<keyof FastFlags, string | boolean>> = {};
  const names: string[] = [];
  const set = (key: keyof FastFlags, value: string | boolean): boolean => {
    if (key in flags) return false;
    flags[key] = value;
    return true;
  };
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('-') || arg === '-') {
      names.push(arg);
      continue;
    }
    if (arg === '--json' || arg === '--no-wait') {
      if (!set(arg === '--json' ? 'json' : 'wait', arg === '--json')) return undefined;
      continue;
    }
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg.startsWith('--') ? arg : arg.slice(0, 2);
    const key = VALUED[flag];
    if (key === undefined) return undefined;
    let value: string | undefined;
    if (eq > 0) value = arg.slice(eq + 1);
    else if (!arg.startsWith('--') && arg.length > 2) value = arg.slice(2);
    else value = argv[++i];
    if (value === undefined || (value.startsWith('-') && value !== '-') || !set(key, value)) return undefined;
  }
  if (names.length !== 1) return undefined;
  const opts: { name: string } & FastFlags = { name: names[0] as string, json: flags.json === true, wait: flags.wait !== false };
  for (const key of ['input', 'file', 'format', 'review', 'timeout', 'gateway', 'ca'] as const) {
    const v = flags[key];
    if (typeof v === 'string') opts[key] = v;
  }
  return opts;
}

/** What the agent does with one client's exec: serve it, or decline (nothing has happened yet). */
export type AgentExecPlan = { decline: string } | { run: (deps: { pool: HttpAgent; signal: AbortSignal }) => Promise<number> };

/**
 * Decides whether the agent pinned to `pinned` (at `socketPath`) may serve `argv` for a caller
 * whose working directory, environment and streams `io` describes, exactly as the full CLI would
 * run it; declines anything the full CLI must judge: flags the parser here does not know, settings
 * or a gateway it cannot resolve, another gateway, CA or config directory than this agent's, a
 * login only the keyring or a refresh can provide.
 */
export async function planAgentExec(argv: readonly string[], io: Io, pinned: { url: string; ca?: string; socketPath: string }): Promise<AgentExecPlan> {
  const parsed = parseFastArgs(argv);
  if (!parsed) return { decline: 'flags for the full CLI' };
  const { gateway, ca, ...opts } = parsed;
  let endpoint: GatewayTarget;
  let settings: SettingsStore;
  try {
    settings = await openSettings(io);
    endpoint = resolveGatewayTarget(io, { ...(gateway !== undefined ? { gateway } : {}), ...(ca !== undefined ? { ca } : {}) }, settings);
    // The socket the full CLI would pick for this caller (its config directory, gateway and CA).
    const wanted = resolve(io.cwd ?? process.cwd(), agentSocketPath(io, endpoint));
    if (endpoint.url !== pinned.url || endpoint.ca !== pinned.ca || wanted !== pinned.socketPath) return { decline: 'another gateway, CA or config directory' };
  } catch {
    // Whatever the full command would report about the settings or the gateway, let it report it.
    return { decline: 'settings or gateway for the full CLI to report' };
  }
  const credentials = cheapCredentials(io, settings, endpoint);
  if (!credentials) return { decline: 'a login only the full CLI can read' };
  return {
    run: async ({ pool, signal }) => {
      try {
        await runExec(opts, { io, clock: systemClock, exec: createExecClient(endpoint, credentials, pool), signal });
        return 0;
      } catch (err) {
        return reportFailure(err, (line) => say(io, line));
      }
    },
  };
}

/**
 * SLUICE_TOKEN, or the login in the token file when that is where this config directory keeps
 * logins and it needs no refresh; undefined when only the full CLI can tell (keyring, refresh).
 */
export function cheapCredentials(io: Io, settings: SettingsStore, endpoint: GatewayTarget): CredentialSource | undefined {
  const fromEnv = io.env.SLUICE_TOKEN;
  if (fromEnv) return { kind: 'env', token: async () => fromEnv };
  // Set when the token store fell back to the file because no keyring works (tokenStore.ts).
  if (!settings.get('fileStorageNoticeShown')) return undefined;
  let stored;
  try {
    stored = readTokenFile(tokenFilePath(settings))[endpoint.url];
  } catch {
    return undefined;
  }
  if (!stored || !(stored.expiresAt - REFRESH_MARGIN_SECONDS > Date.now() / 1000)) return undefined;
  const token = stored.accessToken;
  return { kind: 'login', token: async () => token };
}
