// Package lists of a layer (dpkg or rpm, by the guest's family) and the diff against its parent.
import type { Family } from '../tools/guest-steps.js';
import type { GuestfishSession } from '../tools/guestfish-session.js';

export interface Package {
  name: string;
  version: string;
  arch: string;
}

/** Parse /var/lib/dpkg/status: installed packages only ("Status: install ok installed"). */
export function parseDpkgStatus(text: string): Package[] {
  const out: Package[] = [];
  for (const para of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const line of para.split('\n')) {
      const m = /^([A-Za-z0-9-]+):\s?(.*)$/.exec(line);
      if (m) fields.set((m[1] as string).toLowerCase(), m[2] as string);
    }
    const name = fields.get('package');
    const status = fields.get('status') ?? '';
    if (!name || !/\binstalled$/.test(status) || /config-files/.test(status)) continue;
    out.push({ name, version: fields.get('version') ?? '', arch: fields.get('architecture') ?? '' });
  }
  return sortPackages(out);
}

/** The rpm query whose output parseRpmList reads. */
export const RPM_QUERY_FORMAT = '%{NAME}\\t%{EPOCH}:%{VERSION}-%{RELEASE}\\t%{ARCH}\\n';

/** Parse `rpm -qa --qf '%{NAME}\t%{EPOCH}:%{VERSION}-%{RELEASE}\t%{ARCH}\n'`. */
export function parseRpmList(text: string): Package[] {
  const out: Package[] = [];
  for (const line of text.split('\n')) {
    const [name, evr, arch] = line.split('\t');
    if (!name || !evr || name === 'gpg-pubkey') continue;
    out.push({ name, version: evr.replace(/^\(none\):/, ''), arch: arch ?? '' });
  }
  return sortPackages(out);
}

/**
 * How a guest's installed packages are listed, per family: a shell command run in the guest (by the image
 * builder's read-only appliance and by a layer's session) and the parser of what it prints.
 */
export const PACKAGE_QUERY: Record<Family, { command: string; parse: (text: string) => Package[] }> = {
  deb: { command: 'cat /var/lib/dpkg/status', parse: parseDpkgStatus },
  rpm: { command: `rpm -qa --qf '${RPM_QUERY_FORMAT}'`, parse: parseRpmList },
};

/** The installed packages of the guest a session has mounted (a derived or custom layer's build). */
export async function listPackages(session: GuestfishSession, family: Family): Promise<Package[]> {
  const q = PACKAGE_QUERY[family];
  return q.parse((await session.sh(q.command)).join('\n'));
}

/** Sort by name, then arch (the order of every package list ost writes). */
export function sortPackages(p: Package[]): Package[] {
  return p.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.arch < b.arch ? -1 : 1));
}

/** One line per package: `name version arch`. */
export function formatPkglist(p: Package[]): string {
  return p.map((x) => `${x.name} ${x.version} ${x.arch}`).join('\n') + (p.length ? '\n' : '');
}

/** Parse what formatPkglist wrote. */
export function parsePkglist(text: string): Package[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [name = '', version = '', arch = ''] = l.split(' ');
      return { name, version, arch };
    });
}

export interface PkgDiff {
  added: Package[];
  removed: Package[];
  changed: { name: string; arch: string; from: string; to: string }[];
}

/** What a layer changed relative to its parent. */
export function diffPackages(parent: Package[], child: Package[]): PkgDiff {
  const id = (p: Package) => `${p.name}:${p.arch}`;
  const before = new Map(parent.map((p) => [id(p), p]));
  const after = new Map(child.map((p) => [id(p), p]));
  const diff: PkgDiff = { added: [], removed: [], changed: [] };
  for (const [k, p] of after) {
    const old = before.get(k);
    if (!old) diff.added.push(p);
    else if (old.version !== p.version)
      diff.changed.push({ name: p.name, arch: p.arch, from: old.version, to: p.version });
  }
  for (const [k, p] of before) if (!after.has(k)) diff.removed.push(p);
  // the same package under another arch (amd64 -> all) is an upgrade, not a removal and an addition
  for (const r of [...diff.removed]) {
    const a = diff.added.find((x) => x.name === r.name);
    if (!a) continue;
    diff.removed.splice(diff.removed.indexOf(r), 1);
    diff.added.splice(diff.added.indexOf(a), 1);
    diff.changed.push({
      name: a.name,
      arch: a.arch === r.arch ? a.arch : `${r.arch}->${a.arch}`,
      from: r.version,
      to: a.version,
    });
  }
  return diff;
}

export function isEmptyDiff(d: PkgDiff): boolean {
  return d.added.length === 0 && d.removed.length === 0 && d.changed.length === 0;
}

/** `+ name version arch`, `- name version arch`, `~ name from -> to arch`. */
export function formatDiff(d: PkgDiff): string {
  const lines = [
    ...d.added.map((p) => `+ ${p.name} ${p.version} ${p.arch}`),
    ...d.removed.map((p) => `- ${p.name} ${p.version} ${p.arch}`),
    ...d.changed.map((c) => `~ ${c.name} ${c.from} -> ${c.to} ${c.arch}`),
  ];
  return lines.join('\n') + (lines.length ? '\n' : '');
}
