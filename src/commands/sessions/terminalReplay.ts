// `sessions replay` for ssh sessions: each action (a command, a shell, sftp) announced on stderr,
// then its terminal output written as recorded, with the recorded timing divided by --speed and
// idle gaps capped. stdout carries exactly the bytes the host sent to stdout, so a replay can be
// compared with the original run; the host's stderr goes to stderr.
import type { SessionDetail } from '../../api/contract.js';
import { say, type Io } from '../../io.js';
import type { SessionEvent } from '../../api/contract.js';
import { formatTime, who } from './render.js';
import { terminalTimeline, type TerminalFrame } from './terminal.js';

export type Wait = (ms: number, signal: AbortSignal) => Promise<void>;

export async function replayTerminal(io: Io, detail: SessionDetail, speed: number, maxIdleMs: number, signal: AbortSignal, wait: Wait): Promise<void> {
  const s = detail.session;
  say(io, `replaying ${s.protocol} session ${s.id}: ${who(s)} on ${s.connection} from ${formatTime(s.startedAt)}${speed === 0 ? '' : ` at ${speed}×`}`);
  const timeline = terminalTimeline(detail);
  const start = Date.parse(s.startedAt);
  let clock = 0;
  const pause = async (time: number) => {
    const gap = time - clock;
    clock = Math.max(clock, time);
    if (speed > 0 && gap > 0) await wait(Math.min((gap * 1000) / speed, maxIdleMs), signal);
  };
  const play = async (frames: TerminalFrame[]) => {
    for (const f of frames) {
      if (f.type !== 'o') continue; // typed input is echoed in the output; a resize cannot be applied to the viewer's terminal
      await pause(f.time);
      (f.stderr ? io.stderr : io.stdout).write(f.data);
    }
  };
  const byAction = new Map<number | undefined, TerminalFrame[]>();
  for (const f of timeline.frames) byAction.set(f.action, [...(byAction.get(f.action) ?? []), f]);
  await play(byAction.get(undefined) ?? []);
  for (const st of actions(detail.events)) {
    await pause(Math.max(0, Date.parse(st.query.at) - start) / 1000);
    const k = st.query.data.kind ?? (Array.isArray(st.query.data.kinds) ? st.query.data.kinds[0] : undefined);
    const kind = typeof k === 'string' ? `${k}: ` : '';
    say(io, `-- ${kind}${String(st.query.data.text ?? '')}`);
    const verdict = st.decision?.data.verdict;
    if (verdict !== undefined && verdict !== 'allow') say(io, `-- ${String(verdict)}${st.decision?.data.rule ? ` by rule ${String(st.decision.data.rule)}` : ''}${st.decision?.data.reason ? `: ${String(st.decision.data.reason)}` : ''}`);
    await play(byAction.get(st.q) ?? []);
    const r = st.result?.data;
    if (r?.code !== undefined) say(io, `-- exit ${String(r.code)}`);
    else if (typeof r?.message === 'string') say(io, `-- ${r.message}`);
  }
  if (timeline.truncated) say(io, 'the gateway stopped keeping terminal output here (its per-session cap); byte counts continue in `sessions show`');
  const end = detail.events.find((e) => e.kind === 'session.end');
  if (end) say(io, `session ended ${formatTime(end.at)}: ${String(end.data.status)}${end.data.message ? ` (${String(end.data.message)})` : ''}`);
  else if (!s.purgedAt) say(io, 'the session is still open');
  if (s.purgedAt) say(io, `retention removed this session's events at ${formatTime(s.purgedAt)}`);
}

interface Action {
  q: number;
  query: SessionEvent;
  decision?: SessionEvent;
  result?: SessionEvent;
}

/** The session's actions (`action` events; `query` from gateways before the audit core) with their verdict and outcome. */
function actions(events: readonly SessionEvent[]): Action[] {
  const byQ = new Map<number, Action>();
  for (const e of events) {
    const q = e.data.q;
    if (typeof q !== 'number') continue;
    if (e.kind === 'action' || e.kind === 'query') byQ.set(q, { q, query: e });
    const a = byQ.get(q);
    if (a && e.kind === 'decision') a.decision = e;
    else if (a && e.kind === 'result') a.result = e;
  }
  return [...byQ.values()];
}
