// Resolves one validated `type: kubernetes` connection: reads the held credential (a bearer token
// or a client certificate and key, from a file or an environment variable) and the CA, checks
// that the PEM texts parse, and compiles the policy. Problems are reported as
// `FILE: connections.N.target.KEY: …`, never with the secret's text.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { KubernetesConnection } from '../model.js';
import { compileKubernetesPolicy, type KubernetesPolicyConfig } from '../engines/kubernetes/policy.js';

type SecretRef = { env: string } | { file: string };

interface ParsedKubernetes {
  name: string;
  type: 'kubernetes';
  description?: string | undefined;
  target: { server: string; ca?: string | undefined; token?: SecretRef | undefined; clientCert?: string | undefined; clientKey?: SecretRef | undefined };
  allow: { groups: string[] };
  policy?: KubernetesPolicyConfig | undefined;
  record: 'statements' | 'sessions';
}

interface ResolveContext {
  file: string;
  env: NodeJS.ProcessEnv;
  abs: (p: string) => string;
  resolveSecrets: boolean;
  problem: (p: string) => void;
}

/** The usable connection; each problem found is pushed through `ctx.problem`. */
export function resolveKubernetesConnection(c: ParsedKubernetes, i: number, ctx: ResolveContext): KubernetesConnection {
  const where = (key: string) => `${ctx.file}: connections.${i}.target.${key}: connection "${c.name}"`;
  const readFile = (key: string, path: string): string | undefined => {
    const p = ctx.abs(path);
    try {
      return readFileSync(p, 'utf8');
    } catch (err) {
      ctx.problem(`${where(key)}: cannot read ${p}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      return undefined;
    }
  };
  const readSecret = (key: string, ref: SecretRef): string | undefined => {
    if ('file' in ref) return readFile(key, ref.file);
    const v = ctx.env[ref.env];
    if (v === undefined || v === '') ctx.problem(`${where(key)}: environment variable ${ref.env} is not set`);
    return v === '' ? undefined : v;
  };

  const t = c.target;
  let ca: string | undefined;
  if (t.ca !== undefined) {
    ca = readFile('ca', t.ca);
    if (ca !== undefined && !parses(() => new X509Certificate(ca as string))) ctx.problem(`${where('ca')}: not a PEM certificate`);
  }
  let token: string | undefined;
  let clientCert: string | undefined;
  let clientKey: string | undefined;
  if (ctx.resolveSecrets) {
    if (t.token !== undefined) {
      token = readSecret('token', t.token)?.trim();
      // A header value cannot carry these; a token holding them is a mistake, not a credential.
      // eslint-disable-next-line no-control-regex -- control characters are what is refused
      if (token !== undefined && (token === '' || /[\s\x00-\x1f\x7f]/.test(token))) {
        ctx.problem(`${where('token')}: the token is empty or holds whitespace or control characters`);
        token = undefined;
      }
    }
    if (t.clientCert !== undefined) {
      clientCert = readFile('clientCert', t.clientCert);
      if (clientCert !== undefined && !parses(() => new X509Certificate(clientCert as string))) ctx.problem(`${where('clientCert')}: not a PEM certificate`);
    }
    if (t.clientKey !== undefined) {
      clientKey = readSecret('clientKey', t.clientKey);
      // node's message names the format problem, never the key material.
      if (clientKey !== undefined && !parses(() => createPrivateKey(clientKey as string))) ctx.problem(`${where('clientKey')}: not a PEM private key (unencrypted PKCS#8, PKCS#1 or SEC1)`);
    }
  }
  return Object.freeze({
    name: c.name,
    type: 'kubernetes',
    ...(c.description !== undefined ? { description: c.description } : {}),
    target: Object.freeze({
      server: t.server.replace(/\/+$/, ''),
      ...(ca !== undefined ? { ca } : {}),
      ...(token !== undefined ? { token } : {}),
      ...(clientCert !== undefined ? { clientCert } : {}),
      ...(clientKey !== undefined ? { clientKey } : {}),
    }),
    allow: Object.freeze({ groups: Object.freeze([...c.allow.groups]) }),
    ...(c.policy !== undefined ? { policy: compileKubernetesPolicy(c.policy) } : {}),
    record: c.record,
  });
}

function parses(f: () => unknown): boolean {
  try {
    f();
    return true;
  } catch {
    return false;
  }
}
