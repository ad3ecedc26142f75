// The Kubernetes API's object shapes the fixture API server (kubeFixture.ts) answers with:
// discovery documents, Pods, Namespaces, Secrets, Events, Status errors and the server-side
// printing Table kubectl asks for with `Accept: application/json;as=Table`. Field names and
// nesting follow the real API (k8s.io/api core/v1, k8s.io/apimachinery meta/v1) so that kubectl
// decodes them as it would a real cluster's.

export type Kind = 'pods' | 'namespaces' | 'secrets' | 'events';

export interface StoredObject {
  readonly kind: Kind;
  readonly namespace: string;
  readonly name: string;
  readonly body: Record<string, unknown>;
}

const KINDS: Record<Kind, { kind: string; singular: string; namespaced: boolean; shortNames?: string[] }> = {
  pods: { kind: 'Pod', singular: 'pod', namespaced: true, shortNames: ['po'] },
  namespaces: { kind: 'Namespace', singular: 'namespace', namespaced: false, shortNames: ['ns'] },
  secrets: { kind: 'Secret', singular: 'secret', namespaced: true },
  events: { kind: 'Event', singular: 'event', namespaced: true, shortNames: ['ev'] },
};

export const isKind = (s: string): s is Kind => s in KINDS;
export const isNamespaced = (k: Kind) => KINDS[k].namespaced;
export const kindOf = (k: Kind) => KINDS[k].kind;

export const VERSION = { major: '1', minor: '32', gitVersion: 'v1.32.0-sluice-fixture', gitCommit: '0000000', gitTreeState: 'clean', buildDate: '2026-01-01T00:00:00Z', goVersion: 'go1.23', compiler: 'gc', platform: 'linux/amd64' };

export const API_VERSIONS = { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '127.0.0.1:6443' }] };

export const API_GROUPS = { kind: 'APIGroupList', apiVersion: 'v1', groups: [] };

const ALL_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

export const CORE_RESOURCES = {
  kind: 'APIResourceList',
  groupVersion: 'v1',
  resources: [
    ...(Object.keys(KINDS) as Kind[]).map((name) => ({
      name,
      singularName: KINDS[name].singular,
      namespaced: KINDS[name].namespaced,
      kind: KINDS[name].kind,
      verbs: ALL_VERBS,
      ...(KINDS[name].shortNames ? { shortNames: KINDS[name].shortNames } : {}),
      ...(name === 'pods' ? { categories: ['all'] } : {}),
    })),
    { name: 'pods/exec', singularName: '', namespaced: true, kind: 'PodExecOptions', verbs: ['create', 'get'] },
    { name: 'pods/attach', singularName: '', namespaced: true, kind: 'PodAttachOptions', verbs: ['create', 'get'] },
    { name: 'pods/log', singularName: '', namespaced: true, kind: 'Pod', verbs: ['get'] },
    { name: 'namespaces/finalize', singularName: '', namespaced: false, kind: 'Namespace', verbs: ['update'] },
  ],
};

let uid = 0;
const created = '2026-01-01T00:00:00Z';
const meta = (name: string, namespace?: string) => ({
  name,
  ...(namespace !== undefined ? { namespace } : {}),
  uid: `00000000-0000-4000-8000-${String(++uid).padStart(12, '0')}`,
  resourceVersion: String(1000 + uid),
  creationTimestamp: created,
});

export function pod(namespace: string, name: string): StoredObject {
  return {
    kind: 'pods',
    namespace,
    name,
    body: {
      kind: 'Pod',
      apiVersion: 'v1',
      metadata: { ...meta(name, namespace), labels: { app: name } },
      spec: { containers: [{ name: 'app', image: 'busybox:1.36' }], nodeName: 'node-1', restartPolicy: 'Always' },
      status: {
        phase: 'Running',
        conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: created }],
        containerStatuses: [{ name: 'app', ready: true, started: true, restartCount: 0, image: 'busybox:1.36', imageID: '', state: { running: { startedAt: created } } }],
        podIP: '10.244.0.5',
        hostIP: '10.0.0.9',
        startTime: created,
      },
    },
  };
}

export function namespace(name: string): StoredObject {
  return { kind: 'namespaces', namespace: '', name, body: { kind: 'Namespace', apiVersion: 'v1', metadata: meta(name), spec: { finalizers: ['kubernetes'] }, status: { phase: 'Active' } } };
}

export function secret(namespace: string, name: string, data: Record<string, string>): StoredObject {
  const encoded = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
  return { kind: 'secrets', namespace, name, body: { kind: 'Secret', apiVersion: 'v1', metadata: meta(name, namespace), type: 'Opaque', data: encoded } };
}

export function list(kind: Kind, items: readonly StoredObject[]): Record<string, unknown> {
  return { kind: `${kindOf(kind)}List`, apiVersion: 'v1', metadata: { resourceVersion: String(1000 + uid) }, items: items.map((o) => o.body) };
}

export function status(code: number, reason: string, message: string, details?: Record<string, unknown>): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code };
}

/** Whether kubectl asked for server-side printing (`kubectl get`). */
export function wantsTable(accept: string | undefined): boolean {
  return accept !== undefined && /as=Table/.test(accept.split(',')[0] ?? '');
}

/** The meta.k8s.io/v1 Table kubectl prints; pods get the columns a real server sends. */
export function table(kind: Kind, items: readonly StoredObject[]): Record<string, unknown> {
  const col = (name: string, type = 'string', format = '') => ({ name, type, format, description: '', priority: 0 });
  const columns = kind === 'pods' ? [col('Name', 'string', 'name'), col('Ready'), col('Status'), col('Restarts', 'integer'), col('Age')] : [col('Name', 'string', 'name'), col('Age')];
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion: String(1000 + uid) },
    columnDefinitions: columns,
    rows: items.map((o) => ({
      cells: kind === 'pods' ? [o.name, '1/1', 'Running', 0, '5m'] : [o.name, '5m'],
      object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: (o.body as { metadata: unknown }).metadata },
    })),
  };
}
