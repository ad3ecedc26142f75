// The audit core's hooks as no-ops, for fakes that record only what their test looks at.
import type { SessionAudit } from '../../gateway/audit/contract.js';

export const coreAuditNoops: Omit<SessionAudit, 'onSessionStart' | 'onSessionEnd'> = {
  onAction: () => 0,
  onDecision: () => undefined,
  onReview: () => undefined,
  onOutcome: () => undefined,
  onEvent: () => undefined,
  flush: () => undefined,
};
