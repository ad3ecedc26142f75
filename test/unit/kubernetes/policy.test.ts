// Judging classified Kubernetes requests: RBAC's reading of resources (`pods` is not `pods/exec`,
// `pods/*`, `*/scale`, `*`), apiGroups/namespaces/names, groups, a block beating a review, and
// the refusal of what cannot be classified whenever a rule applies.
import { describe, expect, it } from 'vitest';
import { compileKubernetesPolicy, describeKubernetesPolicy, judgeRequest, kubernetesPolicySchema, UNCLASSIFIABLE_RULE } from '../../../gateway/engines/kubernetes/policy.js';
import { classifyRequest } from '../../../gateway/engines/kubernetes/requestInfo.js';

const policy = compileKubernetesPolicy(
  kubernetesPolicySchema.parse({
    rules: [
      { id: 'no-namespace-deletes', block: { verbs: ['delete'], resources: ['namespaces'] } },
      { id: 'exec-needs-review', review: { verbs: ['create'], resources: ['pods/exec', 'pods/attach'], approvers: ['ops-leads'], timeout: '5m' } },
      { id: 'no-secrets', block: { verbs: ['get', 'list', 'watch'], resources: ['secrets'] } },
      { id: 'kube-system-read-only', block: { verbs: ['create', 'update', 'patch', 'delete', 'deletecollection'], namespaces: ['kube-system'] }, except: { groups: ['admins'] } },
      { id: 'no-scaling-apps', block: { verbs: ['update', 'patch'], resources: ['*/scale'], apiGroups: ['apps'] } },
      { id: 'protect-db', block: { verbs: ['*'], resources: ['pods', 'pods/*'], names: ['db-0'] }, for: { groups: ['contractors'] } },
    ],
  }),
);
const judge = (method: string, target: string, groups = ['ops']) => judgeRequest(policy, groups, classifyRequest(method, target), `${method} ${target}`);

describe('kubernetes policy', () => {
  it('the issue\'s rules: namespace deletes blocked, exec held, secrets blocked', () => {
    expect(judge('DELETE', '/api/v1/namespaces/prod')).toMatchObject({ verdict: 'block', rule: 'no-namespace-deletes' });
    expect(judge('DELETE', '/api/v1/namespaces/default/pods/web-1')).toEqual({ verdict: 'allow' });
    expect(judge('GET', '/api/v1/namespaces/default/pods/web-1/exec?command=sh')).toMatchObject({ verdict: 'review', rule: 'exec-needs-review', approvers: ['ops-leads'], timeoutMs: 300_000 });
    expect(judge('POST', '/api/v1/namespaces/default/pods/web-1/attach')).toMatchObject({ verdict: 'review' });
    for (const t of ['/api/v1/namespaces/default/secrets', '/api/v1/namespaces/default/secrets/db', '/api/v1/secrets?watch=1', '/api/v1/watch/namespaces/x/secrets', '/api/v1/namespaces/default/secret%73']) {
      expect(judge('GET', t), t).toMatchObject({ verdict: 'block', rule: 'no-secrets' });
    }
    expect(judge('GET', '/api/v1/namespaces/default/pods')).toEqual({ verdict: 'allow' });
    expect(judge('GET', '/version')).toEqual({ verdict: 'allow' });
  });

  it('reads resources as RBAC does', () => {
    // `pods/exec` is not `pods/log`; `pods` alone would not cover exec.
    expect(judge('GET', '/api/v1/namespaces/default/pods/web-1/log')).toEqual({ verdict: 'allow' });
    expect(judge('PUT', '/apis/apps/v1/namespaces/x/deployments/web/scale')).toMatchObject({ verdict: 'block', rule: 'no-scaling-apps' });
    expect(judge('PUT', '/apis/apps/v1/namespaces/x/deployments/web')).toEqual({ verdict: 'allow' });
    expect(judge('PATCH', '/api/v1/namespaces/x/replicationcontrollers/web/scale')).toEqual({ verdict: 'allow' });
    expect(judge('GET', '/api/v1/namespaces/x/pods/db-0/log', ['contractors'])).toMatchObject({ verdict: 'block', rule: 'protect-db' });
    expect(judge('DELETE', '/api/v1/namespaces/x/pods/db-0', ['contractors'])).toMatchObject({ verdict: 'block', rule: 'protect-db' });
    expect(judge('DELETE', '/api/v1/namespaces/x/pods/db-1', ['contractors'])).toEqual({ verdict: 'allow' });
  });

  it('namespaces and groups: for and except', () => {
    expect(judge('POST', '/api/v1/namespaces/kube-system/configmaps')).toMatchObject({ verdict: 'block', rule: 'kube-system-read-only' });
    expect(judge('POST', '/api/v1/namespaces/kube-system/configmaps', ['admins'])).toEqual({ verdict: 'allow' });
    expect(judge('GET', '/api/v1/namespaces/kube-system/configmaps')).toEqual({ verdict: 'allow' });
  });

  it('a block wins over a review', () => {
    expect(judge('POST', '/api/v1/namespaces/kube-system/pods/x/exec')).toMatchObject({ verdict: 'block', rule: 'kube-system-read-only' });
  });

  it('a rule naming a verb also matches its siblings that do the same to the same objects', () => {
    const p = compileKubernetesPolicy(
      kubernetesPolicySchema.parse({
        rules: [
          { id: 'no-secret-reads', block: { verbs: ['get'], resources: ['secrets'] } },
          { id: 'no-config-lists', block: { verbs: ['list'], resources: ['configmaps'] } },
          { id: 'no-pod-deletes', block: { verbs: ['delete'], resources: ['pods'] } },
          { id: 'no-deploy-updates', block: { verbs: ['update'], resources: ['deployments'] } },
          { id: 'no-svc-patches', block: { verbs: ['patch'], resources: ['services'] } },
        ],
      }),
    );
    const j = (method: string, target: string) => judgeRequest(p, ['ops'], classifyRequest(method, target), `${method} ${target}`);
    for (const t of ['/api/v1/namespaces/d/secrets', '/api/v1/secrets', '/api/v1/namespaces/d/secrets?watch=1', '/api/v1/watch/secrets', '/api/v1/namespaces/d/secrets?fieldSelector=metadata.name%3Dx&watch=true']) {
      expect(j('GET', t), t).toMatchObject({ verdict: 'block', rule: 'no-secret-reads' });
    }
    expect(j('GET', '/api/v1/namespaces/d/configmaps?watch=1')).toMatchObject({ verdict: 'block', rule: 'no-config-lists' });
    expect(j('GET', '/api/v1/namespaces/d/configmaps/x')).toEqual({ verdict: 'allow' });
    expect(j('DELETE', '/api/v1/namespaces/d/pods')).toMatchObject({ verdict: 'block', rule: 'no-pod-deletes' });
    expect(j('PATCH', '/apis/apps/v1/namespaces/d/deployments/web')).toMatchObject({ verdict: 'block', rule: 'no-deploy-updates' });
    expect(j('PUT', '/api/v1/namespaces/d/services/web')).toMatchObject({ verdict: 'block', rule: 'no-svc-patches' });
    // The reverse does not hold: a list rule leaves a get of one object alone, a deletecollection rule a delete.
    expect(j('GET', '/api/v1/namespaces/d/pods')).toEqual({ verdict: 'allow' });
  });

  it('a rule that keeps objects from being read also matches the writes that answer with them', () => {
    const p = compileKubernetesPolicy(
      kubernetesPolicySchema.parse({
        rules: [
          { id: 'no-secret-reads', block: { verbs: ['get', 'list', 'watch'], resources: ['secrets'] } },
          { id: 'no-config-lists', block: { verbs: ['list'], resources: ['configmaps'] } },
        ],
      }),
    );
    const j = (method: string, target: string) => judgeRequest(p, ['ops'], classifyRequest(method, target), `${method} ${target}`);
    // An empty patch or a dry run changes nothing and answers with the object; a deletecollection
    // with every object it deleted (a dry run: all of them, none deleted).
    for (const [m, t] of [
      ['PATCH', '/api/v1/namespaces/d/secrets/db?dryRun=All'],
      ['PUT', '/api/v1/namespaces/d/secrets/db?dryRun=All'],
      ['DELETE', '/api/v1/namespaces/d/secrets/db?dryRun=All'],
      ['DELETE', '/api/v1/namespaces/d/secrets?dryRun=All'],
      ['DELETE', '/api/v1/secrets?dryRun=All'],
    ] as const) {
      expect(j(m, t), `${m} ${t}`).toMatchObject({ verdict: 'block', rule: 'no-secret-reads' });
    }
    expect(j('DELETE', '/api/v1/namespaces/d/configmaps?dryRun=All')).toMatchObject({ verdict: 'block', rule: 'no-config-lists' });
    // A list rule leaves the writes of one named object alone; creating returns only what was sent.
    expect(j('PATCH', '/api/v1/namespaces/d/configmaps/x')).toEqual({ verdict: 'allow' });
    expect(j('POST', '/api/v1/namespaces/d/secrets')).toEqual({ verdict: 'allow' });
  });

  it('an update and a server-side apply create what does not exist: create rules match them', () => {
    const p = compileKubernetesPolicy(kubernetesPolicySchema.parse({ rules: [{ id: 'no-new-bindings', block: { verbs: ['create'], resources: ['rolebindings', 'clusterrolebindings'], apiGroups: ['rbac.authorization.k8s.io'] } }] }));
    const j = (method: string, target: string, types: string[] = []) => judgeRequest(p, ['ops'], classifyRequest(method, target, types), `${method} ${target}`);
    const binding = '/apis/rbac.authorization.k8s.io/v1/namespaces/d/rolebindings/admin-for-me';
    expect(j('PUT', binding)).toMatchObject({ verdict: 'block', rule: 'no-new-bindings' });
    expect(j('PATCH', `${binding}?fieldManager=kubectl`, ['application/apply-patch+yaml'])).toMatchObject({ verdict: 'block', rule: 'no-new-bindings' });
    expect(j('PATCH', binding, ['application/apply-patch+cbor'])).toMatchObject({ verdict: 'block', rule: 'no-new-bindings' });
    expect(j('PATCH', binding, ['application/json', 'Application/Apply-Patch+YAML; charset=utf-8'])).toMatchObject({ verdict: 'block', rule: 'no-new-bindings' });
    // A merge or strategic patch of something missing is a 404, never a create.
    expect(j('PATCH', binding, ['application/strategic-merge-patch+json'])).toEqual({ verdict: 'allow' });
    expect(j('PATCH', binding, ['application/merge-patch+json'])).toEqual({ verdict: 'allow' });
  });

  it('deleting a namespace matches the rules that keep its objects from being deleted', () => {
    const p = compileKubernetesPolicy(
      kubernetesPolicySchema.parse({
        rules: [
          { id: 'prod-pods-kept', block: { verbs: ['delete'], resources: ['pods'], namespaces: ['prod'] } },
          { id: 'db-kept', block: { resources: ['statefulsets'], apiGroups: ['apps'], names: ['db'] } },
          { id: 'nodes-kept', block: { verbs: ['delete'], resources: ['nodes'] } },
          { id: 'no-exec', block: { verbs: ['create'], resources: ['pods/exec'] } },
        ],
      }),
    );
    const j = (method: string, target: string) => judgeRequest(p, ['ops'], classifyRequest(method, target), `${method} ${target}`);
    expect(j('DELETE', '/api/v1/namespaces/prod')).toMatchObject({ verdict: 'block', rule: 'prod-pods-kept' });
    expect(j('DELETE', '/api/v1/namespaces/prod?dryRun=All')).toMatchObject({ verdict: 'block', rule: 'prod-pods-kept' });
    expect(j('DELETE', '/api/v1/namespaces')).toMatchObject({ verdict: 'block', rule: 'prod-pods-kept' });
    // A rule naming no namespace keeps its objects in every namespace.
    expect(j('DELETE', '/api/v1/namespaces/dev')).toMatchObject({ verdict: 'block', rule: 'db-kept' });
    const podsOnly = compileKubernetesPolicy(kubernetesPolicySchema.parse({ rules: [{ id: 'prod-pods-kept', block: { verbs: ['delete'], resources: ['pods'], namespaces: ['prod'] } }, { id: 'nodes-kept', block: { verbs: ['delete'], resources: ['nodes'] } }, { id: 'no-exec', block: { verbs: ['create'], resources: ['pods/exec'] } }] }));
    const k = (method: string, target: string) => judgeRequest(podsOnly, ['ops'], classifyRequest(method, target), `${method} ${target}`);
    // Another namespace; cluster-scoped resources and subresources are not in a namespace; reading or changing a namespace deletes nothing.
    expect(k('DELETE', '/api/v1/namespaces/dev')).toEqual({ verdict: 'allow' });
    expect(k('GET', '/api/v1/namespaces/prod')).toEqual({ verdict: 'allow' });
    expect(k('PUT', '/api/v1/namespaces/prod/finalize')).toEqual({ verdict: 'allow' });
  });

  it('adding an ephemeral container to a pod is judged as exec and attach in that pod', () => {
    const p = compileKubernetesPolicy(
      kubernetesPolicySchema.parse({
        rules: [
          { id: 'exec-review', review: { verbs: ['create'], resources: ['pods/exec'], namespaces: ['prod'], approvers: ['leads'] } },
          { id: 'no-attach-db', block: { resources: ['pods/attach'], names: ['db-0'] } },
        ],
      }),
    );
    const j = (method: string, target: string) => judgeRequest(p, ['ops'], classifyRequest(method, target, ['application/strategic-merge-patch+json']), `${method} ${target}`);
    expect(j('PATCH', '/api/v1/namespaces/prod/pods/web-1/ephemeralcontainers')).toMatchObject({ verdict: 'review', rule: 'exec-review' });
    expect(j('PUT', '/api/v1/namespaces/prod/pods/web-1/ephemeralcontainers')).toMatchObject({ verdict: 'review', rule: 'exec-review' });
    expect(j('PATCH', '/api/v1/namespaces/dev/pods/db-0/ephemeralcontainers')).toMatchObject({ verdict: 'block', rule: 'no-attach-db' });
    // Another namespace or pod than the rules name, or a read of the subresource, is not exec.
    expect(j('PATCH', '/api/v1/namespaces/dev/pods/web-1/ephemeralcontainers')).toEqual({ verdict: 'allow' });
    expect(j('GET', '/api/v1/namespaces/prod/pods/web-1/ephemeralcontainers')).toEqual({ verdict: 'allow' });
  });

  it('a namespaces or names rule matches the collection requests that return or delete its objects among others', () => {
    const p = compileKubernetesPolicy(
      kubernetesPolicySchema.parse({
        rules: [
          { id: 'prod-secrets', block: { verbs: ['get', 'list', 'watch'], resources: ['secrets'], namespaces: ['prod'] } },
          { id: 'db-password', block: { resources: ['secrets'], names: ['db-password'] } },
          { id: 'prod-pods-kept', block: { verbs: ['delete', 'deletecollection'], resources: ['pods'], namespaces: ['prod'] } },
        ],
      }),
    );
    const j = (method: string, target: string) => judgeRequest(p, ['ops'], classifyRequest(method, target), `${method} ${target}`);
    for (const t of ['/api/v1/secrets', '/api/v1/secrets?watch=1', '/api/v1/watch/secrets', '/api/v1/secrets?labelSelector=app%3Ddb']) {
      expect(j('GET', t), t).toMatchObject({ verdict: 'block', rule: 'prod-secrets' });
    }
    for (const t of ['/api/v1/namespaces/dev/secrets', '/api/v1/namespaces/dev/secrets?fieldSelector=metadata.name!%3Dother', '/api/v1/namespaces/dev/secrets?watch=1']) {
      expect(j('GET', t), t).toMatchObject({ verdict: 'block', rule: 'db-password' });
    }
    expect(j('DELETE', '/api/v1/namespaces/dev/secrets')).toMatchObject({ verdict: 'block', rule: 'db-password' });
    expect(j('DELETE', '/api/v1/pods')).toMatchObject({ verdict: 'block', rule: 'prod-pods-kept' });
    // Requests that name another object or namespace do not return the protected one.
    expect(j('GET', '/api/v1/namespaces/dev/secrets/other')).toEqual({ verdict: 'allow' });
    expect(j('GET', '/api/v1/namespaces/dev/secrets?fieldSelector=metadata.name%3Dother')).toEqual({ verdict: 'allow' });
    expect(j('DELETE', '/api/v1/namespaces/dev/pods/web')).toEqual({ verdict: 'allow' });
  });

  it('a kubelet proxy request (nodes/NAME/proxy) matches the rules on pod streams, whatever their scope', () => {
    const p = compileKubernetesPolicy(
      kubernetesPolicySchema.parse({
        rules: [
          { id: 'exec-review', review: { verbs: ['create'], resources: ['pods/exec'], namespaces: ['prod'], approvers: ['leads'] } },
          { id: 'no-attach', block: { resources: ['pods/attach'], names: ['db-0'] } },
        ],
      }),
    );
    const j = (method: string, target: string) => judgeRequest(p, ['ops'], classifyRequest(method, target), `${method} ${target}`);
    expect(j('POST', '/api/v1/nodes/node-1/proxy/run/prod/db-0/main?cmd=id')).toMatchObject({ verdict: 'block', rule: 'no-attach' });
    expect(j('GET', '/api/v1/proxy/nodes/node-1/exec/prod/db-0/main?command=id')).toMatchObject({ verdict: 'block', rule: 'no-attach' });
    const reviewOnly = compileKubernetesPolicy(kubernetesPolicySchema.parse({ rules: [{ id: 'exec-review', review: { verbs: ['create'], resources: ['pods/exec'], namespaces: ['prod'], approvers: ['leads'] } }] }));
    expect(judgeRequest(reviewOnly, ['ops'], classifyRequest('POST', '/api/v1/nodes/node-1/proxy/exec/prod/db-0/main'), 'x')).toMatchObject({ verdict: 'review', rule: 'exec-review' });
    // Nodes themselves, and pod proxies (the pod's own HTTP port), are not kubelet streams.
    expect(judgeRequest(reviewOnly, ['ops'], classifyRequest('GET', '/api/v1/nodes/node-1'), 'x')).toEqual({ verdict: 'allow' });
    expect(judgeRequest(reviewOnly, ['ops'], classifyRequest('GET', '/api/v1/namespaces/prod/pods/web/proxy/metrics'), 'x')).toEqual({ verdict: 'allow' });
  });

  it('refuses what it cannot classify while a rule applies, and only then', () => {
    const v = judge('GET', '/api/v1/namespaces/default/pods/../secrets');
    expect(v).toMatchObject({ verdict: 'block', rule: UNCLASSIFIABLE_RULE });
    expect((v as { reason: string }).reason).toMatch(/"\." or "\.\." segment/);
    expect(judge('OPTIONS', '/api/v1/pods')).toMatchObject({ verdict: 'block', rule: UNCLASSIFIABLE_RULE });
    expect(judgeRequest(undefined, ['ops'], classifyRequest('GET', '/api/v1/x/../y'), 'x')).toEqual({ verdict: 'allow' });
  });

  it('validates rules: one action, a known verb, a condition, RBAC resource syntax', () => {
    const bad = (r: unknown) => kubernetesPolicySchema.safeParse({ rules: [r] }).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`) ?? [];
    expect(bad({ id: 'x', block: { verbs: ['remove'] } })[0]).toMatch(/^rules\.0\.block\.verbs\.0: expected one of get, list/);
    expect(bad({ id: 'x', block: {} })[0]).toMatch(/expected at least one of `verbs`/);
    expect(bad({ id: 'x', review: { verbs: ['create'] } })[0]).toMatch(/approvers/);
    expect(bad({ id: 'x', block: { resources: ['Pods/Exec'] } })[0]).toMatch(/as RBAC names it/);
    expect(bad({ id: 'x', block: { verbs: ['get'] }, review: { verbs: ['get'], approvers: ['a'] } })[0]).toMatch(/exactly one of `block` or `review`/);
    expect(bad({ id: 'x', block: { verbs: ['get'] } })).toEqual([]);
  });

  it('describes itself without anything secret', () => {
    expect(describeKubernetesPolicy(policy)).toBe('blocks: no-namespace-deletes, no-secrets, kube-system-read-only, no-scaling-apps, protect-db; reviews: exec-needs-review (ops-leads)');
    expect(describeKubernetesPolicy(undefined)).toMatch(/^none/);
  });
});
