// The exec fast path: `sluice exec NAME …` through the local agent (`sluice agent start`) without
// loading the full CLI (commander, the keyring, undici, the TLS client). bin/sluice.js tries it
// first for `exec`; it answers `undefined`, before anything observable happened, whenever it is not
// sure to behave exactly as the full command: flags it does not know (or `--`, `--help`), no agent
// for the resolved gateway, a login only the keyring or a refresh can provide. It then runs the
// same runExec with the same rendering; an agent that is gone by the time the request is sent
// (nothing reached the gateway) is bypassed by sending the request directly.
import { checkAgentSocket, agentSocketPath } from '../../agent/socket.js';
import { resolveGatewayTarget, type GatewayTarget } from '../../api/gatewayTarget.js';
import { AgentUnavailableError, createExecClient, type ExecClient } from '../../api/exec.js';
import { REFRESH_MARGIN_SECONDS, type CredentialSource } from '../../auth/credentials.js';
import { readTokenFile, tokenFilePath } from '../../auth/tokenFile.js';
import { reportFailure } from '../../errors.js';
import type { GatewayFlags } from '../../factory.js';
import { processIo, say, type Io } from '../../io.js';
import { systemClock, withSigint } from '../../runtime.js';
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

/** The exit code of `sluice exec` run through the agent, or undefined: run the full CLI instead. */
export async function fastExec(argv: readonly string[], io: Io = processIo()): Promise<number | undefined> {
  const parsed = parseFastArgs(argv);
  if (!parsed) return undefined;
  const { gateway, ca, ...opts } = parsed;
  let endpoint: GatewayTarget;
  let settings: SettingsStore;
  let socket: string;
  try {
    settings = await openSettings(io);
    endpoint = resolveGatewayTarget(io, { ...(gateway !== undefined ? { gateway } : {}), ...(ca !== undefined ? { ca } : {}) }, settings);
    socket = agentSocketPath(io, endpoint);
    const check = checkAgentSocket(socket);
    if (check.state === 'missing') return undefined;
    if (check.state === 'unsafe') {
      say(io, `sluice: warning: not using the agent socket ${check.problem}; running the exec directly`);
      return undefined;
    }
  } catch {
    // Whatever the full command would report about the settings or the gateway, let it report it.
    return undefined;
  }
  const credentials = cheapCredentials(io, settings, endpoint);
  if (!credentials) return undefined;

  const viaAgent = createExecClient(endpoint, credentials, socket);
  const direct = createExecClient(endpoint, credentials);
  const exec: ExecClient = {
    async exec(name, request, signal) {
      try {
        return await viaAgent.exec(name, request, signal);
      } catch (err) {
        // The request provably never reached the gateway: send it ourselves.
        if (err instanceof AgentUnavailableError) return direct.exec(name, request, signal);
        throw err;
      }
    },
  };
  try {
    await withSigint((signal) => runExec(opts, { io, clock: systemClock, exec, signal }));
    return 0;
  } catch (err) {
    return reportFailure(err, (line) => say(io, line));
  }
}

/**
 * SLUICE_TOKEN, or the login in the token file when that is where this config directory keeps
 * logins and it needs no refresh; undefined when only the full CLI can tell (keyring, refresh).
 */
function cheapCredentials(io: Io, settings: SettingsStore, endpoint: GatewayTarget): CredentialSource | undefined {
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
