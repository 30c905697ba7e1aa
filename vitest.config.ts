import * as path from 'node:path';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The files that run longest (most of it waiting on child processes and timers), longest first.
 * Vitest starts the files it has timed before longest first; on a run with no timings cached (a
 * fresh clone, CI) it would order them by size and could leave one of these to run alone at the
 * end, so then these start first. A file missing from this list only loses that head start.
 */
const SLOW_FILES = [
  'test/e2e/manyWritersS3.test.ts',
  'test/e2e/crash.test.ts',
  'test/e2e/remoteKill.test.ts',
  'test/hostile/pushRacingGc.test.ts',
  'test/watch/pythonClient.test.ts',
  'test/watch/slowWriters.test.ts',
  'test/e2e/tidyConcurrentGc.test.ts',
  'test/e2e/remoteRace.test.ts',
  'test/watch/manyRanksS3.test.ts',
  'test/watch/trainLoops.test.ts',
  'test/hostile/hostileRemote.test.ts',
  'test/view/viewBrowser.test.ts',
  'test/e2e/storeResume.test.ts',
  'test/hostile/storeDamage.test.ts',
  'test/e2e/anyStore.test.ts',
];

class SlowFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rel = (f: TestSpecification) => path.relative(this.ctx.config.root, f.moduleId).split(path.sep).join('/');
    if (sorted.some((f) => this.ctx.cache.getFileTestResults(`${f.project.name}:${rel(f)}`))) return sorted;
    const rank = (f: TestSpecification) => {
      const i = SLOW_FILES.indexOf(rel(f));
      return i < 0 ? SLOW_FILES.length : i;
    };
    return sorted.sort((a, b) => rank(a) - rank(b));
  }
}

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Vitest's default on 2 cores is ONE worker (cores - 1): the files ran one after another while
    // most of the long ones wait on child processes (commits, pushes, watchers, Python, Chromium)
    // or on timers. Two files at a time keep both cores busy through most of those waits. Three
    // were a little faster but, beside other load (load average 15), let a watcher fall behind a
    // rotating trainer and an idle socket outlive the server's 500 ms timeout. Every test file
    // works in its own mkdtemp folders and starts its servers on port 0, so files running side by
    // side share no state.
    maxWorkers: 2,
    sequence: { sequencer: SlowFirstSequencer },
  },
});
