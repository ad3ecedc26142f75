// The CLI's side of the agent's own requests (status, stop), over its socket: used by `sluice agent
// start|stop|status`. The exec relay itself goes through src/api/exec.ts like a direct exec.
import { request } from 'node:http';
import { AGENT_PATHS } from './server.js';
import { checkAgentSocket } from './socket.js';

export interface AgentStatus {
  pid: number;
  gateway: string;
  startedAt: string;
  served: number;
  active: number;
  idleMs: number;
}

export type AgentProbe = { state: 'running'; status: AgentStatus } | { state: 'none' } | { state: 'stale' } | { state: 'unsafe'; problem: string };

/** What is at `socketPath`: a live agent (with its status), nothing, a dead socket, or something not to trust. */
export async function probeAgent(socketPath: string): Promise<AgentProbe> {
  const check = checkAgentSocket(socketPath);
  if (check.state === 'missing') return { state: 'none' };
  if (check.state === 'unsafe') return check;
  try {
    return { state: 'running', status: (await call(socketPath, 'GET', AGENT_PATHS.status)) as AgentStatus };
  } catch {
    return { state: 'stale' };
  }
}

export async function stopAgent(socketPath: string): Promise<void> {
  await call(socketPath, 'POST', AGENT_PATHS.stop);
}

function call(socketPath: string, method: string, path: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, agent: false, timeout: 5_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.once('end', () => {
        try {
          if (res.statusCode !== 200) throw new Error(`the agent answered ${res.statusCode}`);
          resolve(JSON.parse(text));
        } catch (err) {
          reject(err as Error);
        }
      });
      res.once('error', reject);
    });
    req.once('timeout', () => req.destroy(new Error('the agent did not answer')));
    req.once('error', reject);
    req.end();
  });
}
