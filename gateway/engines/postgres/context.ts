// The session context as the postgres engine (and the exec endpoint that drives it) sees it, and
// how the gateway's protocol-neutral failures read in PostgreSQL's terms.
import { AuditUnavailableError } from '../../audit/contract.js';
import { describePolicy } from '../../config/policy.js';
import type { PostgresSessionAudit } from '../../audit/postgresEvents.js';
import type { PostgresConnection } from '../../model.js';
import { SessionTermination, type Engine, type EngineEntry, type SessionContext } from '../types.js';
import type { UpstreamConnection, UpstreamOptions } from './upstream.js';

/** The postgres engine only ever runs on `type: postgres` connections (engines/registry.ts). */
export type PgSessionContext = SessionContext<PostgresSessionAudit> & {
  readonly connection: PostgresConnection;
  /**
   * Where the session's upstream backend comes from (exec: a pre-opened spare when there is one,
   * upstreamSpares.ts); absent: connectUpstream. Must behave as connectUpstream with `opts`.
   */
  readonly upstream?: (opts: UpstreamOptions) => Promise<UpstreamConnection>;
};
export type PgEngine = Engine<PostgresSessionAudit>;

/** SQLSTATE 58030 io_error: the audit trail cannot record the statement. */
export const AUDIT_UNAVAILABLE_SQLSTATE = '58030';

/** A refused statement's ErrorResponse fields, for an AuditUnavailableError from the audit core. */
export function auditRefusal(err: AuditUnavailableError): { sqlstate: string; message: string } {
  const fromCore = err.message === new AuditUnavailableError(undefined, { reason: err.reason }).message;
  if (!fromCore) return { sqlstate: AUDIT_UNAVAILABLE_SQLSTATE, message: err.message };
  return {
    sqlstate: AUDIT_UNAVAILABLE_SQLSTATE,
    message:
      err.reason === 'ended'
        ? 'the session has ended; the statement was not executed'
        : 'the gateway cannot record this statement in its audit trail (the audit store is unavailable); it was not executed',
  };
}

/** The SQLSTATE for a session the gateway ended itself (SessionTermination.reason). */
export function terminationSqlstate(why: SessionTermination): string {
  switch (why.reason) {
    case 'credential':
      return '28000';
  }
}

/** The registry's postgres entry fields besides the engine. */
export const postgresEntry: Omit<EngineEntry, 'engine'> = {
  describeTarget: (c) => (c as PostgresConnection).target.database,
  connectionInfo(connection) {
    const c = connection as PostgresConnection;
    return {
      name: c.name,
      type: c.type,
      ...(c.description ? { description: c.description } : {}),
      database: c.target.database,
      databases: [c.target.database, ...c.databases],
      policy: describePolicy(c.policy),
      record: c.record,
    };
  },
  tooManySessionsCode: '53300',
};
