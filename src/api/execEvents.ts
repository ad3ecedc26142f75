// The exec events (contract.ts `execEvent`) checked without zod. Every `sluice exec` validates each
// line of its answer, and loading zod costs a short exec more than the rest of its start-up, so
// the CLI checks the same shapes from this table. The zod schema stays the contract (the gateway
// and the types use it); test/unit/cli/execEvents.test.ts proves both accept and produce exactly
// the same events, including on mutated ones.
import type { ExecEvent } from './contract.js';

type Kind = 'string' | 'int' | 'intOrNull' | 'strings' | 'columns' | 'rows' | readonly string[];
/** A field: its kind, and whether it may be absent. */
type Field = readonly [Kind, 'optional'?];

const REVIEW_STATUSES = ['pending', 'approved', 'rejected', 'expired', 'cancelled'] as const;
const END_STATUSES = ['ok', 'error', 'blocked', 'denied', 'review_pending', 'review_rejected', 'review_expired', 'timeout', 'cancelled'] as const;

const SHAPES: { readonly [T in ExecEvent['type']]: Readonly<Record<string, Field>> } = {
  session: { id: ['string'] },
  review: {
    id: ['string'],
    status: [REVIEW_STATUSES],
    rule: ['string', 'optional'],
    approvers: ['strings', 'optional'],
    expiresAt: ['string', 'optional'],
    by: ['string', 'optional'],
    reason: ['string', 'optional'],
  },
  waiting: { review: ['string'] },
  columns: { statement: ['int'], columns: ['columns'] },
  rows: { statement: ['int'], rows: ['rows'] },
  notice: { statement: ['int', 'optional'], severity: ['string'], message: ['string'], sqlstate: ['string', 'optional'] },
  complete: { statement: ['int'], command: ['string'], rows: ['intOrNull'] },
  error: { statement: ['int', 'optional'], sqlstate: ['string', 'optional'], message: ['string'], rule: ['string', 'optional'] },
  end: { status: [END_STATUSES], statements: ['int'], session: ['string', 'optional'] },
};

/**
 * The event `value` is, with unknown keys dropped (as zod's objects do), or why it is not one.
 * Rows are returned as given, not copied: a million-row result must not double the CLI's garbage.
 */
export function checkExecEvent(value: unknown): { event: ExecEvent } | { problem: string } {
  if (!isRecord(value)) return { problem: 'not an object' };
  const type = value.type;
  if (typeof type !== 'string' || !Object.hasOwn(SHAPES, type)) return { problem: `unknown type ${JSON.stringify(type) ?? 'undefined'}` };
  const event: Record<string, unknown> = { type };
  for (const [key, [kind, optional]] of Object.entries(SHAPES[type as ExecEvent['type']])) {
    const v = value[key];
    if (v === undefined) {
      if (optional) continue;
      return { problem: `${type}: ${key} is missing` };
    }
    const read = readField(kind, v);
    if (read === BAD) return { problem: `${type}: ${key} is not ${typeof kind === 'string' ? kindName[kind] : `one of ${kind.join(', ')}`}` };
    event[key] = read;
  }
  return { event: event as ExecEvent };
}

const kindName: Record<Exclude<Kind, readonly string[]>, string> = {
  string: 'a string',
  int: 'an integer',
  intOrNull: 'an integer or null',
  strings: 'an array of strings',
  columns: 'an array of columns (name, typeOid, type)',
  rows: 'an array of rows (arrays of strings or null)',
};

const BAD = Symbol('bad');

/** The field's value as the event carries it (columns without unknown keys), or BAD. */
function readField(kind: Kind, v: unknown): unknown {
  if (typeof kind !== 'string') return typeof v === 'string' && kind.includes(v) ? v : BAD;
  switch (kind) {
    case 'string':
      return typeof v === 'string' ? v : BAD;
    case 'int':
      return isInt(v) ? v : BAD;
    case 'intOrNull':
      return v === null || isInt(v) ? v : BAD;
    case 'strings':
      return Array.isArray(v) && v.every((s) => typeof s === 'string') ? v : BAD;
    case 'columns':
      return Array.isArray(v) && v.every((c) => isRecord(c) && typeof c.name === 'string' && isInt(c.typeOid) && typeof c.type === 'string')
        ? v.map((c: { name: string; typeOid: number; type: string }) => ({ name: c.name, typeOid: c.typeOid, type: c.type }))
        : BAD;
    case 'rows':
      return Array.isArray(v) && v.every((row) => Array.isArray(row) && row.every((cell) => cell === null || typeof cell === 'string')) ? v : BAD;
  }
}

/** zod's `.int()`: a safe integer. */
function isInt(v: unknown): boolean {
  return Number.isSafeInteger(v);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
