// The registry's ssh entry besides the engine: how a session's target reads in the trail and how
// the connection shows in `GET /v1/connections`: the user the gateway logs in as and the gateway's
// own host key (what a local ssh client sees on the tunnel), never the held key or the target's pin.
import type { ConnectionInfo } from '../../../src/api/contract.js';
import type { SshConnection } from '../../model.js';
import type { EngineEntry } from '../types.js';
import { gatewayHostKey } from './hostKey.js';
import { describeSshPolicy } from './policy.js';

export function sshEntry(stateDir: () => string): Omit<EngineEntry, 'engine'> {
  return {
    describeTarget: (c) => {
      const t = (c as SshConnection).target;
      return `${t.user}@${t.host}:${t.port}`;
    },
    connectionInfo(connection) {
      const c = connection as SshConnection;
      const info: ConnectionInfo = {
        name: c.name,
        type: c.type,
        ...(c.description ? { description: c.description } : {}),
        user: c.target.user,
        hostKey: gatewayHostKey(stateDir()).publicKey,
        policy: describeSshPolicy(c.policy),
        record: c.record,
      };
      return info;
    },
  };
}
