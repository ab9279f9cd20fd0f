// The `repos:` of an image-set layer, normalised: checked against the set's family (a Debian repository
// needs a suite and components, an RPM one is its URL), file: URLs resolved against the set file and
// required to be directories on this host, inside the set file's folder (confine.ts).
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { KeyPath } from '../../core/config-file.js';
import type { HostPaths } from './confine.js';
import type { PackageRepo } from './model.js';
import type { RawImageSet, RawLayer } from './schema.js';

/** A layer's `repos:`, checked for the set's family; file:// ones must be directories on this host. */
export function normaliseRepos(
  set: RawImageSet,
  l: RawLayer,
  i: number,
  paths: HostPaths,
  add: (p: KeyPath, m: string) => void,
): PackageRepo[] {
  if (l.debootstrap && l.repos.length > 0)
    add(
      ['layers', i, 'repos'],
      'a debootstrap base uses its mirror and suite; add more repositories in a derived layer',
    );
  return l.repos.map((r, j) => {
    const p: KeyPath = ['layers', i, 'repos', j];
    if (set.family === 'deb') {
      if (r.suite === undefined)
        add([...p, 'suite'], 'missing; a Debian repository needs a suite (./ when flat)');
      else if (r.suite === './' && r.components !== undefined)
        add([...p, 'components'], 'a flat repository (suite ./) has no components; remove them');
      else if (r.suite !== './' && !r.components?.length)
        add([...p, 'components'], 'missing; name the archive components, such as [main]');
    } else {
      for (const k of ['suite', 'components'] as const)
        if (r[k] !== undefined)
          add([...p, k], `${k}: is for Debian repositories; an RPM repository is its url`);
    }
    let url = r.url;
    if (url.startsWith('file:')) {
      // file:///absolute/dir, or file:dir relative to the set file (as its other files)
      const dir = url.startsWith('file://') ? fileURLToPath(url) : decodeURIComponent(url.slice(5));
      const { abs, ok } = paths.inside([...p, 'url'], dir, 'repository folder');
      if (ok && (!existsSync(abs) || !statSync(abs).isDirectory()))
        add([...p, 'url'], `${abs} is not a directory on this host; a file:// repository is copied from it`);
      url = pathToFileURL(abs).href;
    }
    return {
      name: r.name,
      kind: set.family,
      url,
      suite: r.suite,
      components: r.components,
      trusted: r.trusted,
      // a base layer's repositories are whatever its installer or image configured: never written
      watchOnly: r.watchOnly || l.parent === undefined,
    };
  });
}
