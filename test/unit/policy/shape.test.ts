// The shape cache: the lexer agrees with PostgreSQL's own scanner (libpg-query's scanSync) on
// where every literal starts and ends, and a cache hit never changes a decision — checked on the
// evaluator corpus with literals replaced, on adversarial pairs, and on random token soup.
import fc from 'fast-check';
import { loadModule, scanSync } from 'libpg-query';
import { describe, expect, it } from 'vitest';
import { evaluate, type Decision } from '../../../gateway/policy/evaluate.js';
import { createSqlAnalyzer, sqlShape, sqlShapeTokens } from '../../../gateway/policy/shape.js';
import { analyzeSql, type SqlAnalysis } from '../../../gateway/policy/sql.js';
import { ISSUE_POLICY, policyFromYaml } from './fixtures.js';

await loadModule();

/**
 * The shape as PostgreSQL's scanner sees the text, tokens concatenated (the scanner splits some
 * operator runs that sqlShape keeps whole), without the statement's final semicolon.
 */
function scannerShape(text: string): string | undefined {
  let tokens;
  try {
    tokens = scanSync(text).tokens;
  } catch {
    return undefined;
  }
  return tokens
    .filter((t) => t.tokenName !== 'SQL_COMMENT' && t.tokenName !== 'C_COMMENT' && t.tokenName !== 'ASCII_59')
    .map((t) => {
      if (t.tokenName === 'SCONST') return '?s';
      if (t.tokenName === 'ICONST') return '?i';
      if (t.tokenName === 'FCONST') return '?f';
      if (/^[bBxX]'/.test(t.text)) return '?b';
      return t.text.startsWith('"') ? t.text : t.text.replace(/[A-Z]+/g, (m) => m.toLowerCase());
    })
    .join('');
}


describe('sqlShape', () => {
  it.each([
    ["SELECT * FROM t WHERE id = 42 AND name = 'x'", "select * from t where id = ?i and name = ?s"],
    ["select * from T where ID=7 and NAME='it''s'", 'select * from t where id = ?i and name = ?s'],
    ["SELECT E'a\\'b', $$x$$, $q$ y $q$, N'n', B'01', X'1F', 1.5e3, .5, 0x1F, 1_000", 'select ?s , ?s , ?s , n ?s , ?b , ?b , ?f , ?f , ?i , ?i'],
    ['SELECT "Quoted ""Id""", $1, a$b FROM "T" -- c\n /* d /* e */ */ ;', 'select "Quoted ""Id""" , $1 , a$b from "T"'],
    ['SELECT 1+-2::int', 'select ?i +- ?i : : int'],
    ['SELECT 2147483647, 2147483648, 0x7FFFFFFF, 0x80000000', 'select ?i , ?f , ?i , ?f'], // the scanner makes big integers numerics
    ["SELECT date '2024-01-01'", 'select date ?s'],
  ])('%s', (sql, shape) => {
    expect(sqlShape(sql)).toBe(shape);
  });

  it.each([
    ['two statements', 'SELECT 1; SELECT 2'],
    ['an unterminated string', "SELECT 'abc"],
    ['an unterminated comment', 'SELECT 1 /* x'],
    ['an unterminated dollar quote', 'SELECT $a$ x'],
    ['a string continued on the next line', "SELECT 'a'\n'b'"],
    ['an E-string continued on the next line', "SELECT E'a'\n'\\' ; DROP TABLE t; --'"],
    ['a doubled quote after a bit string', "SELECT B'01'' ; DROP'"],
    ['a U& string', "SELECT U&'d\\0061t\\+000061'"],
    ['a number glued to a word', 'SELECT 123abc'],
    ['a backslash', 'SELECT 1 \\g'],
    ['a stray dollar', 'SELECT $ 1'],
    ['nothing', '  -- only a comment'],
  ])('refuses %s', (_label, sql) => {
    expect(sqlShape(sql)).toBeUndefined();
  });

  it('agrees with PostgreSQL’s scanner on random token soup', () => {
    const fragments = [
      'SELECT', ' ', '\n', '\r', '\t', '\f', "'", "''", "E'", "e'", "N'", "n'", "B'", "b'", "X'", "x'", '$$', '$a$', '$a', 'a$', '$1', '$12x', '--', '/*', '*/', '/**/',
      '\\', "\\'", '\\\\', ';', 'a', 'Ab', 'x', 'e', 'b', 'n', 'u', 'U&', 'u&', '&', '1', '0', '0x1F', '0x', '0o7', '0b1', '1_0', '_1', '.5', '1e3', '1e', 'E+5', '1.',
      '.', '..', '_', '$', '"', '""', '+', '-', '*', '/', '<', '>', '=', '!', '~', '@', '#', '%', '^', '|', '`', '?', '(', ')', '[', ']', ',', '::', ':', '{', '}',
      'drop', 'é', '日', '\u00a0', 'UESCAPE', "'!'", '2147483647', '2147483648',
    ];
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...fragments), { minLength: 1, maxLength: 25 }), (parts) => {
        const text = parts.join('');
        const mine = sqlShapeTokens(text);
        const theirs = scannerShape(text);
        // Where PostgreSQL's scanner refuses the text the server refuses it too: nothing runs,
        // whatever the cache holds. Everywhere else the two must agree token for token.
        if (mine === undefined || theirs === undefined) return;
        expect(mine.join('')).toBe(theirs);
      }),
      { numRuns: 20_000 },
    );
  });
});

// ---- a cache hit never changes a decision ----

const CORPUS = [
  'DROP TABLE customers',
  "SELECT pg_read_file('/etc/passwd')",
  'DELETE FROM customers WHERE id = 1',
  'UPDATE customers SET email = NULL WHERE 1 = 1',
  "UPDATE customers SET email = 'x' WHERE id = 7",
  'SELECT * FROM customers WHERE id = 42',
  "SELECT abalance FROM pgbench_accounts WHERE aid = 123",
  "EXPLAIN (ANALYZE 0) DELETE FROM customers WHERE id = 5",
  "EXPLAIN (ANALYZE 'off') UPDATE customers SET x = 1",
  "SELECT query_to_xml('select 1', true, true, '')",
  "SELECT table_to_xml('public.orders', true, true, '')",
  "COPY customers TO STDOUT (DELIMITER ',')",
  "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1'",
  "PREPARE p AS SELECT * FROM t WHERE a = 'q'",
  "INSERT INTO log VALUES (1, 'a', 2.5, E'x\\ny', $$z$$)",
  "SELECT 1 WHERE 'a' = 'b'",
  "DELETE FROM customers WHERE 'a' = 'a'",
  'DELETE FROM customers WHERE 1 = 0',
];

const policyWithRegex = policyFromYaml(`
rules:
  - { id: no-ddl, block: { statements: [drop, truncate, alter] } }
  - { id: no-unbounded-writes, block: { unboundedWrites: true } }
  - { id: no-file-access, block: { functions: [pg_read_file, query_to_xml], copyProgram: true } }
  - { id: secrets, block: { tables: [secrets] } }
  - { id: no-magic, block: { sql: "magic_value" } }
  - { id: writes-need-review, review: { statements: [insert, update, delete], approvers: [dba] } }
`);

const decisionOf = (analysis: SqlAnalysis, text: string, policy = ISSUE_POLICY): Pick<Decision, 'verdict' | 'rule'> => {
  const d = evaluate({ groups: ['eng'] }, policy, { kind: 'sql', analysis, text });
  return { verdict: d.verdict, rule: d.rule };
};

/** Replaces every literal PostgreSQL's scanner finds with another of the same kind. */
function relit(text: string, pick: (kind: 's' | 'i' | 'f' | 'b') => string): string {
  let out = '';
  let at = 0;
  for (const t of scanSync(text).tokens) {
    const kind = t.tokenName === 'SCONST' ? 's' : t.tokenName === 'ICONST' ? 'i' : t.tokenName === 'FCONST' ? 'f' : /^[bBxX]'/.test(t.text) ? 'b' : undefined;
    if (kind === undefined) continue;
    out += text.slice(at, t.start) + pick(kind);
    at = t.end;
  }
  return out + text.slice(at);
}

const stringLiteral = fc.oneof(
  fc.string({ maxLength: 12 }).map((s) => `'${s.replace(/'/g, "''")}'`),
  fc.string({ maxLength: 12 }).map((s) => `E'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`),
  fc.string({ maxLength: 12 }).filter((s) => !s.includes('$')).map((s) => `$$${s}$$`),
  fc.constantFrom("'; DROP TABLE customers; --'", "'pg_read_file'", "'magic_value'", "'select pg_read_file(1)'", "'drop table secrets'", "'off'", "'on'", "'secrets'", "''"),
);
const literalOf = (kind: 's' | 'i' | 'f' | 'b') =>
  kind === 's' ? stringLiteral : kind === 'i' ? fc.constantFrom('0', '1', '42', '007', '2147483648', '0x10') : kind === 'f' ? fc.constantFrom('0.0', '1.5', '1e3', '.5') : fc.constantFrom("B'0'", "X'ff'");

describe('the shape cache never changes a decision', () => {
  it('on the corpus, warmed with one literal set and asked with another', () => {
    fc.assert(
      fc.property(fc.constantFrom(...CORPUS), fc.infiniteStream(fc.constantFrom<'s' | 'i' | 'f' | 'b'>('s', 'i', 'f', 'b')), fc.array(fc.tuple(stringLiteral, literalOf('i'), literalOf('f'), literalOf('b')), { minLength: 8, maxLength: 8 }), (sql, _kinds, pool) => {
        let k = 0;
        const pick = (kind: 's' | 'i' | 'f' | 'b') => {
          const [s, i, f, b] = pool[k++ % pool.length] as [string, string, string, string];
          return kind === 's' ? s : kind === 'i' ? i : kind === 'f' ? f : b;
        };
        const other = relit(sql, pick);
        const analyzer = createSqlAnalyzer();
        analyzer.analyze(sql); // warm the cache with the original literals
        const cached = analyzer.analyze(other);
        const direct = analyzeSql(other);
        for (const policy of [ISSUE_POLICY, policyWithRegex]) {
          // A text the parser refuses (a cache hit may still answer for it) is refused by the
          // server as well, so nothing runs; every other text must be judged exactly as uncached.
          if (direct.ok) expect(decisionOf(cached, other, policy)).toEqual(decisionOf(direct, other, policy));
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('on literal-sensitive statements, which are never served from the cache', () => {
    const pairs = [
      ['EXPLAIN (ANALYZE 0) DELETE FROM customers WHERE id = 1', 'EXPLAIN (ANALYZE 1) DELETE FROM customers WHERE id = 1'],
      ["EXPLAIN (ANALYZE 'off') DELETE FROM customers WHERE id = 1", "EXPLAIN (ANALYZE 'on') DELETE FROM customers WHERE id = 1"],
      ["SELECT query_to_xml('select 1', true, true, '')", "SELECT query_to_xml('drop table customers', true, true, '')"],
      ["SELECT table_to_xml('orders', true, true, '')", "SELECT table_to_xml('secrets', true, true, '')"],
      ["CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1'", "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'select pg_read_file(1)'"],
      ["SELECT 'harmless'", "SELECT 'magic_value'"],
    ];
    const p = policyFromYaml(`
rules:
  - { id: ddl, block: { statements: [drop] } }
  - { id: unbounded, block: { unboundedWrites: true } }
  - { id: files, block: { functions: [pg_read_file] } }
  - { id: secrets, block: { tables: [secrets] } }
  - { id: magic, block: { sql: magic_value } }
  - { id: deletes, review: { statements: [delete], approvers: [dba] } }
`);
    for (const [first, second] of pairs as [string, string][]) {
      const analyzer = createSqlAnalyzer();
      expect(decisionOf(analyzer.analyze(first), first, p).verdict).toBe('allow');
      expect(decisionOf(analyzer.analyze(second), second, p).verdict).not.toBe('allow');
    }
  });
});

describe('createSqlAnalyzer', () => {
  it('parses a shape once and counts hits', () => {
    const a = createSqlAnalyzer();
    for (let i = 0; i < 100; i++) a.analyze(`SELECT abalance FROM pgbench_accounts WHERE aid = ${i};`);
    expect(a.stats).toEqual({ hits: 99, misses: 1, uncacheable: 0 });
    const hit = a.analyze('select abalance from pgbench_accounts where aid = 5');
    expect(hit).toMatchObject({ ok: true, statements: [{ kind: 'select', text: 'select abalance from pgbench_accounts where aid = 5', relations: [{ name: 'pgbench_accounts' }] }] });
  });

  it('does not cache parse errors, multi-statement texts or literal-sensitive analyses', () => {
    const a = createSqlAnalyzer();
    expect(a.analyze('SELEC 1').ok).toBe(false);
    expect(a.analyze('SELEC 2')).toMatchObject({ ok: false, error: expect.stringContaining('SELEC') });
    a.analyze('SELECT 1; SELECT 2');
    a.analyze("COPY t TO STDOUT (DELIMITER ',')");
    a.analyze("COPY t TO STDOUT (DELIMITER ';')");
    expect(a.stats).toEqual({ hits: 0, misses: 4, uncacheable: 1 });
  });

  it('evicts the least recently used shape beyond its capacity', () => {
    const a = createSqlAnalyzer({ capacity: 2 });
    a.analyze('SELECT 1 FROM a');
    a.analyze('SELECT 1 FROM b');
    a.analyze('SELECT 2 FROM a'); // hit: a is now the most recent
    a.analyze('SELECT 1 FROM c'); // evicts b
    a.analyze('SELECT 3 FROM b');
    expect(a.stats).toEqual({ hits: 1, misses: 4, uncacheable: 0 });
  });

  it('gives every shape used since the last pass a second chance, oldest first', () => {
    const a = createSqlAnalyzer({ capacity: 2 });
    a.analyze('SELECT 1 FROM a');
    a.analyze('SELECT 1 FROM b');
    a.analyze('SELECT 2 FROM a');
    a.analyze('SELECT 2 FROM b'); // both used: c evicts a, the older one, after both had their chance
    a.analyze('SELECT 1 FROM c');
    a.analyze('SELECT 3 FROM b');
    expect(a.stats).toEqual({ hits: 3, misses: 3, uncacheable: 0 });
    a.analyze('SELECT 3 FROM a');
    expect(a.stats).toEqual({ hits: 3, misses: 4, uncacheable: 0 });
  });

  it("gives a hit the text as the parser's statement would carry it", () => {
    const a = createSqlAnalyzer();
    a.analyze('SELECT 1 FROM t');
    const texts = ['SELECT 2 FROM t;', 'SELECT 2 FROM t', '  SELECT 2 FROM t ;  ', '\tSELECT 2 FROM t;\n', 'SELECT 2 FROM t;;'];
    expect(texts.map((t) => {
      const r = a.analyze(t);
      return r.ok ? r.statements[0]?.text : r.error;
    })).toEqual(['SELECT 2 FROM t', 'SELECT 2 FROM t', 'SELECT 2 FROM t', 'SELECT 2 FROM t', 'SELECT 2 FROM t;']);
  });
});
