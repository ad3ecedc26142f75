// Helpers over libpg-query's JSON parse tree: node shapes, constants, options. The tree is plain
// JSON — typed nodes are single-key objects (`{ RangeVar: {...} }`), some fields hold a struct
// inline (`relation: { relname }`), and false booleans and empty lists are omitted.

export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}

export const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Single-key objects with a PascalCase key are typed parse-tree nodes: `{ RangeVar: {...} }`. */
export function typedNode(v: JsonObject): [string, JsonObject] | undefined {
  const keys = Object.keys(v);
  if (keys.length !== 1) return undefined;
  const k = keys[0] as string;
  const c = k.charCodeAt(0);
  if (c < 65 || c > 90) return undefined;
  const body = v[k];
  return isObject(body) ? [k, body] : undefined;
}

/** A name given as a list of String nodes (DROP TABLE a.b, trigger functions); undefined if anything else is in it. */
export function stringList(list: Json): string[] | undefined {
  if (!Array.isArray(list)) return undefined;
  const out: string[] = [];
  for (const item of list) {
    if (!isObject(item) || !isObject(item.String) || typeof item.String.sval !== 'string') return undefined;
    out.push(item.String.sval);
  }
  return out;
}

export function stringConstant(v: Json): string | undefined {
  if (!isObject(v)) return undefined;
  if (isObject(v.A_Const) && isObject(v.A_Const.sval) && typeof v.A_Const.sval.sval === 'string') return v.A_Const.sval.sval;
  if (isObject(v.TypeCast)) return stringConstant(v.TypeCast.arg as Json);
  return undefined;
}

export function isConstant(v: Json): boolean {
  if (!isObject(v)) return false;
  if (isObject(v.A_Const)) return true;
  if (isObject(v.TypeCast)) return isConstant(v.TypeCast.arg as Json);
  return false;
}

/** Truthiness of a DefElem option value as PostgreSQL's defGetBoolean reads it; unknown → true. */
export function optionTrue(arg: Json | undefined): boolean {
  if (arg === undefined || arg === null) return true;
  if (isObject(arg)) {
    if (isObject(arg.String) && typeof arg.String.sval === 'string') return !['false', 'off', 'no', '0'].includes(arg.String.sval.toLowerCase());
    if (isObject(arg.Integer)) return arg.Integer.ival !== undefined && arg.Integer.ival !== 0;
    if (isObject(arg.Boolean)) return arg.Boolean.boolval === true;
    if (isObject(arg.A_Const)) return optionTrue(Object.values(arg.A_Const).find(isObject) as Json | undefined);
  }
  return true;
}

export function defElems(list: Json | undefined): Map<string, Json | undefined> {
  const out = new Map<string, Json | undefined>();
  if (!Array.isArray(list)) return out;
  for (const item of list) {
    if (isObject(item) && isObject(item.DefElem) && typeof item.DefElem.defname === 'string') out.set(item.DefElem.defname, item.DefElem.arg);
  }
  return out;
}

export function optionString(arg: Json | undefined): string | undefined {
  if (isObject(arg) && isObject(arg.String) && typeof arg.String.sval === 'string') return arg.String.sval;
  return undefined;
}
