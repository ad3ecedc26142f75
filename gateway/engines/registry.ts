// Maps a connection's type to the engine that speaks its protocol. Engines are created once
// per gateway process because they hold cross-session state (e.g. PostgreSQL cancel keys).
import { createPostgresEngine } from './postgres/engine.js';
import { createSshEngine } from './ssh/engine.js';
import type { Connection } from '../model.js';
import type { Engine } from './types.js';

/** The gateway's state directory, where engines keep what must survive a restart (the ssh host key). */
let stateDir: string | undefined;

/** Called once at startup, before the first session. */
export function useStateDir(dir: string): void {
  stateDir = dir;
}

const engines: Record<Connection['type'], Engine> = {
  postgres: createPostgresEngine(),
  ssh: createSshEngine({
    stateDir: () => {
      if (stateDir === undefined) throw new Error('the ssh engine needs the state directory (useStateDir) before its first session');
      return stateDir;
    },
  }),
};

export function engineFor(connection: Connection): Engine {
  return engines[connection.type];
}
