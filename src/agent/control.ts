// The CLI's side of the agent's own requests (status, stop), over its socket: used by `sluice agent
// start|stop|status`. Execs go through src/agent/client.ts.
import { connect } from 'node:net';
import { Frame, frame, frameReader } from './client.js';
import type { AgentStatus } from './server.js';
import { checkAgentSocket } from './socket.js';

export type { AgentStatus };

export type AgentProbe = { state: 'running'; status: AgentStatus } | { state: 'none' } | { state: 'stale' } | { state: 'unsafe'; problem: string };

/** What is at `socketPath`: a live agent (with its status), nothing, a dead socket, or something not to trust. */
export async function probeAgent(socketPath: string): Promise<AgentProbe> {
  const check = checkAgentSocket(socketPath);
  if (check.state === 'missing') return { state: 'none' };
  if (check.state === 'unsafe') return check;
  try {
    return { state: 'running', status: (await call(socketPath, Frame.status)) as AgentStatus };
  } catch {
    return { state: 'stale' };
  }
}

export async function stopAgent(socketPath: string): Promise<void> {
  await call(socketPath, Frame.stop);
}

/** Sends one control frame and resolves with the agent's JSON answer. */
function call(socketPath: string, type: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    const timer = setTimeout(() => socket.destroy(new Error('the agent did not answer')), 5_000);
    const read = frameReader((t, payload) => {
      clearTimeout(timer);
      socket.destroy();
      try {
        if (t !== Frame.control) throw new Error('the agent answered something else');
        resolve(JSON.parse(payload.toString('utf8')));
      } catch (err) {
        reject(err as Error);
      }
    });
    socket.once('connect', () => socket.write(frame(type)));
    socket.on('data', (chunk: Buffer) => {
      try {
        read(chunk);
      } catch (err) {
        socket.destroy(err as Error);
      }
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      reject(new Error('the agent closed the connection'));
    });
  });
}
