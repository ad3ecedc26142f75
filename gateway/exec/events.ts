// The exec response body: NDJSON events written in order, rows gathered into batches of about
// 64 KiB, and backpressure honoured: when the response's buffer is full, `emit` does not resolve
// until it drains (or the client goes away), so the runner stops reading the engine and a large
// result never accumulates in the gateway.
import type { Writable } from 'node:stream';
import type { ExecColumn, ExecEvent } from '../../src/api/contract.js';

/** A rows event is sent once its values reach about this many bytes. */
export const ROW_BATCH_BYTES = 64 * 1024;

export class EventSink {
  private batch: (string | null)[][] = [];
  private batchBytes = 0;
  private batchStatement = 0;
  private gone = false;

  constructor(private readonly out: Writable) {
    out.once('close', () => (this.gone = true));
  }

  /** The client went away: nothing more can be delivered. */
  get closed(): boolean {
    return this.gone || this.out.destroyed;
  }

  /** Writes one event (rows gathered so far first); resolves once the client can take more. */
  async emit(event: ExecEvent): Promise<void> {
    if (this.batch.length > 0) await this.flushRows();
    await this.write(event);
  }

  /** Adds a row of statement `statement`; sends the batch when it is full. */
  async row(statement: number, values: (string | null)[], bytes: number): Promise<void> {
    if (this.batch.length > 0 && this.batchStatement !== statement) await this.flushRows();
    this.batchStatement = statement;
    this.batch.push(values);
    // Row values plus JSON's quotes and commas, roughly: the cap is on memory, not exact.
    this.batchBytes += bytes + 4 * values.length;
    if (this.batchBytes >= ROW_BATCH_BYTES) await this.flushRows();
  }

  /** Sends the rows gathered so far, if any. */
  async flushRows(): Promise<void> {
    if (this.batch.length === 0) return;
    const rows = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    await this.write({ type: 'rows', statement: this.batchStatement, rows });
  }

  private write(event: ExecEvent): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.out.write(`${JSON.stringify(event)}\n`)) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        this.out.off('drain', done);
        this.out.off('close', done);
        resolve();
      };
      this.out.on('drain', done);
      this.out.on('close', done);
    });
  }
}

/** Names of common PostgreSQL types by OID (pg_type.h); others are `unknown` (no catalog query). */
const TYPE_NAMES = new Map<number, string>([
  [16, 'bool'],
  [17, 'bytea'],
  [18, 'char'],
  [19, 'name'],
  [20, 'int8'],
  [21, 'int2'],
  [23, 'int4'],
  [25, 'text'],
  [26, 'oid'],
  [114, 'json'],
  [700, 'float4'],
  [701, 'float8'],
  [1042, 'bpchar'],
  [1043, 'varchar'],
  [1082, 'date'],
  [1083, 'time'],
  [1114, 'timestamp'],
  [1184, 'timestamptz'],
  [1186, 'interval'],
  [1700, 'numeric'],
  [2950, 'uuid'],
  [3802, 'jsonb'],
]);

export function execColumn(name: string, typeOid: number): ExecColumn {
  return { name, typeOid, type: TYPE_NAMES.get(typeOid) ?? 'unknown' };
}
