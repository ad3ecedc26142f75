// `sluice config set KEY VALUE`: persistent CLI settings (the gateway URL, its CA file).
import { resolve } from 'node:path';
import { Command } from 'commander';
import { UsageError } from '../../errors.js';
import type { Factory } from '../../factory.js';
import { say } from '../../io.js';
import { settingKeys } from '../../settings.js';

export function defineConfigSet(f: Factory): Command {
  return new Command('set')
    .description('set a setting: gateway URL | ca FILE')
    .argument('<key>')
    .argument('<value>')
    .action((key: string, value: string) => runConfigSet({ key, value }, f));
}

export async function runConfigSet(opts: { key: string; value: string }, f: Factory): Promise<void> {
  const settings = await f.settings();
  if (opts.key === 'gateway') {
    const { normaliseGatewayUrl } = await import('../../api/endpoint.js');
    const url = normaliseGatewayUrl(opts.value);
    await settings.set('gateway', url);
    return say(f.io, `gateway set to ${url}`);
  }
  if (opts.key === 'ca') {
    const gateway = (await f.endpoint({})).url;
    const file = resolve(opts.value);
    await settings.set('ca', { ...settings.get('ca'), [gateway]: file });
    return say(f.io, `CA for ${gateway} set to ${file}`);
  }
  throw unknownSetting(opts.key);
}

export function unknownSetting(key: string): UsageError {
  return new UsageError(`unknown setting "${key}"; settings are: ${settingKeys.join(', ')}`);
}
