// Shared test fixtures: the policy from issue 4 (as YAML, through the real schema) and helpers.
import { parse as parseYaml } from 'yaml';
import { evaluate, type Decision } from '../../../gateway/policy/evaluate.js';
import type { PreparedStatements } from '../../../gateway/policy/prepared.js';
import { compilePolicy, policySchema, type CompiledPolicy } from '../../../gateway/policy/schema.js';
import { analyzeSql } from '../../../gateway/policy/sql.js';

export const HASH_KEY = Buffer.from('0123456789abcdef0123456789abcdef');

export const ISSUE_POLICY_YAML = `
rules:
  - id: no-ddl
    block: { statements: [drop, truncate, alter] }
    message: DDL is not allowed on production
  - id: no-unbounded-writes
    block: { unboundedWrites: true }            # UPDATE/DELETE without WHERE
  - id: no-file-access
    block: { functions: [pg_read_file, pg_ls_dir, lo_export, dblink], copyProgram: true }
  - id: writes-need-review
    review: { statements: [insert, update, delete], approvers: [dba], timeout: 10m }
    except: { groups: [dba] }
  - id: pii
    mask: { columns: [customers.email, customers.card_number], with: partial }
  - id: pii-anywhere
    mask: { detect: [credit_card, email, us_ssn, iban, phone, secret], with: redact }
`;

export function policyFromYaml(yamlText: string): CompiledPolicy {
  return compilePolicy(policySchema.parse(parseYaml(yamlText)), { hashKey: HASH_KEY });
}

export const ISSUE_POLICY = policyFromYaml(ISSUE_POLICY_YAML);

export const DEV = { groups: ['eng'] };
export const DBA = { groups: ['eng', 'dba'] };

export function decide(sql: string, opts: { policy?: CompiledPolicy; who?: { groups: readonly string[] }; prepared?: PreparedStatements } = {}): Decision {
  const ctx = opts.prepared === undefined ? {} : { prepared: opts.prepared };
  return evaluate(opts.who ?? DEV, opts.policy ?? ISSUE_POLICY, { kind: 'sql', analysis: analyzeSql(sql), text: sql }, ctx);
}
