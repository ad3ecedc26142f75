// Backend (server → client) messages: decoders for what the gateway reads from the target
// (authentication requests, startup parameters, keys, results, errors) and encoders for what it
// says to clients in the server's role (its own errors, AuthenticationOk, parameters, its own
// BackendKeyData, ReadyForQuery). Layouts follow the PostgreSQL documentation, "Frontend/Backend
// Protocol" → "Message Formats" and "Error and Notice Message Fields".
import { BodyReader, MessageWriter, PgProtocolError, soleCString } from './wire.js';

/** An Authentication* request ('R'), by its Int32 code. */
export type AuthenticationRequest =
  | { readonly kind: 'ok' }
  | { readonly kind: 'cleartext' }
  | { readonly kind: 'md5'; readonly salt: Buffer }
  | { readonly kind: 'sasl'; readonly mechanisms: readonly string[] }
  | { readonly kind: 'sasl-continue'; readonly data: Buffer }
  | { readonly kind: 'sasl-final'; readonly data: Buffer }
  /** A method the gateway does not implement (Kerberos, SCM, GSSAPI, SSPI), named for errors. */
  | { readonly kind: 'unsupported'; readonly method: string };

const UNSUPPORTED_AUTH: Record<number, string> = { 2: 'KerberosV5', 6: 'SCM credentials', 7: 'GSSAPI', 8: 'GSSAPI', 9: 'SSPI' };

/**
 * Decodes an Authentication* request ('R') from the target.
 * @throws PgProtocolError for an unknown request code or a body that does not fit it.
 */
export function decodeAuthentication(body: Buffer): AuthenticationRequest {
  const r = new BodyReader(body, 0, body.length, 'Authentication');
  const code = r.int32('request code');
  let result: AuthenticationRequest;
  switch (code) {
    case 0:
      result = { kind: 'ok' };
      break;
    case 3:
      result = { kind: 'cleartext' };
      break;
    case 5:
      result = { kind: 'md5', salt: r.bytes(4, 'salt') };
      break;
    case 10: {
      const mechanisms: string[] = [];
      for (let m = r.cstring('mechanism'); m !== ''; m = r.cstring('mechanism')) mechanisms.push(m);
      result = { kind: 'sasl', mechanisms };
      break;
    }
    case 11:
      return { kind: 'sasl-continue', data: r.rest() };
    case 12:
      return { kind: 'sasl-final', data: r.rest() };
    default: {
      const method = UNSUPPORTED_AUTH[code];
      if (method === undefined) throw new PgProtocolError('malformed', `unknown authentication request code ${code}`);
      // GSSContinue carries data; the request is refused whatever follows.
      return { kind: 'unsupported', method };
    }
  }
  r.finish();
  return result;
}

/** The fields of an ErrorResponse or NoticeResponse. */
export interface PgErrorFields {
  /** Non-localized severity (field V) where the server sends it, else field S. */
  readonly severity: string;
  /** SQLSTATE (field C). */
  readonly code: string;
  readonly message: string;
  readonly detail?: string;
  readonly hint?: string;
  /** Every field by its one-letter code, for what the named properties leave out. */
  readonly fields: ReadonlyMap<string, string>;
}

/** Decodes ErrorResponse ('E') or NoticeResponse ('N') fields. Missing fields become ''. */
export function decodeErrorFields(body: Buffer): PgErrorFields {
  const r = new BodyReader(body, 0, body.length, 'ErrorResponse');
  const fields = new Map<string, string>();
  for (let t = r.byte('field type'); t !== 0; t = r.byte('field type')) {
    fields.set(String.fromCharCode(t), r.cstring('field value'));
  }
  r.finish();
  const detail = fields.get('D');
  const hint = fields.get('H');
  return {
    severity: fields.get('V') ?? fields.get('S') ?? '',
    code: fields.get('C') ?? '',
    message: fields.get('M') ?? '',
    ...(detail === undefined ? {} : { detail }),
    ...(hint === undefined ? {} : { hint }),
    fields,
  };
}

/** BackendKeyData ('K') of protocol 3.0: the key a CancelRequest must present. */
export function decodeBackendKeyData(body: Buffer): { readonly pid: number; readonly secret: number } {
  const r = new BodyReader(body, 0, body.length, 'BackendKeyData');
  const pid = r.int32('process ID');
  const secret = r.int32('secret key');
  r.finish();
  return { pid, secret };
}

/** ParameterStatus ('S'). */
export function decodeParameterStatus(body: Buffer): { readonly name: string; readonly value: string } {
  const r = new BodyReader(body, 0, body.length, 'ParameterStatus');
  const name = r.cstring('name');
  const value = r.cstring('value');
  r.finish();
  return { name, value };
}

/** Transaction status of ReadyForQuery: idle, in a transaction block, in a failed one. */
export type TransactionStatus = 'I' | 'T' | 'E';

/** ReadyForQuery ('Z'). */
export function decodeReadyForQuery(body: Buffer): TransactionStatus {
  const r = new BodyReader(body, 0, body.length, 'ReadyForQuery');
  const s = String.fromCharCode(r.byte('transaction status'));
  r.finish();
  if (s !== 'I' && s !== 'T' && s !== 'E') throw new PgProtocolError('malformed', 'ReadyForQuery has an unknown transaction status');
  return s;
}

/** CommandComplete ('C'): the command tag, e.g. `INSERT 0 5`. */
export function decodeCommandComplete(body: Buffer, start = 0, end = body.length): string {
  return soleCString(body, start, end, 'CommandComplete', 'command tag');
}

const COUNTED_COMMANDS = new Set(['INSERT', 'DELETE', 'UPDATE', 'MERGE', 'SELECT', 'MOVE', 'FETCH', 'COPY']);

/**
 * The row count a command tag reports (`SELECT 3` → 3, `INSERT 0 5` → 5), or undefined for tags
 * without one (`CREATE TABLE`, `SELECT` from CREATE TABLE AS in old servers, …).
 */
export function rowCountFromTag(tag: string): number | undefined {
  // A session mostly repeats the same few statements (`SELECT 1` on every round trip of
  // pgbench -S): the last tag's count is kept rather than split and matched again.
  if (tag === lastTag) return lastCount;
  const space = tag.indexOf(' ');
  const last = tag.slice(tag.lastIndexOf(' ') + 1);
  const count = space < 0 || !COUNTED_COMMANDS.has(tag.slice(0, space)) || !/^[0-9]+$/.test(last) ? undefined : Number(last);
  lastTag = tag;
  lastCount = count;
  return count;
}

let lastTag = '';
let lastCount: number | undefined;

/** What the gateway reports in an ErrorResponse or NoticeResponse of its own. */
export interface PgNotice {
  readonly severity: string;
  readonly sqlstate: string;
  readonly message: string;
  readonly detail?: string;
  readonly hint?: string;
}

function encodeNotice(type: 'E' | 'N', n: PgNotice): Buffer {
  // S is the localized severity, V the fixed one (PostgreSQL ≥ 9.6 sends both); the gateway does
  // not localize, so they agree.
  const w = new MessageWriter().byte(0x53).cstring(n.severity).byte(0x56).cstring(n.severity);
  w.byte(0x43).cstring(n.sqlstate).byte(0x4d).cstring(n.message);
  if (n.detail !== undefined) w.byte(0x44).cstring(n.detail);
  if (n.hint !== undefined) w.byte(0x48).cstring(n.hint);
  return w.byte(0).typed(type);
}

/** An ErrorResponse ('E') or NoticeResponse ('N') with exactly these fields, in this order (codes are single characters). */
export function encodeNoticeFields(type: 'E' | 'N', fields: Iterable<readonly [string, string]>): Buffer {
  const w = new MessageWriter();
  for (const [code, value] of fields) w.byte(code.charCodeAt(0)).cstring(value);
  return w.byte(0).typed(type);
}

/** ErrorResponse ('E'); severity ERROR, FATAL or PANIC. */
export function encodeErrorResponse(e: PgNotice & { readonly severity: 'ERROR' | 'FATAL' | 'PANIC' }): Buffer {
  return encodeNotice('E', e);
}

/** NoticeResponse ('N'); severity WARNING, NOTICE, DEBUG, INFO or LOG. */
export function encodeNoticeResponse(n: PgNotice & { readonly severity: 'WARNING' | 'NOTICE' | 'DEBUG' | 'INFO' | 'LOG' }): Buffer {
  return encodeNotice('N', n);
}

const AUTHENTICATION_OK = new MessageWriter().int32(0).typed('R');

/** AuthenticationOk. The returned buffer is shared: do not modify it. */
export function encodeAuthenticationOk(): Buffer {
  return AUTHENTICATION_OK;
}

/** ParameterStatus ('S'): a run-time parameter's current value. */
export function encodeParameterStatus(name: string, value: string): Buffer {
  return new MessageWriter().cstring(name).cstring(value).typed('S');
}

/** BackendKeyData ('K') of protocol 3.0: the key a client presents in a CancelRequest. */
export function encodeBackendKeyData(pid: number, secret: number): Buffer {
  return new MessageWriter().int32(pid).int32(secret).typed('K');
}

const READY: Record<TransactionStatus, Buffer> = {
  I: new MessageWriter().byte(0x49).typed('Z'),
  T: new MessageWriter().byte(0x54).typed('Z'),
  E: new MessageWriter().byte(0x45).typed('Z'),
};

/** ReadyForQuery. The returned buffer is shared: do not modify it. */
export function encodeReadyForQuery(status: TransactionStatus): Buffer {
  return READY[status];
}

/**
 * NegotiateProtocolVersion ('v'): tells a client that asked for a newer 3.x minor version, or
 * for `_pq_.` options, what the gateway speaks instead.
 */
export function encodeNegotiateProtocolVersion(newestMinor: number, unrecognized: readonly string[]): Buffer {
  const w = new MessageWriter().int32(newestMinor).int32(unrecognized.length);
  for (const name of unrecognized) w.cstring(name);
  return w.typed('v');
}
