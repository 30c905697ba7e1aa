/**
 * Headless Chromium (Debian's `chromium`, the system binary: nothing is downloaded) driven over
 * the DevTools protocol, for the view tests and bench: open a page, record every network request,
 * console message and uncaught exception, evaluate expressions, take screenshots.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import CDP, { type CdpClient } from 'chrome-remote-interface';

export function chromiumPath(): string | undefined {
  for (const name of [process.env.CHROMIUM, 'chromium', 'chromium-browser', 'google-chrome']) {
    if (!name) continue;
    const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  }
  return undefined;
}

export interface PageLog {
  /** URLs the page asked for, other than the page itself. */
  requests: string[];
  /** console.* calls: [type, text]. */
  console: [string, string][];
  /** Uncaught exceptions and Log entries of level error (CSP refusals among them). */
  errors: string[];
}

export class Chromium {
  private constructor(
    private readonly proc: ChildProcess,
    private readonly port: number,
    private readonly profile: string,
  ) {}

  static async launch(): Promise<Chromium> {
    const bin = chromiumPath();
    if (!bin) throw new Error('chromium not found');
    const profile = await fs.mkdtemp(path.join(os.tmpdir(), 'ckpt-chromium-'));
    const args = [
      '--headless',
      // root in a container has no user namespace for the sandbox
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--no-first-run',
      '--no-default-browser-check',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--hide-scrollbars',
      '--remote-debugging-port=0',
      `--user-data-dir=${profile}`,
      'about:blank',
    ];
    const proc = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const port = await new Promise<number>((resolve, reject) => {
      let text = '';
      const timer = setTimeout(() => reject(new Error(`chromium did not start: ${text}`)), 30_000);
      proc.stderr!.on('data', (b: Buffer) => {
        text += b.toString();
        const m = /DevTools listening on ws:\/\/[^:]+:(\d+)\//.exec(text);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      proc.once('exit', (code) => reject(new Error(`chromium exited ${code}: ${text}`)));
    });
    proc.stderr!.resume();
    return new Chromium(proc, port, profile);
  }

  /** A fresh tab with its log; `open` navigates it and waits for the page to say it is drawn. */
  async tab(width = 1400, height = 1000): Promise<Tab> {
    const target = await CDP.New({ port: this.port, url: 'about:blank' });
    const client = await CDP({ port: this.port, target: target.id });
    const tab = new Tab(client);
    await tab.init(width, height);
    return tab;
  }

  async close(): Promise<void> {
    this.proc.kill('SIGTERM');
    await new Promise((r) => (this.proc.exitCode !== null ? r(null) : this.proc.once('exit', r)));
    // Chromium's helper processes may still be writing into the profile for a moment after the
    // browser itself exits: retry, and leave a scratch folder behind rather than fail the caller
    await fs.rm(this.profile, { recursive: true, force: true, maxRetries: 20, retryDelay: 100 }).catch(() => undefined);
  }
}

export class Tab {
  readonly log: PageLog = { requests: [], console: [], errors: [] };
  private page = '';

  constructor(readonly client: CdpClient) {}

  async init(width: number, height: number): Promise<void> {
    const c = this.client;
    c.on('Network.requestWillBeSent', (p) => {
      if (p.request.url !== this.page) this.log.requests.push(p.request.url);
    });
    c.on('Runtime.consoleAPICalled', (p) => {
      const text = p.args.map((a: { value?: unknown; description?: string }) => String(a.value ?? a.description)).join(' ');
      this.log.console.push([p.type, text]);
      if (p.type === 'error') this.log.errors.push(`console.error: ${text}`);
    });
    c.on('Runtime.exceptionThrown', (p) => this.log.errors.push(`exception: ${p.exceptionDetails.exception?.description ?? p.exceptionDetails.text}`));
    c.on('Log.entryAdded', (p) => {
      if (p.entry.level === 'error') this.log.errors.push(`log: ${p.entry.source}: ${p.entry.text}`);
    });
    await c.send('Network.enable');
    await c.send('Runtime.enable');
    await c.send('Log.enable');
    await c.send('Page.enable');
    await c.send('Performance.enable');
    await c.send('Emulation.setDeviceMetricsOverride', { width, height, deviceScaleFactor: 1, mobile: false });
  }

  /** Navigates and waits until the page has drawn (body[data-ready]) or `timeoutMs` passes; returns the ms it took. */
  async open(url: string, extraHeaders?: Record<string, string>, timeoutMs = 20_000): Promise<number> {
    this.page = url;
    if (extraHeaders) await this.client.send('Network.setExtraHTTPHeaders', { headers: extraHeaders });
    const t0 = performance.now();
    await this.client.send('Page.navigate', { url });
    for (;;) {
      const ready = await this.evaluate('document.readyState === "complete" && document.body?.dataset.ready === "1"').catch(() => false);
      if (ready) return performance.now() - t0;
      if (performance.now() - t0 > timeoutMs) return Infinity;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Seconds the renderer's main thread spent on tasks (script, layout, paint) since the tab opened: the page's cost, apart from waiting for a busy machine. */
  async busySeconds(): Promise<number> {
    const { metrics } = await this.client.send('Performance.getMetrics');
    return (metrics as { name: string; value: number }[]).find((m) => m.name === 'TaskDuration')?.value ?? NaN;
  }

  async evaluate<T = unknown>(expression: string): Promise<T> {
    const r = await this.client.send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true });
    if (r.exceptionDetails) throw new Error(`evaluate failed: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
    return r.result.value as T;
  }

  /** A PNG of the whole page (or its first `maxHeight` pixels). */
  async screenshot(file: string, maxHeight = 4000): Promise<void> {
    const { cssContentSize } = await this.client.send('Page.getLayoutMetrics');
    const clip = { x: 0, y: 0, width: Math.ceil(cssContentSize.width), height: Math.min(maxHeight, Math.ceil(cssContentSize.height)), scale: 1 };
    const { data } = await this.client.send('Page.captureScreenshot', { format: 'png', clip, captureBeyondViewport: true });
    await fs.writeFile(file, Buffer.from(data, 'base64'));
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}
