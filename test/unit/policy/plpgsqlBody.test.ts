// What a PL/pgSQL trigger body writes, read with PostgreSQL's PL/pgSQL parser: static statements
// are analysed, dynamic SQL and what does not parse are opaque.
import { describe, expect, it } from 'vitest';
import { plpgsqlWrites, sqlFunctionWrites } from '../../../gateway/policy/plpgsqlBody.js';

describe('PL/pgSQL bodies', () => {
  it.each([
    ['assignments only', 'begin new.updated_at := now(); return new; end', [], ['now']],
    [
      'a conditional insert, a PERFORM and a SELECT INTO',
      "declare x int; begin if new.amount > 10 then insert into payments (id, amount) values (new.id, new.amount); end if; perform pg_notify('c', 'x'); select count(*) into x from orders; return new; end",
      [{ name: 'payments', class: 'insert' }, { name: 'orders', class: 'read' }],
      ['pg_notify', 'count'],
    ],
    ['an update in a loop', 'declare r record; begin for r in select * from orders loop update billing.audit set n = n + 1 where id = r.id; end loop; return new; end', [{ schema: 'billing', name: 'audit', class: 'modify' }, { name: 'orders', class: 'read' }], []],
    ['a body quoting the dollar tag', 'begin insert into log values ($body$x$body$); return new; end', [{ name: 'log', class: 'insert' }], []],
    ['a truncate', 'begin truncate payments; return null; end', [{ name: 'payments', class: 'truncate' }], []],
    ['a call in a condition', 'begin if sneak(new.id) > 0 then return new; end if; return null; end', [], ['sneak']],
  ])('%s', (_name, body, writes, calls) => {
    const w = plpgsqlWrites('f', body);
    expect('writes' in w && w.writes).toEqual(writes);
    expect('calls' in w && w.calls.map((c) => c.name)).toEqual(calls);
  });

  it('reads SQL functions from their definition, BEGIN ATOMIC too', () => {
    expect(sqlFunctionWrites('f', "CREATE FUNCTION public.f() RETURNS void LANGUAGE sql AS $function$ insert into payments values (1); select g() $function$")).toEqual({
      writes: [{ name: 'payments', class: 'insert' }],
      calls: [{ name: 'g' }],
    });
    expect(sqlFunctionWrites('f', 'CREATE FUNCTION public.f() RETURNS void LANGUAGE sql BEGIN ATOMIC delete from public.payments where id = 1; END')).toEqual({
      writes: [{ schema: 'public', name: 'payments', class: 'modify' }],
      calls: [],
    });
  });

  it.each([
    ['EXECUTE', "begin execute 'delete from ' || 'payments'; return new; end", /run time/],
    ['FOR … IN EXECUTE', "declare r record; begin for r in execute 'select 1' loop end loop; return new; end", /run time/],
    ['OPEN … FOR EXECUTE', "declare c refcursor; begin open c for execute 'select 1'; return new; end", /run time/],
    ['a DO block inside', "begin do $$ begin end $$; return new; end", /cannot see into/],
    ['a definition', 'begin create table t (id int); return new; end', /defines objects/],
    ['what does not parse', 'begin this is not plpgsql; end', /does not parse/],
  ])('%s is opaque', (_name, body, reason) => {
    const w = plpgsqlWrites('f', body);
    expect('opaque' in w && w.opaque).toMatch(reason);
  });
});
