// The reading guard: after a statement that may change how the target reads text, the next
// Query or Parse waits until the target has answered (or is refused inside the same
// extended-protocol cycle, where the target reports settings only at Sync); statements that
// change nothing pass at once, which keeps the hot path free of waits.
import { describe, expect, it } from 'vitest';
import type { StatementDef } from '../../../gateway/engines/postgres/policyGate.js';
import { ReadingGuard } from '../../../gateway/engines/postgres/readingGuard.js';
import { analyzeSql } from '../../../gateway/policy/sql.js';

const def = (text: string): StatementDef => ({ text, analysis: analyzeSql(text), decision: { verdict: 'allow', hits: [] } });
const SAFE = def('SELECT abalance FROM pgbench_accounts WHERE aid = $1');
const UNSURE = def('SELECT app.set_encoding($1)');

describe('ReadingGuard', () => {
  it('lets everything through behind statements that change nothing, pipelined or not', () => {
    const g = new ReadingGuard();
    g.query(SAFE);
    expect(g.beforeText(3)).toBeUndefined();
    g.bind('', SAFE);
    g.execute('');
    expect(g.beforeText(0)).toBeUndefined();
  });

  it('holds the next text behind an uncertain Query until the target is idle', () => {
    const g = new ReadingGuard();
    g.query(UNSURE);
    expect(g.beforeText(1)).toBe('wait');
    expect(g.beforeText(0)).toBeUndefined();
    // Answered: the next pipelined text goes at once.
    expect(g.beforeText(2)).toBeUndefined();
  });

  it('refuses a Parse in the same extended-protocol cycle as an uncertain Bind/Execute', () => {
    const g = new ReadingGuard();
    g.bind('p', UNSURE);
    g.execute('p');
    expect(g.beforeText(0)).toMatchObject({ verdict: 'block', rule: 'sluice:parse-state', reason: expect.stringContaining('send Sync before the next statement') });
    g.sync();
    expect(g.beforeText(1)).toBe('wait');
    expect(g.beforeText(0)).toBeUndefined();
  });

  it('remembers the portal: an Execute in a later cycle runs the statement again', () => {
    const g = new ReadingGuard();
    g.bind('cursor', UNSURE);
    g.sync();
    expect(g.beforeText(0)).toBeUndefined();
    g.execute('cursor');
    expect(g.beforeText(0)).toMatchObject({ verdict: 'block' });
    g.bind('cursor', SAFE);
    g.sync();
    expect(g.beforeText(0)).toBeUndefined();
    g.execute('cursor');
    expect(g.beforeText(0)).toBeUndefined();
  });

  it('a fast-path call of a function it could not name is uncertain', () => {
    const g = new ReadingGuard();
    g.call(undefined);
    expect(g.beforeText(1)).toBe('wait');
  });
});

describe('ReadingGuard where the database may shadow the built-ins it trusts', () => {
  const catalog = (rows: (string | null)[][] | Error) => {
    const sql: string[] = [];
    return { sql, rows: (q: string) => (sql.push(q), rows instanceof Error ? Promise.reject(rows) : Promise.resolve(rows)) };
  };

  it('reads the catalog once, the first time text is pipelined, and then holds pipelined text', async () => {
    const c = catalog([['function public.lower']]);
    const g = new ReadingGuard(c);
    g.query(SAFE);
    expect(g.beforeText(0)).toBeUndefined();
    expect(c.sql).toHaveLength(0);
    const lookUp = g.beforeText(1);
    expect(lookUp).toBeInstanceOf(Promise);
    await lookUp;
    expect(g.beforeText(1)).toBe('wait');
    expect(g.beforeText(0)).toBeUndefined();
    expect(g.beforeText(2)).toBe('wait');
    expect(c.sql).toHaveLength(1);
  });

  it('refuses a Parse after a Bind in the same cycle, naming what it found', async () => {
    const g = new ReadingGuard(catalog([['operator public.+']]));
    g.bind('', SAFE);
    await g.beforeText(0);
    expect(g.beforeText(0)).toMatchObject({ verdict: 'block', rule: 'sluice:parse-state', reason: expect.stringContaining('operator public.+') });
    g.sync();
    expect(g.beforeText(1)).toBe('wait');
  });

  it('trusts the names when the catalog has nothing that could pass for them', async () => {
    const g = new ReadingGuard(catalog([]));
    g.query(SAFE);
    await g.beforeText(3);
    expect(g.beforeText(3)).toBeUndefined();
  });

  it('a catalog that cannot be read trusts nothing', async () => {
    const g = new ReadingGuard(catalog(new Error('connection refused')));
    g.query(SAFE);
    await g.beforeText(1);
    expect(g.beforeText(1)).toBe('wait');
  });
});

describe('ReadingGuard and code attached to the relations a statement touches', () => {
  const INSERT = def('INSERT INTO audited VALUES ($1)');
  const READ = def('SELECT * FROM audited');
  const OTHER = def('INSERT INTO plain VALUES ($1)');
  /** Shadows: none; attached code: a trigger on `audited` running a function written in the database, nextval on `plain`. */
  const catalog = () => {
    const sql: string[] = [];
    const rows = (q: string): Promise<(string | null)[][]> => {
      sql.push(q);
      if (q.includes('pg_trigger')) {
        return Promise.resolve([
          ['public', 'audited', 'w', 'trigger audit_row', 'public', 'enc_trg', 'f', null],
          ['public', 'plain', 'w', 'default of column id', null, null, null, "SELECT nextval('plain_id_seq'::regclass)"],
        ]);
      }
      return Promise.resolve([]);
    };
    return { sql, rows };
  };

  it('holds text pipelined behind a write whose trigger may change client_encoding, not behind a read', async () => {
    const c = catalog();
    const g = new ReadingGuard(c, () => 1);
    g.query(READ);
    await g.beforeText(1);
    expect(g.beforeText(1)).toBeUndefined();
    g.query(INSERT);
    expect(g.beforeText(1)).toBe('wait');
    expect(g.beforeText(0)).toBeUndefined();
    // Answered: nothing unanswered touches it any more.
    expect(g.beforeText(1)).toBeUndefined();
    expect(c.sql).toHaveLength(3);
  });

  it('a write whose attached code is a trusted built-in holds nothing', async () => {
    const g = new ReadingGuard(catalog(), () => 1);
    g.query(OTHER);
    await g.beforeText(1);
    expect(g.beforeText(1)).toBeUndefined();
  });

  it('refuses a Parse in the same cycle as the write, naming the trigger', async () => {
    let outstanding = 0;
    const g = new ReadingGuard(catalog(), () => outstanding);
    g.bind('', INSERT);
    g.execute('');
    await g.beforeText(0);
    expect(g.beforeText(0)).toMatchObject({ verdict: 'block', rule: 'sluice:parse-state', reason: expect.stringContaining('trigger audit_row on public.audited runs public.enc_trg()') });
    g.sync();
    outstanding = 1;
    expect(g.beforeText(1)).toBe('wait');
    outstanding = 0;
    expect(g.beforeText(0)).toBeUndefined();
  });

  it('forgets statements the target has answered, however many Binds come without a Parse', async () => {
    let outstanding = 1;
    const g = new ReadingGuard(catalog(), () => outstanding);
    g.query(INSERT);
    await g.beforeText(1);
    outstanding = 0;
    for (let i = 0; i < 1000; i++) {
      g.bind('', OTHER);
      g.execute('');
      g.sync();
    }
    expect((g as unknown as { sent: Map<unknown, unknown> }).sent.size).toBe(1);
    outstanding = 1;
    expect(g.beforeText(1)).toBeUndefined();
  });
});
