// A suite's deployed layers as one RPM, `ost-images-<distro>-<suite>-deployed` (issue 29): each VM's
// deployed qcow2 (backed by its image by file name), its extra disks and the manifest `ost up --deployed`
// reads, pinned by exact `Requires: ost-images-<distro>-<layer> = V-R` to every layer package it sits on —
// a deployed layer is an overlay, meaningful only on the very build it was written on. The launcher makes
// the layers and their manifest; the CLI hands them here as a DeployedPackageInput (the builder and the
// launcher never import each other).
import * as path from 'node:path';
import type { LayerManifest } from '../build-dir.js';
import { type ImageSet, layerFileName } from '../plan/model.js';
import { type PackedRpm, type PackRun, packageName, packBuild, RPM_VERSION } from './rpm-file.js';
import type { RpmFile, RpmSpec } from './spec.js';

/** What the CLI knows of one suite's deployed layers in the build dir (from their manifest). */
export interface DeployedPackageInput {
  suite: string;
  /** The deployed layers' content key. */
  key: string;
  builtAt: string;
  /** The manifest, by file name in the build dir. */
  manifest: string;
  /** Per VM: its deployed root layer and extra disks (file names in the build dir), the layer it sits on and that layer's build. */
  vms: { vm: string; file: string; disks: string[]; layer: string; layerBuild: string }[];
  /** Each network's /24 (`a.b.c`), for the description. */
  networks: { name: string; prefix: string }[];
}

export const deployedPackageName = (distro: string, suite: string) =>
  `ost-images-${distro}-${suite}-deployed`;
export const deployedProvide = (distro: string, suite: string) => `ost-images-deployed(${distro}-${suite})`;

/**
 * Why a suite's deployed layers cannot be packed with this set (one of them sits on a layer the set does not
 * have, or on another build of it: they were made on an earlier night's images), or undefined.
 */
export function deployedMismatch(
  set: ImageSet,
  input: DeployedPackageInput,
  manifests: ReadonlyMap<string, LayerManifest>,
): string | undefined {
  for (const v of input.vms) {
    const m = manifests.get(v.layer);
    if (!m) return `${v.vm} sits on layer ${v.layer}, which ${set.file} does not have`;
    if (m.buildId !== v.layerBuild)
      return `${v.vm} was deployed on another build of ${v.layer} (build ${v.layerBuild}; the set's is ${m.buildId})`;
  }
  return undefined;
}

/** The exact pins of a deployed package: each layer its VMs sit on, at the release it is packed as. */
export function deployedRequires(
  distro: string,
  input: DeployedPackageInput,
  releases: ReadonlyMap<string, string>,
): string[] {
  const layers = [...new Set(input.vms.map((v) => v.layer))].sort();
  return layers.map((l) => `${packageName(distro, l)} = ${RPM_VERSION}-${releases.get(l) as string}`);
}

/** The spec of a suite's deployed package. */
export function deployedSpec(
  run: Pick<PackRun, 'set' | 'paths' | 'payload'>,
  input: DeployedPackageInput,
  release: string,
  requires: string[],
): RpmSpec {
  const { set, paths } = run;
  const file = (name: string, mode: string): RpmFile => ({ src: path.join(paths.out, name), name, mode });
  return {
    name: deployedPackageName(set.distro, input.suite),
    version: RPM_VERSION,
    release,
    summary: `OST suite ${input.suite} deployed on the ${set.distro} images`,
    description: [
      `The state suite ${input.suite} is in after its deploy, one qcow2 layer per VM: ost up ${input.suite} --deployed starts from it and runs no deploy script.`,
      ...input.vms.map(
        (v) =>
          `  ${v.vm}: ${v.file} on ${layerFileName(set.distro, v.layer)}${v.disks.length ? `, disks ${v.disks.join(', ')}` : ''}`,
      ),
      `Networks as deployed: ${input.networks.map((n) => `${n.name} ${n.prefix}.0/24`).join(', ')}.`,
      `Key ${input.key}.`,
    ].join('\n'),
    provides: [`${deployedProvide(set.distro, input.suite)} = ${input.key}`],
    requires,
    payload: run.payload,
    files: [
      ...input.vms.flatMap((v) => [file(v.file, '0444'), ...v.disks.map((d) => file(d, '0444'))]),
      file(input.manifest, '0644'),
    ],
  };
}

/** One suite's deployed RPM: reused when this very build is packed with this payload already, else built. */
export async function packDeployed(
  run: PackRun,
  input: DeployedPackageInput,
  releases: ReadonlyMap<string, string>,
): Promise<PackedRpm> {
  const name = deployedPackageName(run.set.distro, input.suite);
  const buildId = `${input.key.slice(0, 16)}-${input.builtAt}`;
  const requires = deployedRequires(run.set.distro, input, releases);
  const target = { name, builtAt: input.builtAt, buildId, key: input.key };
  const packed = await packBuild(run, target, (release) => deployedSpec(run, input, release, requires));
  return {
    name,
    version: RPM_VERSION,
    ...packed,
    layer: `${input.suite}-deployed`,
    key: input.key,
    buildId,
    squashed: false,
    deployed: {
      suite: input.suite,
      pins: requires,
      roots: input.vms.map((v) => ({ file: v.file, layer: v.layer })),
    },
  };
}
