// Reading requests as the API server does: a table of the request lines kubectl v1.32 sends for
// get/describe/delete/exec/logs/watch, the API server's own edge cases (namespace subresources,
// /watch/ prefix, bool decoding), and paths built to be read one way by a rule and another by it.
import { describe, expect, it } from 'vitest';
import { classifyRequest, describeRequest, resourceWithSubresource } from '../../../gateway/engines/kubernetes/requestInfo.js';

type Row = [method: string, target: string, expected: Record<string, string>];

const kubectlLines: Row[] = [
  ['GET', '/api/v1/namespaces/default/pods?limit=500', { verb: 'list', apiGroup: '', apiVersion: 'v1', resource: 'pods', namespace: 'default', name: '' }],
  ['GET', '/api/v1/namespaces/default/pods/web-1', { verb: 'get', resource: 'pods', name: 'web-1', namespace: 'default' }],
  ['GET', '/api/v1/pods?limit=500', { verb: 'list', resource: 'pods', namespace: '' }],
  ['GET', '/api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Dweb-1&watch=true', { verb: 'watch', name: 'web-1' }],
  ['GET', '/api/v1/namespaces/default/pods?watch=1&resourceVersion=10', { verb: 'watch', name: '' }],
  ['GET', '/api/v1/watch/namespaces/default/pods', { verb: 'watch', resource: 'pods', namespace: 'default' }],
  ['DELETE', '/api/v1/namespaces/default/pods/web-1', { verb: 'delete', resource: 'pods', name: 'web-1' }],
  ['DELETE', '/api/v1/namespaces/default/pods', { verb: 'deletecollection', resource: 'pods' }],
  ['DELETE', '/api/v1/namespaces/staging', { verb: 'delete', resource: 'namespaces', name: 'staging', namespace: 'staging' }],
  ['GET', '/api/v1/namespaces', { verb: 'list', resource: 'namespaces', namespace: '' }],
  ['PUT', '/api/v1/namespaces/staging/finalize', { verb: 'update', resource: 'namespaces', name: 'staging', subresource: 'finalize' }],
  ['GET', '/api/v1/namespaces/staging/status', { verb: 'get', resource: 'namespaces', subresource: 'status' }],
  ['POST', '/api/v1/namespaces/default/pods', { verb: 'create', resource: 'pods', name: '' }],
  ['PATCH', '/apis/apps/v1/namespaces/default/deployments/web', { verb: 'patch', apiGroup: 'apps', apiVersion: 'v1', resource: 'deployments', name: 'web' }],
  ['PUT', '/apis/apps/v1/namespaces/default/deployments/web/scale', { verb: 'update', resource: 'deployments', subresource: 'scale' }],
  ['GET', '/api/v1/namespaces/default/pods/web-1/log?container=app&follow=true', { verb: 'get', resource: 'pods', subresource: 'log', name: 'web-1' }],
  ['GET', '/api/v1/namespaces/default/pods/web-1/exec?command=sh&container=app&stdin=true&stdout=true&tty=true', { verb: 'create', resource: 'pods', subresource: 'exec' }],
  ['POST', '/api/v1/namespaces/default/pods/web-1/exec?command=ls', { verb: 'create', subresource: 'exec' }],
  ['GET', '/api/v1/namespaces/default/pods/web-1/attach?stdin=true', { verb: 'create', subresource: 'attach' }],
  ['GET', '/api/v1/namespaces/default/pods/web-1/portforward?ports=80', { verb: 'create', subresource: 'portforward' }],
  ['GET', '/api/v1/namespaces/default/secrets', { verb: 'list', resource: 'secrets' }],
  ['GET', '/api/v1/namespaces/default/secrets?fieldSelector=metadata.name=db', { verb: 'list', resource: 'secrets', name: 'db' }],
  ['GET', '/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dweb-1%2CinvolvedObject.namespace%3Ddefault', { verb: 'list', resource: 'events', name: '' }],
  ['GET', '/apis/rbac.authorization.k8s.io/v1/clusterroles/admin', { verb: 'get', apiGroup: 'rbac.authorization.k8s.io', resource: 'clusterroles', namespace: '', name: 'admin' }],
  ['GET', '/api/v1/proxy/namespaces/default/pods/web-1/x/y', { verb: 'proxy', resource: 'pods', name: 'web-1', subresource: '' }],
  ['GET', '/api/v1/namespaces/default/pods/web-1/proxy/metrics', { verb: 'get', subresource: 'proxy' }],
  ['HEAD', '/api/v1/namespaces/default/pods/web-1', { verb: 'get' }],
  ['GET', '/api/v1/namespaces/default/pods/', { verb: 'list', resource: 'pods' }],
];

const nonResource: [string, string, string][] = [
  ['GET', '/version?timeout=32s', '/version'],
  ['GET', '/api', '/api'],
  ['GET', '/apis', '/apis'],
  ['GET', '/api/v1', '/api/v1'],
  ['GET', '/apis/apps/v1', '/apis/apps/v1'],
  ['GET', '/apis/apps', '/apis/apps'],
  ['GET', '/openapi/v3/api/v1', '/openapi/v3/api/v1'],
  ['GET', '/healthz', '/healthz'],
  ['POST', '/logs/x', '/logs/x'],
];

describe('classifyRequest: what real kubectl sends', () => {
  it.each(kubectlLines)('%s %s', (method, target, expected) => {
    const got = classifyRequest(method, target);
    expect(got.kind).toBe('resource');
    expect(got).toMatchObject(expected);
  });

  it.each(nonResource)('%s %s is a non-resource request', (method, target, path) => {
    expect(classifyRequest(method, target)).toEqual({ kind: 'nonResource', verb: method.toLowerCase(), path });
  });

  it('decodes percent escapes the way Go does before reading the path', () => {
    expect(classifyRequest('GET', '/api/v1/namespaces/default/secret%73')).toMatchObject({ kind: 'resource', resource: 'secrets', verb: 'list' });
    expect(classifyRequest('DELETE', '/api/v1/namespace%73/prod')).toMatchObject({ resource: 'namespaces', verb: 'delete', name: 'prod' });
  });

  it('reads watch as the API server decodes a bool: first value, anything but 0/false', () => {
    for (const q of ['watch=true', 'watch=1', 'watch=yes', 'watch', 'watch=', 'watch=TRUE', 'watch=true&watch=false']) {
      expect(classifyRequest('GET', `/api/v1/secrets?${q}`), q).toMatchObject({ verb: 'watch' });
    }
    for (const q of ['watch=false', 'watch=0', 'watch=False', 'watch=false&watch=true', 'watchx=true']) {
      expect(classifyRequest('GET', `/api/v1/secrets?${q}`), q).toMatchObject({ verb: 'list' });
    }
  });

  it('describes requests in one line', () => {
    const info = classifyRequest('GET', '/api/v1/namespaces/default/pods/web-1/exec?command=sh');
    if (info.kind !== 'resource') throw new Error('expected a resource request');
    expect(resourceWithSubresource(info)).toBe('pods/exec');
    expect(describeRequest(info)).toBe('create pods/exec web-1 -n default');
    const dep = classifyRequest('DELETE', '/apis/apps/v1/namespaces/x/deployments/web');
    if (dep.kind !== 'resource') throw new Error('expected a resource request');
    expect(describeRequest(dep)).toBe('delete deployments.apps web -n x');
  });
});

describe('classifyRequest: attacks are unclassifiable, never misread', () => {
  const attacks = [
    '/api/v1/namespaces/default/pods/../secrets',
    '/api/v1/namespaces/default/pods/%2e%2e/secrets',
    '/api/v1/namespaces/default/pods/%2E%2E/secrets',
    '/api/v1/namespaces/default/./secrets',
    '/api/v1/namespaces/default/pods%2fweb/exec',
    '/api/v1/namespaces/default%2Fsecrets',
    '/api/v1//namespaces/default/secrets',
    '//api/v1/secrets',
    '/api/v1/secrets//',
    '/api/v1/namespaces/default/secrets%00',
    '/api/v1/namespaces/default/pods\\..\\secrets',
    '/api/v1/namespaces/default/secrets?watch=true;x=1',
    '/api/v1/namespaces/default/%ZZ',
    '/api/v1/namespaces/default/%C0%AE%C0%AE/secrets',
    '/api/v1/namespaces/default/pods%09',
    '/api/v1/namespaces/default/pods/x#frag',
    'api/v1/secrets',
    'http://example/api/v1/secrets',
    '*',
    `/api/v1/namespaces/${'a'.repeat(20_000)}`,
    '/api/v1/watch',
  ];
  it.each(attacks)('%s', (target) => {
    expect(classifyRequest('GET', target).kind).toBe('unclassifiable');
  });

  it('refuses methods with no Kubernetes verb on resource paths', () => {
    expect(classifyRequest('OPTIONS', '/api/v1/pods')).toMatchObject({ kind: 'unclassifiable' });
    expect(classifyRequest('TRACE', '/api/v1/namespaces/x/pods/y')).toMatchObject({ kind: 'unclassifiable' });
    expect(classifyRequest('get', '/api/v1/pods')).toMatchObject({ kind: 'unclassifiable' });
  });

  it('is never fooled into a narrower verb or resource by case or encoding', () => {
    // The API server is case-sensitive: `Secrets` is not `secrets` there either (it answers 404).
    expect(classifyRequest('GET', '/api/v1/Secrets')).toMatchObject({ resource: 'Secrets' });
    expect(classifyRequest('GET', '/api/v1/namespaces/default/secrets?fieldSelector=metadata.name!%3Ddb')).toMatchObject({ verb: 'list', name: '' });
    expect(classifyRequest('DELETE', '/api/v1/namespaces/prod?dryRun=All')).toMatchObject({ verb: 'delete', resource: 'namespaces' });
  });
});
