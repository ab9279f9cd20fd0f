// Where overlays go: the shared cache (default /dev/shm/ost) when it has room, else the fallback directory.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { OstError } from '../core/errors.js';
import type { Reporter } from '../core/events.js';
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

/**
 * The overlay root for this env: `root` when it has `reservePerVmBytes` free per VM, else `fallback`
 * (with a warning), else an error naming both.
 */
export async function chooseOverlayRoot(
  o: { root: string; fallback: string; reservePerVmBytes: number },
  env: Environment,
  reporter: Reporter,
): Promise<string> {
  const need = o.reservePerVmBytes * env.vms.length;
  const free = await freeBytes(o.root);
  if (free >= need) return path.resolve(o.root);
  const fbFree = await freeBytes(o.fallback);
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
