// Reading an env record back before acting on it. Root trusts only its own records: env.json in a real
// env dir (not a link) that is ours and that nobody else can write, and whose every name and path stays
// inside the env's own places (the env dir, its overlay dir). Anything else is no record at all: ost then
// knows the env from libvirt's metadata alone, and never deletes, copies, prints or chowns what a record
// another user could have written names.
import { constants as fsConstants } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { NAME } from '../env/model.js';
import { ENV_ID } from '../net/layout.js';
import type { EnvRecord } from './record.js';

/** Whether `p` is `dir` itself or inside it (both absolute, normalised). */
function inside(p: string, dir: string): boolean {
  const rel = path.relative(dir, path.resolve(p));
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

/** What is wrong with a record read from env dir `dir`, first problem only; undefined when it is sound. */
export function recordProblem(r: EnvRecord, dir: string): string | undefined {
  if (!r || typeof r !== 'object' || !Array.isArray(r.vms) || !Array.isArray(r.networks))
    return 'not a record';
  if (typeof r.id !== 'string' || !ENV_ID.test(r.id) || path.basename(dir) !== r.id)
    return `id ${JSON.stringify(r.id)} is not its dir's`;
  if (path.resolve(r.workdir ?? '') !== path.resolve(dir)) return `workdir ${r.workdir} is not ${dir}`;
  if (typeof r.overlayDir !== 'string' || path.basename(r.overlayDir) !== r.id)
    return `overlay dir ${r.overlayDir} is not named after the env`;
  if (r.deployment && (!path.isAbsolute(r.deployment.dir) || r.deployment.dir.split('/').includes('..')))
    return `deployment dir ${r.deployment.dir} is not an absolute path`;
  for (const vm of r.vms) {
    if (typeof vm.name !== 'string' || !NAME.test(vm.name)) return `VM name ${JSON.stringify(vm.name)}`;
    const own = [
      [vm.overlay, [r.overlayDir]],
      [vm.key, [path.join(dir, 'keys')]],
      [vm.consoleLog, [path.join(dir, 'logs')]],
      ...(vm.disks ?? []).map((d) => [d.path, [r.overlayDir]] as const),
    ] as const;
    for (const [p, dirs] of own)
      if (typeof p !== 'string' || !dirs.some((d) => inside(p, d)))
        return `${vm.name}: ${p} is outside the env's own dirs`;
  }
  return undefined;
}

/**
 * env.json of env dir `dir`, when it can be trusted: `dir` a real directory and env.json a regular file,
 * both owned by us and writable by nobody else, and the record sound (recordProblem). Else undefined.
 */
export async function readTrustedRecord(dir: string): Promise<EnvRecord | undefined> {
  const me = process.geteuid?.() ?? 0;
  const st = await fs.lstat(dir).catch(() => undefined);
  if (!st?.isDirectory() || st.uid !== me || (st.mode & 0o022) !== 0) return undefined;
  const fh = await fs
    .open(path.join(dir, 'env.json'), fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW)
    .catch(() => undefined);
  if (!fh) return undefined;
  try {
    const fst = await fh.stat();
    if (!fst.isFile() || fst.uid !== me || (fst.mode & 0o022) !== 0) return undefined;
    const r = JSON.parse(await fh.readFile('utf8')) as EnvRecord;
    return recordProblem(r, dir) ? undefined : r;
  } catch {
    return undefined;
  } finally {
    await fh.close();
  }
}
