// Bookkeeping for one tunnel session, behind the engines' SessionAudit interface and backed by
// the store. The tamper-evident trail (a later piece) replaces this implementation, not the
// interface. A failing write is logged, never thrown into the engine's relay.
import type { Logger } from 'pino';
import type { Identity, SessionAudit } from './engines/types.js';
import type { Store } from './store/types.js';

export interface SessionMeta {
  id: string;
  connection: string;
  identity: Identity;
  origin: string;
  clientAddress: string;
}

export function createSessionAudit(store: Store, meta: SessionMeta, log: Logger): SessionAudit & { readonly started: boolean } {
  let started = false;
  let seq = 0;
  const guard = (what: string, fn: () => void) => {
    try {
      fn();
    } catch (err) {
      log.error({ err, session: meta.id }, `cannot record ${what}`);
    }
  };
  return {
    get started() {
      return started;
    },
    onSessionStart(info) {
      started = true;
      guard('session start', () => {
        store.startSession({
          id: meta.id,
          connection: meta.connection,
          subject: meta.identity.subject,
          identityName: meta.identity.name,
          identityKind: meta.identity.kind,
          groups: [...meta.identity.groups],
          origin: meta.origin,
          clientAddress: meta.clientAddress,
          startedAt: new Date(),
        });
        store.setSessionDatabase(meta.id, info.database);
      });
    },
    onQuery(q) {
      const id = ++seq;
      guard('query', () =>
        store.addQuery({ sessionId: meta.id, seq: id, text: q.text, params: q.params ? [...q.params] : null, protocol: q.protocol, startedAt: new Date() }),
      );
      return id;
    },
    onResult(r) {
      guard('result', () => store.finishQuery(meta.id, r.queryId, r));
    },
    onSessionEnd(e) {
      if (!started) return;
      guard('session end', () =>
        store.endSession(meta.id, { status: e.status, ...(e.message ? { error: e.sqlstate ? `${e.sqlstate} ${e.message}` : e.message } : {}), bytesFromClient: e.bytesFromClient, bytesToClient: e.bytesToClient }),
      );
    },
  };
}
