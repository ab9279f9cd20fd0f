// Deployed images (issue 29): a suite's deployed state as one qcow2 layer per VM, each backed by that VM's
// image by relative name (`<distro>-<suite>-<vm>-deployed.qcow2`), and a manifest beside them
// (`<distro>-<suite>-deployed.json`) that says what they were made from — the images' layer keys, the
// suite's definition, the deploy scripts' bytes, ost's version — and the subnets the env had (the guests
// keep the addresses of their deploy). `ost build-images --deployed` makes them; `ost up --deployed` starts
// a suite's VMs from them when what they were made from is what the suite has now, else says which input
// differs. Both sides work the inputs out here, the same way.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { OstError } from '../../core/errors.js';
import { fileSha256, sha256, stableStringify } from '../../core/fsutil.js';
import type { Environment } from '../env/model.js';
import { imageKey, imageManifestFile, type ResolvedImage, readImageManifest } from './resolve.js';

/** Increase when what a deployed layer holds, or how it is made, changes for the same inputs. */
export const DEPLOYED_FORMAT = 2;

/** What a suite's deployed layers are made from: the key covers all of it. */
export interface DeployedInputs {
  format: number;
  /** ost's version (package.json): the deploy is ost's own doing. */
  ost: string;
  /** The suite's definition: networks, VMs, their images, sizes, NICs, disks and deploy scripts by name. */
  suite: unknown;
  /**
   * Per VM: its image (`<distro>-<layer>`), that layer's content key and the very build of it (its manifest's):
   * a deployed layer is a qcow2 overlay, meaningful only on the bytes it was written on — another build of
   * the same key is another file system.
   */
  images: Record<string, { ref: string; key: string; build: string }>;
  /** Per VM: its deploy scripts as the suite names them, and the sha256 of their bytes. */
  scripts: Record<string, { script: string; sha256: string }[]>;
  /** The suite's host deploy scripts (run with the env's env.sh), likewise. */
  hostScripts: { script: string; sha256: string }[];
}

/** One VM's deployed layer. */
export interface DeployedVm {
  name: string;
  /** File name in the manifest's folder. */
  file: string;
  /** The image it is backed by (file name in the same folder) and its ref. */
  image: { ref: string; file: string };
  /** Its extra disks as the deploy left them (qcow2, standalone), by the suite's disk name. */
  disks?: { name: string; file: string }[];
  /** Its NICs as the deploy had them: the guest keeps their MACs, addresses and names. */
  nics?: { network: string; mac: string; hostname: string; ipv4?: string; ipv6?: string }[];
}

/** `<distro>-<suite>-deployed.json`. */
export interface DeployedManifest {
  version: 1;
  suite: string;
  distro: string;
  key: string;
  inputs: DeployedInputs;
  builtAt: string;
  /** How long the deploy took (boot, deploy scripts, shutdown), ms. */
  timings: Record<string, number>;
  vms: DeployedVm[];
  /** Each network's /24 (`a.b.c`) as the env had it: the guests' addresses, MACs and names go with it. */
  networks: { name: string; prefix: string }[];
}

export const deployedManifestName = (distro: string, suite: string) => `${distro}-${suite}-deployed.json`;
export const deployedLayerName = (distro: string, suite: string, vm: string) =>
  `${distro}-${suite}-${vm}-deployed.qcow2`;

/** The content key of deployed layers made from `inputs`. */
export function deployedKey(inputs: DeployedInputs): string {
  return sha256(stableStringify(inputs));
}

/** The suite's definition as the key sees it: no file paths, deploy scripts by the name the suite gives. */
function suiteDefinition(env: Environment): unknown {
  return {
    suite: env.suite,
    kind: env.kind,
    networks: env.networks,
    vms: env.vms.map((vm) => ({
      name: vm.name,
      image: vm.image,
      memoryMiB: vm.memoryMiB,
      vcpus: vm.vcpus,
      nics: vm.nics,
      disks: vm.disks,
      deployScripts: vm.deployScripts.map((s) => s.name),
      // not `squashed`: which package of an image a VM runs on (chained or squashed, the same content) is
      // in the images' keys; the deploy built on the chained layers, `ost up` may pick the squashed one
    })),
    hostDeployScripts: (env.hostDeployScripts ?? []).map((s) => s.name),
  };
}

/** The content key and build id an image layer was built with: its manifest's, beside its qcow2 (`<image>.json`). */
export function imageLayerBuild(image: ResolvedImage): { key: string; build: string } {
  const m = readImageManifest(image.path);
  const key = m?.key;
  const build = m?.buildId;
  if (typeof key === 'string' && /^[0-9a-f]{64}$/.test(key) && typeof build === 'string' && build !== '')
    return { key, build };
  throw new OstError(
    `image ${image.ref} (${image.path}) has no layer manifest with a key and build id (${imageManifestFile(image.path)}): deployed images are made from, and checked against, images ost built`,
    'use the images of an ost image set (ost build-images, or its ost-images-<distro>-<layer> RPMs)',
  );
}

/** What deployed layers of `env` on `images` (by imageKey) would be made from, now. */
export async function deployedInputs(
  env: Environment,
  images: ReadonlyMap<string, ResolvedImage>,
  ost: string,
): Promise<DeployedInputs> {
  const imgs: DeployedInputs['images'] = {};
  const scripts: DeployedInputs['scripts'] = {};
  for (const vm of env.vms) {
    const image = images.get(imageKey(vm));
    if (!image) throw new OstError(`no image resolved for ${vm.name}`);
    imgs[vm.name] = { ref: image.ref, ...imageLayerBuild(image) };
    scripts[vm.name] = await Promise.all(
      vm.deployScripts.map(async (s) => ({ script: s.name, sha256: await fileSha256(s.file) })),
    );
  }
  const hostScripts = await Promise.all(
    (env.hostDeployScripts ?? []).map(async (s) => ({ script: s.name, sha256: await fileSha256(s.file) })),
  );
  return { format: DEPLOYED_FORMAT, ost, suite: suiteDefinition(env), images: imgs, scripts, hostScripts };
}

/** Each input that differs between what the layers were made from and what the suite has now, in words. */
export function inputDifferences(was: DeployedInputs, now: DeployedInputs): string[] {
  const out: string[] = [];
  if (was.format !== now.format)
    out.push(`they were made by an older way of deploying (format ${was.format})`);
  if (was.ost !== now.ost) out.push(`they were made by ost ${was.ost}, this is ost ${now.ost}`);
  if (stableStringify(was.suite) !== stableStringify(now.suite))
    out.push('the suite definition changed (its networks, VMs, sizes, NICs, disks or deploy-script lists)');
  for (const [vm, img] of Object.entries(now.images)) {
    const old = was.images[vm];
    if (!old) continue;
    if (old.ref !== img.ref) out.push(`${vm} was deployed on ${old.ref}, the suite has ${img.ref}`);
    else if (old.key !== img.key)
      out.push(
        `${vm}'s image ${img.ref} is another build (key ${img.key.slice(0, 12)}, deployed on ${old.key.slice(0, 12)})`,
      );
    else if (old.build !== img.build)
      out.push(
        `${vm}'s image ${img.ref} was built again (build ${img.build}, deployed on build ${old.build}): the deployed layer holds changes to the other build's bytes`,
      );
  }
  for (const [vm, list] of Object.entries(now.scripts)) {
    const old = new Map((was.scripts[vm] ?? []).map((s) => [s.script, s.sha256]));
    for (const s of list)
      if (old.has(s.script) && old.get(s.script) !== s.sha256)
        out.push(`deploy script ${s.script} of ${vm} changed`);
  }
  const oldHost = new Map((was.hostScripts ?? []).map((s) => [s.script, s.sha256]));
  for (const s of now.hostScripts)
    if (oldHost.has(s.script) && oldHost.get(s.script) !== s.sha256)
      out.push(`host deploy script ${s.script} changed`);
  return out;
}

/** A file name the manifest may name: in its own folder, nothing else. */
const plainName = (f: unknown): f is string =>
  typeof f === 'string' && f === path.basename(f) && !f.startsWith('.') && f.endsWith('.qcow2');

/** Read and check a deployed manifest; undefined when there is none. */
export async function readDeployedManifest(file: string): Promise<DeployedManifest | undefined> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const bad = (why: string) =>
    new OstError(
      `${file} is not a deployed-images manifest: ${why}`,
      'build it again: ost build-images <set> --deployed <suite>',
    );
  let m: DeployedManifest;
  try {
    m = JSON.parse(text) as DeployedManifest;
  } catch (err) {
    throw bad((err as Error).message);
  }
  if (m?.version !== 1 || typeof m.key !== 'string' || !Array.isArray(m.vms) || !Array.isArray(m.networks))
    throw bad('version, key, vms or networks missing');
  for (const vm of m.vms)
    if (!plainName(vm.file) || !plainName(vm.image?.file))
      throw bad(`VM ${vm.name} names a file outside its folder`);
  for (const n of m.networks)
    if (typeof n.prefix !== 'string' || !/^\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(n.prefix))
      throw bad(`network ${n.name} has no /24 prefix`);
  return m;
}
