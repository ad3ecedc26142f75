// Attacks on an http connection's block rules through WebDAV: a MOVE or COPY to an allowed path
// whose `Destination` header names a blocked one (absolute or origin form, dot segments and
// percent-encoding inside it), and a MOVE out of a path where DELETE is blocked. A WebDAV server
// (Apache mod_dav, nginx's dav module, IIS) writes at the Destination, so a rule that judged only
// the request line would be walked past. Sent by the real curl through `sluice connect`; each
// refusal must be absent from the service's access log and present in the exported trail.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpCorpus, type HttpCorpus } from '../support/httpCorpus.js';

let c: HttpCorpus;

beforeAll(async () => {
  c = await startHttpCorpus([
    { id: 'internal', block: { paths: ['/internal/**'] } },
    { id: 'read-only', block: { methods: ['DELETE', 'PUT'], paths: ['/admin/**'] } },
  ]);
}, 60_000);

afterAll(async () => {
  await c?.stop();
});

async function refused(args: string[], status: number, rule: string): Promise<string> {
  const seen = c.target.log.length;
  const r = await c.curl(args);
  expect(r.status, r.headers + r.body).toBe(status);
  expect(r.headers).toMatch(/sluice-refusal: /i);
  expect(JSON.parse(r.body).error.rule).toBe(rule);
  expect(c.target.log.slice(seen)).toEqual([]);
  return JSON.parse(r.body).error.message as string;
}

describe('a Destination header is judged where the service writes', () => {
  it.each([
    ['MOVE', 'http://svc.internal/internal/keys'],
    ['COPY', 'http://svc.internal/internal/keys'],
    ['MOVE', '/internal/keys'],
    ['COPY', 'https://elsewhere:8443/public/../internal/keys'],
    ['MOVE', 'http://svc/%69nternal/keys'],
    ['COPY', 'http://svc/INTERNAL/keys'],
  ])('%s /public/notes to %s', async (method, dest) => {
    const message = await refused(['-X', method, '-H', `Destination: ${dest}`, `${c.base}/public/notes`], 403, 'internal');
    expect(message).toMatch(/read as \w+ \/internal\/keys/i);
  });

  it('a MOVE out of a path where DELETE is blocked, and a COPY into one where PUT is', async () => {
    await refused(['-X', 'MOVE', '-H', 'Destination: /public/x', `${c.base}/admin/users/1`], 403, 'read-only');
    await refused(['-X', 'COPY', '-H', 'Destination: /admin/users/9', `${c.base}/public/x`], 403, 'read-only');
  });

  it('a Destination that cannot be judged is refused with 400', async () => {
    await refused(['-X', 'MOVE', '-H', 'Destination: http://svc/internal%2Fkeys', `${c.base}/public/notes`], 400, 'http.unjudgeable-request');
    await refused(['-X', 'COPY', '-H', 'Destination: internal/keys', `${c.base}/public/notes`], 400, 'http.unjudgeable-request');
  });

  it('a MOVE and COPY between allowed paths reach the service, Destination as sent', async () => {
    const r = await c.curl(['-X', 'MOVE', '-H', 'Destination: http://svc/public/b', `${c.base}/public/a`]);
    expect(r.headers).not.toMatch(/sluice-refusal/i);
    expect(c.target.log.at(-1)).toMatchObject({ method: 'MOVE', target: '/public/a', headers: { destination: 'http://svc/public/b' } });
  });

  it('the refusals are in the trail with their rules', async () => {
    const trail = await c.trail();
    for (const text of ['MOVE /public/notes', 'COPY /public/notes', 'MOVE /admin/users/1', 'COPY /public/x']) expect(trail, text).toContain(`"text":"${text}"`);
    expect(trail).toContain('"rule":"internal"');
    expect(trail).toContain('"rule":"read-only"');
  });
});
