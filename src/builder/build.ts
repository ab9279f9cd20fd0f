// ost build-images: plan → build changed layers (bounded concurrency) → verify → commit, one layer at a time.
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { type Accel, detectAccel, guestfsEnv } from '../core/accel.js';
import { CleanupStack } from '../core/cleanup.js';
import { ConfigError, type ConfigProblem, errorMessage, OstError, ToolError } from '../core/errors.js';
import { type Reporter, step } from '../core/events.js';
import { formatCommand, run } from '../core/exec.js';
import { allocatedBytes, atomicWriteFile, commitFile, exists, removeTree } from '../core/fsutil.js';
import { acquireLock } from '../core/lock.js';
import { processAlive } from '../core/process.js';
import { requireTools, type ToolName } from '../core/require-tool.js';
import { readFromGuest } from '../tools/guestfish.js';
import { runArgv } from '../tools/run-tool.js';
import { ensureKeyPair, readPublicKey } from './keypair.js';
import { debootstrapActions } from './layers/debootstrap.js';
import { derivedActions } from './layers/derived.js';
import { importActions } from './layers/import.js';
import { installActions, installDomainOwner, LIBVIRT_URI } from './layers/install.js';
import type { Action, LayerContext } from './layers/types.js';
import {
  diffPackages,
  formatDiff,
  formatPkglist,
  isEmptyDiff,
  type Package,
  parseDpkgStatus,
  parsePkglist,
  parseRpmList,
  RPM_QUERY_FORMAT,
} from './pkglist.js';
import { computeKeys, today } from './plan/keys.js';
import { type ImageSet, type Layer, layerFileName, type PackageRepo } from './plan/model.js';
import { checkLayerFlags, makePlan, type PlanEntry } from './plan/plan.js';
import { adoptKeyPair, fetchLayer, findLayer, usableHit } from './repo/cache.js';
import { type RepoPackage, readRepo } from './repo/metadata.js';
import { packageName } from './rpm/pack.js';
import { BuildPaths, dropManifest, type LayerManifest, readManifest, writeManifest } from './state.js';
import { fetchStates, reposOf, sourceLine, type UpstreamState } from './upstream.js';
import { checkImage, checkRelocatableChain } from './verify.js';
import { BUILDER_VERSION } from './version.js';

export interface BuildOptions {
  /** Output directory; default ./build/<distro>. */
  out?: string;
  /** Layers built at the same time (default 2). */
  jobs?: number;
  force?: string[];
  only?: string[];
  dryRun?: boolean;
  reporter?: Reporter;
  signal?: AbortSignal;
  accel?: Accel;
  /** A published repository (dir or URL) whose layers are fetched instead of built when their key matches. */
  cacheRepo?: string;
  /** Do not read the package repositories' state: keep what each layer was last built from. */
  offline?: boolean;
}

export type LayerStatus = 'built' | 'fetched' | 'cached' | 'failed' | 'skipped';

export interface LayerOutcome {
  layer: string;
  status: LayerStatus;
  reason: string;
  durationMs?: number;
  manifest?: LayerManifest;
  error?: LayerBuildError;
}

/** What --dry-run shows for one layer. */
export interface DryRunLayer {
  layer: string;
  action: PlanEntry['action'];
  reason: string;
  key: string;
  steps: { title: string; argv?: string[]; cwd?: string }[];
}

export interface BuildResult {
  set: ImageSet;
  out: string;
  plan: PlanEntry[];
  outcomes: LayerOutcome[];
  dryRun?: DryRunLayer[];
  keyCreated?: boolean;
}

/** A layer failed: the cause, the last lines of its log and where the full log is. */
export class LayerBuildError extends OstError {
  constructor(
    readonly layer: string,
    readonly step: string,
    cause: unknown,
    readonly tail: string[],
    readonly logFile: string,
  ) {
    super(`layer ${layer} failed at "${step}": ${errorMessage(cause)}`, `full log: ${logFile}`, cause);
    this.name = 'LayerBuildError';
  }
}

/** Some layers failed; the others were built or left as they were. */
export class BuildFailedError extends OstError {
  constructor(readonly result: BuildResult) {
    const failed = result.outcomes.filter((o) => o.status === 'failed');
    super(
      `${failed.length} layer(s) failed: ${failed.map((o) => o.layer).join(', ')}`,
      'layers that were already built are untouched; fix the cause and run the same command again',
    );
    this.name = 'BuildFailedError';
  }
}

/** The tools a set needs, checked up front so a missing one fails before anything is built. */
export function toolsFor(entries: PlanEntry[]): ToolName[] {
  const tools: ToolName[] = ['qemu-img', 'guestfish', 'ssh-keygen'];
  for (const e of entries) {
    if (e.action === 'fetch') tools.push('rpm2cpio', 'cpio');
    if (e.action !== 'build') continue;
    const b = e.layer.base;
    if (!b) tools.push('virt-customize');
    else if (b.kind === 'debootstrap') tools.push('debootstrap', 'tar', 'chroot');
    else if (b.kind === 'install') tools.push('virt-install', 'virsh');
  }
  return tools;
}

function actionsFor(ctx: LayerContext): Action[] {
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
      throw new Error(`unknown base ${JSON.stringify(never)}`);
    }
  }
}

function contextFor(
  set: ImageSet,
  layer: Layer,
  key: string,
  paths: BuildPaths,
  accel: Accel,
  publicKey: string,
): LayerContext {
  return {
    set,
    layer,
    key,
    paths,
    accel,
    tmpImage: paths.tmpImage(layer.name),
    work: paths.work(layer.name),
    logFile: paths.log(layer.name),
    consoleLog: paths.consoleLog(layer.name),
    publicKey,
  };
}

/** Read the installed package list out of an image (read-only appliance). */
async function readPackages(set: ImageSet, image: string, accel: Accel): Promise<Package[]> {
  const env = guestfsEnv(accel);
  if (set.family === 'deb') {
    return parseDpkgStatus(await readFromGuest(image, [['cat', '/var/lib/dpkg/status']], { env }));
  }
  return parseRpmList(await readFromGuest(image, [['sh', `rpm -qa --qf '${RPM_QUERY_FORMAT}'`]], { env }));
}

/** Install media and import sources are checked only for layers that will be built (a cached set needs none). */
export function preflight(set: ImageSet, plan: PlanEntry[]): void {
  const problems: ConfigProblem[] = [];
  const need = (layer: Layer, key: string, p: string | undefined, what: string) => {
    if (p === undefined || /^https?:\/\//.test(p) || existsSync(p)) return;
    problems.push({
      file: set.file,
      path: `layers[${layer.index}].${key}`,
      message: `${what} ${p} does not exist; put it there or point the key at it (\${VAR:-default} expands environment variables)`,
    });
  };
  for (const e of plan) {
    if (e.action !== 'build') continue;
    const b = e.layer.base;
    if (b?.kind === 'install') {
      need(e.layer, 'install.location', b.location, 'install media');
      need(e.layer, 'install.kernel', b.kernel, 'kernel');
      need(e.layer, 'install.initrd', b.initrd, 'initrd');
    } else if (b?.kind === 'import' && !b.isUrl) {
      need(e.layer, 'import.source', b.source, 'image');
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
}

async function openCache(
  repo: string,
  reporter: Reporter,
): Promise<{ repo: string; pkgs: RepoPackage[] } | undefined> {
  try {
    return { repo, pkgs: await readRepo(repo) };
  } catch (err) {
    reporter({ type: 'warning', message: `cache repository not used: ${errorMessage(err)}` });
    return undefined;
  }
}

/** Turn 'build' into 'fetch' where the cache has the same key built on the same parent build. */
function planFetches(set: ImageSet, plan: PlanEntry[], pkgs: RepoPackage[], forced: Set<string>): void {
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

/** Leftovers of a killed run: *.tmp images, scratch dirs, transient install domains. */
async function cleanStale(set: ImageSet, paths: BuildPaths, reporter: Reporter): Promise<void> {
  for (const f of await fs.readdir(paths.out)) {
    if (f.endsWith('.qcow2.tmp') || /\.tmp-[0-9a-f]{8}$/.test(f)) {
      await fs.rm(path.join(paths.out, f), { force: true });
      reporter({ type: 'info', message: `removed leftover ${f} from an interrupted build` });
    }
  }
  if (await exists(paths.workRoot())) await removeTree(paths.workRoot());
  if (set.layers.some((l) => l.base?.kind === 'install')) {
    const res = await run('virsh', ['--connect', LIBVIRT_URI, 'list', '--name'], {
      allowFailure: true,
    }).catch(() => undefined);
    for (const name of (res?.stdout ?? '').split('\n').map((s) => s.trim())) {
      // only the domains of builds that are gone: another build of this distro may be running
      const owner = installDomainOwner(set.distro, name);
      if (owner && !processAlive(owner)) {
        await run('virsh', ['--connect', LIBVIRT_URI, 'destroy', name], { allowFailure: true });
        reporter({ type: 'info', message: `destroyed leftover install domain ${name}` });
      }
    }
  }
}

/**
 * The state of the repositories of every refresh: upstream layer: read now (each repository once, all at
 * once), or with `offline` as each layer's manifest recorded it (none recorded: the state is unknown, and
 * the next online build replaces it).
 */
async function upstreamStates(
  set: ImageSet,
  paths: BuildPaths,
  offline: boolean,
  reporter: Reporter,
  signal?: AbortSignal,
): Promise<Map<string, UpstreamState[]>> {
  const out = new Map<string, UpstreamState[]>();
  const layers = set.layers.filter((l) => l.refresh === 'upstream');
  if (offline) {
    for (const l of layers) {
      const m = await readManifest(paths, l.name);
      const sources = reposOf(set, l).map(sourceLine);
      const recorded = m?.upstream;
      if (recorded && recorded.map((u) => u.source).join('\n') === sources.join('\n'))
        out.set(l.name, recorded);
    }
    return out;
  }
  const unique = new Map<string, PackageRepo>();
  for (const l of layers) for (const r of reposOf(set, l)) unique.set(sourceLine(r), r);
  if (unique.size === 0) return out;
  const states = await step(
    reporter,
    'upstream',
    `read the state of ${unique.size} package ${unique.size === 1 ? 'repository' : 'repositories'}`,
    async () => new Map((await fetchStates([...unique.values()], signal)).map((st) => [st.source, st])),
  );
  for (const l of layers)
    out.set(
      l.name,
      reposOf(set, l).map((r) => states.get(sourceLine(r)) as UpstreamState),
    );
  return out;
}

/** Build (or plan, with dryRun) an image set. Throws BuildFailedError when any layer failed. */
export async function buildImages(set: ImageSet, opts: BuildOptions = {}): Promise<BuildResult> {
  const reporter: Reporter = opts.reporter ?? (() => {});
  checkLayerFlags(set, { force: opts.force, only: opts.only });
  const out = path.resolve(opts.out ?? path.join('build', set.distro));
  const paths = new BuildPaths(out, set.distro);
  const accel = opts.accel ?? detectAccel();
  const jobs = Math.max(1, opts.jobs ?? 2);
  const cache = opts.cacheRepo ? await openCache(opts.cacheRepo, reporter) : undefined;
  const upstream = await upstreamStates(set, paths, opts.offline === true, reporter, opts.signal);
  /** Keys, then the plan, then what the cache repository can provide instead of a build. */
  const planWith = async (publicKey: string | undefined): Promise<PlanEntry[]> => {
    const keys = await computeKeys(set, { publicKey, upstream });
    const plan = await makePlan(set, keys, paths, { force: opts.force, only: opts.only, upstream });
    if (cache) planFetches(set, plan, cache.pkgs, new Set(opts.force ?? []));
    return plan;
  };

  if (opts.dryRun) {
    const publicKey = await readPublicKey(paths);
    const plan = await planWith(publicKey);
    const shown = publicKey ?? '<public key generated on first build>';
    const dryRun = plan.map((e) => ({
      layer: e.layer.name,
      action: e.action,
      reason: publicKey || e.layer.parent ? e.reason : `${e.reason}; the SSH key pair is generated first`,
      key: e.key,
      steps:
        e.action === 'build'
          ? actionsFor(contextFor(set, e.layer, e.key, paths, accel, shown)).map((a) =>
              a.kind === 'exec' ? { title: a.title, argv: a.argv, cwd: a.cwd } : { title: a.title },
            )
          : [],
    }));
    return { set, out, plan, outcomes: [], dryRun };
  }

  await fs.mkdir(path.join(out, 'logs'), { recursive: true });
  const lock = await acquireLock(paths.lock(), `ost build-images ${set.file}`);
  try {
    await cleanStale(set, paths, reporter);
    if (cache && !(await readPublicKey(paths))) {
      const base = set.layers.find((l) => !l.parent);
      if (base && (await adoptKeyPair(cache.repo, cache.pkgs, packageName(set.distro, base.name), paths))) {
        reporter({
          type: 'info',
          message: `took the set's SSH key pair from the cache repository ${cache.repo}`,
        });
      }
    }
    const { publicKey, created } = await ensureKeyPair(paths);
    if (created) reporter({ type: 'info', message: `generated SSH key pair ${paths.privateKey()}` });
    const plan = await planWith(publicKey);
    preflight(set, plan);
    requireTools(toolsFor(plan));
    const outcomes = await schedule(
      set,
      plan,
      paths,
      accel,
      publicKey,
      jobs,
      reporter,
      opts.signal,
      cache?.repo,
    );
    await fs.rmdir(paths.workRoot()).catch(() => {}); // only when empty
    const result: BuildResult = { set, out, plan, outcomes, keyCreated: created };
    if (outcomes.some((o) => o.status === 'failed')) throw new BuildFailedError(result);
    return result;
  } finally {
    await lock.release();
  }
}

async function schedule(
  set: ImageSet,
  plan: PlanEntry[],
  paths: BuildPaths,
  accel: Accel,
  publicKey: string,
  jobs: number,
  reporter: Reporter,
  signal: AbortSignal | undefined,
  cacheRepo?: string,
): Promise<LayerOutcome[]> {
  const outcomes = new Map<string, LayerOutcome>();
  for (const e of plan) {
    if (e.action === 'cached') {
      outcomes.set(e.layer.name, {
        layer: e.layer.name,
        status: 'cached',
        reason: e.reason,
        manifest: e.manifest,
      });
      reporter({ type: 'step', id: e.layer.name, title: e.layer.name, status: 'cached', detail: e.reason });
    } else if (e.action === 'skip') {
      outcomes.set(e.layer.name, { layer: e.layer.name, status: 'skipped', reason: e.reason });
      reporter({ type: 'step', id: e.layer.name, title: e.layer.name, status: 'skipped', detail: e.reason });
    }
  }
  const running = new Map<string, Promise<void>>();
  const parentManifest = (l: Layer) => (l.parent ? outcomes.get(l.parent)?.manifest : undefined);
  for (;;) {
    for (const e of plan) {
      const name = e.layer.name;
      if (outcomes.has(name) || running.has(name)) continue;
      const p = e.layer.parent ? outcomes.get(e.layer.parent) : undefined;
      if (e.layer.parent && (p?.status === 'failed' || p?.status === 'skipped')) {
        const reason = `parent ${e.layer.parent} ${p.status === 'failed' ? 'failed' : 'was not built'}`;
        outcomes.set(name, { layer: name, status: 'skipped', reason });
        reporter({ type: 'step', id: name, title: name, status: 'skipped', detail: reason });
        continue;
      }
      if (signal?.aborted) {
        outcomes.set(name, { layer: name, status: 'skipped', reason: 'interrupted' });
        continue;
      }
      const ready =
        !e.layer.parent || p?.status === 'built' || p?.status === 'fetched' || p?.status === 'cached';
      if (!ready || running.size >= jobs) continue;
      const ctx = contextFor(set, e.layer, e.key, paths, accel, publicKey);
      const started = Date.now();
      const work =
        e.action === 'fetch' && e.hit && cacheRepo
          ? fetchWithEvents(cacheRepo, e.hit, paths, name, ctx.work, reporter)
          : buildLayer(ctx, parentManifest(e.layer), e.upstream, reporter, signal);
      const job = work
        .then((manifest) => {
          outcomes.set(name, {
            layer: name,
            status: e.action === 'fetch' ? 'fetched' : 'built',
            reason: e.reason,
            durationMs: Date.now() - started,
            manifest,
          });
        })
        .catch((err: unknown) => {
          const error =
            err instanceof LayerBuildError ? err : new LayerBuildError(name, 'build', err, [], ctx.logFile);
          outcomes.set(name, {
            layer: name,
            status: 'failed',
            reason: e.reason,
            durationMs: Date.now() - started,
            error,
          });
        })
        .finally(() => running.delete(name));
      running.set(name, job);
    }
    if (running.size === 0) break;
    await Promise.race(running.values());
  }
  return plan.map(
    (e) => outcomes.get(e.layer.name) ?? { layer: e.layer.name, status: 'skipped', reason: 'not reached' },
  );
}

async function fetchWithEvents(
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
async function buildLayer(
  ctx: LayerContext,
  parent: LayerManifest | undefined,
  upstream: UpstreamState[] | undefined,
  reporter: Reporter,
  signal: AbortSignal | undefined,
): Promise<LayerManifest> {
  const { set, layer, paths } = ctx;
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
  let current = 'start';
  const log = (line: string) => fs.appendFile(ctx.logFile, `${line}\n`);
  try {
    for (const a of actionsFor(ctx)) {
      signal?.throwIfAborted();
      current = a.title;
      reporter({
        type: 'step',
        id: `${layer.name}/${a.title}`,
        title: `${layer.name}: ${a.title}`,
        status: 'start',
      });
      const t0 = Date.now();
      await log(`## ${a.title}`);
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
        await a.run();
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
    current = 'verify';
    await log('## verify: qemu-img check, relocatable backing chain, package list');
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
    current = 'commit';
    signal?.throwIfAborted();
    await fs.chmod(ctx.tmpImage, 0o444);
    const virtualSize = chain[0]?.virtualSize ?? 0;
    // children trust a parent only through its manifest: drop it before the file is swapped
    await dropManifest(paths, layer.name);
    await commitFile(ctx.tmpImage, paths.image(layer.name));
    const manifest: LayerManifest = {
      distro: set.distro,
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
    };
    await writeManifest(paths, manifest);
    await removeTree(ctx.work);
    await log(`# finished in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    reporter({
      type: 'step',
      id: layer.name,
      title: layer.name,
      status: 'done',
      durationMs: manifest.durationMs,
    });
    return manifest;
  } catch (err) {
    await log(`# FAILED at "${current}": ${errorMessage(err)}`).catch(() => {});
    await undo.unwind(reporter);
    reporter({
      type: 'step',
      id: layer.name,
      title: layer.name,
      status: 'failed',
      durationMs: Date.now() - started,
    });
    const tail = err instanceof ToolError ? err.tail : await logTail(ctx.logFile, 30);
    throw new LayerBuildError(layer.name, current, err, tail, ctx.logFile);
  }
}

async function logTail(file: string, n: number): Promise<string[]> {
  try {
    return (await fs.readFile(file, 'utf8')).trimEnd().split('\n').slice(-n);
  } catch {
    return [];
  }
}

/** Render a dry-run plan as text: what is cached, what is built and the exact commands. */
export function formatDryRun(result: BuildResult): string {
  const lines: string[] = [`plan for ${result.set.distro} (${result.set.file}), output ${result.out}:`];
  for (const l of result.dryRun ?? []) {
    lines.push(`  ${l.layer}: ${l.action.toUpperCase()} (${l.reason}) key ${l.key.slice(0, 16)}`);
    for (const s of l.steps) {
      lines.push(
        s.argv
          ? `    $ ${s.cwd ? `(cd ${s.cwd} && ` : ''}${formatCommand(s.argv)}${s.cwd ? ')' : ''}`
          : `    # ${s.title}`,
      );
    }
  }
  return lines.join('\n');
}
