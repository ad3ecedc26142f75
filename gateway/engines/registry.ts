// Maps a connection's type to the engine that speaks its protocol. Engines are created once
// per gateway process because they hold cross-session state (e.g. PostgreSQL cancel keys).
import { createPostgresEngine } from './postgres/engine.js';
import type { Connection } from '../model.js';
import type { Engine } from './types.js';

const engines: Record<Connection['type'], Engine> = {
  postgres: createPostgresEngine(),
};

export function engineFor(connection: Connection): Engine {
  return engines[connection.type];
}
