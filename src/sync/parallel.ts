/** Bounded parallelism for transfers: at most `limit` tasks in flight, results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  let failed = false;
  const worker = async () => {
    // after one failure the others stop taking work, so an error surfaces promptly
    while (!failed && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i], i);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}

export function checkJobs(jobs: number | undefined): number {
  const n = jobs ?? 4;
  if (!Number.isSafeInteger(n) || n < 1 || n > 64) throw new RangeError(`--jobs must be 1..64, got ${n}`);
  return n;
}

/**
 * Runs `load` on up to `limit` items ahead, and `use` on each result in input order: transfers
 * overlap, while what is built from them (a pack) comes out the same whatever finished first.
 */
export async function mapOrdered<T, R>(items: readonly T[], limit: number, load: (item: T) => Promise<R>, use: (item: T, r: R) => Promise<void>): Promise<void> {
  const ahead: Promise<R>[] = [];
  let next = 0;
  const fill = () => {
    while (next < items.length && ahead.length < Math.max(1, limit)) {
      const p = load(items[next++]);
      // a failure is reported when its turn comes; the ones after it are dropped
      p.catch(() => undefined);
      ahead.push(p);
    }
  };
  fill();
  for (const item of items) {
    const r = await ahead.shift()!;
    await use(item, r);
    fill();
  }
}
