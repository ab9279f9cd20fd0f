// Custom layers: an installed image upgraded from custom repositories only, made once per content key and
// kept in a local layer cache (default /var/cache/ost/layers) for every env and run after. The key is the
// image's build id + the exact package set of the repositories (checksums) + the options; a layer is built
// under its key's lock (a second `ost up` needing it waits, then reuses it), into a temporary folder
// renamed into place when complete, so a reader never sees half a layer (the build: build-layer.ts).
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import * as path from 'node:path';
import { OstError } from '../../core/errors.js';
import { atomicWriteFile, removeTree, sha256, stableStringify } from '../../core/fsutil.js';
import { acquireLock } from '../../core/lock.js';
import { ownDir } from '../../core/safe-dir.js';
import type { Family } from '../../tools/guest-steps.js';
import { buildCustomLayer } from './build-layer.js';
import { type CustomRepo, stageCustomRepos } from './repos.js';
import {
  CUSTOM_FORMAT,
  type CustomBase,
  type CustomLayer,
  type CustomLayerInfo,
  type CustomOptions,
} from './types.js';

export type { CustomBase, CustomLayer, CustomLayerInfo, CustomOptions } from './types.js';

/** How long a second builder waits for the first to finish the same layer. */
const BUILD_WAIT_MS = 2 * 60 * 60_000;

/** The key of a custom layer: the image's build, the repos' package sets, the options. */
export function customLayerKey(
  base: CustomBase,
  repos: readonly CustomRepo[],
  o: Pick<CustomOptions, 'install' | 'enabled'>,
): string {
  return sha256(
    stableStringify({
      format: CUSTOM_FORMAT,
      image: base.buildId,
      family: base.family,
      repos: repos.map((r) => r.packages.map((p) => [p.name, p.version, p.arch, p.sha256])),
      install: [...o.install].sort(),
      enabled: o.enabled,
    }),
  );
}

/** Does this image need a layer: it has a package of the repos installed, or something is to be installed. */
export function isAffected(
  base: CustomBase,
  repos: readonly CustomRepo[],
  install: readonly string[],
): boolean {
  if (install.length > 0 || !base.packages) return true;
  const names = new Set(base.packages.map((p) => p.name));
  return repos.some((r) => r.packages.some((p) => names.has(p.name)));
}

async function readInfo(dir: string): Promise<CustomLayerInfo | undefined> {
  try {
    const info = JSON.parse(await fs.readFile(path.join(dir, 'layer.json'), 'utf8')) as CustomLayerInfo;
    return info.format === CUSTOM_FORMAT ? info : undefined;
  } catch {
    return undefined;
  }
}

/** Mark a layer used now (ost gc --layers keeps recently used layers with --keep-days). */
async function touchUsed(dir: string): Promise<void> {
  const stamp = path.join(dir, 'used');
  const now = new Date();
  await fs.utimes(stamp, now, now).catch(async () => atomicWriteFile(stamp, '', 0o644));
}

/** Make (or reuse) one image's custom layer. */
async function ensureLayer(
  base: CustomBase,
  repos: readonly CustomRepo[],
  o: CustomOptions,
): Promise<CustomLayer> {
  const key = customLayerKey(base, repos, o);
  const dir = path.join(o.cacheDir, key.slice(0, 32));
  const file = path.join(dir, 'layer.qcow2');
  const t0 = Date.now();
  const step = (status: 'start' | 'done' | 'failed', detail?: string, doneWord?: string) =>
    o.reporter({
      type: 'step',
      id: `custom/${base.ref}`,
      title: `custom layer of ${base.ref}`,
      status,
      durationMs: status === 'start' ? undefined : Date.now() - t0,
      detail,
      doneWord,
    });
  step('start');
  try {
    let info = await readInfo(dir);
    let built = false;
    if (!info) {
      // one builder per key; whoever waited for it finds the layer done
      const lock = await acquireLock(
        path.join(o.cacheDir, `${key.slice(0, 32)}.lock`),
        `custom layer of ${base.ref}`,
        BUILD_WAIT_MS,
      );
      try {
        info = await readInfo(dir);
        if (!info) {
          info = await buildCustomLayer(base, repos, key, dir, o);
          built = true;
        }
      } finally {
        await lock.release();
      }
    }
    await touchUsed(dir);
    step(
      'done',
      `${info.packages.length} custom packages, key ${key.slice(0, 12)}`,
      built ? 'built' : 'cached',
    );
    return { ...info, file, dir, built };
  } catch (err) {
    step('failed');
    throw err;
  }
}

/** Why a custom repo's packages did not reach the layers: one line per problem. */
export function checkSupplied(
  layers: readonly { base: CustomBase; layer?: CustomLayerInfo }[],
  repos: readonly CustomRepo[],
): string[] {
  const problems: string[] = [];
  for (const r of repos) {
    const names = new Set(r.packages.map((p) => p.name));
    let suppliedAny = false;
    for (const { base, layer } of layers) {
      const supplied = layer?.packages.filter((p) => p.repo === r.name) ?? [];
      if (supplied.length > 0) {
        suppliedAny = true;
        continue;
      }
      const installed = (base.packages ?? []).filter((p) => names.has(p.name));
      if (installed.length === 0) continue;
      const offered = r.packages
        .filter((p) => installed.some((i) => i.name === p.name))
        .map((p) => `${p.name} ${p.version}`);
      const has = installed.map((p) => `${p.name} ${p.version}`);
      problems.push(
        `custom repo ${r.source} supplied nothing to ${base.ref}: it offers ${offered.join(', ')}; the image keeps ${has.join(', ')}`,
      );
      suppliedAny = true; // said above, per image
    }
    if (!suppliedAny)
      problems.push(
        `custom repo ${r.source} supplied nothing: none of its packages (${[...names].join(', ')}) is installed in ${layers.map((l) => l.base.ref).join(', ')}`,
      );
  }
  return problems;
}

/**
 * The custom layer of each image (undefined for an image none of whose packages the repos have: it runs as
 * is). Repositories are staged once for all images; layers of different images are built one after the
 * other (each virt-customize run takes the machine's CPUs).
 */
export async function customLayers(
  bases: readonly CustomBase[],
  o: CustomOptions,
): Promise<Map<string, CustomLayer | undefined>> {
  await ownDir(o.cacheDir, 0o755, 'the layer cache');
  const out = new Map<string, CustomLayer | undefined>();
  const families = [...new Set(bases.map((b) => b.family))];
  const work = path.join(o.cacheDir, `.stage-${process.pid}-${randomBytes(3).toString('hex')}`);
  await fs.mkdir(work, { mode: 0o700 });
  try {
    const reposOf = new Map<Family, CustomRepo[]>();
    for (const f of families)
      reposOf.set(f, await stageCustomRepos(o.sources, f, path.join(work, f), o.signal));
    // each build is one single-CPU TCG/KVM appliance: as many at once as the host has CPUs
    const queue = bases.filter((base) => {
      const affected = isAffected(base, reposOf.get(base.family) as CustomRepo[], o.install);
      if (!affected) {
        o.reporter({
          type: 'info',
          message: `custom repos: no package of them is installed in ${base.ref}; it runs as it is`,
        });
        out.set(base.ref, undefined);
      }
      return affected;
    });
    const worker = async () => {
      for (let base = queue.shift(); base; base = queue.shift())
        out.set(base.ref, await ensureLayer(base, reposOf.get(base.family) as CustomRepo[], o));
    };
    const results = await Promise.allSettled(
      Array.from({ length: Math.max(1, Math.min(availableParallelism(), queue.length)) }, worker),
    );
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    if (!o.skipCheck) {
      const problems = families.flatMap((f) =>
        checkSupplied(
          bases.filter((b) => b.family === f).map((base) => ({ base, layer: out.get(base.ref) })),
          reposOf.get(f) as CustomRepo[],
        ),
      );
      if (problems.length > 0)
        throw new OstError(
          problems.join('\n'),
          'build the packages with a higher version than the image has (or list new ones with --custom-install PKG); --skip-custom-check starts the env anyway',
        );
    }
    return out;
  } finally {
    await removeTree(work);
  }
}
