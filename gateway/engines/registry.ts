// Maps a connection's type to the engine that speaks its protocol and what the gateway core needs
// to know of it without reading protocol fields (docs/architecture.md). Engines are created once
// per gateway process because they hold cross-session state (e.g. PostgreSQL cancel keys).
import type { Connection } from '../model.js';
import type { GatewaySessionAudit } from '../sessionAudit.js';
import { postgresEntry } from './postgres/context.js';
import { createPostgresEngine, type PostgresEngine } from './postgres/engine.js';
import { createHttpEngine } from './http/engine.js';
import { httpEntry } from './http/entry.js';
import { createSshEngine } from './ssh/engine.js';
import { sshEntry } from './ssh/entry.js';
import { createKubernetesEngine } from './kubernetes/engine.js';
import { kubernetesEntry } from './kubernetes/entry.js';
import type { EngineEntry } from './types.js';

/** The gateway's state directory, where engines keep what must survive a restart (the ssh host key). */
let stateDir: string | undefined;

/** Called once at startup, before the first session. */
export function useStateDir(dir: string): void {
  stateDir = dir;
}

function requireStateDir(): string {
  if (stateDir === undefined) throw new Error('the ssh engine needs the state directory (useStateDir) before its first session');
  return stateDir;
}

const postgres = createPostgresEngine();

const entries: Record<Connection['type'], EngineEntry<GatewaySessionAudit>> = {
  postgres: { engine: postgres, ...postgresEntry },
  ssh: { engine: createSshEngine({ stateDir: requireStateDir }), ...sshEntry(requireStateDir) },
  kubernetes: { engine: createKubernetesEngine(), ...kubernetesEntry },
  http: { engine: createHttpEngine(), ...httpEntry },
};

/** The PostgreSQL engine itself, for the direct listener's CancelRequests (which name no connection). */
export function postgresEngine(): PostgresEngine {
  return postgres;
}

export function engineEntryFor(connection: Connection): EngineEntry<GatewaySessionAudit> {
  return entries[connection.type];
}

export function engineFor(connection: Connection): EngineEntry<GatewaySessionAudit>['engine'] {
  return entries[connection.type].engine;
}

/** What a session on this connection reaches by default, in the trail's words (sessions refused before their engine ran). */
export function describeTarget(connection: Connection): string {
  return entries[connection.type].describeTarget(connection);
}
