/**
 * `ckpt merge THEIRS`: a three-way merge of model states, tensor by tensor, against the merge
 * base. A tensor changed on one side only takes that side's chunks as they are (nothing stored
 * for it); a tensor changed on both sides is a conflict, settled by the first `--rule` whose glob
 * matches it, then `--default`; with no rule the merge stops, listing every conflict with how far
 * each side moved it (relative L2 against the base), and writes nothing. Never interactive.
 */
import picomatch from 'picomatch';
import { CkptError, NotFoundError, UsageError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import type { Manifest, TreeEntry } from '../core/objects.js';
import { decodeElements } from '../diff/elementDecoder.js';
import { encodeSafetensorsHeader } from '../formats/safetensors.js';
import { isAncestor } from '../repo/isAncestor.js';
import { Ingestor } from '../repo/ingestFile.js';
import type { Repository } from '../repo/repository.js';
import { resolveRevision } from '../repo/resolveRevision.js';
import { ChunkReader } from '../store/chunkReader.js';
import { floatBytes, isMergeableFloat } from './dtypeRounding.js';
import { ManifestBuilder } from './manifestBuilder.js';
import { mergeBase } from './mergeBase.js';
import { assertDistinctPaths, metadataOf, openReader, SAME_FRAMING_FORMATS, safetensorsPath, sameShape } from './outputFormat.js';
import { computeTensor, type ComputeContext } from './tensorCompute.js';
import { currentTarget, writeMergeCommit } from './mergeCommit.js';
import { ckptVersion, type MergeRecipe } from './recipe.js';
import { BlockReader, logicalTensors, tensorBytes, type LogicalTensor } from './tensorSource.js';

export type Resolution = { take: 'ours' | 'theirs' | 'base' } | { average: number };

export interface Rule {
  glob: string;
  match: (name: string) => boolean;
  resolution: Resolution;
  text: string;
}

export function parseResolution(text: string, where: string): Resolution {
  if (text === 'ours' || text === 'theirs' || text === 'base') return { take: text };
  const m = /^average(?::(.+))?$/.exec(text);
  if (m) {
    const w = m[1] === undefined ? 0.5 : Number(m[1]);
    if (!Number.isFinite(w) || w < 0 || w > 1 || (m[1] !== undefined && m[1].trim() === '')) {
      throw new UsageError(`${where}: average:W needs W in [0, 1] (the weight of theirs), got ${JSON.stringify(m[1])}`);
    }
    return { average: w };
  }
  throw new UsageError(`${where}: expected ours, theirs, base or average[:W], got ${JSON.stringify(text)}`);
}

export function parseRule(text: string): Rule {
  const i = text.lastIndexOf('=');
  if (i <= 0) throw new UsageError(`--rule expects GLOB=ours|theirs|base|average[:W], got ${JSON.stringify(text)}`);
  const glob = text.slice(0, i);
  return { glob, match: picomatch(glob, { dot: true }), resolution: parseResolution(text.slice(i + 1), `--rule ${text}`), text };
}

function describe(r: Resolution): string {
  return 'take' in r ? r.take : `average:${r.average}`;
}

export interface ThreeWayOptions {
  theirs: string;
  into?: string;
  rules?: string[];
  default?: string;
  message?: string;
}

export interface Conflict {
  file: string;
  tensor: string;
  /** ||ours - base|| / ||base||, and the same for theirs (null where it cannot be computed). */
  oursRelL2: number | null;
  theirsRelL2: number | null;
  reason?: string;
}

export class MergeConflictError extends CkptError {
  constructor(readonly conflicts: Conflict[]) {
    const names = conflicts.slice(0, 5).map((c) => c.tensor).join(', ');
    super(
      'E_CONFLICT',
      `merge conflict: ${conflicts.length} tensor(s) changed on both sides (${names}${conflicts.length > 5 ? ', ...' : ''}); ` +
        'nothing was written: resolve with --rule GLOB=ours|theirs|base|average[:W] or --default',
      { conflicts },
    );
    this.name = 'MergeConflictError';
  }
}

export interface ThreeWayResult {
  outcome: 'up-to-date' | 'fast-forward' | 'merged';
  id: ObjectId;
  branch: string | undefined;
  base?: ObjectId;
  parents?: ObjectId[];
  /** Per tensor changed against ours: where it came from. */
  taken?: { file: string; tensor: string; from: string }[];
  recipe?: MergeRecipe;
}

type Pick = { from: 'ours' | 'theirs' | 'base'; t: LogicalTensor } | { from: 'average'; w: number; ours: LogicalTensor; theirs: LogicalTensor };

interface FileMerge {
  path: string;
  /** Taken whole from one side. */
  entry?: TreeEntry;
  /** Merged tensor by tensor on ours' layout. */
  ours?: Manifest;
  picks?: Map<string, Pick>;
}

const key = (t: LogicalTensor | undefined) => (t ? (t.whole ? t.segment.hash : `${t.segment.hash}@${t.offset}/${t.view?.stride.join(',') ?? ''}`) + `|${t.dtype}|${t.shape.join(',')}` : undefined);

/** Relative L2 of `side` against `base`, read block by block. */
async function relL2(reader: ChunkReader, side: LogicalTensor, base: LogicalTensor | undefined): Promise<number | null> {
  if (!base || !isMergeableFloat(side.dtype) || side.dtype !== base.dtype || side.len !== base.len) return null;
  const el = floatBytes(side.dtype);
  const rs = new BlockReader(tensorBytes(reader, side));
  const rb = new BlockReader(tensorBytes(reader, base));
  const block = 1 << 20;
  const a = new Float64Array(block / el);
  const b = new Float64Array(block / el);
  let dd = 0;
  let bb = 0;
  try {
    for (let left = side.len; left > 0; ) {
      const x = await rs.next(Math.min(block, left));
      const y = await rb.next(Math.min(block, left));
      decodeElements(x, side.dtype, a);
      decodeElements(y, side.dtype, b);
      for (let i = 0; i < x.length / el; i++) {
        dd += (a[i] - b[i]) ** 2;
        bb += b[i] ** 2;
      }
      left -= x.length;
    }
  } finally {
    await rs.close();
    await rb.close();
  }
  return bb > 0 ? Math.sqrt(dd) / Math.sqrt(bb) : dd > 0 ? Infinity : 0;
}

export async function threeWayMerge(repo: Repository, o: ThreeWayOptions): Promise<ThreeWayResult> {
  const rules = (o.rules ?? []).map(parseRule);
  const fallback = o.default !== undefined ? parseResolution(o.default, '--default') : undefined;
  const target = await currentTarget(repo, o.into);
  const ourName = (target.ref ?? 'HEAD').replace(/^refs\/heads\//, '');
  if (!target.head) throw new NotFoundError(`a commit on ${target.ref ?? 'HEAD'} to merge into`);
  const ours = target.head;
  const theirs = await resolveRevision(repo, o.theirs);
  if (await isAncestor(repo, theirs, ours)) return { outcome: 'up-to-date', id: ours, branch: target.ref };
  const base = await mergeBase(repo, ours, theirs);
  if (!base) {
    throw new CkptError('E_NOT_FOUND', `${o.theirs} and ${ourName} share no history (no merge base); to combine unrelated models use ckpt merge --method with --base`, {
      ours,
      theirs,
    });
  }
  if (base === ours) {
    if (!target.ref) await repo.store.refs.writeHead({ kind: 'detached', id: theirs });
    else await repo.store.refs.cas(target.ref, ours, theirs, `merge ${o.theirs}: fast-forward`);
    return { outcome: 'fast-forward', id: theirs, branch: target.ref, base };
  }

  const treeOf = async (id: ObjectId) => (await repo.readTree((await repo.readCommit(id)).tree)).files;
  const [tb, to, tt] = [await treeOf(base), await treeOf(ours), await treeOf(theirs)];
  // the store's shared lock before any chunk is read: a gc cannot repack what the merge reads
  const lock = await repo.store.lockShared('merge');
  const reader = await openReader(repo, lock);
  const conflicts: Conflict[] = [];
  const merges: FileMerge[] = [];
  const taken: ThreeWayResult['taken'] = [];
  const resolved: Record<string, string> = {};
  try {
    for (const p of [...new Set([...Object.keys(tb), ...Object.keys(to), ...Object.keys(tt)])].sort()) {
      const [eb, eo, et] = [tb[p], to[p], tt[p]];
      const [mb, mo, mt] = [eb?.manifest, eo?.manifest, et?.manifest];
      if (mo === mt || mt === mb) {
        if (eo) merges.push({ path: p, entry: eo });
        continue;
      }
      if (mo === mb) {
        if (et) merges.push({ path: p, entry: et });
        continue;
      }
      if (!eo || !et) {
        conflicts.push({ file: p, tensor: '*', oursRelL2: null, theirsRelL2: null, reason: `${eo ? 'theirs' : 'ours'} deleted the file, the other side changed it` });
        continue;
      }
      const [fb, fo, ft] = [eb ? await repo.readManifest(eb.manifest) : undefined, await repo.readManifest(eo.manifest), await repo.readManifest(et.manifest)];
      const lb = fb ? new Map(logicalTensors(fb, p).map((t) => [t.name, t])) : new Map<string, LogicalTensor>();
      const lo = logicalTensors(fo, p);
      const lt = logicalTensors(ft, p);
      const sameStructure =
        fo.format === ft.format && lo.length === lt.length && lo.every((t, i) => t.name === lt[i].name && t.dtype === lt[i].dtype && sameShape(t.shape, lt[i].shape));
      if (!sameStructure) {
        conflicts.push({ file: p, tensor: '*', oursRelL2: null, theirsRelL2: null, reason: 'tensors added, removed, renamed or reshaped on both sides' });
        continue;
      }
      const picks = new Map<string, Pick>();
      for (let i = 0; i < lo.length; i++) {
        const [xo, xt, xb] = [lo[i], lt[i], lb.get(lo[i].name)];
        const [ko, kt, kb] = [key(xo), key(xt), key(xb)];
        if (ko === kt || kt === kb) picks.set(xo.name, { from: 'ours', t: xo });
        else if (ko === kb) {
          picks.set(xo.name, { from: 'theirs', t: xt });
          taken.push({ file: p, tensor: xo.name, from: 'theirs' });
        } else {
          const rule = rules.find((r) => r.match(xo.name));
          const r = rule?.resolution ?? fallback;
          if (!r) {
            conflicts.push({ file: p, tensor: xo.name, oursRelL2: await relL2(reader, xo, xb), theirsRelL2: await relL2(reader, xt, xb) });
            continue;
          }
          const how = describe(r);
          if ('average' in r) {
            if (!isMergeableFloat(xo.dtype)) throw new UsageError(`tensor ${xo.name}: ${xo.dtype} cannot be averaged (${rule ? `--rule ${rule.text}` : '--default'})`, { tensor: xo.name });
            picks.set(xo.name, { from: 'average', w: r.average, ours: xo, theirs: xt });
          } else if (r.take === 'base') {
            if (!xb || key(xb)!.split('|').slice(1).join('|') !== ko!.split('|').slice(1).join('|')) {
              throw new UsageError(`tensor ${xo.name}: the base has no tensor of this dtype and shape to take (${rule ? `--rule ${rule.text}` : '--default'})`, { tensor: xo.name });
            }
            picks.set(xo.name, { from: 'base', t: xb });
          } else picks.set(xo.name, { from: r.take, t: r.take === 'ours' ? xo : xt });
          resolved[`${p}:${xo.name}`] = how;
          if (how !== 'ours') taken.push({ file: p, tensor: xo.name, from: how });
        }
      }
      merges.push({ path: p, ours: fo, picks });
    }
  } catch (e) {
    await reader.close();
    await lock.release();
    throw e;
  }
  if (conflicts.length > 0) {
    await reader.close();
    await lock.release();
    throw new MergeConflictError(conflicts);
  }
  // a file keeps its own framing when its chunks can be reused as they are; else it becomes safetensors
  const keepsFraming = (m: Manifest) => SAME_FRAMING_FORMATS.has(m.format) && !m.tensors && m.chunkSize === repo.store.config.chunkSize;
  const outPath = (f: FileMerge) => (f.entry || keepsFraming(f.ours!) ? f.path : safetensorsPath(f.path));
  try {
    assertDistinctPaths(merges.map(outPath));
  } catch (e) {
    await reader.close();
    await lock.release();
    throw e;
  }

  const recipe: MergeRecipe = {
    method: 'three-way',
    inputs: [theirs],
    base,
    ...(o.rules?.length ? { rules: o.rules } : {}),
    ...(o.default ? { default: o.default } : {}),
    ...(Object.keys(resolved).length ? { resolved } : {}),
    ckptVersion: ckptVersion(),
  };
  const ingestor = new Ingestor(repo.store, { compress: true });
  try {
    const chunkSize = repo.store.config.chunkSize;
    const sink = ingestor.sink(await repo.store.reloadIndex(), 4);
    const files: Record<string, Manifest | TreeEntry> = {};
    try {
      for (const f of merges) {
        if (f.entry) {
          files[f.path] = f.entry;
          continue;
        }
        const m = f.ours!;
        const b = new ManifestBuilder(sink, reader, chunkSize);
        const ctx: ComputeContext = { method: 'linear', weights: [], normalize: false, density: 1, lambda: 1, t: 0, seed: 0, reader, chunkSize };
        const write = async (name: string, pick: Pick) => {
          if (pick.from === 'average') {
            const out = pick.ours;
            await computeTensor({ ...ctx, weights: [1 - pick.w, pick.w] }, { inputs: [pick.ours, pick.theirs], out }, b.tensor(name, out.dtype, out.shape, out.len), () => undefined);
            return;
          }
          await b.takeTensor(pick.t, name);
        };
        const picks = f.picks!;
        if (keepsFraming(m)) {
          for (const s of m.segments) {
            if (s.t === 'bytes') await b.reuseBytes(s);
            else await write(s.name, picks.get(s.name)!);
          }
          files[f.path] = b.finish(m.format, m.info ? { info: m.info } : {});
        } else {
          // a format whose framing checks its data (PyTorch's zip CRCs) is written as safetensors
          const list = logicalTensors(m, f.path);
          const meta = metadataOf(m);
          await b.newBytes(encodeSafetensorsHeader(list.map((x) => ({ name: x.name, dtype: x.dtype, shape: x.shape, length: x.len })), meta));
          for (const x of list) await write(x.name, picks.get(x.name)!);
          files[outPath(f)] = b.finish('safetensors', meta ? { info: { metadata: meta } } : {});
        }
      }
      await sink.drain();
      await ingestor.flush();
    } catch (e) {
      await ingestor.abort();
      throw e;
    }
    const message = o.message ?? `merge ${o.theirs} into ${ourName}`;
    const parents = [ours, theirs];
    const { id } = await writeMergeCommit(repo, target, files, parents, message, { extra: { merge: recipe } });
    return { outcome: 'merged', id, branch: target.ref, base, parents, taken, recipe };
  } finally {
    await ingestor.close();
    await reader.close();
    await lock.release();
  }
}
