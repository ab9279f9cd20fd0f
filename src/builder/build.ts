// ost build-images: upstream state → keys → plan (cached, fetched, built, and why) → schedule.ts runs it, one
// layer at a time per job through run-layer.ts; result.ts holds what it returns and throws.
import { existsSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { type Accel, detectAccel } from '../core/accel.js';
import { ConfigError, type ConfigProblem } from '../core/errors.js';
import type { Reporter } from '../core/events.js';
import { formatCommand } from '../core/exec.js';
import { exists, removeTree } from '../core/fsutil.js';
import { acquireLock } from '../core/lock.js';
import { processAlive } from '../core/process.js';
import { requireTools, type ToolName } from '../core/require-tool.js';
import { requireKeyring } from '../tools/debootstrap.js';
import { destroyDomain, runningDomains } from '../tools/virsh.js';
import { BuildPaths, readManifest } from './build-dir.js';
import { ensureKeyPair, readPublicKey } from './keypair.js';
import { installDomainOwner } from './layer-kinds/install.js';
import type { BuildHost } from './layer-kinds/types.js';
import { confinementOf, outsideMediaProblem, outsideProblem } from './plan/confine.js';
import { computeKeys } from './plan/keys.js';
import type { ImageSet, Layer } from './plan/model.js';
import { checkLayerFlags, makePlan, type PlanEntry, planFetches } from './plan/plan.js';
import { adoptKeyPair, openCache } from './repo/cache-repo.js';
import { BuildFailedError, type BuildResult } from './result.js';
import { packageName } from './rpm/rpm-file.js';
import { actionsFor, contextFor } from './run-layer.js';
import { schedule } from './schedule.js';
import { upstreamStates } from './upstream.js';

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
  /**
   * The libvirt connection for install bases (virt-install, and removing a killed build's install domains);
   * default qemu:///system. The CLI passes what --connect or LIBVIRT_DEFAULT_URI says.
   */
  libvirtUri?: string;
  /** A published repository (dir or URL) whose layers are fetched instead of built when their key matches. */
  cacheRepo?: string;
  /** Do not read the package repositories' state: keep what each layer was last built from. */
  offline?: boolean;
}

/** The tools a set needs, checked up front so a missing one fails before anything is built. */
export function toolsFor(entries: PlanEntry[]): ToolName[] {
  const tools: ToolName[] = ['qemu-img', 'guestfish', 'ssh-keygen'];
  for (const e of entries) {
    if (e.action === 'fetch') tools.push('rpm2cpio', 'cpio');
    if (e.action !== 'build') continue;
    // derived layers need guestfish only (above)
    const b = e.layer.base;
    if (b?.kind === 'debootstrap') tools.push('debootstrap', 'tar', 'chroot');
    else if (b?.kind === 'install') tools.push('virt-install', 'virsh');
  }
  return tools;
}

/**
 * Install media and import sources are checked only for layers that will be built (a cached set needs none):
 * they exist, and media that came to exist since the set was loaded follow its folder rule (confine.ts).
 */
export function preflight(set: ImageSet, plan: PlanEntry[]): void {
  const problems: ConfigProblem[] = [];
  const confinement = confinementOf(set.file, set.allowOutside === true, set.writers);
  const need = (layer: Layer, key: string, p: string | undefined, what: string) => {
    if (p === undefined || /^https?:\/\//.test(p)) return;
    const keyPath = `layers[${layer.index}].${key}`;
    if (!existsSync(p)) {
      problems.push({
        file: set.file,
        path: keyPath,
        message: `${what} ${p} does not exist; put it there or point the key at it (\${VAR:-default} expands environment variables)`,
      });
      return;
    }
    const outside = key.startsWith('install.')
      ? outsideMediaProblem(confinement, what, p, p)
      : outsideProblem(confinement, what, p, p);
    if (outside !== undefined) problems.push({ file: set.file, path: keyPath, message: outside });
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

/** Leftovers of a killed run: *.tmp images, scratch dirs, transient install domains. */
async function cleanStale(set: ImageSet, paths: BuildPaths, uri: string, reporter: Reporter): Promise<void> {
  for (const f of await fs.readdir(paths.out)) {
    if (f.endsWith('.qcow2.tmp') || /\.tmp-[0-9a-f]{8}$/.test(f)) {
      await fs.rm(path.join(paths.out, f), { force: true });
      reporter({ type: 'info', message: `removed leftover ${f} from an interrupted build` });
    }
  }
  if (await exists(paths.workRoot())) await removeTree(paths.workRoot());
  if (set.layers.some((l) => l.base?.kind === 'install')) {
    const names = await runningDomains(uri).catch(() => []);
    for (const name of names) {
      // only the domains of builds that are gone: another build of this distro may be running
      const owner = installDomainOwner(set.distro, name);
      if (owner && !processAlive(owner)) {
        await destroyDomain(uri, name);
        reporter({ type: 'info', message: `destroyed leftover install domain ${name}` });
      }
    }
  }
}

/**
 * What a dry run shows: each layer's action and why, with the exact commands of the builds; a layer whose
 * repositories could not be read says so (and the plan is incomplete).
 */
function dryRunResult(d: {
  set: ImageSet;
  out: string;
  paths: BuildPaths;
  host: BuildHost;
  plan: PlanEntry[];
  publicKey: string | undefined;
  unreadable: ReadonlyMap<string, string>;
}): BuildResult {
  const { set, paths, host, plan, publicKey } = d;
  const shown = publicKey ?? '<public key generated on first build>';
  const reasonOf = (e: PlanEntry) => {
    const why = publicKey || e.layer.parent ? e.reason : `${e.reason}; the SSH key pair is generated first`;
    if (!d.unreadable.has(e.layer.name)) return why;
    // planned as a build on a guess; a skipped or cached layer keeps its own reason, with the doubt
    return e.action === 'build'
      ? 'upstream state unknown: a repository could not be read'
      : `${why}; its upstream state is unknown`;
  };
  const dryRun = plan.map((e) => ({
    layer: e.layer.name,
    action: e.action,
    reason: reasonOf(e),
    upstreamUnknown: d.unreadable.get(e.layer.name),
    key: e.key,
    steps:
      e.action === 'build'
        ? actionsFor(contextFor(set, e.layer, e.key, paths, host, shown)).map((a) =>
            a.kind === 'exec'
              ? { title: a.title, argv: a.argv, cwd: a.cwd }
              : { title: a.title, argv: a.argv, guest: a.guest },
          )
        : [],
  }));
  const incomplete = [...d.unreadable].map(([layer, reason]) => ({ layer, reason }));
  return {
    set,
    out: d.out,
    plan,
    outcomes: [],
    dryRun,
    incomplete: incomplete.length ? incomplete : undefined,
  };
}

/** Build (or plan, with dryRun) an image set. Throws BuildFailedError when any layer failed. */
export async function buildImages(set: ImageSet, opts: BuildOptions = {}): Promise<BuildResult> {
  const reporter: Reporter = opts.reporter ?? (() => {});
  checkLayerFlags(set, { force: opts.force, only: opts.only });
  const out = path.resolve(opts.out ?? path.join('build', set.distro));
  const paths = new BuildPaths(out, set.distro);
  const host: BuildHost = {
    accel: opts.accel ?? detectAccel(),
    libvirtUri: opts.libvirtUri ?? 'qemu:///system',
  };
  const jobs = Math.max(1, opts.jobs ?? 2);
  const cache = opts.cacheRepo ? await openCache(opts.cacheRepo, reporter) : undefined;
  const recorded = async (layer: string) => (await readManifest(paths, layer))?.upstream;
  // a dry run plans on where a repository cannot be read, and says which layers that leaves unknown
  const unreadable = opts.dryRun ? new Map<string, string>() : undefined;
  const upstream = await upstreamStates(
    set,
    recorded,
    opts.offline === true,
    reporter,
    opts.signal,
    unreadable,
  );
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
    return dryRunResult({ set, out, paths, host, plan, publicKey, unreadable: unreadable ?? new Map() });
  }

  await fs.mkdir(path.join(out, 'logs'), { recursive: true });
  const lock = await acquireLock(paths.lock(), `ost build-images ${set.file}`);
  try {
    await cleanStale(set, paths, host.libvirtUri, reporter);
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
    if (plan.some((e) => e.action === 'build' && e.layer.base?.kind === 'debootstrap')) requireKeyring();
    const outcomes = await schedule(
      set,
      plan,
      paths,
      host,
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

/** Render a dry-run plan as text: what is cached, what is built and the exact commands. */
export function formatDryRun(result: BuildResult): string {
  const lines: string[] = [`plan for ${result.set.distro} (${result.set.file}), output ${result.out}:`];
  for (const l of result.dryRun ?? []) {
    lines.push(`  ${l.layer}: ${l.action.toUpperCase()} (${l.reason}) key ${l.key.slice(0, 16)}`);
    for (const s of l.steps) {
      lines.push(
        s.argv && !s.guest
          ? `    $ ${s.cwd ? `(cd ${s.cwd} && ` : ''}${formatCommand(s.argv)}${s.cwd ? ')' : ''}`
          : `    # ${s.title}${s.argv ? `: ${formatCommand(s.argv)}` : ''}`,
      );
      for (const g of s.guest ?? []) lines.push(`      ${g}`);
    }
  }
  return lines.join('\n');
}
