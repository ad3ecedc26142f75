// The terminal stream of an ssh session as the gateway's ssh engine records it, turned into one
// timeline that `sessions replay` plays and `sessions export --cast` writes as asciicast v2.
// The engine stamps each event with `t`, seconds since its channel opened (exact relative timing),
// and the audit core with `at` (wall clock, ms): a channel's origin is taken from its first event,
// so channels opened one after another keep their order and gaps.
import type { SessionDetail, SessionEvent } from '../../api/contract.js';

/** The ssh engine's event kinds (gateway/engines/ssh/recorder.ts). */
export const SSH_EVENT = {
  output: 'ssh.output',
  input: 'ssh.input',
  resize: 'ssh.resize',
  truncated: 'ssh.truncated',
  sftp: 'ssh.sftp',
} as const;

/** The kubernetes engine's terminal kinds for exec/attach streams (gateway/engines/kubernetes/recorder.ts), same fields. */
export const K8S_EVENT = {
  output: 'k8s.output',
  input: 'k8s.input',
  resize: 'k8s.resize',
  truncated: 'k8s.truncated',
} as const;

const FRAME_TYPES: Readonly<Record<string, 'o' | 'i' | 'r'>> = {
  [SSH_EVENT.output]: 'o',
  [SSH_EVENT.input]: 'i',
  [SSH_EVENT.resize]: 'r',
  [K8S_EVENT.output]: 'o',
  [K8S_EVENT.input]: 'i',
  [K8S_EVENT.resize]: 'r',
};

export interface TerminalFrame {
  /** Seconds since the session started, never decreasing from one frame to the next. */
  time: number;
  /** asciicast's event codes: output, input, resize. */
  type: 'o' | 'i' | 'r';
  /** Text for o/i; `COLSxROWS` for r. */
  data: string;
  /** The channel's action (the `q` of its `query` event). */
  action: number | undefined;
  stderr?: true;
}

export interface TerminalTimeline {
  frames: TerminalFrame[];
  /** The first window size recorded, else 80x24 (an exec without a pty has none). */
  width: number;
  height: number;
  /** The engine stopped keeping terminal bytes at its per-session cap. */
  truncated: boolean;
}

export const DEFAULT_SIZE = { width: 80, height: 24 } as const;

/** Whether the session carries terminal streams (ssh; kubernetes, whose exec/attach are), so replay shows it as one. */
export function isTerminalSession(detail: SessionDetail): boolean {
  return detail.session.protocol === 'ssh' || detail.session.protocol === 'kubernetes' || detail.events.some((e) => e.kind.startsWith('ssh.'));
}

export function terminalTimeline(detail: SessionDetail): TerminalTimeline {
  const start = Date.parse(detail.session.startedAt);
  const origins = new Map<number | undefined, number>();
  const frames: TerminalFrame[] = [];
  let size: { width: number; height: number } | undefined;
  let truncated = false;
  for (const e of detail.events) {
    if (e.kind === SSH_EVENT.truncated || e.kind === K8S_EVENT.truncated) truncated = true;
    const type = FRAME_TYPES[e.kind];
    if (!type) continue;
    const action = typeof e.data.action === 'number' ? e.data.action : undefined;
    const ms = eventMs(e, action, origins);
    let data: string;
    if (type === 'r') {
      const cols = positiveInt(e.data.cols);
      const rows = positiveInt(e.data.rows);
      if (cols === undefined || rows === undefined) continue;
      size ??= { width: cols, height: rows };
      data = `${cols}x${rows}`;
    } else {
      if (typeof e.data.data !== 'string' || e.data.data === '') continue;
      data = e.data.data;
    }
    frames.push({ time: Math.max(0, ms - start) / 1000, type, data, action, ...(e.data.stream === 'stderr' ? { stderr: true as const } : {}) });
  }
  // Stable sort by time, then make it monotonic (asciicast players expect it).
  frames.sort((a, b) => a.time - b.time);
  return { frames, ...(size ?? DEFAULT_SIZE), truncated };
}

function eventMs(e: SessionEvent, action: number | undefined, origins: Map<number | undefined, number>): number {
  const at = Date.parse(e.at);
  const t = typeof e.data.t === 'number' && Number.isFinite(e.data.t) ? e.data.t * 1000 : undefined;
  if (t === undefined) return at;
  let origin = origins.get(action);
  if (origin === undefined) origins.set(action, (origin = at - t));
  return origin + t;
}

function positiveInt(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 && v < 100_000 ? v : undefined;
}
