// Adversarial corpus, class "parsing state" in a session whose policy has only mask rules. Code an
// administrator attached to a table (a trigger, a column default) switches client_encoding to
// SJIS; a statement pipelined behind the write that runs it is text the gateway reads as one
// string literal, while the target, now reading SJIS, ends the literal early and runs what
// follows: a read of a masked column through an expression (no table OID to mask by) or a copy of
// it into a table. A real gateway with only the recommended policy's column masks, a real tunnel
// and a raw wire client; what the client received is checked for the clear values, and the
// copy's table on the target itself is checked to be empty.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { decodeErrorFields } from '../../gateway/engines/postgres/codec/backend.js';
import { RECOMMENDED_POLICY, SECRET_CARDS, startArena, type Arena } from '../support/arena.js';
import { build } from '../unit/postgres/builder.js';

const cluster = inject('pgCluster');
const POLICY = { rules: (RECOMMENDED_POLICY.rules ?? []).filter((r) => 'mask' in r) };

const ADMIN_OBJECTS = `
  create function enc_trg() returns trigger language plpgsql as $$ begin perform set_config('client_encoding', 'SJIS', false); return new; end $$;
  create table enc_log (id int);
  create trigger enc_log_trg after insert on enc_log for each row execute function enc_trg();
  create function app_set_encoding(e text) returns text language sql as $$ select set_config('client_encoding', e, false) $$;
  create table enc_default (id int, e text default app_set_encoding('SJIS'));
  create table stash (v text);
`;

let arena: Arena;

beforeAll(async () => {
  arena = await startArena(cluster, { prefix: 'adv_mask_bar', policy: POLICY, schema: ADMIN_OBJECTS });
});

afterAll(async () => {
  await arena?.stop();
});

const query = (sql: string | Buffer) => build().raw(Buffer.concat([Buffer.from(sql), Buffer.of(0)])).typed('Q');
const parse = (sql: string | Buffer) => build().cstring('').raw(Buffer.from(sql)).byte(0).int16(0).typed('P');
const bind = () => build().cstring('').cstring('').int16(0).int16(0).int16(0).typed('B');
const execute = () => build().cstring('').int32(0).typed('E');
const sync = () => build().typed('S');

/**
 * In SJIS 0x95 0x5C is one character, so the literal ends after it and `rest` runs; read as
 * UTF-8 the 0x5C escapes the quote and `rest` is inside the literal, up to the final quote.
 */
const sjisText = (before: string, rest: string) => Buffer.concat([Buffer.from(`${before}E'`), Buffer.of(0x95, 0x5c), Buffer.from(`'${rest} --'`)]);
/** Two statements to the target; one literal to the gateway. */
const sjisCopy = sjisText('select ', '; insert into stash select card_number from customers;');
/** One statement with a second column to the target: the masked column through an expression. */
const sjisRead = sjisText('select ', ", card_number || $$$$ as c from customers");

interface Answer {
  errors: { severity: string; code: string; message: string }[];
  /** Every byte the client received, message bodies concatenated. */
  bytes: Buffer;
}

async function pipeline(frames: Buffer[], readies: number): Promise<Answer> {
  const c = await arena.raw();
  try {
    c.send(Buffer.concat(frames));
    const messages = await c.until(readies);
    return {
      errors: messages.filter((m) => m.type === 'E').map((m) => {
        const e = decodeErrorFields(m.body);
        return { severity: e.severity, code: e.code, message: e.message };
      }),
      bytes: Buffer.concat(messages.map((m) => m.body)),
    };
  } finally {
    c.close();
  }
}

const stashed = async () => Number((await arena.admin.query('select count(*)::int as n from stash')).rows[0].n);

function noSecrets(a: Answer): void {
  const text = a.bytes.toString('latin1');
  for (const card of SECRET_CARDS) expect(text, JSON.stringify(a.errors)).not.toContain(card);
}

describe('the attack would work without the gateway', () => {
  it('on the target directly, the trigger switches client_encoding to SJIS', async () => {
    await arena.admin.query('begin');
    try {
      await arena.admin.query('insert into enc_log values (0)');
      expect((await arena.admin.query('show client_encoding')).rows[0].client_encoding).toBe('SJIS');
    } finally {
      await arena.admin.query('rollback');
    }
  });
});

describe('mask-only session: a statement whose attached code may change client_encoding is a barrier', () => {
  it.each([
    ['insert into enc_log values (1)', 'a trigger that calls set_config'],
    ['insert into enc_default (id) values (1)', "a column default that calls the administrator's function"],
  ])('%s (%s), a copy of the masked column pipelined behind it: the session ends, nothing is copied', async (sql) => {
    const a = await pipeline([query(sql), query(sjisCopy)], 2);
    expect(a.errors.some((e) => e.severity === 'FATAL' && e.code === '0A000' && e.message.includes('sluice:parse-state')), JSON.stringify(a.errors)).toBe(true);
    expect(await stashed()).toBe(0);
    noSecrets(a);
  });

  it('a read of the masked column through an expression, pipelined behind it: the session ends, no clear value', async () => {
    const a = await pipeline([query('insert into enc_log values (2)'), query(sjisRead)], 2);
    expect(a.errors.some((e) => e.severity === 'FATAL' && e.message.includes('sluice:parse-state')), JSON.stringify(a.errors)).toBe(true);
    noSecrets(a);
  });

  it('the extended protocol, the read in the same cycle: refused before it is forwarded, no clear value', async () => {
    const a = await pipeline([parse('insert into enc_log values (3)'), bind(), execute(), parse(sjisRead), bind(), execute(), sync()], 1);
    expect(a.errors.some((e) => e.code === '42501' && e.message.includes('sluice:parse-state') && e.message.includes('trigger enc_log_trg')), JSON.stringify(a.errors)).toBe(true);
    noSecrets(a);
  });

  it('masking is unchanged: pipelined reads of tables without such code are masked and answered', async () => {
    const a = await pipeline([query('select card_number from customers order by id'), query('select count(*) from stash'), query('select 1')], 3);
    expect(a.errors).toEqual([]);
    noSecrets(a);
    expect(a.bytes.toString('latin1')).toContain('[redacted]');
  });
});
