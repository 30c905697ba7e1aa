// The few calls bench/chromium.ts makes of chrome-remote-interface (which ships no types).
declare module 'chrome-remote-interface' {
  interface CdpClient {
    send(method: string, params?: Record<string, unknown>): Promise<any>;
    on(event: string, listener: (params: any) => void): void;
    close(): Promise<void>;
  }
  function CDP(options: { host?: string; port: number; target?: string }): Promise<CdpClient>;
  namespace CDP {
    function New(options: { host?: string; port: number; url?: string }): Promise<{ id: string; webSocketDebuggerUrl: string }>;
  }
  export default CDP;
  export type { CdpClient };
}
