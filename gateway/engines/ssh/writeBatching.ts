// ssh2 writes every ssh packet to its socket on its own: one syscall per packet towards the target
// (32 KiB at most, sshd's packet limit), and one TLS record plus a syscall per packet on the
// tunnel, however many packets one read produced. Corking the socket at the first write of a tick
// and uncorking at the tick's end hands all of them to the kernel in one writev (on the tunnel:
// one SSL_write, so full TLS records). Bytes and their order are unchanged; only the batching is.
import type { Duplex } from 'node:stream';

export function batchWritesPerTick(socket: Duplex): void {
  const write = socket.write;
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  socket.write = function (this: Duplex, ...args: Parameters<Duplex['write']>): boolean {
    if (!corked && !socket.destroyed) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    return write.apply(this, args);
  } as Duplex['write'];
}
