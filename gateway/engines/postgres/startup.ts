// What the engine decides about a client's startup, apart from any socket: which database it may
// open, which of its startup parameters travel to the target, what the client is told once the
// upstream is ready, and how a CancelRequest is routed. Kept apart from the session so these
// rules read in one place.
import { clientText, NAME_MAX_CHARS } from '../../clientText.js';
import type { PgSessionContext } from './context.js';
import { decodeParameterStatus, encodeAuthenticationOk, encodeBackendKeyData, encodeNegotiateProtocolVersion, encodeParameterStatus, encodeReadyForQuery } from './codec/backend.js';
import type { TransactionStatus } from './codec/backend.js';
import type { FirstMessage } from './codec/frontend.js';
import type { CancelKeyRegistry } from './engine.js';
import { cancelUpstream } from './upstream.js';
import { StartupRefusal, startupSettings, upstreamApplicationName } from './startupSettings.js';

export { StartupRefusal };

/** An accepted startup. */
export interface AcceptedStartup {
  /** What `SessionAudit.onSessionStart` receives. */
  readonly audit: { readonly target: string; readonly clientUser: string; readonly clientApplication?: string; readonly clientSettings?: Readonly<Record<string, string>> };
  /** The settings forwarded from the startup (startupSettings.ts), by their upstream names. */
  readonly settings: ReadonlyMap<string, string>;
  /** Parameters for the upstream StartupMessage besides user and database. */
  readonly upstreamParameters: readonly (readonly [string, string])[];
  /**
   * The application_name the target reports for this session (the identity, then the client's own
   * name) and the ParameterStatus the client is shown for it instead: the client's own name, as a
   * server would report it (drivers expose it, and their tests compare it with what they set).
   */
  readonly applicationName: ApplicationNameShown;
  /** The bytes that complete the client's startup once the upstream is ready. */
  greeting(startupFrames: readonly Buffer[], key: { pid: number; secret: number }, status: TransactionStatus): Buffer;
}

export interface ApplicationNameShown {
  readonly upstream: string;
  /** ParameterStatus application_name with the client's own name. */
  readonly frame: Buffer;
}

/** `frame` unless it is a ParameterStatus of exactly the gateway's application_name. */
export function showApplicationName(frame: Buffer, shown: ApplicationNameShown): Buffer {
  if (frame[0] !== 0x53) return frame;
  const p = decodeParameterStatus(frame.subarray(5));
  return p.name === 'application_name' && p.value === shown.upstream ? shown.frame : frame;
}

/**
 * Checks a StartupMessage against the connection and composes the upstream startup.
 * @throws StartupRefusal for a missing user, a replication request, a database the connection
 * does not serve or a setting that is not forwarded (startupSettings.ts).
 */
export function acceptStartup(m: Extract<FirstMessage, { kind: 'startup' }>, ctx: PgSessionContext): AcceptedStartup {
  const { connection, identity } = ctx;
  const user = m.params.get('user');
  // PostgreSQL's own wording and code for this case.
  if (!user) throw new StartupRefusal('28000', 'no PostgreSQL user name specified in startup packet');
  const replication = m.params.get('replication')?.toLowerCase();
  if (replication !== undefined && !['false', 'off', 'no', '0'].includes(replication)) {
    throw new StartupRefusal('0A000', `replication connections are not served by connection ${connection.name}`);
  }
  // The client's user name means nothing here (the tunnel identified the caller), so a missing
  // database means the connection's own rather than PostgreSQL's default of the user name.
  const database = m.params.get('database') || connection.target.database;
  if (database !== connection.target.database && !connection.databases.includes(database)) {
    // Naming the served databases tells the caller what to type instead; they are no secret from
    // someone already allowed on the connection.
    const served = [connection.target.database, ...connection.databases.filter((d) => d !== connection.target.database)];
    throw new StartupRefusal('3D000', `connection "${connection.name}" does not serve database "${clientText(database, NAME_MAX_CHARS)}"; it serves: ${served.join(', ')}`);
  }
  const { settings, application } = startupSettings(m.params);
  const upstreamName = upstreamApplicationName(identity.name, application);
  const upstreamParameters: [string, string][] = [['application_name', upstreamName], ...settings];
  const applicationName: ApplicationNameShown = { upstream: upstreamName, frame: encodeParameterStatus('application_name', (application ?? '').replaceAll('\0', '')) };
  const unrecognized = [...m.params.keys()].filter((name) => name.startsWith('_pq_.'));
  // Recorded, never forwarded (the target sees the gateway's own user).
  const clientUser = clientText(user, NAME_MAX_CHARS);
  const clientSettings = Object.fromEntries([...settings].map(([name, value]) => [name, clientText(value, NAME_MAX_CHARS)]));
  return {
    audit: {
      target: database,
      clientUser,
      ...(application !== undefined ? { clientApplication: clientText(application, NAME_MAX_CHARS) } : {}),
      ...(settings.size > 0 ? { clientSettings } : {}),
    },
    settings,
    upstreamParameters,
    applicationName,
    greeting(startupFrames, key, status) {
      const parts: Buffer[] = [];
      // Protocol 3.0 is all the gateway speaks; a client asking for more (or for protocol
      // options) is told so, as PostgreSQL would, before authentication completes.
      if (m.minor > 0 || unrecognized.length > 0) parts.push(encodeNegotiateProtocolVersion(0, unrecognized));
      parts.push(encodeAuthenticationOk(), ...startupFrames.map((f) => showApplicationName(f, applicationName)), encodeBackendKeyData(key.pid, key.secret), encodeReadyForQuery(status));
      return Buffer.concat(parts);
    },
  };
}

/**
 * Forwards a CancelRequest for a gateway-issued key to the target, with the target's real key.
 * Unknown keys and wrong secrets are dropped silently, as PostgreSQL does. Never throws.
 */
export async function forwardCancel(
  cancels: CancelKeyRegistry,
  pid: number,
  secret: number,
  ctx: PgSessionContext,
  signal: AbortSignal,
): Promise<void> {
  const route = cancels.lookup(pid, secret);
  // A key only cancels through a tunnel of the same connection opened by the same identity: the
  // key alone is a bearer secret, and this keeps a leaked one from crossing that boundary.
  if (!route || route.connectionName !== ctx.connection.name || route.subject !== ctx.identity.subject) {
    ctx.log.debug('postgres cancel request for an unknown key dropped');
    return;
  }
  // A statement held for review has not reached the target: the gateway cancels it itself, and a
  // cancel sent on to the target could only hit the client's next statement.
  if (route.cancelHeld?.() === true || !route.upstreamKey) return;
  try {
    await cancelUpstream({
      connectionName: route.connectionName,
      target: route.target,
      pid: route.upstreamKey.pid,
      secret: route.upstreamKey.secret,
      timeoutMs: ctx.connectTimeoutMs,
      signal,
    });
    ctx.log.info({ connection: route.connectionName }, 'postgres cancel request forwarded');
  } catch (err) {
    ctx.log.warn({ connection: route.connectionName }, `postgres cancel request not delivered: ${(err as Error).message}`);
  }
}
