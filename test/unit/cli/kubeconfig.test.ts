// The kubeconfig `sluice connect` writes for a kubernetes connection: its own 0600 file in the
// config directory with the loopback http:// server and no credential unless a local password
// was asked; `--merge` replaces only the sluice-NAME entries of the user's kubeconfig.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { mergeKubeconfig, userKubeconfig, writeKubeconfig } from '../../../src/kube/kubeconfig.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-kubeconfig-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('kubeconfig for sluice connect', () => {
  it('writes its own file, 0600, pointing at the local port with no credential', async () => {
    const k = await writeKubeconfig(join(dir, 'cfg'), 'k8s-prod', '127.0.0.1', 8443);
    expect(k).toEqual({ kubeconfig: join(dir, 'cfg', 'kube', 'sluice-k8s-prod.kubeconfig'), context: 'sluice-k8s-prod', server: 'http://127.0.0.1:8443' });
    expect(statSync(k.kubeconfig).mode & 0o777).toBe(0o600);
    const doc = parse(readFileSync(k.kubeconfig, 'utf8')) as Record<string, unknown>;
    expect(doc).toEqual({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'sluice-k8s-prod', cluster: { server: 'http://127.0.0.1:8443' } }],
      users: [{ name: 'sluice-k8s-prod', user: {} }],
      contexts: [{ name: 'sluice-k8s-prod', context: { cluster: 'sluice-k8s-prod', user: 'sluice-k8s-prod' } }],
      'current-context': 'sluice-k8s-prod',
    });
    const withPassword = await writeKubeconfig(join(dir, 'cfg'), 'k8s-prod', '::1', 9000, 'one-time');
    expect(readFileSync(withPassword.kubeconfig, 'utf8')).toContain('token: one-time');
    expect(withPassword.server).toBe('http://[::1]:9000');
  });

  it('--merge replaces only its own entries and leaves the current context alone', async () => {
    const file = join(dir, 'user-config');
    writeFileSync(file, 'apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster: { server: "https://real:6443" }\n- name: sluice-k8s-prod\n  cluster: { server: "http://127.0.0.1:1" }\nusers:\n- name: me\n  user: { token: mine }\ncontexts:\n- name: prod\n  context: { cluster: prod, user: me }\ncurrent-context: prod\n');
    await mergeKubeconfig(file, 'k8s-prod', '127.0.0.1', 8443);
    const doc = parse(readFileSync(file, 'utf8')) as { clusters: { name: string; cluster: { server: string } }[]; users: { name: string }[]; 'current-context': string };
    expect(doc['current-context']).toBe('prod');
    expect(doc.clusters.map((c) => [c.name, c.cluster.server])).toEqual([['prod', 'https://real:6443'], ['sluice-k8s-prod', 'http://127.0.0.1:8443']]);
    expect(doc.users.map((u) => u.name)).toEqual(['me', 'sluice-k8s-prod']);
    const fresh = join(dir, 'none', 'config');
    await mergeKubeconfig(fresh, 'x', '127.0.0.1', 1);
    expect(statSync(fresh).mode & 0o777).toBe(0o600);
  });

  it('the user kubeconfig is $KUBECONFIG\'s first file, else ~/.kube/config', () => {
    expect(userKubeconfig({ KUBECONFIG: '/a/one:/b/two', HOME: '/h' })).toBe('/a/one');
    expect(userKubeconfig({ HOME: '/h' })).toBe('/h/.kube/config');
  });
});
