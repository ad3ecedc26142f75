// The audit trail's format: the contract between the gateway that writes the trail and whoever
// verifies an export of it (`sluice audit verify`, or an auditor's own tool). It defines canonical
// JSON, the per-session event chain, the gateway-wide ledger chain and the bytes that Ed25519
// checkpoints sign. docs/audit.md is the prose version of this module; change both together.
import { createHash, createPublicKey, hash, type KeyObject } from 'node:crypto';
import { z } from 'zod';

/** Names this version of the format in export headers and in every signed message. */
export const TRAIL_FORMAT = 'sluice-audit/1';

/** The `prev` of a chain's first link: 32 zero bytes, written as hex. */
export const GENESIS_HASH = '0'.repeat(64);

/** Event kinds the gateway writes today; later protocols add their own. */
export const eventKinds = [
  'session.start',
  'query',
  'decision',
  'result',
  'review.created',
  'review.approved',
  'review.rejected',
  'review.expired',
  'session.end',
] as const;
export type EventKind = (typeof eventKinds)[number];

/**
 * Canonical JSON (RFC 8785, JCS): object keys sorted by UTF-16 code units, no whitespace, strings
 * and numbers exactly as ECMAScript's JSON.stringify writes them (so lone surrogates are escaped
 * as `\udXXX`), object members whose value is `undefined` omitted. Non-finite numbers, `undefined`
 * inside arrays and anything that is not a plain object, array, string, number, boolean or null
 * are rejected, so two writers can never disagree about the bytes of one value.
 */
export function canonicalJson(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`canonical JSON has no form for the number ${value}`);
      return JSON.stringify(value);
    case 'string':
      return JSON.stringify(value);
    case 'object': {
      // Built by concatenation, and keys sorted only when they are not already in order: every
      // statement through the gateway is serialised here, so this is on the tunnel's hot path.
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) {
          const v: unknown = value[i];
          if (v === undefined) throw new TypeError('canonical JSON has no form for undefined in an array');
          out += i === 0 ? canonicalJson(v) : `,${canonicalJson(v)}`;
        }
        return `${out}]`;
      }
      const proto = Object.getPrototypeOf(value) as unknown;
      if (proto !== Object.prototype && proto !== null) throw new TypeError('canonical JSON takes plain objects only');
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj);
      for (let i = 1; i < keys.length; i++) {
        if ((keys[i - 1] as string) > (keys[i] as string)) {
          keys.sort();
          break;
        }
      }
      let out = '{';
      for (const key of keys) {
        const v = obj[key];
        if (v === undefined) continue;
        out += `${out.length === 1 ? '' : ','}${JSON.stringify(key)}:${canonicalJson(v)}`;
      }
      return `${out}}`;
    }
    default:
      throw new TypeError(`canonical JSON has no form for a ${typeof value}`);
  }
}

/** What JSON.stringify would escape in a string (lone surrogates included: any surrogate takes the slow path). */
// eslint-disable-next-line no-control-regex -- control characters are exactly what JSON escapes
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** A string as canonical JSON writes it; most need no escape and skip the call into JSON.stringify (hot paths of recording). */
export const jsonString = (s: string): string => (NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`);

/** `sha256(prev ‖ canonical_json(body))`, with `prev` as its 32 raw bytes; lower-case hex. */
export function chainHash(prevHex: string, body: unknown): string {
  return chainHashOfText(prevHex, canonicalJson(body));
}

/** chainHash for a body already in canonical JSON. */
export function chainHashOfText(prevHex: string, canonical: string): string {
  if (!/^[0-9a-f]{64}$/.test(prevHex)) throw new TypeError('prev must be 64 lower-case hex digits');
  return linkHash(prevHex, canonical);
}

/** Where linkHash assembles `prev ‖ canonical` (one per thread; a body that does not surely fit gets a buffer of its own). */
const scratch = Buffer.allocUnsafe(64 * 1024);

/** chainHashOfText for a `prev` this process computed itself (the ingest's hot path): no validation. */
export function linkHash(prevHex: string, canonical: string): string {
  // The one-shot hash over a buffer kept for the purpose: no Hash object, no allocation, and the
  // body's UTF-8 length comes from encoding it (a UTF-16 unit never takes more than 3 bytes).
  if (32 + canonical.length * 3 > scratch.length) {
    const buf = Buffer.allocUnsafe(32 + Buffer.byteLength(canonical, 'utf8'));
    buf.write(prevHex, 0, 32, 'hex');
    buf.write(canonical, 32, 'utf8');
    return hash('sha256', buf, 'hex');
  }
  scratch.write(prevHex, 0, 32, 'hex');
  const n = scratch.write(canonical, 32, 'utf8');
  return hash('sha256', scratch.subarray(0, 32 + n), 'hex');
}

/** What an event's hash covers: everything in the event except the hash itself. */
export interface EventBody {
  /** The session this event belongs to: an event cannot be moved to another session's chain. */
  readonly session: string;
  /** 1, 2, 3, … within the session: reordering or removing events breaks the sequence. */
  readonly seq: number;
  readonly kind: EventKind;
  /** ISO-8601 UTC with milliseconds, e.g. `2026-11-05T10:04:05.123Z`. */
  readonly at: string;
  readonly data: Readonly<Record<string, unknown>>;
}

export function eventHash(prevHex: string, e: EventBody): string {
  return chainHash(prevHex, { session: e.session, seq: e.seq, kind: e.kind, at: e.at, data: e.data });
}

/** One link of the gateway-wide ledger: a session sealed, or sessions' events removed by retention. */
export type LedgerBody =
  | {
      readonly seq: number;
      readonly at: string;
      readonly kind: 'session';
      readonly session: string;
      readonly startedAt: string;
      /** How many events the session's chain has; `final` is the hash of the last one. */
      readonly events: number;
      readonly final: string;
    }
  | {
      readonly seq: number;
      readonly at: string;
      readonly kind: 'purge';
      /** Sessions that ended before this time had their events deleted. */
      readonly before: string;
      readonly sessions: readonly string[];
    };

export function ledgerHash(prevHex: string, entry: LedgerBody): string {
  return chainHash(prevHex, entry);
}

/** What a periodic checkpoint signs: the ledger's head at a moment. */
export interface CheckpointBody {
  readonly ledgerSeq: number;
  readonly ledgerHash: string;
  readonly at: string;
  /** Id of the signing key (see keyIdOf). */
  readonly key: string;
}

export function checkpointMessage(c: CheckpointBody): Buffer {
  return Buffer.from(canonicalJson({ purpose: `${TRAIL_FORMAT} checkpoint`, ledgerSeq: c.ledgerSeq, ledgerHash: c.ledgerHash, at: c.at, key: c.key }), 'utf8');
}

export type ExportScope = { readonly kind: 'all' } | { readonly kind: 'since'; readonly since: string } | { readonly kind: 'session'; readonly session: string };

/** What the export's last line signs: scope, the ledger range included, and each session's head. */
export interface ExportEndBody {
  readonly scope: ExportScope;
  readonly at: string;
  readonly key: string;
  /** First ledger entry in the export, the hash before it, and the ledger's head. */
  readonly ledgerFrom: number;
  readonly ledgerPrev: string;
  readonly ledgerSeq: number;
  readonly ledgerHash: string;
  /** Every session whose events the export holds, with its event count and last hash. */
  readonly sessions: readonly { readonly id: string; readonly events: number; readonly last: string }[];
  /**
   * The gateway's checkpoint interval in seconds (`audit.checkpoint.seconds`): no part of an honest
   * export's trail is left longer than this after its last signed checkpoint. Absent from exports of
   * gateways before it was signed, which therefore do not verify.
   */
  readonly checkpointSeconds?: number;
  /**
   * The gateway's URL as the header names it. Signed so that the header, which is not signed
   * itself, cannot be relabelled to name another gateway.
   */
  readonly gateway?: string;
}

export function exportEndMessage(e: ExportEndBody): Buffer {
  return Buffer.from(
    canonicalJson({
      purpose: `${TRAIL_FORMAT} export`,
      scope: e.scope,
      at: e.at,
      key: e.key,
      ledgerFrom: e.ledgerFrom,
      ledgerPrev: e.ledgerPrev,
      ledgerSeq: e.ledgerSeq,
      ledgerHash: e.ledgerHash,
      sessions: e.sessions.map((s) => ({ id: s.id, events: s.events, last: s.last })),
      ...(e.checkpointSeconds !== undefined ? { checkpointSeconds: e.checkpointSeconds } : {}),
      ...(e.gateway !== undefined ? { gateway: e.gateway } : {}),
    }),
    'utf8',
  );
}

/** A key's id: the first 16 hex digits of SHA-256 over its DER SubjectPublicKeyInfo. */
export function keyIdOf(key: KeyObject | string): string {
  const pub = typeof key === 'string' ? createPublicKey(key) : key.type === 'private' ? createPublicKey(key) : key;
  return createHash('sha256').update(pub.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

// ---- export lines (JSON Lines; one object per line, in this order) ----

const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
/**
 * A time exactly as the gateway writes one (`Date.prototype.toISOString`, UTC, milliseconds).
 * Looser forms parse differently from reader to reader (a time without a zone is local time to
 * some), so a line that holds one is not the gateway's.
 */
const iso = z.string().refine((s) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/.test(s) && !Number.isNaN(Date.parse(s)) && new Date(s).toISOString() === s, {
  message: 'not a UTC time as the gateway writes it (YYYY-MM-DDTHH:MM:SS.sssZ)',
});
const scope = z.union([
  z.strictObject({ kind: z.literal('all') }),
  z.strictObject({ kind: z.literal('since'), since: iso }),
  z.strictObject({ kind: z.literal('session'), session: z.string().min(1) }),
]);

export const exportHeaderLine = z.strictObject({ type: z.literal('header'), format: z.literal(TRAIL_FORMAT), at: iso, scope, key: z.string(), gateway: z.string().optional() });
export const exportEventLine = z.strictObject({
  type: z.literal('event'),
  session: z.string().min(1),
  seq: z.number().int().min(1),
  kind: z.string(),
  at: iso,
  data: z.record(z.string(), z.unknown()),
  hash: hex64,
});
export const exportLedgerLine = z.union([
  z.strictObject({ type: z.literal('ledger'), seq: z.number().int().min(1), at: iso, kind: z.literal('session'), session: z.string(), startedAt: iso, events: z.number().int().min(1), final: hex64, hash: hex64 }),
  z.strictObject({ type: z.literal('ledger'), seq: z.number().int().min(1), at: iso, kind: z.literal('purge'), before: iso, sessions: z.array(z.string()), hash: hex64 }),
]);
export const exportCheckpointLine = z.strictObject({ type: z.literal('checkpoint'), ledgerSeq: z.number().int().min(0), ledgerHash: hex64, at: iso, key: z.string(), sig: z.string() });
export const exportEndLine = z.strictObject({
  type: z.literal('end'),
  scope,
  at: iso,
  key: z.string(),
  ledgerFrom: z.number().int().min(1),
  ledgerPrev: hex64,
  ledgerSeq: z.number().int().min(0),
  ledgerHash: hex64,
  sessions: z.array(z.strictObject({ id: z.string(), events: z.number().int().min(1), last: hex64 })),
  checkpointSeconds: z.number().int().min(1).optional(),
  gateway: z.string().optional(),
  sig: z.string(),
});
export type ExportEventLine = z.infer<typeof exportEventLine>;
export type ExportLedgerLine = z.infer<typeof exportLedgerLine>;
export type ExportCheckpointLine = z.infer<typeof exportCheckpointLine>;
export type ExportEndLine = z.infer<typeof exportEndLine>;
