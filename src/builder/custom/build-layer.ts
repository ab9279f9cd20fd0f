// Build one custom layer: an overlay on the installed image, upgraded (and given new packages) from the
// custom repositories in one guestfish session, checked, then its folder written in a temporary folder next
// to the final one and renamed into place. A failed build keeps its log in the cache and says what failed.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { guestfsEnv } from '../../core/accel.js';
import { OstError, ToolError } from '../../core/errors.js';
import { atomicWriteFile, fsyncDir, removeTree } from '../../core/fsutil.js';
import { customPackageSteps } from '../../tools/guest-steps.js';
import {
  GuestCommandError,
  GuestfishSession,
  mountGuest,
  runSessionSteps,
  sessionArgv,
} from '../../tools/guestfish-session.js';
import { createOverlayArgv } from '../../tools/qemu-img.js';
import { runArgv } from '../../tools/run-tool.js';
import { CUSTOMIZE_TIMEOUT_MS } from '../layer-kinds/derived.js';
import { diffPackages, formatDiff, formatPkglist, listPackages, type Package } from '../pkglist.js';
import { checkImage } from '../verify.js';
import { appliedPackages } from './applied.js';
import type { CustomRepo } from './repos.js';
import { CUSTOM_FORMAT, type CustomBase, type CustomLayerInfo, type CustomOptions } from './types.js';

/** Build the custom layer of `base` with this key into `dir` (absent); what its layer.json records. */
export async function buildCustomLayer(
  base: CustomBase,
  repos: readonly CustomRepo[],
  key: string,
  dir: string,
  o: CustomOptions,
): Promise<CustomLayerInfo> {
  const started = Date.now();
  const tmp = path.join(
    o.cacheDir,
    `.tmp-${key.slice(0, 16)}-${process.pid}-${randomBytes(3).toString('hex')}`,
  );
  await fs.mkdir(tmp);
  try {
    // qemu (another user) reads the layer: its folder is 0755 whatever the umask
    await fs.chmod(tmp, 0o755);
    // the tmp folder sits next to the final one: a backing name relative to it stays right after the rename
    const backing = path.isAbsolute(base.file) ? path.relative(dir, base.file) : base.file;
    const image = path.join(tmp, 'layer.qcow2');
    await runArgv(createOverlayArgv(image, backing), { cwd: tmp, signal: o.signal });
    const { before, after } = await upgradeInGuest(base, repos, image, path.join(tmp, 'build.log'), o);
    await checkImage(image);
    const diff = diffPackages(before, after);
    const info: CustomLayerInfo = {
      format: CUSTOM_FORMAT,
      key,
      image: base.ref,
      imageFile: base.file,
      imageBuildId: base.buildId,
      backing,
      repos: repos.map((r) => ({ name: r.name, source: r.source, packages: r.packages.length })),
      install: [...o.install],
      enabled: o.enabled,
      packages: appliedPackages(repos, after),
      diff,
      builtAt: new Date().toISOString(),
      buildMs: Date.now() - started,
    };
    await commitLayerDir(tmp, dir, image, info, after, o.cacheDir);
    return info;
  } catch (err) {
    throw await buildFailed(err, base, key, tmp, o.cacheDir);
  }
}

/** Upgrade the overlay from the repos in one appliance boot; the guest's packages before and after. */
async function upgradeInGuest(
  base: CustomBase,
  repos: readonly CustomRepo[],
  image: string,
  log: string,
  o: CustomOptions,
): Promise<{ before: Package[]; after: Package[] }> {
  const network = repos.some((r) => r.url);
  const spec = { disk: image, memoryMiB: o.memoryMiB, network };
  o.reporter({ type: 'command', argv: sessionArgv(spec), subject: base.ref });
  // one appliance boot: mount, (list), upgrade, list; no inspection of the guest (see guestfish-session.ts)
  const session = await GuestfishSession.open(spec, {
    env: guestfsEnv(o.accel),
    logFile: log,
    signal: o.signal,
    timeoutMs: CUSTOMIZE_TIMEOUT_MS,
  });
  try {
    await mountGuest(session, base.ref);
    const before = base.packages ?? (await listPackages(session, base.family));
    const steps = customPackageSteps(base.family, {
      repos: repos.map((r) => ({ name: r.name, hostDir: r.stagedDir, url: r.url })),
      install: [...o.install],
      enabled: o.enabled,
    });
    await runSessionSteps(session, base.family, steps, {
      network,
      selinux: base.family === 'rpm',
    });
    const after = await listPackages(session, base.family);
    await session.close();
    return { before, after };
  } finally {
    session.kill();
  }
}

/** Write the layer's package list, diff and layer.json, make it all read-only and rename it into place. */
async function commitLayerDir(
  tmp: string,
  dir: string,
  image: string,
  info: CustomLayerInfo,
  after: Package[],
  cacheDir: string,
): Promise<void> {
  await atomicWriteFile(path.join(tmp, 'pkglist.txt'), formatPkglist(after));
  await atomicWriteFile(path.join(tmp, 'pkglist-diff.txt'), formatDiff(info.diff));
  await atomicWriteFile(path.join(tmp, 'layer.json'), `${JSON.stringify(info, null, 2)}\n`);
  await atomicWriteFile(path.join(tmp, 'used'), '');
  await fs.chmod(image, 0o444);
  for (const f of ['pkglist.txt', 'pkglist-diff.txt', 'layer.json', 'build.log'])
    await fs.chmod(path.join(tmp, f), 0o444).catch(() => {});
  await fs.rename(tmp, dir);
  await fsyncDir(cacheDir);
}

/** Keep the failed build's log in the cache, drop its folder; the error to throw, quoting what failed. */
async function buildFailed(
  err: unknown,
  base: CustomBase,
  key: string,
  tmp: string,
  cacheDir: string,
): Promise<OstError> {
  // keep the log where the user can read it, and say what went wrong in the guest
  const kept = path.join(cacheDir, `${key.slice(0, 32)}.failed.log`);
  const saved = await fs
    .rename(path.join(tmp, 'build.log'), kept)
    .then(() => true)
    .catch(() => false);
  await removeTree(tmp);
  const where = saved ? `the whole log: ${kept}` : undefined;
  const what = `the custom layer of ${base.ref} failed to build`;
  const quoted = (lines: string[]) => lines.map((l) => `\n  | ${l}`).join('');
  if (err instanceof GuestCommandError)
    return new OstError(
      `${what}: a command in the guest failed${quoted(err.output.filter((l) => l.trim()).slice(-6))}`,
      where,
    );
  const detail =
    err instanceof ToolError
      ? `${err.message}${quoted(err.tail.slice(-4))}`
      : err instanceof Error
        ? err.message
        : String(err);
  return new OstError(`${what}: ${detail}`, (err instanceof OstError && err.hint) || where, err);
}
