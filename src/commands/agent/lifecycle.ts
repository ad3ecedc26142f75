// What `sluice agent start|stop|status|run` do. `start` spawns `agent run` detached, with SLUICE_TOKEN
// removed from its environment (the agent holds no identity), its stderr appended to the agent's
// log, and waits for the one `ready` line it prints once the socket listens.
import { spawn } from 'node:child_process';
import { closeSync, lstatSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { probeAgent, stopAgent } from '../../agent/control.js';
import { fileLog, startAgent } from '../../agent/server.js';
import { agentLogPath, agentSocketPath, unsafe } from '../../agent/socket.js';
import type { Endpoint } from '../../api/endpoint.js';
import { DURATION_EXAMPLES, parseDuration } from '../../duration.js';
import { CliError, SilentExit, UsageError } from '../../errors.js';
import type { Factory, GatewayFlags } from '../../factory.js';
import { print, say } from '../../io.js';

export const DEFAULT_IDLE = '15m';
const READY = 'ready';
/** How long `start` waits for the agent to listen. */
const START_TIMEOUT_MS = 15_000;

function idleMs(text: string | undefined): number {
  const ms = parseDuration(text ?? DEFAULT_IDLE);
  if (ms === undefined || ms === 0) throw new UsageError(`--idle "${text}" is not a duration: ${DURATION_EXAMPLES}`);
  return ms;
}

async function locate(f: Factory, flags: GatewayFlags): Promise<{ endpoint: Endpoint; socket: string }> {
  const endpoint = await f.endpoint(flags);
  return { endpoint, socket: agentSocketPath(f.io, endpoint) };
}

export async function runAgentStart(f: Factory, o: GatewayFlags & { idle?: string }): Promise<void> {
  const idle = o.idle ?? DEFAULT_IDLE;
  idleMs(idle);
  const { endpoint, socket } = await locate(f, o);
  const probe = await probeAgent(socket);
  if (probe.state === 'unsafe') throw new CliError(`refusing the agent socket ${probe.problem}: remove it and run \`sluice agent start\` again`);
  if (probe.state === 'running') return say(f.io, `sluice: the agent for ${endpoint.url} already runs (pid ${probe.status.pid})`);

  const dir = dirname(socket);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const problem = unsafe(lstatSync(dir), 'directory', 0o700);
  if (problem) throw new CliError(`refusing the agent directory ${dir}: ${problem}`);
  const log = agentLogPath(socket);
  const logFd = openSync(log, 'a', 0o600);
  const { SLUICE_TOKEN: _token, ...env } = f.io.env;
  const script = process.argv[1] as string;
  const child = spawn(process.execPath, [script, 'agent', 'run', '--gateway', endpoint.url, ...(endpoint.caFile ? ['--ca', endpoint.caFile] : []), '--idle', idle], {
    detached: true,
    env,
    stdio: ['ignore', 'pipe', logFd],
  });
  closeSync(logFd);
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new CliError(`the agent did not start within ${START_TIMEOUT_MS / 1000}s: see ${log}`)), START_TIMEOUT_MS);
      child.stdout?.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.includes(`${READY}\n`)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new CliError(`the agent exited at start (code ${code}): see ${log}`));
      });
    });
  } catch (err) {
    child.kill();
    throw err;
  }
  child.stdout?.destroy();
  child.unref();
  say(f.io, `sluice: agent started for ${endpoint.url} (pid ${child.pid}, exits after ${idle} without an exec); log: ${log}`);
}

export async function runAgentStop(f: Factory, o: GatewayFlags): Promise<void> {
  const { endpoint, socket } = await locate(f, o);
  const probe = await probeAgent(socket);
  if (probe.state === 'unsafe') throw new CliError(`refusing the agent socket ${probe.problem}`);
  if (probe.state !== 'running') return say(f.io, `sluice: no agent runs for ${endpoint.url}`);
  await stopAgent(socket);
  say(f.io, `sluice: stopped the agent for ${endpoint.url} (pid ${probe.status.pid})`);
}

export async function runAgentStatus(f: Factory, o: GatewayFlags & { json?: boolean }): Promise<void> {
  const { endpoint, socket } = await locate(f, o);
  const probe = await probeAgent(socket);
  if (o.json) print(f.io, JSON.stringify(probe.state === 'running' ? { running: true, socket, ...probe.status } : { running: false, socket, state: probe.state, ...(probe.state === 'unsafe' ? { problem: probe.problem } : {}) }));
  else if (probe.state === 'running') say(f.io, `sluice: the agent for ${endpoint.url} runs (pid ${probe.status.pid}, ${probe.status.served} execs relayed); socket ${socket}`);
  else if (probe.state === 'unsafe') say(f.io, `sluice: not using the agent socket ${probe.problem}`);
  else say(f.io, `sluice: no agent runs for ${endpoint.url}${probe.state === 'stale' ? ' (a stale socket is left; `sluice agent start` removes it)' : ''}`);
  if (probe.state !== 'running') throw new SilentExit(1);
}

export async function runAgentForeground(f: Factory, o: GatewayFlags & { idle?: string }): Promise<void> {
  const idle = idleMs(o.idle);
  const { endpoint, socket } = await locate(f, o);
  const agent = await startAgent({ url: endpoint.url, ...(endpoint.ca !== undefined ? { ca: endpoint.ca } : {}), socketPath: socket, idleMs: idle, log: fileLog(agentLogPath(socket)) });
  const onSignal = () => void agent.close();
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  process.stdout.write(`${READY}\n`);
  try {
    await agent.closed;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}
