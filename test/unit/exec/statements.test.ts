// Splitting an exec input into statements with PostgreSQL's parser, and the pre-check of the
// whole input against a policy.
import { describe, expect, it } from 'vitest';
import { preCheck, splitScript } from '../../../gateway/exec/statements.js';
import type { Identity } from '../../../gateway/model.js';
import { compilePolicy, policySchema } from '../../../gateway/policy/index.js';

const ALICE: Identity = { subject: 'sub-alice', name: 'alice', groups: ['eng'], kind: 'human' };

describe('splitScript', () => {
  it('splits at top-level semicolons only', () => {
    const input = "insert into t values ('a;b'); -- c;d\nselect $$x;y$$;\ncreate function f() returns int language sql as 'select 1; select 2';";
    expect(splitScript(input).statements).toEqual(["insert into t values ('a;b')", "select $$x;y$$", "create function f() returns int language sql as 'select 1; select 2'"]);
  });

  it('keeps multi-byte text intact', () => {
    expect(splitScript("select 'é'; select 'ß'").statements).toEqual(["select 'é'", "select 'ß'"]);
  });

  it('keeps unparseable input whole', () => {
    const s = splitScript('select 1; selec 2');
    expect(s.analysis.ok).toBe(false);
    expect(s.statements).toEqual(['select 1; selec 2']);
  });

  it('finds no statement in blank input or comments', () => {
    expect(splitScript('  -- nothing\n').statements).toEqual([]);
  });
});

describe('preCheck', () => {
  const policy = compilePolicy(policySchema.parse({
    rules: [
      { id: 'no-ddl', block: { statements: ['drop'] } },
      { id: 'payments-review', review: { statements: ['update'], tables: ['payments'], match: 'all', approvers: ['dba'], timeout: '5m' } },
    ],
  }));

  it('allows what no rule matches, and everything without a policy', () => {
    expect(preCheck(splitScript('select 1; select 2'), ALICE, policy, 'select 1; select 2').verdict).toBe('allow');
    expect(preCheck(splitScript('drop table t'), ALICE, undefined, 'drop table t').verdict).toBe('allow');
  });

  it('blocks the whole input when one statement is blocked, naming it', () => {
    const input = 'select 1; update payments set amount = 1 where id = 1; drop table t';
    const r = preCheck(splitScript(input), ALICE, policy, input);
    expect(r.verdict).toBe('block');
    expect(r.verdict === 'block' && [r.decision.rule, r.statement]).toEqual(['no-ddl', 2]);
  });

  it('asks for one review of the whole input', () => {
    const input = 'select 1; update payments set amount = 1 where id = 1';
    const r = preCheck(splitScript(input), ALICE, policy, input);
    expect(r.verdict).toBe('review');
    expect(r.verdict === 'review' && [r.decision.rule, r.decision.approvers, r.decision.timeoutMs]).toEqual(['payments-review', ['dba'], 300_000]);
  });
});
