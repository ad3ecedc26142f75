// sluice reviews ls/show/approve/reject with a fake gateway.
import { describe, expect, it } from 'vitest';
import { NotFoundError } from '../../../src/api/client.js';
import { AuthError, CliError } from '../../../src/errors.js';
import { fakeFactory, review, run } from './fakes.js';

describe('sluice reviews', () => {
  it('ls is the default: a table on stdout, the next step on stderr', async () => {
    const f = fakeFactory({ gateway: { reviews: { list: async () => [review(), review({ id: 'R-2', status: 'approved', canDecide: false, decidedBy: { subject: 's', name: 'carol' } })] } } });
    expect(await run(f, 'reviews')).toBe(0);
    expect(f.calls).toEqual(['reviews.list({"all":false})']);
    expect(f.out().split('\n')).toEqual([
      'ID      STATUS                     REQUESTED             BY   CONNECTION  RULE                 YOU         STATEMENT',
      'R-8F3K  pending, expires in 5m 0s  2026-11-05 11:55:00Z  bob  pg-prod     deletes-need-review  may decide  delete from orders where id = 7',
      'R-2     approved by carol          2026-11-05 11:55:00Z  bob  pg-prod     deletes-need-review  -           delete from orders where id = 7',
      '',
    ]);
    expect(f.err()).toContain('sluice reviews approve R-8F3K');
  });

  it('--all --json prints the array and nothing else', async () => {
    const f = fakeFactory({ gateway: { reviews: { list: async () => [review()] } } });
    expect(await run(f, 'reviews', 'ls', '--all', '--json')).toBe(0);
    expect(f.calls).toEqual(['reviews.list({"all":true})']);
    expect(JSON.parse(f.out())).toEqual([review()]);
    expect(f.err()).toBe('');
  });

  it('none: a notice on stderr', async () => {
    const f = fakeFactory({ gateway: { reviews: { list: async () => [] } } });
    expect(await run(f, 'reviews')).toBe(0);
    expect(f.out()).toBe('');
    expect(f.err()).toBe('no reviews are waiting for you or on you\n');
  });

  it('show prints the whole statement; --json the review', async () => {
    const f = fakeFactory({ gateway: { reviews: { get: async () => review() } } });
    expect(await run(f, 'reviews', 'show', 'R-8F3K')).toBe(0);
    expect(f.out()).toContain('review R-8F3K · pending, expires in 5m 0s');
    expect(f.out()).toContain('    delete from orders\n    where id = 7\n');
    const j = fakeFactory({ gateway: { reviews: { get: async () => review() } } });
    expect(await run(j, 'reviews', 'show', 'R-8F3K', '--json')).toBe(0);
    expect(JSON.parse(j.out())).toEqual(review());
  });

  it('show of an unknown id: exit 1', async () => {
    const f = fakeFactory({ gateway: { reviews: { get: () => Promise.reject(new NotFoundError('no review R-0')) } } });
    expect(await run(f, 'reviews', 'show', 'R-0')).toBe(1);
    expect(f.err()).toBe('sluice: no review R-0\n');
  });

  it('approve: the confirmation on stderr, the review on stdout with --json', async () => {
    const approved = review({ status: 'approved', canDecide: false });
    const f = fakeFactory({ gateway: { reviews: { approve: async () => approved } } });
    expect(await run(f, 'reviews', 'approve', 'R-8F3K', '--reason', '  looks fine ', '--json')).toBe(0);
    expect(f.calls).toEqual(['reviews.approve("R-8F3K", "looks fine")']);
    expect(JSON.parse(f.out())).toEqual(approved);
    expect(f.err()).toBe("approved R-8F3K: bob's statement on pg-prod runs now\n");
  });

  it('approve of your own request: exit 4', async () => {
    const f = fakeFactory({ gateway: { reviews: { approve: () => Promise.reject(new AuthError('you cannot approve your own request', 403)) } } });
    expect(await run(f, 'reviews', 'approve', 'R-8F3K')).toBe(4);
    expect(f.out()).toBe('');
  });

  it('reject sends the trimmed reason; an empty one is a usage error before any call', async () => {
    const f = fakeFactory({ gateway: { reviews: { reject: async () => review({ status: 'rejected' }) } } });
    expect(await run(f, 'reviews', 'reject', 'R-8F3K', '--reason', ' not on prod ')).toBe(0);
    expect(f.calls).toEqual(['reviews.reject("R-8F3K", "not on prod")']);
    expect(f.out()).toBe('');
    expect(f.err()).toBe("rejected R-8F3K: bob's statement on pg-prod fails with your reason\n");
    const e = fakeFactory();
    expect(await run(e, 'reviews', 'reject', 'R-8F3K', '--reason', '   ')).toBe(2);
    expect(e.err()).toBe('sluice: reject needs --reason TEXT: the requester is told why\n');
    expect(e.calls).toEqual([]);
  });

  it('a review already decided: exit 1', async () => {
    const f = fakeFactory({ gateway: { reviews: { reject: () => Promise.reject(new CliError('review R-8F3K was already approved')) } } });
    expect(await run(f, 'reviews', 'reject', 'R-8F3K', '--reason', 'no')).toBe(1);
  });
});
