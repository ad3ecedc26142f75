// The fixture API server's request routing (kubeFixture.ts): discovery documents, then the
// /api/v1 resource paths for the kinds it holds (list with `fieldSelector=metadata.name=`, get,
// delete, deletecollection, watch streams, pod logs), answered with the real API's shapes and
// Status errors. Deliberately simple: one version, the core group only, no admission.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { API_GROUPS, API_VERSIONS, CORE_RESOURCES, VERSION, isKind, isNamespaced, kindOf, list, status, table, wantsTable, type Kind, type StoredObject } from './kubeObjects.js';

export interface ResourcePath {
  readonly kind: Kind;
  readonly namespace: string;
  readonly name: string;
  readonly subresource: string;
}

/** The kind, namespace, name and subresource of an /api/v1 path; undefined for anything else. */
export function classifyPath(url: string): ResourcePath | undefined {
  const path = new URL(url, 'https://fixture').pathname;
  const parts = path.split('/').filter((p) => p !== '');
  if (parts[0] !== 'api' || parts[1] !== 'v1') return undefined;
  let rest = parts.slice(2);
  let namespace = '';
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1] as string;
    rest = rest.slice(2);
  }
  const kind = rest[0] ?? '';
  if (!isKind(kind)) return undefined;
  return { kind, namespace, name: rest[1] ?? '', subresource: rest[2] ?? '' };
}

export interface Answer {
  readonly status: number;
  readonly body?: unknown;
  readonly stream?: (res: ServerResponse) => void;
}

export function handleResource(objects: StoredObject[], req: IncomingMessage): Answer {
  const url = new URL(req.url ?? '/', 'https://fixture');
  const method = req.method ?? 'GET';
  const discovery: Record<string, unknown> = { '/version': VERSION, '/api': API_VERSIONS, '/apis': API_GROUPS, '/api/v1': CORE_RESOURCES };
  const doc = discovery[url.pathname.replace(/\/$/, '') || '/'];
  if (doc !== undefined && method === 'GET') return { status: 200, body: doc };
  const path = classifyPath(req.url ?? '/');
  if (path === undefined) return { status: 404, body: status(404, 'NotFound', 'the server could not find the requested resource') };
  const { kind, namespace, name, subresource } = path;
  const notFound = () => ({ status: 404, body: status(404, 'NotFound', `${kind} "${name}" not found`, { name, kind }) });

  if (name === '') {
    const selected = objects.filter((o) => o.kind === kind && (namespace === '' || !isNamespaced(kind) || o.namespace === namespace) && nameSelected(url, o.name));
    if (method === 'GET' && watching(url)) return { status: 200, stream: (res) => watch(res, selected, url) };
    if (method === 'GET') return { status: 200, body: wantsTable(req.headers.accept) ? table(kind, selected) : list(kind, selected) };
    if (method === 'DELETE') {
      // As the API server: the answer lists every object deleted, and a dry run deletes none.
      if (!dryRun(url)) for (const o of selected) objects.splice(objects.indexOf(o), 1);
      return { status: 200, body: list(kind, selected) };
    }
    return { status: 405, body: status(405, 'MethodNotAllowed', `${method} is not supported on ${kind} collections by this fixture`) };
  }

  const found = objects.find((o) => o.kind === kind && o.name === name && (isNamespaced(kind) ? o.namespace === namespace : true));
  if (found === undefined) return notFound();
  if (subresource === 'log' && method === 'GET') return { status: 200, stream: (res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(`log line of ${name}\n`) };
  if (subresource !== '') return { status: 404, body: status(404, 'NotFound', `${kind}/${subresource} is not served by this fixture over plain HTTP`) };
  if (method === 'GET') return { status: 200, body: wantsTable(req.headers.accept) ? table(kind, [found]) : found.body };
  // Any patch or update is answered with the whole object after it; this fixture changes nothing.
  if (method === 'PATCH' || method === 'PUT') return { status: 200, body: found.body };
  if (method === 'DELETE') {
    if (!dryRun(url)) objects.splice(objects.indexOf(found), 1);
    const now = new Date().toISOString();
    const body = structuredClone(found.body) as { metadata: Record<string, unknown>; status?: Record<string, unknown> };
    body.metadata.deletionTimestamp = now;
    if (kind === 'namespaces') body.status = { phase: 'Terminating' };
    return { status: 200, body };
  }
  return { status: 405, body: status(405, 'MethodNotAllowed', `${method} is not supported on ${kindOf(kind)} by this fixture`) };
}

const dryRun = (url: URL) => url.searchParams.get('dryRun') === 'All';

function watching(url: URL): boolean {
  const v = url.searchParams.get('watch');
  return v !== null && v !== '0' && v.toLowerCase() !== 'false';
}

function nameSelected(url: URL, name: string): boolean {
  const selector = url.searchParams.get('fieldSelector');
  const m = selector ? /(?:^|,)metadata\.name==?([^,]*)/.exec(selector) : null;
  return m === null || m[1] === name;
}

/** A watch stream: one ADDED event per object, then open until the client leaves (or the timeout). */
function watch(res: ServerResponse, items: readonly StoredObject[], url: URL): void {
  res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
  for (const o of items) res.write(`${JSON.stringify({ type: 'ADDED', object: o.body })}\n`);
  // `timeoutSeconds`, or the client's `timeout` (e.g. kubectl --request-timeout=2s), ends the watch.
  const seconds = Number(url.searchParams.get('timeoutSeconds') ?? /^(\d+)s$/.exec(url.searchParams.get('timeout') ?? '')?.[1] ?? '0');
  if (seconds > 0) {
    const timer = setTimeout(() => res.end(), seconds * 1000);
    res.once('close', () => clearTimeout(timer));
  }
}
