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
  /** Progress on stderr also when it is not a terminal: a line every few seconds. */
  progress?: boolean;
}

export interface Progress {
  update(done: number, total: number): void;
  stop(): void;
}

const noProgress: Progress = { update: () => undefined, stop: () => undefined };

export class Output {
  readonly json: boolean;
  readonly quiet: boolean;
  readonly showProgress: boolean;
  readonly color: boolean;
  readonly io: CliIo;

  constructor(flags: GlobalFlags, io: CliIo = processIo()) {
    this.io = io;
    this.json = Boolean(flags.json);
    this.quiet = Boolean(flags.quiet);
    this.showProgress = Boolean(flags.progress);
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

  /**
   * Progress of a transfer on stderr (never stdout, so --json stays clean): a bar with bytes,
   * rate and ETA on a terminal; with --progress elsewhere, a line every few seconds; nothing
   * with -q.
   */
  progress(label: string): Progress {
    if (this.quiet || (!this.io.stderr.isTTY && !this.showProgress)) return noProgress;
    const rate = new TransferRate();
    if (!this.io.stderr.isTTY) {
      const stderr = this.io.stderr;
      let last = 0;
      let lastDone = -1;
      const line = (done: number, total: number) => {
        stderr.write(`${label}: ${rate.describe(done, total)}\n`);
        last = Date.now();
        lastDone = done;
      };
      let latest: [number, number] = [0, 0];
      return {
        update(done, total) {
          rate.add(done);
          latest = [done, total];
          if (Date.now() - last >= LINE_EVERY_MS) line(done, total);
        },
        stop() {
          if (lastDone !== latest[0] && latest[1] > 0) line(...latest);
        },
      };
    }
    const cliProgress = loadCliProgress();
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} [{bar}] {text}`,
        stream: this.io.stderr,
        hideCursor: true,
        clearOnComplete: true,
      },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    return {
      update(done, total) {
        rate.add(done);
        const payload = { text: rate.describe(done, total) };
        if (!started) {
          bar.start(total, done, payload);
          started = true;
        } else {
          bar.setTotal(total);
          bar.update(done, payload);
        }
      },
      stop() {
        if (started) bar.stop();
      },
    };
  }
}

/** A progress line without a terminal: at most this often. */
const LINE_EVERY_MS = 2000;

/**
 * The rate of a transfer over the last few seconds (not since the start, which planning and a
 * slow first request would drag down), and the time left at that rate.
 */
export class TransferRate {
  private readonly samples: [number, number][] = [];
  private readonly start = Date.now();

  constructor(private readonly windowMs = 5000) {}

  add(done: number, now = Date.now()): void {
    this.samples.push([now, done]);
    while (this.samples.length > 2 && now - this.samples[0][0] > this.windowMs) this.samples.shift();
  }

  /** Bytes per second over the window (since the start while the window is not yet full). */
  perSecond(now = Date.now()): number {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last) return 0;
    const [t0, d0] = this.samples.length > 1 && last[0] - first[0] >= 1000 ? first : [this.start, 0];
    return (last[1] - d0) / Math.max(0.001, (now - t0) / 1000);
  }

  /** "1.2 GiB / 4.0 GiB 30% 250 MiB/s ETA 12s" */
  describe(done: number, total: number, now = Date.now()): string {
    const r = this.perSecond(now);
    const pct = total > 0 ? Math.floor((100 * done) / total) : 100;
    const left = total - done;
    const eta = left <= 0 ? '0s' : r > 0 ? humanSeconds(left / r) : '?';
    return `${humanBytes(done)} / ${humanBytes(total)} ${pct}% ${humanBytes(r)}/s ETA ${eta}`;
  }
}

export function humanSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${Math.ceil(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.ceil(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
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
