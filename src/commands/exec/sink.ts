// Collects what one event prints and hands it to stdout in one write, then waits for 'drain' when
// stdout's buffer is full. The exec loop awaits `flush()` before pulling the next event, so a slow
// reader (a pipe into another program) slows the gateway's stream instead of growing our memory.
import { CliError } from '../../errors.js';
import type { TableSink } from '../../output/table.js';

export class StdoutSink implements TableSink {
  private parts: string[] = [];
  private failure: Error | undefined;
  private readonly onError = (err: Error) => (this.failure ??= err);

  constructor(private readonly stream: NodeJS.WritableStream) {
    // A reader that went away (EPIPE from `| head`) is reported here, not as an uncaught event.
    stream.on('error', this.onError);
  }

  write(chunk: string): void {
    this.parts.push(chunk);
  }

  async flush(): Promise<void> {
    this.check();
    if (this.parts.length === 0) return;
    const text = this.parts.length === 1 ? (this.parts[0] as string) : this.parts.join('');
    this.parts = [];
    if (this.stream.write(text)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.stream.off('drain', done);
        this.stream.off('error', done);
        this.stream.off('close', done);
        resolve();
      };
      this.stream.on('drain', done);
      this.stream.on('error', done);
      this.stream.on('close', done);
    });
    this.check();
  }

  close(): void {
    this.stream.off('error', this.onError);
  }

  private check(): void {
    if (this.failure) {
      const code = (this.failure as NodeJS.ErrnoException).code;
      throw new CliError(`stdout closed before all results were written${code ? ` (${code})` : ''}; the rest of the exec was cancelled`);
    }
  }
}
