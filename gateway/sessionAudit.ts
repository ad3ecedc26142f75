// The audit of one tunnel session as the gateway opens it (audit/service.ts): the protocol-neutral
// recorder (audit/recorder.ts) with the statement hooks of audit/postgresEvents.ts, the field
// names of the session's protocol, and nothing else. A protocol with its own event kinds reports
// them through SessionAudit.onEvent; one that names its fields differently adds its vocabulary here.
import { neutralVocabulary, type AuditVocabulary } from './audit/contract.js';
import { postgresVocabulary, withPostgresEvents, type PostgresSessionAudit } from './audit/postgresEvents.js';
import { createSessionRecorder, type SessionAuditContext, type SessionMeta } from './audit/recorder.js';

export { durationJson } from './audit/postgresEvents.js';
export { REFUSED_UNRECORDED, type SessionAuditContext, type SessionMeta } from './audit/recorder.js';

/** Field names per protocol (SessionMeta.protocol, the connection's type). */
const vocabularies: Readonly<Record<string, AuditVocabulary>> = { postgres: postgresVocabulary };

/** What every session's audit offers; engines use the part of it their protocol needs. */
export type GatewaySessionAudit = PostgresSessionAudit & { readonly started: boolean };

export function createSessionAudit(ctx: SessionAuditContext, meta: SessionMeta): GatewaySessionAudit {
  const vocabulary = meta.vocabulary ?? vocabularies[meta.protocol] ?? neutralVocabulary;
  const { audit, core } = createSessionRecorder(ctx, { ...meta, vocabulary });
  return withPostgresEvents(audit, core);
}
