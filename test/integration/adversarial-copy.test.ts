// Adversarial corpus, class "COPY … TO STDOUT variants": the recommended policy masks
// customers.email (partial) and customers.card_number (redact); the attacker picks COPY options
// that make the masker's reading of a row differ from PostgreSQL's writing of it — letters and
// digits of the masked values as delimiter, quote or escape, the NULL string set to a value's
// part, headers, column lists, encodings — or a binary COPY. No clear value, nor a recognisable
// part of one, may reach the client or the audit store.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SECRET_CARDS, SECRET_EMAILS, startArena, type Arena } from '../support/arena.js';

const cluster = inject('pgCluster');

const MARKERS = [...SECRET_EMAILS, ...SECRET_CARDS, 'lovelace', 'hopper', 'example.org', 'example.com', '411111', '555555', '378282', '4444', '0005'];

const VARIANTS: readonly string[] = [
  "copy customers to stdout with (format csv, delimiter 'e')",
  "copy customers to stdout with (format csv, quote 'e')",
  "copy customers to stdout with (format csv, quote 'a', escape 'x', force_quote *)",
  "copy customers to stdout with (format csv, delimiter 'x', null 'a')",
  "copy customers to stdout with (format csv, delimiter '.', quote '@')",
  "copy customers (email) to stdout with (format csv, quote '.', escape '.')",
  "copy customers (card_number, email) to stdout with (format csv, delimiter '5', quote '4')",
  "copy customers to stdout with (format csv, header, delimiter 'm')",
  "copy customers to stdout with (format csv, delimiter '@')",
  "copy customers to stdout with (format text, delimiter '@')",
  "copy customers to stdout with (format text, null 'example')",
  "copy customers to stdout with (format text, encoding 'SQL_ASCII')",
  "copy customers to stdout with (format text, encoding 'LATIN1')",
  'copy customers (email, email, card_number) to stdout',
  "copy (select email, card_number from customers) to stdout with (format csv, quote '1', force_quote *)",
  'copy (table customers) to stdout with csv',
];

describe('COPY TO STDOUT with options chosen against the masker', () => {
  let arena: Arena;
  beforeAll(async () => {
    arena = await startArena(cluster, { prefix: 'adv_copy' });
  });
  afterAll(async () => {
    await arena?.stop();
  });

  it.each(VARIANTS)('%s', async (sql) => {
    const r = await arena.psql(sql);
    const out = (r.stdout + r.stderr).toLowerCase();
    expect(MARKERS.filter((m) => out.includes(m.toLowerCase())), r.stdout + r.stderr).toEqual([]);
    // Either three masked rows (a header too, if asked) or PostgreSQL refused the options.
    if (r.stderr === '') expect(r.stdout.trim().split('\n').length).toBeGreaterThanOrEqual(3);
    else expect(r.stdout).toBe('');
  });

  it('binary COPY is refused for a caller with masks', async () => {
    const r = await arena.psql('copy customers to stdout with (format binary)');
    expect(r.stderr).toContain('ERROR');
    expect(r.stdout).toBe('');
  });

  it('nothing reached the audit store', () => {
    expect(MARKERS.slice(0, 10).filter((m) => arena.auditContains(m))).toEqual([]);
  });
});
