// Tiny layer RPMs made with ost's own spec renderer and the real rpmbuild, for publish tests: the same
// names, provides and exact-version requires as ost's layer packages, a few KB of payload.
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { PackedRpm } from '../../src/builder/rpm/rpm-file.js';
import { renderSpec } from '../../src/builder/rpm/spec.js';
import { run } from '../../src/core/exec.js';
import { rpmbuildArgv } from '../../src/tools/rpmbuild.js';

export interface TinyLayer {
  distro: string;
  layer: string;
  release: string;
  buildId: string;
  /** `ost-images-<distro>-<parent> = 1-<release>`, as a leaf requires its base. */
  requires?: string;
  payload?: string;
  /** Bytes of payload (repeated text). */
  size?: number;
  /** Package a file of ours instead of the text file (named under the images prefix). */
  file?: { src: string; name: string };
  /** The package name's layer part (default: layer): `engine-installed-squashed` for a squashed package. */
  packageLayer?: string;
}

/** Build one layer RPM under `dir` (its file and what pack would have reported about it). */
export async function tinyLayerRpm(dir: string, t: TinyLayer): Promise<PackedRpm> {
  const name = `ost-images-${t.distro}-${t.packageLayer ?? t.layer}`;
  const payload = t.payload ?? 'w1T0.zstdio';
  const top = path.join(dir, `top-${t.packageLayer ?? t.layer}-${t.release}-${payload}`);
  const src = path.join(dir, `${t.distro}-${t.layer}-${t.release}-${t.buildId}.txt`);
  const line = `${t.layer} ${t.buildId}\n`;
  writeFileSync(src, line.repeat(Math.max(1, Math.ceil((t.size ?? 0) / line.length))));
  const spec = path.join(dir, `${name}-${t.release}.spec`);
  writeFileSync(
    spec,
    renderSpec({
      name,
      version: '1',
      release: t.release,
      summary: 's',
      description: 'd',
      provides: [
        `ost-images-layer(${t.distro}-${t.layer}) = k${t.layer}`,
        `ost-images-build(${t.distro}-${t.layer}) = ${t.buildId}`,
      ],
      requires: t.requires ? [t.requires] : [],
      payload,
      files: [
        t.file ? { ...t.file, mode: '0444' } : { src, name: `${t.distro}-${t.layer}.txt`, mode: '0644' },
      ],
    }),
  );
  await run('rpmbuild', rpmbuildArgv(spec, top).slice(1));
  return {
    name,
    version: '1',
    release: t.release,
    file: path.join(top, 'RPMS/noarch', `${name}-1-${t.release}.noarch.rpm`),
    layer: t.layer,
    key: `k${t.layer}`,
    buildId: t.buildId,
    squashed: false,
    requires: t.requires,
    built: true,
    bytes: 0,
  };
}
