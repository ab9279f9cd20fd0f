// The env dir: for an OST suite its deployment dir ($OST_DEPLOYMENT, else <OST checkout>/deployment), the
// folder OST's harness reads; for ost's own suites <state>/envs/<id>. Either way <state>/envs/<id> finds
// it (a symlink to a deployment dir), and a marker file names the env that owns it, so teardown removes a
// deployment dir only when it is that env's.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { OstError } from '../../core/errors.js';
import type { ProcessId } from '../../core/process.js';
import { envDirOf } from './record.js';

/**
 * The file in an env dir that names its env and the `ost up` that made it (`<id> <pid> <start>`), written
 * first, before anything else in it: `ost gc` never takes a starting env for a leftover.
 */
export const MARKER = '.ost-env';

/** Characters a deployment path may have: OST's scripts compare it as a plain string in XML and shell. */
const SAFE_PATH = /^\/[A-Za-z0-9._+/@-]*$/;

/** Check a deployment path: absolute, plain characters (it is written into libvirt XML and sh as it is). */
export function checkDeploymentPath(dir: string): void {
  if (!SAFE_PATH.test(dir) || dir.split('/').includes('..'))
    throw new OstError(
      `deployment dir ${JSON.stringify(dir)} must be an absolute path of letters, digits and . _ + - @ /`,
      'set OST_DEPLOYMENT (or --deployment) to such a path',
    );
}

/** Create the env dir (refusing one that exists, as ost_init does) with its marker and subfolders. */
export async function createWorkdir(
  stateRoot: string,
  id: string,
  owner: ProcessId,
  deployment?: string,
): Promise<string> {
  const link = envDirOf(stateRoot, id);
  const dir = deployment ?? link;
  await fs.mkdir(path.dirname(dir), { recursive: true });
  try {
    await fs.mkdir(dir, { mode: 0o755 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST')
      throw new OstError(
        deployment
          ? `deployment dir ${dir} already exists (an environment is there, or was)`
          : `environment ${id} already exists (${dir})`,
        deployment
          ? `ost down ${dir} (or ./ost.sh destroy), or set OST_DEPLOYMENT to another path`
          : `ost down ${id}, or pick another --id`,
      );
    throw err;
  }
  await fs.writeFile(path.join(dir, MARKER), `${id} ${owner.pid} ${owner.start}\n`, { mode: 0o644 });
  if (deployment) {
    await fs.mkdir(path.dirname(link), { recursive: true });
    await fs.symlink(dir, link);
  }
  for (const sub of ['logs', 'images', 'libvirt']) await fs.mkdir(path.join(dir, sub));
  await fs.mkdir(path.join(dir, 'keys'), { mode: 0o700 });
  return dir;
}

async function readMarker(dir: string): Promise<string[]> {
  try {
    return (await fs.readFile(path.join(dir, MARKER), 'utf8')).trim().split(/\s+/);
  } catch {
    return [];
  }
}

/** Whether `dir` is the env dir of env `id` (its marker says so). */
export async function ownsWorkdir(dir: string, id: string): Promise<boolean> {
  return (await readMarker(dir))[0] === id;
}

/** The `ost up` process that made an env dir, from its marker (undefined while it is being written). */
export async function markerOwner(dir: string): Promise<ProcessId | undefined> {
  const [, pid, start] = await readMarker(dir);
  return pid && /^\d+$/.test(pid) ? { pid: Number(pid), start: start ?? '' } : undefined;
}

/** Remove an env's dir (only when its marker names the env) and its <state>/envs/<id> link. */
export async function removeWorkdir(
  stateRoot: string,
  id: string,
  dir: string | undefined,
): Promise<string[]> {
  const removed: string[] = [];
  const link = envDirOf(stateRoot, id);
  if (dir && (await ownsWorkdir(dir, id))) {
    await fs.rm(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  const st = await fs.lstat(link).catch(() => undefined);
  if (st?.isSymbolicLink()) {
    await fs.rm(link, { force: true });
  } else if (st && link !== dir && (await ownsWorkdir(link, id))) {
    await fs.rm(link, { recursive: true, force: true });
    removed.push(link);
  }
  return removed;
}

/**
 * Hand a deployment dir to the user who ran ost through sudo (SUDO_UID), as ost.sh's would be theirs:
 * pytest writes ansible_inventory/, deployed and answer files there. Files qemu must write (the extra
 * disks) stay qemu's.
 */
export async function giveToUser(dir: string, user: { uid: number; gid: number }, keep: Set<string>) {
  const walk = async (p: string): Promise<void> => {
    if (keep.has(p)) return;
    await fs.lchown(p, user.uid, user.gid);
    const st = await fs.lstat(p);
    if (st.isDirectory()) for (const e of await fs.readdir(p)) await walk(path.join(p, e));
  };
  await walk(dir);
}
