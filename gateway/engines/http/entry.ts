// The registry's http entry besides the engine: how a session's target reads in the trail (the
// service's origin) and how the connection shows in `GET /v1/connections`: the origin and the
// names of the injected headers, never their values.
import type { ConnectionInfo } from '../../../src/api/contract.js';
import type { HttpConnection } from '../../model.js';
import type { EngineEntry } from '../types.js';
import { describeHttpPolicy } from './policy.js';

export const httpEntry: Omit<EngineEntry, 'engine'> = {
  describeTarget: (c) => (c as HttpConnection).target.url,
  connectionInfo(connection) {
    const c = connection as HttpConnection;
    const info: ConnectionInfo = {
      name: c.name,
      type: 'http',
      ...(c.description ? { description: c.description } : {}),
      url: c.target.url,
      injectedHeaders: Object.keys(c.target.headers),
      policy: describeHttpPolicy(c.policy),
      record: c.record,
    };
    return info;
  },
};
