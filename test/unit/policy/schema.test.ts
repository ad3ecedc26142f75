// The `policy:` schema: the issue's example validates with defaults filled in; every kind of
// mistake is reported at its key with a message that says what was expected.
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { compilePolicy, parseDuration, PolicyCompileError, policySchema, ruleApplies } from '../../../gateway/policy/schema.js';
import { HASH_KEY, ISSUE_POLICY_YAML } from './fixtures.js';

function problems(yamlText: string): string[] {
  const r = policySchema.safeParse(parseYaml(yamlText));
  if (r.success) throw new Error('expected a validation error');
  return r.error.issues.map((i) => `${i.path.join('.')}: ${i.code === 'unrecognized_keys' ? `unknown key ${i.keys.join(',')}` : i.message}`);
}

describe('policy schema', () => {
  it('accepts the issue example and fills in defaults', () => {
    const cfg = policySchema.parse(parseYaml(ISSUE_POLICY_YAML));
    expect(cfg.rules.map((r) => r.id)).toEqual(['no-ddl', 'no-unbounded-writes', 'no-file-access', 'writes-need-review', 'pii', 'pii-anywhere']);
    expect(cfg.rules[0]?.block).toEqual({ statements: ['drop', 'truncate', 'alter'], match: 'any' });
    expect(cfg.rules[3]?.review).toMatchObject({ approvers: ['dba'], timeout: '10m' });
    expect(cfg.rules[4]?.mask).toEqual({ columns: ['customers.email', 'customers.card_number'], with: 'partial' });
  });

  it('defaults: no rules, review timeout 10m, mask with redact, derived columns refused', () => {
    expect(policySchema.parse({})).toEqual({ rules: [], backstop: true, derived: 'refuse' });
    expect(policySchema.safeParse({ backstop: ['nope'] }).success).toBe(false);
    expect(policySchema.parse({ backstop: ['email'] }).backstop).toEqual(['email']);
    const cfg = policySchema.parse(parseYaml('rules: [{ id: r, review: { statements: [delete], approvers: [dba] } }, { id: m, mask: { detect: [email] } }]'));
    expect(cfg.rules[0]?.review?.timeout).toBe('10m');
    expect(cfg.rules[1]?.mask?.with).toBe('redact');
  });

  it('normalises statement names: case and spacing', () => {
    const cfg = policySchema.parse(parseYaml('rules: [{ id: r, block: { statements: [DROP, "Create   Function", drop table] } }]'));
    expect(cfg.rules[0]?.block?.statements).toEqual(['drop', 'create function', 'drop table']);
  });

  it.each([
    ['rules: [{ id: r, blok: { statements: [drop] } }]', ['rules.0: unknown key blok', 'rules.0: a rule needs exactly one of `block`, `review` or `mask`']],
    ['rules: [{ id: r, block: { statement: [drop] } }]', ['rules.0.block: unknown key statement', expect.stringContaining('rules.0.block: expected at least one condition')]],
    ['rules: [{ id: r, block: { statements: [drop] }, review: { statements: [delete], approvers: [x] } }]', ['rules.0: a rule needs exactly one of `block`, `review` or `mask`']],
    ['rules: [{ id: r }]', ['rules.0: a rule needs exactly one of `block`, `review` or `mask`']],
    ['rules: [{ id: r, block: {} }]', ['rules.0.block: expected at least one condition: statements, tables, functions, unboundedWrites: true, copyProgram: true, copyFile: true or sql']],
    ['rules: [{ id: r, block: { unboundedWrites: false } }]', ['rules.0.block: expected at least one condition: statements, tables, functions, unboundedWrites: true, copyProgram: true, copyFile: true or sql']],
    ['rules: [{ id: r, block: { statements: [dorp] } }]', [expect.stringContaining('rules.0.block.statements.0: unknown statement "dorp"')]],
    ['rules: [{ id: r, block: { statements: [drop tabel] } }]', [expect.stringContaining('unknown statement "drop tabel"')]],
    ['rules: [{ id: r, block: { tables: ["a.b.c"] } }]', ['rules.0.block.tables.0: invalid table "a.b.c" (expected "table" or "schema.table"; * matches any characters)']],
    ['rules: [{ id: r, block: { functions: ["\\"unterminated"] } }]', [expect.stringContaining('invalid function')]],
    ['rules: [{ id: r, block: { sql: "(" } }]', ['rules.0.block.sql: invalid regular expression "("']],
    ['rules: [{ id: r, review: { statements: [delete] } }]', [expect.stringMatching(/^rules\.0\.review\.approvers: /)]],
    ['rules: [{ id: r, review: { statements: [delete], approvers: [] } }]', ['rules.0.review.approvers: expected at least one approver group']],
    ['rules: [{ id: r, review: { statements: [delete], approvers: [dba], timeout: 10 } }]', [expect.stringMatching(/^rules\.0\.review\.timeout: /)]],
    ['rules: [{ id: r, review: { statements: [delete], approvers: [dba], timeout: 10 minutes } }]', ['rules.0.review.timeout: invalid duration "10 minutes" (expected e.g. "30s", "10m", "2h" or "1h30m", between 1s and 7d)']],
    ['rules: [{ id: r, review: { statements: [delete], approvers: [dba], timeout: 30d } }]', [expect.stringContaining('invalid duration "30d"')]],
    ['rules: [{ id: r, mask: { with: hash } }]', ['rules.0.mask: expected `columns`, `detect` or both']],
    ['rules: [{ id: r, mask: { columns: [email] } }]', ['rules.0.mask.columns.0: invalid column "email" (expected "table.column" or "schema.table.column")']],
    ['rules: [{ id: r, mask: { detect: [ssn] } }]', ['rules.0.mask.detect.0: expected one of credit_card, email, us_ssn, iban, phone, secret']],
    ['rules: [{ id: r, mask: { detect: [email], with: blur } }]', ['rules.0.mask.with: expected redact, partial or hash']],
    ['rules: [{ id: r, mask: { detect: [email] }, for: { groups: [] } }]', ['rules.0.for.groups: expected at least one group']],
    ['rules: [{ id: r, mask: { detect: [email] }, except: { group: [x] } }]', ['rules.0.except.groups: Invalid input: expected array, received undefined', 'rules.0.except: unknown key group']],
    ['rules: [{ id: "bad id", block: { statements: [drop] } }]', ['rules.0.id: expected a rule id of letters, digits, ".", "_" or "-"']],
    ['rules: [{ id: a, block: { statements: [drop] } }, { id: a, block: { statements: [drop] } }]', ['rules.1.id: duplicate rule id "a"']],
    ['rule: []', [': unknown key rule']],
  ])('%s', (yamlText, expected) => {
    expect(problems(yamlText)).toEqual(expected);
  });
});

describe('compilePolicy', () => {
  it('compiles regexes, durations, names and groups', () => {
    const p = compilePolicy(
      policySchema.parse(
        parseYaml(`
rules:
  - { id: a, block: { sql: ["pg_sleep", "x+y"], tables: [Billing.Customers] }, for: { groups: [DBA] } }
  - { id: b, review: { statements: [delete], approvers: [ops], timeout: 1h30m } }
  - { id: c, mask: { columns: [s.t.c], detect: [email, email], with: hash } }
`),
      ),
      { hashKey: HASH_KEY },
    );
    const [a, b, c] = p.rules;
    expect(a).toMatchObject({ action: 'block', for: new Set(['dba']) });
    if (a?.action !== 'block' || b?.action !== 'review' || c?.action !== 'mask') throw new Error('unexpected rule order');
    expect(a.conditions.sql?.map((r) => [r.source, r.flags])).toEqual([
      ['pg_sleep', 'is'],
      ['x+y', 'is'],
    ]);
    expect(a.conditions.tables?.[0]).toMatchObject({ schema: { exact: 'billing' }, name: { exact: 'customers' } });
    expect(b.timeoutMs).toBe(5_400_000);
    expect(c.detect).toEqual(['email']);
    expect(p.hashKey).toBe(HASH_KEY);
    expect(Object.isFrozen(p)).toBe(true);
  });

  it('refuses a hash rule without the gateway masking key', () => {
    const cfg = policySchema.parse({ rules: [{ id: 'h', mask: { detect: ['email'], with: 'hash' } }] });
    expect(() => compilePolicy(cfg)).toThrow(PolicyCompileError);
    expect(() => compilePolicy(cfg, { hashKey: Buffer.alloc(8) })).toThrow(/at least 16 bytes/);
  });

  it('parses durations', () => {
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('45s')).toBe(45_000);
    expect(parseDuration('1d')).toBe(86_400_000);
    expect(parseDuration('10')).toBeUndefined();
    expect(parseDuration('m')).toBeUndefined();
  });

  it('scopes rules by for/except groups, case-insensitively', () => {
    const rule = { id: 'r', for: new Set(['eng']), except: new Set(['dba']) };
    expect(ruleApplies(rule, ['ENG'])).toBe(true);
    expect(ruleApplies(rule, ['eng', 'DBA'])).toBe(false);
    expect(ruleApplies(rule, ['ops'])).toBe(false);
    expect(ruleApplies({ id: 'r' }, [])).toBe(true);
  });
});
