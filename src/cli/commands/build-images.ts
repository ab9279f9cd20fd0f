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
import { type ReleaseResult, releaseSet } from '../../builder/release.js';
import { type BuildResult, IncompletePlanError } from '../../builder/result.js';
import type { DeployedPackageInput } from '../../builder/rpm/deployed.js';
import { BUILDER_VERSION } from '../../builder/version.js';
import { detectAccel } from '../../core/accel.js';
import { onInterrupt } from '../../core/cleanup.js';
import type { OstConfig } from '../../core/config.js';
import { errorMessage, InterruptedError, OstError, UsageError } from '../../core/errors.js';
import { buildDeployed, type DeployedBuildResult, DeployFailedError } from '../../launcher/deployed/build.js';
import { cliReporter } from '../reporter.js';
import { setFileWriters } from './common.js';
import { deployedPackageInput } from './deployed-package.js';
import { deployUpOptions } from './env.js';
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
  /** --allow-outside: the set file's host paths may lead outside its folder. */
  allowOutside?: boolean;
  /** --deployed: suites deployed on the set's images, committed as their deployed layers. */
  deployed?: string[];
  envFile?: string;
  ostRepo?: string;
}

export async function buildImagesCommand(args: BuildImagesArgs, config: OstConfig): Promise<void> {
  if ((args.withInstall?.length ?? 0) > 0 && (args.withRepo?.length ?? 0) === 0)
    throw new UsageError(
      `--with-install ${args.withInstall?.join(' ')}: installs from --with-repo repos, and none is given`,
      'add --with-repo DIR|URL with the packages',
    );
  for (const file of args.set)
    await buildSet(
      loadImageSet(file, config.fileVars, {
        allowOutside: args.allowOutside,
        writers: setFileWriters(config),
      }),
      args,
      config,
    );
}

/** --with-repo: the set with the custom packages upgraded into its leaves, staged in a temp dir. */
interface WithRepo {
  set: ImageSet;
  repos: CustomRepo[];
  stage: string;
}

/** Stage --with-repo's packages for `loaded` (none given: undefined); the stage is removed if that fails. */
async function stageWithRepo(
  loaded: ImageSet,
  args: BuildImagesArgs,
  signal: AbortSignal,
): Promise<WithRepo | undefined> {
  if (!args.withRepo?.length) return undefined;
  const stage = await fs.mkdtemp(path.join(tmpdir(), `ost-with-repo-${loaded.distro}-`));
  const o = { sources: args.withRepo, install: args.withInstall ?? [], enabled: true };
  try {
    return { ...(await withCustomRepos(loaded, o, stage, signal)), stage };
  } catch (err) {
    await fs.rm(stage, { recursive: true, force: true });
    throw err;
  }
}

/** Build one set (then check --with-repo's packages, publish with --publish) and print what happened. */
async function buildSet(loaded: ImageSet, args: BuildImagesArgs, config: OstConfig): Promise<void> {
  const abort = new AbortController();
  const custom = await stageWithRepo(loaded, args, abort.signal);
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
      accel: detectAccel(config.accel),
      libvirtUri: config.libvirtUri,
    });
    if (custom && !args.dryRun && !args.skipCustomCheck)
      await checkBuiltLeaves(result.out, set, custom.repos);
    const deployed: DeployOutcome = args.dryRun
      ? { done: [], inputs: [], failed: [] }
      : await deploySuites(set, result.out, args, config, ui, abort.signal);
    const release =
      args.publish && !args.dryRun
        ? await releaseSet(set, {
            out: result.out,
            repo: args.publish,
            ...publishFlags(args),
            deployed: deployed.inputs,
            skipIfServed: true,
            reporter: ui.reporter,
            signal: abort.signal,
          })
        : undefined;
    ui.stop();
    process.stdout.write(`${buildReport(set, result, release, args, Date.now() - started, deployed)}\n`);
    if (result.incomplete) throw new IncompletePlanError(result.incomplete);
    if (deployed.failed.length > 0) throw new DeployFailedError(deployed.failed, release !== undefined);
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
    if (custom) await fs.rm(custom.stage, { recursive: true, force: true });
  }
}

/** What build-images prints for a set: JSON (--json), the plan (--dry-run), else one line (and the release's). */
function buildReport(
  set: ImageSet,
  result: BuildResult,
  release: ReleaseResult | undefined,
  args: BuildImagesArgs,
  durationMs: number,
  deployed: DeployOutcome,
): string {
  if (args.json) {
    const doc = args.dryRun
      ? { distro: set.distro, out: result.out, plan: result.dryRun, incomplete: result.incomplete }
      : {
          distro: set.distro,
          out: result.out,
          durationMs,
          layers: result.outcomes.map((o) => ({
            layer: o.layer,
            status: o.status,
            reason: o.reason,
            durationMs: o.durationMs,
            key: o.manifest?.key,
            allocatedBytes: o.manifest?.allocatedBytes,
          })),
          ...(deployed.done.length ? { deployed: deployed.done } : {}),
          ...(deployed.failed.length ? { deployFailed: deployed.failed } : {}),
          ...(release ? { published: releaseSummary(release) } : {}),
        };
    return JSON.stringify(doc, null, 2);
  }
  if (args.dryRun) return formatDryRun(result);
  const count = (status: string) => result.outcomes.filter((o) => o.status === status).length;
  const fetched = count('fetched');
  const line = `${set.distro}: ${count('built')} built, ${fetched ? `${fetched} fetched, ` : ''}${count('cached')} cached in ${(durationMs / 1000).toFixed(1)}s → ${result.out}`;
  const dep = deployed.done.map(
    (d) => `deployed ${d.suite}: ${d.status} in ${(d.durationMs / 1000).toFixed(1)}s → ${d.manifest}`,
  );
  return [line, ...dep, ...(release ? [releaseText(release, args.publish as string)] : [])].join('\n');
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

/** What --deployed did: each suite's deployed layers built or found current, and the suites whose deploy failed. */
interface DeployOutcome {
  done: DeployedBuildResult[];
  /** What the builder packs of each suite done (its manifest read back). */
  inputs: DeployedPackageInput[];
  failed: { suite: string; error: string }[];
}

/**
 * --deployed: each suite brought up on the set's images, deployed, and committed as its deployed layers. A
 * suite whose deploy fails is said and left out (the set and the other suites are still published; the
 * repository keeps serving that suite's last deployed package).
 */
async function deploySuites(
  set: ImageSet,
  out: string,
  args: BuildImagesArgs,
  config: OstConfig,
  ui: ReturnType<typeof cliReporter>,
  signal: AbortSignal,
): Promise<DeployOutcome> {
  const outcome: DeployOutcome = { done: [], inputs: [], failed: [] };
  for (const suite of args.deployed ?? []) {
    try {
      const up = await deployUpOptions(
        { suite, envFile: args.envFile, ostRepo: args.ostRepo, timeout: 1800, imagesDir: out },
        config,
        ui,
        signal,
      );
      const done = await buildDeployed({
        up,
        out,
        distro: set.distro,
        ost: BUILDER_VERSION,
        reporter: ui.reporter,
        signal,
      });
      outcome.inputs.push(await deployedPackageInput(out, set.distro, suite));
      outcome.done.push(done);
    } catch (err) {
      if (signal.aborted) throw err;
      const error = err instanceof OstError && err.hint ? `${err.message} (${err.hint})` : errorMessage(err);
      outcome.failed.push({ suite, error });
      ui.reporter({ type: 'warning', message: `the deploy of suite ${suite} failed: ${error}` });
    }
  }
  return outcome;
}
