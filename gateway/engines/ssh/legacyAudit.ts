// Adapts the statement-shaped SessionAudit (before the audit core) to the hooks the ssh engine
// uses, so the engine runs against either: actions become statements, outcomes results, and the
// protocol's own events are not kept. Removed once the audit core is merged.
import type { SshAudit } from './recorder.js';

interface StatementAudit {
  onSessionStart(info: { database: string; clientUser: string }): void;
  onQuery(q: { text: string; protocol: 'simple' | 'extended'; kinds?: readonly string[] }): number;
  onDecision?(d: { queryId: number; verdict: 'allow' | 'block' | 'review'; rule?: string; reason?: string }): void;
  onReview?(r: { queryId: number; event: 'created' | 'approved' | 'rejected' | 'expired'; reviewId: string; by?: string; reason?: string }): void;
  onResult(r: { queryId: number; status: 'ok' | 'error'; message?: string; durationMs: number; bytes?: number }): void;
  onSessionEnd(e: { status: 'ok' | 'error'; message?: string; bytesFromClient: number; bytesToClient: number }): void;
  flush?(): Promise<void> | undefined;
}

export function asSshAudit(audit: unknown): SshAudit {
  if (typeof (audit as Partial<SshAudit>).onAction === 'function') return audit as SshAudit;
  const a = audit as StatementAudit;
  return {
    onSessionStart: (i) => a.onSessionStart({ database: i.target, clientUser: i.clientUser ?? '' }),
    onAction: (x) => a.onQuery({ text: x.kind === 'exec' ? x.text : `${x.kind}: ${x.text}`, protocol: 'simple', kinds: [x.kind] }),
    onDecision: (d) => a.onDecision?.(d),
    onReview: (r) => a.onReview?.(r),
    onOutcome: (o) => a.onResult({ queryId: o.queryId, status: o.status, ...(o.code !== undefined || o.message !== undefined ? { message: o.message ?? `exit status ${o.code}` } : {}), durationMs: o.durationMs, ...(o.bytes !== undefined ? { bytes: o.bytes } : {}) }),
    onEvent: () => undefined,
    onSessionEnd: (e) => a.onSessionEnd(e),
    flush: () => a.flush?.(),
  };
}
