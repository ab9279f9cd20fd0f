// What a custom layer is: the installed image it goes on, the options it is built with, and what its folder
// in the layer cache records (layer.json). Shared by the layer's build (build-layer.ts), the cache around
// it (custom-layer.ts) and the cache's listing (layer-cache.ts).
import type { Accel } from '../../core/accel.js';
import type { Reporter } from '../../core/events.js';
import type { Family } from '../../tools/guest-steps.js';
import type { Package, PkgDiff } from '../pkglist.js';
import type { AppliedPackage } from './applied.js';

/** Bumped when what a custom layer contains for the same inputs changes. */
export const CUSTOM_FORMAT = 'custom-1';

/** An installed image a custom layer goes on. */
export interface CustomBase {
  /** As the suite names it: `debian12-host-installed` (or a path). */
  ref: string;
  /** The image's qcow2 (top of its chain), absolute. */
  file: string;
  family: Family;
  /** What identifies this build of the image: its manifest's buildId, else its package's NEVR, else file identity. */
  buildId: string;
  /** Its installed packages, when its package list is at hand (shipped next to the qcow2). */
  packages?: Package[];
}

/** What to build a custom layer from and with: the repos, new packages, the cache, the machine. */
export interface CustomOptions {
  sources: readonly string[];
  /** New packages to install from the repos (--custom-install). */
  install: readonly string[];
  /** Leave the repos enabled in the layer (default: configured, enabled). */
  enabled: boolean;
  /** Do not fail when a repo supplied nothing (--skip-custom-check). */
  skipCheck: boolean;
  cacheDir: string;
  accel: Accel;
  memoryMiB: number;
  reporter: Reporter;
  signal?: AbortSignal;
}

/** What `<cache>/<key>/layer.json` records. */
export interface CustomLayerInfo {
  format: string;
  key: string;
  image: string;
  imageFile: string;
  imageBuildId: string;
  /** `layer.qcow2`'s backing file as written in it (relative to the layer's folder when possible). */
  backing: string;
  repos: { name: string; source: string; packages: number }[];
  install: string[];
  enabled: boolean;
  /** Custom packages the layer has, at the repos' versions. */
  packages: AppliedPackage[];
  diff: PkgDiff;
  builtAt: string;
  buildMs: number;
}

/** A custom layer ready to use: what it records, and where it is. */
export interface CustomLayer extends CustomLayerInfo {
  /** Absolute path of layer.qcow2. */
  file: string;
  dir: string;
  /** Built by this call (false: taken from the cache). */
  built: boolean;
}
