/**
 * `ckpt merge --method M`: linear, slerp, task arithmetic, TIES and DARE merges of stored model
 * states, written as a new commit. Everything that can be wrong with the inputs (methods,
 * weights, tensor names, dtypes, shapes, integer tensors that differ) is found from the manifests
 * before anything is written; then each tensor is computed block by block (one chunk of each
 * input at a time) and stored through the ingest path's chunk sink.
 */
import picomatch from 'picomatch';
import { CkptError, UsageError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import type { Manifest, Tree, TreeEntry } from '../core/objects.js';
import { encodeSafetensorsHeader } from '../formats/safetensors.js';
import { Ingestor } from '../repo/ingestFile.js';
import type { Repository } from '../repo/repository.js';
import { resolveRevision } from '../repo/resolveRevision.js';
import { ChunkReader } from '../store/chunkReader.js';
import { floatBytes, isMergeableFloat } from './dtypeRounding.js';
import { ManifestBuilder } from './manifestBuilder.js';
import { mergeBaseOfAll } from './mergeBase.js';
import { currentTarget, mergeParents, writeMergeCommit } from './mergeCommit.js';
import { defaultNormalize, MERGE_METHODS, usesBase, type MergeMethod } from './mergeMethods.js';
import { assertDistinctPaths, metadataOf, openReader, SAME_FRAMING_FORMATS, safetensorsPath, sameShape } from './outputFormat.js';
import { ckptVersion, type MergeKnobs, type MergeRecipe } from './recipe.js';
import { computeTensor, type ComputeContext, type TensorJob } from './tensorCompute.js';
import { BlockReader, logicalTensors, tensorBytes, type LogicalTensor } from './tensorSource.js';
import { parseWindow, scheduleWeights, windowCommits, type Schedule } from './window.js';

export interface ArithmeticMergeOptions extends MergeKnobs {
  method: string;
  revs: string[];
  /** The base of the task vectors (default: the merge base of the inputs). */
  base?: string;
  message?: string;
  onProgress?: (done: number, total: number) => void;
}

export interface MergeSummary {
  id: ObjectId;
  branch: string | undefined;
  parents: ObjectId[];
  recipe: MergeRecipe;
  files: { path: string; format: string; size: number; from: string }[];
  tensors: { merged: number; reused: number; copied: number };
  /** Tensors whose result holds NaN, and how many elements. */
  nan: { tensor: string; file: string; count: number }[];
}

/** A stored file of one input, and its tensors by name. */
interface InputFile {
  rev: string;
  path: string;
  manifest: Manifest;
  tensors: Map<string, LogicalTensor>;
}

type Plan = { kind: 'copy'; t: LogicalTensor } | ({ kind: 'compute' } & TensorJob);

interface FilePlan {
  path: string;
  first: InputFile;
  /** Same framing as the first model's file (tensor bytes replaced), or a new safetensors file. */
  sameFraming: boolean;
  plans: Plan[];
}

function checkNumber(v: number | undefined, flag: string, ok: (x: number) => boolean, range: string): void {
  if (v !== undefined && (!Number.isFinite(v) || !ok(v))) throw new UsageError(`${flag} must be ${range}, got ${v}`, { flag, value: v });
}

function isMethod(m: string): m is MergeMethod {
  return (MERGE_METHODS as readonly string[]).includes(m);
}

/** Checks the flags against the method before any revision is read. */
function validateOptions(o: ArithmeticMergeOptions, models: number): void {
  const m = o.method;
  if (!isMethod(m)) throw new UsageError(`unknown merge method ${JSON.stringify(m)} (one of ${MERGE_METHODS.join(', ')})`);
  if (models < 1) throw new UsageError(`--method ${m} needs at least one revision to merge`);
  if (m === 'slerp' && models !== 2) throw new UsageError(`--method slerp merges exactly 2 models, got ${models}`);
  if (o.window && m !== 'linear') throw new UsageError(`--window averages checkpoints: use it with --method linear, not ${m}`);
  if (o.schedule && !o.window) throw new UsageError('--schedule needs --window');
  if (o.weights && m === 'slerp') throw new UsageError('--method slerp takes --t, not --weights');
  if (o.weights && o.window && o.schedule) throw new UsageError('give --weights or --schedule, not both');
  if (o.weights && o.weights.length !== models) {
    throw new UsageError(`--weights has ${o.weights.length} value(s) for ${models} model(s)`, { weights: o.weights.length, models });
  }
  for (const w of o.weights ?? []) checkNumber(w, '--weights', () => true, 'finite numbers');
  if (o.t !== undefined && m !== 'slerp') throw new UsageError(`--t is for slerp, not ${m}`);
  checkNumber(o.t, '--t', (x) => x >= 0 && x <= 1, 'in [0, 1]');
  const sparse = m === 'ties' || m === 'dare-linear' || m === 'dare-ties';
  if (o.density !== undefined && !sparse) throw new UsageError(`--density is for ties and dare, not ${m}`);
  checkNumber(o.density, '--density', (x) => x > 0 && x <= 1, 'in (0, 1]');
  if (o.lambda !== undefined && !usesBase(m)) throw new UsageError(`--lambda is for task-arithmetic, ties and dare, not ${m}`);
  checkNumber(o.lambda, '--lambda', () => true, 'a finite number');
  if (o.base !== undefined && !usesBase(m)) throw new UsageError(`--base is for task-arithmetic, ties and dare, not ${m}`);
  if (o.seed !== undefined && !(Number.isSafeInteger(o.seed) && o.seed >= 0 && o.seed <= 0xffffffff)) {
    throw new UsageError(`--seed must be an integer in [0, 2^32), got ${o.seed}`);
  }
  if (o.format !== undefined && o.format !== 'safetensors') throw new UsageError(`--format: ckpt merge writes safetensors, not ${o.format}`);
}

/** The files each input holds that have tensors, paired across inputs. */
function pairFiles(trees: { rev: string; tree: Tree; manifests: Map<string, Manifest> }[]): string[][] {
  const modelFiles = trees.map((t) => [...t.manifests.entries()].filter(([, m]) => m.segments.some((s) => s.t === 'tensor')).map(([p]) => p).sort());
  const same = modelFiles.every((f) => f.join('\0') === modelFiles[0].join('\0'));
  if (same && modelFiles[0].length > 0) return modelFiles[0].map((p) => modelFiles.map(() => p));
  if (modelFiles.every((f) => f.length === 1)) return [modelFiles.map((f) => f[0])];
  const at = modelFiles.findIndex((f) => f.join('\0') !== modelFiles[0].join('\0'));
  if (modelFiles[0].length === 0) throw new CkptError('E_MISMATCH', `${trees[0].rev} holds no tensors to merge`);
  throw new CkptError(
    'E_MISMATCH',
    `inputs hold different checkpoint files: ${trees[0].rev} has ${modelFiles[0].join(', ') || 'none'}, ${trees[at].rev} has ${modelFiles[at].join(', ') || 'none'}`,
  );
}

async function loadTree(repo: Repository, rev: string, id: ObjectId): Promise<{ rev: string; tree: Tree; manifests: Map<string, Manifest> }> {
  const tree = await repo.readTree((await repo.readCommit(id)).tree);
  const manifests = new Map<string, Manifest>();
  for (const [p, e] of Object.entries(tree.files)) manifests.set(p, await repo.readManifest(e.manifest));
  return { rev, tree, manifests };
}

function inputFile(rev: string, p: string, m: Manifest): InputFile {
  return { rev, path: p, manifest: m, tensors: new Map(logicalTensors(m, p).map((t) => [t.name, t])) };
}

function mismatch(msg: string, data: Record<string, unknown> = {}): CkptError {
  return new CkptError('E_MISMATCH', msg, data);
}

/** Hashes equal means bytes equal; views that are not whole segments are compared by reading. */
async function sameBytes(reader: ChunkReader, a: LogicalTensor, b: LogicalTensor): Promise<boolean> {
  if (a.len !== b.len) return false;
  if (a.whole && b.whole) return a.segment.hash === b.segment.hash;
  const ra = new BlockReader(tensorBytes(reader, a));
  const rb = new BlockReader(tensorBytes(reader, b));
  try {
    for (let done = 0; done < a.len; ) {
      const x = await ra.next(1 << 20);
      const y = await rb.next(1 << 20);
      if (!Buffer.from(x.buffer, x.byteOffset, x.length).equals(Buffer.from(y.buffer, y.byteOffset, y.length))) return false;
      done += x.length;
    }
    return true;
  } finally {
    await ra.close();
    await rb.close();
  }
}

export async function arithmeticMerge(repo: Repository, o: ArithmeticMergeOptions): Promise<MergeSummary> {
  // --- options and revisions
  let inputIds: ObjectId[];
  let labels: string[];
  let weights = o.weights;
  if (o.window) {
    const n = parseWindow(o.window);
    if (o.revs.length > 1) throw new UsageError('--window takes at most one revision (where the window ends)');
    validateOptions({ ...o, method: o.method || 'linear' }, n);
    const startRev = o.revs[0] ?? 'HEAD';
    if (startRev === 'HEAD' && !(await repo.headCommit())) throw new UsageError('--window: the branch has no commits yet');
    inputIds = await windowCommits(repo, await resolveRevision(repo, startRev), n, startRev);
    labels = inputIds.map((id) => id.slice(0, 12));
    weights ??= scheduleWeights((o.schedule ?? 'uniform') as Schedule, n);
  } else {
    validateOptions(o, o.revs.length);
    inputIds = [];
    for (const r of o.revs) inputIds.push(await resolveRevision(repo, r));
    labels = o.revs;
  }
  const method = (o.method || 'linear') as MergeMethod;
  const models = inputIds.length;
  weights ??= new Array<number>(models).fill(1);
  const normalize = o.normalize ?? defaultNormalize(method);
  const density = o.density ?? 1;
  const lambda = o.lambda ?? 1;
  const t = o.t ?? 0.5;
  const seed = o.seed ?? 0;
  let baseId: ObjectId | undefined;
  if (usesBase(method)) {
    if (o.base) baseId = await resolveRevision(repo, o.base);
    else {
      const b = await mergeBaseOfAll(repo, inputIds);
      if (!b) {
        throw new CkptError('E_NOT_FOUND', `${labels.join(', ')} share no history, so there is no merge base: name the base model with --base REV`, {
          inputs: inputIds,
        });
      }
      baseId = b;
    }
  }

  // --- inputs, paired file by file, checked tensor by tensor
  const trees: Awaited<ReturnType<typeof loadTree>>[] = [];
  for (let i = 0; i < models; i++) trees.push(await loadTree(repo, labels[i], inputIds[i]));
  const baseTree = baseId ? await loadTree(repo, o.base ?? `merge base ${baseId.slice(0, 12)}`, baseId) : undefined;
  const groups = pairFiles(baseTree ? [...trees, baseTree] : trees);
  const match = o.tensors ? picomatch(o.tensors, { dot: true }) : () => true;
  // the store's shared lock before any chunk is read: a gc cannot repack what the merge reads
  const lock = await repo.store.lockShared('merge');
  const reader = await openReader(repo, lock);
  const filePlans: FilePlan[] = [];
  let selected = 0;
  try {
    for (const group of groups) {
      const files = group.slice(0, models).map((p, i) => inputFile(labels[i], p, trees[i].manifests.get(p)!));
      const baseFile = baseTree ? inputFile(baseTree.rev, group[models], baseTree.manifests.get(group[models])!) : undefined;
      const first = files[0];
      const plans: Plan[] = [];
      for (const others of [...files.slice(1), ...(baseFile ? [baseFile] : [])]) {
        for (const name of others.tensors.keys()) {
          if (match(name) && !first.tensors.has(name)) {
            throw mismatch(`tensor ${name}: in ${others.rev} (${others.path}) but missing from ${first.rev} (${first.path})`, { tensor: name });
          }
        }
      }
      for (const ft of first.tensors.values()) {
        if (!match(ft.name)) {
          plans.push({ kind: 'copy', t: ft });
          continue;
        }
        selected++;
        const all: LogicalTensor[] = [];
        for (const f of [...files, ...(baseFile ? [baseFile] : [])]) {
          const x = f.tensors.get(ft.name);
          if (!x) throw mismatch(`tensor ${ft.name}: missing from ${f.rev} (${f.path})`, { tensor: ft.name, rev: f.rev });
          if (x.dtype !== ft.dtype) throw mismatch(`tensor ${ft.name}: dtype ${ft.dtype} in ${first.rev}, ${x.dtype} in ${f.rev}`, { tensor: ft.name });
          if (!sameShape(x.shape, ft.shape)) {
            throw mismatch(`tensor ${ft.name}: shape [${ft.shape.join(', ')}] in ${first.rev}, [${x.shape.join(', ')}] in ${f.rev}`, { tensor: ft.name });
          }
          all.push(x);
        }
        const inputs = all.slice(0, models);
        const base = baseFile ? all[models] : undefined;
        if (!isMergeableFloat(ft.dtype)) {
          for (let i = 1; i < models; i++) {
            if (!(await sameBytes(reader, ft, inputs[i]))) {
              throw mismatch(
                `tensor ${ft.name}: ${ft.dtype} values differ between ${first.rev} and ${labels[i]}; non-float tensors are taken from the first model and must be equal in all (exclude it with --tensors)`,
                { tensor: ft.name },
              );
            }
          }
          plans.push({ kind: 'copy', t: ft });
          continue;
        }
        if (method === 'ties' && density < 1 && Math.floor(density * (ft.len / floatBytes(ft.dtype))) === 0 && ft.len > 0) {
          throw new UsageError(`tensor ${ft.name}: --density ${density} keeps none of its ${ft.len / floatBytes(ft.dtype)} elements`, { tensor: ft.name });
        }
        // every input holds the same bytes (and so does the base, where one is used): the result is those bytes
        const allSame = all.every((x) => x.whole && x.segment.hash === ft.segment.hash && ft.whole);
        const sumW = weights.reduce((a, b) => a + b, 0);
        // linear without normalizing scales even identical inputs
        if (allSame && (method !== 'linear' || (normalize && Math.abs(sumW) >= 1e-8))) plans.push({ kind: 'copy', t: ft });
        else plans.push({ kind: 'compute', inputs, base, out: ft });
      }
      const sameFraming = o.format === undefined && SAME_FRAMING_FORMATS.has(first.manifest.format) && !first.manifest.tensors;
      filePlans.push({ path: sameFraming ? first.path : safetensorsPath(first.path), first, sameFraming, plans });
    }
  } catch (e) {
    await reader.close();
    await lock.release();
    throw e;
  }
  if (selected === 0) {
    await reader.close();
    await lock.release();
    throw new CkptError('E_NOT_FOUND', `no tensor matches --tensors ${o.tensors}`, { glob: o.tensors });
  }
  try {
    assertDistinctPaths(filePlans.map((f) => f.path));
  } catch (e) {
    await reader.close();
    await lock.release();
    throw e;
  }

  const recipe: MergeRecipe = {
    method,
    inputs: inputIds,
    ...(method !== 'slerp' ? { weights } : { t }),
    ...(baseId ? { base: baseId, lambda } : {}),
    ...(method === 'ties' || method.startsWith('dare') ? { density } : {}),
    ...(method.startsWith('dare') ? { seed } : {}),
    ...(method !== 'slerp' ? { normalize } : {}),
    ...(o.tensors ? { tensors: o.tensors } : {}),
    ...(o.window ? { window: o.window, schedule: o.schedule ?? 'uniform' } : {}),
    ...(o.format ? { format: o.format } : {}),
    ckptVersion: ckptVersion(),
  };

  // --- compute and store
  const ingestor = new Ingestor(repo.store, { compress: true });
  const summary: MergeSummary = {
    id: '',
    branch: undefined,
    parents: [],
    recipe,
    files: [],
    tensors: { merged: 0, reused: 0, copied: 0 },
    nan: [],
  };
  try {
    const target = await currentTarget(repo);
    const index = await repo.store.reloadIndex();
    // fewer chunks in the encoder than a commit keeps: merge holds a block of every input besides
    const sink = ingestor.sink(index, 4);
    const chunkSize = repo.store.config.chunkSize;
    const resultFiles: Record<string, Manifest | TreeEntry> = {};
    // files of the first model that hold no tensors (configs, tokenizers) come along unchanged
    const firstTree = trees[0].tree;
    const paired = new Set(groups.map((g) => g[0]));
    for (const [p, e] of Object.entries(firstTree.files)) if (!paired.has(p)) resultFiles[p] = e;
    const total = filePlans.reduce((n, f) => n + f.plans.reduce((k, p) => k + (p.kind === 'compute' ? p.out.len : 0), 0), 0);
    let done = 0;
    try {
      for (const fp of filePlans) {
        const b = new ManifestBuilder(sink, reader, chunkSize);
        const ctx: ComputeContext = { method, weights, normalize, density, lambda, t, seed, reader, chunkSize };
        const writeTensor = async (p: Plan, name: string) => {
          if (p.kind === 'copy') {
            summary.tensors[await b.takeTensor(p.t, name)]++;
            return;
          }
          const nans = await computeTensor(ctx, p, b.tensor(name, p.out.dtype, p.out.shape, p.out.len), (n) => o.onProgress?.((done += n), total));
          summary.tensors.merged++;
          if (nans > 0) summary.nan.push({ tensor: p.out.name, file: fp.path, count: nans });
        };
        let m: Manifest;
        if (fp.sameFraming) {
          const byName = new Map(fp.plans.map((p) => [(p.kind === 'copy' ? p.t : p.out).name, p]));
          for (const s of fp.first.manifest.segments) {
            if (s.t === 'bytes') await b.reuseBytes(s);
            else await writeTensor(byName.get(s.name)!, s.name);
          }
          const fm = fp.first.manifest;
          m = b.finish(fm.format, { ...(fm.info ? { info: fm.info } : {}) });
        } else {
          const list = fp.plans.map((p) => (p.kind === 'copy' ? p.t : p.out));
          await b.newBytes(encodeSafetensorsHeader(list.map((x) => ({ name: x.name, dtype: x.dtype, shape: x.shape, length: x.len })), metadataOf(fp.first.manifest)));
          for (const p of fp.plans) await writeTensor(p, (p.kind === 'copy' ? p.t : p.out).name);
          const meta = metadataOf(fp.first.manifest);
          m = b.finish('safetensors', meta ? { info: { metadata: meta } } : {});
        }
        resultFiles[fp.path] = m;
        summary.files.push({ path: fp.path, format: m.format, size: m.size, from: fp.first.path });
      }
      await sink.drain();
      await ingestor.flush();
    } catch (e) {
      await ingestor.abort();
      throw e;
    }
    const parents = mergeParents(target.head, inputIds);
    const message = o.message ?? `merge ${method}${o.window ? ` ${o.window}` : ''} of ${labels.join(', ')}`;
    const { id } = await writeMergeCommit(repo, target, resultFiles, parents, message, { extra: { merge: recipe } });
    summary.id = id;
    summary.branch = target.ref;
    summary.parents = parents;
    return summary;
  } finally {
    await ingestor.close();
    await reader.close();
    await lock.release();
  }
}
