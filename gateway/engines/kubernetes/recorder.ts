// What the kubernetes engine records of the streams it relays, through the audit core: an exec
// or attach as a terminal session replayable like an ssh one (`k8s.output`, `k8s.input`,
// `k8s.resize` with `t`, seconds since the stream opened, and the action they belong to; see
// src/commands/sessions/terminal.ts), read from the remotecommand channel protocol
// (k8s.io/apimachinery/pkg/util/remotecommand: channel 0 stdin, 1 stdout, 2 stderr, 3 the
// status, 4 resize) inside WebSocket frames; and a watch as its event count plus the first events.
// Terminal bytes are kept up to a per-session cap; past it only counts, and one `k8s.truncated`.
import { StringDecoder } from 'node:string_decoder';
import type { SessionAudit } from '../../audit/contract.js';
import { cutScrubbed } from '../../httpProxy/sampleCut.js';
import { WsFrameReader } from './wsFrames.js';

/** Terminal bytes kept per session (output and input together); the totals are always counted. */
export const TERMINAL_RECORD_BYTES = 16 * 1024 * 1024;
/** Watch events kept whole per watch request; the rest are counted. */
export const WATCH_EVENTS_KEPT = 5;
const WATCH_EVENT_BYTES = 16 * 1024;

/** The channel subprotocols the recorder reads (binary; `base64.` ones carry the same in text). */
export const CHANNEL_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io'];

const enum Channel {
  Stdin = 0,
  Stdout = 1,
  Stderr = 2,
  Status = 3,
  Resize = 4,
}

export type Budget = { left: number; truncated: boolean };

/** Records one exec/attach stream; `exit` is read from the status channel. */
export class ExecRecorder {
  private readonly started = performance.now();
  private readonly up = new WsFrameReader();
  private readonly down = new WsFrameReader();
  private readonly decoders = new Map<string, StringDecoder>();
  private unreadable = false;
  /** The remote exit code from the status channel ("0" on Success), once sent. */
  exit: string | undefined;
  statusMessage: string | undefined;

  constructor(
    private readonly audit: SessionAudit,
    private readonly budget: Budget,
    private readonly action: number,
    private readonly base64: boolean,
  ) {}

  private t(): number {
    return Math.round(performance.now() - this.started) / 1000;
  }

  fromClient(chunk: Buffer): void {
    for (const m of this.up.push(chunk)) {
      const frame = this.channelOf(m.payload, m.binary);
      if (frame === undefined) continue;
      if (frame.channel === Channel.Stdin) this.keep('k8s.input', 'in', frame.data, {});
      else if (frame.channel === Channel.Resize) this.resize(frame.data);
    }
    this.noteUnreadable(this.up.failed);
  }

  toClient(chunk: Buffer): void {
    for (const m of this.down.push(chunk)) {
      const frame = this.channelOf(m.payload, m.binary);
      if (frame === undefined) continue;
      if (frame.channel === Channel.Stdout) this.keep('k8s.output', 'out', frame.data, {});
      else if (frame.channel === Channel.Stderr) this.keep('k8s.output', 'err', frame.data, { stream: 'stderr' });
      else if (frame.channel === Channel.Status) this.status(frame.data);
    }
    this.noteUnreadable(this.down.failed);
  }

  private channelOf(payload: Buffer, binary: boolean): { channel: number; data: Buffer } | undefined {
    if (payload.length === 0) return undefined;
    if (!this.base64) return binary ? { channel: payload[0] as number, data: payload.subarray(1) } : undefined;
    const channel = (payload[0] as number) - 0x30;
    return { channel, data: Buffer.from(payload.subarray(1).toString('latin1'), 'base64') };
  }

  private resize(data: Buffer): void {
    try {
      const size = JSON.parse(data.toString('utf8')) as { Width?: unknown; Height?: unknown };
      if (typeof size.Width === 'number' && typeof size.Height === 'number') this.audit.onEvent('k8s.resize', { action: this.action, t: this.t(), cols: size.Width, rows: size.Height });
    } catch {
      // A malformed resize is the API server's to refuse; nothing to record.
    }
  }

  private status(data: Buffer): void {
    try {
      const s = JSON.parse(data.toString('utf8')) as { status?: string; message?: string; details?: { causes?: { reason?: string; message?: string }[] } };
      if (s.status === 'Success') this.exit = '0';
      else {
        this.exit = s.details?.causes?.find((c) => c.reason === 'ExitCode')?.message ?? 'error';
        if (typeof s.message === 'string') this.statusMessage = s.message.slice(0, 500);
      }
    } catch {
      this.exit = 'error';
    }
  }

  private noteUnreadable(problem: string | undefined): void {
    if (problem === undefined || this.unreadable) return;
    this.unreadable = true;
    this.audit.onEvent('k8s.unrecorded', { action: this.action, t: this.t(), reason: problem });
  }

  private keep(kind: string, key: string, chunk: Buffer, extra: Record<string, unknown>): void {
    if (chunk.length === 0) return;
    if (this.budget.left <= 0) {
      if (!this.budget.truncated) {
        this.budget.truncated = true;
        this.audit.onEvent('k8s.truncated', { action: this.action, t: this.t(), capBytes: TERMINAL_RECORD_BYTES });
      }
      return;
    }
    const kept = chunk.length <= this.budget.left ? chunk : chunk.subarray(0, this.budget.left);
    this.budget.left -= kept.length;
    let decoder = this.decoders.get(key);
    if (decoder === undefined) this.decoders.set(key, (decoder = new StringDecoder('utf8')));
    const data = decoder.write(kept);
    if (data !== '') this.audit.onEvent(kind, { action: this.action, t: this.t(), data, ...extra });
  }
}

/**
 * Counts a watch stream's events (one JSON object per line) and keeps the first few, each cut at
 * WATCH_EVENT_BYTES — with the held credential scrubbed before the cut (it sees the upstream's
 * bytes, before the client's filter), so no beginning of an echo survives at the cut.
 */
export class WatchRecorder {
  events = 0;
  readonly first: string[] = [];
  private partial = '';
  private partialCut = false;
  private readonly decoder = new StringDecoder('utf8');
  private readonly window: number;

  constructor(private readonly secrets: readonly string[] = []) {
    this.window = WATCH_EVENT_BYTES + Math.max(0, ...secrets.map((s) => s.length));
  }

  observe(chunk: Buffer): void {
    const text = this.partial + this.decoder.write(chunk);
    const lines = text.split('\n');
    const rest = lines.pop() ?? '';
    for (const [i, line] of lines.entries()) {
      if (line.trim() === '') continue;
      this.events++;
      if (this.first.length < WATCH_EVENTS_KEPT) this.first.push(cutScrubbed(line, WATCH_EVENT_BYTES, this.secrets, i === 0 && this.partialCut));
    }
    if (lines.length > 0) this.partialCut = false;
    this.partial = rest;
    // An unfinished line is kept a secret's length past the cap, so an echo straddling the cap is seen whole.
    if (this.partial.length > this.window) {
      this.partial = this.partial.slice(0, this.window);
      this.partialCut = true;
    }
  }
}
