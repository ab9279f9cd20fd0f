// build-images --with-repo: the set's leaves built with custom packages upgraded in, by the builder's own
// machinery — each leaf gets the custom-package steps after its own (the same guest commands as ost up's
// custom layers) and the repos' package checksums in its key, so a changed package rebuilds the leaves and
// nothing below them. An image host can then publish "images with my RPMs" under the usual names.
import { OstError } from '../../core/errors.js';
import { customPackageSteps } from '../../tools/guest-steps.js';
import type { LayerManifest } from '../build-dir.js';
import type { Package } from '../pkglist.js';
import { type ImageSet, type Layer, leavesOf } from '../plan/model.js';
import { type CustomRepo, stageCustomRepos } from './repos.js';

export interface WithRepoOptions {
  sources: readonly string[];
  /** New packages to install from them. */
  install: readonly string[];
  /** Leave the repos enabled in the leaves. */
  enabled: boolean;
}

/**
 * The set with its leaves upgraded from the custom repos (staged under `stageDir`, which must live until
 * the build ends). Layers below the leaves are unchanged, so they stay cached.
 */
export async function withCustomRepos(
  set: ImageSet,
  o: WithRepoOptions,
  stageDir: string,
  signal?: AbortSignal,
): Promise<{ set: ImageSet; repos: CustomRepo[] }> {
  const repos = await stageCustomRepos(o.sources, set.family, stageDir, signal);
  const leaves = new Set(leavesOf(set));
  const steps = customPackageSteps(set.family, {
    repos: repos.map((r) => ({ name: r.name, hostDir: r.stagedDir, url: r.url })),
    install: [...o.install],
    enabled: o.enabled,
  });
  const layers: Layer[] = set.layers.map((l) =>
    leaves.has(l.name)
      ? {
          ...l,
          steps: [...l.steps, ...steps],
          network: l.network || repos.some((r) => r.url),
          custom: {
            repos: repos.map((r) => ({ name: r.name, source: r.source, packages: r.packages })),
            install: [...o.install],
            enabled: o.enabled,
          },
        }
      : l,
  );
  return { set: { ...set, layers }, repos };
}

/**
 * After the build: every custom repo must have supplied something to some leaf (as ost up checks), else
 * one error naming each repo and what the leaves kept.
 */
export function checkWithRepoBuild(
  set: ImageSet,
  repos: readonly CustomRepo[],
  manifests: ReadonlyMap<string, LayerManifest>,
  pkglists: ReadonlyMap<string, Package[]>,
): void {
  const leaves = leavesOf(set);
  const problems: string[] = [];
  for (const r of repos) {
    if (leaves.some((l) => manifests.get(l)?.custom?.packages.some((p) => p.repo === r.name))) continue;
    const names = new Set(r.packages.map((p) => p.name));
    const kept = leaves.flatMap((l) =>
      (pkglists.get(l) ?? []).filter((p) => names.has(p.name)).map((p) => `${p.name} ${p.version} (${l})`),
    );
    problems.push(
      `--with-repo ${r.source} supplied nothing to ${leaves.join(', ')}: it offers ${r.packages.map((p) => `${p.name} ${p.version}`).join(', ')}` +
        (kept.length ? `; the leaves keep ${kept.join(', ')}` : '; the leaves have none of these packages'),
    );
  }
  if (problems.length > 0)
    throw new OstError(
      problems.join('\n'),
      'build the packages with a higher version than the images have (or list new ones with --with-install PKG); --skip-custom-check accepts the build',
    );
}
