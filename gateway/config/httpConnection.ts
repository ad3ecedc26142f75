// Resolves one validated `type: http` connection: reads the injected headers' secrets (file or
// environment variable) and the CA file, and compiles the http policy. Problems are reported as
// `FILE: connections.N.target.headers.NAME: …`, never with a secret's text.
import { readFileSync } from 'node:fs';
import type { HttpConnection } from '../model.js';
import { compileHttpPolicy, type HttpPolicyConfig } from '../engines/http/policy.js';

interface ParsedHttp {
  name: string;
  type: 'http';
  description?: string | undefined;
  target: { url: string; ca?: string | undefined; headers: Record<string, { env: string } | { file: string }> };
  allow: { groups: string[] };
  policy?: HttpPolicyConfig | undefined;
  record: 'statements' | 'sessions';
}

/** A header value must not carry CR, LF or NUL (it would split the request). */
const UNSAFE_VALUE = /[\r\n\0]/;

export function resolveHttpConnection(
  c: ParsedHttp,
  i: number,
  ctx: { file: string; env: NodeJS.ProcessEnv; abs: (p: string) => string; resolveSecrets: boolean; hashKey: Buffer | undefined; problem: (p: string) => void },
): HttpConnection {
  const headers: Record<string, string> = {};
  for (const [name, ref] of Object.entries(c.target.headers)) {
    const where = `${ctx.file}: connections.${i}.target.headers.${name}: connection "${c.name}"`;
    if (!ctx.resolveSecrets) continue;
    let value: string | undefined;
    if ('env' in ref) {
      value = ctx.env[ref.env];
      if (value === undefined || value === '') ctx.problem(`${where}: environment variable ${ref.env} is not set`);
    } else {
      const p = ctx.abs(ref.file);
      try {
        value = readFileSync(p, 'utf8').replace(/\r?\n$/, '');
      } catch (err) {
        ctx.problem(`${where}: cannot read ${p}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      }
    }
    if (value === undefined || value === '') continue;
    if (UNSAFE_VALUE.test(value)) ctx.problem(`${where}: the value holds a line break or NUL, which a header cannot carry`);
    else headers[name] = value;
  }
  let ca: string | undefined;
  if (c.target.ca !== undefined) {
    const p = ctx.abs(c.target.ca);
    try {
      ca = readFileSync(p, 'utf8');
    } catch (err) {
      ctx.problem(`${ctx.file}: connections.${i}.target.ca: connection "${c.name}": cannot read ${p}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
  const usesHash = (c.policy?.rules ?? []).some((r) => r.mask?.strategy === 'hash');
  if (usesHash && ctx.hashKey === undefined && ctx.resolveSecrets) ctx.problem(`${ctx.file}: connections.${i}.policy: connection "${c.name}": a mask rule uses \`strategy: hash\`, which needs the gateway masking key`);
  return Object.freeze({
    name: c.name,
    type: 'http',
    ...(c.description !== undefined ? { description: c.description } : {}),
    target: Object.freeze({ url: new URL(c.target.url).origin, ...(ca !== undefined ? { ca } : {}), headers: Object.freeze(headers) }),
    allow: Object.freeze({ groups: Object.freeze([...c.allow.groups]) }),
    ...(c.policy !== undefined ? { policy: compileHttpPolicy(c.policy, ctx.hashKey) } : {}),
    record: c.record,
  });
}
