// What a custom layer needs to know of an installed image, from the files its RPM installs next to the
// qcow2: the manifest (`<image>.json`: build id, family) and the package list (`<image>-pkglist.txt`).
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { Family } from '../../tools/guest-steps.js';
import type { LayerManifest } from '../build-dir.js';
import { parsePkglist } from '../pkglist.js';
import type { CustomBase } from './types.js';

/** Debian-like distro names; everything else ost builds is an EL/Fedora (rpm) guest. */
export function familyOfName(name: string): Family {
  return /(^|[/-])(debian|ubuntu)[0-9.]*/.test(name) ? 'deb' : 'rpm';
}

async function statId(file: string): Promise<string> {
  const st = await fs.stat(file);
  return `${await fs.realpath(file)}:${st.size}:${Math.trunc(st.mtimeMs)}`;
}

/**
 * The custom-layer view of an installed image. `chain` is the qcow2 chain, top first; `pkg` the package
 * that installed it. The build id is the manifest's (unique per build), else the package's
 * name-version-release, else the chain files' identity (path, size, mtime).
 */
export async function customBaseOf(
  ref: string,
  chain: readonly string[],
  pkg?: { name: string; version: string; release: string },
): Promise<CustomBase> {
  const file = chain[0] as string;
  const stem = file.replace(/\.qcow2$/, '');
  const manifest = await fs
    .readFile(`${stem}.json`, 'utf8')
    .then((t) => JSON.parse(t) as Partial<LayerManifest>)
    .catch(() => undefined);
  const list = await fs.readFile(`${stem}-pkglist.txt`, 'utf8').catch(() => undefined);
  const buildId =
    manifest?.buildId ??
    (pkg ? `${pkg.name}-${pkg.version}-${pkg.release}` : (await Promise.all(chain.map(statId))).join(' '));
  return {
    ref,
    file,
    family: manifest?.family ?? familyOfName(manifest?.distro ?? path.basename(file)),
    buildId,
    packages: list === undefined ? undefined : parsePkglist(list),
  };
}
