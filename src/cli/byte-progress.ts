// Bytes moved by get and put, as one line on a terminal (stderr), redrawn at most every 100 ms;
// nothing when stderr is not a terminal, so logs and pipes stay clean.
import { percent, progressBar } from './progress.js';
import { formatBytes } from './table.js';

export class ByteProgress {
  private done_ = 0;
  private last = 0;
  private readonly tty = process.stderr.isTTY === true;
  constructor(private readonly total: number) {}
  add(n: number): void {
    this.done_ += n;
    if (!this.tty || Date.now() - this.last < 100) return;
    this.last = Date.now();
    process.stderr.write(`\r${progressBar(this.done_, this.total)} ${percent(this.done_, this.total)} ${formatBytes(this.done_)} of ${formatBytes(this.total)}   `);
  }
  done(): void {
    if (this.tty) process.stderr.write(`\r${progressBar(this.total, this.total)} 100% ${formatBytes(this.total)}\n`);
  }
  /** Ends the line early (an error follows on its own line). */
  stop(): void {
    if (this.tty) process.stderr.write('\n');
  }
}
