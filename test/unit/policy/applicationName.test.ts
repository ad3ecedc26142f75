import { describe, expect, it } from 'vitest';
import { applicationNameRefusal, keepsIdentity } from '../../../gateway/policy/applicationName.js';

const OWN = 'sluice:alice@example.com';

describe('applicationNameRefusal', () => {
  it.each([
    "SET application_name = 'evil'",
    'set application_name to evil',
    "SET SESSION application_name = 'sluice:bob@example.com'",
    "SET LOCAL application_name = 'x'",
    `SET "APPLICATION_NAME" = 'x'`,
    `SET U&"applic\\0061tion_name" = 'x'`,
    "SET application_name = 'sluice:alice@example.com.evil'",
    "select set_config('application_name', 'evil', false)",
    "select pg_catalog.set_config('Application_Name', 'evil', true)",
    "select set_config('application_name', 'sluice:' || 'alice@example.com', false)",
    "select 1; select set_config('application_name', 'evil', false)",
    "with x as (select set_config('application_name', 'evil', false)) select * from x",
    "DO $$ begin perform set_config('application_name', 'evil', false); end $$",
    "create function f() returns void language sql set application_name = 'evil' as 'select pg_sleep(1)'",
    "create function f() returns void language plpgsql as $$ begin perform set_config('application_name', 'x' || 'y', false); end $$",
    "alter function f() set application_name = 'evil'",
    "alter role current_user set application_name = 'evil'",
  ])('refuses %s', (sql) => {
    expect(applicationNameRefusal(sql, OWN)).toMatch(/application_name|set_config/);
  });

  it.each([
    'select 1',
    'RESET application_name',
    'RESET ALL',
    'SET application_name TO DEFAULT',
    "SET application_name = 'sluice:alice@example.com:report'",
    "SET application_name = 'sluice:alice@example.com'",
    "select set_config('application_name', 'sluice:alice@example.com:job', false)",
    "select set_config('statement_timeout', '5s', false)",
    "select current_setting('application_name')",
    "select 'application_name' as text_only",
    // Computed names are the target's report to judge (the session ends if it was application_name).
    "select set_config(name, 'evil', false) from (values ('statement_timeout')) t(name)",
  ])('allows %s', (sql) => {
    expect(applicationNameRefusal(sql, OWN)).toBeUndefined();
  });
});

describe('keepsIdentity', () => {
  it('accepts the prefix alone or followed by ":", as the target cuts and cleans it', () => {
    expect(keepsIdentity(OWN, OWN)).toBe(true);
    expect(keepsIdentity(`${OWN}:psql`, OWN)).toBe(true);
    expect(keepsIdentity(`${OWN}x`, OWN)).toBe(false);
    expect(keepsIdentity('psql', OWN)).toBe(false);
    const long = `sluice:${'a'.repeat(70)}`;
    expect(keepsIdentity(long.slice(0, 63), long)).toBe(true);
    expect(keepsIdentity('sluice:j??rg@example.com', 'sluice:jörg@example.com')).toBe(true);
    expect(keepsIdentity('sluice:j\\xc3\\xb6rg', 'sluice:jörg@example.com')).toBe(true);
    expect(keepsIdentity('evil', 'sluice:jörg@example.com')).toBe(false);
  });
});
