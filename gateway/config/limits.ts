// The gateway's resource limits and timeouts (`limits:` in the configuration): how much one
// session may make the gateway buffer, how many sessions one identity may hold open, how long an
// HTTP client may take to send its request, and how often service-token revocations are looked
// for. Defaults are chosen so that ordinary clients never meet them and one caller cannot take
// the gateway's memory or connection slots from everyone else.
import { z } from 'zod';

const UNITS: Record<string, number> = { B: 1, KiB: 1024, MiB: 1024 * 1024 };

const byteSize = z.union([
  z.number().int().min(1024).max(1024 * 1024 * 1024),
  z
    .string()
    .regex(/^\d+\s*(B|KiB|MiB)$/, { message: 'expected bytes, e.g. 1048576 or "1MiB"' })
    .refine((v) => toBytes(v) >= 1024 && toBytes(v) <= 1024 * 1024 * 1024, { message: 'expected between 1KiB and 1024MiB' }),
]);

/** `limits:` as written in the file. */
export const limitsSchema = z
  .strictObject({
    /**
     * Largest Query, Parse, CopyData or CopyFail message one client may send. The gateway holds a
     * client message whole until it has judged it, so this is what one session can make it buffer.
     * 1 MiB is far above hand-written SQL and above what psql (8 KiB), libpq and JDBC (64 KiB)
     * put in one CopyData.
     */
    messageBytes: byteSize.default('1MiB'),
    /** Largest Bind or FunctionCall: parameter values (a bytea upload) are larger than SQL text. */
    bindBytes: byteSize.default('16MiB'),
    /** Open tunnels one identity (person or service token) may hold at once; the next gets HTTP 429. */
    sessionsPerIdentity: z.number().int().min(1).max(100_000).default(50),
    /** Time a client has to finish TLS and send its HTTP request line and headers. */
    headersTimeoutMs: z.number().int().min(100).max(300_000).default(10_000),
    /** Time a client has to send the rest of an API request (bodies are small JSON). */
    requestTimeoutMs: z.number().int().min(100).max(600_000).default(30_000),
    /** How often open sessions of service tokens and direct credentials are checked against the store for revocation. */
    revocationCheckMs: z.number().int().min(100).max(300_000).default(5_000),
    /**
     * http and kubernetes connections: time a client has to send a whole request head, from the
     * tunnel's opening or the head's first byte (then 408 and the connection closes). What a
     * request takes once its head is in (a held review, an upload) is not bounded.
     */
    httpHeadersTimeoutMs: z.number().int().min(100).max(600_000).default(30_000),
    /** http and kubernetes connections: an idle keep-alive connection is closed after this long without a request. */
    httpIdleTimeoutMs: z.number().int().min(100).max(3_600_000).default(300_000),
    /**
     * Time a client of the direct PostgreSQL listener has from connecting to being admitted (TLS,
     * startup, password). PostgreSQL's own authentication_timeout is 60 s; a client that knows its
     * password needs well under one.
     */
    authenticationTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
    /**
     * Connections the direct PostgreSQL listener holds at once before they are admitted; the next
     * is refused with FATAL 53300 before any of it is read, so a flood of half-open connections
     * costs the gateway neither TLS handshakes nor memory beyond this many.
     */
    unauthenticatedConnections: z.number().int().min(1).max(100_000).default(128),
    /**
     * exec on postgres connections: how long a pre-opened, never-used upstream backend waits for
     * the next exec of the same identity, connection and database before it is closed (0: none is
     * kept, every exec connects and authenticates while its client waits).
     */
    execSpareIdleMs: z.number().int().min(0).max(3_600_000).default(60_000),
  })
  .default({ messageBytes: '1MiB', bindBytes: '16MiB', sessionsPerIdentity: 50, headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, revocationCheckMs: 5_000, httpHeadersTimeoutMs: 30_000, httpIdleTimeoutMs: 300_000, authenticationTimeoutMs: 10_000, unauthenticatedConnections: 128, execSpareIdleMs: 60_000 });

/** The resolved limits every part of the gateway receives. */
export interface GatewayLimits {
  readonly messageBytes: number;
  readonly bindBytes: number;
  readonly sessionsPerIdentity: number;
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly revocationCheckMs: number;
  readonly httpHeadersTimeoutMs: number;
  readonly httpIdleTimeoutMs: number;
  readonly authenticationTimeoutMs: number;
  readonly unauthenticatedConnections: number;
  readonly execSpareIdleMs: number;
}

export function resolveLimits(input: z.output<typeof limitsSchema>): GatewayLimits {
  return Object.freeze({ ...input, messageBytes: toBytes(input.messageBytes), bindBytes: toBytes(input.bindBytes) });
}

function toBytes(v: number | string): number {
  if (typeof v === 'number') return v;
  return Number(/^\d+/.exec(v)?.[0]) * (UNITS[/[A-Za-z]+$/.exec(v)?.[0] ?? 'B'] ?? 1);
}
