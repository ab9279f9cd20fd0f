// The plan: for every layer, whether it is cached, (re)built or fetched from the cache repository, and why.

import { UsageError } from '../../core/errors.js';
import { exists } from '../../core/fsutil.js';
import { type BuildPaths, type LayerManifest, readManifest } from '../build-dir.js';
import { type CacheHit, findLayer, usableHit } from '../repo/cache-repo.js';
import type { RepoPackage } from '../repo/metadata.js';
import { describeChange, sameStates, type UpstreamState } from '../upstream.js';
import { today } from './keys.js';
import { chainOf, type ImageSet, type Layer } from './model.js';

export type PlanAction = 'cached' | 'build' | 'fetch' | 'skip';

export interface PlanEntry {
  layer: Layer;
  key: string;
  action: PlanAction;
  reason: string;
  manifest?: LayerManifest;
  /** For 'fetch': the cache repository package to unpack. */
  hit?: CacheHit;
  /** refresh: upstream — the repositories' state this plan was made with (recorded in the manifest). */
  upstream?: UpstreamState[];
}

export interface PlanOptions {
  /** Rebuild these layers even when cached (their descendants follow). */
  force?: string[];
  /** Build only these layers (and whatever of their chain is not built yet). */
  only?: string[];
  /** refresh: upstream layers: their repositories' current state (to say why a layer rebuilds). */
  upstream?: Map<string, UpstreamState[]>;
}

/** Why a built layer's key no longer matches: its repositories moved on, its day passed, or its definition changed. */
function changeReason(layer: Layer, m: LayerManifest, states: UpstreamState[] | undefined): string {
  if (layer.refresh === 'upstream' && states && m.refresh === 'upstream' && !sameStates(m.upstream, states))
    return `upstream: ${describeChange(m.upstream, states)}`;
  if (layer.refresh === 'daily' && m.refresh === 'daily' && m.day !== today())
    return `daily: built for ${m.day ?? 'an earlier day'}, today is ${today()}`;
  return 'definition, files or builder changed';
}

/** --force/--only must name layers of the set: a usage error otherwise, before anything is made. */
export function checkLayerFlags(set: ImageSet, opts: PlanOptions): void {
  const names = set.layers.map((l) => l.name);
  for (const [flag, list] of [
    ['--force', opts.force ?? []],
    ['--only', opts.only ?? []],
  ] as const) {
    for (const n of list) {
      if (!names.includes(n)) {
        throw new UsageError(`${flag} ${n}: no such layer in ${set.file}`, `layers are: ${names.join(', ')}`);
      }
    }
  }
}

/** Decide what to build. Throws when --force/--only name unknown layers. */
export async function makePlan(
  set: ImageSet,
  keys: Map<string, string>,
  paths: BuildPaths,
  opts: PlanOptions = {},
): Promise<PlanEntry[]> {
  checkLayerFlags(set, opts);
  const force = new Set(opts.force ?? []);
  const wanted = opts.only?.length
    ? new Set(opts.only.flatMap((n) => chainOf(set, n).map((l) => l.name)))
    : undefined;
  const entries = new Map<string, PlanEntry>();
  for (const layer of set.layers) {
    const key = keys.get(layer.name) as string;
    const manifest = await readManifest(paths, layer.name);
    const parent = layer.parent ? entries.get(layer.parent) : undefined;
    let action: PlanAction = 'build';
    let reason: string;
    if (force.has(layer.name)) reason = 'forced (--force)';
    else if (parent && parent.action === 'build') reason = `parent ${parent.layer.name} is rebuilt`;
    else if (parent && parent.action === 'skip') reason = `parent ${parent.layer.name} is not built`;
    else if (!manifest) reason = 'not built yet';
    else if (!(await exists(paths.image(layer.name)))) reason = 'image file is missing';
    else if (manifest.key !== key) reason = changeReason(layer, manifest, opts.upstream?.get(layer.name));
    else if (parent && manifest.parentBuildId !== parent.manifest?.buildId)
      reason = `parent ${parent.layer.name} was rebuilt since`;
    else {
      action = 'cached';
      reason = 'up to date';
    }
    if (action === 'build' && wanted && !wanted.has(layer.name)) {
      action = 'skip';
      reason = `not selected by --only (${reason})`;
    }
    if (action === 'build' && parent?.action === 'skip') action = 'skip';
    entries.set(layer.name, {
      layer,
      key,
      action,
      reason,
      manifest,
      upstream: opts.upstream?.get(layer.name),
    });
  }
  return set.layers.map((l) => entries.get(l.name) as PlanEntry);
}

/** Turn 'build' into 'fetch' where the cache has the same key built on the same parent build. */
export function planFetches(
  set: ImageSet,
  plan: PlanEntry[],
  pkgs: RepoPackage[],
  forced: Set<string>,
): void {
  const buildIdOf = new Map<string, string | undefined>();
  for (const e of plan) {
    const parentId = e.layer.parent ? buildIdOf.get(e.layer.parent) : undefined;
    if (e.action === 'cached') buildIdOf.set(e.layer.name, e.manifest?.buildId);
    if (e.action !== 'build' || forced.has(e.layer.name)) continue;
    if (e.layer.parent && parentId === undefined) continue;
    const hit = usableHit(findLayer(pkgs, set.distro, e.layer.name, e.key), parentId);
    if (!hit) continue;
    e.action = 'fetch';
    e.hit = hit;
    e.reason = `${e.reason}; ${hit.pkg.name}-${hit.pkg.version}-${hit.pkg.release} in the cache repository has the same key`;
    buildIdOf.set(e.layer.name, hit.buildId);
  }
}
