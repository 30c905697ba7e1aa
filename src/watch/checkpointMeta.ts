/**
 * Step and metrics of a checkpoint without the user passing them: from its name, from the Hugging
 * Face Trainer's `trainer_state.json` (global_step, epoch, best_metric and the metrics logged at the
 * last logged step), and from a `metrics.json` inside the folder or `<name>.metrics.json` /
 * `metrics.json` beside the file. Later sources win.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { CommitMeta } from '../core/objects.js';
import { metaFromName } from './checkpointNames.js';

async function readJson(file: string): Promise<Record<string, unknown> | undefined> {
  try {
    const v: unknown = JSON.parse(await fs.readFile(file, 'utf8'));
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

function numericFields(o: Record<string, unknown>, skip: string[]): Record<string, number> | undefined {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(o)) if (!skip.includes(k) && num(v) !== undefined) out[k] = v as number;
  return Object.keys(out).length ? out : undefined;
}

function merge(into: CommitMeta, more: CommitMeta): CommitMeta {
  return {
    ...into,
    ...(more.step !== undefined ? { step: more.step } : {}),
    ...(more.epoch !== undefined ? { epoch: more.epoch } : {}),
    ...(more.metrics ? { metrics: { ...into.metrics, ...more.metrics } } : {}),
  };
}

/** What `trainer_state.json` says about its checkpoint. */
export function metaFromTrainerState(s: Record<string, unknown>): CommitMeta {
  const meta: CommitMeta = {};
  const step = num(s.global_step);
  if (step !== undefined) meta.step = step;
  const epoch = num(s.epoch);
  if (epoch !== undefined) meta.epoch = epoch;
  const log = Array.isArray(s.log_history) ? (s.log_history as unknown[]).filter((e): e is Record<string, unknown> => !!e && typeof e === 'object') : [];
  if (log.length) {
    // the last entry, and the entries of the same step before it (train and eval log separately)
    const lastStep = log[log.length - 1].step;
    let metrics: Record<string, number> = {};
    for (const e of log) if (e.step === lastStep || e === log[log.length - 1]) metrics = { ...metrics, ...numericFields(e, ['step', 'epoch']) };
    if (Object.keys(metrics).length) meta.metrics = metrics;
  }
  const best = num(s.best_metric);
  if (best !== undefined) meta.metrics = { ...meta.metrics, best_metric: best };
  return meta;
}

/** What a `metrics.json` says: {step?, epoch?, metrics?: {...}} or a flat object of numbers. */
function metaFromMetricsFile(o: Record<string, unknown>): CommitMeta {
  const meta: CommitMeta = {};
  if (num(o.step) !== undefined) meta.step = o.step as number;
  if (num(o.epoch) !== undefined) meta.epoch = o.epoch as number;
  const inner = o.metrics && typeof o.metrics === 'object' && !Array.isArray(o.metrics) ? (o.metrics as Record<string, unknown>) : o;
  const metrics = numericFields(inner, ['step', 'epoch']);
  if (metrics) meta.metrics = metrics;
  return meta;
}

export async function readCheckpointMeta(checkpoint: string, isFolder: boolean): Promise<CommitMeta> {
  let meta = metaFromName(path.basename(checkpoint));
  if (isFolder) {
    const state = await readJson(path.join(checkpoint, 'trainer_state.json'));
    if (state) meta = merge(meta, metaFromTrainerState(state));
    const m = await readJson(path.join(checkpoint, 'metrics.json'));
    if (m) meta = merge(meta, metaFromMetricsFile(m));
  } else {
    const stem = path.basename(checkpoint).replace(/\.[^.]+$/, '');
    const m = (await readJson(path.join(path.dirname(checkpoint), `${stem}.metrics.json`))) ?? (await readJson(path.join(path.dirname(checkpoint), 'metrics.json')));
    if (m) meta = merge(meta, metaFromMetricsFile(m));
  }
  return meta;
}
