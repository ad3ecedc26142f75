// Reads one HTTP request line as the Kubernetes API server does (k8s.io/apiserver
// pkg/endpoints/request/requestinfo.go, RequestInfoFactory.NewRequestInfo): verb, API group,
// version, resource, subresource, namespace and name, so that policy rules can be written in the
// words of RBAC. The path is checked first: anything the API server (Go's net/url, then its own
// splitting) could read differently from this code — `.`/`..` segments, encoded separators,
// empty segments, `;` in the query — is returned as unclassifiable, and the engine refuses it
// whenever a rule applies (fail closed). One deliberate difference from the API server: the
// connect subresources (`pods/exec`, `pods/attach`, `pods/portforward`) are always `create`,
// also when opened with a WebSocket GET, because that is the verb RBAC rules for them are written
// on; reading the GET as `get` would walk a WebSocket exec past a `create` rule.

/** What the API server would authorize for one request (RBAC's attributes). */
export type RequestInfo =
  | {
      readonly kind: 'resource';
      readonly verb: string;
      /** "" for the core group (`/api/v1`). */
      readonly apiGroup: string;
      readonly apiVersion: string;
      readonly resource: string;
      /** "" when none, e.g. `exec` for `pods/exec`, `status`, `log`. */
      readonly subresource: string;
      /** "" for cluster-scoped requests. */
      readonly namespace: string;
      /** "" for collections (list, watch, create, deletecollection). */
      readonly name: string;
      /**
       * A server-side apply (`PATCH` with an `application/apply-patch+…` body), which creates the
       * object when it does not exist: judged as `create` too (policy.ts).
       */
      readonly applyPatch?: true;
    }
  | {
      /** Discovery, /version, /healthz, /openapi/…: not about any resource. */
      readonly kind: 'nonResource';
      readonly verb: string;
      readonly path: string;
    };

export type Classification = RequestInfo | { readonly kind: 'unclassifiable'; readonly reason: string };

/** Verbs that may open the resource path (`/api/v1/watch/pods`) in place of the method's. */
const SPECIAL_VERBS = new Set(['proxy', 'watch']);
/** Subresources of a namespace itself (`/api/v1/namespaces/NAME/status`), not resources inside it. */
const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize']);
/** Streams that run something in a pod: authorized as `create` whatever the method. */
const CONNECT_SUBRESOURCES = new Set(['exec', 'attach', 'portforward']);
const METHOD_VERBS: Readonly<Record<string, string>> = { GET: 'get', HEAD: 'get', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };
/** A request target longer than this is not worth judging (the API server's own limit is lower). */
const MAX_TARGET = 16 * 1024;

/**
 * Classifies one request by its method, request-target (origin form: `/path?query`) and the
 * values of its `Content-Type` fields (the API server reads the patch type from the first; any
 * naming an apply patch marks it, so a second field cannot hide one).
 * Never throws: what cannot be read with certainty comes back as `unclassifiable` with why.
 */
export function classifyRequest(method: string, target: string, contentTypes: readonly string[] = []): Classification {
  const parsed = splitTarget(target);
  if ('reason' in parsed) return { kind: 'unclassifiable', reason: parsed.reason };
  const { segments, path, query } = parsed;
  const nonResource = (): RequestInfo => ({ kind: 'nonResource', verb: method.toLowerCase(), path });

  let parts = segments;
  if (parts.length < 3) return nonResource();
  const prefix = parts[0];
  if (prefix !== 'api' && prefix !== 'apis') return nonResource();
  parts = parts.slice(1);
  let apiGroup = '';
  if (prefix === 'apis') {
    if (parts.length < 3) return nonResource();
    apiGroup = parts[0] as string;
    parts = parts.slice(1);
  }
  const apiVersion = parts[0] as string;
  parts = parts.slice(1);

  let verb: string;
  let verbFromMethod = false;
  if (SPECIAL_VERBS.has(parts[0] as string)) {
    if (parts.length < 2) return { kind: 'unclassifiable', reason: 'unable to determine kind and namespace from url' };
    verb = parts[0] as string;
    parts = parts.slice(1);
  } else {
    verbFromMethod = true;
    const v = METHOD_VERBS[method];
    if (v === undefined) return { kind: 'unclassifiable', reason: `method ${method} has no Kubernetes verb` };
    verb = v;
  }

  let namespace = '';
  if (parts[0] === 'namespaces') {
    if (parts.length > 1) {
      namespace = parts[1] as string;
      if (parts.length > 2 && !NAMESPACE_SUBRESOURCES.has(parts[2] as string)) parts = parts.slice(2);
    }
  }

  const resource = parts[0] ?? '';
  const name = parts[1] ?? '';
  const subresource = parts.length >= 3 && verb !== 'proxy' ? (parts[2] as string) : '';
  let resolvedName = name;

  if (verbFromMethod && resolvedName === '' && verb === 'get') {
    verb = watchRequested(query) ? 'watch' : 'list';
    const selected = exactNameSelector(query);
    if (selected !== undefined) resolvedName = selected;
  }
  if (verbFromMethod && resolvedName === '' && verb === 'delete') verb = 'deletecollection';
  if (resource === 'pods' && CONNECT_SUBRESOURCES.has(subresource)) verb = 'create';
  const applyPatch = verb === 'patch' && contentTypes.some((t) => /apply-patch/i.test(t));

  return { kind: 'resource', verb, apiGroup, apiVersion, resource, subresource, namespace, name: resolvedName, ...(applyPatch ? { applyPatch: true as const } : {}) };
}

interface SplitTarget {
  readonly segments: readonly string[];
  readonly path: string;
  readonly query: URLSearchParams;
}

/**
 * Decodes the path as Go's net/url does and splits it as the API server does (`/` trimmed at
 * both ends, then split on `/`), refusing every form two readers could split differently.
 */
function splitTarget(target: string): SplitTarget | { reason: string } {
  if (target.length > MAX_TARGET) return { reason: 'the request target is too long' };
  if (!target.startsWith('/')) return { reason: 'the request target is not a path (origin form)' };
  // Control characters, spaces and backslashes are read differently by different parsers.
  // eslint-disable-next-line no-control-regex -- refusing control characters is the point
  if (/[\x00-\x20\x7f\\#]/.test(target)) return { reason: 'the request target holds a control character, space, backslash or fragment' };
  const q = target.indexOf('?');
  const rawPath = q === -1 ? target : target.slice(0, q);
  const rawQuery = q === -1 ? '' : target.slice(q + 1);
  // Go's url.ParseQuery drops a pair holding `;` where URLSearchParams keeps it: refuse the difference.
  if (rawQuery.includes(';')) return { reason: 'the query holds ";" (servers disagree on where its parameters end)' };
  if (/%(?![0-9a-fA-F]{2})/.test(target)) return { reason: 'the request target holds a malformed percent escape' };
  // An encoded separator would be a `/` to the API server after decoding but not to a path rule.
  if (/%2f|%5c|%00/i.test(rawPath)) return { reason: 'the path holds an encoded "/", "\\" or NUL' };
  let path: string;
  try {
    path = decodeURIComponent(rawPath);
  } catch {
    return { reason: 'the path is not valid percent-encoded UTF-8' };
  }
  // eslint-disable-next-line no-control-regex -- refusing control characters is the point
  if (/[\x00-\x1f\x7f]/.test(path)) return { reason: 'the decoded path holds a control character' };
  const trimmed = path.replace(/^\/+|\/+$/g, '');
  if (/^\/\/|\/\/$/.test(path) && path !== '/') return { reason: 'the path begins or ends with "//"' };
  const segments = trimmed === '' ? [] : trimmed.split('/');
  for (const s of segments) {
    if (s === '') return { reason: 'the path holds an empty segment ("//")' };
    if (s === '.' || s === '..') return { reason: 'the path holds a "." or ".." segment' };
  }
  return { segments, path, query: new URLSearchParams(rawQuery) };
}

/** `watch` as the API server decodes a bool parameter: its first value, true unless "0" or "false". */
function watchRequested(query: URLSearchParams): boolean {
  const v = query.get('watch');
  if (v === null) return false;
  return !(v === '0' || v.toLowerCase() === 'false');
}

/**
 * The name a list selects with `fieldSelector=metadata.name=X` (or `==`), which the API server
 * records as the request's name so that `resourceNames` rules apply to it.
 */
function exactNameSelector(query: URLSearchParams): string | undefined {
  const selector = query.get('fieldSelector');
  if (selector === null) return undefined;
  for (const term of selector.split(',')) {
    const m = /^\s*metadata\.name\s*==?\s*(.*?)\s*$/.exec(term);
    if (m && m[1] !== undefined && /^[^/%]+$/.test(m[1]) && m[1] !== '.' && m[1] !== '..') return m[1];
  }
  return undefined;
}

/** `pods/exec`, `pods` or `namespaces`: the resource as RBAC rules name it. */
export function resourceWithSubresource(info: Extract<RequestInfo, { kind: 'resource' }>): string {
  return info.subresource === '' ? info.resource : `${info.resource}/${info.subresource}`;
}

/** One line for people and the audit trail, e.g. `create pods/exec web-1 -n default`. */
export function describeRequest(info: RequestInfo): string {
  if (info.kind === 'nonResource') return `${info.verb} ${info.path}`;
  const group = info.apiGroup === '' ? '' : `.${info.apiGroup}`;
  const what = `${info.resource}${group}${info.subresource ? `/${info.subresource}` : ''}`;
  return [info.verb, what, info.name, info.namespace ? `-n ${info.namespace}` : ''].filter((s) => s !== '').join(' ');
}
