// `ost build-images`: thin handler over builder/build.ts.
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { buildImages, formatDryRun } from '../../builder/build.js';
import { BuildPaths, type LayerManifest, readManifest } from '../../builder/build-dir.js';
import type { CustomRepo } from '../../builder/custom/repos.js';
import { checkWithRepoBuild, withCustomRepos } from '../../builder/custom/with-repo.js';
import { type Package, parsePkglist } from '../../builder/pkglist.js';
import { loadImageSet } from '../../builder/plan/load.js';
import { type ImageSet, leavesOf } from '../../builder/plan/model.js';
import { releaseSet } from '../../builder/release.js';
import { onInterrupt } from '../../core/cleanup.js';
import { InterruptedError, UsageError } from '../../core/errors.js';
import { cliReporter } from '../reporter.js';
import { publishFlags, releaseSummary, releaseText } from './publish-images.js';

export interface BuildImagesArgs {
  set: string[];
  out?: string;
  jobs: number;
  force: string[];
  only: string[];
  dryRun: boolean;
  json: boolean;
  verbose: boolean;
  publish?: string;
  keep?: number;
  squash: string[];
  payload?: string;
  signKey?: string;
  cacheRepo?: string;
  offline?: boolean;
  /** --with-repo: custom packages built into the leaves. */
  withRepo?: string[];
  withInstall?: string[];
  skipCustomCheck?: boolean;
}

export async function buildImagesCommand(args: BuildImagesArgs): Promise<void> {
  if ((args.withInstall?.length ?? 0) > 0 && (args.withRepo?.length ?? 0) === 0)
    throw new UsageError(
      `--with-install ${args.withInstall?.join(' ')}: installs from --with-repo repos, and none is given`,
      'add --with-repo DIR|URL with the packages',
    );
  for (const file of args.set) {
    const loaded = loadImageSet(file);
    const abort = new AbortController();
    const stage = args.withRepo?.length
      ? await fs.mkdtemp(path.join(tmpdir(), `ost-with-repo-${loaded.distro}-`))
      : undefined;
    const custom = stage
      ? await withCustomRepos(
          loaded,
          { sources: args.withRepo ?? [], install: args.withInstall ?? [], enabled: true },
          stage,
          abort.signal,
        ).catch(async (err: unknown) => {
          await fs.rm(stage, { recursive: true, force: true });
          throw err;
        })
      : undefined;
    const set = custom?.set ?? loaded;
    const ui = cliReporter({ verbose: args.verbose, quiet: args.json, doneWord: 'built' });
    const off = onInterrupt(abort, () => process.exit(130));
    const started = Date.now();
    try {
      const result = await buildImages(set, {
        out: args.set.length > 1 && args.out ? `${args.out}/${set.distro}` : args.out,
        jobs: args.jobs,
        force: args.force,
        only: args.only,
        dryRun: args.dryRun,
        reporter: ui.reporter,
        signal: abort.signal,
        cacheRepo: args.cacheRepo,
        offline: args.offline,
      });
      if (custom && !args.dryRun && !args.skipCustomCheck)
        await checkBuiltLeaves(result.out, set, custom.repos);
      const release =
        args.publish && !args.dryRun
          ? await releaseSet(set, {
              out: result.out,
              repo: args.publish,
              ...publishFlags(args),
              skipIfServed: true,
              reporter: ui.reporter,
              signal: abort.signal,
            })
          : undefined;
      ui.stop();
      if (args.json) {
        const doc = args.dryRun
          ? { distro: set.distro, out: result.out, plan: result.dryRun }
          : {
              distro: set.distro,
              out: result.out,
              durationMs: Date.now() - started,
              layers: result.outcomes.map((o) => ({
                layer: o.layer,
                status: o.status,
                reason: o.reason,
                durationMs: o.durationMs,
                key: o.manifest?.key,
                allocatedBytes: o.manifest?.allocatedBytes,
              })),
              ...(release ? { published: releaseSummary(release) } : {}),
            };
        process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
      } else if (args.dryRun) {
        process.stdout.write(`${formatDryRun(result)}\n`);
      } else {
        const built = result.outcomes.filter((o) => o.status === 'built').length;
        const cached = result.outcomes.filter((o) => o.status === 'cached').length;
        const fetched = result.outcomes.filter((o) => o.status === 'fetched').length;
        process.stdout.write(
          `${set.distro}: ${built} built, ${fetched ? `${fetched} fetched, ` : ''}${cached} cached in ${((Date.now() - started) / 1000).toFixed(1)}s → ${result.out}\n`,
        );
        if (release) process.stdout.write(`${releaseText(release, args.publish as string)}\n`);
      }
    } catch (err) {
      if (abort.signal.aborted) {
        throw new InterruptedError(
          'layers in progress were discarded; committed layers and the repository are untouched',
        );
      }
      throw err;
    } finally {
      ui.stop();
      off();
      if (stage) await fs.rm(stage, { recursive: true, force: true });
    }
  }
}

/** The supplied-nothing check of --with-repo, on the leaves' manifests and package lists. */
async function checkBuiltLeaves(out: string, set: ImageSet, repos: CustomRepo[]): Promise<void> {
  const paths = new BuildPaths(out, set.distro);
  const manifests = new Map<string, LayerManifest>();
  const pkglists = new Map<string, Package[]>();
  for (const leaf of leavesOf(set)) {
    const m = await readManifest(paths, leaf);
    if (m) manifests.set(leaf, m);
    const list = await fs.readFile(paths.pkglist(leaf), 'utf8').catch(() => '');
    pkglists.set(leaf, parsePkglist(list));
  }
  checkWithRepoBuild(set, repos, manifests, pkglists);
}
