/**
 * What push, fetch, pull and clone share on the command line: the --jobs option, a byte-counting
 * transport driving the progress bar (bytes and rate, on a TTY), and the closing summary.
 */
import { CountingBackend, type TransferCounts } from '../backend/countingBackend.js';
import type { Backend } from '../backend/backend.js';
import { numberOption } from './context.js';
import { humanBytes, type Output } from './output.js';

export const jobsOption = { type: 'number', describe: 'transfers in parallel (default 4)', default: 4 } as const;

/** The --jobs value, checked: a whole number of at least 1 (`-j 0` or `-j abc` is a usage error). */
export function jobsOf(argv: { jobs?: unknown }): number {
  return numberOption(argv.jobs, 'jobs', { whole: true, min: 1 }) as number;
}

export interface Metered {
  transport: CountingBackend;
  onProgress: (done: number, total: number) => void;
  finish(): { seconds: number } & TransferCounts;
}

export function metered(out: Output, label: string, t: Backend): Metered {
  const start = Date.now();
  const progress = out.progress(label);
  const transport = new CountingBackend(t);
  return {
    transport,
    onProgress: (done, total) => progress.update(done, total),
    finish() {
      progress.stop();
      return { seconds: (Date.now() - start) / 1000, ...transport.counts };
    },
  };
}

export function summary(verb: string, bytes: number, seconds: number): string {
  return `${verb} ${humanBytes(bytes)} in ${seconds.toFixed(1)} s (${humanBytes(bytes / Math.max(seconds, 0.001))}/s)`;
}
