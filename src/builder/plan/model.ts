// The normalised image set: what the planner and the layer builders work from.

import { InternalError } from '../../core/errors.js';
import { sizeToBytes } from '../../core/units.js';
import type { Family, Step } from '../../tools/guest-steps.js';
import type { Writers } from './confine.js';

export type { Family, Step };

/** A disk size as written (for argv) and in bytes. */
export interface Size {
  text: string;
  bytes: number;
}

export interface DebootstrapBase {
  kind: 'debootstrap';
  suite: string;
  mirror: string;
  variant?: 'minbase' | 'buildd' | 'fakechroot';
  components: string[];
  packages: string[];
  /** The kernel package (linux-image-amd64, linux-image-cloud-amd64, ...). */
  kernel: string;
  /** false: documentation and translations left out (dpkg path-exclude), man pages kept. */
  docs: boolean;
  diskSize: Size;
  hostname: string;
}

export interface ImportBase {
  kind: 'import';
  /** Absolute path, or an http(s) URL. */
  source: string;
  isUrl: boolean;
  sha256: string;
}

export interface InstallBase {
  kind: 'install';
  /** ISO path, install tree directory or URL; absent when booting kernel+initrd. */
  location?: string;
  kernel?: string;
  initrd?: string;
  answerFile: string;
  answerKind: 'kickstart' | 'preseed';
  osVariant: string;
  memoryMiB: number;
  vcpus: number;
  diskSize: Size;
  timeoutMs: number;
  extraArgs: string[];
  network: 'user' | 'none';
}

export type BaseSource = DebootstrapBase | ImportBase | InstallBase;

/**
 * A package repository a layer's guest uses: declared in the set file (`repos:`), or the debootstrap base's
 * mirror. A derived layer writes its own into the guest (a file:// one is copied in); a base's only name
 * what its installer or image already configured.
 */
export interface PackageRepo {
  /** Short name: the guest's sources.list.d / yum.repos.d file is ost-<name>. */
  name: string;
  kind: Family;
  /** http(s):// URL, or file:///absolute/dir on the build host. */
  url: string;
  /** deb: the suite (bookworm-security), or `./` for a flat repository. */
  suite?: string;
  /** deb: archive components (none for a flat repository). */
  components?: string[];
  /** Install from it without signature checks ([trusted=yes] / gpgcheck=0). */
  trusted: boolean;
  /** Only watched for changes: the guest has it already (a base's installer, a layer's own script). */
  watchOnly: boolean;
}

/** When a layer is rebuilt besides changes to its definition: upstream repos changed, once a day, or never. */
export type Refresh = 'upstream' | 'daily' | 'never';

/** Custom packages built into a layer (build-images --with-repo): what goes into its key and manifest. */
export interface LayerCustom {
  repos: {
    name: string;
    source: string;
    packages: { name: string; version: string; arch: string; sha256: string }[];
  }[];
  install: string[];
  enabled: boolean;
}

export interface Layer {
  name: string;
  /** Position in the file's layers: list (for key paths in messages). */
  index: number;
  description?: string;
  parent?: string;
  /** Set on base layers (no parent). */
  base?: BaseSource;
  /** Set on derived layers. */
  steps: Step[];
  network: boolean;
  /** Repositories this layer adds (derived) or declares (base). */
  repos: PackageRepo[];
  refresh: Refresh;
  /** build-images --with-repo: the custom packages its last steps upgrade from (leaves only). */
  custom?: LayerCustom;
}

export interface ImageSet {
  /** The image-set file, absolute. */
  file: string;
  /** Its directory: relative paths in the file are resolved against it. */
  dir: string;
  distro: string;
  description?: string;
  family: Family;
  selinux: boolean;
  variables: Record<string, string>;
  customizeMemoryMiB: number;
  /** Loaded with --allow-outside: its host paths may lead outside `dir` (plan/confine.ts). */
  allowOutside?: boolean;
  /** Run as root: who may own and write what it reads (plan/confine.ts); checked again before a build. */
  writers?: Writers;
  /** Parents before children. */
  layers: Layer[];
}

/** Files a layer reads, absolute paths (they go into its content key). */
export function layerFiles(layer: Layer): string[] {
  const files: string[] = [];
  if (layer.base?.kind === 'install') files.push(layer.base.answerFile);
  if (layer.base?.kind === 'import' && !layer.base.isUrl) files.push(layer.base.source);
  for (const s of layer.steps) {
    if (s.kind === 'script') files.push(s.file);
    if (s.kind === 'upload') files.push(s.from);
  }
  return files;
}

/** Children of a layer, in set order. */
export function childrenOf(set: ImageSet, name: string): Layer[] {
  return set.layers.filter((l) => l.parent === name);
}

/** Layers nothing else is built on, in set order. */
export function leavesOf(set: ImageSet): string[] {
  return set.layers.filter((l) => childrenOf(set, l.name).length === 0).map((l) => l.name);
}

/** A layer and all layers below it. */
export function descendantsOf(set: ImageSet, name: string): string[] {
  const out: string[] = [name];
  for (let i = 0; i < out.length; i++) {
    for (const c of childrenOf(set, out[i] as string)) out.push(c.name);
  }
  return out;
}

/** The chain from the base down to this layer. */
export function chainOf(set: ImageSet, name: string): Layer[] {
  const chain: Layer[] = [];
  let cur = set.layers.find((l) => l.name === name);
  while (cur) {
    chain.unshift(cur);
    const p = cur.parent;
    cur = p ? set.layers.find((l) => l.name === p) : undefined;
  }
  return chain;
}

/** File name of a layer's qcow2 (also its relative backing name in children). */
export function layerFileName(distro: string, layer: string): string {
  return `${distro}-${layer}.qcow2`;
}

/** Parse a size such as 6G into bytes. */
export function parseSize(text: string): Size {
  return { text, bytes: sizeToBytes(text) };
}

/** Parse a duration such as 90m into milliseconds. */
export function parseDuration(text: string): number {
  const m = /^([0-9]+)(s|m|h)$/.exec(text);
  // the schema checks the text first
  if (!m) throw new InternalError(`bad duration ${text}`);
  const unit = { s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 's' | 'm' | 'h'];
  return Number(m[1]) * unit;
}
