/**
 * Where CLI output goes: results to stdout (text, or one JSON document with --json), progress and
 * logs to stderr, progress bars only on a TTY and never with -q.
 */
import cliProgress from 'cli-progress';

export interface GlobalFlags {
  json?: boolean;
  quiet?: boolean;
}

export interface Progress {
  update(done: number, total: number): void;
  stop(): void;
}

const noProgress: Progress = { update: () => undefined, stop: () => undefined };

export class Output {
  readonly json: boolean;
  readonly quiet: boolean;
  readonly color: boolean;

  constructor(flags: GlobalFlags) {
    this.json = Boolean(flags.json);
    this.quiet = Boolean(flags.quiet);
    this.color = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR && !this.json;
  }

  /** A line of human output (suppressed with --json, which prints `result` instead). */
  line(text = ''): void {
    if (!this.json) process.stdout.write(`${text}\n`);
  }

  result(value: unknown): void {
    if (this.json) process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  info(text: string): void {
    if (!this.quiet) process.stderr.write(`${text}\n`);
  }

  paint(code: number, text: string): string {
    return this.color ? `\x1b[${code}m${text}\x1b[0m` : text;
  }

  progress(label: string): Progress {
    if (this.quiet || !process.stderr.isTTY) return noProgress;
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} [{bar}] {percentage}% {done}/{all} {rate}`,
        stream: process.stderr,
        hideCursor: true,
        clearOnComplete: true,
      },
      cliProgress.Presets.shades_classic,
    );
    const start = Date.now();
    let started = false;
    return {
      update(done, total) {
        const payload = { done: humanBytes(done), all: humanBytes(total), rate: `${humanBytes(done / Math.max(0.001, (Date.now() - start) / 1000))}/s` };
        if (!started) {
          bar.start(total, done, payload);
          started = true;
        } else bar.update(done, payload);
      },
      stop() {
        if (started) bar.stop();
      },
    };
  }
}

// shared with the view page, which cannot import this file's terminal code
import { humanBytes } from '../core/humanBytes.js';
export { humanBytes };

export function shortId(id: string): string {
  return id.slice(0, 12);
}

/** Left-aligned columns, each as wide as its widest cell. */
export function table(rows: string[][], rightAlign: number[] = []): string[] {
  const widths: number[] = [];
  // eslint-disable-next-line no-control-regex
  const visible = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '').length;
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, visible(c))));
  return rows.map((r) =>
    r
      .map((c, i) => {
        const pad = ' '.repeat(widths[i] - visible(c));
        return rightAlign.includes(i) ? pad + c : i === r.length - 1 ? c : c + pad;
      })
      .join('  ')
      .trimEnd(),
  );
}
