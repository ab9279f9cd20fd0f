// Upstream state: what the package repositories a layer installs from look like right now, as a few small
// reads (a Debian suite's InRelease/Release, an RPM repo's repomd.xml). A layer's key covers it, so a night
// whose mirrors changed rebuilds the layers that install packages, and a night without changes builds nothing.
import { readFile, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { OstError } from '../core/errors.js';
import { type Reporter, step } from '../core/events.js';
import { sha256 } from '../core/fsutil.js';
import { fetchWithUserinfo, redactUrl, redactUrlsIn } from '../core/redact-url.js';
import type { ImageSet, Layer, PackageRepo } from './plan/model.js';
import { chainOf } from './plan/model.js';

/** The state of one repository, as read: enough to tell two snapshots apart and to say when each was made. */
export interface UpstreamState {
  /** The repository's short name (the suite of a debootstrap mirror). */
  name: string;
  /** The repository, as a sources line would name it: `deb URL SUITE` or `rpm URL` (URL without credentials). */
  source: string;
  /** The index file that was read (InRelease, Release or repodata/repomd.xml), without credentials. */
  index: string;
  sha256: string;
  /**
   * When the repository was published (ISO 8601): a Release file's Date:, the newest repomd timestamp, else
   * the index's Last-Modified (http) or mtime (file).
   */
  date?: string;
  /** repomd.xml's <revision>, when it has one. */
  revision?: string;
}

/** Every repository a layer's guest uses while the layer is built: its chain's, base first, in order. */
export function reposOf(set: ImageSet, layer: Layer): PackageRepo[] {
  const out: PackageRepo[] = [];
  for (const l of chainOf(set, layer.name)) {
    if (l.base?.kind === 'debootstrap') {
      const b = l.base;
      out.push({
        name: b.suite,
        kind: 'deb',
        url: b.mirror,
        suite: b.suite,
        components: b.components,
        trusted: false,
        watchOnly: true,
      });
    }
    out.push(...l.repos);
  }
  return out;
}

/**
 * A repository as a one-line source, the same way whatever the file said; its URL without credentials
 * (`user:pass@`), as manifests, RPM descriptions and messages record it.
 */
export function sourceLine(r: PackageRepo): string {
  const url = redactUrl(r.url);
  return r.kind === 'deb' ? `deb ${url} ${r.suite}` : `rpm ${url}`;
}

const trimSlash = (u: string) => u.replace(/\/+$/, '');

/** The index files to try, best first: a suite's InRelease then Release (flat repos: `./`, then Packages), or repomd.xml. */
export function indexUrls(r: PackageRepo): string[] {
  if (r.kind === 'rpm') return [`${trimSlash(r.url)}/repodata/repomd.xml`];
  const suite = r.suite ?? '';
  const dir = suite.endsWith('/')
    ? `${trimSlash(r.url)}/${suite === './' ? '' : suite}`
    : `${trimSlash(r.url)}/dists/${suite}/`;
  // a flat repository may come without a Release file: then its package index stands for its state
  const flat = suite.endsWith('/') ? ['Packages.xz', 'Packages.gz', 'Packages'].map((f) => `${dir}${f}`) : [];
  return [`${dir}InRelease`, `${dir}Release`, ...flat];
}

/** The Date: of a Debian Release/InRelease file, as ISO 8601 (undefined when it has none). */
export function releaseDate(text: string): string | undefined {
  const m = /^Date:\s*(.+)$/m.exec(text);
  if (!m?.[1]) return undefined;
  const d = new Date(m[1].trim());
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

/** repomd.xml's revision and its newest <timestamp> (ISO 8601). */
export function repomdState(text: string): { revision?: string; date?: string } {
  const revision = /<revision>\s*([^<\s]+)\s*<\/revision>/.exec(text)?.[1];
  const stamps = [...text.matchAll(/<timestamp>\s*([0-9]+)\s*<\/timestamp>/g)].map((m) => Number(m[1]));
  const newest = stamps.length > 0 ? Math.max(...stamps) : undefined;
  return {
    revision,
    date: newest === undefined ? undefined : new Date(newest * 1000).toISOString(),
  };
}

/**
 * Read one index: file:// from disk, http(s) with a timeout; with when it last changed (mtime, Last-Modified)
 * for indexes that carry no date. Undefined when it does not exist (404, ENOENT).
 */
async function readIndex(
  url: string,
  signal?: AbortSignal,
): Promise<{ body: Buffer; modified?: string } | undefined> {
  if (url.startsWith('file:')) {
    try {
      const file = fileURLToPath(url);
      return { body: await readFile(file), modified: (await stat(file)).mtime.toISOString() };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }
  const timeout = AbortSignal.timeout(30_000);
  const res = await fetchWithUserinfo(url, { signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
  if (res.status === 404 || res.status === 410) return undefined;
  // fetchState wraps it with the repository and what to do
  if (!res.ok) throw new OstError(`HTTP ${res.status} ${res.statusText}`);
  const lm = res.headers.get('last-modified');
  const modified = lm && !Number.isNaN(new Date(lm).getTime()) ? new Date(lm).toISOString() : undefined;
  return { body: Buffer.from(await res.arrayBuffer()), modified };
}

/** The current state of one repository (a few KB to a few hundred KB read; nothing is kept). */
export async function fetchState(r: PackageRepo, signal?: AbortSignal): Promise<UpstreamState> {
  const tried: string[] = [];
  for (const url of indexUrls(r)) {
    let read: Awaited<ReturnType<typeof readIndex>>;
    try {
      read = await readIndex(url, signal);
    } catch (err) {
      if (signal?.aborted) throw err;
      throw new OstError(
        `cannot read the state of ${sourceLine(r)}: ${redactUrl(url)}: ${redactUrlsIn((err as Error).message)}`,
        'check that the repository is reachable from this host, or build with --offline to keep the state each layer was last built from',
        err,
      );
    }
    if (!read) {
      tried.push(redactUrl(url));
      continue;
    }
    const text = read.body.toString('utf8');
    const own = r.kind === 'rpm' ? repomdState(text) : { date: releaseDate(text) };
    return {
      name: r.name,
      source: sourceLine(r),
      index: redactUrl(url),
      sha256: sha256(read.body),
      ...own,
      date: own.date ?? read.modified,
    };
  }
  throw new OstError(
    `${sourceLine(r)} has no index: ${tried.join(', ')} not found`,
    r.kind === 'deb'
      ? 'check the url and suite (a flat repository has suite: ./)'
      : 'check the url: it is the directory that holds repodata/',
  );
}

/** Whether two recorded states name the same snapshots. */
export function sameStates(a: UpstreamState[] | undefined, b: UpstreamState[]): boolean {
  if (!a || a.length !== b.length) return false;
  return a.every((s, i) => s.source === b[i]?.source && s.sha256 === b[i]?.sha256);
}

const day = (iso: string | undefined) => (iso ? iso.slice(0, 10) : 'undated');

/** Why a layer rebuilds for upstream reasons: "bookworm-security InRelease changed 2026-11-27 → 2026-11-28". */
export function describeChange(before: UpstreamState[] | undefined, after: UpstreamState[]): string {
  if (!before) return 'no recorded upstream state';
  const parts: string[] = [];
  for (const s of after) {
    const old = before.find((b) => b.source === s.source);
    const file = s.index.split('/').pop();
    if (!old) parts.push(`${s.name} added`);
    else if (old.sha256 !== s.sha256)
      parts.push(`${s.name} ${file} changed ${day(old.date)} → ${day(s.date)}`);
  }
  for (const b of before) if (!after.some((s) => s.source === b.source)) parts.push(`${b.name} removed`);
  return parts.length > 0 ? parts.join('; ') : 'upstream state changed';
}

/**
 * The state of the repositories of every refresh: upstream layer: read now (each repository once, all at
 * once), or with `offline` as `recorded` says the layer's last build saw it (its manifest; none recorded:
 * the state is unknown, and the next online build replaces it). With `unreadable` (a dry run), a repository
 * that cannot be read fails nothing: each layer that uses one is left out, its reason in `unreadable`.
 */
export async function upstreamStates(
  set: ImageSet,
  recorded: (layer: string) => Promise<UpstreamState[] | undefined>,
  offline: boolean,
  reporter: Reporter,
  signal?: AbortSignal,
  unreadable?: Map<string, string>,
): Promise<Map<string, UpstreamState[]>> {
  const out = new Map<string, UpstreamState[]>();
  const layers = set.layers.filter((l) => l.refresh === 'upstream');
  if (offline) {
    for (const l of layers) {
      const sources = reposOf(set, l).map(sourceLine);
      const last = await recorded(l.name);
      if (last && last.map((u) => u.source).join('\n') === sources.join('\n')) out.set(l.name, last);
    }
    return out;
  }
  const unique = new Map<string, PackageRepo>();
  for (const l of layers) for (const r of reposOf(set, l)) unique.set(sourceLine(r), r);
  if (unique.size === 0) return out;
  const read = async (r: PackageRepo): Promise<UpstreamState | Error> => {
    if (!unreadable) return fetchState(r, signal);
    return fetchState(r, signal).catch((err: unknown) => {
      if (signal?.aborted) throw err;
      return err instanceof Error ? err : new Error(String(err));
    });
  };
  const states = await step(
    reporter,
    'upstream',
    `read the state of ${unique.size} package ${unique.size === 1 ? 'repository' : 'repositories'}`,
    async () =>
      new Map(await Promise.all([...unique].map(async ([src, r]) => [src, await read(r)] as const))),
  );
  for (const l of layers) {
    const mine = reposOf(set, l).map((r) => states.get(sourceLine(r)));
    const failed = mine.find((st) => st instanceof Error);
    if (failed) unreadable?.set(l.name, (failed as Error).message);
    else out.set(l.name, mine as UpstreamState[]);
  }
  return out;
}
