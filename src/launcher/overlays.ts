// Where overlays go: the shared cache (default /dev/shm/ost) when it has room, else the fallback directory.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { OstError } from '../core/errors.js';
import type { Reporter } from '../core/events.js';
import { acquireLock } from '../core/lock.js';
import type { Environment } from './env/model.js';

const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;

/** Free bytes on the filesystem holding `dir` (or its nearest existing ancestor). */
export async function freeBytes(dir: string): Promise<number> {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    try {
      const s = await fs.statfs(d);
      return s.bavail * s.bsize;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || d === path.dirname(d)) throw err;
    }
  }
}

/** The file in an env's overlay dir that says how much room the env asked for when it started. */
export const RESERVE_FILE = '.reserve';

/**
 * Room other envs under `root` reserved and have not filled yet: for each env dir with a reservation,
 * what it reserved minus what its files take now. Overlays start empty and grow as the guests write, so
 * two `ost up`s at once would otherwise both count the same free space.
 */
export async function outstandingReservations(root: string): Promise<number> {
  let total = 0;
  const dirs = await fs.readdir(root).catch(() => [] as string[]);
  for (const d of dirs) {
    const dir = path.join(root, d);
    const reserved = Number((await fs.readFile(path.join(dir, RESERVE_FILE), 'utf8').catch(() => '')).trim());
    if (!Number.isFinite(reserved) || reserved <= 0) continue;
    let used = 0;
    for (const f of await fs.readdir(dir).catch(() => [] as string[])) {
      if (f === RESERVE_FILE) continue;
      const st = await fs.lstat(path.join(dir, f)).catch(() => undefined);
      if (st?.isFile()) used += st.blocks * 512;
    }
    total += Math.max(0, reserved - used);
  }
  return total;
}

/** Free room under `dir` for a new env: free bytes less what other envs reserved and have not used. */
async function roomFor(dir: string): Promise<number> {
  return (await freeBytes(dir)) - (await outstandingReservations(dir));
}

/**
 * The overlay root for this env: `root` when it has `reservePerVmBytes` per VM of room (free space less
 * other starting envs' reservations), else `fallback` (with a warning), else an error naming both.
 */
export async function chooseOverlayRoot(
  o: { root: string; fallback: string; reservePerVmBytes: number },
  env: Environment,
  reporter: Reporter,
): Promise<string> {
  const need = o.reservePerVmBytes * env.vms.length;
  const free = await roomFor(o.root);
  if (free >= need) return path.resolve(o.root);
  const fbFree = await roomFor(o.fallback);
  if (fbFree >= need) {
    reporter({
      type: 'warning',
      message: `${o.root} has ${gib(free)} free, ${gib(need)} wanted for ${env.vms.length} VMs: overlays go to ${o.fallback}`,
    });
    return path.resolve(o.fallback);
  }
  throw new OstError(
    `no room for overlays: ${o.root} has ${gib(free)} and ${o.fallback} ${gib(fbFree)} free, ${gib(need)} wanted`,
    'free space, or point --overlay-dir / --overlay-fallback (OST_OVERLAY_DIR / OST_OVERLAY_FALLBACK) elsewhere',
  );
}

/**
 * Make the env's overlay dir and record its reservation, under the root's lock, after checking again that
 * the room is still there (another `ost up` may have reserved it since the root was chosen).
 */
export async function claimOverlayDir(root: string, dir: string, needBytes: number): Promise<void> {
  const lock = await acquireLock(path.join(root, '.lock'), `reserve room for ${path.basename(dir)}`, 30_000);
  try {
    const room = await roomFor(root);
    if (room < needBytes)
      throw new OstError(
        `no room for overlays in ${root}: ${gib(room)} left after other starting environments' reservations, ${gib(needBytes)} wanted`,
        'wait for the other environments to start, or use --overlay-dir / --overlay-reserve',
      );
    await fs.mkdir(dir, { mode: 0o750 });
    await fs.writeFile(path.join(dir, RESERVE_FILE), `${needBytes}\n`, { mode: 0o640 });
  } finally {
    await lock.release();
  }
}

/**
 * Overlay dirs under `roots` that no env claims (`known`: the ids ost found anywhere else — libvirt,
 * env dirs, leases) and that are older than `graceMs` (an ost up makes its env dir before its overlay
 * dir, so a young one may belong to an up just starting). Only dirs ost makes: with a reservation file.
 */
export async function orphanOverlayDirs(
  roots: readonly string[],
  known: ReadonlySet<string>,
  graceMs: number,
  now = Date.now(),
): Promise<string[]> {
  const out: string[] = [];
  for (const root of new Set(roots.map((r) => path.resolve(r)))) {
    for (const id of await fs.readdir(root).catch(() => [] as string[])) {
      if (known.has(id) || id.startsWith('.')) continue;
      const dir = path.join(root, id);
      const st = await fs.lstat(dir).catch(() => undefined);
      if (!st?.isDirectory() || now - st.mtimeMs < graceMs) continue;
      if (await fs.lstat(path.join(dir, RESERVE_FILE)).catch(() => undefined)) out.push(dir);
    }
  }
  return out;
}

/** Remove an orphan overlay dir under its root's lock (claimOverlayDir's), so no up is counting it. */
export async function removeOverlayDir(dir: string): Promise<void> {
  const lock = await acquireLock(path.join(path.dirname(dir), '.lock'), `remove ${dir}`, 30_000);
  try {
    await fs.rm(dir, { recursive: true, force: true });
  } finally {
    await lock.release();
  }
}
