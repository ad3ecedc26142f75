// The demo target for `npm run demo`: an embedded PostgreSQL (PGlite, Postgres compiled to WASM)
// served over TCP by pglite-socket and seeded with fake customers (with credit card numbers and
// emails for the masking demo) and orders. No PostgreSQL install needed.
//
// What pglite-socket is, measured with pglite 0.5.14 / pglite-socket 0.2.17:
// - Authentication: none. PGlite answers any StartupMessage with AuthenticationOk (trust); it
//   only insists on a non-empty user name. Whatever user and database the client names, the
//   session is user `postgres` on database `postgres`, so the password returned here is a
//   placeholder that is never checked. The gateway connects with sslmode `disable`: an SSLRequest
//   is answered `N`. A CancelRequest is read and ignored.
// - Connections: PGlite is one backend. pglite-socket multiplexes several sockets onto it
//   (`maxConnections`, default 1; over the limit Node closes the socket without any reply), so all
//   connections share one session: temp tables, SET and prepared statements are visible to all.
// - While one connection is inside a transaction, every other connection's messages — even a new
//   connection's startup — wait until that transaction ends. An idle-in-transaction psql stalls
//   the whole demo; a client that disconnects mid-transaction is rolled back.
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

export interface DemoDatabase {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  /** Not checked by PGlite (trust); present because a target needs one. */
  readonly password: string;
  close(): Promise<void>;
}

/** Each gateway session opens its own upstream connection; a handful of concurrent ones suffice. */
const MAX_CONNECTIONS = 16;

/**
 * Starts PGlite (in memory, or persisted in `dataDir`), seeds it if empty, and serves it on
 * `host:port` (default 127.0.0.1 and a free port; read the chosen one from the result).
 */
export async function startDemoDatabase(opts: { dataDir?: string; host?: string; port?: number } = {}): Promise<DemoDatabase> {
  const host = opts.host ?? '127.0.0.1';
  const db = new PGlite(opts.dataDir === undefined ? {} : { dataDir: opts.dataDir });
  let server: PGLiteSocketServer | undefined;
  try {
    await db.waitReady;
    await seedDemoData(db);
    server = new PGLiteSocketServer({ db, host, port: opts.port ?? 0, maxConnections: MAX_CONNECTIONS });
    await server.start();
  } catch (err) {
    await db.close().catch(() => undefined);
    throw err;
  }
  const running = server;
  // getServerConn() is "host:port" once listening, with the port the OS picked for port 0.
  const port = Number(running.getServerConn().split(':').pop());
  let closed = false;
  return {
    host,
    port,
    database: 'postgres',
    user: 'postgres',
    password: 'postgres',
    async close() {
      if (closed) return;
      closed = true;
      try {
        await running.stop();
      } finally {
        await db.close();
      }
    },
  };
}

interface Customer {
  name: string;
  email: string;
  card: string;
  country: string;
}

// Card numbers are the networks' published test numbers: Luhn-valid, never chargeable.
const CUSTOMERS: readonly Customer[] = [
  { name: 'Ada Lovelace', email: 'ada.lovelace@example.com', card: '4111111111111111', country: 'GB' },
  { name: 'Grace Hopper', email: 'grace.hopper@example.com', card: '5555555555554444', country: 'US' },
  { name: 'Alan Turing', email: 'alan.turing@example.com', card: '4012888888881881', country: 'GB' },
  { name: 'Katherine Johnson', email: 'katherine.johnson@example.com', card: '378282246310005', country: 'US' },
  { name: 'Edsger Dijkstra', email: 'edsger.dijkstra@example.com', card: '6011111111111117', country: 'NL' },
  { name: 'Barbara Liskov', email: 'barbara.liskov@example.com', card: '5105105105105100', country: 'US' },
  { name: 'Donald Knuth', email: 'donald.knuth@example.com', card: '4242424242424242', country: 'US' },
  { name: 'Margaret Hamilton', email: 'margaret.hamilton@example.com', card: '371449635398431', country: 'US' },
  { name: 'Tim Berners-Lee', email: 'tim.bernerslee@example.com', card: '3566002020360505', country: 'GB' },
  { name: 'Radia Perlman', email: 'radia.perlman@example.com', card: '2223003122003222', country: 'US' },
  { name: 'Linus Torvalds', email: 'linus.torvalds@example.com', card: '4000056655665556', country: 'FI' },
  { name: 'Frances Allen', email: 'frances.allen@example.com', card: '6011000990139424', country: 'US' },
  { name: 'Niklaus Wirth', email: 'niklaus.wirth@example.com', card: '5200828282828210', country: 'CH' },
  { name: 'Sophie Wilson', email: 'sophie.wilson@example.com', card: '3056930009020004', country: 'GB' },
  { name: 'Bjarne Stroustrup', email: 'bjarne.stroustrup@example.com', card: '4000002500003155', country: 'DK' },
  { name: 'Hedy Lamarr', email: 'hedy.lamarr@example.com', card: '6200000000000005', country: 'AT' },
  { name: 'Guido van Rossum', email: 'guido.vanrossum@example.com', card: '4000000760000002', country: 'NL' },
  { name: 'Shafi Goldwasser', email: 'shafi.goldwasser@example.com', card: '5454545454545454', country: 'IL' },
  { name: 'Yukihiro Matsumoto', email: 'yukihiro.matsumoto@example.com', card: '3530111333300000', country: 'JP' },
  { name: 'Ines Montani', email: 'ines.montani@example.com', card: '4000002760003184', country: 'DE' },
];

const ORDER_COUNT = 50;
const ORDER_STATUSES = ['paid', 'shipped', 'delivered', 'refunded', 'pending'] as const;

/** Creates and fills the demo tables unless they already hold data (a persisted dataDir). */
async function seedDemoData(db: PGlite): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.exec(`
      CREATE TABLE IF NOT EXISTS customers (
        id          integer PRIMARY KEY,
        name        text NOT NULL,
        email       text NOT NULL UNIQUE,
        card_number text NOT NULL,
        country     char(2) NOT NULL,
        created_at  timestamptz NOT NULL
      );
      CREATE TABLE IF NOT EXISTS orders (
        id           integer PRIMARY KEY,
        customer_id  integer NOT NULL REFERENCES customers (id),
        amount_cents integer NOT NULL CHECK (amount_cents > 0),
        status       text NOT NULL,
        created_at   timestamptz NOT NULL
      );
    `);
    const { rows } = await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM customers');
    if (rows[0]?.n !== 0) return;
    // Fixed values rather than random ones, so every demo and test sees the same data.
    const start = Date.UTC(2025, 0, 6, 9, 0, 0);
    const day = 86_400_000;
    for (const [i, c] of CUSTOMERS.entries()) {
      await tx.query(
        'INSERT INTO customers (id, name, email, card_number, country, created_at) VALUES ($1, $2, $3, $4, $5, $6)',
        [i + 1, c.name, c.email, c.card, c.country, new Date(start + i * 3 * day)],
      );
    }
    for (let i = 0; i < ORDER_COUNT; i++) {
      await tx.query(
        'INSERT INTO orders (id, customer_id, amount_cents, status, created_at) VALUES ($1, $2, $3, $4, $5)',
        [
          i + 1,
          ((i * 7) % CUSTOMERS.length) + 1,
          500 + ((i * 7919) % 49_500),
          ORDER_STATUSES[i % ORDER_STATUSES.length],
          new Date(start + 60 * day + i * (day / 2)),
        ],
      );
    }
  });
}
