// The manifests of a set that can be packed: every layer built, each key current with the set file (as it was
// built: with the upstream state and the day it recorded), each layer built on its parent's present build.
import { OstError } from '../../core/errors.js';
import { exists } from '../../core/fsutil.js';
import { type BuildPaths, type LayerManifest, readManifest } from '../build-dir.js';
import { readPublicKey } from '../keypair.js';
import { computeKeys } from '../plan/keys.js';
import type { ImageSet } from '../plan/model.js';
import type { UpstreamState } from '../upstream.js';

/** Manifests of every layer; fails when a layer is not built, not current, or not built on its parent. */
export async function builtManifests(set: ImageSet, paths: BuildPaths): Promise<Map<string, LayerManifest>> {
  const out = new Map<string, LayerManifest>();
  const missing: string[] = [];
  for (const l of set.layers) {
    const m = await readManifest(paths, l.name);
    if (!m || !(await exists(paths.image(l.name)))) missing.push(l.name);
    else out.set(l.name, m);
  }
  if (missing.length > 0) {
    throw new OstError(
      `layers not built in ${paths.out}: ${missing.join(', ')}`,
      `run ost build-images ${set.file} first`,
    );
  }
  // keys as built: with the upstream state and the day each layer recorded (not today's)
  const keys = await computeKeys(set, {
    publicKey: await readPublicKey(paths),
    upstream: new Map(
      [...out].flatMap(([name, m]) => (m.upstream ? [[name, m.upstream] as [string, UpstreamState[]]] : [])),
    ),
    days: new Map([...out].flatMap(([name, m]) => (m.day ? [[name, m.day] as [string, string]] : []))),
  });
  const stale = set.layers.filter((l) => out.get(l.name)?.key !== keys.get(l.name)).map((l) => l.name);
  if (stale.length > 0) {
    throw new OstError(
      `layers out of date with ${set.file}: ${stale.join(', ')}`,
      `run ost build-images ${set.file} first (only a complete, current set is published)`,
    );
  }
  for (const l of set.layers) {
    const m = out.get(l.name) as LayerManifest;
    const p = l.parent ? out.get(l.parent) : undefined;
    if (p && m.parentBuildId !== p.buildId) {
      throw new OstError(
        `${l.name} was built on an older ${l.parent}; the set is not consistent`,
        `run ost build-images ${set.file} to rebuild it`,
      );
    }
  }
  return out;
}
