// How a direct-listener credential is handed to PostgreSQL clients: a libpq keyword/value string,
// a postgresql:// URL, or the PG* environment variables libpq reads. The client always verifies
// the gateway's certificate (sslmode=verify-full) against the CA the CLI itself trusts.
import type { DirectCredential } from '../api/contract.js';
import type { Endpoint } from '../api/endpoint.js';

/**
 * libpq's sslrootcert: the CA file the CLI trusts for this gateway (--ca, SLUICE_CA, or the one
 * remembered at login), else `system` (libpq ≥ 16: the system's roots, for a publicly trusted gateway).
 */
export function sslRootCert(endpoint: Pick<Endpoint, 'caFile'>): string {
  return endpoint.caFile ?? 'system';
}

/** A value as libpq's conninfo parser reads it back: bare when it can be, else single-quoted with \ and ' escaped. */
export function quoteConninfoValue(value: string): string {
  if (value !== '' && !/[\s'\\]/.test(value)) return value;
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** `host=… port=… dbname=… user=… password=… sslmode=verify-full sslrootcert=…` */
export function conninfo(c: DirectCredential, rootCert: string): string {
  const pairs: [string, string][] = [
    ['host', c.host],
    ['port', String(c.port)],
    ['dbname', c.database],
    ['user', c.user],
    ['password', c.password],
    ['sslmode', 'verify-full'],
    ['sslrootcert', rootCert],
  ];
  return pairs.map(([k, v]) => `${k}=${quoteConninfoValue(v)}`).join(' ');
}

/** `postgresql://user:password@host:port/dbname?sslmode=verify-full&sslrootcert=…`, every part percent-encoded. */
export function postgresUrl(c: DirectCredential, rootCert: string): string {
  const host = c.host.includes(':') ? `[${c.host}]` : encodeURIComponent(c.host);
  const query = new URLSearchParams({ sslmode: 'verify-full', sslrootcert: rootCert }).toString().replace(/\+/g, '%20');
  return `postgresql://${encodeURIComponent(c.user)}:${encodeURIComponent(c.password)}@${host}:${c.port}/${encodeURIComponent(c.database)}?${query}`;
}

/** The environment libpq-based clients read, and DATABASE_URL for the rest. */
export function directEnv(c: DirectCredential, rootCert: string): Record<string, string> {
  return {
    PGHOST: c.host,
    PGPORT: String(c.port),
    PGDATABASE: c.database,
    PGUSER: c.user,
    PGPASSWORD: c.password,
    PGSSLMODE: 'verify-full',
    PGSSLROOTCERT: rootCert,
    DATABASE_URL: postgresUrl(c, rootCert),
  };
}
