// The http engine's answers to the proxy core's questions for each request (httpProxy/types.ts):
// what the request is (its normalised path, judged by the rules that apply to the caller),
// whether it may go (block, or hold for a review), which held headers it carries, how its
// response is masked and scrubbed, and what the audit trail records of it. The injected
// credentials never reach the record: samples and headers are scrubbed of them, and only an
// allow-list of header names is kept.
import { AuditUnavailableError } from '../../audit/contract.js';
import { ProxyRefusal, type ProxyDecision, type ProxyHooks, type ProxyRequest } from '../../httpProxy/types.js';
import type { HttpConnection } from '../../model.js';
import type { SessionContext } from '../types.js';
import type { JsonMaskResult } from './jsonMask.js';
import { normaliseTarget } from './path.js';
import { alternateReadings, pathSpellings } from './readings.js';
import { judgeRequest, rulesFor, type HttpVerdict } from './policy.js';
import { coreErrorResponse, refusal } from './refusals.js';
import { MaskRefusal, maskJsonResponse } from './responseMask.js';
import { discardBody, hasNoBody } from '../../httpProxy/bodyDecoding.js';
import { credentialEcho, EchoRefusal, secretValues } from '../../httpProxy/credentialEcho.js';
import { scrubInPlace } from '../../httpProxy/scrub.js';
import { cutScrubbed } from '../../httpProxy/sampleCut.js';
import { WsScrubber } from '../../httpProxy/wsScrub.js';

export interface HttpAction {
  readonly method: string;
  /** The path the rules judged (decoded and resolved when any rule applies). */
  readonly path: string;
  /** The request-target sent upstream. */
  readonly target: string;
  readonly verdict: HttpVerdict;
  id?: number;
  masked?: JsonMaskResult;
  /** The upstream response's allow-listed headers, for the record. */
  responseHeaders?: Record<string, string>;
  scrubbed: number;
}

/** The rule id recorded when a request cannot be judged while rules apply. */
export const UNJUDGEABLE_RULE = 'http.unjudgeable-request';

/** Request and response header names kept in the record; everything else (credentials, cookies) is not. */
const RECORDED_HEADERS = new Set(['content-type', 'content-length', 'content-encoding', 'accept', 'accept-encoding', 'user-agent', 'x-request-id', 'location', 'upgrade']);

export function recordedHeaders(raw: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (RECORDED_HEADERS.has(name)) out[name] = raw[i + 1]!.slice(0, 256);
  }
  return out;
}

/** recordedHeaders of a response's header object (the last of a repeated field), without flattening it. */
function recordedResponseHeaders(headers: Readonly<Record<string, string | string[]>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name in headers) {
    const lower = name.toLowerCase();
    if (!RECORDED_HEADERS.has(lower)) continue;
    const h = headers[name]!;
    const value = Array.isArray(h) ? h[h.length - 1] : h;
    if (value !== undefined) out[lower] = value.slice(0, 256);
  }
  return out;
}

export function createHttpHooks(ctx: { session: SessionContext; connection: HttpConnection; signal: AbortSignal }): ProxyHooks<HttpAction> {
  const { session, connection } = ctx;
  const { audit } = session;
  const policy = connection.policy;
  const rules = rulesFor(policy, session.identity.groups);
  const echo = credentialEcho(secretValues(connection.target.headers));
  const secretBuffers = echo.secrets.map((s) => Buffer.from(s, 'utf8'));
  // A sample the core cut at its cap may end in the beginning of an echo whose rest was cut off: cutScrubbed overwrites that too.
  const sampleText = (b: Buffer, bytes: number) => cutScrubbed(b.toString('utf8'), Number.MAX_SAFE_INTEGER, echo.secrets, bytes > b.length);

  /** Requests refused (and recorded) before a rule judged them: the core reports them again with no action. */
  const recordedUnjudged = new WeakSet<ProxyRequest>();
  /** Records a request refused before it was judged by a rule. */
  const recordUnjudged = (req: ProxyRequest, reason: string, code: number): void => {
    recordedUnjudged.add(req);
    try {
      const id = audit.onAction({ kind: 'http', text: `${req.method} ${echo.text(req.rawTarget)}` });
      audit.onDecision({ queryId: id, verdict: 'block', rule: UNJUDGEABLE_RULE, reason });
      audit.onOutcome({ queryId: id, status: 'error', code: String(code), message: reason, durationMs: 0 });
    } catch (err) {
      if (!(err instanceof AuditUnavailableError)) throw err;
    }
  };
  /** Records a request refused before it was judged by a rule, and throws its refusal. */
  const refuseUnjudged = (req: ProxyRequest, reason: string): never => {
    recordUnjudged(req, reason, 400);
    throw new ProxyRefusal(refusal(400, 'unjudgeable_request', reason, { rule: UNJUDGEABLE_RULE }));
  };

  return {
    classify(req) {
      if (!req.rawTarget.startsWith('/')) refuseUnjudged(req, 'only origin-form request targets (/path?query) are accepted through the gateway');
      if (rules.length === 0) {
        const q = req.rawTarget.indexOf('?');
        const path = q < 0 ? req.rawTarget : req.rawTarget.slice(0, q);
        return { action: { method: req.method, path, target: req.rawTarget, verdict: { verdict: 'allow' }, scrubbed: 0 }, target: req.rawTarget };
      }
      const n = normaliseTarget(req.rawTarget);
      if (!n.ok) return refuseUnjudged(req, n.reason);
      const also = alternateReadings(req.method, n.target, req.rawHeaders);
      if ('reason' in also) return refuseUnjudged(req, also.reason);
      const paths: string[] = [];
      for (const p of [n.path, ...also.paths]) {
        const spelled = pathSpellings(p);
        if ('reason' in spelled) return refuseUnjudged(req, spelled.reason);
        paths.push(...spelled);
      }
      let verdict = judgeRequest(policy!, rules, req.method, n.path, { methods: also.methods, paths: paths.slice(1) });
      if (req.upgrade && verdict.verdict !== 'block' && verdict.mask !== undefined) {
        const rule = verdict.mask.paths[0]!.rule;
        verdict = { verdict: 'block', rule, reason: `a protocol upgrade carries a raw stream the gateway cannot mask, and rule ${rule} masks ${n.path}` };
      }
      return { action: { method: req.method, path: n.path, target: n.target, verdict, scrubbed: 0 }, target: n.target };
    },

    async decide(action, req, clientGone): Promise<ProxyDecision> {
      const v = action.verdict;
      try {
        action.id = audit.onAction({ kind: 'http', text: `${action.method} ${action.target}`, deferCommit: true });
        audit.onEvent('http.request', { action: action.id, method: action.method, target: action.target, path: action.path, headers: recordedHeaders(req.rawHeaders), ...(req.upgrade ? { upgrade: true } : {}) });
        audit.onDecision({ queryId: action.id, verdict: v.verdict, ...(v.verdict !== 'allow' ? { rule: v.rule, reason: v.reason } : {}), deferCommit: true });
        await audit.flush();
      } catch (err) {
        if (!(err instanceof AuditUnavailableError)) throw err;
        return { verdict: 'block', refusal: refusal(503, 'audit_unavailable', err.message) };
      }
      if (v.verdict === 'allow') return { verdict: 'allow' };
      if (v.verdict === 'block') return { verdict: 'block', refusal: refusal(403, 'blocked', v.reason, { rule: v.rule }) };
      const id = action.id;
      if (session.reviews === undefined) return { verdict: 'review', refusal: refusal(403, 'review_unavailable', `${v.reason}, and this gateway has no review service`, { rule: v.rule }) };
      const held = session.reviews.request({ action: `${action.method} ${action.target}`, kind: 'http', rule: v.rule, reason: v.reason, approvers: v.approvers, timeoutMs: v.timeoutMs }, AbortSignal.any([ctx.signal, clientGone]));
      audit.onReview({ queryId: id, event: 'created', reviewId: held.id });
      session.log.info({ review: held.id, rule: v.rule }, 'http request held for review');
      const outcome = await held.outcome;
      if (outcome.status === 'approved') {
        audit.onReview({ queryId: id, event: 'approved', reviewId: held.id, by: outcome.by, ...(outcome.reason ? { reason: outcome.reason } : {}) });
        return { verdict: 'allow' };
      }
      if (outcome.status === 'rejected') {
        audit.onReview({ queryId: id, event: 'rejected', reviewId: held.id, by: outcome.by, reason: outcome.reason });
        return { verdict: 'review', refusal: refusal(403, 'review_rejected', `review ${held.id} was rejected by ${outcome.by}: ${outcome.reason}; the request was not sent`, { rule: v.rule, review: held.id }) };
      }
      if (outcome.status === 'expired') audit.onReview({ queryId: id, event: 'expired', reviewId: held.id });
      return { verdict: 'review', refusal: refusal(403, 'review_expired', `review ${held.id} ${outcome.status === 'expired' ? 'expired without a decision' : 'was cancelled'}; the request was not sent`, { rule: v.rule, review: held.id }) };
    },

    inject(action) {
      // A masked response must arrive whole and decodable: ask for it unencoded (others are decoded anyway).
      const headers = echo.upstreamHeaders(connection.target.headers);
      return action.verdict.verdict !== 'block' && action.verdict.mask !== undefined ? { ...headers, 'accept-encoding': 'identity' } : headers;
    },

    async transformResponse(action, req, res) {
      const v = action.verdict;
      const scrubbed = echo.headers(res.headers);
      action.responseHeaders = recordedResponseHeaders(scrubbed.headers);
      const count = (n: number) => (action.scrubbed += n);
      if (v.verdict !== 'block' && v.mask !== undefined && !hasNoBody(req.method, res.status)) {
        const ruleIds = [...new Set(v.mask.paths.map((p) => p.rule))].join(', ');
        try {
          const masked = await maskJsonResponse({ ...res, headers: scrubbed.headers }, v.mask, policy?.hashKey, ruleIds);
          action.masked = masked.result;
          count(scrubbed.hits + scrubInPlace(masked.response.body, secretBuffers));
          return masked.response;
        } catch (err) {
          if (!(err instanceof MaskRefusal)) throw err;
          discardBody(res.body);
          throw new ProxyRefusal(refusal(502, 'unmaskable_response', err.message, { rule: ruleIds }));
        }
      }
      try {
        return await echo.rebuild(req.method, res, count);
      } catch (err) {
        if (!(err instanceof EchoRefusal)) throw err;
        throw new ProxyRefusal(refusal(502, 'unscannable_response', err.message));
      }
    },

    upgradeScan(action) {
      // The frames' payloads are scanned as they are: what a service codes inside them (base64, its own compression) is its own, as in a body.
      if (secretBuffers.length === 0) return undefined;
      return { start: () => new WsScrubber(secretBuffers, 'raw', (n) => (action.scrubbed += n)) };
    },

    responseFilter(action) {
      return echo.filter((n) => (action.scrubbed += n));
    },

    onOutcome(action, req, outcome) {
      // Refused by the core before any hook saw it (an upgrade to a protocol it does not pass): recorded all the same.
      if (action === undefined && !recordedUnjudged.has(req)) recordUnjudged(req, echo.text(outcome.error ?? `refused with ${outcome.status}`), outcome.status);
      if (action?.id === undefined) return;
      const id = action.id;
      const ok = outcome.result !== 'failed' && outcome.result !== 'refused' && outcome.status > 0 && outcome.status < 400;
      audit.onEvent('http.response', {
        action: id,
        status: outcome.status,
        result: outcome.result,
        ...(action.responseHeaders ? { headers: action.responseHeaders } : {}),
        requestBytes: outcome.requestBytes,
        responseBytes: outcome.responseBytes,
        ...(outcome.requestSample.length > 0 ? { requestSample: sampleText(outcome.requestSample, outcome.requestBytes) } : {}),
        ...(outcome.responseSample.length > 0 ? { responseSample: sampleText(outcome.responseSample, outcome.responseBytes) } : {}),
        ...(action.masked ? { maskedPaths: action.masked.maskedPaths, valuesMasked: action.masked.valuesMasked, detectorHits: action.masked.detectorHits } : {}),
        ...(action.scrubbed > 0 ? { credentialEchoesScrubbed: action.scrubbed } : {}),
      });
      audit.onOutcome({ queryId: id, status: ok ? 'ok' : 'error', code: String(outcome.status), ...(outcome.error ? { message: echo.text(outcome.error) } : {}), durationMs: outcome.durationMs, bytes: outcome.responseBytes });
    },

    errorResponse: coreErrorResponse,
  };
}
