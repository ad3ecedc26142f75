// Runs an exec's statements through the real PostgreSQL engine, in-process: the engine gets one
// side of an in-memory stream as if it were a tunnelled client, and this module is the client on
// the other side, sending each statement as its own simple Query and turning the answers into
// exec events. The engine stays the only judge (policy, reviews, masking, audit happen there);
// the runner only learns what it decided, through the audit hooks it wraps. A timeout, or the
// HTTP client going away, cancels the running statement through the engine's own cancel path.
import type { Duplex } from 'node:stream';
import type { ExecEndStatus } from '../../src/api/contract.js';
import { rowCountFromTag, type PgErrorFields } from '../engines/postgres/codec/backend.js';
import type { PostgresSessionAudit } from '../audit/postgresEvents.js';
import { SessionTermination } from '../engines/types.js';
import { terminationSqlstate, type PgEngine, type PgSessionContext } from '../engines/postgres/context.js';
import { duplexPair } from './duplexPair.js';
import { execColumn, type EventSink } from './events.js';
import { BackendDecoder, encodeCancelRequest, encodeCopyFail, encodeExecStartup, encodeQuery, encodeTerminate, type BackendMessage } from './pgFrontend.js';

export const COPY_IN_REFUSAL = 'exec has no input for COPY FROM STDIN; use -f with INSERT or a tunnel';

/** Why the runner stopped before its statements ran, as decided outside it. */
export interface RunFlags {
  /** The exec timed out (the cancel was sent). */
  timedOut: boolean;
  /** The HTTP client went away. */
  clientGone: boolean;
}

export interface RunOptions {
  readonly engine: PgEngine;
  /** The session's context (its audit is wrapped here to learn of the policy's blocks). */
  readonly context: PgSessionContext;
  readonly signal: AbortSignal;
  readonly statements: readonly string[];
  readonly sink: EventSink;
  /** Why statement `k` failed, when something other than SQL decided it (a review, …). */
  readonly explain?: (statement: number, fields: PgErrorFields) => { status: ExecEndStatus; message?: string } | undefined;
  readonly timeoutMs?: number;
  /** Resolves when the HTTP client goes away. */
  readonly clientGone: Promise<void>;
}

export interface RunResult {
  readonly status: ExecEndStatus;
  /** Statements that completed. */
  readonly statements: number;
}

/** Reads backend messages from the frontend side of the pair, pulling only when asked. */
class MessageReader {
  private readonly decoder = new BackendDecoder();
  private readonly chunks: AsyncIterator<Buffer>;

  constructor(stream: Duplex) {
    this.chunks = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  /** The next message; undefined once the engine closed the stream. @throws PgProtocolError */
  async next(): Promise<BackendMessage | undefined> {
    for (;;) {
      const m = this.decoder.next();
      if (m !== undefined) return m;
      let r: IteratorResult<Buffer>;
      try {
        r = await this.chunks.next();
      } catch {
        return undefined;
      }
      if (r.done === true) return undefined;
      this.decoder.push(r.value);
    }
  }
}

// The in-memory stream that carries the CancelRequest is a transport, not a session: as with a
// tunnel's cancel connection nothing is recorded on it. The cancel itself is recorded in the
// exec's own session (CANCEL_EVENT), where the statement it stops is.
const NOOP_AUDIT: PostgresSessionAudit = {
  onSessionStart: () => undefined,
  onQuery: () => 0,
  onResult: () => undefined,
  onSessionEnd: () => undefined,
  onAction: () => 0,
  onDecision: () => undefined,
  onReview: () => undefined,
  onOutcome: () => undefined,
  onEvent: () => undefined,
  flush: () => undefined,
};

/** The audit event kind of a cancel the exec sent on its own (docs/audit.md). */
export const CANCEL_EVENT = 'postgres.cancel';

export async function runStatements(o: RunOptions): Promise<RunResult> {
  const { sink, statements } = o;
  const [client, server] = duplexPair();
  client.on('error', () => undefined);
  const stop = new AbortController();
  const signal = AbortSignal.any([o.signal, stop.signal]);
  let current: number | undefined;
  // A refusal by policy is learned from the engine's verdict, never from an error's wording.
  let blocked: { statement: number; rule?: string } | undefined;
  const audit: PostgresSessionAudit = Object.create(o.context.audit) as PostgresSessionAudit;
  // The trail's number of the running statement, so the cancel names what it stopped.
  let query: number | undefined;
  audit.onQuery = (q) => {
    const id = o.context.audit.onQuery(q);
    if (current !== undefined) query = id;
    return id;
  };
  audit.onDecision = (d) => {
    if (d.verdict === 'block' && current !== undefined && blocked === undefined) blocked = { statement: current, ...(d.rule !== undefined ? { rule: d.rule } : {}) };
    o.context.audit.onDecision?.(d);
  };
  const handled = o.engine.handle(server, { ...o.context, audit }, signal);
  const reader = new MessageReader(client);
  const flags: RunFlags = { timedOut: false, clientGone: false };
  let key: { pid: number; secret: number } | undefined;
  let completed = 0;

  // The engine's cancel path, as a cancel tunnel uses it: a CancelRequest with the key it gave us.
  let cancelling: Promise<void> | undefined;
  const cancel = (why: 'timeout' | 'client_gone' | 'protocol_error'): Promise<void> => {
    if (cancelling !== undefined) return cancelling;
    if (key === undefined || current === undefined) {
      stop.abort();
      return (cancelling = Promise.resolve());
    }
    o.context.audit.onEvent(CANCEL_EVENT, {
      ...(query !== undefined ? { q: query } : {}),
      statement: current + 1,
      reason: why,
      ...(why === 'timeout' && o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
    });
    const [c, s] = duplexPair();
    c.on('error', () => undefined);
    const ctx: PgSessionContext = { ...o.context, id: `${o.context.id}-cancel`, audit: NOOP_AUDIT, cancelOnly: true };
    cancelling = o.engine.handle(s, ctx, new AbortController().signal);
    c.end(encodeCancelRequest(key.pid, key.secret));
    return cancelling;
  };
  const timer = o.timeoutMs === undefined ? undefined : setTimeout(() => {
    flags.timedOut = true;
    void cancel('timeout');
  }, o.timeoutMs);
  void o.clientGone.then(() => {
    flags.clientGone = true;
    void cancel('client_gone').then(() => stop.abort());
  });

  /** How a statement's error (or the stream's end) ends the exec. */
  const failure = async (statement: number | undefined, fields: PgErrorFields | undefined): Promise<ExecEndStatus> => {
    if (flags.clientGone) return 'cancelled';
    const reason: unknown = o.signal.reason;
    if (flags.timedOut) {
      await sink.emit({ type: 'error', ...(statement !== undefined ? { statement } : {}), sqlstate: '57014', message: `canceling statement: the exec ran longer than its timeout (${o.timeoutMs} ms)` });
      return 'timeout';
    }
    if (o.signal.aborted && reason instanceof SessionTermination) {
      await sink.emit({ type: 'error', ...(statement !== undefined ? { statement } : {}), sqlstate: terminationSqlstate(reason), message: reason.message });
      return 'denied';
    }
    const refused = blocked !== undefined && blocked.statement === statement ? blocked : undefined;
    const explained = statement !== undefined && fields !== undefined ? o.explain?.(statement, fields) : undefined;
    const base = { type: 'error' as const, ...(statement !== undefined ? { statement } : {}) };
    if (fields === undefined) {
      await sink.emit({ ...base, message: o.signal.aborted ? 'the gateway is shutting down; the exec was stopped' : 'the session ended before the statement completed' });
      return 'error';
    }
    const sqlstate = fields.code !== '' ? { sqlstate: fields.code } : {};
    await sink.emit({ ...base, ...sqlstate, message: explained?.message ?? fields.message, ...(refused?.rule !== undefined ? { rule: refused.rule } : {}) });
    if (refused !== undefined) return 'blocked';
    return explained?.status ?? 'error';
  };

  /** Answers until ReadyForQuery: undefined when the statement completed, else its error. */
  const answers = async (statement: number | undefined): Promise<{ closed: boolean; error?: PgErrorFields }> => {
    let error: PgErrorFields | undefined;
    let copyCarry = '';
    for (;;) {
      const m = await reader.next();
      if (m === undefined) return { closed: true, ...(error !== undefined ? { error } : {}) };
      switch (m.type) {
        case 'key':
          key = { pid: m.pid, secret: m.secret };
          break;
        case 'ready':
          return { closed: false, ...(error !== undefined ? { error } : {}) };
        case 'error':
          error = m.fields;
          break;
        case 'notice':
          await sink.emit({ type: 'notice', ...(statement !== undefined ? { statement } : {}), severity: m.fields.severity, message: m.fields.message, ...(m.fields.code !== '' ? { sqlstate: m.fields.code } : {}) });
          break;
        case 'rowDescription':
          if (statement !== undefined) await sink.emit({ type: 'columns', statement, columns: m.columns.map((c) => execColumn(c.name, c.typeOid)) });
          break;
        case 'dataRow':
          if (statement !== undefined) await sink.row(statement, m.values, m.bytes);
          break;
        case 'commandComplete':
          if (statement !== undefined) await sink.emit({ type: 'complete', statement, command: m.tag, rows: rowCountFromTag(m.tag) ?? null });
          break;
        case 'copyOut':
          if (statement !== undefined) await sink.emit({ type: 'columns', statement, columns: [execColumn('copy', 25)] });
          break;
        case 'copyData': {
          // Text COPY escapes newlines inside values, so a newline always ends a row.
          const lines = (copyCarry + m.data.toString('utf8')).split('\n');
          copyCarry = lines.pop() ?? '';
          for (const line of lines) if (statement !== undefined) await sink.row(statement, [line], line.length);
          break;
        }
        case 'copyDone':
          if (copyCarry !== '' && statement !== undefined) await sink.row(statement, [copyCarry], copyCarry.length);
          copyCarry = '';
          break;
        case 'copyIn':
          client.write(encodeCopyFail(COPY_IN_REFUSAL));
          break;
        case 'authOk':
        case 'parameter':
        case 'emptyQuery':
          break;
      }
    }
  };

  let status: ExecEndStatus = 'ok';
  try {
    client.write(encodeExecStartup(o.context.connection.target.database));
    const started = await answers(undefined);
    if (started.closed || started.error !== undefined) {
      status = await failure(undefined, started.error);
    } else {
      for (let i = 0; i < statements.length; i++) {
        if (flags.timedOut || flags.clientGone || o.signal.aborted) {
          status = await failure(i, undefined);
          break;
        }
        current = i;
        client.write(encodeQuery(statements[i] as string));
        const r = await answers(i);
        current = undefined;
        await sink.flushRows();
        if (r.error !== undefined || r.closed) {
          status = await failure(i, r.error);
          break;
        }
        completed++;
      }
    }
  } catch (err) {
    await sink.emit({ type: 'error', ...(current !== undefined ? { statement: current } : {}), sqlstate: '08P01', message: `exec failed: ${(err as Error).message}` });
    status = 'error';
    // The answers can no longer be read: stop the statement, then drop the session.
    await cancel('protocol_error');
    client.destroy();
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    if (!client.destroyed) client.end(encodeTerminate());
    await Promise.race([handled, o.clientGone]);
    if (cancelling !== undefined) await cancelling;
    client.destroy();
    await handled;
  }
  return { status, statements: completed };
}
