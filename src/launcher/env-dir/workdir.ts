// The env dir, <state>/envs/<id>: ost's own (env.json, logs, keys, libvirt XML, an OST suite's extra
// disks), never in a tree another user can write. A marker file names the env that owns it, so teardown
// removes a dir only when it is that env's. (An OST suite's deployment dir is its owner's: deployment.ts.)
import { constants as fsConstants } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { OstError } from '../../core/errors.js';
import type { ProcessId } from '../../core/process.js';
import { ownDir } from '../../core/safe-dir.js';
import { envDirOf, envsDir } from './record.js';

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

/**
 * Create the env dir `<state>/envs/<id>` (refusing one that exists) with its marker and subfolders, each
 * with its mode whatever the umask: console logs are readable through it (an OST suite's deployment
 * dir links to them, for its owner); XML and keys are ost's alone.
 */
export async function createWorkdir(stateRoot: string, id: string, owner: ProcessId): Promise<string> {
  const dir = envDirOf(stateRoot, id);
  // a deployment dir's owner passes through it to the logs: 0711, whatever the umask
  await ownDir(envsDir(stateRoot), 0o711, 'the env dirs folder');
  try {
    await fs.mkdir(dir, { mode: 0o711 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST')
      throw new OstError(`environment ${id} already exists (${dir})`, `ost down ${id}, or pick another --id`);
    throw err;
  }
  await fs.chmod(dir, 0o711);
  await fs.writeFile(path.join(dir, MARKER), `${id} ${owner.pid} ${owner.start}\n`, { mode: 0o644 });
  for (const [sub, mode] of [
    ['logs', 0o755],
    ['libvirt', 0o700],
    ['keys', 0o700],
  ] as const) {
    await fs.mkdir(path.join(dir, sub), { mode });
    await fs.chmod(path.join(dir, sub), mode);
  }
  return dir;
}

/** The marker's words, never following a link put in its place (a deployment dir is its user's). */
async function readMarker(dir: string): Promise<string[]> {
  const fh = await fs
    .open(path.join(dir, MARKER), fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW)
    .catch(() => undefined);
  if (!fh) return [];
  try {
    return (await fh.readFile('utf8')).trim().split(/\s+/);
  } catch {
    return [];
  } finally {
    await fh.close();
  }
}

/** Whether `dir` is the env dir, or the deployment dir, of env `id` (its marker says so). */
export async function ownsWorkdir(dir: string, id: string): Promise<boolean> {
  return (await readMarker(dir))[0] === id;
}

/** The `ost up` process that made an env dir, from its marker (undefined while it is being written). */
export async function markerOwner(dir: string): Promise<ProcessId | undefined> {
  const [, pid, start] = await readMarker(dir);
  return pid && /^\d+$/.test(pid) ? { pid: Number(pid), start: start ?? '' } : undefined;
}

/**
 * Remove an env's dir `<state>/envs/<id>` (only when its marker names the env). One an older ost left as
 * a link to a deployment dir: the link alone (the dir is its owner's, removed as them by teardown).
 */
export async function removeWorkdir(stateRoot: string, id: string): Promise<string[]> {
  const dir = envDirOf(stateRoot, id);
  const st = await fs.lstat(dir).catch(() => undefined);
  if (st?.isSymbolicLink()) {
    await fs.rm(dir, { force: true });
    return [];
  }
  if (!st || !(await ownsWorkdir(dir, id))) return [];
  await fs.rm(dir, { recursive: true, force: true });
  return [dir];
}
