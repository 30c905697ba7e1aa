/**
 * Which files some process holds open for writing, from /proc/<pid>/fd and the flags in
 * /proc/<pid>/fdinfo (Linux). Processes whose fd table we may not read are invisible: the answer
 * is then "not seen", and the timing rule alone decides.
 */
import { promises as fs } from 'node:fs';

const O_ACCMODE = 0o3;

/** The subset of `files` (absolute, resolved paths) open for writing by another process. */
export async function filesOpenForWriting(files: Set<string>): Promise<Set<string>> {
  const out = new Set<string>();
  if (files.size === 0) return out;
  let pids: string[];
  try {
    pids = (await fs.readdir('/proc')).filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid);
  } catch {
    return out;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = await fs.readdir(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = await fs.readlink(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      // a file deleted while held open reads `<path> (deleted)`
      if (target.endsWith(' (deleted)')) target = target.slice(0, -' (deleted)'.length);
      if (!files.has(target)) continue;
      try {
        const info = await fs.readFile(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
        const flags = /^flags:\s*([0-7]+)/m.exec(info);
        // unreadable flags: count it as a writer, the safe side
        if (!flags || (parseInt(flags[1], 8) & O_ACCMODE) !== 0) out.add(target);
      } catch {
        out.add(target);
      }
    }
  }
  return out;
}
