// The cache repository (build-images --cache-repo): a published repository as a shared build cache — a
// layer published with the same key (and built on the same parent build) is fetched and unpacked instead
// of built.
import { createWriteStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errorMessage, OstError } from '../../core/errors.js';
import type { Reporter } from '../../core/events.js';
import { commitFile, exists, fileSha256, linkOrCopy, removeTree } from '../../core/fsutil.js';
import { runArgv } from '../../tools/run-tool.js';
import { type BuildPaths, dropManifest, type LayerManifest, writeManifest } from '../build-dir.js';
import { layerFileName } from '../plan/model.js';
import { buildProvide, layerProvide, parentBuildProvide } from '../rpm/rpm-file.js';
import { IMAGES_PREFIX } from '../rpm/spec.js';
import { type RepoPackage, readRepo } from './metadata.js';

export interface CacheHit {
  pkg: RepoPackage;
  /** Build id without dashes, as in the Provides. */
  buildId: string;
  parentBuildId?: string;
}

const undash = (s: string | undefined) => s?.replace(/-/g, '');

/** The newest package of the repo that provides this layer with this key. */
export function findLayer(pkgs: RepoPackage[], distro: string, layer: string, key: string): CacheHit[] {
  const want = layerProvide(distro, layer);
  return pkgs
    .filter((p) => p.provides.some((x) => x.name === want && x.version === key))
    .map((p) => ({
      pkg: p,
      buildId: p.provides.find((x) => x.name === buildProvide(distro, layer))?.version ?? '',
      parentBuildId: p.provides.find((x) => x.name === parentBuildProvide(distro, layer))?.version,
    }))
    .sort((a, b) => (a.pkg.release < b.pkg.release ? 1 : -1));
}

/** A hit usable on top of the given parent build (none for a base). */
export function usableHit(hits: CacheHit[], parentBuildId: string | undefined): CacheHit | undefined {
  return hits.find((h) => undash(h.parentBuildId) === undash(parentBuildId));
}

async function download(repo: string, rel: string, dest: string): Promise<void> {
  if (/^https?:\/\//.test(repo)) {
    const res = await fetch(`${repo.replace(/\/$/, '')}/${rel}`);
    if (!res.ok || !res.body) throw new OstError(`cannot fetch ${rel} from ${repo}: HTTP ${res.status}`);
    await pipeline(
      Readable.fromWeb(res.body as import('node:stream/web').ReadableStream),
      createWriteStream(dest),
    );
    return;
  }
  const src = path.join(repo.replace(/^file:\/\//, ''), rel);
  await linkOrCopy(src, dest);
}

/** Unpack an RPM's files into dir (rpm2cpio | cpio, through a file: no shell). */
export async function unpackRpm(rpmFile: string, dir: string): Promise<string> {
  await fs.mkdir(dir, { recursive: true });
  const cpio = `${rpmFile}.cpio`;
  await runArgv(['rpm2cpio', rpmFile], { stdoutFile: cpio });
  await runArgv(['cpio', '-idm', '--quiet', '--no-absolute-filenames', '-D', dir, '-F', cpio]);
  await fs.rm(cpio, { force: true });
  return path.join(dir, IMAGES_PREFIX.slice(1));
}

/** Fetch a layer from the cache repository into the build directory, as if it had been built here. */
export async function fetchLayer(
  repo: string,
  hit: CacheHit,
  paths: BuildPaths,
  layer: string,
  work: string,
): Promise<LayerManifest> {
  await removeTree(work);
  await fs.mkdir(work, { recursive: true });
  try {
    const rpm = path.join(work, path.basename(hit.pkg.location));
    await download(repo, hit.pkg.location, rpm);
    if (hit.pkg.sha256 && (await fileSha256(rpm)) !== hit.pkg.sha256) {
      throw new OstError(
        `${hit.pkg.location} from ${repo} does not match its checksum in the repository metadata`,
      );
    }
    const files = await unpackRpm(rpm, path.join(work, 'x'));
    await fs.rm(rpm, { force: true });
    const image = path.join(files, layerFileName(paths.distro, layer));
    const manifestFile = path.join(files, path.basename(paths.manifest(layer)));
    if (!(await exists(image)) || !(await exists(manifestFile))) {
      throw new OstError(`${hit.pkg.name} does not carry ${path.basename(image)} and its manifest`);
    }
    const manifest = JSON.parse(await fs.readFile(manifestFile, 'utf8')) as LayerManifest;
    for (const f of [paths.pkglist(layer), paths.pkgdiff(layer)]) {
      const src = path.join(files, path.basename(f));
      if (await exists(src)) await fs.copyFile(src, f);
    }
    const tmp = paths.tmpImage(layer);
    await fs.rename(image, tmp);
    await fs.chmod(tmp, 0o444);
    await dropManifest(paths, layer);
    await commitFile(tmp, paths.image(layer));
    await writeManifest(paths, manifest);
    return manifest;
  } finally {
    await removeTree(work);
  }
}

/** On a fresh worker, take the set's key pair from the newest base RPM in the cache (the key is in every base key). */
export async function adoptKeyPair(
  repo: string,
  pkgs: RepoPackage[],
  basePackage: string,
  paths: BuildPaths,
): Promise<boolean> {
  const base = pkgs.filter((p) => p.name === basePackage).sort((a, b) => (a.release < b.release ? 1 : -1))[0];
  if (!base) return false;
  const work = path.join(paths.workRoot(), 'adopt-key');
  await removeTree(work);
  await fs.mkdir(work, { recursive: true });
  try {
    const rpm = path.join(work, 'base.rpm');
    await download(repo, base.location, rpm);
    const files = await unpackRpm(rpm, path.join(work, 'x'));
    const priv = path.join(files, path.basename(paths.privateKey()));
    const pub = path.join(files, path.basename(paths.publicKey()));
    if (!(await exists(priv)) || !(await exists(pub))) return false;
    await fs.copyFile(pub, paths.publicKey());
    await fs.copyFile(priv, paths.privateKey());
    await fs.chmod(paths.privateKey(), 0o600);
    return true;
  } finally {
    await removeTree(work);
  }
}

export async function openCache(
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
