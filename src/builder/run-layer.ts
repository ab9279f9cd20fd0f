// Run one layer of the plan: its kind's actions (layer-kinds/) run into <file>.tmp, verified (qemu-img check,
// relocatable chain, package list), then committed with its manifest; or fetched from the cache repository.
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { type Accel, guestfsEnv } from '../core/accel.js';
import { CleanupStack } from '../core/cleanup.js';
import { errorMessage, InternalError, OstError, ToolError } from '../core/errors.js';
import type { Reporter } from '../core/events.js';
import { allocatedBytes, atomicWriteFile, commitFile, removeTree } from '../core/fsutil.js';
import type { Family } from '../tools/guest-steps.js';
import { readFromGuest } from '../tools/guestfish.js';
import { GuestCommandError } from '../tools/guestfish-session.js';
import { runArgv } from '../tools/run-tool.js';
import { type BuildPaths, dropManifest, type LayerManifest, writeManifest } from './build-dir.js';
import { appliedPackages } from './custom/applied.js';
import { debootstrapActions } from './layer-kinds/debootstrap.js';
import { derivedActions } from './layer-kinds/derived.js';
import { importActions } from './layer-kinds/import.js';
import { installActions } from './layer-kinds/install.js';
import type { Action, BuildHost, LayerContext } from './layer-kinds/types.js';
import {
  diffPackages,
  formatDiff,
  formatPkglist,
  isEmptyDiff,
  PACKAGE_QUERY,
  type Package,
  parsePkglist,
} from './pkglist.js';
import { today } from './plan/keys.js';
import { type ImageSet, type Layer, layerFileName } from './plan/model.js';
import type { PlanEntry } from './plan/plan.js';
import { fetchLayer } from './repo/cache-repo.js';
import { LayerBuildError } from './result.js';
import type { UpstreamState } from './upstream.js';
import { checkImage, checkRelocatableChain } from './verify.js';
import { BUILDER_VERSION } from './version.js';

/** The actions that build this layer, by its kind (derived, or the base's build method). */
export function actionsFor(ctx: LayerContext): Action[] {
  const b = ctx.layer.base;
  if (!b) return derivedActions(ctx);
  switch (b.kind) {
    case 'debootstrap':
      return debootstrapActions(ctx);
    case 'import':
      return importActions(ctx);
    case 'install':
      return installActions(ctx);
    default: {
      const never: never = b;
      throw new InternalError(`unknown base ${JSON.stringify(never)}`);
    }
  }
}

/** What a layer kind needs to know to build one layer of the set into the build directory. */
export function contextFor(
  set: ImageSet,
  layer: Layer,
  key: string,
  paths: BuildPaths,
  host: BuildHost,
  publicKey: string,
): LayerContext {
  return {
    set,
    layer,
    key,
    paths,
    accel: host.accel,
    libvirtUri: host.libvirtUri,
    tmpImage: paths.tmpImage(layer.name),
    work: paths.work(layer.name),
    logFile: paths.log(layer.name),
    consoleLog: paths.consoleLog(layer.name),
    publicKey,
  };
}

/** Read the installed package list out of an image (read-only appliance). */
export async function readPackages(set: ImageSet, image: string, accel: Accel): Promise<Package[]> {
  return readImagePackages(set.family, image, accel);
}

/** The installed packages of a guest of this family, read from its image (read-only appliance). */
export async function readImagePackages(family: Family, image: string, accel: Accel): Promise<Package[]> {
  const q = PACKAGE_QUERY[family];
  return q.parse(await readFromGuest(image, [['sh', q.command]], { env: guestfsEnv(accel) }));
}

/** Fetch a layer with the same key from the cache repository, reported as the layer's step. */
export async function fetchWithEvents(
  repo: string,
  hit: NonNullable<PlanEntry['hit']>,
  paths: BuildPaths,
  layer: string,
  work: string,
  reporter: Reporter,
): Promise<LayerManifest> {
  const t0 = Date.now();
  reporter({ type: 'step', id: layer, title: layer, status: 'start' });
  try {
    const m = await fetchLayer(repo, hit, paths, layer, work);
    reporter({
      type: 'step',
      id: layer,
      title: layer,
      status: 'done',
      durationMs: Date.now() - t0,
      detail: `${hit.pkg.name}-${hit.pkg.version}-${hit.pkg.release} from the cache repository`,
      doneWord: 'fetched',
    });
    return m;
  } catch (err) {
    reporter({ type: 'step', id: layer, title: layer, status: 'failed', durationMs: Date.now() - t0 });
    throw new LayerBuildError(layer, 'fetch from the cache repository', err, [], paths.log(layer));
  }
}

/** Build one layer into <file>.tmp, verify it, then swap it into place with its manifest. */
export async function buildLayer(
  ctx: LayerContext,
  parent: LayerManifest | undefined,
  upstream: UpstreamState[] | undefined,
  reporter: Reporter,
  signal: AbortSignal | undefined,
): Promise<LayerManifest> {
  const { set, layer } = ctx;
  const started = Date.now();
  const undo = new CleanupStack();
  await fs.mkdir(path.dirname(ctx.logFile), { recursive: true });
  await fs.writeFile(
    ctx.logFile,
    `# ${set.distro}-${layer.name} key ${ctx.key}\n# started ${new Date().toISOString()}\n`,
  );
  await fs.rm(ctx.tmpImage, { force: true });
  undo.add(`temporary image ${ctx.tmpImage}`, () => fs.rm(ctx.tmpImage, { force: true }));
  undo.add(`scratch directory ${ctx.work}`, () => removeTree(ctx.work));
  reporter({ type: 'step', id: layer.name, title: layer.name, status: 'start' });
  const run: LayerRun = {
    ctx,
    reporter,
    signal,
    undo,
    current: 'start',
    log: (line: string) => fs.appendFile(ctx.logFile, `${line}\n`),
  };
  try {
    await runActions(run);
    run.current = 'verify';
    const { packages, virtualSize } = await verifyLayer(run);
    run.current = 'commit';
    signal?.throwIfAborted();
    const manifest = await commitLayer(ctx, parent, upstream, packages, virtualSize, started);
    await removeTree(ctx.work);
    await run.log(`# finished in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    reporter({
      type: 'step',
      id: layer.name,
      title: layer.name,
      status: 'done',
      durationMs: manifest.durationMs,
    });
    return manifest;
  } catch (err) {
    throw await layerFailed(run, err, started);
  }
}

/** One layer's build in progress: what it reports to, the undo of what it made, the step it is at. */
interface LayerRun {
  ctx: LayerContext;
  reporter: Reporter;
  signal: AbortSignal | undefined;
  undo: CleanupStack;
  /** The step under way, named in the log and the error if it fails. */
  current: string;
  log: (line: string) => Promise<void>;
}

/** Run the layer kind's actions in order, each a reported step with its section in the build log. */
async function runActions(run: LayerRun): Promise<void> {
  const { ctx, reporter, signal, undo } = run;
  const { layer } = ctx;
  for (const a of actionsFor(ctx)) {
    signal?.throwIfAborted();
    run.current = a.title;
    reporter({
      type: 'step',
      id: `${layer.name}/${a.title}`,
      title: `${layer.name}: ${a.title}`,
      status: 'start',
    });
    const t0 = Date.now();
    await run.log(`## ${a.title}`);
    if (a.kind === 'exec') {
      if (a.undo) undo.add(a.undo.label, a.undo.fn);
      reporter({ type: 'command', argv: a.argv, subject: layer.name });
      await runArgv(a.argv, {
        cwd: a.cwd,
        env: a.env,
        timeoutMs: a.timeoutMs,
        logFile: ctx.logFile,
        signal,
        allowFailure: a.allowFailure,
      });
    } else {
      if (a.argv) reporter({ type: 'command', argv: a.argv, subject: layer.name });
      await a.run(signal);
    }
    const ms = Date.now() - t0;
    reporter({
      type: 'step',
      id: `${layer.name}/${a.title}`,
      title: `${layer.name}: ${a.title}`,
      status: 'done',
      durationMs: ms,
    });
  }
}

/** Check the new image (qemu-img check, relocatable chain) and write its package list and diffs. */
async function verifyLayer(run: LayerRun): Promise<{ packages: Package[]; virtualSize: number }> {
  const { ctx } = run;
  const { set, layer, paths } = ctx;
  await run.log('## verify: qemu-img check, relocatable backing chain, package list');
  await checkImage(ctx.tmpImage);
  const chain = await checkRelocatableChain(
    set,
    layer.name,
    ctx.tmpImage,
    paths.out,
    path.join(ctx.work, 'relocated'),
  );
  const packages = ctx.packages ?? (await readPackages(set, ctx.tmpImage, ctx.accel));
  if (packages.length === 0)
    throw new OstError(`no packages found in ${layer.name}; is it a ${set.family}-based guest?`);
  await writePackageLists(ctx, packages, run.reporter);
  return { packages, virtualSize: chain[0]?.virtualSize ?? 0 };
}

/** The layer's package list, its diff against the previous build of it and against its parent. */
async function writePackageLists(ctx: LayerContext, packages: Package[], reporter: Reporter): Promise<void> {
  const { layer, paths } = ctx;
  // what changed since the previous build of this same layer (for a nightly: what changed overnight)
  const previous = await fs.readFile(paths.pkglist(layer.name), 'utf8').catch(() => undefined);
  if (previous !== undefined)
    await atomicWriteFile(
      paths.pkgdiffPrevious(layer.name),
      formatDiff(diffPackages(parsePkglist(previous), packages)),
    );
  else await fs.rm(paths.pkgdiffPrevious(layer.name), { force: true });
  await atomicWriteFile(paths.pkglist(layer.name), formatPkglist(packages));
  if (layer.parent) {
    const parentList = parsePkglist(await fs.readFile(paths.pkglist(layer.parent), 'utf8'));
    const diff = diffPackages(parentList, packages);
    await atomicWriteFile(paths.pkgdiff(layer.name), formatDiff(diff));
    if (isEmptyDiff(diff)) {
      reporter({
        type: 'warning',
        subject: layer.name,
        message: `layer ${layer.name} installs, removes and upgrades no package relative to ${layer.parent}`,
      });
    }
  }
}

/** Make the image read-only, swap it into place, then write the manifest that lets children trust it. */
async function commitLayer(
  ctx: LayerContext,
  parent: LayerManifest | undefined,
  upstream: UpstreamState[] | undefined,
  packages: Package[],
  virtualSize: number,
  started: number,
): Promise<LayerManifest> {
  const { set, layer, paths } = ctx;
  await fs.chmod(ctx.tmpImage, 0o444);
  // children trust a parent only through its manifest: drop it before the file is swapped
  await dropManifest(paths, layer.name);
  await commitFile(ctx.tmpImage, paths.image(layer.name));
  const manifest: LayerManifest = {
    distro: set.distro,
    family: set.family,
    layer: layer.name,
    parent: layer.parent,
    key: ctx.key,
    buildId: randomUUID(),
    parentBuildId: parent?.buildId,
    file: layerFileName(set.distro, layer.name),
    backingFile: layer.parent ? layerFileName(set.distro, layer.parent) : undefined,
    builtAt: new Date().toISOString(),
    durationMs: Date.now() - started,
    virtualSize,
    allocatedBytes: await allocatedBytes(paths.image(layer.name)),
    packages: packages.length,
    builder: BUILDER_VERSION,
    refresh: layer.refresh,
    upstream: layer.refresh === 'upstream' ? upstream : undefined,
    day: layer.refresh === 'daily' ? today() : undefined,
    // a debootstrap base reads root's key from the credential (debootstrap-tree.ts); layers keep their base's way
    sshCredential: (layer.base ? layer.base.kind === 'debootstrap' : parent?.sshCredential) || undefined,
    custom: layer.custom && {
      repos: layer.custom.repos.map((r) => r.source),
      packages: appliedPackages(layer.custom.repos, packages),
    },
  };
  await writeManifest(paths, manifest);
  return manifest;
}

/** Log where the build failed, undo what it made, report it; the error to throw, with the output's tail. */
async function layerFailed(run: LayerRun, err: unknown, started: number): Promise<LayerBuildError> {
  const { ctx, reporter, current } = run;
  const { layer } = ctx;
  await run.log(`# FAILED at "${current}": ${errorMessage(err)}`).catch(() => {});
  await run.undo.unwind(reporter);
  reporter({
    type: 'step',
    id: layer.name,
    title: layer.name,
    status: 'failed',
    durationMs: Date.now() - started,
  });
  const tail =
    err instanceof ToolError
      ? err.tail
      : err instanceof GuestCommandError
        ? err.output.slice(-30)
        : await logTail(ctx.logFile, 30);
  return new LayerBuildError(layer.name, current, err, tail, ctx.logFile);
}

async function logTail(file: string, n: number): Promise<string[]> {
  try {
    return (await fs.readFile(file, 'utf8')).trimEnd().split('\n').slice(-n);
  } catch {
    return [];
  }
}
