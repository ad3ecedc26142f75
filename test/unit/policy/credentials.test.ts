// sluice:credentials on its own: which texts it refuses (naming the column) and which it lets
// through without parsing them. The real-cluster corpus is test/integration/adversarial-credentials.test.ts.
import { describe, expect, it } from 'vitest';
import { credentialRefusal } from '../../../gateway/policy/credentials.js';

describe('credentialRefusal', () => {
  it.each([
    ['select rolpassword from pg_authid', 'pg_authid.rolpassword'],
    ['select * from pg_catalog.pg_shadow', 'pg_shadow.passwd'],
    ['select s from pg_subscription s', 'pg_subscription.subconninfo'],
    ['table pg_user_mappings', 'pg_user_mappings.umoptions'],
    ['select "umoptions" from x', '.umoptions'],
    ["select pg_read_binary_file('global/1260')", 'pg_read_binary_file'],
    ["copy t from '/etc/passwd'", 'server file'],
    ['select from pg_authid where', 'cannot parse'],
  ])('refuses %s, naming %s', (sql, named) => {
    expect(credentialRefusal(sql)).toContain(named);
  });

  it.each(['select 1', 'select rolname from pg_authid', 'select * from pg_roles', 'copy t to stdout', "select lo_get(1)"])('lets %s through', (sql) => {
    expect(credentialRefusal(sql)).toBeUndefined();
  });
});
