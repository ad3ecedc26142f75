// SCRAM-SHA-256 client for the gateway's upstream PostgreSQL login (RFC 5802 with the SHA-256
// parameters of RFC 7677), in the form PostgreSQL speaks it: no channel binding (gs2 header
// `n,,`) and an empty `n=` user name, because the server takes the user from the StartupMessage.
// Pure: messages in, messages out, no sockets. The password never appears in an error.
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

/** Raised for any malformed, unexpected or failed step of the exchange. */
export class ScramError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ScramError';
  }
}

/** One SCRAM-SHA-256 exchange; each method is called once, in order. */
export interface ScramClient {
  /** client-first-message, the initial response of SASLInitialResponse (RFC 5802 §7). */
  clientFirstMessage(): string;
  /** Takes the server-first-message (SASLContinue data) and returns the client-final-message. */
  handleServerFirst(serverFirst: string): string;
  /** Checks the server-final-message (SASLFinal data); throws ScramError on `e=` or a bad signature. */
  verifyServerFinal(serverFinal: string): void;
}

const GS2_HEADER = 'n,,';
const CHANNEL_BINDING = Buffer.from(GS2_HEADER).toString('base64'); // "biws"
const SHA256_LENGTH = 32;
/** PostgreSQL's default is 4096 and it lets `scram_iterations` go down to 1 (PG 16), as libpq does. */
const MIN_ITERATIONS = 1;
/**
 * Far above any real server; the cap exists because the derivation is synchronous and a
 * misconfigured or hostile target must not stall the gateway's event loop for minutes.
 */
const MAX_ITERATIONS = 10_000_000;
/** RFC 5802 §7: printable = %x21-2B / %x2D-7E (printable ASCII except ','). */
const PRINTABLE = /^[\x21-\x2b\x2d-\x7e]+$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Starts an exchange for `password`. `nonce` exists for tests; by default 18 random bytes in
 * base64 are used, as libpq does.
 */
export function createScramClient(password: string, nonce?: string): ScramClient {
  const clientNonce = nonce ?? randomBytes(18).toString('base64');
  if (!PRINTABLE.test(clientNonce)) {
    throw new ScramError('client nonce must be printable ASCII without ","');
  }
  const clientFirstBare = `n=,r=${clientNonce}`;
  let state: 'initial' | 'sent-final' | 'done' = 'initial';
  let expectedServerSignature: Buffer | undefined;

  return {
    clientFirstMessage() {
      return GS2_HEADER + clientFirstBare;
    },

    handleServerFirst(serverFirst) {
      if (state !== 'initial') throw new ScramError('server-first-message received twice');
      const { nonce: serverNonce, salt, iterations } = parseServerFirst(serverFirst);
      if (serverNonce.length <= clientNonce.length || !serverNonce.startsWith(clientNonce)) {
        throw new ScramError('server nonce does not extend the client nonce');
      }
      const clientFinalWithoutProof = `c=${CHANNEL_BINDING},r=${serverNonce}`;
      const authMessage = `${clientFirstBare},${serverFirst},${clientFinalWithoutProof}`;
      const { clientProof, serverSignature } = computeScramProof(password, salt, iterations, authMessage);
      expectedServerSignature = serverSignature;
      state = 'sent-final';
      return `${clientFinalWithoutProof},p=${clientProof.toString('base64')}`;
    },

    verifyServerFinal(serverFinal) {
      if (state !== 'sent-final' || !expectedServerSignature) {
        throw new ScramError('server-final-message before server-first-message');
      }
      state = 'done';
      const attrs = serverFinal.split(',');
      const first = attrs[0] ?? '';
      if (first.startsWith('e=')) {
        // RFC 5802 §7 server-error-value: a fixed token such as "invalid-proof", safe to show.
        throw new ScramError(`server rejected the SCRAM exchange: ${first.slice(2)}`);
      }
      if (!first.startsWith('v=')) throw new ScramError('server-final-message has no verifier');
      const encoded = first.slice(2);
      if (!BASE64.test(encoded)) throw new ScramError('server signature is not base64');
      const received = Buffer.from(encoded, 'base64');
      if (received.length !== expectedServerSignature.length || !timingSafeEqual(received, expectedServerSignature)) {
        throw new ScramError('server signature does not match: the server does not know the password');
      }
    },
  };
}

interface ServerFirst {
  nonce: string;
  salt: Buffer;
  iterations: number;
}

/** RFC 5802 §7: server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count ["," extensions] */
function parseServerFirst(message: string): ServerFirst {
  const attrs = message.split(',');
  if (attrs[0]?.startsWith('m=')) throw new ScramError('server requires an unsupported SCRAM extension');
  const [r, s, i] = attrs;
  if (!r?.startsWith('r=') || !s?.startsWith('s=') || !i?.startsWith('i=')) {
    throw new ScramError('malformed server-first-message');
  }
  const nonce = r.slice(2);
  if (!PRINTABLE.test(nonce)) throw new ScramError('server nonce is not printable ASCII');
  const saltText = s.slice(2);
  if (saltText.length === 0 || !BASE64.test(saltText)) throw new ScramError('salt is not base64');
  const iterationText = i.slice(2);
  if (!/^[1-9][0-9]{0,9}$/.test(iterationText)) throw new ScramError('iteration count is not a positive integer');
  const iterations = Number(iterationText);
  if (iterations < MIN_ITERATIONS || iterations > MAX_ITERATIONS) {
    throw new ScramError(`iteration count ${iterations} is outside ${MIN_ITERATIONS}..${MAX_ITERATIONS}`);
  }
  return { nonce, salt: Buffer.from(saltText, 'base64'), iterations };
}

/** How many SaltedPasswords are kept: a few per target a gateway logs in to, and a bound. */
export const SALTED_PASSWORD_CACHE_SIZE = 64;
const saltedPasswords = new Map<string, Buffer>();

/**
 * Hi(SASLprep(password), salt, i), remembered per (password, salt, iterations). A server keeps
 * the salt and count it chose when the password was set, so every login of a session-per-exec
 * gateway would otherwise repeat the same 4096 rounds of PBKDF2 (about a millisecond of the event
 * loop each). Safe to reuse: the value is a function of its three inputs and is never sent (only
 * proofs bound to each login's nonces are), the server signature is still checked on every login,
 * and a new password or a server that changes the salt simply misses. The gateway holds the
 * password itself anyway; this is no more secret than that. Bounded, oldest entry out first, so a
 * target offering a new salt on each login cannot grow it.
 */
export function saltedPasswordFor(password: string, salt: Buffer, iterations: number): Buffer {
  const key = `${iterations}\0${salt.toString('base64')}\0${password}`;
  let salted = saltedPasswords.get(key);
  if (salted === undefined) {
    salted = pbkdf2Sync(saslprep(password), salt, iterations, SHA256_LENGTH, 'sha256');
    if (saltedPasswords.size >= SALTED_PASSWORD_CACHE_SIZE) saltedPasswords.delete(saltedPasswords.keys().next().value as string);
    saltedPasswords.set(key, salted);
  }
  return salted;
}

/**
 * RFC 5802 §3: SaltedPassword = Hi(SASLprep(password), salt, i); ClientProof = ClientKey XOR
 * HMAC(H(ClientKey), AuthMessage); ServerSignature = HMAC(HMAC(SaltedPassword, "Server Key"),
 * AuthMessage). Exported so tests can check it against the RFC 7677 vector, whose AuthMessage
 * carries a user name that PostgreSQL's form leaves out.
 */
export function computeScramProof(
  password: string,
  salt: Buffer,
  iterations: number,
  authMessage: string,
): { clientProof: Buffer; serverSignature: Buffer } {
  const saltedPassword = saltedPasswordFor(password, salt, iterations);
  const clientKey = hmac(saltedPassword, 'Client Key');
  const storedKey = createHash('sha256').update(clientKey).digest();
  const clientSignature = hmac(storedKey, authMessage);
  const clientProof = Buffer.alloc(SHA256_LENGTH);
  for (let k = 0; k < SHA256_LENGTH; k++) clientProof[k] = clientKey[k]! ^ clientSignature[k]!;
  const serverSignature = hmac(hmac(saltedPassword, 'Server Key'), authMessage);
  return { clientProof, serverSignature };
}

function hmac(key: Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

// --- SASLprep (RFC 4013) as PostgreSQL applies it (src/common/saslprep.c) -------------------
//
// PostgreSQL prepares the password the same way when it stores a SCRAM verifier and when libpq
// logs in, and *falls back to the raw password* whenever preparation fails (invalid UTF-8, a
// prohibited character, a bidi violation, nothing left after mapping). A client must reproduce
// that, or non-ASCII passwords stop working. Steps, in PostgreSQL's order:
//   ASCII only → used as is (even control characters).
//   1 map: non-ASCII spaces (C.1.2) → U+0020; "commonly mapped to nothing" (B.1) removed.
//   2 NFKC.
//   3 prohibit: PostgreSQL checks the *mapped, not yet normalized* string against the
//     prohibited-output tables (C.1.2-C.9) and the unassigned table (A.1).
//   4 bidi (RFC 3454 §6) on the same string.
// Known gaps, both only for exotic passwords: A.1 lists code points unassigned in Unicode 3.2.
// Above the BMP we carry its ranges; inside the BMP we only test for code points unassigned in
// the runtime's Unicode (\p{Cn}), so a BMP character added after 3.2 (e.g. U+20B9 ₹) makes
// PostgreSQL use the raw password where we use the NFKC form. The two differ only if the
// password also contains something NFKC changes. D.2 (bidi category L) is approximated by
// letters and spacing marks outside D.1.

type Ranges = readonly (readonly [number, number])[];

/** RFC 3454 C.1.2, with U+200B as PostgreSQL lists it. */
const NON_ASCII_SPACE: Ranges = [[0xa0, 0xa0], [0x1680, 0x1680], [0x2000, 0x200b], [0x202f, 0x202f], [0x205f, 0x205f], [0x3000, 0x3000]];
/** RFC 3454 B.1. */
const MAPPED_TO_NOTHING: Ranges = [
  [0xad, 0xad], [0x34f, 0x34f], [0x1806, 0x1806], [0x180b, 0x180d], [0x200b, 0x200d],
  [0x2060, 0x2060], [0xfe00, 0xfe0f], [0xfeff, 0xfeff],
];
/** RFC 4013 §2.3 prohibited output: RFC 3454 C.1.2, C.2.1, C.2.2, C.3, C.4, C.5, C.6, C.7, C.8, C.9. */
const PROHIBITED: Ranges = [
  [0x0, 0x1f], [0x7f, 0xa0], [0x340, 0x341], [0x6dd, 0x6dd], [0x70f, 0x70f], [0x1680, 0x1680],
  [0x180e, 0x180e], [0x2000, 0x200f], [0x2028, 0x202f], [0x205f, 0x2063], [0x206a, 0x206f],
  [0x2ff0, 0x2ffb], [0x3000, 0x3000], [0xd800, 0xf8ff], [0xfdd0, 0xfdef], [0xfeff, 0xfeff],
  [0xfff9, 0xffff], [0x1d173, 0x1d17a], [0xe0001, 0xe0001], [0xe0020, 0xe007f], [0xf0000, 0x10ffff],
];
/** RFC 3454 D.1: bidi category R or AL. */
const RAND_AL: Ranges = [
  [0x5be, 0x5be], [0x5c0, 0x5c0], [0x5c3, 0x5c3], [0x5d0, 0x5ea], [0x5f0, 0x5f4], [0x61b, 0x61b],
  [0x61f, 0x61f], [0x621, 0x63a], [0x640, 0x64a], [0x66d, 0x66f], [0x671, 0x6d5], [0x6dd, 0x6dd],
  [0x6e5, 0x6e6], [0x6fa, 0x6fe], [0x700, 0x70d], [0x710, 0x710], [0x712, 0x72c], [0x780, 0x7a5],
  [0x7b1, 0x7b1], [0x200f, 0x200f], [0xfb1d, 0xfb1d], [0xfb1f, 0xfb28], [0xfb2a, 0xfb36],
  [0xfb38, 0xfb3c], [0xfb3e, 0xfb3e], [0xfb40, 0xfb41], [0xfb43, 0xfb44], [0xfb46, 0xfbb1],
  [0xfbd3, 0xfd3d], [0xfd50, 0xfd8f], [0xfd92, 0xfdc7], [0xfdf0, 0xfdfc], [0xfe70, 0xfe74], [0xfe76, 0xfefc],
];
/**
 * RFC 3454 A.1 above the BMP: the supplementary planes were nearly empty in Unicode 3.2, and
 * what has been added there since (emoji above all) still counts as unassigned for PostgreSQL.
 */
const UNASSIGNED_SUPPLEMENTARY: Ranges = [
  [0x10000, 0x102ff], [0x1031f, 0x1031f], [0x10324, 0x1032f], [0x1034b, 0x103ff], [0x10426, 0x10427],
  [0x1044e, 0x1cfff], [0x1d0f6, 0x1d0ff], [0x1d127, 0x1d129], [0x1d1de, 0x1d3ff], [0x1d6a4, 0x1d6a7],
  [0x1d7ca, 0x1d7cd], [0x1d800, 0x1fffd], [0x2a6d7, 0x2f7ff], [0x2fa1e, 0x2fffd], [0x30000, 0xdfffd],
  [0xe0000, 0xe0000], [0xe0002, 0xe001f], [0xe0080, 0xefffd],
];
const UNASSIGNED = /\p{Cn}/u;
const LONE_SURROGATE = /\p{Cs}/u;
const LEFT_TO_RIGHT = /[\p{L}\p{Mc}]/u;

function isAscii(text: string): boolean {
  for (let k = 0; k < text.length; k++) if (text.charCodeAt(k) > 0x7f) return false;
  return true;
}

function inRanges(code: number, ranges: Ranges): boolean {
  return ranges.some(([lo, hi]) => code >= lo && code <= hi);
}

function isProhibited(code: number): boolean {
  return (
    inRanges(code, PROHIBITED) ||
    (code & 0xfffe) === 0xfffe ||
    (code > 0xffff && inRanges(code, UNASSIGNED_SUPPLEMENTARY)) ||
    UNASSIGNED.test(String.fromCodePoint(code))
  );
}

/**
 * The password bytes PostgreSQL feeds to PBKDF2: the SASLprep form, or the password unchanged
 * where PostgreSQL would fail to prepare it. Exported for tests.
 */
export function saslprep(password: string): string {
  if (isAscii(password)) return password;
  if (LONE_SURROGATE.test(password)) return password; // not valid UTF-8, so raw for PostgreSQL too
  const mapped: number[] = [];
  for (const ch of password) {
    const code = ch.codePointAt(0)!;
    if (inRanges(code, NON_ASCII_SPACE)) mapped.push(0x20);
    else if (!inRanges(code, MAPPED_TO_NOTHING)) mapped.push(code);
  }
  if (mapped.length === 0) return password;
  if (mapped.some(isProhibited)) return password;
  if (mapped.some((c) => inRanges(c, RAND_AL))) {
    const first = mapped[0]!;
    const last = mapped[mapped.length - 1]!;
    const hasLeftToRight = mapped.some((c) => !inRanges(c, RAND_AL) && LEFT_TO_RIGHT.test(String.fromCodePoint(c)));
    if (hasLeftToRight || !inRanges(first, RAND_AL) || !inRanges(last, RAND_AL)) return password;
  }
  return String.fromCodePoint(...mapped).normalize('NFKC');
}
