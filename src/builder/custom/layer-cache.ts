// The custom-layer cache (--layer-cache, default /var/cache/ost/layers): list its custom layers with their
// disk use, and remove the ones no live env uses (ost gc --layers). A layer used in the last few minutes is
// kept even when no env record names it yet: `ost up` takes a layer from the cache before it writes its env
// record.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { allocatedBytes, removeTree } from '../../core/fsutil.js';
import { acquireLock } from '../../core/lock.js';
import { processAlive } from '../../core/process.js';
import { CUSTOM_FORMAT, type CustomLayerInfo } from './types.js';

/** An `ost up` between taking a layer and recording it has this long. */
export const YOUNG_MS = 10 * 60_000;

export interface CachedLayer {
  dir: string;
  /** layer.qcow2 */
  file: string;
  info?: CustomLayerInfo;
  /** Bytes on disk of everything in its folder. */
  bytes: number;
  lastUsed: Date;
}

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const f of await fs.readdir(dir).catch(() => [] as string[]))
    total += await allocatedBytes(path.join(dir, f)).catch(() => 0);
  return total;
}

/** Every layer in the cache (complete ones: folders named after their key with a layer.json). */
export async function listLayers(cacheDir: string): Promise<CachedLayer[]> {
  const names = await fs.readdir(cacheDir).catch(() => [] as string[]);
  const out: CachedLayer[] = [];
  for (const name of names.filter((n) => /^[0-9a-f]{32}$/.test(n)).sort()) {
    const dir = path.join(cacheDir, name);
    const info = await fs
      .readFile(path.join(dir, 'layer.json'), 'utf8')
      .then((t) => JSON.parse(t) as CustomLayerInfo)
      .catch(() => undefined);
    const used = await fs.stat(path.join(dir, 'used')).catch(() => undefined);
    const st = await fs.stat(dir);
    out.push({
      dir,
      file: path.join(dir, 'layer.qcow2'),
      info: info?.format === CUSTOM_FORMAT ? info : undefined,
      bytes: await dirBytes(dir),
      lastUsed: used?.mtime ?? st.mtime,
    });
  }
  return out;
}

export interface LayerGcResult {
  removed: CachedLayer[];
  kept: { layer: CachedLayer; why: string }[];
  /** Temporary folders of builds whose process is gone. */
  leftovers: string[];
}

/**
 * Remove the layers that no live env uses (`inUse`: layer.qcow2 paths from env records) and that were
 * not used in the last `keepDays` days (nor in the last few minutes). A layer being built is not in the
 * list yet; a layer whose lock is held (a builder re-checking it) is skipped.
 */
export async function gcLayers(
  cacheDir: string,
  inUse: ReadonlySet<string>,
  keepDays: number,
  now = Date.now(),
): Promise<LayerGcResult> {
  const result: LayerGcResult = { removed: [], kept: [], leftovers: [] };
  const keepMs = Math.max(keepDays * 86_400_000, YOUNG_MS);
  for (const layer of await listLayers(cacheDir)) {
    if (inUse.has(layer.file)) {
      result.kept.push({ layer, why: 'in use by an environment' });
      continue;
    }
    const age = now - layer.lastUsed.getTime();
    if (age < keepMs) {
      result.kept.push({
        layer,
        why: age < YOUNG_MS ? 'used in the last minutes' : `used in the last ${keepDays} days`,
      });
      continue;
    }
    let lock: Awaited<ReturnType<typeof acquireLock>>;
    try {
      lock = await acquireLock(`${layer.dir}.lock`, 'ost gc --layers');
    } catch {
      result.kept.push({ layer, why: 'locked by a builder' });
      continue;
    }
    try {
      await removeTree(layer.dir);
      result.removed.push(layer);
    } finally {
      await lock.release();
    }
  }
  // .tmp-<key>-<pid>-<rand> and .stage-<pid>-<rand>: a build or staging that died; old logs of failed builds
  for (const name of await fs.readdir(cacheDir).catch(() => [] as string[])) {
    if (name.endsWith('.failed.log')) {
      const st = await fs.stat(path.join(cacheDir, name)).catch(() => undefined);
      if (st && now - st.mtimeMs >= keepMs) {
        await fs.rm(path.join(cacheDir, name), { force: true });
        result.leftovers.push(path.join(cacheDir, name));
      }
      continue;
    }
    const m = /^\.(?:tmp-[0-9a-f]{16}|stage)-(\d+)-[0-9a-f]+$/.exec(name);
    if (!m || processAlive({ pid: Number(m[1]), start: '' })) continue;
    await removeTree(path.join(cacheDir, name));
    result.leftovers.push(path.join(cacheDir, name));
  }
  return result;
}
