// The kubernetes engine: kubectl's HTTP/1.1 from the tunnel, served by the shared proxy core
// (gateway/httpProxy/) with the connection's credential injected upstream. Each request is read as
// the API server reads it (requestInfo.ts), judged by the connection's rules (policy.ts), held
// for a review when a rule says so (the request waits, up to the rule's timeout: docs/decisions.md),
// and recorded: the request with its RBAC attributes, its outcome, exec/attach streams as
// terminal sessions and watches as a count plus their first events (recorder.ts). The held token
// never comes back: echoes of it (a TokenReview answer, an error quoting the request) are
// overwritten in responses and the record (httpProxy/credentialEcho.ts). Refusals are
// Kubernetes Status objects, so kubectl prints them as it prints the API server's own.
import { createHash, timingSafeEqual } from 'node:crypto';
import { AuditUnavailableError } from '../../audit/contract.js';
import { clientTimeouts, createHttpProxy, createUpstream, headerValue, ProxyRefusal, type ExchangeOutcome, type ProxyDecision, type ProxyHooks, type ProxyRequest, type ProxyResponse, type Upstream } from '../../httpProxy/index.js';
import { credentialEcho, EchoRefusal, secretValues } from '../../httpProxy/credentialEcho.js';
import { cutScrubbed } from '../../httpProxy/sampleCut.js';
import { SpdyScan } from '../../httpProxy/spdy/scan.js';
import { WsScrubber } from '../../httpProxy/wsScrub.js';
import type { KubernetesConnection } from '../../model.js';
import type { Engine, SessionContext } from '../types.js';
import { judgeRequest, type KubernetesVerdict } from './policy.js';
import { PortForwardRecorder } from './portForward.js';
import { CHANNEL_PROTOCOLS, ExecRecorder, TERMINAL_RECORD_BYTES, WatchRecorder, type Budget } from './recorder.js';
import { classifyRequest, describeRequest, type Classification } from './requestInfo.js';

/** One request as the engine tracks it from classification to outcome. */
interface K8sAction {
  readonly info: Classification;
  /** `create pods/exec web-1 -n default`, or the method and path when unclassifiable. */
  readonly text: string;
  readonly kind: 'request' | 'exec' | 'attach' | 'portforward' | 'watch';
  id?: number;
  exec?: ExecRecorder;
  portForward?: PortForwardRecorder;
  watch?: WatchRecorder;
  /** Echoes of the held token overwritten in the response. */
  scrubbed?: number;
}

/** Rule id recorded for requests refused before any rule: what the engine itself cannot allow. */
export const ENGINE_RULE = 'kubernetes.gateway';
const STREAM_SUBRESOURCES = new Set(['exec', 'attach', 'portforward']);
/** kubectl's port-forward (1.31+): SPDY/3.1 tunnelled in WebSocket binary messages (client-go tools/portforward). */
const SPDY_PORTFORWARD = 'spdy/3.1+portforward.k8s.io';
/**
 * kubectl retries a refused WebSocket exec over SPDY at once, and would show the SPDY refusal
 * instead of the real one (the rule, the rejected review): the WebSocket refusal is repeated to
 * the retry from the same identity for the same target within this window.
 */
const RETRY_WINDOW_MS = 60_000;

/** Refusals of WebSocket exec/attach requests, for kubectl's immediate SPDY retry. */
class StreamRefusals {
  private readonly recent = new Map<string, { at: number; response: ProxyResponse; rule: string }>();
  remember(key: string, response: ProxyResponse, rule: string): void {
    const now = Date.now();
    for (const [k, v] of this.recent) if (now - v.at > RETRY_WINDOW_MS) this.recent.delete(k);
    this.recent.set(key, { at: now, response, rule });
  }
  take(key: string): { response: ProxyResponse; rule: string } | undefined {
    // One retry per refusal: a second SPDY attempt gets the plain SPDY refusal.
    const hit = this.recent.get(key);
    this.recent.delete(key);
    return hit !== undefined && Date.now() - hit.at <= RETRY_WINDOW_MS ? hit : undefined;
  }
}
const SAMPLE_TEXT = 1024;

export function createKubernetesEngine(): Engine {
  // One keep-alive pool per connection, shared by its sessions (kubectl opens several).
  const upstreams = new WeakMap<KubernetesConnection, Upstream>();
  const refusals = new StreamRefusals();
  const upstreamFor = (c: KubernetesConnection, timeoutMs: number): Upstream => {
    let u = upstreams.get(c);
    if (u === undefined) {
      const t = c.target;
      u = createUpstream({
        url: t.server,
        ...(t.ca !== undefined ? { ca: t.ca } : {}),
        ...(t.clientCert !== undefined && t.clientKey !== undefined ? { clientCert: { cert: t.clientCert, key: t.clientKey } } : {}),
        connectTimeoutMs: timeoutMs,
      });
      upstreams.set(c, u);
    }
    return u;
  };
  return {
    async handle(client, session, signal) {
      const connection = session.connection as KubernetesConnection;
      session.audit.onSessionStart({ target: connection.target.server, clientUser: session.identity.name });
      const proxy = createHttpProxy({ upstream: upstreamFor(connection, session.connectTimeoutMs), hooks: hooks(session, connection, refusals), ...clientTimeouts(session.limits) });
      let failure: string | undefined;
      let totals = { bytesFromClient: 0, bytesToClient: 0 };
      try {
        totals = await proxy.handle(client, signal);
      } catch (err) {
        failure = (err as Error).message;
      }
      if (signal.aborted) failure ??= 'the gateway ended the session';
      session.audit.onSessionEnd({ status: failure ? 'error' : 'ok', ...(failure ? { message: failure } : {}), bytesFromClient: totals.bytesFromClient, bytesToClient: totals.bytesToClient });
    },
  };
}

/** A Kubernetes Status object, as the API server refuses (kubectl prints `Error from server (REASON): message`). */
export function statusResponse(code: number, reason: string, message: string): ProxyResponse {
  const body = Buffer.from(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code }));
  return { status: code, headers: { 'content-type': 'application/json' }, body };
}

/** The ports a WebSocket port-forward asks for (`?ports=80,443` or `?ports=80&ports=443`). */
function forwardedPorts(target: string): number[] {
  const query = new URL(target, 'http://k8s').searchParams;
  return query.getAll('ports').flatMap((v) => v.split(',')).map((p) => Number(p.trim()));
}

/** Every `Content-Type` value of a request (a server-side apply is told by it). */
const contentTypes = (raw: readonly string[]): string[] => raw.filter((v, i) => i % 2 === 1 && raw[i - 1]!.toLowerCase() === 'content-type');

const refusal = (code: number, reason: string, message: string): ProxyDecision => ({ verdict: 'block', refusal: statusResponse(code, reason, `sluice: ${message}`) });

function actionKind(info: Classification, req: ProxyRequest): K8sAction['kind'] {
  if (info.kind !== 'resource') return 'request';
  if (info.resource === 'pods' && STREAM_SUBRESOURCES.has(info.subresource)) return info.subresource as K8sAction['kind'];
  return info.verb === 'watch' && !req.upgrade ? 'watch' : 'request';
}

function hooks(session: SessionContext, connection: KubernetesConnection, refusals: StreamRefusals): ProxyHooks<K8sAction> {
  const { audit } = session;
  const budget: Budget = { left: TERMINAL_RECORD_BYTES, truncated: false };
  const token = connection.target.token;
  const echo = credentialEcho(token === undefined ? [] : secretValues({ authorization: `Bearer ${token}` }));
  const secretBuffers = echo.secrets.map((v) => Buffer.from(v, 'utf8'));
  const scrubbed = (a: K8sAction) => (n: number) => (a.scrubbed = (a.scrubbed ?? 0) + n);
  /** A recorded body sample: the core's (cut at its cap when the body was longer), then cut to SAMPLE_TEXT, scrubbed before each cut. */
  const sampleText = (sample: Buffer, bytes: number) => cutScrubbed(sample.toString('utf8'), SAMPLE_TEXT, echo.secrets, bytes > sample.length);

  /** What the gateway refuses whatever the rules say; undefined when the request may be judged. */
  const gatewayRefusal = (a: K8sAction, req: ProxyRequest): { code: number; reason: string; message: string } | undefined => {
    const authorization = headerValue(req.rawHeaders, 'authorization');
    const digest = session.localPasswordDigest;
    if (digest !== undefined) {
      const given = /^Bearer (.+)$/.exec(authorization ?? '')?.[1];
      const ok = given !== undefined && timingSafeEqual(createHash('sha256').update(given, 'utf8').digest(), digest);
      if (!ok) return { code: 401, reason: 'Unauthorized', message: 'wrong or missing local password (the kubeconfig `sluice connect --local-password` wrote carries it)' };
    } else if (authorization !== undefined && token === undefined) {
      // With a client certificate upstream, a client's own Authorization would be forwarded and
      // take precedence at the API server: the request would run as someone else.
      return { code: 400, reason: 'BadRequest', message: 'requests through the gateway carry no credential of their own (remove the user credentials from the kubeconfig)' };
    }
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      if (/^impersonate-/i.test(req.rawHeaders[i] ?? '')) return { code: 403, reason: 'Forbidden', message: 'impersonation headers are refused: requests run as the gateway\'s credential, judged by this connection\'s rules' };
    }
    if (req.upgrade && (a.kind === 'exec' || a.kind === 'attach')) {
      const upgrade = (headerValue(req.rawHeaders, 'upgrade') ?? '').toLowerCase();
      const offered = (headerValue(req.rawHeaders, 'sec-websocket-protocol') ?? '').split(',').map((p) => p.trim().replace(/^base64\./, ''));
      if (upgrade !== 'websocket' || !offered.some((p) => CHANNEL_PROTOCOLS.includes(p))) {
        return { code: 400, reason: 'BadRequest', message: `${a.kind} is served over WebSocket (v5.channel.k8s.io, kubectl 1.30 or later) so that the gateway can record it; this request asked for ${upgrade || 'no upgrade'}` };
      }
    }
    return undefined;
  };

  const record = (a: K8sAction, req: ProxyRequest): number => {
    const id = audit.onAction({ kind: a.kind, text: a.text });
    a.id = id;
    const info = a.info;
    const attributes = info.kind === 'resource' ? { verb: info.verb, apiGroup: info.apiGroup, apiVersion: info.apiVersion, resource: info.resource, subresource: info.subresource, namespace: info.namespace, name: info.name } : info.kind === 'nonResource' ? { verb: info.verb, nonResourcePath: info.path } : { unclassifiable: info.reason };
    const selected = Object.fromEntries(['user-agent', 'content-type', 'accept'].flatMap((h) => {
      const v = headerValue(req.rawHeaders, h);
      return v === undefined ? [] : [[h, v.slice(0, 300)]];
    }));
    audit.onEvent('k8s.request', { action: id, method: req.method, path: req.rawTarget.slice(0, 2048), ...attributes, headers: selected });
    return id;
  };

  const recordCoreRefusal = (req: ProxyRequest, outcome: ExchangeOutcome): void => {
    const reason = echo.text(outcome.error ?? `refused with ${outcome.status}`);
    try {
      const id = audit.onAction({ kind: 'request', text: `${req.method} ${echo.text(req.rawTarget.slice(0, 2048))}` });
      audit.onDecision({ queryId: id, verdict: 'block', rule: ENGINE_RULE, reason });
      audit.onOutcome({ queryId: id, status: 'error', code: String(outcome.status), message: reason, durationMs: outcome.durationMs });
    } catch (err) {
      if (!(err instanceof AuditUnavailableError)) throw err;
    }
  };

  const decide = async (a: K8sAction, req: ProxyRequest, signal: AbortSignal): Promise<ProxyDecision> => {
    const decision = await judge(a, req, signal);
    if (decision.verdict !== 'allow' && req.upgrade && (a.kind === 'exec' || a.kind === 'attach') && (headerValue(req.rawHeaders, 'upgrade') ?? '').toLowerCase() === 'websocket') {
      refusals.remember(retryKey(req), decision.refusal, 'websocket');
    }
    return decision;
  };
  const retryKey = (req: ProxyRequest) => `${session.identity.subject}\0${connection.name}\0${req.rawTarget}`;

  const judge = async (a: K8sAction, req: ProxyRequest, signal: AbortSignal): Promise<ProxyDecision> => {
    let id: number;
    try {
      id = record(a, req);
      const refused = gatewayRefusal(a, req);
      const earlier = refused !== undefined && req.upgrade && req.method === 'POST' ? refusals.take(retryKey(req)) : undefined;
      if (earlier !== undefined) {
        audit.onDecision({ queryId: id, verdict: 'block', rule: ENGINE_RULE, reason: 'the SPDY retry of a refused WebSocket request is refused the same way' });
        return { verdict: 'block', refusal: earlier.response };
      }
      if (refused !== undefined) {
        audit.onDecision({ queryId: id, verdict: 'block', rule: ENGINE_RULE, reason: refused.message });
        return refusal(refused.code, refused.reason, refused.message);
      }
      const verdict: KubernetesVerdict = judgeRequest(connection.policy, session.identity.groups, a.info, a.text);
      audit.onDecision({ queryId: id, verdict: verdict.verdict, ...(verdict.verdict !== 'allow' ? { rule: verdict.rule, reason: verdict.reason } : {}) });
      if (verdict.verdict === 'allow') return { verdict: 'allow' };
      if (verdict.verdict === 'block') return refusal(403, 'Forbidden', verdict.reason);
      if (session.reviews === undefined) return refusal(403, 'Forbidden', `${verdict.reason}; this gateway has no reviews configured`);
      const held = session.reviews.request({ action: a.text, kind: 'kubernetes', rule: verdict.rule, reason: verdict.reason, approvers: verdict.approvers, timeoutMs: verdict.timeoutMs }, signal);
      audit.onReview({ queryId: id, event: 'created', reviewId: held.id });
      session.log.info('kubernetes request held for review %s (rule %s): %s', held.id, verdict.rule, a.text);
      const outcome = await held.outcome;
      if (outcome.status === 'approved') {
        audit.onReview({ queryId: id, event: 'approved', reviewId: held.id, by: outcome.by, ...(outcome.reason ? { reason: outcome.reason } : {}) });
        return { verdict: 'allow' };
      }
      if (outcome.status === 'rejected') {
        audit.onReview({ queryId: id, event: 'rejected', reviewId: held.id, by: outcome.by, reason: outcome.reason });
        return { verdict: 'review', refusal: statusResponse(403, 'Forbidden', `sluice: review ${held.id} was rejected by ${outcome.by}: ${outcome.reason}; the request was not sent`) };
      }
      if (outcome.status === 'expired') audit.onReview({ queryId: id, event: 'expired', reviewId: held.id });
      return { verdict: 'review', refusal: statusResponse(403, 'Forbidden', `sluice: review ${held.id} ${outcome.status === 'expired' ? 'expired without a decision' : 'was cancelled'}; the request was not sent`) };
    } catch (err) {
      if (err instanceof AuditUnavailableError) return refusal(503, 'ServiceUnavailable', err.message);
      throw err;
    }
  };

  return {
    classify(req) {
      const info = classifyRequest(req.method, req.rawTarget, contentTypes(req.rawHeaders));
      const text = info.kind === 'unclassifiable' ? `${req.method} ${req.rawTarget.slice(0, 2048)}` : describeRequest(info);
      // Forwarded exactly as judged: an unclassifiable target reaches the server only when no rule applies.
      return { action: { info, text, kind: actionKind(info, req) }, target: req.rawTarget };
    },
    decide,
    inject() {
      const headers: Record<string, string> = {};
      // Replaces whatever the client sent (the local password, when one is asked) under the same name.
      if (token !== undefined) headers.Authorization = `Bearer ${token}`;
      return echo.upstreamHeaders(headers);
    },
    async transformResponse(a, req, res) {
      try {
        return await echo.rebuild(req.method, res, scrubbed(a));
      } catch (err) {
        if (!(err instanceof EchoRefusal)) throw err;
        throw new ProxyRefusal(statusResponse(502, 'InternalError', `sluice: ${err.message}`));
      }
    },
    responseFilter: (a) => echo.filter(scrubbed(a)),
    observeResponse(a) {
      if (a.kind !== 'watch') return undefined;
      const watch = new WatchRecorder(echo.secrets);
      a.watch = watch;
      return (chunk) => watch.observe(chunk);
    },
    upgradeScan(a) {
      if (echo.secrets.length === 0) return undefined;
      return {
        start(res) {
          const protocol = String(res.headers['sec-websocket-protocol'] ?? '').trim();
          // base64.channel.k8s.io carries the streams base64-coded: an echo would pass unrecognised.
          if (protocol.startsWith('base64.')) return { refuse: `the ${protocol} stream carries its data base64-coded, where the held token cannot be found; use a binary channel protocol (kubectl 1.30 or later)` };
          if (a.kind === 'portforward' && protocol.toLowerCase() === SPDY_PORTFORWARD) return new WsScrubber(secretBuffers, 'spdy', scrubbed(a), new SpdyScan(secretBuffers, scrubbed(a)));
          // SPDY tunnelled for anything but port-forward would reach the exec recorder as channel frames it is not.
          if (/spdy/i.test(protocol)) return { refuse: `${protocol} tunnels SPDY frames, which the gateway reads only for port-forward (SPDY/3.1+portforward.k8s.io); a stream it cannot scan for the held token is not relayed` };
          // The API server's streams with no subprotocol named are its binary channel protocol.
          const channel = CHANNEL_PROTOCOLS.includes(protocol) || (protocol === '' && a.kind !== 'request' && a.kind !== 'watch');
          return new WsScrubber(secretBuffers, channel ? 'channel' : 'raw', scrubbed(a));
        },
      };
    },
    observeUpgrade(a, req, res) {
      if (a.id === undefined) return undefined;
      const protocol = String(res.headers['sec-websocket-protocol'] ?? '').trim();
      if (a.kind === 'portforward') {
        const websocket = String(res.headers.upgrade ?? '').toLowerCase() === 'websocket';
        const spdy = websocket ? protocol.toLowerCase() === SPDY_PORTFORWARD : /^spdy\//i.test(String(res.headers.upgrade ?? ''));
        if (!spdy && (!websocket || (protocol !== '' && !CHANNEL_PROTOCOLS.includes(protocol)))) return undefined;
        const rec = new PortForwardRecorder(audit, a.id, spdy ? (websocket ? 'spdy-ws' : 'spdy') : 'channel', spdy ? [] : forwardedPorts(req.rawTarget));
        a.portForward = rec;
        return { fromClient: (c) => rec.fromClient(c), toClient: (c) => rec.toClient(c), close: () => rec.close() };
      }
      if (a.kind !== 'exec' && a.kind !== 'attach') return undefined;
      const rec = new ExecRecorder(audit, budget, a.id, protocol.startsWith('base64.'));
      a.exec = rec;
      return { fromClient: (c) => rec.fromClient(c), toClient: (c) => rec.toClient(c), close: () => undefined };
    },
    onOutcome(a, req, outcome) {
      if (a === undefined) {
        // Refused by the core before classify (an upgrade to a protocol it does not pass): recorded all the same.
        recordCoreRefusal(req, outcome);
        return;
      }
      if (a.id === undefined) return;
      if (a.watch) audit.onEvent('k8s.watch', { action: a.id, events: a.watch.events, first: a.watch.first.map(echo.text) });
      if (outcome.result !== 'refused') {
        audit.onEvent('k8s.response', {
          action: a.id,
          status: outcome.status,
          requestBytes: outcome.requestBytes,
          responseBytes: outcome.responseBytes,
          ...(a.exec === undefined && a.portForward === undefined && outcome.requestSample.length > 0 ? { requestSample: sampleText(outcome.requestSample, outcome.requestBytes) } : {}),
          ...(a.exec === undefined && a.portForward === undefined && outcome.responseSample.length > 0 ? { responseSample: sampleText(outcome.responseSample, outcome.responseBytes) } : {}),
          ...(a.scrubbed !== undefined ? { credentialEchoesScrubbed: a.scrubbed } : {}),
        });
      }
      const exit = a.exec?.exit;
      const ok = outcome.result !== 'failed' && outcome.status > 0 && outcome.status < 400 && (exit === undefined || exit === '0');
      audit.onOutcome({
        queryId: a.id,
        status: ok ? 'ok' : 'error',
        code: exit ?? String(outcome.status),
        ...(outcome.error ? { message: echo.text(outcome.error) } : a.exec?.statusMessage ? { message: echo.text(a.exec.statusMessage) } : {}),
        durationMs: outcome.durationMs,
        bytes: outcome.responseBytes,
      });
    },
    errorResponse: (status, message) => statusResponse(status, status === 502 ? 'ServiceUnavailable' : 'BadRequest', `sluice: ${message}`),
  };
}
