// The http engine on its own, fed client connections as the tunnel would, against the real HTTPS
// target: what it does when the audit trail cannot record, when the service is unreachable, when a
// review is due but no review service exists, and what it records.
import { createServer, type AddressInfo, type Server } from 'node:net';
import pino from 'pino';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { AuditUnavailableError, type SessionAudit } from '../../../gateway/audit/contract.js';
import { createHttpEngine } from '../../../gateway/engines/http/engine.js';
import { compileHttpPolicy, httpPolicySchema } from '../../../gateway/engines/http/policy.js';
import type { HttpConnection } from '../../../gateway/model.js';
import { coreAuditNoops } from '../../support/auditStubs.js';
import { startHttpTarget, type HttpTarget } from '../../support/httpTarget.js';

const SECRET = 'Bearer engine-test-secret-42';
let target: HttpTarget;
beforeAll(async () => {
  target = await startHttpTarget();
});
afterAll(() => target?.close());

interface Recorded {
  events: { kind: string; data: Record<string, unknown> }[];
  outcomes: unknown[];
}

async function serve(connection: HttpConnection, audit: Partial<SessionAudit>): Promise<{ url: string; recorded: Recorded; close(): Promise<void> }> {
  const engine = createHttpEngine();
  const recorded: Recorded = { events: [], outcomes: [] };
  const full: SessionAudit = {
    ...coreAuditNoops,
    onSessionStart: () => undefined,
    onSessionEnd: () => undefined,
    onEvent: (kind, data) => recorded.events.push({ kind, data }),
    onOutcome: (o) => recorded.outcomes.push(o),
    ...audit,
  };
  const aborter = new AbortController();
  const server: Server = createServer((socket) => {
    void engine.handle(socket, { id: 's_test', identity: { subject: 'token:ci', name: 'ci', groups: ['eng'], kind: 'service' }, connection, audit: full, log: pino({ level: 'silent' }), connectTimeoutMs: 2000 }, aborter.signal);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    recorded,
    close: async () => {
      aborter.abort();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function connection(url: string, rules: unknown[] = []): HttpConnection {
  return {
    name: 'api',
    type: 'http',
    target: { url, ca: target.ca, headers: { Authorization: SECRET } },
    allow: { groups: ['eng'] },
    record: 'statements',
    policy: compileHttpPolicy(httpPolicySchema.parse({ rules })),
  };
}

describe('http engine', () => {
  it('answers 503 and sends nothing when the audit trail cannot record the request', async () => {
    const s = await serve(connection(target.url), {
      onAction: () => {
        throw new AuditUnavailableError();
      },
    });
    try {
      const seen = target.log.length;
      const res = await request(`${s.url}/echo`);
      expect(res.statusCode).toBe(503);
      expect(JSON.parse(await res.body.text()).error.code).toBe('audit_unavailable');
      expect(target.log.length).toBe(seen);
    } finally {
      await s.close();
    }
  });

  it('answers 502 naming the origin, never the credential, when the service is unreachable', async () => {
    const dead = createServer();
    await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
    const port = (dead.address() as AddressInfo).port;
    await new Promise<void>((resolve) => dead.close(() => resolve()));
    const s = await serve(connection(`https://127.0.0.1:${port}`), {});
    try {
      const res = await request(`${s.url}/echo`);
      const text = await res.body.text();
      expect(res.statusCode).toBe(502);
      expect(text).toContain(`https://127.0.0.1:${port}`);
      expect(text).not.toContain('engine-test-secret');
      expect(JSON.stringify(s.recorded)).not.toContain('engine-test-secret');
      expect(s.recorded.outcomes).toContainEqual(expect.objectContaining({ status: 'error', code: '502' }));
    } finally {
      await s.close();
    }
  });

  it('refuses a reviewed request with 403 when the gateway has no review service', async () => {
    const s = await serve(connection(target.url, [{ id: 'r', review: { methods: ['POST'], approvers: ['finance'] } }]), {});
    try {
      const seen = target.log.length;
      const res = await request(`${s.url}/v1/refunds`, { method: 'POST', body: '{}' });
      expect(res.statusCode).toBe(403);
      expect(JSON.parse(await res.body.text()).error.code).toBe('review_unavailable');
      expect(target.log.length).toBe(seen);
    } finally {
      await s.close();
    }
  });

  it('refuses a WebSocket upgrade on a path a mask rule covers (a raw stream cannot be masked)', async () => {
    const s = await serve(connection(target.url, [{ id: 'pii', mask: { json: ['$..email'], paths: ['/ws'] } }]), {});
    try {
      const seen = target.log.length;
      const ws = new WebSocket(`${s.url.replace('http', 'ws')}/ws`);
      ws.on('error', () => undefined);
      const status = await new Promise<number>((resolve) => ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)));
      ws.terminate();
      expect(status).toBe(403);
      expect(target.log.length).toBe(seen);
    } finally {
      await s.close();
    }
  });

  it('records the request and response with allow-listed headers and scrubbed samples', async () => {
    const s = await serve(connection(target.url, [{ id: 'b', block: { paths: ['/admin/**'] } }]), {});
    try {
      const res = await request(`${s.url}/echo/rec?x=1`, { method: 'POST', body: 'hello', headers: { 'content-type': 'text/plain', cookie: 'session=abc', authorization: 'Bearer mine' } });
      expect(res.statusCode).toBe(200);
      await res.body.text();
      const req = s.recorded.events.find((e) => e.kind === 'http.request')!;
      expect(req.data).toMatchObject({ method: 'POST', target: '/echo/rec?x=1', path: '/echo/rec', headers: { 'content-type': 'text/plain' } });
      expect(Object.keys(req.data.headers as object)).not.toContain('cookie');
      expect(Object.keys(req.data.headers as object)).not.toContain('authorization');
      const resp = s.recorded.events.find((e) => e.kind === 'http.response')!;
      expect(resp.data).toMatchObject({ status: 200, result: 'forwarded', requestSample: 'hello', headers: { 'content-type': 'application/json' } });
      // The echo quoted the injected header: scrubbed in the sample as for the client.
      expect(String(resp.data.responseSample)).toContain('*'.repeat(SECRET.length));
      expect(JSON.stringify(s.recorded)).not.toContain('engine-test-secret');
    } finally {
      await s.close();
    }
  });
});
