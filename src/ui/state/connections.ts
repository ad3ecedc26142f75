// The connections the gateway lets the user open, and the filter typed over them (name, type,
// description). The list is reloaded by the model's poller while the Connections view is shown.
import type { ConnectionInfo } from '../../api/contract.js';
import type { Gateway } from '../../api/gateway.js';
import { Store } from './store.js';

export interface ConnectionsState {
  /** Undefined until the first answer. */
  all?: readonly ConnectionInfo[];
  filter: string;
  /** `all` narrowed by `filter`. */
  visible: readonly ConnectionInfo[];
}

export function matchesConnection(c: ConnectionInfo, filter: string): boolean {
  const words = filter.toLowerCase().split(/\s+/).filter(Boolean);
  const hay = `${c.name} ${c.type} ${c.description ?? ''}`.toLowerCase();
  return words.every((w) => hay.includes(w));
}

export class ConnectionsStore extends Store<ConnectionsState> {
  constructor(private readonly gateway: Pick<Gateway, 'connections'>) {
    super({ filter: '', visible: [] });
  }

  async load(): Promise<void> {
    const { connections } = await this.gateway.connections();
    this.#set(connections, this.getSnapshot().filter);
  }

  setFilter(filter: string): void {
    this.#set(this.getSnapshot().all, filter);
  }

  #set(all: readonly ConnectionInfo[] | undefined, filter: string): void {
    this.update({ all, filter, visible: (all ?? []).filter((c) => matchesConnection(c, filter)) });
  }
}
