// The registry's ssh entry besides the engine: how a session's target reads in the trail and how
// the connection shows in `GET /v1/connections` (never the key; the user it logs in as).
import type { ConnectionInfo } from '../../../src/api/contract.js';
import type { SshConnection } from '../../model.js';
import type { EngineEntry } from '../types.js';
import { describeSshPolicy } from './policy.js';

export const sshEntry: Omit<EngineEntry, 'engine'> = {
  describeTarget: (c) => {
    const t = (c as SshConnection).target;
    return `${t.user}@${t.host}:${t.port}`;
  },
  connectionInfo(connection) {
    const c = connection as SshConnection;
    // The API's ssh fields are the CLI side's to shape; until then the postgres fields stay empty.
    return {
      name: c.name,
      type: c.type,
      ...(c.description ? { description: c.description } : {}),
      database: '',
      databases: [],
      user: c.target.user,
      policy: describeSshPolicy(c.policy),
      record: c.record,
    } as unknown as ConnectionInfo;
  },
};
