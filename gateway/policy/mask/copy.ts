// Masking of `COPY … TO STDOUT` rows. PostgreSQL sends one row per CopyData message, in text
// format (delimiter-separated, backslash escapes, `\N` for NULL) or CSV (quotes, doubled quotes
// or an ESCAPE character, unquoted empty = NULL by default). A field is decoded, masked and
// written back in the same format; a field that is not masked keeps its exact bytes, and a row
// with nothing masked is returned as the same Buffer. Binary COPY cannot be masked: planCopyMask
// (plan.ts) refuses it.
import { maskValueBytes, type DetectPlan, type MaskStats, type MaskStrategy, type ValueMask } from './strategies.js';

export interface CopyMaskOptions {
  readonly format: 'text' | 'csv';
  /** Default: tab (text), comma (CSV). */
  readonly delimiter?: string;
  /** Default: `\N` (text), empty (CSV). */
  readonly null?: string;
  /** CSV only. Default `"`. */
  readonly quote?: string;
  /** CSV only. Default: the quote character. */
  readonly escape?: string;
  /** Column index → strategy for masked columns. */
  readonly columns: ReadonlyMap<number, MaskStrategy>;
  readonly detect?: DetectPlan;
  readonly hashKey?: Buffer;
}

export class CopyMaskError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CopyMaskError';
  }
}

const byteOf = (s: string | undefined, fallback: number): number => {
  if (s === undefined) return fallback;
  const b = Buffer.from(s, 'utf8');
  if (b.length !== 1) throw new CopyMaskError(`COPY option must be a single one-byte character, found ${JSON.stringify(s)}`);
  return b[0] as number;
};

const NL = 0x0a;
const CR = 0x0d;
const BACKSLASH = 0x5c;

/** A field: raw bytes [start, end) of the line, and (CSV) whether it was quoted. */
interface Field {
  start: number;
  end: number;
  quoted: boolean;
}

const TEXT_UNESCAPE: Record<number, number> = { 0x62: 8, 0x66: 12, 0x6e: 10, 0x72: 13, 0x74: 9, 0x76: 11 };

function unescapeText(line: Buffer, f: Field): Buffer {
  if (line.indexOf(BACKSLASH, f.start) === -1 || line.indexOf(BACKSLASH, f.start) >= f.end) return line.subarray(f.start, f.end);
  const out: number[] = [];
  for (let i = f.start; i < f.end; i++) {
    const c = line[i] as number;
    if (c !== BACKSLASH || i + 1 >= f.end) {
      out.push(c);
      continue;
    }
    const n = line[++i] as number;
    if (n >= 0x30 && n <= 0x37) {
      let v = n - 0x30;
      for (let k = 0; k < 2 && i + 1 < f.end && (line[i + 1] as number) >= 0x30 && (line[i + 1] as number) <= 0x37; k++) v = v * 8 + ((line[++i] as number) - 0x30);
      out.push(v & 0xff);
    } else if (n === 0x78 && i + 1 < f.end && /[0-9a-fA-F]/.test(String.fromCharCode(line[i + 1] as number))) {
      let hex = String.fromCharCode(line[++i] as number);
      if (i + 1 < f.end && /[0-9a-fA-F]/.test(String.fromCharCode(line[i + 1] as number))) hex += String.fromCharCode(line[++i] as number);
      out.push(parseInt(hex, 16));
    } else out.push(TEXT_UNESCAPE[n] ?? n);
  }
  return Buffer.from(out);
}

function escapeText(value: Buffer, delimiter: number): Buffer {
  const out: number[] = [];
  for (const c of value) {
    if (c === BACKSLASH) out.push(BACKSLASH, BACKSLASH);
    else if (c === NL) out.push(BACKSLASH, 0x6e);
    else if (c === CR) out.push(BACKSLASH, 0x72);
    else if (c === 9) out.push(BACKSLASH, 0x74);
    else if (c === 8) out.push(BACKSLASH, 0x62);
    else if (c === 12) out.push(BACKSLASH, 0x66);
    else if (c === 11) out.push(BACKSLASH, 0x76);
    else if (c === delimiter) out.push(BACKSLASH, c);
    else out.push(c);
  }
  return Buffer.from(out);
}

function splitText(line: Buffer, end: number, delimiter: number): Field[] {
  const fields: Field[] = [];
  let start = 0;
  for (let i = 0; i < end; i++) {
    const c = line[i] as number;
    if (c === BACKSLASH) i++;
    else if (c === delimiter) {
      fields.push({ start, end: i, quoted: false });
      start = i + 1;
    }
  }
  fields.push({ start, end, quoted: false });
  return fields;
}

function splitCsv(line: Buffer, end: number, delimiter: number, quote: number, escape: number): Field[] {
  const fields: Field[] = [];
  let i = 0;
  for (;;) {
    const start = i;
    let quoted = false;
    while (i < end) {
      const c = line[i] as number;
      if (quoted) {
        if (c === escape && escape !== quote && i + 1 < end && (line[i + 1] === quote || line[i + 1] === escape)) i += 2;
        else if (c === quote && escape === quote && line[i + 1] === quote && i + 1 < end) i += 2;
        else if (c === quote) {
          quoted = false;
          i++;
        } else i++;
      } else if (c === quote) {
        quoted = true;
        i++;
      } else if (c === delimiter) break;
      else i++;
    }
    if (quoted) throw new CopyMaskError('unterminated quoted CSV field in COPY row');
    fields.push({ start, end: i, quoted: line[start] === quote && i > start });
    if (i >= end) return fields;
    i++; // the delimiter
  }
}

/**
 * The value of a CSV field. COPY TO quotes whole fields only, so a quoted field is `"…"` with the
 * ESCAPE character (by default the quote itself, i.e. `""`) before each quote or escape inside.
 */
function unquoteCsv(line: Buffer, f: Field, quote: number, escape: number): Buffer {
  if (!f.quoted) return line.subarray(f.start, f.end);
  const out: number[] = [];
  const last = f.end - 1; // the closing quote
  for (let i = f.start + 1; i < last; i++) {
    const c = line[i] as number;
    if (c === escape && i + 1 < last && (line[i + 1] === quote || line[i + 1] === escape)) out.push(line[++i] as number);
    else out.push(c);
  }
  return Buffer.from(out);
}

function quoteCsv(value: Buffer, quote: number, escape: number): Buffer {
  const out: number[] = [quote];
  for (const c of value) {
    if (c === quote || c === escape) out.push(escape);
    out.push(c);
  }
  out.push(quote);
  return Buffer.from(out);
}

/**
 * Masks one COPY row (one CopyData payload, with its line end). Returns the same Buffer when
 * nothing is masked. `stats` (optional) counts masked values and detector hits.
 */
export function maskCopyLine(line: Buffer, opts: CopyMaskOptions, stats?: MaskStats): Buffer {
  const csv = opts.format === 'csv';
  const delimiter = byteOf(opts.delimiter, csv ? 0x2c : 0x09);
  const quote = byteOf(opts.quote, 0x22);
  const escape = byteOf(opts.escape, quote);
  const nullBytes = Buffer.from(opts.null ?? (csv ? '' : '\\N'), 'utf8');
  let end = line.length;
  if (end > 0 && line[end - 1] === NL) end--;
  if (end > 0 && line[end - 1] === CR) end--;
  const fields = csv ? splitCsv(line, end, delimiter, quote, escape) : splitText(line, end, delimiter);
  const base: ValueMask = opts.hashKey === undefined ? {} : { hashKey: opts.hashKey };
  let changed: { field: Field; bytes: Buffer }[] | undefined;
  fields.forEach((f, i) => {
    const raw = line.subarray(f.start, f.end);
    if (!f.quoted && raw.equals(nullBytes)) return; // NULL stays NULL
    const strategy = opts.columns.get(i);
    if (strategy === undefined && opts.detect === undefined) return;
    const value = csv ? unquoteCsv(line, f, quote, escape) : unescapeText(line, f);
    const mask: ValueMask = strategy !== undefined ? { ...base, whole: strategy } : opts.detect !== undefined ? { ...base, detect: opts.detect } : base;
    const masked = maskValueBytes(value, 0, value.length, mask, stats);
    if (masked === undefined) return;
    (changed ??= []).push({ field: f, bytes: csv ? quoteCsv(masked, quote, escape) : escapeText(masked, delimiter) });
  });
  if (changed === undefined) return line;
  const parts: Buffer[] = [];
  let at = 0;
  for (const c of changed) {
    parts.push(line.subarray(at, c.field.start), c.bytes);
    at = c.field.end;
  }
  parts.push(line.subarray(at));
  return Buffer.concat(parts);
}

/** A stateful COPY masker for one COPY OUT: skips the header row when the COPY has HEADER. */
export function createCopyMasker(opts: CopyMaskOptions & { readonly header?: boolean }, stats?: MaskStats): (line: Buffer) => Buffer {
  let headerPending = opts.header === true;
  return (line) => {
    if (headerPending) {
      headerPending = false;
      return line;
    }
    return maskCopyLine(line, opts, stats);
  };
}
