/**
 * A store whose every name is an attack on the page: tensor names, a branch, a tag, messages,
 * metric and param names and values with `<script>`, quotes, U+2028 and other unicode. Each
 * injection, if it ran, would set window.__pwned or log PWNED.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { createRef } from '../../src/repo/branches.js';
import { commitFiles } from '../../src/repo/commit.js';
import { Repository } from '../../src/repo/repository.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';

export const HOSTILE = {
  tensors: [
    '<script>window.__pwned=1;console.log("PWNED")</script>.weight',
    `q"u'o\u2028te</script><img src=x onerror=window.__pwned=2>.bias`,
    'ünïcødé.名前.🙂.w',
    'plain.layer.w',
  ],
  message: `</script><script>window.__pwned=3;console.log("PWNED")</script> & "double" 'single' \u2028\u2029 ünï ✓ <!--`,
  metric: `<img src=x onerror="window.__pwned=4;console.log('PWNED')">`,
  branch: `x"><svg/onload=window.__pwned=5>`,
  tag: `<b>t</b>`,
  param: ['<i>lr</i>', `'"><script>window.__pwned=6</script>`] as const,
};

function tensors(seed: number) {
  return HOSTILE.tensors.map((name, k) => {
    const a = new Float32Array(64).map((_, i) => Math.sin(i + k) + seed * 0.01 * (i % 3));
    return { name, dtype: 'F32', shape: [8, 8], data: new Uint8Array(a.buffer) };
  });
}

export async function makeHostileStore(dir: string): Promise<Repository> {
  const repo = await Repository.init(dir, { author: `<script>window.__pwned=7</script>@"x"` });
  const file = path.join(dir, 'model.safetensors');
  const commit = async (seed: number, branch?: string) => {
    await fs.writeFile(file, writeSafetensors(tensors(seed)));
    return commitFiles(repo, [file], {
      message: `${HOSTILE.message} #${seed}`,
      branch,
      meta: { step: seed * 10, metrics: { [HOSTILE.metric]: 1 / seed }, params: { [HOSTILE.param[0]]: HOSTILE.param[1] } },
      code: { commit: '<script>window.__pwned=8</script>', branch: HOSTILE.message, dirty: true },
    });
  };
  const first = await commit(1);
  await commit(2);
  await createRef(repo, 'heads', HOSTILE.branch, first.id);
  await createRef(repo, 'tags', HOSTILE.tag, first.id);
  await commit(3, HOSTILE.branch);
  return repo;
}
