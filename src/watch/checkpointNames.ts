/**
 * What a checkpoint looks like by name: the files and folders training tools write, the
 * temporary names they write to first, and the step, epoch and metrics their names carry
 * (`checkpoint-500`, `global_step500`, `iter_0000500`, `step_500`, and Lightning's
 * `epoch=3-step=1200-val_loss=0.42.ckpt`).
 */
import type { CommitMeta } from '../core/objects.js';

/** Files that are checkpoints on their own. */
const FILE_EXTENSIONS = ['.pt', '.pth', '.bin', '.safetensors', '.ckpt', '.npz', '.npy', '.gguf', '.pkl', '.h5', '.msgpack'];

/** How a checkpoint folder says it is complete, by the tool its name points to. */
export type FolderConvention = 'hf-trainer' | 'deepspeed' | 'megatron' | 'orbax' | 'step';

const FOLDER_NAMES: [RegExp, FolderConvention][] = [
  [/^checkpoint-(\d+)$/, 'hf-trainer'],
  [/^global_step(\d+)$/, 'deepspeed'],
  [/^iter_(\d+)$/, 'megatron'],
  [/^(\d+)$/, 'orbax'],
  [/^step[_=-]?(\d+)$/, 'step'],
];

/** A name being written: hidden, editor or download leftovers, `.tmp`, Orbax's tmp suffix. */
export function isTemporaryName(name: string): boolean {
  return (
    name.startsWith('.') ||
    name.endsWith('~') ||
    /\.(tmp|temp|part|partial|incomplete|swp|lock)$/i.test(name) ||
    /\.tmp[.-]|\.orbax-checkpoint-tmp/i.test(name) ||
    /^tmp/i.test(name)
  );
}

export function isCheckpointFileName(name: string): boolean {
  if (isTemporaryName(name)) return false;
  const lower = name.toLowerCase();
  return FILE_EXTENSIONS.some((e) => lower.endsWith(e));
}

/** The convention a folder name follows, or undefined when it names no checkpoint. */
export function folderConvention(name: string): FolderConvention | undefined {
  if (isTemporaryName(name)) return undefined;
  return FOLDER_NAMES.find(([re]) => re.test(name))?.[1];
}

/** The step number in a checkpoint folder's name (`iter_0000500` is 500). */
export function folderStep(name: string): number | undefined {
  for (const [re] of FOLDER_NAMES) {
    const m = re.exec(name);
    if (m) return Number(m[1]);
  }
  return undefined;
}

const NUMBER = String.raw`-?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?`;
const PAIR = new RegExp(String.raw`([A-Za-z_][A-Za-z0-9_/.]*?)=(${NUMBER})(?=$|[-_ ,]|\.[A-Za-z])`, 'g');

/** Step, epoch and metrics a file or folder name carries. */
export function metaFromName(name: string): CommitMeta {
  const lower = name.toLowerCase();
  const ext = FILE_EXTENSIONS.find((e) => lower.endsWith(e));
  const stem = ext ? name.slice(0, -ext.length) : name;
  const meta: CommitMeta = {};
  const step = folderStep(stem);
  if (step !== undefined) meta.step = step;
  else {
    const m = /(?:^|[-_.])(?:global_step|step|iter)[_-]?(\d+)(?:$|[-_.])/i.exec(stem);
    if (m) meta.step = Number(m[1]);
  }
  for (const [, key, value] of stem.matchAll(PAIR)) {
    const v = Number(value);
    if (!Number.isFinite(v)) continue;
    if (key === 'step' || key === 'global_step') meta.step = v;
    else if (key === 'epoch') meta.epoch = v;
    else meta.metrics = { ...meta.metrics, [key]: v };
  }
  return meta;
}
