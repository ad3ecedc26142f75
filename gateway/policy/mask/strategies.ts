// Masking strategies and value masking. Values are handled as UTF-8 bytes (what PostgreSQL sends
// with client_encoding UTF8), so a DataRow value is masked without a decode/encode round trip and
// a multi-byte character is never cut: `partial` counts characters, not bytes, and detector spans
// fall on character boundaries (see detectors.ts).
import { createHmac } from 'node:crypto';
import { findSpans, screenBytes, type DetectorName, type Span } from './detectors.js';

const NO_SPANS: readonly Span[] = Object.freeze([]);

export type MaskStrategy = 'redact' | 'partial' | 'hash';

/** What `redact` puts in place of a value. */
export const REDACTED = '[redacted]';
export const REDACTED_BYTES = Buffer.from(REDACTED);

/** Strength order, for when two rules mask the same column differently: the stronger wins. */
export const STRATEGY_STRENGTH: Record<MaskStrategy, number> = { partial: 1, hash: 2, redact: 3 };

export function strongerStrategy(a: MaskStrategy | undefined, b: MaskStrategy): MaskStrategy {
  return a === undefined || STRATEGY_STRENGTH[b] > STRATEGY_STRENGTH[a] ? b : a;
}

/** How many characters `partial` shows: the last 4, but never more than half of the value. */
export function partialKeep(chars: number): number {
  return Math.min(4, Math.floor(chars / 2));
}

export const isContinuation = (b: number): boolean => (b & 0xc0) === 0x80;

/** `partial`: one `*` per hidden character, then the kept tail, cut on a character boundary. */
export function partialBytes(value: Uint8Array): Buffer {
  let chars = 0;
  for (const b of value) if (!isContinuation(b)) chars++;
  const keep = partialKeep(chars);
  let tailStart = value.length;
  for (let seen = 0; seen < keep && tailStart > 0; ) {
    tailStart--;
    if (!isContinuation(value[tailStart] as number)) seen++;
  }
  const out = Buffer.allocUnsafe(chars - keep + (value.length - tailStart));
  out.fill(0x2a, 0, chars - keep);
  out.set(value.subarray(tailStart), chars - keep);
  return out;
}

/** `hash`: `h:` + the first 16 hex digits of HMAC-SHA256(key, value). Equal values, equal output. */
export function hashBytes(value: Uint8Array, key: Buffer): Buffer {
  return Buffer.from(`h:${createHmac('sha256', key).update(value).digest('hex').slice(0, 16)}`);
}

export class MaskKeyMissingError extends Error {
  constructor() {
    super('the hash masking strategy needs the gateway masking key');
    this.name = 'MaskKeyMissingError';
  }
}

export function applyStrategy(strategy: MaskStrategy, value: Uint8Array, hashKey: Buffer | undefined): Buffer {
  switch (strategy) {
    case 'redact':
      return REDACTED_BYTES;
    case 'partial':
      return partialBytes(value);
    case 'hash':
      if (hashKey === undefined) throw new MaskKeyMissingError();
      return hashBytes(value, hashKey);
  }
}

/** Per detector, the strategy to apply to what it finds. */
export type DetectPlan = ReadonlyMap<DetectorName, MaskStrategy>;

export interface ValueMask {
  /** Mask the whole value with this strategy (a masked column). */
  readonly whole?: MaskStrategy;
  /** Otherwise, mask what these detectors find. */
  readonly detect?: DetectPlan;
  readonly hashKey?: Buffer;
}

/** Counters for the audit trail: how many values were masked and what the detectors found. */
export interface MaskStats {
  valuesMasked: number;
  detectorHits: Partial<Record<DetectorName, number>>;
}

export function newMaskStats(): MaskStats {
  return { valuesMasked: 0, detectorHits: {} };
}

/**
 * The detector spans of `bytes[start, end)`, as byte offsets relative to `start`. The value is
 * read as latin1 (one character per byte): detectors match ASCII, so offsets are byte offsets.
 */
export function findByteSpans(bytes: Buffer, start: number, end: number, detectors: Iterable<DetectorName>): readonly Span[] {
  const possible = screenBytes(bytes, start, end, detectors);
  if (possible.length === 0) return NO_SPANS;
  const spans = findSpans(bytes.toString('latin1', start, end), possible);
  // Belt and braces: widen any span that would cut a UTF-8 sequence to the whole character.
  return spans.map((sp) => {
    let a = sp.start;
    let b = sp.end;
    while (a > 0 && isContinuation(bytes[start + a] as number)) a--;
    while (start + b < end && isContinuation(bytes[start + b] as number)) b++;
    return a === sp.start && b === sp.end ? sp : { start: a, end: b, detector: sp.detector };
  });
}

/**
 * Masks `bytes[start, end)`; returns the new bytes, or undefined when nothing is masked (the
 * caller then keeps the original bytes, untouched).
 */
export function maskValueBytes(bytes: Buffer, start: number, end: number, mask: ValueMask, stats?: MaskStats): Buffer | undefined {
  if (mask.whole !== undefined) {
    if (stats !== undefined) stats.valuesMasked++;
    return applyStrategy(mask.whole, bytes.subarray(start, end), mask.hashKey);
  }
  if (mask.detect === undefined || mask.detect.size === 0 || end === start) return undefined;
  const spans = findByteSpans(bytes, start, end, mask.detect.keys());
  if (spans.length === 0) return undefined;
  return replaceSpans(bytes, start, end, spans, mask, stats);
}

export function replaceSpans(bytes: Buffer, start: number, end: number, spans: readonly Span[], mask: ValueMask, stats?: MaskStats): Buffer {
  const parts: Buffer[] = [];
  let at = start;
  for (const sp of spans) {
    parts.push(bytes.subarray(at, start + sp.start));
    const strategy = mask.detect?.get(sp.detector) ?? 'redact';
    parts.push(applyStrategy(strategy, bytes.subarray(start + sp.start, start + sp.end), mask.hashKey));
    at = start + sp.end;
    if (stats !== undefined) stats.detectorHits[sp.detector] = (stats.detectorHits[sp.detector] ?? 0) + 1;
  }
  parts.push(bytes.subarray(at, end));
  if (stats !== undefined) stats.valuesMasked++;
  return Buffer.concat(parts);
}

/** Masks a string (for JSON bodies, audit text, tests); returns it unchanged when nothing matches. */
export function maskValue(text: string, mask: ValueMask): string {
  const bytes = Buffer.from(text, 'utf8');
  const out = maskValueBytes(bytes, 0, bytes.length, mask);
  return out === undefined ? text : out.toString('utf8');
}
