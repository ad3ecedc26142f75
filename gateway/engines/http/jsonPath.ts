// The small JSONPath subset mask rules name response fields with: `$` then any of `.name`,
// `['name']`, `[N]`, `[*]` / `.*` (every member or element) and `..name` (that key at any depth).
// Compiled once at configuration load; `selectJsonPath` lists the places a path reaches in a
// parsed document as (container, key) pairs, so the caller can replace values in place.
import { isLosslessNumber } from './jsonNumbers.js';

export type JsonStep =
  | { readonly kind: 'child'; readonly name: string }
  | { readonly kind: 'index'; readonly index: number }
  | { readonly kind: 'wildcard' }
  | { readonly kind: 'descendant'; readonly name: string };

export interface JsonPath {
  readonly text: string;
  readonly steps: readonly JsonStep[];
}

const NAME = /^[A-Za-z_$][A-Za-z0-9_$-]*/;

export function compileJsonPath(text: string): JsonPath | { problem: string } {
  const fail = (why: string) => ({ problem: `invalid JSON path ${JSON.stringify(text)}: ${why} (supported: $.a.b, $.a[*].b, $.a[0], $['a b'], $..name)` });
  if (!text.startsWith('$')) return fail('it must start with "$"');
  const steps: JsonStep[] = [];
  let rest = text.slice(1);
  while (rest.length > 0) {
    if (rest.startsWith('..')) {
      const m = NAME.exec(rest.slice(2));
      if (!m) return fail('".." must be followed by a key name');
      steps.push({ kind: 'descendant', name: m[0] });
      rest = rest.slice(2 + m[0].length);
    } else if (rest.startsWith('.*')) {
      steps.push({ kind: 'wildcard' });
      rest = rest.slice(2);
    } else if (rest.startsWith('.')) {
      const m = NAME.exec(rest.slice(1));
      if (!m) return fail('"." must be followed by a key name');
      steps.push({ kind: 'child', name: m[0] });
      rest = rest.slice(1 + m[0].length);
    } else if (rest.startsWith('[*]')) {
      steps.push({ kind: 'wildcard' });
      rest = rest.slice(3);
    } else {
      const idx = /^\[(\d{1,9})\]/.exec(rest);
      const quoted = /^\['((?:[^'\\]|\\.)*)'\]/.exec(rest);
      if (idx) {
        steps.push({ kind: 'index', index: Number(idx[1]) });
        rest = rest.slice(idx[0].length);
      } else if (quoted) {
        steps.push({ kind: 'child', name: quoted[1]!.replace(/\\(.)/g, '$1') });
        rest = rest.slice(quoted[0].length);
      } else {
        return fail(`unexpected ${JSON.stringify(rest.slice(0, 10))}`);
      }
    }
  }
  if (steps.length === 0) return fail('it names the whole document; name a field');
  return { text, steps };
}

/** A place in a document: the container and the key (or index) of the value there. */
export interface JsonPlace {
  readonly container: Record<string, unknown> | unknown[];
  readonly key: string | number;
  /** The concrete path, e.g. `$.customers[0].email` (for the audit record). */
  readonly where: string;
}

type Container = Record<string, unknown> | unknown[];
// A number kept as its text (jsonNumbers.ts) is an object underneath, yet a leaf of the document.
const isContainer = (v: unknown): v is Container => typeof v === 'object' && v !== null && !isLosslessNumber(v);
const own = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);
const member = (where: string, key: string | number) => (typeof key === 'number' ? `${where}[${key}]` : NAME.test(key) && NAME.exec(key)![0] === key ? `${where}.${key}` : `${where}[${JSON.stringify(key)}]`);

function children(node: Container, where: string): JsonPlace[] {
  if (Array.isArray(node)) return node.map((_, i) => ({ container: node, key: i, where: member(where, i) }));
  return Object.keys(node).map((k) => ({ container: node, key: k, where: member(where, k) }));
}

const valueAt = (p: JsonPlace): unknown => (Array.isArray(p.container) ? p.container[p.key as number] : (p.container as Record<string, unknown>)[p.key as string]);

/** Every place `path` reaches in `doc` (a parsed JSON value), each once. */
export function selectJsonPath(doc: unknown, path: JsonPath): JsonPlace[] {
  let current: { value: unknown; place?: JsonPlace; where: string }[] = [{ value: doc, where: '$' }];
  for (const step of path.steps) {
    const next: { value: unknown; place: JsonPlace; where: string }[] = [];
    for (const { value, where } of current) {
      if (!isContainer(value)) continue;
      if (step.kind === 'child') {
        if (!Array.isArray(value) && own(value, step.name)) next.push(at({ container: value, key: step.name, where: member(where, step.name) }));
      } else if (step.kind === 'index') {
        if (Array.isArray(value) && step.index < value.length) next.push(at({ container: value, key: step.index, where: member(where, step.index) }));
      } else if (step.kind === 'wildcard') {
        for (const c of children(value, where)) next.push(at(c));
      } else {
        // `..name`: the key on this node and on every node below it.
        const stack: { node: Container; where: string }[] = [{ node: value, where }];
        while (stack.length > 0) {
          const { node, where: w } = stack.pop()!;
          if (!Array.isArray(node) && own(node, step.name)) next.push(at({ container: node, key: step.name, where: member(w, step.name) }));
          for (const c of children(node, w)) {
            const v = valueAt(c);
            if (isContainer(v)) stack.push({ node: v, where: c.where });
          }
        }
      }
    }
    current = next;
  }
  const seen = new Set<string>();
  const places: JsonPlace[] = [];
  for (const c of current) {
    if (c.place === undefined || seen.has(c.where)) continue;
    seen.add(c.where);
    places.push(c.place);
  }
  return places;
}

function at(place: JsonPlace): { value: unknown; place: JsonPlace; where: string } {
  return { value: valueAt(place), place, where: place.where };
}
