// Custom package repositories (ost up --custom-repo, build-images --with-repo): a folder of .deb/.rpm files,
// an existing flat apt / DNF repository folder, or an http(s) URL of one. Folders are copied into a staging
// folder first and everything is read from the copy — what the key hashes is exactly what the guest gets, and
// nothing is ever written into the user's folder. The package set (name, version, arch, sha256) is what
// identifies a repository, never its URL or mtimes.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { OstError } from '../../core/errors.js';
import { atomicWriteFile, fileSha256 } from '../../core/fsutil.js';
import { redactUrl, redactUrlsIn } from '../../core/redact-url.js';
import { createrepoArgv } from '../../tools/createrepo.js';
import { debFieldsArgv, parseStanza, parseStanzas } from '../../tools/dpkg-deb.js';
import type { Family } from '../../tools/guest-steps.js';
import { parseRpmFileQuery, rpmQueryFilesArgv } from '../../tools/rpm.js';
import { runArgv } from '../../tools/run-tool.js';
import { readRepo, readRepoFile } from '../repo/metadata.js';

/** One package a custom repository offers. */
export interface CustomPackage {
  name: string;
  version: string;
  arch: string;
  sha256: string;
}

/** A custom repository, staged. */
export interface CustomRepo {
  /** `custom1`, `custom2`, ... in the order given. */
  name: string;
  /** As the user gave it (folder or URL), a URL without its credentials: what layer.json, manifests and messages record. */
  source: string;
  /** The staged copy with its metadata (folders), copied into the guest. */
  stagedDir?: string;
  /** http(s) URL the guest reads itself (with its credentials, if it has any). */
  url?: string;
  packages: CustomPackage[];
}

const EXT: Record<Family, string> = { deb: '.deb', rpm: '.rpm' };
const OTHER: Record<Family, Family> = { deb: 'rpm', rpm: 'deb' };
const URL_TIMEOUT_MS = 60_000;

/** Package files under a folder (subfolders too, as a repository keeps them), sorted. */
async function packageFiles(dir: string, ext: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith(ext))
    .map((e) => path.join(e.parentPath, e.name))
    .sort();
}

async function stageFolder(
  repo: CustomRepo,
  dir: string,
  family: Family,
  work: string,
  signal?: AbortSignal,
): Promise<void> {
  const st = await fs.stat(dir).catch(() => undefined);
  if (!st?.isDirectory())
    throw new OstError(
      `--custom-repo ${repo.source}: no such folder`,
      'give a folder of package files, a repository folder, or an http(s) URL',
    );
  const files = await packageFiles(dir, EXT[family]);
  if (files.length === 0) {
    const other = (await packageFiles(dir, EXT[OTHER[family]])).length;
    throw new OstError(
      `--custom-repo ${repo.source}: no ${EXT[family]} files in it${other ? ` (it has ${other} ${EXT[OTHER[family]]} files, for ${OTHER[family]}-based images)` : ''}`,
      `the images are ${family}-based: put the ${EXT[family]} packages to test in the folder`,
    );
  }
  const staged = path.join(work, repo.name);
  await fs.mkdir(staged, { recursive: true });
  const seen = new Map<string, string>();
  const copies: string[] = [];
  for (const f of files) {
    const base = path.basename(f);
    const clash = seen.get(base);
    if (clash)
      throw new OstError(
        `--custom-repo ${repo.source}: two packages named ${base} (${clash} and ${f})`,
        'keep one of them',
      );
    seen.set(base, f);
    const copy = path.join(staged, base);
    await fs.copyFile(f, copy);
    copies.push(copy);
  }
  repo.stagedDir = staged;
  if (family === 'deb') {
    repo.packages.push(...(await writeAptFlatIndex(staged, signal)));
    return;
  }
  const ids = parseRpmFileQuery((await runArgv(rpmQueryFilesArgv(copies), { signal })).stdout);
  if (ids.length !== copies.length)
    throw new OstError(`--custom-repo ${repo.source}: rpm could not read every package in it`);
  for (const [i, id] of ids.entries())
    repo.packages.push({ ...id, sha256: await fileSha256(copies[i] as string) });
  await runArgv(createrepoArgv({ repo: staged, outputDir: staged }), { signal });
}

/**
 * Make `dir` a flat apt repository (`deb [trusted=yes] file:DIR ./`): its Packages index, from the control
 * fields of every .deb directly in it, with their sizes and checksums. Returns the packages.
 */
export async function writeAptFlatIndex(dir: string, signal?: AbortSignal): Promise<CustomPackage[]> {
  const debs = (await fs.readdir(dir)).filter((f) => f.endsWith('.deb')).sort();
  const stanzas: string[] = [];
  const packages: CustomPackage[] = [];
  for (const deb of debs) {
    const file = path.join(dir, deb);
    const control = (await runArgv(debFieldsArgv(file), { signal })).stdout.trimEnd();
    const sha256 = await fileSha256(file);
    packages.push(packageOf(parseStanza(control), sha256));
    const size = (await fs.stat(file)).size;
    stanzas.push(`${control}\nFilename: ./${deb}\nSize: ${size}\nSHA256: ${sha256}\n`);
  }
  await atomicWriteFile(path.join(dir, 'Packages'), stanzas.join('\n'));
  return packages;
}

/** Packages of a flat apt repository (`URL/Packages` or `Packages.gz`), from its index. */
export function parsePackagesIndex(text: string): CustomPackage[] {
  return parseStanzas(text).map((f) => packageOf(f, f.get('SHA256') ?? ''));
}

/** A package from its deb822 fields (a control file or a Packages entry). */
function packageOf(fields: Map<string, string>, sha256: string): CustomPackage {
  return {
    name: fields.get('Package') ?? '',
    version: fields.get('Version') ?? '',
    arch: fields.get('Architecture') ?? '',
    sha256,
  };
}

async function readUrlRepo(repo: CustomRepo, url: string, family: Family, signal?: AbortSignal) {
  const base = url.replace(/\/+$/, '');
  repo.url = base;
  const timeout = AbortSignal.timeout(URL_TIMEOUT_MS);
  const within = signal ? AbortSignal.any([signal, timeout]) : timeout;
  try {
    if (family === 'deb') {
      const text = await readRepoFile(base, 'Packages', within)
        .then((b) => b.toString('utf8'))
        .catch(async () => gunzipSync(await readRepoFile(base, 'Packages.gz', within)).toString('utf8'));
      repo.packages.push(...parsePackagesIndex(text));
      return;
    }
    for (const p of await readRepo(base, within))
      repo.packages.push({
        name: p.name,
        version: `${p.epoch && p.epoch !== '0' ? `${p.epoch}:` : ''}${p.version}-${p.release}`,
        arch: p.arch,
        sha256: p.sha256 ?? '',
      });
  } catch (err) {
    if (signal?.aborted) throw err;
    throw new OstError(
      `--custom-repo ${repo.source}: cannot read its index: ${redactUrlsIn(err instanceof Error ? err.message : String(err))}`,
      family === 'deb'
        ? 'an apt URL must be a flat repository (URL/Packages or URL/Packages.gz), or give a folder of .deb files'
        : 'a DNF URL must have repodata/repomd.xml, or give a folder of .rpm files',
    );
  }
}

/**
 * Stage each custom repository under `work` (folders copied, metadata made) and list its packages.
 * A repository with no package at all is refused here, before anything is built.
 */
export async function stageCustomRepos(
  sources: readonly string[],
  family: Family,
  work: string,
  signal?: AbortSignal,
): Promise<CustomRepo[]> {
  const repos: CustomRepo[] = [];
  for (const [i, source] of sources.entries()) {
    const repo: CustomRepo = { name: `custom${i + 1}`, source: redactUrl(source), packages: [] };
    if (/^https?:\/\//.test(source)) await readUrlRepo(repo, source, family, signal);
    else {
      const dir = source.startsWith('file:') ? fileURLToPath(source) : path.resolve(source);
      await stageFolder(repo, dir, family, work, signal);
    }
    if (repo.packages.length === 0)
      throw new OstError(
        `--custom-repo ${source}: the repository lists no packages`,
        'build the packages to test into it first',
      );
    // a stable order for the key: by name, then checksum
    repo.packages.sort((a, b) => `${a.name} ${a.sha256}`.localeCompare(`${b.name} ${b.sha256}`));
    repos.push(repo);
  }
  return repos;
}
