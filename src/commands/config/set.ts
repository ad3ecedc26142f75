// `sluice config set KEY VALUE` / `sluice config get KEY`: persistent CLI settings.
import { resolve } from 'node:path';
import { normaliseGatewayUrl, resolveEndpoint } from '../../api/endpoint.js';
import { UsageError } from '../../errors.js';
import { print, say, type Io } from '../../io.js';
import { openSettings, settingKeys } from '../../settings.js';

export function runConfigSet(io: Io, key: string, value: string): void {
  const settings = openSettings(io);
  if (key === 'gateway') {
    const url = normaliseGatewayUrl(value);
    settings.set('gateway', url);
    return say(io, `gateway set to ${url}`);
  }
  if (key === 'ca') {
    const gateway = resolveEndpoint(io, {}).url;
    const file = resolve(value);
    settings.set('ca', { ...settings.get('ca'), [gateway]: file });
    return say(io, `CA for ${gateway} set to ${file}`);
  }
  throw new UsageError(`unknown setting "${key}"; settings are: ${settingKeys.join(', ')}`);
}

export function runConfigGet(io: Io, key: string): void {
  const settings = openSettings(io);
  if (key === 'gateway') return print(io, settings.get('gateway') ?? '');
  if (key === 'ca') return print(io, settings.get('ca')?.[resolveEndpoint(io, {}).url] ?? '');
  throw new UsageError(`unknown setting "${key}"; settings are: ${settingKeys.join(', ')}`);
}
