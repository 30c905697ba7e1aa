/**
 * The CLI run in the test's own process: `main(argv, io)` with captured streams, the run's folder
 * and environment. Same result shape as the spawned `ckpt()` of helpers.ts, without a Node
 * start-up per command. Tests that need a separate process (kill, crash, race, start-up) spawn.
 */
import { Writable } from 'node:stream';
import { main } from '../../src/cli/main.js';

export interface InProcessResult {
  code: number;
  signal: null;
  stdout: string;
  stderr: string;
}

/** A stream that keeps what is written to it (not a TTY: no progress bars, no colour). */
class Captured extends Writable {
  private readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer | string, _enc: BufferEncoding, done: (e?: Error | null) => void): void {
    this.chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    done();
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/** The environment a spawned test run gets, plus `env`. */
export function testEnv(env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, NO_COLOR: '1', CKPT_AUTHOR: 'e2e <e2e@test>', ...env };
}

/** Runs `ckpt args...` in process in `cwd` with `env` added to the test environment. */
export async function runIn(cwd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<InProcessResult> {
  const stdout = new Captured();
  const stderr = new Captured();
  const code = await main(args, { stdout, stderr, cwd, env: testEnv(env) });
  return { code, signal: null, stdout: stdout.text(), stderr: stderr.text() };
}

export function ckptIn(cwd: string, ...args: string[]): Promise<InProcessResult> {
  return runIn(cwd, args);
}
