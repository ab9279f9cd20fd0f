// Which custom packages a layer really has: those of the repos installed at the repos' versions (what
// ost up's custom layers and build-images --with-repo record, and what the supplied-nothing check reads).
import type { Package } from '../pkglist.js';

/** A custom package as a layer runs it. */
export interface AppliedPackage extends Package {
  /** Which repo supplied it (`custom1`). */
  repo: string;
}

/** The custom packages of `repos` that `after` has at the repos' versions (an `all` package matches any arch). */
export function appliedPackages(
  repos: readonly { name: string; packages: readonly { name: string; version: string; arch: string }[] }[],
  after: readonly Package[],
): AppliedPackage[] {
  const out: AppliedPackage[] = [];
  const seen = new Set<string>();
  for (const r of repos)
    for (const p of r.packages) {
      const hit = after.find(
        (a) => a.name === p.name && a.version === p.version && (a.arch === p.arch || p.arch === 'all'),
      );
      const id = `${p.name}:${hit?.arch}`;
      if (hit && !seen.has(id)) {
        seen.add(id);
        out.push({ ...hit, repo: r.name });
      }
    }
  return out;
}
