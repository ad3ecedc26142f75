// sluice config set/get against Map-backed settings.
import { describe, expect, it } from 'vitest';
import { fakeFactory, GATEWAY_URL, run } from './fakes.js';

describe('sluice config', () => {
  it('set gateway normalises the URL and says so on stderr; get prints it on stdout', async () => {
    const f = fakeFactory();
    expect(await run(f, 'config', 'set', 'gateway', 'https://gw.example.com:8443/')).toBe(0);
    expect(f.settingsMap.get('gateway')).toBe('https://gw.example.com:8443');
    expect(f.err()).toBe('gateway set to https://gw.example.com:8443\n');
    expect(await run(f, 'config', 'get', 'gateway')).toBe(0);
    expect(f.out()).toBe('https://gw.example.com:8443\n');
  });

  it('refuses plain http to a remote host (exit 2) and stores nothing', async () => {
    const f = fakeFactory();
    expect(await run(f, 'config', 'set', 'gateway', 'http://gw.example.com')).toBe(2);
    expect(f.err()).toContain('refusing plain http:// for gw.example.com');
    expect(f.settingsMap.size).toBe(0);
  });

  it('set ca stores an absolute path for the current gateway', async () => {
    const f = fakeFactory();
    expect(await run(f, 'config', 'set', 'ca', '/etc/sluice/ca.pem')).toBe(0);
    expect(f.settingsMap.get('ca')).toEqual({ [GATEWAY_URL]: '/etc/sluice/ca.pem' });
    expect(await run(f, 'config', 'get', 'ca')).toBe(0);
    expect(f.out()).toBe('/etc/sluice/ca.pem\n');
  });

  it('an unknown key is a usage error listing the keys', async () => {
    for (const verb of ['set', 'get']) {
      const f = fakeFactory();
      expect(await run(f, 'config', verb, 'colour', ...(verb === 'set' ? ['blue'] : []))).toBe(2);
      expect(f.err()).toBe('sluice: unknown setting "colour"; settings are: gateway, ca\n');
    }
  });
});
