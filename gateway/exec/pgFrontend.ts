// The smallest PostgreSQL frontend the exec endpoint needs to drive the engine in-process: the
// messages it sends (StartupMessage, Query, CopyFail, Terminate, CancelRequest) and a pure,
// incremental decoder of what the engine answers. Only the simple query protocol is spoken, so
// only its answers are understood; any other backend message is a protocol error that fails the
// exec (fail closed rather than guess). No sockets here: the runner feeds chunks in.
import { decodeAuthentication, decodeBackendKeyData, decodeCommandComplete, decodeErrorFields, decodeParameterStatus, decodeReadyForQuery, type PgErrorFields, type TransactionStatus } from '../engines/postgres/codec/backend.js';
import { createBackendFramer, describeType, type PgFramer } from '../engines/postgres/codec/framer.js';
import { encodeCancelRequest, encodeStartupMessage, encodeTerminate } from '../engines/postgres/codec/frontend.js';
import { BodyReader, MessageWriter, PgProtocolError } from '../engines/postgres/codec/wire.js';

export { encodeCancelRequest, encodeTerminate };

/** What the exec frontend calls itself (the audit records it as the client application). */
export const EXEC_APPLICATION_NAME = 'sluice exec';
/** The client user name in the startup: meaningless to the engine (the caller is authenticated). */
export const EXEC_CLIENT_USER = 'sluice';

/** The StartupMessage of an exec session (UTF-8, so row text decodes as the gateway reads it). */
export function encodeExecStartup(database: string): Buffer {
  return encodeStartupMessage([
    ['user', EXEC_CLIENT_USER],
    ['database', database],
    ['application_name', EXEC_APPLICATION_NAME],
    ['client_encoding', 'UTF8'],
  ]);
}

/** Query ('Q'). @throws TypeError when `sql` contains NUL (the protocol cannot carry it). */
export function encodeQuery(sql: string): Buffer {
  return new MessageWriter().cstring(sql).typed('Q');
}

/** CopyFail ('f'): refuses a COPY FROM STDIN with `message` (the server reports it in its error). */
export function encodeCopyFail(message: string): Buffer {
  return new MessageWriter().cstring(message).typed('f');
}

export interface ColumnDescription {
  readonly name: string;
  readonly typeOid: number;
}

/** A decoded backend message of the simple query protocol. */
export type BackendMessage =
  | { readonly type: 'authOk' }
  | { readonly type: 'parameter'; readonly name: string; readonly value: string }
  | { readonly type: 'key'; readonly pid: number; readonly secret: number }
  | { readonly type: 'ready'; readonly status: TransactionStatus }
  | { readonly type: 'rowDescription'; readonly columns: readonly ColumnDescription[] }
  | { readonly type: 'dataRow'; readonly values: (string | null)[]; readonly bytes: number }
  | { readonly type: 'commandComplete'; readonly tag: string }
  | { readonly type: 'emptyQuery' }
  | { readonly type: 'error'; readonly fields: PgErrorFields }
  | { readonly type: 'notice'; readonly fields: PgErrorFields }
  | { readonly type: 'copyOut' }
  | { readonly type: 'copyData'; readonly data: Buffer }
  | { readonly type: 'copyDone' }
  | { readonly type: 'copyIn' };

/** Backend message type bytes the exec frontend understands. */
export const BackendType = {
  Authentication: 0x52, // R
  ParameterStatus: 0x53, // S
  BackendKeyData: 0x4b, // K
  ReadyForQuery: 0x5a, // Z
  RowDescription: 0x54, // T
  DataRow: 0x44, // D
  CommandComplete: 0x43, // C
  EmptyQueryResponse: 0x49, // I
  ErrorResponse: 0x45, // E
  NoticeResponse: 0x4e, // N
  CopyOutResponse: 0x48, // H
  CopyData: 0x64, // d
  CopyDone: 0x63, // c
  CopyInResponse: 0x47, // G
} as const;

/** RowDescription ('T'): each column's name and type OID (the rest is not needed by exec). */
export function decodeRowDescription(body: Buffer): ColumnDescription[] {
  const r = new BodyReader(body, 0, body.length, 'RowDescription');
  const n = r.count16('field count');
  const columns: ColumnDescription[] = [];
  for (let i = 0; i < n; i++) {
    const name = r.cstring('field name');
    r.int32('table OID');
    r.int16('column number');
    const typeOid = r.int32('type OID') >>> 0;
    r.int16('type size');
    r.int32('type modifier');
    r.int16('format code');
    columns.push({ name, typeOid });
  }
  r.finish();
  return columns;
}

/** DataRow ('D') in text format: each value as UTF-8 text, NULL as null. */
export function decodeDataRow(body: Buffer): (string | null)[] {
  const r = new BodyReader(body, 0, body.length, 'DataRow');
  const n = r.count16('column count');
  const values: (string | null)[] = [];
  for (let i = 0; i < n; i++) {
    const len = r.int32('value length');
    if (len < -1) throw new PgProtocolError('malformed', 'DataRow has a negative value length');
    values.push(len === -1 ? null : r.bytes(len, 'value').toString('utf8'));
  }
  r.finish();
  return values;
}

/** Decodes one backend message; `body` is the message without its 5-byte header. */
export function decodeBackendMessage(type: number, body: Buffer): BackendMessage {
  switch (type) {
    case BackendType.Authentication: {
      const auth = decodeAuthentication(body);
      // The engine completes startup itself; it never asks an exec for a password.
      if (auth.kind !== 'ok') throw new PgProtocolError('malformed', `the engine asked for ${auth.kind} authentication, which exec does not speak`);
      return { type: 'authOk' };
    }
    case BackendType.ParameterStatus:
      return { type: 'parameter', ...decodeParameterStatus(body) };
    case BackendType.BackendKeyData:
      return { type: 'key', ...decodeBackendKeyData(body) };
    case BackendType.ReadyForQuery:
      return { type: 'ready', status: decodeReadyForQuery(body) };
    case BackendType.RowDescription:
      return { type: 'rowDescription', columns: decodeRowDescription(body) };
    case BackendType.DataRow:
      return { type: 'dataRow', values: decodeDataRow(body), bytes: body.length };
    case BackendType.CommandComplete:
      return { type: 'commandComplete', tag: decodeCommandComplete(body) };
    case BackendType.EmptyQueryResponse:
      return { type: 'emptyQuery' };
    case BackendType.ErrorResponse:
      return { type: 'error', fields: decodeErrorFields(body) };
    case BackendType.NoticeResponse:
      return { type: 'notice', fields: decodeErrorFields(body) };
    case BackendType.CopyOutResponse:
      return { type: 'copyOut' };
    case BackendType.CopyData:
      return { type: 'copyData', data: body };
    case BackendType.CopyDone:
      return { type: 'copyDone' };
    case BackendType.CopyInResponse:
      return { type: 'copyIn' };
    default:
      throw new PgProtocolError('malformed', `unexpected backend message ${describeType(type)} for exec`);
  }
}

/** Incremental decoding: push chunks as they arrive, take out every complete message. */
export class BackendDecoder {
  private readonly framer: PgFramer = createBackendFramer();

  push(chunk: Buffer): void {
    this.framer.push(chunk);
  }

  /** The next complete message, or undefined until more bytes arrive. @throws PgProtocolError */
  next(): BackendMessage | undefined {
    const f = this.framer;
    if (!f.next()) return undefined;
    return decodeBackendMessage(f.type, f.buffer.subarray(f.bodyStart, f.end));
  }
}
