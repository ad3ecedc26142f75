// The registry's kubernetes entry besides the engine: how a session's target reads in the trail
// (the API server's origin) and how the connection shows in `GET /v1/connections` (its policy in
// one line; never the token, the client key nor the server's address).
import type { KubernetesConnection } from '../../model.js';
import type { EngineEntry } from '../types.js';
import { describeKubernetesPolicy } from './policy.js';

export const kubernetesEntry: Omit<EngineEntry, 'engine'> = {
  describeTarget: (c) => (c as KubernetesConnection).target.server,
  connectionInfo(connection) {
    const c = connection as KubernetesConnection;
    return {
      name: c.name,
      type: 'kubernetes',
      ...(c.description ? { description: c.description } : {}),
      policy: describeKubernetesPolicy(c.policy),
      record: c.record,
    };
  },
};
