/**
 * Is a checkpoint complete? The writing tool's own convention decides first:
 *
 *   Hugging Face Trainer `checkpoint-N/`   once `trainer_state.json` is there and parses
 *   DeepSpeed `global_stepN/`              once the `latest` file beside it names it (or a later step)
 *   Megatron `iter_NNNNNNN/`               once `latest_checkpointed_iteration.txt` says N or later
 *   torch.distributed.checkpoint folder    once `.metadata` exists (written last, by the coordinator)
 *   Orbax `N/`                             once `commit_success.txt` exists or it was renamed from
 *                                          its `.orbax-checkpoint-tmp` name
 *   a file renamed from a temporary name   at once
 *
 * Otherwise the timing rule: nothing in it changed for `settle` ms. Either way, a running watcher
 * also wants the same fingerprint at two looks in a row, and no process may hold any of its files
 * open for writing (checked by the caller, where /proc shows it).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { folderStep } from './checkpointNames.js';
import type { Candidate } from './discoverCheckpoints.js';

export type Verdict = 'complete' | 'incomplete' | 'unknown';

async function readText(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** What the convention of the writing tool says, before any timing rule. */
export async function conventionVerdict(c: Candidate, renamedFromTemporary: boolean): Promise<Verdict> {
  const name = path.basename(c.path);
  const parent = path.dirname(c.path);
  const has = (rel: string) => c.files.some((f) => path.relative(c.path, f.path) === rel);
  switch (c.convention) {
    case 'hf-trainer': {
      if (!has('trainer_state.json')) return 'incomplete';
      const text = await readText(path.join(c.path, 'trainer_state.json'));
      try {
        JSON.parse(text ?? '');
        return 'complete';
      } catch {
        return 'incomplete';
      }
    }
    case 'dcp':
      return 'complete';
    case 'deepspeed': {
      const latest = (await readText(path.join(parent, 'latest')))?.trim();
      if (latest === undefined) return 'unknown';
      const named = folderStep(latest);
      return latest === name || (named !== undefined && named > (folderStep(name) ?? Infinity)) ? 'complete' : 'incomplete';
    }
    case 'megatron': {
      const latest = (await readText(path.join(parent, 'latest_checkpointed_iteration.txt')))?.trim();
      if (latest === undefined) return 'unknown';
      const n = Number(latest);
      return Number.isFinite(n) && n >= (folderStep(name) ?? Infinity) ? 'complete' : 'incomplete';
    }
    case 'orbax':
      return has('commit_success.txt') || renamedFromTemporary ? 'complete' : 'unknown';
    default:
      return renamedFromTemporary ? 'complete' : 'unknown';
  }
}

/** The timing rule: no file changed for `settleMs`. */
export function settled(c: Candidate, now: number, settleMs: number): boolean {
  return now - c.newestMtimeMs >= settleMs;
}
