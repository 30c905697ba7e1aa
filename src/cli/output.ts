/**
 * Where CLI output goes: results to stdout (text, or one JSON document with --json), progress and
 * logs to stderr, progress bars only on a TTY and never with -q. The streams, folder and
 * environment of a run are a `CliIo`, so the CLI can run in process with streams of its own.
 */
import { createRequire } from 'node:module';
import type * as CliProgress from 'cli-progress';

// loaded when a bar is first drawn (on a terminal, without -q): no run's start-up cost otherwise
const loadCliProgress = () => createRequire(import.meta.url)('cli-progress') as typeof CliProgress;

/** A stream the CLI writes to: process.stdout, or any writable (a terminal when isTTY). */
export type CliStream = NodeJS.WritableStream & { isTTY?: boolean; columns?: number };

/** What one run of the CLI reads from and writes to, instead of the process's own. */
export interface CliIo {
  stdout: CliStream;
  stderr: CliStream;
  /** The folder the command runs in (`--cwd` resolves against it). */
  cwd: string;
  env: Record<string, string | undefined>;
}

/** The process's own streams, folder and environment: what `bin/ckpt` runs with. */
export function processIo(): CliIo {
  return { stdout: process.stdout, stderr: process.stderr, cwd: process.cwd(), env: process.env };
}

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
  readonly io: CliIo;

  constructor(flags: GlobalFlags, io: CliIo = processIo()) {
    this.io = io;
    this.json = Boolean(flags.json);
    this.quiet = Boolean(flags.quiet);
    this.color = Boolean(io.stdout.isTTY) && !io.env.NO_COLOR && !this.json;
  }

  /** A line of human output (suppressed with --json, which prints `result` instead). */
  line(text = ''): void {
    if (!this.json) this.io.stdout.write(`${text}\n`);
  }

  result(value: unknown): void {
    if (this.json) this.io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  info(text: string): void {
    if (!this.quiet) this.io.stderr.write(`${text}\n`);
  }

  paint(code: number, text: string): string {
    return this.color ? `\x1b[${code}m${text}\x1b[0m` : text;
  }

  progress(label: string): Progress {
    if (this.quiet || !this.io.stderr.isTTY) return noProgress;
    const cliProgress = loadCliProgress();
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} [{bar}] {percentage}% {done}/{all} {rate}`,
        stream: this.io.stderr,
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
