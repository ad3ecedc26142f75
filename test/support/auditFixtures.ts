// A session row as the audit stores it, for store and chain tests: alice over `connect`, with a
// fresh id unless one is given.
import { randomBytes } from 'node:crypto';
import type { NewSession } from '../../gateway/store/types.js';

let n = 0;

export function newSession(over: Partial<NewSession> = {}): NewSession {
  n++;
  return {
    id: `s_test${n}_${randomBytes(3).toString('hex')}`,
    connection: 'pg-prod',
    protocol: 'postgres',
    subject: 'user:alice',
    identityName: 'alice@example.com',
    email: 'alice@example.com',
    identityKind: 'human',
    groups: ['eng'],
    origin: 'connect',
    clientAddress: '127.0.0.1',
    database: 'app',
    startedAt: new Date(),
    instance: 'g_test',
    ...over,
  };
}
