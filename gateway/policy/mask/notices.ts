// What PostgreSQL's errors and notices quote from the data, masked like the data. A NOT NULL or
// CHECK violation's DETAIL is "Failing row contains (…)" — the whole row, masked columns included,
// reachable by anyone who may UPDATE; a unique violation's is "Key (email)=(ann@example.com)
// already exists."; RAISE NOTICE/EXCEPTION in a function can say anything. For someone a mask
// rule applies to:
// - a failing row is withheld when a column rule could cover the table it names (or no table is
//   named);
// - a key's values are withheld when one of its columns matches a column rule;
// - every text field then goes through the value detectors the rules ask for.
// Pure: field values in, field values out (gateway/engines/postgres applies it to the frames).
import { columnMatches, globMatches } from '../names.js';
import type { MaskPolicy } from './plan.js';
import { maskValue, type ValueMask } from './strategies.js';

/** An ErrorResponse or NoticeResponse field: its one-byte code (e.g. 0x44 'D') and its text. */
export interface NoticeField {
  readonly code: number;
  readonly value: string;
}

/** What replaces quoted values the masking would hide. */
export const WITHHELD = 'withheld: masked data';

const F = (c: string) => c.charCodeAt(0);
const DETAIL = F('D');
const SCHEMA = F('s');
const TABLE = F('t');
/** Fields that carry free text (message, detail, hint, context, internal query). */
const TEXT_FIELDS = new Set([F('M'), F('D'), F('H'), F('W'), F('q')]);

const FAILING_ROW = /^(Failing row contains )\((.*)\)(\.?)$/s;
const KEY = /^(Key \()(.+?)(\)=\()(.*)(\).*)$/s;

/** The fields with what the mask hides replaced; undefined when nothing changed. */
export function maskNoticeFields(fields: readonly NoticeField[], mask: MaskPolicy): NoticeField[] | undefined {
  const schema = fields.find((f) => f.code === SCHEMA)?.value || undefined;
  const table = fields.find((f) => f.code === TABLE)?.value || undefined;
  const valueMask: ValueMask | undefined = mask.detect !== undefined && mask.detect.size > 0 ? { detect: mask.detect, ...(mask.hashKey ? { hashKey: mask.hashKey } : {}) } : undefined;
  let changed = false;
  const out = fields.map((f) => {
    let value = f.value;
    if (f.code === DETAIL) value = withholdQuoted(value, mask, schema, table);
    if (valueMask !== undefined && TEXT_FIELDS.has(f.code)) value = maskValue(value, valueMask);
    if (value === f.value) return f;
    changed = true;
    return { code: f.code, value };
  });
  return changed ? out : undefined;
}

function withholdQuoted(detail: string, mask: MaskPolicy, schema: string | undefined, table: string | undefined): string {
  if (mask.columns.length === 0) return detail;
  const row = FAILING_ROW.exec(detail);
  if (row) return tableCovered(mask, schema, table) ? `${row[1]}(${WITHHELD})${row[3]}` : detail;
  const key = KEY.exec(detail);
  if (key) {
    // Column names as PostgreSQL prints them: "a, b"; an expression index prints its expression
    // (lower(email)), which is covered when the table is.
    const columns = (key[2] as string).split(', ').map((c) => c.replace(/^"(.*)"$/, '$1'));
    const covered = columns.some((column) =>
      /^[\p{L}_][\p{L}\p{N}_$]*$/u.test(column)
        ? mask.columns.some((c) => (table === undefined ? globMatches(c.pattern.column, column) : columnMatches(c.pattern, { ...(schema ? { schema } : {}), table, column })))
        : tableCovered(mask, schema, table),
    );
    return covered ? `${key[1]}${key[2]}${key[3]}${WITHHELD}${key[5]}` : detail;
  }
  return detail;
}

/** Whether a column rule could cover some column of the table (any table, when none is named). */
function tableCovered(mask: MaskPolicy, schema: string | undefined, table: string | undefined): boolean {
  if (table === undefined) return mask.columns.length > 0;
  return mask.columns.some((c) => globMatches(c.pattern.table, table) && (c.pattern.schema === undefined || schema === undefined || globMatches(c.pattern.schema, schema)));
}
