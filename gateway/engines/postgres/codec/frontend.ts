// Frontend (client → server) messages: the decoders the gateway needs for what clients send it
// (first messages, Query, Parse, Bind, Close) and the encoders for what it sends the target as a
// client itself (startup, authentication, cancel, terminate). Message layouts follow the
// PostgreSQL documentation, "Frontend/Backend Protocol" → "Message Formats".
import { BodyReader, MessageWriter, PgProtocolError, soleCString } from './wire.js';

/** Request code of a protocol 3.0 StartupMessage (major 3 in the high 16 bits, minor 0). */
export const PROTOCOL_3_0 = 196608;
/** Request code of SSLRequest (1234 in the high 16 bits, 5679 in the low). */
export const SSL_REQUEST_CODE = 80877103;
/** Request code of GSSENCRequest (1234, 5680). */
export const GSSENC_REQUEST_CODE = 80877104;
/** Request code of CancelRequest (1234, 5678). */
export const CANCEL_REQUEST_CODE = 80877102;

/** One of the untyped messages a client may open a connection with. */
export type FirstMessage =
  | { readonly kind: 'startup'; readonly major: number; readonly minor: number; readonly params: ReadonlyMap<string, string> }
  | { readonly kind: 'ssl' }
  | { readonly kind: 'gssenc' }
  | { readonly kind: 'cancel'; readonly pid: number; readonly secret: number };

/**
 * Decodes an untyped first message from its body (everything after the Int32 length, starting
 * with the request code). Accepts protocol major version 3 with any minor version (the caller
 * negotiates the minor down); anything else is `unsupported` with SQLSTATE 0A000, as PostgreSQL
 * answers it.
 */
export function decodeFirstMessage(body: Buffer): FirstMessage {
  const r = new BodyReader(body, 0, body.length, 'startup packet');
  const code = r.int32('request code');
  switch (code) {
    case SSL_REQUEST_CODE:
      r.finish();
      return { kind: 'ssl' };
    case GSSENC_REQUEST_CODE:
      r.finish();
      return { kind: 'gssenc' };
    case CANCEL_REQUEST_CODE: {
      const pid = r.int32('process ID');
      const secret = r.int32('secret key');
      r.finish();
      return { kind: 'cancel', pid, secret };
    }
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  if (major !== 3) {
    throw new PgProtocolError('unsupported', `unsupported frontend protocol ${major}.${minor}: the gateway speaks 3.0`, {
      sqlstate: '0A000',
    });
  }
  const params = new Map<string, string>();
  for (;;) {
    const name = r.cstring('parameter name');
    if (name === '') break;
    params.set(name, r.cstring(`value of parameter "${name}"`));
  }
  r.finish();
  return { kind: 'startup', major, minor, params };
}

/** Query ('Q'): one string that may hold several statements. */
export function decodeQuery(body: Buffer): { readonly sql: string } {
  return { sql: decodeQueryText(body, 0, body.length) };
}

/** The SQL of a Query whose body is `buf[start, end)`: read in place, for the relay's hot path. */
export function decodeQueryText(buf: Buffer, start: number, end: number): string {
  return soleCString(buf, start, end, 'Query', 'query string');
}

/** Parse ('P'). `paramTypes` are OIDs (0 = let the server infer). */
export interface ParseMessage {
  readonly statement: string;
  readonly sql: string;
  readonly paramTypes: readonly number[];
}

/**
 * Decodes a Parse body.
 * @throws PgProtocolError when the body does not match the layout.
 */
export function decodeParse(body: Buffer): ParseMessage {
  const r = new BodyReader(body, 0, body.length, 'Parse');
  const statement = r.cstring('statement name');
  const sql = r.cstring('query string');
  const count = r.count16('parameter type count');
  const paramTypes: number[] = [];
  for (let k = 0; k < count; k++) paramTypes.push(r.int32('parameter type') >>> 0);
  r.finish();
  return { statement, sql, paramTypes };
}

/** A Bind parameter: text-format values as strings, binary-format values as raw bytes, NULL as null. */
export type BindParam = string | Buffer | null;

/** Bind ('B'). Binary parameter values are views into the message buffer. */
export interface BindMessage {
  readonly portal: string;
  readonly statement: string;
  readonly params: readonly BindParam[];
  readonly resultFormats: readonly number[];
}

function formatCodes(r: BodyReader, message: string, what: string): number[] {
  const count = r.count16(`${what} format count`);
  const codes: number[] = [];
  for (let k = 0; k < count; k++) {
    const code = r.int16(`${what} format code`);
    if (code !== 0 && code !== 1) throw new PgProtocolError('malformed', `${message} has ${what} format code ${code}`);
    codes.push(code);
  }
  return codes;
}

/** Format codes, then the values they describe: the shared tail of Bind and FunctionCall. */
function values(r: BodyReader, message: string): BindParam[] {
  const formats = formatCodes(r, message, 'parameter');
  const count = r.count16('parameter count');
  // As PostgreSQL: no codes = all text, one code = applies to all, else one per parameter.
  if (formats.length > 1 && formats.length !== count) {
    throw new PgProtocolError('malformed', `${message} has ${formats.length} parameter formats but ${count} parameters`);
  }
  const params: BindParam[] = [];
  for (let k = 0; k < count; k++) {
    const len = r.int32('parameter length');
    if (len === -1) {
      params.push(null);
      continue;
    }
    if (len < 0) throw new PgProtocolError('malformed', `${message} parameter ${k + 1} declares length ${len}`);
    const value = r.bytes(len, 'parameter value');
    const format = formats.length === 0 ? 0 : formats.length === 1 ? formats[0] : formats[k];
    params.push(format === 1 ? value : value.toString('utf8'));
  }
  return params;
}

/**
 * Decodes a Bind body, applying the parameter format codes as PostgreSQL does.
 * @throws PgProtocolError for bad format codes, a format/parameter count mismatch or bad lengths.
 */
export function decodeBind(body: Buffer): BindMessage {
  const r = new BodyReader(body, 0, body.length, 'Bind');
  const portal = r.cstring('portal name');
  const statement = r.cstring('statement name');
  const params = values(r, 'Bind');
  const resultFormats = formatCodes(r, 'Bind', 'result');
  r.finish();
  return { portal, statement, params, resultFormats };
}

/**
 * FunctionCall ('F', the "fast path" libpq's large-object API uses): calls a function by OID
 * without any SQL, so the gateway records it like a statement.
 */
export function decodeFunctionCall(body: Buffer): { readonly functionOid: number; readonly args: readonly BindParam[] } {
  const r = new BodyReader(body, 0, body.length, 'FunctionCall');
  const functionOid = r.int32('function OID') >>> 0;
  const args = values(r, 'FunctionCall');
  const resultFormat = r.int16('result format code');
  if (resultFormat !== 0 && resultFormat !== 1) throw new PgProtocolError('malformed', `FunctionCall has result format code ${resultFormat}`);
  r.finish();
  return { functionOid, args };
}

/** Close ('C'): drops a prepared statement or a portal. */
export function decodeClose(body: Buffer): { readonly kind: 'statement' | 'portal'; readonly name: string } {
  const r = new BodyReader(body, 0, body.length, 'Close');
  const what = r.byte('target kind');
  if (what !== 0x53 && what !== 0x50) throw new PgProtocolError('malformed', `Close names target kind ${what}`);
  const name = r.cstring('name');
  r.finish();
  return { kind: what === 0x53 ? 'statement' : 'portal', name };
}

/** Describe ('D'): a prepared statement or a portal to describe. */
export function decodeDescribe(body: Buffer): { readonly kind: 'statement' | 'portal'; readonly name: string } {
  const r = new BodyReader(body, 0, body.length, 'Describe');
  const what = r.byte('target kind');
  if (what !== 0x53 && what !== 0x50) throw new PgProtocolError('malformed', `Describe names target kind ${what}`);
  const name = r.cstring('name');
  r.finish();
  return { kind: what === 0x53 ? 'statement' : 'portal', name };
}

/** Execute ('E'): the portal to run (and a row limit the gateway does not need). */
export function decodeExecute(body: Buffer): { readonly portal: string } {
  const r = new BodyReader(body, 0, body.length, 'Execute');
  const portal = r.cstring('portal name');
  r.int32('row limit');
  r.finish();
  return { portal };
}

/** Describe ('D') of a portal, which the gateway sends to learn the columns of an Execute's rows. */
export function encodeDescribePortal(name: string): Buffer {
  return new MessageWriter().byte(0x50).cstring(name).typed('D');
}

/** StartupMessage for protocol 3.0 with the given parameters (user, database, …), in order. */
export function encodeStartupMessage(params: Iterable<readonly [string, string]>): Buffer {
  const w = new MessageWriter().int32(PROTOCOL_3_0);
  for (const [name, value] of params) w.cstring(name).cstring(value);
  return w.byte(0).untyped();
}

/** PasswordMessage ('p') carrying a cleartext or MD5-hashed password. */
export function encodePasswordMessage(password: string): Buffer {
  return new MessageWriter().cstring(password).typed('p');
}

/** SASLInitialResponse ('p'): the chosen mechanism and its client-first-message. */
export function encodeSASLInitialResponse(mechanism: string, data: string): Buffer {
  const bytes = Buffer.from(data, 'utf8');
  return new MessageWriter().cstring(mechanism).int32(bytes.length).bytes(bytes).typed('p');
}

/** SASLResponse ('p'): a further SASL message (for SCRAM, the client-final-message). */
export function encodeSASLResponse(data: string): Buffer {
  return new MessageWriter().bytes(Buffer.from(data, 'utf8')).typed('p');
}

/** CancelRequest for the backend identified by (pid, secret), sent on a new connection. */
export function encodeCancelRequest(pid: number, secret: number): Buffer {
  return new MessageWriter().int32(CANCEL_REQUEST_CODE).int32(pid).int32(secret).untyped();
}

const TERMINATE = Buffer.from([0x58, 0, 0, 0, 4]);
const SSL_REQUEST = new MessageWriter().int32(SSL_REQUEST_CODE).untyped();

/** Terminate ('X'). The returned buffer is shared: do not modify it. */
export function encodeTerminate(): Buffer {
  return TERMINATE;
}

/** SSLRequest. The returned buffer is shared: do not modify it. */
export function encodeSSLRequest(): Buffer {
  return SSL_REQUEST;
}
