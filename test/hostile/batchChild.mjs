// Runs several ckpt command lines one after another in ONE process (the built CLI's main(), its
// output caught from process.stdout/stderr), snapshotting a store before and after each: many
// runs at the cost of one Node start. Each result is written as a JSON line on fd 3 as soon as it
// is known, so a run that hangs loses only itself and what follows. Used by measuredCli.ts.
import { createHash } from 'node:crypto';
import { promises as fs, writeSync } from 'node:fs';
import * as path from 'node:path';

const { main, store, runs, timeoutMs } = JSON.parse(process.env.CKPT_BATCH);
const { main: run } = await import(main);

/** Type and hash of everything under `dir`, opening regular files only (never a FIFO). */
async function snapshot(dir) {
  const out = [];
  const walk = async (rel) => {
    let ents;
    try {
      ents = await fs.readdir(path.join(dir, rel), { withFileTypes: true });
    } catch (e) {
      out.push(`${rel}: ${e.code}`);
      return;
    }
    for (const e of ents.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        out.push(`${r}/`);
        await walk(r);
      } else if (e.isFile()) out.push(`${r} ${createHash('sha256').update(await fs.readFile(path.join(dir, r))).digest('hex')}`);
      else out.push(`${r} special`);
    }
  };
  await walk('');
  return out.join('\n');
}

const realOut = process.stdout.write.bind(process.stdout);
const realErr = process.stderr.write.bind(process.stderr);
for (const argv of runs) {
  const before = await snapshot(store);
  const out = [];
  const err = [];
  process.stdout.write = (chunk) => (out.push(String(chunk)), true);
  process.stderr.write = (chunk) => (err.push(String(chunk)), true);
  process.exitCode = undefined;
  let timer;
  const hung = new Promise((resolve) => (timer = setTimeout(() => resolve('hung'), timeoutMs)));
  let code;
  try {
    code = await Promise.race([run(argv), hung]);
  } catch (e) {
    code = 'threw';
    err.push(String(e?.stack ?? e));
  } finally {
    clearTimeout(timer);
    process.stdout.write = realOut;
    process.stderr.write = realErr;
  }
  process.exitCode = undefined;
  const after = code === 'hung' ? before : await snapshot(store);
  writeSync(3, `${JSON.stringify({ argv, code, stdout: out.join(''), stderr: err.join(''), unchanged: before === after })}\n`);
  if (code === 'hung') process.exit(99); // the hung command may hold locks: stop here
}
process.exit(0);
