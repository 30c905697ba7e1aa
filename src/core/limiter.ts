/**
 * Bounded parallelism for reads: `limit(fn)` runs `fn` once fewer than `n` earlier calls are still
 * running, and settles as `fn` does. Reads of thousands of small objects go through this so they
 * overlap on libuv's pool without opening thousands of files at once.
 */
export type Limiter = <T>(fn: () => Promise<T>) => Promise<T>;

export function createLimiter(n: number): Limiter {
  let running = 0;
  const waiting: (() => void)[] = [];
  const release = () => {
    running--;
    waiting.shift()?.();
  };
  return <T>(fn: () => Promise<T>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const start = () => {
        running++;
        let p: Promise<T>;
        try {
          p = fn();
        } catch (e) {
          p = Promise.reject(e);
        }
        p.then(resolve, reject).finally(release);
      };
      if (running < n) start();
      else waiting.push(start);
    });
}
