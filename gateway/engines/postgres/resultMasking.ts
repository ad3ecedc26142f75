// Masking of one session's results: from a RowDescription to the row masker for the rows that
// follow (column sources looked up in the target's catalog once per table OID, then cached), the
// names of the masked columns for the audit trail, and the audit's view of a row (after masking).
// A RowDescription seen before is answered from a cache keyed by its bytes, so a statement run in
// a loop costs one map lookup per result, not a plan.
import { alignColumns, createRowMasker, strongerStrategy, decodeRowDescription, planRowMask, tableOidsToResolve, type MaskPolicy, type MaskStrategy, type OutputColumn, type ResolvedRelation, type RowColumn, type RowMasker } from '../../policy/index.js';
import type { TargetCatalog } from './catalog.js';

/** Enough for the distinct result shapes of any real session; beyond it, oldest first out. */
const MAX_CACHED_MASKERS = 256;

/** A result's masker (absent: nothing in it is masked) and its columns. */
export interface ResultPlan {
  readonly columns: readonly RowColumn[];
  readonly masker: RowMasker | undefined;
}

export class ResultMasking {
  private readonly cache = new Map<string, ResultPlan>();
  /** Plans with a statement's lineage applied, per lineage (one per statement shape) and description. */
  private readonly traced = new WeakMap<readonly OutputColumn[], Map<string, ResultPlan>>();

  constructor(
    readonly mask: MaskPolicy,
    private readonly catalog: TargetCatalog,
  ) {}

  /**
   * The plan for the rows after this RowDescription frame (`buf[start, end)`); a promise only
   * when a table OID must first be looked up. A look-up that fails masks every column that comes
   * from a table (fail closed).
   */
  forRowDescription(buf: Buffer, start: number, end: number, lineage?: readonly OutputColumn[]): ResultPlan | Promise<ResultPlan> {
    if (lineage === undefined) return this.byColumnOids(buf, start, end);
    // The statement's lineage (lineageGate.ts) on top of what the column OIDs say.
    const key = buf.toString('latin1', start + 5, end);
    const hit = this.traced.get(lineage)?.get(key);
    if (hit !== undefined) {
      hit.masker?.resetStats();
      return hit;
    }
    const base = this.byColumnOids(buf, start, end);
    if (base instanceof Promise) return base.then((p) => withLineage(this.mask, p, lineage));
    const plan = withLineage(this.mask, base, lineage);
    let byKey = this.traced.get(lineage);
    if (byKey === undefined) this.traced.set(lineage, (byKey = new Map()));
    if (byKey.size < MAX_CACHED_MASKERS) byKey.set(key, plan);
    return plan;
  }

  private byColumnOids(buf: Buffer, start: number, end: number): ResultPlan | Promise<ResultPlan> {
    const key = buf.toString('latin1', start + 5, end);
    const hit = this.cache.get(key);
    if (hit !== undefined) {
      hit.masker?.resetStats();
      return hit;
    }
    const columns = decodeRowDescription(buf.subarray(start, end));
    const oids = tableOidsToResolve(this.mask, columns);
    const known = new Map<number, ResolvedRelation>();
    const unknown: number[] = [];
    for (const o of oids) {
      const r = this.catalog.cached(o);
      if (r === undefined) unknown.push(o);
      else known.set(o, r);
    }
    if (unknown.length === 0) return this.remember(key, columns, known);
    return this.catalog.resolve(unknown).then(
      (found) => {
        for (const [o, r] of found) known.set(o, r);
        // Columns of a table the catalog does not know yet are redacted, for this result only.
        if (unknown.some((o) => !found.has(o))) return { columns, masker: planRowMask(this.mask, columns, known) };
        return this.remember(key, columns, known);
      },
      // Unresolved OIDs are masked with `redact` by planRowMask: do not cache that.
      () => ({ columns, masker: planRowMask(this.mask, columns, known) }),
    );
  }

  private remember(key: string, columns: readonly RowColumn[], relations: ReadonlyMap<number, ResolvedRelation>): ResultPlan {
    const plan = { columns, masker: planRowMask(this.mask, columns, relations) };
    if (this.cache.size >= MAX_CACHED_MASKERS) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(key, plan);
    return plan;
  }
}

/**
 * Columns the lineage calls pass-throughs get their mask, derived ones `redact`, whatever their
 * OIDs say; a lineage that does not fit the description redacts every column (fail closed).
 */
function withLineage(mask: MaskPolicy, plan: ResultPlan, lineage: readonly OutputColumn[]): ResultPlan {
  const aligned = alignColumns(lineage, plan.columns.length);
  const masked = new Map<number, MaskStrategy>(plan.masker?.plan.maskedColumns ?? []);
  plan.columns.forEach((_, i) => {
    const l = aligned?.[i]?.lineage;
    if (l?.kind === 'clean') return;
    masked.set(i, strongerStrategy(masked.get(i), l?.kind === 'pass' ? l.strategy : 'redact'));
  });
  if (masked.size === 0) return plan;
  return {
    columns: plan.columns,
    masker: createRowMasker({ columns: plan.columns, maskedColumns: masked, ...(mask.detect !== undefined ? { detect: mask.detect } : {}), ...(mask.hashKey !== undefined ? { hashKey: mask.hashKey } : {}) }),
  };
}

/**
 * For the audit trail: the result columns a masker masks whole, and `detect:NAME` for each
 * detector that found something in this result.
 */
export function maskedNames(masker: RowMasker): string[] {
  const names: string[] = [];
  for (const i of masker.plan.maskedColumns.keys()) names.push(masker.plan.columns[i]?.name ?? `#${i + 1}`);
  for (const d of Object.keys(masker.stats.detectorHits)) names.push(`detect:${d}`);
  return names;
}

/** A DataRow frame's values as the audit records them: text as is, binary as `\x` hex, NULL as null. */
export function rowValues(frame: Buffer, start: number, columns: readonly RowColumn[]): (string | null)[] {
  const n = frame.readUInt16BE(start + 5);
  const values: (string | null)[] = [];
  let p = start + 7;
  for (let i = 0; i < n; i++) {
    const len = frame.readInt32BE(p);
    p += 4;
    if (len < 0) {
      values.push(null);
      continue;
    }
    values.push(columns[i]?.formatCode === 1 ? `\\x${frame.toString('hex', p, p + len)}` : frame.toString('utf8', p, p + len));
    p += len;
  }
  return values;
}
