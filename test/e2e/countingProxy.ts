/**
 * A TCP proxy on 127.0.0.1 that counts the bytes clients send through it to a server: what a
 * push puts on the wire, whatever the transport, headers included.
 */
import * as net from 'node:net';

export interface CountingProxy {
  /** host:port to give clients instead of the server's. */
  address: string;
  /** Bytes received from clients (and passed on to the server) so far. */
  readonly sent: number;
  /** Called after each piece a client sends, with the running total. */
  onSent?: (total: number) => void;
  close(): Promise<void>;
}

export async function startCountingProxy(targetHost: string, targetPort: number): Promise<CountingProxy> {
  const sockets = new Set<net.Socket>();
  let sent = 0;
  const proxy: CountingProxy = {
    address: '',
    get sent() {
      return sent;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, targetHost);
    sockets.add(client);
    sockets.add(upstream);
    client.on('data', (b: Buffer) => {
      sent += b.byteLength;
      upstream.write(b);
      proxy.onSent?.(sent);
    });
    upstream.on('data', (b: Buffer) => client.write(b));
    const forget = () => {
      sockets.delete(client);
      sockets.delete(upstream);
    };
    // each side's end is passed on once what was written to the other side is flushed
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => {
      upstream.end();
      forget();
    });
    upstream.on('close', () => {
      client.end();
      forget();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  proxy.address = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return proxy;
}
