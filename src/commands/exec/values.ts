// How one result value is spelled in `--format csv` and `--format json`. PostgreSQL sends every
// value as text; JSON output types it by the column's type so `jq '.row.id + 1'` works, while the
// types whose text a JSON number cannot hold exactly (int8, numeric) stay strings.
import type { ExecColumn } from '../../api/contract.js';

/** PostgreSQL type OIDs (pg_type.oid; fixed for built-in types) that JSON output types. */
export const TypeOid = {
  bool: 16,
  int8: 20,
  int2: 21,
  int4: 23,
  oid: 26,
  json: 114,
  float4: 700,
  float8: 701,
  numeric: 1700,
  jsonb: 3802,
} as const;

/** One CSV field (RFC 4180): quoted when it holds `,` `"` CR or LF; NULL empty and unquoted; the empty string `""`. */
export function csvField(value: string | null): string {
  if (value === null) return '';
  if (value === '') return '""';
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/** A function turning a column's text into JSON text. */
export type JsonValue = (text: string | null) => string;

const asString: JsonValue = (t) => (t === null ? 'null' : JSON.stringify(t));

/** int2/int4/oid/float4/float8 as numbers; NaN and ±Infinity, which JSON cannot spell, as strings. */
const asNumber: JsonValue = (t) => {
  if (t === null) return 'null';
  const n = Number(t);
  return Number.isFinite(n) ? String(n) : JSON.stringify(t);
};

const asBool: JsonValue = (t) => (t === null ? 'null' : t === 't' || t === 'true' ? 'true' : t === 'f' || t === 'false' ? 'false' : JSON.stringify(t));

/** json/jsonb parsed, re-serialised compactly (one row stays one line); text that does not parse stays a string. */
const asJson: JsonValue = (t) => {
  if (t === null) return 'null';
  try {
    return JSON.stringify(JSON.parse(t));
  } catch {
    return JSON.stringify(t);
  }
};

export function jsonValueFor(column: ExecColumn): JsonValue {
  switch (column.typeOid) {
    case TypeOid.bool:
      return asBool;
    case TypeOid.int2:
    case TypeOid.int4:
    case TypeOid.oid:
    case TypeOid.float4:
    case TypeOid.float8:
      return asNumber;
    case TypeOid.json:
    case TypeOid.jsonb:
      return asJson;
    default:
      // int8 and numeric included: their values can exceed what a JSON number keeps exactly.
      return asString;
  }
}

/**
 * Keys for a row object: the column names, with a repeated name suffixed `_2`, `_3`, … (skipping
 * any suffix another column already uses), so `select 1 as a, 2 as a` keeps both values.
 */
export function uniqueKeys(names: readonly string[]): string[] {
  const taken = new Set(names);
  const used = new Set<string>();
  return names.map((name) => {
    if (!used.has(name)) {
      used.add(name);
      return name;
    }
    let n = 2;
    while (used.has(`${name}_${n}`) || taken.has(`${name}_${n}`)) n++;
    const key = `${name}_${n}`;
    used.add(key);
    return key;
  });
}
