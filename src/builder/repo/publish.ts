// Publish a verified set into a DNF repository. Readers never see partial metadata: each publish writes
// a new metadata generation under .ost/ and swaps the `repodata` symlink to it with one rename.
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { OstError } from '../../core/errors.js';
import type { Reporter } from '../../core/events.js';
import { atomicWriteFile, exists, fileSha256, fsyncDir, removeTree } from '../../core/fsutil.js';
import { acquireLock } from '../../core/lock.js';
import { requireTools } from '../../core/require-tool.js';
import { createrepoArgv } from '../../tools/createrepo.js';
import { runArgv } from '../../tools/run-tool.js';
import type { ImageSet } from '../plan/model.js';
import type { PackedRpm } from '../rpm/pack.js';

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
    requires?: string;
  }[];
}

export interface SignConfig {
  keyId: string;
}

export interface PublishOptions {
  repo: string;
  /** Keep this many complete sets of this distro (default: all). */
  keep?: number;
  sign?: SignConfig;
  reporter?: Reporter;
  /** Test hook: called after the new generation is written, before the swap. */
  beforeSwap?: () => Promise<void>;
}

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

/** RPM files that retention keeps: every file of the newest `keep` sets and whatever they require. */
export function filesToKeep(records: SetRecord[], keep: number): Set<string> {
  type Pkg = SetRecord['packages'][number];
  const byNevr = new Map<string, Pkg>();
  for (const r of records) for (const p of r.packages) byNevr.set(`${p.name} = ${p.evr}`, p);
  const files = new Set<string>();
  const queue: Pkg[] = records.slice(-keep).flatMap((r) => r.packages);
  for (let p = queue.pop(); p; p = queue.pop()) {
    if (files.has(p.file)) continue;
    files.add(p.file);
    const dep = p.requires ? byNevr.get(p.requires) : undefined;
    if (dep) queue.push(dep);
  }
  return files;
}

/** Add the set's RPMs, record the set, apply retention and swap in new metadata. */
export async function publishSet(
  set: ImageSet,
  rpms: PackedRpm[],
  opts: PublishOptions,
): Promise<PublishResult> {
  requireTools(['createrepo_c']);
  const reporter: Reporter = opts.reporter ?? (() => {});
  const p = repoPaths(path.resolve(opts.repo));
  const repo = path.resolve(opts.repo);
  await fs.mkdir(p.packages, { recursive: true });
  await fs.mkdir(p.sets(set.distro), { recursive: true });
  const lock = await acquireLock(p.lock, `ost publish-images ${set.distro}`, 10 * 60_000);
  try {
    // 1. packages: new names only; an existing name must be the very same file
    const added: string[] = [];
    for (const r of rpms) {
      const dest = path.join(p.packages, path.basename(r.file));
      if (await exists(dest)) {
        const [a, b] = await Promise.all([fileSha256(dest), fileSha256(r.file)]);
        if (a !== b) {
          throw new OstError(
            `${path.basename(r.file)} already exists in ${repo} with different content`,
            'another build published the same name-version-release; rebuild the layer (--force) to get a new release',
          );
        }
        continue;
      }
      const tmp = `${dest}.tmp-${randomBytes(4).toString('hex')}`;
      try {
        // a copy, never a hard link: rpmsign rewrites RPMs in place, and published bytes must not change
        await fs.copyFile(r.file, tmp, fsConstants.COPYFILE_FICLONE);
        await fs.rename(tmp, dest);
      } finally {
        await fs.rm(tmp, { force: true });
      }
      added.push(path.basename(dest));
    }
    await fsyncDir(p.packages);

    // 2. the set record, then retention over complete sets
    const record: SetRecord = {
      distro: set.distro,
      publishedAt: new Date().toISOString(),
      packages: rpms.map((r) => ({
        name: r.name,
        evr: `${r.version}-${r.release}`,
        file: path.basename(r.file),
        layer: r.layer,
        key: r.key,
        squashed: r.squashed,
        requires: r.requires,
      })),
    };
    const id = stamp();
    const recordFile = path.join(p.sets(set.distro), `${id}.json`);
    await atomicWriteFile(recordFile, `${JSON.stringify(record, null, 2)}\n`);
    const records = await readSetRecords(repo, set.distro);
    let removed: string[] = [];
    let droppedRecords: string[] = [];
    if (opts.keep !== undefined) {
      const keep = filesToKeep(
        records.map((r) => r.record),
        opts.keep,
      );
      const prefix = `ost-images-${set.distro}-`;
      removed = (await fs.readdir(p.packages)).filter(
        (f) => f.startsWith(prefix) && f.endsWith('.rpm') && !keep.has(f),
      );
      droppedRecords = records.slice(0, Math.max(0, records.length - opts.keep)).map((r) => r.file);
    }

    // 3. new metadata generation, signed, then one rename makes it current
    const gen = path.join(p.meta, `gen-${id}`);
    await fs.mkdir(gen, { recursive: true }); // createrepo_c 0.20 refuses an --outputdir that does not exist
    const current = (await exists(path.join(p.repodata, 'repomd.xml'))) ? p.repodata : undefined;
    await runArgv(
      createrepoArgv({ repo, outputDir: gen, updateFrom: current, excludes: [...removed, '*.tmp-*'] }),
      { timeoutMs: 60 * 60_000 },
    );
    if (opts.sign) await signRepomd(path.join(gen, 'repodata', 'repomd.xml'), opts.sign, p.gpgKey);
    await opts.beforeSwap?.();
    await swapRepodata(repo, gen);
    reporter({
      type: 'info',
      message: `published ${set.distro}: ${added.length} new RPM(s), ${removed.length} removed → ${repo}`,
    });

    // 4. after the swap nothing references them any more
    for (const f of removed) await fs.rm(path.join(p.packages, f), { force: true });
    for (const f of droppedRecords) await fs.rm(f, { force: true });
    await pruneGenerations(repo, gen);
    return { added, removed, generation: gen, record: recordFile };
  } finally {
    await lock.release();
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
