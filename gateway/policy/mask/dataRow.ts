// Masking of PostgreSQL result rows, as pure functions on wire frames: RowDescription is decoded
// into column descriptions, and a row masker rewrites each DataRow ('D', Int32 length, Int16
// count, then per value Int32 length (-1 = NULL) and bytes) with lengths recomputed. A row with
// nothing to mask is returned as the same Buffer object, so the common case costs no copy.
//
// Text-format values are masked in place. Binary-format values can only carry a marker where the
// binary form is itself text (text, varchar, bpchar, name, json, jsonb, xml); any other binary
// value of a masked column becomes NULL — a zero-length or marker value would be a malformed
// int4/timestamp/numeric that drivers reject or misread, while NULL is valid for every type.
import { findByteSpans, applyStrategy, isContinuation, newMaskStats, partialKeep, REDACTED_BYTES, replaceSpans, type DetectPlan, type MaskStats, type MaskStrategy, type ValueMask } from './strategies.js';
import type { Span } from './detectors.js';

/** One result column, from RowDescription (and the Bind result formats for the extended protocol). */
export interface RowColumn {
  readonly name: string;
  /** OID of the table the column comes from, 0 for an expression. */
  readonly tableOid: number;
  /** Attribute number within that table, 0 for an expression. */
  readonly attnum: number;
  readonly typeOid: number;
  readonly typeSize: number;
  readonly typeMod: number;
  /** 0 text, 1 binary. */
  readonly formatCode: number;
}

export class RowMaskError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RowMaskError';
  }
}

/** Decodes a complete RowDescription frame ('T' + Int32 length + body). */
export function decodeRowDescription(frame: Buffer): RowColumn[] {
  if (frame.length < 7 || frame[0] !== 0x54) throw new RowMaskError('not a RowDescription message');
  if (frame.readInt32BE(1) !== frame.length - 1) throw new RowMaskError('RowDescription length does not match the frame');
  const count = frame.readUInt16BE(5);
  const cols: RowColumn[] = [];
  let p = 7;
  for (let i = 0; i < count; i++) {
    const nul = frame.indexOf(0, p);
    if (nul === -1 || nul + 19 > frame.length) throw new RowMaskError('truncated RowDescription');
    const name = frame.toString('utf8', p, nul);
    p = nul + 1;
    cols.push({
      name,
      tableOid: frame.readUInt32BE(p),
      attnum: frame.readInt16BE(p + 4),
      typeOid: frame.readUInt32BE(p + 6),
      typeSize: frame.readInt16BE(p + 10),
      typeMod: frame.readInt32BE(p + 12),
      formatCode: frame.readInt16BE(p + 16),
    });
    p += 18;
  }
  if (p !== frame.length) throw new RowMaskError('trailing bytes in RowDescription');
  return cols;
}

/**
 * Applies Bind's result-column format codes: none → all text, one → all columns, else one per
 * column. RowDescription from Describe (statement) always says text, so the engine must take the
 * formats from Bind, or the masker would treat binary values as text.
 */
export function applyResultFormats(columns: readonly RowColumn[], formats: readonly number[]): RowColumn[] {
  return columns.map((c, i) => ({ ...c, formatCode: formats.length === 0 ? 0 : formats.length === 1 ? (formats[0] as number) : (formats[i] ?? 0) }));
}

// Type OIDs (pg_type.dat): types whose binary form is the text itself, and types that cannot
// hold anything a detector looks for.
const TEXT_BINARY_TYPES = new Set([25, 1043, 1042, 19, 705, 142, 114]);
const JSON_TYPE = 114;
const JSONB_TYPE = 3802;
const NO_DETECT_TYPES = new Set([16, 18, 21, 23, 26, 28, 650, 700, 701, 774, 829, 869, 1082, 1083, 1114, 1184, 1186, 1266, 1560, 1562, 2950, 3220, 5069]);

export interface RowMaskPlan {
  readonly columns: readonly RowColumn[];
  /** Column index → strategy for columns masked whole (by source column). */
  readonly maskedColumns: ReadonlyMap<number, MaskStrategy>;
  /** Detectors applied to every other value that can hold text. */
  readonly detect?: DetectPlan;
  readonly hashKey?: Buffer;
}

export interface RowMaskStats extends MaskStats {
  rows: number;
  rowsChanged: number;
  /** Binary values of masked columns replaced by NULL. */
  valuesNulled: number;
}

export interface RowMasker {
  /** Masks one complete DataRow frame; returns the same Buffer when nothing changed. */
  maskDataRow(frame: Buffer): Buffer;
  /** The same for the frame `buf[start, end)`, without a view of it: undefined when nothing changed. */
  maskDataRowAt(buf: Buffer, start: number, end: number): Buffer | undefined;
  /** What it was built from: `plan.maskedColumns` and `plan.columns[i].name` name the masked columns for the audit trail. */
  readonly plan: RowMaskPlan;
  /** Running totals since creation (or the last `resetStats`), for the audit trail. */
  readonly stats: RowMaskStats;
  resetStats(): void;
}

/** What to do with one value: undefined = keep, null = NULL, Buffer = new bytes. */
type Replacement = Buffer | null | undefined;

// How a column's values are handled: left alone, given to the detectors, or masked whole (NULL
// for binary values that cannot carry a marker; redact and partial written straight into the
// row; hash and JSON through applyStrategy).
/** Bytes of one slab of rewritten rows: a socket read's worth. */
const SLAB_SIZE = 64 * 1024;

const KEEP = 0;
const DETECT = 1;
const NULLED = 2;
const REDACT = 3;
const PARTIAL = 4;
const OTHER = 5;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

const jsonString = (b: Buffer) => Buffer.from(JSON.stringify(b.toString('utf8')));

/**
 * Makes detector replacements safe inside JSON text: a span inside a string is replaced in
 * place, a span outside strings (a number) becomes a JSON string; a span that crosses a string
 * boundary cannot be replaced safely and returns undefined (the caller masks the whole value).
 */
function jsonSpanQuoting(bytes: Buffer, start: number, spans: readonly Span[]): boolean[] | undefined {
  const outside: boolean[] = [];
  let inString = false;
  let toggles = 0;
  let i = start;
  const advanceTo = (limit: number): void => {
    while (i < limit) {
      const c = bytes[i] as number;
      if (inString && c === BACKSLASH) i += 2;
      else {
        if (c === QUOTE) {
          inString = !inString;
          toggles++;
        }
        i++;
      }
    }
  };
  for (const sp of spans) {
    advanceTo(start + sp.start);
    if (i !== start + sp.start) return undefined; // the span starts inside an escape sequence
    const state = inString;
    const before = toggles;
    advanceTo(start + sp.end);
    if (i !== start + sp.end || toggles !== before) return undefined;
    outside.push(!state);
  }
  return outside;
}

/**
 * Copies `src[from, to)` to `dst` at `at` and returns where it ended. The pieces of a row are
 * mostly a few bytes long, where a plain loop costs less than Buffer#copy's checks and call.
 */
function copyBytes(src: Buffer, from: number, to: number, dst: Buffer, at: number): number {
  if (to - from > 64) return at + src.copy(dst, at, from, to);
  for (let i = from; i < to; i++) dst[at++] = src[i] as number;
  return at;
}

// Rewritten rows are cut one after another from a slab that is never written twice, so the rows
// of one chunk lie back to back and the relay sends them as one view (backendRelay.ts). One slab
// for the process, not one per masker: a session caches up to 256 maskers.
let slab = Buffer.allocUnsafeSlow(0);
let slabAt = 0;

function alloc(size: number): Buffer {
  if (size > SLAB_SIZE / 8) return Buffer.allocUnsafe(size);
  if (slabAt + size > slab.length) {
    slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
    slabAt = 0;
  }
  slabAt += size;
  return slab.subarray(slabAt - size, slabAt);
}

// Int32 fields read and written inline: Buffer's methods check their arguments on every call,
// and the masker has already checked the bounds.
const int32At = (b: Buffer, p: number): number => ((b[p] as number) << 24) | ((b[p + 1] as number) << 16) | ((b[p + 2] as number) << 8) | (b[p + 3] as number);

function putInt32(b: Buffer, at: number, v: number): number {
  b[at] = v >>> 24;
  b[at + 1] = v >>> 16;
  b[at + 2] = v >>> 8;
  b[at + 3] = v;
  return at + 4;
}

/** Builds a masker for one result set (one RowDescription). */
export function createRowMasker(plan: RowMaskPlan): RowMasker {
  const n = plan.columns.length;
  const whole: (MaskStrategy | undefined)[] = plan.columns.map((_, i) => plan.maskedColumns.get(i));
  const detect = plan.detect !== undefined && plan.detect.size > 0 ? plan.detect : undefined;
  const detectors = detect === undefined ? [] : [...detect.keys()];
  const valueMask: ValueMask = plan.hashKey === undefined ? (detect === undefined ? {} : { detect }) : detect === undefined ? { hashKey: plan.hashKey } : { detect, hashKey: plan.hashKey };
  const stats: RowMaskStats = { ...newMaskStats(), rows: 0, rowsChanged: 0, valuesNulled: 0 };

  const wholeValue = (i: number, col: RowColumn, frame: Buffer, s: number, e: number): Replacement => {
    const strategy = whole[i] as MaskStrategy;
    const binary = col.formatCode === 1;
    if (binary && !TEXT_BINARY_TYPES.has(col.typeOid) && col.typeOid !== JSONB_TYPE) {
      stats.valuesNulled++;
      return null;
    }
    // jsonb's binary form is a version byte (1) and the JSON text.
    const textStart = binary && col.typeOid === JSONB_TYPE ? s + 1 : s;
    const replaced = applyStrategy(strategy, frame.subarray(textStart, e), plan.hashKey);
    stats.valuesMasked++;
    if (col.typeOid === JSON_TYPE || col.typeOid === JSONB_TYPE) {
      const json = jsonString(replaced);
      return binary && col.typeOid === JSONB_TYPE ? Buffer.concat([Buffer.of(1), json]) : json;
    }
    return replaced;
  };

  const detectValue = (col: RowColumn, frame: Buffer, s: number, e: number): Replacement => {
    if (detect === undefined || NO_DETECT_TYPES.has(col.typeOid)) return undefined;
    const binary = col.formatCode === 1;
    if (binary && !TEXT_BINARY_TYPES.has(col.typeOid) && col.typeOid !== JSONB_TYPE) return undefined;
    const isJson = col.typeOid === JSON_TYPE || col.typeOid === JSONB_TYPE;
    const textStart = binary && col.typeOid === JSONB_TYPE ? s + 1 : s;
    const spans = findByteSpans(frame, textStart, e, detectors);
    if (spans.length === 0) return undefined;
    if (!isJson) return replaceSpans(frame, textStart, e, spans, valueMask, stats);
    const outside = jsonSpanQuoting(frame, textStart, spans);
    let out: Buffer;
    if (outside === undefined) {
      for (const sp of spans) stats.detectorHits[sp.detector] = (stats.detectorHits[sp.detector] ?? 0) + 1;
      stats.valuesMasked++;
      out = jsonString(applyStrategy('redact', frame.subarray(textStart, e), plan.hashKey));
    } else {
      const parts: Buffer[] = [];
      let at = textStart;
      spans.forEach((sp, k) => {
        parts.push(frame.subarray(at, textStart + sp.start));
        const r = replaceSpans(frame, textStart + sp.start, textStart + sp.end, [{ start: 0, end: sp.end - sp.start, detector: sp.detector }], valueMask, stats);
        parts.push(outside[k] === true ? jsonString(r) : r);
        at = textStart + sp.end;
      });
      parts.push(frame.subarray(at, e));
      stats.valuesMasked -= spans.length - 1; // replaceSpans counted each span as a value
      out = Buffer.concat(parts);
    }
    return binary && col.typeOid === JSONB_TYPE ? Buffer.concat([Buffer.of(1), out]) : out;
  };

  // What each column needs, decided once per result rather than per value.
  const kinds = new Uint8Array(n);
  plan.columns.forEach((col, i) => {
    const strategy = whole[i];
    const binary = col.formatCode === 1;
    const textLike = (!binary || TEXT_BINARY_TYPES.has(col.typeOid)) && col.typeOid !== JSON_TYPE && col.typeOid !== JSONB_TYPE;
    if (strategy === undefined) kinds[i] = detect === undefined || NO_DETECT_TYPES.has(col.typeOid) || (binary && !TEXT_BINARY_TYPES.has(col.typeOid) && col.typeOid !== JSONB_TYPE) ? KEEP : DETECT;
    else if (binary && !TEXT_BINARY_TYPES.has(col.typeOid) && col.typeOid !== JSONB_TYPE) kinds[i] = NULLED;
    // What applyStrategy returns for these, written straight into the new row.
    else if (textLike && strategy === 'redact') kinds[i] = REDACT;
    else if (textLike && strategy === 'partial') kinds[i] = PARTIAL;
    else kinds[i] = OTHER;
  });
  // Per changed value of the current row: its column, where its old bytes are, and what replaces
  // them. Reused from row to row, so a row costs no allocation but its output.
  const chKind = new Int32Array(n);
  const chFrom = new Int32Array(n);
  const chTo = new Int32Array(n);
  /** New value length (-1: NULL); for PARTIAL, the number of `*`. */
  const chLen = new Int32Array(n);
  /** PARTIAL: where the kept tail starts. */
  const chTail = new Int32Array(n);
  const chValue: (Buffer | null)[] = new Array<Buffer | null>(n).fill(null);

  const maskDataRowAt = (buf: Buffer, start: number, end: number): Buffer | undefined => {
    if (end - start < 7 || buf[start] !== 0x44) throw new RowMaskError('not a DataRow message');
    if (buf.readInt32BE(start + 1) !== end - start - 1) throw new RowMaskError('DataRow length does not match the frame');
    const count = buf.readUInt16BE(start + 5);
    if (count !== n) throw new RowMaskError(`DataRow has ${count} values but RowDescription described ${n} columns`);
    stats.rows++;
    let changes = 0;
    let size = end - start;
    let p = start + 7;
    for (let i = 0; i < n; i++) {
      if (p + 4 > end) throw new RowMaskError('truncated DataRow');
      const len = int32At(buf, p);
      p += 4;
      if (len === -1) continue; // NULL stays NULL
      if (len < 0 || p + len > end) throw new RowMaskError('invalid value length in DataRow');
      const kind = kinds[i] as number;
      if (kind !== KEEP) {
        const e = p + len;
        let newLen: number;
        let value: Buffer | null = null;
        if (kind === PARTIAL) {
          let chars = 0;
          for (let k = p; k < e; k++) if (((buf[k] as number) & 0xc0) !== 0x80) chars++;
          const keep = partialKeep(chars);
          let tail = e;
          for (let seen = 0; seen < keep && tail > p; ) {
            tail--;
            if (!isContinuation(buf[tail] as number)) seen++;
          }
          chTail[changes] = tail;
          chLen[changes] = chars - keep;
          newLen = chars - keep + (e - tail);
          stats.valuesMasked++;
        } else if (kind === REDACT) {
          value = REDACTED_BYTES;
          newLen = value.length;
          stats.valuesMasked++;
        } else if (kind === NULLED) {
          newLen = -1;
          stats.valuesNulled++;
        } else {
          const col = plan.columns[i] as RowColumn;
          const r = kind === DETECT ? detectValue(col, buf, p, e) : wholeValue(i, col, buf, p, e);
          if (r === undefined) {
            p = e;
            continue;
          }
          value = r;
          newLen = r === null ? -1 : r.length;
        }
        if (kind !== PARTIAL) chLen[changes] = newLen;
        chKind[changes] = kind;
        chFrom[changes] = p - 4;
        chTo[changes] = e;
        chValue[changes] = value;
        changes++;
        size += (newLen < 0 ? 0 : newLen) - len;
      }
      p += len;
    }
    if (p !== end) throw new RowMaskError('trailing bytes in DataRow');
    if (changes === 0) return undefined;
    stats.rowsChanged++;
    const out = alloc(size);
    let w = 0;
    let r = start;
    for (let c = 0; c < changes; c++) {
      w = copyBytes(buf, r, chFrom[c] as number, out, w);
      if (chKind[c] === PARTIAL) {
        const stars = chLen[c] as number;
        const tail = chTail[c] as number;
        const to = chTo[c] as number;
        w = putInt32(out, w, stars + (to - tail));
        for (const stop = w + stars; w < stop; ) out[w++] = 0x2a;
        w = copyBytes(buf, tail, to, out, w);
      } else {
        const v = chValue[c];
        if (v === null || v === undefined) w = putInt32(out, w, -1);
        else w = copyBytes(v, 0, v.length, out, putInt32(out, w, v.length));
        chValue[c] = null;
      }
      r = chTo[c] as number;
    }
    copyBytes(buf, r, end, out, w);
    out.writeInt32BE(size - 1, 1);
    return out;
  };

  const maskDataRow = (frame: Buffer): Buffer => maskDataRowAt(frame, 0, frame.length) ?? frame;

  return {
    maskDataRow,
    maskDataRowAt,
    plan,
    stats,
    // Runs once per result of a cached plan: plain stores keep the object's shape (Object.assign
    // of a spread copy cost about 10 µs a call in a profile of pgbench -S under a policy).
    resetStats() {
      stats.valuesMasked = 0;
      stats.detectorHits = {};
      stats.rows = 0;
      stats.rowsChanged = 0;
      stats.valuesNulled = 0;
    },
  };
}
