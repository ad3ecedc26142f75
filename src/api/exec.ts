// The exec half of the gateway API: `POST /v1/connections/NAME/exec` answers with NDJSON events
// (src/api/contract.ts) as the target produces them. The body is read as a stream and split into
// lines here, one event at a time, so a result of millions of rows never sits whole in memory;
// every line is validated against the contract, and a stream that stops before its `end` event is
// an error, never a silent success. This path is what CI jobs and agents run many times over, so it
// loads neither undici nor zod (node:https and execEvents.ts instead): each costs a short exec more
// than its round trip to the gateway.
import type { Agent as HttpAgent, IncomingMessage } from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import type { CredentialSource } from '../auth/credentials.js';
import { CliError } from '../errors.js';
import type { ExecEvent, ExecRequest } from './contract.js';
import type { GatewayTarget } from './gatewayTarget.js';
import { checkExecEvent } from './execEvents.js';
import { EXEC_CONTENT_TYPE, paths } from './paths.js';
import { describeNetworkError, errorFromResponse } from './refusal.js';

export interface ExecClient {
  /**
   * Starts an exec and resolves once the gateway accepted it (2xx); iterate the result for its
   * events, which always end with one `end` event. Aborting `signal` drops the request, and the
   * gateway then cancels the running statement (or the pending review) on its side.
   */
  exec(name: string, request: ExecRequest, signal: AbortSignal): Promise<AsyncIterable<ExecEvent>>;
}

/** A single line longer than this is not an answer we can trust to stream: fail rather than grow. */
export const MAX_EVENT_LINE_BYTES = 64 * 1024 * 1024;
/** How much of a refusal's body is read to find its message. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

/**
 * The exec client. `pool` is the local agent's (src/agent/server.ts): kept-alive connections to the
 * gateway shared by its execs; without it each exec opens a connection of its own.
 */
export function createExecClient(endpoint: GatewayTarget, credentials: CredentialSource, pool?: HttpAgent): ExecClient {
  return {
    async exec(name, request, signal) {
      const token = await credentials.token();
      let res: IncomingMessage;
      try {
        res = await post(endpoint, paths.exec(name), token, JSON.stringify(request), signal, pool);
      } catch (err) {
        if (signal.aborted) throw err;
        throw new CliError(describeNetworkError(endpoint, err));
      }
      const status = res.statusCode ?? 0;
      if (status < 200 || status > 299) {
        throw errorFromResponse(status, await readErrorBody(res));
      }
      const type = String(res.headers['content-type'] ?? '');
      if (!type.startsWith(EXEC_CONTENT_TYPE)) {
        discard(res);
        throw new CliError(`the gateway at ${endpoint.url} answered the exec with "${type || 'no content type'}" instead of ${EXEC_CONTENT_TYPE} (is this a Sluice gateway that supports exec?)`);
      }
      return parseExecStream(res, (err) => (signal.aborted ? err : brokeOff(`the connection failed (${networkCode(err)})`)));
    },
  };
}

/**
 * Sends the exec request and resolves with the response once its headers arrive: on a connection
 * of its own (one exec, one request: nothing to keep alive), or on one of `pool`'s. With a CA file
 * the gateway must chain to exactly that CA; without one, to the system roots. Node's client sets
 * TCP_NODELAY, so the request leaves at once. No timeout: a statement may run for hours without a
 * row; the gateway's own timeout (--timeout) and its keep-alives during reviews decide how long
 * silence may last.
 */
async function post(endpoint: GatewayTarget, path: string, token: string, body: string, signal: AbortSignal, pool: HttpAgent | undefined, mayRetry = true): Promise<IncomingMessage> {
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), accept: EXEC_CONTENT_TYPE };
  const url = new URL(endpoint.url + path);
  const tls = url.protocol === 'https:';
  const { request } = tls ? await import('node:https') : await import('node:http');
  const req = request(url, {
    method: 'POST',
    headers,
    agent: pool ?? false,
    signal,
    ...(tls && endpoint.ca !== undefined ? { ca: endpoint.ca } : {}),
  });
  try {
    return await new Promise<IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.once('error', reject);
      req.end(body);
    });
  } catch (err) {
    // A kept-alive connection the gateway closed just as this request went out: the gateway read
    // nothing, so sending again is safe (what Node's docs advise for reusedSocket).
    if (mayRetry && req.reusedSocket && (err as NodeJS.ErrnoException).code === 'ECONNRESET' && !signal.aborted) {
      return post(endpoint, path, token, body, signal, pool, false);
    }
    throw err;
  }
}

/**
 * The events of an NDJSON exec body, validated one line at a time. Stops after `end`; a line that
 * is not a valid event, or a body that ends before `end`, raises "the gateway's answer broke off".
 * Leaving the loop early destroys the body, which closes the request.
 */
export async function* parseExecStream(
  body: AsyncIterable<Buffer | string> & { destroy?: () => unknown },
  onNetworkError: (err: unknown) => unknown = (err) => err,
): AsyncGenerator<ExecEvent> {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  let line = 0;
  let ended = false;
  try {
    try {
      for await (const chunk of body) {
        // Search only the new text for line ends, so a long line arriving in many chunks costs
        // one pass, not one pass per chunk.
        let searchFrom = pending.length;
        pending += typeof chunk === 'string' ? chunk : decoder.write(chunk);
        let start = 0;
        let nl: number;
        while ((nl = pending.indexOf('\n', searchFrom)) !== -1) {
          const text = pending.slice(start, nl);
          start = searchFrom = nl + 1;
          line++;
          if (text.trim() === '') continue;
          const event = parseLine(text, line);
          yield event;
          if (event.type === 'end') {
            ended = true;
            return;
          }
        }
        pending = pending.slice(start);
        if (pending.length > MAX_EVENT_LINE_BYTES) throw brokeOff(`line ${line + 1} is longer than ${MAX_EVENT_LINE_BYTES} characters`);
      }
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw onNetworkError(err);
    }
    pending += decoder.end();
    if (pending.trim() !== '') {
      const event = parseLine(pending, line + 1);
      yield event;
      if (event.type === 'end') {
        ended = true;
        return;
      }
    }
    throw brokeOff('the stream ended before its end event (the connection closed early)');
  } finally {
    if (!ended) discard(body);
  }
}

function parseLine(text: string, line: number): ExecEvent {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw brokeOff(`line ${line} is not JSON`);
  }
  const checked = checkExecEvent(value);
  if ('problem' in checked) throw brokeOff(`line ${line} is not an exec event (${checked.problem})`);
  return checked.event;
}

function networkCode(err: unknown): string {
  const e = err as { code?: string; message?: string; cause?: { code?: string } };
  return e.cause?.code ?? e.code ?? e.message ?? String(err);
}

function brokeOff(detail: string): CliError {
  return new CliError(`the gateway's answer broke off: ${detail}; statements before the break may have run (see \`sluice sessions\`)`);
}

/** Closes a body we stop reading; the abort error that closing raises on it is expected, not news. */
function discard(body: { destroy?: () => unknown; on?: (event: 'error', listener: () => void) => unknown }): void {
  body.on?.('error', () => {});
  body.destroy?.();
}

async function readErrorBody(body: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    chunks.push(chunk);
    size += chunk.length;
    if (size > MAX_ERROR_BODY_BYTES) {
      discard(body);
      break;
    }
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    return undefined;
  }
}
