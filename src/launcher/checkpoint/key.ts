// A checkpoint's content key: what an env started from, so `ost up --checkpoint-cache` finds a checkpoint
// of the same thing — the images' builds (package name-version-release, or a path's size and mtime), the
// suite's definition (VMs, memory, CPUs, NICs, networks, disks, address families), the deploy scripts'
// contents and the checkpoint's name. Computed before anything is created, from the suite and images alone.
import { readFileSync, statSync } from 'node:fs';
import { sha256, stableStringify } from '../../core/fsutil.js';
import type { Environment } from '../env/model.js';
import type { IpMode } from '../net/layout.js';

/** A VM's image as resolved: what the key says about its build. */
export interface KeyImage {
  ref: string;
  path: string;
  package?: { name: string; version: string; release: string };
  /** A custom layer's own key (ost up --custom-repo). */
  custom?: string;
}

function buildOf(img: KeyImage): unknown {
  if (img.package) return { ref: img.ref, package: img.package, custom: img.custom };
  // an image given by path: its size and change time stand for its build
  const st = statSync(img.path, { throwIfNoEntry: false });
  return { ref: img.ref, path: img.path, size: st?.size, mtime: st?.mtimeMs, custom: img.custom };
}

function scriptHash(file: string): string {
  try {
    return sha256(readFileSync(file));
  } catch {
    return 'missing';
  }
}

/** The content key (sha256 hex) of `name` taken of `env` on `images` (VM name → its image). */
export function contentKey(
  env: Environment,
  images: ReadonlyMap<string, KeyImage>,
  ipMode: IpMode,
  name: string,
): string {
  const doc = {
    name,
    suite: env.suite,
    kind: env.kind,
    ipMode,
    networks: env.networks,
    vms: env.vms.map((vm) => {
      const img = images.get(vm.name);
      return {
        name: vm.name,
        image: img ? buildOf(img) : undefined,
        memoryMiB: vm.memoryMiB,
        vcpus: vm.vcpus,
        nics: vm.nics,
        disks: vm.disks,
        deployScripts: vm.deployScripts.map((s) => ({ name: s.name, sha256: scriptHash(s.file) })),
      };
    }),
  };
  return sha256(stableStringify(doc));
}
