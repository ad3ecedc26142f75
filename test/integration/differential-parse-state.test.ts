// The differential check: for each allowed statement text, what the gateway believed it would run
// (its analysis — the same cached analyzer the gateway uses — gives the number of statements and
// their commands) must be what the server reports it ran (one CommandComplete per statement, with
// its tag). A mismatch names the text. Texts are sent as one Query message each through the real
// gateway and tunnel; they include the policy corpus's allowed statements and texts whose
// tokenisation is easy to get wrong (escapes, quotes, comments, dollar quotes, non-ASCII, settings
// the gateway follows changed inside the same message).
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { decodeErrorFields } from '../../gateway/engines/postgres/codec/backend.js';
import { createSqlAnalyzer } from '../../gateway/policy/shape.js';
import { startArena, type Arena } from '../support/arena.js';
import { ALLOWED } from '../support/policyCorpus.js';
import { build } from '../unit/postgres/builder.js';

const cluster = inject('pgCluster');
let arena: Arena;
const analyzer = createSqlAnalyzer();

beforeAll(async () => {
  arena = await startArena(cluster, { prefix: 'diff_parse' });
});

afterAll(async () => {
  await arena?.stop();
});

const TRICKY: readonly string[] = [
  "select E'\\'' as q; select 2",
  "select 'a''b' as q; select 3",
  'select $$;$$ as d; select $tag$ $$ ; $tag$ as e',
  'select 1 /* nested /* comment ; */ still ; */ ; select 2',
  'select 1 -- ; select 3\n; select 4',
  "select U&'\\0041' as u; select 5",
  "select U&'d!0061t!+000061' UESCAPE '!' as u",
  "select 'é' as e; select '日本' as j; select 'ü' as \"ü\"",
  'select "weird;name" from (select 1 as "weird;name") s',
  "select 'a'\n'b' as continued; select 6",
  "select E'a'\n'\\'' as escaped_continuation; select 7",
  "select b'101', x'1f'; select 1.5e3, .5",
  "set client_encoding to 'UTF8'; select 'after' as a",
  "reset client_encoding; select 'after reset' as a",
  'set standard_conforming_strings = on; select \'a\\\' as b',
  "begin; set local client_encoding = 'UTF8'; select 'x'; commit",
  "select set_config('search_path', 'public', false); select count(*) from orders",
  'select \'x\' as "a""b"',
  "select $a$ ' $a$ as quote_in_dollar; select ';' as semicolon",
  "select E'\\\\' as backslash; select E'\\x41' as hex",
  'show client_encoding; show standard_conforming_strings',
  'discard plans; select 8',
];

/** The server's command tag without its row counts: `INSERT 0 1` → `insert`. */
const tagCommand = (tag: string) => tag.replace(/( \d+)+$/, '').toLowerCase();

/** A command of the analysis matches a tag when the tag is that command or starts with it (`discard` / `DISCARD PLANS`). */
const same = (command: string, tag: string) => tag === command || tag.startsWith(`${command} `);

async function serverTags(text: string): Promise<{ tags: string[]; errors: string[] }> {
  const c = await arena.raw();
  try {
    c.send(build().cstring(text).typed('Q'));
    const msgs = await c.until(1);
    return {
      tags: msgs.filter((m) => m.type === 'C').map((m) => tagCommand(m.body.toString('utf8', 0, m.body.length - 1))),
      errors: msgs.filter((m) => m.type === 'E').map((m) => decodeErrorFields(m.body).message),
    };
  } finally {
    c.close();
  }
}

describe('what the gateway believed it would run is what the server ran', () => {
  it.each([...ALLOWED, ...TRICKY].map((t) => [t]))('%s', async (text) => {
    const analysis = analyzer.analyze(text);
    if (!analysis.ok) throw new Error(`the gateway cannot parse ${JSON.stringify(text)}: ${analysis.error}`);
    const believed = analysis.statements.map((s) => s.command);
    const { tags, errors } = await serverTags(text);
    expect(errors, `the server refused ${JSON.stringify(text)}`).toEqual([]);
    const matches = believed.length === tags.length && believed.every((c, i) => same(c, tags[i] as string));
    expect(matches, `${JSON.stringify(text)}: the gateway believed [${believed.join(', ')}], the server ran [${tags.join(', ')}]`).toBe(true);
  });

  it.each([
    ['select amount from orders where id = $1', [1]],
    ["select $1::text || E'\\'' as quoted", ['x']],
    ['update orders set amount = amount where id = $1', [2]],
    ["select set_config('work_mem', $1, false)", ['8MB']],
    ['insert into orders values ($1, 1, 1) on conflict (id) do nothing', [3]],
  ] as const)('extended protocol: %s', async (text, values) => {
    const analysis = analyzer.analyze(text);
    if (!analysis.ok) throw new Error(analysis.error);
    const c = await arena.client();
    try {
      const r = await c.query(text, [...values]);
      expect(analysis.statements.map((s) => s.command), text).toEqual([r.command.toLowerCase()]);
    } finally {
      await c.end();
    }
  });

  it('a mismatch is detected (the check is not vacuous)', () => {
    expect(same('select', tagCommand('SELECT 1'))).toBe(true);
    expect(same('select', tagCommand('DELETE 3'))).toBe(false);
    expect(same('drop table', tagCommand('DROP TABLE'))).toBe(true);
    expect(same('discard', tagCommand('DISCARD PLANS'))).toBe(true);
  });
});
