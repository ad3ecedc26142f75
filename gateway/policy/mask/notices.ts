// What PostgreSQL's errors and notices quote from the data, masked like the data. A NOT NULL or
// CHECK violation's DETAIL is "Failing row contains (…)" — the whole row, masked columns included,
// reachable by anyone who may UPDATE; a unique violation's is "Key (email)=(ann@example.com)
// already exists."; RAISE NOTICE/EXCEPTION in a function can say anything. For someone a column
// rule applies to, the DETAIL of an integrity constraint violation (SQLSTATE class 23) is:
// - for "Key (columns)=(values)…", the values withheld when a column's name matches a column
//   rule's (by name only: the table in the error may be a partition or child of the masked one)
//   or is an expression;
// - for "Failing row contains (…)", the row withheld (which columns it holds is not said, and the
//   table may be a partition);
// - in any other wording (another lc_messages), withheld whole.
// A data exception (SQLSTATE class 22: `invalid input syntax for type integer: "ann@e"`, `value
// "4111…" is out of range`, XML and JSON errors that print the input with its position) quotes the
// value that failed to convert, which may be computed from a masked column (`substr(email, 1, 5)
// ::int`): for someone a column rule applies to, the quoted part of the message and the whole
// DETAIL and CONTEXT are withheld.
// A notice or error raised while running code (a trigger, a check or default an administrator
// attached, a function: PostgreSQL then sends a CONTEXT naming it) says whatever that code
// computed: `RAISE NOTICE 'welcome %', (select name from customers …)` in an AFTER INSERT
// trigger. The gateway cannot see what went into it, so for someone a column rule applies to its
// message, detail, hint, context and internal query are withheld whole; the SQLSTATE and the
// names of the constraint, table and column stay.
// Then every text field goes through the value detectors the rules ask for.
// Pure: field values in, field values out (gateway/engines/postgres applies it to the frames).
import { globMatches } from '../names.js';
import type { MaskPolicy } from './plan.js';
import { maskValue, type ValueMask } from './strategies.js';

/** An ErrorResponse or NoticeResponse field: its one-byte code (e.g. 0x44 'D') and its text. */
export interface NoticeField {
  readonly code: number;
  readonly value: string;
}

/** What replaces quoted values the masking would hide. */
export const WITHHELD = 'withheld: masked data';
/** What replaces the text of a notice or error raised while running code. */
export const WITHHELD_RAISED = 'withheld: raised while running code the gateway cannot see into (masked data)';

const F = (c: string) => c.charCodeAt(0);
const DETAIL = F('D');
const SQLSTATE = F('C');
/** Fields that carry free text (message, detail, hint, context, internal query). */
const TEXT_FIELDS = new Set([F('M'), F('D'), F('H'), F('W'), F('q')]);

const MESSAGE = F('M');
const CONTEXT = F('W');
/** From the first to the last double quote: PostgreSQL does not escape quotes inside the value. */
const QUOTED = /"[\s\S]*"/;
const HEX_BYTES = /0x[0-9a-f]{2}(?: 0x[0-9a-f]{2})*/gi;

const FAILING_ROW = /^(Failing row contains )\((.*)\)(\.?)$/s;
const KEY = /^(Key \()(.+?)(\)=\()(.*)(\).*)$/s;

/** The fields with what the mask hides replaced; undefined when nothing changed. */
export function maskNoticeFields(fields: readonly NoticeField[], mask: MaskPolicy): NoticeField[] | undefined {
  const sqlstate = fields.find((f) => f.code === SQLSTATE)?.value ?? '';
  const integrity = sqlstate.startsWith('23');
  const dataException = sqlstate.startsWith('22') && mask.columns.length > 0;
  const raised = mask.columns.length > 0 && fields.some((f) => f.code === CONTEXT && raisedByCode(f.value));
  const valueMask: ValueMask | undefined = mask.detect !== undefined && mask.detect.size > 0 ? { detect: mask.detect, ...(mask.hashKey ? { hashKey: mask.hashKey } : {}) } : undefined;
  let changed = false;
  const out = fields.map((f) => {
    let value = f.value;
    if (raised && TEXT_FIELDS.has(f.code)) value = f.code === MESSAGE ? WITHHELD_RAISED : WITHHELD;
    else if (f.code === DETAIL && integrity && mask.columns.length > 0) value = withholdQuoted(value, mask);
    if (dataException && (f.code === DETAIL || f.code === CONTEXT)) value = WITHHELD;
    if (dataException && f.code === MESSAGE) value = value.replace(QUOTED, `"${WITHHELD}"`).replace(HEX_BYTES, WITHHELD);
    if (valueMask !== undefined && TEXT_FIELDS.has(f.code)) value = maskValue(value, valueMask);
    if (value === f.value) return f;
    changed = true;
    return { code: f.code, value };
  });
  return changed ? out : undefined;
}

/**
 * Context lines the server writes about the input it was reading, not about code it was running:
 * a JSON value's line, a COPY FROM line. Any other line (`PL/pgSQL function f() line 2 at RAISE`,
 * `SQL function "f" statement 1`, `SQL statement "…"`, a procedural language's own wording) counts
 * as code, so a language the gateway has not heard of is withheld too.
 */
const INPUT_CONTEXT = [/^JSON data, line \d+: /, /^COPY [^\n]*, line \d+(?:, column [^\n]*)?(?::|$)/];

function raisedByCode(context: string): boolean {
  return context.split('\n').some((line) => line !== '' && !INPUT_CONTEXT.some((re) => re.test(line)));
}

function withholdQuoted(detail: string, mask: MaskPolicy): string {
  const row = FAILING_ROW.exec(detail);
  if (row) return `${row[1]}(${WITHHELD})${row[3]}`;
  const key = KEY.exec(detail);
  if (!key) return WITHHELD;
  // Column names as PostgreSQL prints them: "a, b"; an expression index prints its expression.
  const columns = (key[2] as string).split(', ').map((c) => c.replace(/^"(.*)"$/, '$1'));
  const covered = columns.some((column) => !/^[\p{L}_][\p{L}\p{N}_$]*$/u.test(column) || mask.columns.some((c) => globMatches(c.pattern.column, column)));
  return covered ? `${key[1]}${key[2]}${key[3]}${WITHHELD}${key[5]}` : detail;
}
