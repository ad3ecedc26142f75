// The audit's HTTP API: `GET /v1/sessions[?connection&user&since&limit]`, `GET /v1/sessions/ID`,
// `GET /v1/audit/export[?session|since]` (JSON Lines) and `GET /v1/audit/key` (PEM, public).
// Everyone reads their own sessions; members of `audit.readers` read all of them.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { paths, type SessionEvent, type SessionSummary } from '../../src/api/contract.js';
import type { ExportScope } from '../../src/api/auditTrail.js';
import type { Authenticator } from '../auth/authenticate.js';
import type { Identity } from '../model.js';
import { AuditUnavailableError } from './contract.js';
import { authenticateOrRefuse, sendError, sendJson } from '../http.js';
import type { EventRecord, SessionRecord, Store } from '../store/types.js';
import type { AuditService } from './service.js';

export interface AuditRoutesDeps {
  audit: AuditService;
  store: Store;
  authenticate: Authenticator;
  log: Logger;
  /** This gateway's URL, named in export headers. */
  url: string;
  /** An export whose client reads nothing for this long is cut off (default 60 s), so it cannot hold retention forever. */
  stallMs?: number;
}

const MAX_LIMIT = 1000;

/** Returns a handler that answers the audit paths and returns false for any other path. */
export function createAuditRoutes(deps: AuditRoutesDeps): (req: IncomingMessage, res: ServerResponse, path: string) => Promise<boolean> {
  const { audit, store } = deps;
  const isReader = (who: Identity) => audit.settings.readers.some((g) => who.groups.includes(g));
  const sessionMatch = /^\/v1\/sessions\/([^/]+)$/;

  return async (req, res, path) => {
    if (path === paths.auditKey) {
      res.writeHead(200, { 'content-type': 'application/x-pem-file', 'cache-control': 'no-store', 'sluice-key-id': audit.signer.keyId });
      res.end(audit.signer.publicKeyPem);
      return true;
    }
    const one = sessionMatch.exec(path);
    if (path !== paths.sessions && path !== paths.auditExport && !one) return false;

    const who = await authenticateOrRefuse(deps.authenticate, req, res);
    if (who === undefined) return true;
    const query = new URL(req.url ?? '/', 'http://x').searchParams;
    const reader = isReader(who);
    // What is journaled but not yet ingested (up to ~100 ms of events) goes to the store first, so a
    // reader sees everything up to the moment of asking.
    await audit.writer.flush();

    if (path === paths.sessions) {
      const since = parseTime(query.get('since'));
      const limit = Number(query.get('limit') ?? 100);
      if (since === null) return badRequest(res, 'since must be an ISO-8601 time');
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) return badRequest(res, `limit must be 1-${MAX_LIMIT}`);
      const sessions = await store.listSessions({
        ...(reader ? {} : { subject: who.subject }),
        ...(query.get('connection') ? { connection: query.get('connection') as string } : {}),
        ...(query.get('user') ? { user: query.get('user') as string } : {}),
        ...(since ? { since } : {}),
        limit,
      });
      sendJson(res, 200, { sessions: sessions.map(toSummary) });
      return true;
    }

    if (one) {
      const id = decodeURIComponent(one[1] as string);
      const s = await store.getSession(id);
      if (!s || (!reader && s.subject !== who.subject)) {
        sendError(res, 404, 'not_found', `no session "${id}" that you may read`);
        return true;
      }
      sendJson(res, 200, { session: toSummary(s), events: (await store.listEvents(id)).map(toEvent) });
      return true;
    }

    // export
    const sessionId = query.get('session');
    const since = parseTime(query.get('since'));
    if (since === null) return badRequest(res, 'since must be an ISO-8601 time');
    if (sessionId && since) return badRequest(res, 'give either session or since, not both');
    let scope: ExportScope;
    if (sessionId) {
      const s = await store.getSession(sessionId);
      if (!s || (!reader && s.subject !== who.subject)) {
        sendError(res, 404, 'not_found', `no session "${sessionId}" that you may read`);
        return true;
      }
      scope = { kind: 'session', session: sessionId };
    } else if (!reader) {
      const groups = audit.settings.readers;
      sendError(res, 403, 'forbidden', `exporting more than one of your own sessions needs one of the audit reader groups (${groups.join(', ') || 'none configured: set audit.readers'}); export your own with --session ID`);
      return true;
    } else {
      scope = since ? { kind: 'since', since: since.toISOString() } : { kind: 'all' };
    }
    // Streamed (chunked), in pieces of ~64 KiB, waiting for the client when it reads slowly: an
    // export of a year of statements must not have to fit in the gateway's memory.
    const trail = audit.streamTrail(scope, deps.url);
    let first: IteratorResult<string>;
    try {
      first = await trail.next();
    } catch (err) {
      if (!(err instanceof AuditUnavailableError)) throw err;
      sendError(res, 503, 'unavailable', err.message);
      return true;
    }
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    let lines = 0;
    let piece = '';
    const send = async (): Promise<boolean> => {
      if (!res.write(piece)) await drained(res, deps.stallMs ?? STALL_MS);
      piece = '';
      return !res.destroyed;
    };
    try {
      for (let r = first; !r.done; r = await trail.next()) {
        lines++;
        piece += `${r.value}\n`;
        if (piece.length >= 65_536 && !(await send())) break;
      }
      if (!res.destroyed && piece.length > 0) await send();
      res.end();
      deps.log.info({ who: who.name, scope, lines }, 'audit export');
    } catch (err) {
      // The head is sent: cut the response short, so the client sees a truncated export (which
      // `sluice audit verify` names as such) rather than one that looks complete.
      deps.log.error({ err, who: who.name, scope, lines }, 'audit export failed');
      res.destroy();
    } finally {
      // Ends the generator (and its hold on retention) when the client went away mid-export.
      await trail.return(undefined);
    }
    return true;
  };
}

function badRequest(res: ServerResponse, message: string): true {
  sendError(res, 400, 'bad_request', message);
  return true;
}

/** undefined when absent, null when present but not a time. */
function parseTime(v: string | null): Date | undefined | null {
  if (v === null || v === '') return undefined;
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : new Date(t);
}

export function toSummary(s: SessionRecord): SessionSummary {
  return {
    id: s.id,
    connection: s.connection,
    protocol: s.protocol,
    subject: s.subject,
    user: s.identityName,
    email: s.email,
    kind: s.identityKind,
    groups: s.groups,
    origin: s.origin,
    clientAddress: s.clientAddress,
    database: s.database,
    startedAt: s.startedAt.toISOString(),
    endedAt: s.endedAt?.toISOString() ?? null,
    status: s.status,
    error: s.error,
    bytesFromClient: s.bytesFromClient,
    bytesToClient: s.bytesToClient,
    queries: s.queries,
    blocked: s.blocked,
    reviewed: s.reviewed,
    events: s.events,
    ledgerSeq: s.ledgerSeq,
    purgedAt: s.purgedAt?.toISOString() ?? null,
  };
}

function toEvent(e: EventRecord): SessionEvent {
  const body = JSON.parse(e.body) as { data: Record<string, unknown> };
  return { seq: e.seq, kind: e.kind, at: e.at.toISOString(), data: body.data, hash: e.hash };
}

/** A client that stops reading this long is cut off, so an export cannot hold retention forever. */
const STALL_MS = 60_000;

/** Resolves when the response can take more, or is closed (destroyed after a stall of `stallMs`). */
function drained(res: ServerResponse, stallMs: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    const timer = setTimeout(() => {
      res.destroy();
      done();
    }, stallMs);
    res.on('drain', done);
    res.on('close', done);
  });
}

