// Read a DNF repository's primary metadata (repomd.xml → primary.xml.gz) from a directory or a URL.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { XMLParser } from 'fast-xml-parser';
import { OstError } from '../../core/errors.js';
import { fetchWithUserinfo, redactUrl } from '../../core/redact-url.js';

export interface RepoPackage {
  name: string;
  /** Absent or 0 when the package has none. */
  epoch?: string;
  version: string;
  release: string;
  arch: string;
  /** Relative to the repository root. */
  location: string;
  sha256?: string;
  provides: { name: string; version?: string }[];
  requires: { name: string; version?: string }[];
}

const isUrl = (s: string) => /^https?:\/\//.test(s);

/** Bytes of a file in the repository (`signal` aborts a download). */
export async function readRepoFile(repo: string, rel: string, signal?: AbortSignal): Promise<Buffer> {
  if (isUrl(repo)) {
    const url = `${repo.replace(/\/$/, '')}/${rel}`;
    const res = await fetchWithUserinfo(url, { signal });
    if (!res.ok) throw new OstError(`cannot fetch ${redactUrl(url)}: HTTP ${res.status}`);
    return Buffer.from(await res.arrayBuffer());
  }
  return fs.readFile(path.join(repo.replace(/^file:\/\//, ''), rel));
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  removeNSPrefix: true,
  isArray: (name) => ['package', 'entry', 'data'].includes(name),
});

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' ? (v as Obj) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : v === undefined ? [] : [v]);
const str = (v: unknown): string | undefined =>
  typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined;

function entries(v: unknown): { name: string; version?: string }[] {
  return arr(obj(v).entry).map((e) => ({ name: str(obj(e)['@name']) ?? '', version: str(obj(e)['@ver']) }));
}

/** Parse primary.xml text. */
export function parsePrimary(xml: string): RepoPackage[] {
  const doc = obj(parser.parse(xml));
  return arr(obj(doc.metadata).package).map((p) => {
    const o = obj(p);
    const v = obj(o.version);
    const checksum = obj(o.checksum);
    const format = obj(o.format);
    return {
      name: str(o.name) ?? '',
      epoch: str(v['@epoch']),
      version: str(v['@ver']) ?? '',
      release: str(v['@rel']) ?? '',
      arch: str(o.arch) ?? '',
      location: str(obj(o.location)['@href']) ?? '',
      sha256: str(checksum['@type']) === 'sha256' ? str(checksum['#text']) : undefined,
      provides: entries(format.provides),
      requires: entries(format.requires),
    };
  });
}

/** Every package of a repository (dir, file:// or http(s):// URL). */
export async function readRepo(repo: string, signal?: AbortSignal): Promise<RepoPackage[]> {
  let repomd: string;
  try {
    repomd = (await readRepoFile(repo, 'repodata/repomd.xml', signal)).toString('utf8');
  } catch (err) {
    throw new OstError(`${repo} is not a readable DNF repository (no repodata/repomd.xml)`, undefined, err);
  }
  const data = arr(obj(obj(parser.parse(repomd)).repomd).data).map(obj);
  const primary = data.find((d) => d['@type'] === 'primary');
  const href = str(obj(primary?.location)['@href']);
  if (!href) throw new OstError(`${repo}: repomd.xml lists no primary metadata`);
  const raw = await readRepoFile(repo, href, signal);
  const xml = href.endsWith('.gz') ? gunzipSync(raw).toString('utf8') : raw.toString('utf8');
  return parsePrimary(xml);
}
