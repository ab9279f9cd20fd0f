// pack → sign → verify (dnf install into a scratch root) → publish: only a complete, verified set is published.
import { existsSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { OstError } from '../core/errors.js';
import type { Reporter } from '../core/events.js';
import { step } from '../core/events.js';
import { acquireLock } from '../core/lock.js';
import { requireTool } from '../core/require-tool.js';
import { rpmsignArgv } from '../tools/rpmbuild.js';
import { runArgv } from '../tools/run-tool.js';
import { BuildPaths, type LayerManifest } from './build-dir.js';
import type { ImageSet } from './plan/model.js';
import { readRepo } from './repo/metadata.js';
import { type PublishResult, publishSet } from './repo/publish.js';
import { type VerifyInstallResult, verifyInstall } from './repo/verify-install.js';
import { builtManifests } from './rpm/built-manifests.js';
import { type DeployedPackageInput, deployedMismatch, deployedProvide } from './rpm/deployed.js';
import { packSet } from './rpm/pack.js';
import { buildProvide, isSignedRpm, type PackedRpm } from './rpm/rpm-file.js';
import { checkImage, checkRelocatableChain } from './verify.js';

export interface ReleaseOptions {
  out: string;
  repo: string;
  keep?: number;
  squash?: string[];
  payload?: string;
  /** GPG key id (in $GNUPGHOME) to sign RPMs and repomd.xml with. */
  signKey?: string;
  /**
   * Suites' deployed layers in the build dir to publish with the set (rpm/deployed.ts). One made on another
   * build of a layer is left out, and said so (`skipped`): the repository keeps serving the last one.
   */
  deployed?: DeployedPackageInput[];
  /**
   * Do nothing when the repository already serves this build of every layer (build-images --publish: a night
   * without changes takes seconds). publish-images always publishes (retention, signing, a repaired repo).
   */
  skipIfServed?: boolean;
  reporter?: Reporter;
  signal?: AbortSignal;
}

export interface ReleaseResult {
  /** The repository already serves this very build of every layer: nothing was packed, verified or published. */
  unchanged: boolean;
  rpms: PackedRpm[];
  verify?: VerifyInstallResult;
  publish?: PublishResult;
  /** Deployed packages not published, and why. */
  skipped: { suite: string; reason: string }[];
}

/**
 * Whether `repo` already serves the build of every layer that `manifests` describe (a night without changes):
 * then there is nothing to pack, verify or publish. A repository that cannot be read serves nothing.
 */
export async function servesBuild(
  set: ImageSet,
  manifests: Map<string, LayerManifest>,
  repo: string,
  deployed: DeployedPackageInput[] = [],
): Promise<boolean> {
  const pkgs = await readRepo(repo).catch(() => undefined);
  if (!pkgs) return false;
  const serves = (provide: string, version: string | undefined) =>
    pkgs.some((p) => p.provides.some((x) => x.name === provide && x.version === version));
  return (
    set.layers.every((l) =>
      serves(buildProvide(set.distro, l.name), manifests.get(l.name)?.buildId.replace(/-/g, '')),
    ) && deployed.every((d) => serves(deployedProvide(set.distro, d.suite), d.key))
  );
}

/** Pack the built set, verify that it installs, then publish it to the repository. */
export async function releaseSet(set: ImageSet, opts: ReleaseOptions): Promise<ReleaseResult> {
  const reporter: Reporter = opts.reporter ?? (() => {});
  const paths = new BuildPaths(opts.out, set.distro);
  if (!existsSync(paths.out))
    throw new OstError(`nothing built in ${paths.out}`, `run ost build-images ${set.file} first`);
  // the build directory must not change under us (a concurrent ost build-images on the same --out)
  const lock = await acquireLock(paths.lock(), `ost publish-images ${set.file}`);
  try {
    return await release(set, paths, opts, reporter);
  } finally {
    await lock.release();
  }
}

/** The deployed packages that go with this set (made on its layer builds); the others said and skipped. */
function deployedWithSet(
  set: ImageSet,
  manifests: Map<string, LayerManifest>,
  inputs: DeployedPackageInput[],
  reporter: Reporter,
): { deployed: DeployedPackageInput[]; skipped: ReleaseResult['skipped'] } {
  const skipped: ReleaseResult['skipped'] = [];
  const deployed = inputs.filter((d) => {
    const why = deployedMismatch(set, d, manifests);
    if (why) {
      skipped.push({ suite: d.suite, reason: why });
      reporter({
        type: 'warning',
        message: `the deployed package of suite ${d.suite} is not published with this set: ${why}; build it again: ost build-images ${set.file} --deployed ${d.suite}`,
      });
    }
    return !why;
  });
  return { deployed, skipped };
}

async function release(
  set: ImageSet,
  paths: BuildPaths,
  opts: ReleaseOptions,
  reporter: Reporter,
): Promise<ReleaseResult> {
  const manifests = await builtManifests(set, paths); // a clear error when the set is not (completely, currently) built
  const { deployed, skipped } = deployedWithSet(set, manifests, opts.deployed ?? [], reporter);
  if (opts.skipIfServed && !opts.squash?.length && (await servesBuild(set, manifests, opts.repo, deployed))) {
    reporter({
      type: 'info',
      message: `nothing new to publish: ${opts.repo} already serves this build of every layer${deployed.length ? ' and deployed package' : ''}`,
    });
    return { unchanged: true, rpms: [], skipped };
  }
  await step(
    reporter,
    'check',
    'qemu-img check every layer; every chain resolves by relative names',
    async () => {
      for (const l of set.layers) {
        await checkImage(paths.image(l.name));
        await checkRelocatableChain(
          set,
          l.name,
          paths.image(l.name),
          paths.out,
          path.join(paths.workRoot(), 'release-check'),
        );
      }
    },
  );
  const rpms = await step(reporter, 'pack', 'pack layers into RPMs', () =>
    packSet(set, {
      out: opts.out,
      manifests,
      payload: opts.payload,
      squash: opts.squash,
      deployed,
      reporter,
      signal: opts.signal,
    }),
  );
  let gpgKey: string | undefined;
  if (opts.signKey) {
    const keyId = opts.signKey;
    await step(reporter, 'sign', `sign RPMs with ${keyId}`, async () => {
      const unsigned: string[] = [];
      for (const r of rpms) if (r.built || !(await isSignedRpm(r.file))) unsigned.push(r.file);
      if (unsigned.length > 0)
        await runArgv(rpmsignArgv(keyId, unsigned, requireTool('gpg')), { signal: opts.signal });
    });
    gpgKey = path.join(opts.out, '.work', `signing-key-${keyId.replace(/[^A-Za-z0-9]/g, '')}.asc`);
    await fs.mkdir(path.dirname(gpgKey), { recursive: true });
    await fs.writeFile(gpgKey, (await runArgv(['gpg', '--batch', '--export', '--armor', keyId])).stdout);
  }
  const verify = await step(reporter, 'verify', 'install into a scratch root and resolve chains', () =>
    verifyInstall(set, rpms, { work: path.join(opts.out, '.work', 'verify-install'), gpgKey, reporter }),
  );
  const publish = await step(reporter, 'publish', `publish to ${opts.repo}`, () =>
    publishSet(set, rpms, {
      repo: opts.repo,
      keep: opts.keep,
      sign: opts.signKey ? { keyId: opts.signKey } : undefined,
      reporter,
    }),
  );
  if (gpgKey) await fs.rm(gpgKey, { force: true });
  // the scratch dirs are gone by now: leave no empty .work behind (a committed out dir has none)
  await fs.rmdir(paths.workRoot()).catch(() => {});
  return { unchanged: false, rpms, verify, publish, skipped };
}
