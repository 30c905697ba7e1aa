/** `--mode min|max` for `best:METRIC` revisions: the same as writing `best:METRIC:mode`. */
import { UsageError } from '../core/errors.js';

export const modeOption = { type: 'string', choices: ['min', 'max'], describe: 'for best:METRIC, whether lower or higher is better' } as const;

export function withMode(rev: string, mode: string | undefined): string {
  if (!mode) return rev;
  const m = /^best:([^:~^]+)(:[a-z]+)?(.*)$/.exec(rev);
  if (!m) throw new UsageError(`--mode applies to best:METRIC revisions, not ${rev}`);
  return `best:${m[1]}:${mode}${m[3]}`;
}
