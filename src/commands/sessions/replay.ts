// `sluice sessions replay ID [--speed N]`: plays a session back in time order — each statement
// after a psql-style prompt, then its result as the audit recorded it (masked, capped) in psql's
// table format; an ssh session's terminal output as it was sent (terminalReplay.ts). Waits follow the recorded timing divided by --speed (0: no waiting); idle gaps
// are shortened to at most MAX_IDLE_MS, as asciinema does.
import { Command, Option } from 'commander';
import type { SessionDetail } from '../../api/contract.js';
import { InterruptedError, UsageError } from '../../errors.js';
import type { Factory, GatewayFlags } from '../../factory.js';
import { say, type Io } from '../../io.js';
import { withGatewayFlags } from '../flags.js';
import { formatTime, renderResult, statements, who } from './render.js';
import { isTerminalSession } from './terminal.js';

export const MAX_IDLE_MS = 2_000;

export interface ReplayOptions extends GatewayFlags {
  id: string;
  speed: number;
}

export function defineSessionsReplay(f: Factory): Command {
  return withGatewayFlags(new Command('replay'))
    .description('play a session back: statements and results, or an ssh session\'s terminal output, as recorded')
    .argument('<id>', 'session id')
    .addOption(new Option('--speed <n>', 'playback speed (0: no waiting; idle gaps are capped at 2 s)').argParser(Number).default(1))
    .action((id: string, o: GatewayFlags & { speed: number }) => f.interruptible((signal) => runSessionsReplay({ ...o, id }, f, signal)));
}

export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

const sleep: Sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new InterruptedError('replay stopped'));
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(t), reject(new InterruptedError('replay stopped'))), { once: true });
  });

export async function runSessionsReplay(opts: ReplayOptions, f: Factory, signal: AbortSignal): Promise<void> {
  if (!(opts.speed >= 0) || !Number.isFinite(opts.speed)) throw new UsageError('--speed must be a number ≥ 0 (0: no waiting)');
  const detail = await (await f.gateway(opts)).audit.session(opts.id);
  const wait: Sleep = (ms, s) => f.clock.sleep(ms, s).catch(() => Promise.reject(new InterruptedError('replay stopped')));
  if (isTerminalSession(detail)) {
    const { replayTerminal } = await import('./terminalReplay.js');
    return replayTerminal(f.io, detail, opts.speed, MAX_IDLE_MS, signal, wait);
  }
  await replay(f.io, detail, opts.speed, signal, wait);
}

/** Writes the replay of `detail` to io.stdout, waiting between statements. */
export async function replay(io: Io, detail: SessionDetail, speed: number, signal: AbortSignal, wait: Sleep = sleep): Promise<void> {
  const s = detail.session;
  say(io, `replaying session ${s.id}: ${who(s)} on ${s.connection} from ${formatTime(s.startedAt)}${speed === 0 ? '' : ` at ${speed}×`}`);
  const prompt = `${s.database ?? s.connection}=>`;
  let clock = Date.parse(s.startedAt);
  const pause = async (iso: string | undefined) => {
    if (!iso) return;
    const t = Date.parse(iso);
    const gap = t - clock;
    clock = Math.max(clock, t);
    if (speed > 0 && gap > 0) await wait(Math.min(gap / speed, MAX_IDLE_MS), signal);
  };
  for (const st of statements(detail.events)) {
    await pause(st.query.at);
    const text = String(st.query.data.text ?? '');
    const [firstLine, ...rest] = text.split('\n');
    io.stdout.write(`${prompt} ${firstLine}\n${rest.map((l) => `${prompt.slice(0, -2)}-> ${l}\n`).join('')}`);
    if (Array.isArray(st.query.data.params) && st.query.data.params.length > 0) {
      io.stdout.write(`-- parameters: ${(st.query.data.params as (string | null)[]).map((p) => (p === null ? 'NULL' : JSON.stringify(p))).join(', ')}\n`);
    }
    if (st.decision && st.decision.data.verdict !== 'allow') io.stdout.write(`-- ${String(st.decision.data.verdict)}${st.decision.data.reason ? `: ${String(st.decision.data.reason)}` : ''}\n`);
    await pause(st.result?.at);
    io.stdout.write(renderResult(st.result));
  }
  const end = detail.events.find((e) => e.kind === 'session.end');
  if (end) {
    await pause(end.at);
    say(io, `session ended ${formatTime(end.at)}: ${String(end.data.status)}${end.data.message ? ` (${String(end.data.message)})` : ''}`);
  } else if (!s.purgedAt) {
    say(io, 'the session is still open');
  }
  if (s.purgedAt) say(io, `retention removed this session's events at ${formatTime(s.purgedAt)}`);
}
