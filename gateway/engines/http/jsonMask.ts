// Masks a parsed JSON response body: first every place a mask rule's JSON path reaches (its
// strategy on the value's text; an object or array there is redacted whole), then the detectors
// as a backstop on every remaining string, number and key, so a card number the rules did not
// foresee is still hidden. Works on the parsed document, so what the client receives is always
// re-serialised JSON with no duplicate keys left for its parser to read differently.
import type { DetectorName } from '../../policy/mask/detectors.js';
import { applyStrategy, maskValue, REDACTED, type MaskStrategy, type ValueMask } from '../../policy/mask/strategies.js';
import { isLosslessNumber } from './jsonNumbers.js';
import { selectJsonPath } from './jsonPath.js';
import type { MaskPlan } from './policy.js';

export interface JsonMaskResult {
  /** The masked document (the input, changed in place, or a replacement for a masked root). */
  readonly doc: unknown;
  /** Concrete paths masked by rules, e.g. `$.customers[0].email` (capped for the record). */
  readonly maskedPaths: string[];
  readonly valuesMasked: number;
  readonly detectorHits: Partial<Record<DetectorName, number>>;
}

/** How many masked paths the record lists (the count is always exact). */
const MASKED_PATHS_KEPT = 100;

/** Assignment that creates an own property even for `__proto__` (which JSON.parse makes an own key). */
function setOwn(container: Record<string | number, unknown>, key: string | number, value: unknown): void {
  Object.defineProperty(container, key, { value, writable: true, enumerable: true, configurable: true });
}

function maskLeaf(value: unknown, strategy: MaskStrategy, hashKey: Buffer | undefined): unknown {
  if (value === null) return null;
  // A number kept as the service wrote it (jsonNumbers.ts) is masked as that text.
  if (isLosslessNumber(value)) return applyStrategy(strategy, Buffer.from(value.value, 'utf8'), hashKey).toString('utf8');
  if (typeof value === 'object') return REDACTED;
  const text = typeof value === 'string' ? value : String(value);
  return applyStrategy(strategy, Buffer.from(text, 'utf8'), hashKey).toString('utf8');
}

export function maskJsonDocument(doc: unknown, plan: MaskPlan, hashKey: Buffer | undefined): JsonMaskResult {
  const maskedPaths: string[] = [];
  let valuesMasked = 0;
  let root = doc;
  for (const { path, strategy } of plan.paths) {
    for (const place of selectJsonPath(root, path)) {
      const c = place.container as Record<string | number, unknown>;
      setOwn(c, place.key, maskLeaf(c[place.key], strategy, hashKey));
      valuesMasked++;
      if (maskedPaths.length < MASKED_PATHS_KEPT) maskedPaths.push(place.where);
    }
  }
  const detectorHits: Partial<Record<DetectorName, number>> = {};
  if (plan.backstop.length > 0) {
    const mask: ValueMask = { detect: new Map(plan.backstop.map((d) => [d, 'redact' as const])) };
    const stats = { count: 0 };
    root = backstop(root, mask, plan.backstop, detectorHits, stats);
    valuesMasked += stats.count;
  }
  return { doc: root, maskedPaths, valuesMasked, detectorHits };
}

function backstop(value: unknown, mask: ValueMask, detectors: readonly DetectorName[], hits: Partial<Record<DetectorName, number>>, stats: { count: number }): unknown {
  const scan = (text: string): string => {
    const out = maskValue(text, mask);
    if (out !== text) {
      stats.count++;
      // Which detector fired, for the record (maskValue does not say).
      for (const d of detectors) if (maskValue(text, { detect: new Map([[d, 'redact']]) }) !== text) hits[d] = (hits[d] ?? 0) + 1;
    }
    return out;
  };
  if (typeof value === 'string') return scan(value);
  if (typeof value === 'number' || isLosslessNumber(value)) {
    const text = isLosslessNumber(value) ? value.value : String(value);
    const out = scan(text);
    return out === text ? value : out;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = backstop(value[i], mask, detectors, hits, stats);
    return value;
  }
  if (typeof value === 'object' && value !== null) {
    const obj = value as Record<string, unknown>;
    for (const key of Object.keys(obj)) {
      const masked = backstop(obj[key], mask, detectors, hits, stats);
      const newKey = scan(key);
      if (newKey !== key) {
        delete obj[key];
        setOwn(obj, newKey, masked);
      } else {
        setOwn(obj, key, masked);
      }
    }
    return obj;
  }
  return value;
}
