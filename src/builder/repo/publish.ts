// Publish a verified set into a DNF repository. Readers never see partial metadata: each publish writes
// a new metadata generation under .ost/ and swaps the `repodata` symlink to it with one rename.
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { OstError } from '../../core/errors.js';
import type { Reporter } from '../../core/events.js';
import { faultPoint } from '../../core/fault.js';
import { atomicWriteFile, exists, fileSha256, fsyncDir, removeTree } from '../../core/fsutil.js';
import { acquireLock } from '../../core/lock.js';
import { requireTools } from '../../core/require-tool.js';
import { createrepoArgv } from '../../tools/createrepo.js';
import { parseDeps, queryProvidesArgv } from '../../tools/rpmbuild.js';
import { runArgv } from '../../tools/run-tool.js';
import type { ImageSet } from '../plan/model.js';
import { isSignedRpm, type PackedRpm } from '../rpm/rpm-file.js';

/** What one publish of a complete set recorded (repo/.ost/sets/<distro>/<stamp>.json). */
export interface SetRecord {
  distro: string;
  publishedAt: string;
  packages: {
    name: string;
    evr: string;
    file: string;
    layer: string;
    key: string;
    squashed: boolean;
    /** What it requires by exact version: a layer its parent, a deployed package every layer it sits on. */
    requires?: string | string[];
    /** A suite's deployed package (its newest is kept however many sets since had none). */
    deployed?: boolean;
  }[];
}

/** Who signs the RPMs and repomd.xml: a GPG key id. */
export interface SignConfig {
  keyId: string;
}

/** Where to publish, how many sets to keep, how to sign. */
export interface PublishOptions {
  repo: string;
  /** Keep this many complete sets of this distro (default: all). */
  keep?: number;
  sign?: SignConfig;
  reporter?: Reporter;
  /** Test hook: called after the new generation is written, before the swap. */
  beforeSwap?: () => Promise<void>;
}

/** What a publish changed: RPMs added and dropped, the new metadata generation, the set's record. */
export interface PublishResult {
  added: string[];
  removed: string[];
  generation: string;
  record: string;
}

const stamp = () =>
  new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '') + randomBytes(2).toString('hex');

/** Layout of a repository managed by ost. */
export function repoPaths(repo: string) {
  return {
    packages: path.join(repo, 'Packages'),
    repodata: path.join(repo, 'repodata'),
    meta: path.join(repo, '.ost'),
    lock: path.join(repo, '.ost', 'lock'),
    /** RPMs retention dropped from the metadata at the distro's last publish: deleted at its next one. */
    dropped: (distro: string) => path.join(repo, '.ost', `dropped-${distro}.json`),
    sets: (distro: string) => path.join(repo, '.ost', 'sets', distro),
    gpgKey: path.join(repo, 'RPM-GPG-KEY-ost-images'),
  };
}

/** Every recorded set of a distro, oldest first. */
export async function readSetRecords(
  repo: string,
  distro: string,
): Promise<{ file: string; record: SetRecord }[]> {
  const dir = repoPaths(repo).sets(distro);
  if (!(await exists(dir))) return [];
  const files = (await fs.readdir(dir)).filter((f) => f.endsWith('.json')).sort();
  const out: { file: string; record: SetRecord }[] = [];
  for (const f of files) {
    try {
      out.push({
        file: path.join(dir, f),
        record: JSON.parse(await fs.readFile(path.join(dir, f), 'utf8')) as SetRecord,
      });
    } catch {
      // a record cut short by a crash is ignored (it was never the basis of a swap)
    }
  }
  return out;
}

/**
 * RPM files that retention keeps: every file of the newest `keep` sets, the newest of each suite's deployed
 * package (nights whose deploy failed publish none: the last one stays usable), and whatever they require.
 */
export function filesToKeep(records: SetRecord[], keep: number): Set<string> {
  type Pkg = SetRecord['packages'][number];
  const byNevr = new Map<string, Pkg>();
  const newestDeployed = new Map<string, Pkg>();
  for (const r of records)
    for (const p of r.packages) {
      byNevr.set(`${p.name} = ${p.evr}`, p);
      if (p.deployed) newestDeployed.set(p.name, p);
    }
  const files = new Set<string>();
  const queue: Pkg[] = [...records.slice(-keep).flatMap((r) => r.packages), ...newestDeployed.values()];
  for (let p = queue.pop(); p; p = queue.pop()) {
    if (files.has(p.file)) continue;
    files.add(p.file);
    for (const req of [p.requires ?? []].flat()) {
      const dep = byNevr.get(req);
      if (dep) queue.push(dep);
    }
  }
  return files;
}

/**
 * Add the set's RPMs, apply retention and swap in new metadata; record the set once it is served.
 * Clients keep working across a publish: the new generation also carries the previous generation's
 * metadata files (a client that read the old repomd.xml fetches them from repodata/), and an RPM that
 * retention drops leaves the metadata now but the disk only at the next publish.
 */
export async function publishSet(
  set: ImageSet,
  rpms: PackedRpm[],
  opts: PublishOptions,
): Promise<PublishResult> {
  requireTools(['createrepo_c', 'rpm']);
  if (opts.keep !== undefined && (!Number.isInteger(opts.keep) || opts.keep < 1))
    throw new OstError(
      `keep ${opts.keep}: a repository keeps at least 1 complete set`,
      'give --keep 1 or more',
    );
  const reporter: Reporter = opts.reporter ?? (() => {});
  const p = repoPaths(path.resolve(opts.repo));
  const repo = path.resolve(opts.repo);
  await fs.mkdir(p.packages, { recursive: true });
  await fs.mkdir(p.sets(set.distro), { recursive: true });
  const lock = await acquireLock(p.lock, `ost publish-images ${set.distro}`, 10 * 60_000);
  try {
    // 0. what killed publishes left: half-copied RPMs
    for (const f of await fs.readdir(p.packages))
      if (/\.tmp-[0-9a-f]{8}$/.test(f)) await fs.rm(path.join(p.packages, f), { force: true });

    // 1. packages: new names only; an existing name must be the very same build
    const { added, files } = await addPackages(rpms, repo, opts, reporter);

    // 2. retention over complete sets (the recorded ones and this one)
    const record = setRecord(set, rpms, files);
    const id = stamp();
    const { removed, droppedRecords, toDelete } = await retention(repo, set.distro, record, opts.keep);

    // 3. new metadata generation (with the previous one's files), signed, then one rename makes it current
    const gen = await writeGeneration(repo, id, [...removed, ...toDelete, '*.tmp-*'], opts.sign);
    await opts.beforeSwap?.();
    await faultPoint('publish:before-swap');
    await swapRepodata(repo, gen);
    await faultPoint('publish:after-swap');
    // the set counts as published (and for retention) only now that it is served
    const recordFile = path.join(p.sets(set.distro), `${id}.json`);
    await atomicWriteFile(recordFile, `${JSON.stringify(record, null, 2)}\n`);
    await faultPoint('publish:after-record');
    reporter({
      type: 'info',
      message: `published ${set.distro}: ${added.length} new RPM(s), ${removed.length} dropped → ${repo}`,
    });

    // 4. what no served metadata names any more: last time's drops, old records, old generations
    await atomicWriteFile(p.dropped(set.distro), `${JSON.stringify(removed)}\n`);
    for (const f of toDelete) await fs.rm(path.join(p.packages, f), { force: true });
    for (const f of droppedRecords) await fs.rm(f, { force: true });
    await pruneGenerations(repo, gen);
    return { added, removed, generation: gen, record: recordFile };
  } finally {
    await lock.release();
  }
}

/**
 * Copy the set's RPMs into Packages/ (new names only; an existing name must be the very same build); the
 * names added, and each RPM's file name in the repo.
 */
async function addPackages(
  rpms: PackedRpm[],
  repo: string,
  opts: PublishOptions,
  reporter: Reporter,
): Promise<{ added: string[]; files: Map<string, string> }> {
  const p = repoPaths(repo);
  const added: string[] = [];
  const files = new Map<string, string>();
  for (const r of rpms) {
    const dest = path.join(p.packages, path.basename(r.file));
    files.set(r.file, path.basename(dest));
    if (await exists(dest)) {
      await keepPublished(r, dest, repo, opts, reporter);
      continue;
    }
    const tmp = `${dest}.tmp-${randomBytes(4).toString('hex')}`;
    try {
      // a copy, never a hard link: rpmsign rewrites RPMs in place, and published bytes must not change
      await fs.copyFile(r.file, tmp, fsConstants.COPYFILE_FICLONE);
      await faultPoint('publish:copy');
      await fs.rename(tmp, dest);
    } finally {
      await fs.rm(tmp, { force: true });
    }
    added.push(path.basename(dest));
  }
  await fsyncDir(p.packages);
  return { added, files };
}

/** An RPM whose name is published already: the same build keeps the published bytes; another is an error. */
async function keepPublished(
  r: PackedRpm,
  dest: string,
  repo: string,
  opts: PublishOptions,
  reporter: Reporter,
): Promise<void> {
  const [a, b] = await Promise.all([fileSha256(dest), fileSha256(r.file)]);
  if (a === b) return;
  // the same build packed again (another --payload, signed or not): the published bytes stay — but a
  // signed publish cannot leave an unsigned RPM in place (clients with gpgcheck would refuse it)
  if ((await providesOf(dest)) === (await providesOf(r.file))) {
    if (opts.sign && !(await isSignedRpm(dest)))
      throw new OstError(
        `${path.basename(dest)} is published unsigned in ${repo}, and published files never change`,
        'rebuild the layer (build-images --force LAYER) to publish it signed under a new release, or publish signed into a new repository',
      );
    reporter({
      type: 'info',
      message: `${path.basename(dest)} is already published (packed differently); keeping the published file`,
    });
    return;
  }
  throw new OstError(
    `${path.basename(r.file)} already exists in ${repo} from another build`,
    'another build published the same name-version-release; rebuild the layer (--force) to get a new release',
  );
}

/** What this publish records of the set: each RPM, by its file name in the repo. */
function setRecord(set: ImageSet, rpms: PackedRpm[], files: Map<string, string>): SetRecord {
  return {
    distro: set.distro,
    publishedAt: new Date().toISOString(),
    packages: rpms.map((r) => ({
      name: r.name,
      evr: `${r.version}-${r.release}`,
      file: files.get(r.file) as string,
      layer: r.layer,
      key: r.key,
      squashed: r.squashed,
      requires: r.deployed?.pins ?? r.requires,
      ...(r.deployed ? { deployed: true } : {}),
    })),
  };
}

/**
 * Retention over the recorded sets and this one (none without `keep`): the RPMs to drop from the metadata
 * now, the old records to remove, and last time's drops to delete from the disk.
 */
async function retention(
  repo: string,
  distro: string,
  record: SetRecord,
  keepSets: number | undefined,
): Promise<{ removed: string[]; droppedRecords: string[]; toDelete: string[] }> {
  const p = repoPaths(repo);
  const records = await readSetRecords(repo, distro);
  const pending = await readDropped(p.dropped(distro));
  let removed: string[] = [];
  let droppedRecords: string[] = [];
  let keep: Set<string> | undefined;
  if (keepSets !== undefined) {
    keep = filesToKeep([...records.map((r) => r.record), record], keepSets);
    const prefix = `ost-images-${distro}-`;
    removed = (await fs.readdir(p.packages)).filter(
      (f) => f.startsWith(prefix) && f.endsWith('.rpm') && !keep?.has(f) && !pending.includes(f),
    );
    // an older set's record goes only when none of its RPMs is kept: a kept leaf may still require its
    // base, and the next retention must still know where that base came from
    droppedRecords = records
      .slice(0, Math.max(0, records.length + 1 - keepSets))
      .filter((r) => !r.record.packages.some((x) => keep?.has(x.file)))
      .map((r) => r.file);
  }
  // RPMs dropped last time are in no served metadata: deleted now, unless retention wants them again
  const toDelete = keep ? pending.filter((f) => !keep?.has(f)) : [];
  return { removed, droppedRecords, toDelete };
}

/** A new metadata generation .ost/gen-<id> without `excludes`, with the current one's files, signed. */
async function writeGeneration(
  repo: string,
  id: string,
  excludes: string[],
  sign: SignConfig | undefined,
): Promise<string> {
  const p = repoPaths(repo);
  const gen = path.join(p.meta, `gen-${id}`);
  await fs.mkdir(gen, { recursive: true }); // createrepo_c 0.20 refuses an --outputdir that does not exist
  const current = (await exists(path.join(p.repodata, 'repomd.xml'))) ? p.repodata : undefined;
  await runArgv(createrepoArgv({ repo, outputDir: gen, updateFrom: current, excludes }), {
    timeoutMs: 60 * 60_000,
  });
  if (current) await carryMetadata(current, path.join(gen, 'repodata'));
  if (sign) await signRepomd(path.join(gen, 'repodata', 'repomd.xml'), sign, p.gpgKey);
  return gen;
}

/** What an RPM file provides (its layer key, build id, squashed key…), sorted: equal means the same build. */
async function providesOf(rpmFile: string): Promise<string> {
  const res = await runArgv(queryProvidesArgv(rpmFile));
  return parseDeps(res.stdout)
    .map((d) => `${d.name} ${d.flags ?? ''} ${d.version ?? ''}`)
    .sort()
    .join('\n');
}

/** The RPM file names the last publish dropped from the metadata (none when unreadable). */
async function readDropped(file: string): Promise<string[]> {
  try {
    const v: unknown = JSON.parse(await fs.readFile(file, 'utf8'));
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string' && !x.includes('/')) : [];
  } catch {
    return [];
  }
}

/**
 * Hard-link into the new generation's repodata/ every metadata file the current repomd.xml names that the
 * new one does not have: a client that fetched the old repomd.xml just before the swap still finds them.
 */
async function carryMetadata(currentRepodata: string, newRepodata: string): Promise<void> {
  const repomd = await fs.readFile(path.join(currentRepodata, 'repomd.xml'), 'utf8');
  for (const m of repomd.matchAll(/<location href="repodata\/([^"/]+)"/g)) {
    const name = m[1] as string;
    const dest = path.join(newRepodata, name);
    if (await exists(dest)) continue;
    const src = path.join(currentRepodata, name);
    if (!(await exists(src))) continue;
    await fs.link(await fs.realpath(src), dest).catch(async () => {
      await fs.copyFile(src, dest);
    });
  }
}

/** Point repo/repodata at gen/repodata with a single rename of a symlink. */
async function swapRepodata(repo: string, gen: string): Promise<void> {
  const link = path.join(repo, 'repodata');
  const st = await fs.lstat(link).catch(() => undefined);
  if (st && !st.isSymbolicLink()) {
    // a plain directory from another tool: move it aside once (the only non-atomic moment)
    await fs.rename(link, path.join(repo, '.ost', `legacy-repodata-${stamp()}`));
  }
  const tmp = path.join(repo, `.repodata.new-${randomBytes(4).toString('hex')}`);
  await fs.symlink(path.relative(repo, path.join(gen, 'repodata')), tmp);
  await fs.rename(tmp, link);
  await fsyncDir(repo);
}

/** Keep the current and the previous generation (clients mid-download still read it); drop the rest. */
async function pruneGenerations(repo: string, currentGen: string): Promise<void> {
  const meta = path.join(repo, '.ost');
  const gens = (await fs.readdir(meta)).filter((f) => f.startsWith('gen-')).sort();
  const keep = new Set([path.basename(currentGen)]);
  const idx = gens.indexOf(path.basename(currentGen));
  if (idx > 0) keep.add(gens[idx - 1] as string);
  for (const g of gens) if (!keep.has(g)) await removeTree(path.join(meta, g));
  for (const f of await fs.readdir(repo)) {
    if (f.startsWith('.repodata.new-')) await fs.rm(path.join(repo, f), { force: true });
  }
}

/** Detached ASCII signature repomd.xml.asc, and the public key exported next to the repo. */
async function signRepomd(repomd: string, sign: SignConfig, pubKeyFile: string): Promise<void> {
  await runArgv(['gpg', '--batch', '--yes', '--local-user', sign.keyId, '--detach-sign', '--armor', repomd]);
  const exported = await runArgv(['gpg', '--batch', '--export', '--armor', sign.keyId]);
  await atomicWriteFile(pubKeyFile, exported.stdout);
}
