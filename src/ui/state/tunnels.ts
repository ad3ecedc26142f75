// The tunnels the app has open, several at once, each an in-process listener like `sluice connect`
// runs (src/tunnel/localListener.ts): its port, the paste-able client command, clients open, bytes
// each way and the gateway session ids of its clients. Stats are copied into the snapshot by
// `refreshStats()`, which the model calls every second while any tunnel is open.
import type { ConnectionInfo } from '../../api/contract.js';
import type { Gateway } from '../../api/gateway.js';
import type { ListenOptions, LocalListener } from '../../tunnel/localListener.js';
import { localHttpUrl } from '../../tunnel/localSide.js';
import { messageOf, Store } from './store.js';

export const LOCAL_HOST = '127.0.0.1';
export const LOCAL_USER = 'sluice';
const DEFAULT_PORTS: Record<ConnectionInfo['type'], number> = { postgres: 5433, ssh: 2222, http: 8081, kubernetes: 8443 };

export interface TunnelView {
  connection: string;
  state: 'opening' | 'open' | 'failed';
  host: string;
  port?: number;
  /** What to paste into a shell to use it. */
  command?: string;
  open: number;
  total: number;
  bytesUp: number;
  bytesDown: number;
  sessionIds: readonly string[];
  /** Why opening failed, or the last client that could not be connected. */
  error?: string;
}

export interface TunnelsState {
  tunnels: readonly TunnelView[];
}

export type Listen = (opts: ListenOptions) => Promise<LocalListener>;

/** The paste-able command for a tunnel on host:port (an ssh one needs its known_hosts file written first). */
export type DescribeTunnel = (info: ConnectionInfo, host: string, port: number) => Promise<string>;

export async function clientCommand(info: ConnectionInfo, host: string, port: number): Promise<string> {
  if (info.type === 'ssh') return `ssh -p ${port} ${info.user}@${host}`;
  if (info.type === 'kubernetes') return `kubectl --server http://${host}:${port} get pods`;
  if (info.type === 'http') return `curl ${localHttpUrl(host, port)}/`;
  return `psql "host=${host} port=${port} dbname=${info.database} user=${LOCAL_USER}"`;
}

export class TunnelsManager extends Store<TunnelsState> {
  readonly #listeners = new Map<string, LocalListener>();

  constructor(
    private readonly gateway: Pick<Gateway, 'endpoint' | 'credentials'>,
    private readonly listen: Listen = async (o) => (await import('../../tunnel/localListener.js')).listenLocal(o),
    private readonly describe: DescribeTunnel = clientCommand,
  ) {
    super({ tunnels: [] });
  }

  get(connection: string): TunnelView | undefined {
    return this.getSnapshot().tunnels.find((t) => t.connection === connection);
  }

  get anyOpen(): boolean {
    return this.#listeners.size > 0;
  }

  /** Opens a tunnel to `info` (no-op when one is open or opening); failures land in its view. */
  async open(info: ConnectionInfo): Promise<void> {
    const existing = this.get(info.name);
    if (existing && existing.state !== 'failed') return;
    this.#put({ connection: info.name, state: 'opening', host: LOCAL_HOST, open: 0, total: 0, bytesUp: 0, bytesDown: 0, sessionIds: [] });
    try {
      const l = await this.listen({
        endpoint: this.gateway.endpoint,
        credentials: this.gateway.credentials,
        connection: info.name,
        type: info.type,
        host: LOCAL_HOST,
        port: DEFAULT_PORTS[info.type],
        fallbackToNextFree: true,
        onClientError: (message) => this.#patch(info.name, { error: `a client could not be connected: ${message}` }),
      });
      if (!this.get(info.name)) {
        // Closed (or the app quit) while it was opening.
        await l.close();
        return;
      }
      this.#listeners.set(info.name, l);
      this.#patch(info.name, { state: 'open', port: l.port, command: await this.describe(info, l.host, l.port) });
      this.refreshStats();
    } catch (err) {
      this.#patch(info.name, { state: 'failed', error: messageOf(err) });
    }
  }

  async close(connection: string): Promise<void> {
    const l = this.#listeners.get(connection);
    this.#listeners.delete(connection);
    this.update({ tunnels: this.getSnapshot().tunnels.filter((t) => t.connection !== connection) });
    await l?.close();
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.getSnapshot().tunnels.map((t) => this.close(t.connection)));
  }

  refreshStats(): void {
    let changed = false;
    const tunnels = this.getSnapshot().tunnels.map((t) => {
      const s = this.#listeners.get(t.connection)?.stats;
      if (!s) return t;
      const ids = s.sessionIds ?? [];
      if (s.open === t.open && s.total === t.total && s.bytesUp === t.bytesUp && s.bytesDown === t.bytesDown && ids.length === t.sessionIds.length) return t;
      changed = true;
      return { ...t, open: s.open, total: s.total, bytesUp: s.bytesUp, bytesDown: s.bytesDown, sessionIds: [...ids] };
    });
    if (changed) this.update({ tunnels });
  }

  #put(view: TunnelView): void {
    this.update({ tunnels: [...this.getSnapshot().tunnels.filter((t) => t.connection !== view.connection), view] });
  }

  #patch(connection: string, patch: Partial<TunnelView>): void {
    this.update({ tunnels: this.getSnapshot().tunnels.map((t) => (t.connection === connection ? { ...t, ...patch } : t)) });
  }
}
