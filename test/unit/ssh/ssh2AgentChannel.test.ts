// The one use of ssh2 internals (opening an agent channel to the client) is pinned to the ssh2
// version it was checked against: an upgrade fails here until someone re-reads server.js,
// Protocol.js and Channel.js and moves the pin. The internals it needs are checked too, and their
// absence refuses the channel instead of throwing (test/integration/ssh-cli.test.ts uses them).
import { createRequire } from 'node:module';
import ssh2 from 'ssh2';
import { describe, expect, it } from 'vitest';
import { agentChannelUnsupported, openAgentChannel, SSH2_VERSION_CHECKED, ssh2Version } from '../../../gateway/engines/ssh/ssh2AgentChannel.js';

const require = createRequire(import.meta.url);

describe('ssh2 agent channel', () => {
  it('the installed ssh2 is the version the internals were checked against', () => {
    expect(ssh2Version).toBe((require('ssh2/package.json') as { version: string }).version);
    expect(ssh2Version, 'ssh2 was upgraded: re-check gateway/engines/ssh/ssh2AgentChannel.ts against its server.js, Protocol.js and Channel.js, then move SSH2_VERSION_CHECKED').toBe(SSH2_VERSION_CHECKED);
    expect(agentChannelUnsupported()).toBeUndefined();
  });

  it('the internals exist: the Protocol method and the window sizes Channel uses', () => {
    const { MAX_WINDOW, PACKET_SIZE } = require('ssh2/lib/Channel.js') as { MAX_WINDOW: number; PACKET_SIZE: number };
    expect(MAX_WINDOW).toBeGreaterThan(0);
    expect(PACKET_SIZE).toBeGreaterThan(0);
    const Protocol = require('ssh2/lib/protocol/Protocol.js') as { prototype: Record<string, unknown> };
    expect(typeof Protocol.prototype.openssh_authAgent).toBe('function');
  });

  it('a connection without the internals refuses the channel with a reason, never throws', () => {
    let got: Error | undefined;
    openAgentChannel({} as ssh2.Connection, (err) => (got = err));
    expect(got?.message).toMatch(/internals/);
  });
});
