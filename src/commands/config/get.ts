// `sluice config get KEY`: prints a setting (empty when unset).
import { Command } from 'commander';
import type { Factory } from '../../factory.js';
import { print } from '../../io.js';
import { unknownSetting } from './set.js';

export function defineConfigGet(f: Factory): Command {
  return new Command('get')
    .description('print a setting')
    .argument('<key>')
    .action((key: string) => runConfigGet({ key }, f));
}

export async function runConfigGet(opts: { key: string }, f: Factory): Promise<void> {
  const settings = await f.settings();
  if (opts.key === 'gateway') return print(f.io, settings.get('gateway') ?? '');
  if (opts.key === 'ca') return print(f.io, settings.get('ca')?.[(await f.endpoint({})).url] ?? '');
  throw unknownSetting(opts.key);
}
