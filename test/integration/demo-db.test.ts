// The embedded demo database: seeded once, reachable by the pg driver and by real psql, several
// connections at a time, and persistent across restarts when given a dataDir.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoDatabase, type DemoDatabase } from '../../gateway/dev/demoDb.js';
import { ensureProgram, PG_BIN_DIR } from '../support/pgCluster.js';

const execFileAsync = promisify(execFile);

function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  return sum % 10 === 0;
}

async function connect(demo: DemoDatabase): Promise<pg.Client> {
  const client = new pg.Client({ host: demo.host, port: demo.port, database: demo.database, user: demo.user, password: demo.password });
  await client.connect();
  return client;
}

async function counts(demo: DemoDatabase): Promise<{ customers: number; orders: number }> {
  const client = await connect(demo);
  try {
    const { rows } = await client.query<{ customers: number; orders: number }>(
      'select (select count(*)::int from customers) as customers, (select count(*)::int from orders) as orders',
    );
    return rows[0]!;
  } finally {
    await client.end();
  }
}

describe('demo database', () => {
  let demo: DemoDatabase;

  beforeAll(async () => {
    demo = await startDemoDatabase({ port: 0 });
  });

  afterAll(async () => {
    await demo?.close();
  });

  it('listens on 127.0.0.1 and a real port', () => {
    expect(demo.host).toBe('127.0.0.1');
    expect(demo.port).toBeGreaterThan(0);
  });

  it('is seeded with 20 customers and 50 orders', async () => {
    expect(await counts(demo)).toEqual({ customers: 20, orders: 50 });
  });

  it('holds Luhn-valid card numbers and example.com emails for the masking demo', async () => {
    const client = await connect(demo);
    try {
      const { rows } = await client.query<{ card_number: string; email: string }>('select card_number, email from customers');
      for (const row of rows) {
        expect(luhnValid(row.card_number), row.card_number).toBe(true);
        expect(row.email).toMatch(/^[a-z.]+@example\.com$/);
      }
      const orphans = await client.query('select 1 from orders o left join customers c on c.id = o.customer_id where c.id is null');
      expect(orphans.rowCount).toBe(0);
    } finally {
      await client.end();
    }
  });

  it('accepts any password (trust) and any user name', async () => {
    const client = new pg.Client({ host: demo.host, port: demo.port, user: 'someone', password: 'anything', database: 'whatever' });
    await client.connect();
    try {
      const { rows } = await client.query('select current_user, current_database()');
      expect(rows[0]).toEqual({ current_user: 'postgres', current_database: 'postgres' });
    } finally {
      await client.end();
    }
  });

  it('serves several connections at once', async () => {
    const clients = await Promise.all([1, 2, 3, 4].map(() => connect(demo)));
    try {
      const results = await Promise.all(
        clients.map(async (c, k) => {
          const values: number[] = [];
          for (let i = 0; i < 25; i++) values.push((await c.query<{ v: number }>('select $1::int as v', [k * 100 + i])).rows[0]!.v);
          return values;
        }),
      );
      results.forEach((values, k) => expect(values).toEqual(Array.from({ length: 25 }, (_, i) => k * 100 + i)));
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });

  it('serves real psql', async () => {
    const psql = ensureProgram(join(PG_BIN_DIR, 'psql'), 'postgresql-client-15');
    const { stdout } = await execFileAsync(
      psql,
      ['-h', demo.host, '-p', String(demo.port), '-U', demo.user, '-d', demo.database, '-XAtc', 'select count(*) from customers'],
      { env: { ...process.env, PGSSLMODE: 'disable', PGPASSWORD: demo.password, PGCONNECT_TIMEOUT: '10' } },
    );
    expect(stdout.trim()).toBe('20');
  });
});

describe('demo database with a dataDir', () => {
  it('keeps its data across restarts and does not seed twice', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'sluice-demo-'));
    try {
      const first = await startDemoDatabase({ dataDir });
      try {
        const client = await connect(first);
        await client.query("update customers set country = 'SE' where id = 1");
        await client.end();
      } finally {
        await first.close();
      }
      const second = await startDemoDatabase({ dataDir });
      try {
        expect(await counts(second)).toEqual({ customers: 20, orders: 50 });
        const client = await connect(second);
        const { rows } = await client.query('select country from customers where id = 1');
        await client.end();
        expect(rows[0].country).toBe('SE');
      } finally {
        await second.close();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
