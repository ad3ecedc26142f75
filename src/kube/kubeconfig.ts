// The kubeconfig `sluice connect` hands to kubectl for a kubernetes connection: one cluster,
// user and context named `sluice-NAME`, the server being the local tunnel as plain HTTP on
// loopback (docs/decisions.md: the hop never leaves the machine, and kubectl accepts an http://
// server without any insecure flag). It is written to its own file in the CLI's config directory;
// the user's ~/.kube/config is touched only with `--merge`, and then only the `sluice-NAME`
// entries are replaced. The user entry holds no credential: the cluster's stays on the gateway.
// (A token given here would not be sent: kubectl sends none to an http:// server.)
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { parse, stringify } from 'yaml';

export interface LocalKube {
  /** The kubeconfig file written for this connection. */
  readonly kubeconfig: string;
  /** The context (and cluster and user) name: `sluice-NAME`. */
  readonly context: string;
  readonly server: string;
}

interface Named<T> {
  name: string;
  [key: string]: unknown;
  value?: T;
}

interface KubeconfigDoc {
  apiVersion: 'v1';
  kind: 'Config';
  clusters: Named<unknown>[];
  users: Named<unknown>[];
  contexts: Named<unknown>[];
  'current-context'?: string;
  preferences?: unknown;
  [key: string]: unknown;
}

/** Connection names are already [a-z0-9-_] (the gateway's schema); anything else is replaced anyway. */
export function contextName(connection: string): string {
  return `sluice-${connection.replace(/[^A-Za-z0-9_.-]/g, '_')}`;
}

function entries(connection: string, server: string, localPassword: string | undefined) {
  const name = contextName(connection);
  return {
    name,
    cluster: { name, cluster: { server } },
    user: { name, user: localPassword !== undefined ? { token: localPassword } : {} },
    context: { name, context: { cluster: name, user: name } },
  };
}

/** Writes CONFIG_DIR/kube/sluice-NAME.kubeconfig (0600) with the tunnel as its current context. */
export async function writeKubeconfig(configDir: string, connection: string, host: string, port: number, localPassword?: string): Promise<LocalKube> {
  const server = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const e = entries(connection, server, localPassword);
  const doc: KubeconfigDoc = { apiVersion: 'v1', kind: 'Config', clusters: [e.cluster], users: [e.user], contexts: [e.context], 'current-context': e.name };
  const file = join(configDir, 'kube', `${e.name}.kubeconfig`);
  await writeAtomic(file, stringify(doc));
  return { kubeconfig: file, context: e.name, server };
}

/** The user's kubeconfig: $KUBECONFIG's first file, else ~/.kube/config (what kubectl writes to). */
export function userKubeconfig(env: NodeJS.ProcessEnv): string {
  const first = env.KUBECONFIG?.split(':').find((p) => p !== '');
  return first ?? join(env.HOME || homedir(), '.kube', 'config');
}

/**
 * `--merge`: replaces the `sluice-NAME` cluster, user and context in the user's kubeconfig (adding
 * them if absent), keeping everything else; the current context is left alone.
 */
export async function mergeKubeconfig(file: string, connection: string, host: string, port: number, localPassword?: string): Promise<LocalKube> {
  const server = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const e = entries(connection, server, localPassword);
  let doc: KubeconfigDoc = { apiVersion: 'v1', kind: 'Config', clusters: [], users: [], contexts: [] };
  try {
    const parsed: unknown = parse(await readFile(file, 'utf8'));
    if (parsed !== null && typeof parsed === 'object') doc = { ...doc, ...(parsed as Partial<KubeconfigDoc>) } as KubeconfigDoc;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const put = <T extends { name: string }>(list: T[] | null | undefined, item: T): T[] => [...(list ?? []).filter((x) => x.name !== item.name), item];
  doc.clusters = put(doc.clusters, e.cluster);
  doc.users = put(doc.users, e.user);
  doc.contexts = put(doc.contexts, e.context);
  await writeAtomic(file, stringify(doc));
  return { kubeconfig: file, context: e.name, server };
}

async function writeAtomic(file: string, text: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
}
