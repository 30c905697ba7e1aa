/**
 * One line of a reflog (docs/format.md, refs and the reflog): the old and new commit ids (64
 * zeros for none), the time in milliseconds and the reason, space-separated, ending in a newline.
 * Every backend writes this line, so a ref's history reads the same whoever moved it.
 */
import type { RefLogEntry } from './backend.js';

export const NO_COMMIT = '0'.repeat(64);

export function reflogLine(old: string | null, next: string | null, entry: RefLogEntry): string {
  return `${old ?? NO_COMMIT} ${next ?? NO_COMMIT} ${entry.time} ${entry.reason.replace(/\s+/g, ' ')}\n`;
}

export interface ReflogRecord {
  old: string | null;
  next: string | null;
  time: number;
  reason: string;
}

/** The entries of a reflog file, oldest first; a torn last line (a crash mid-append) is skipped. */
export function parseReflog(text: string): ReflogRecord[] {
  return text
    .split('\n')
    .filter((l) => l.length > 0)
    .flatMap((l) => {
      const [old, next, time, ...rest] = l.split(' ');
      if (!/^[0-9a-f]{64}$/.test(old ?? '') || !/^[0-9a-f]{64}$/.test(next ?? '') || !/^\d+$/.test(time ?? '')) return [];
      return [{ old: old === NO_COMMIT ? null : old, next: next === NO_COMMIT ? null : next, time: Number(time), reason: rest.join(' ') }];
    });
}
