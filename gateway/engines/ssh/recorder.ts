// What the ssh engine records, through the audit core every engine uses: the session, each action
// (exec, shell, subsystem, forward) with its verdict and outcome, and the protocol's own events:
// terminal output and input with their time since the channel opened (`ssh.output`, `ssh.input`),
// window sizes (`ssh.resize`) and sftp operations (`ssh.sftp`). Terminal bytes are kept up to a
// per-session cap; past it only the byte counts are, and one `ssh.truncated` event says so.
import { StringDecoder } from 'node:string_decoder';
import type { SessionAudit } from '../../audit/contract.js';

/** The audit hooks this engine uses: the core's, with no protocol additions. */
export type SshAudit = SessionAudit;

/** Terminal bytes kept per session (output and input together); the totals are always counted. */
export const TERMINAL_RECORD_BYTES = 16 * 1024 * 1024;

/** Records one channel's terminal stream with timing, sharing the session's cap. */
export class TerminalRecorder {
  private readonly started = performance.now();
  private readonly out = new StringDecoder('utf8');
  private readonly inp = new StringDecoder('utf8');

  constructor(
    private readonly audit: SshAudit,
    private readonly budget: { left: number; truncated: boolean },
    private readonly action: number,
  ) {}

  private t(): number {
    return Math.round(performance.now() - this.started) / 1000;
  }

  output(chunk: Buffer, stream: 'stdout' | 'stderr' = 'stdout'): void {
    this.keep('ssh.output', chunk, this.out, stream === 'stderr' ? { stream } : {});
  }

  input(chunk: Buffer): void {
    this.keep('ssh.input', chunk, this.inp, {});
  }

  resize(cols: number, rows: number): void {
    this.audit.onEvent('ssh.resize', { action: this.action, t: this.t(), cols, rows });
  }

  private keep(kind: string, chunk: Buffer, decoder: StringDecoder, extra: Record<string, unknown>): void {
    if (this.budget.left <= 0) {
      if (!this.budget.truncated) {
        this.budget.truncated = true;
        this.audit.onEvent('ssh.truncated', { action: this.action, t: this.t(), capBytes: TERMINAL_RECORD_BYTES });
      }
      return;
    }
    const kept = chunk.length <= this.budget.left ? chunk : chunk.subarray(0, this.budget.left);
    this.budget.left -= kept.length;
    const data = decoder.write(kept);
    if (data !== '') this.audit.onEvent(kind, { action: this.action, t: this.t(), data, ...extra });
  }
}
