// The build directory: one qcow2, manifest, package list and log per layer, plus the set's SSH key pair.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { atomicWriteFile } from '../core/fsutil.js';
import type { Family } from '../tools/guest-steps.js';
import { layerFileName, type Refresh } from './plan/model.js';
import type { UpstreamState } from './upstream.js';

/** What a finished, verified layer records next to its qcow2. */
export interface LayerManifest {
  distro: string;
  /** Package family of the guest (absent in manifests of older builders). */
  family?: Family;
  layer: string;
  parent?: string;
  key: string;
  /** Unique per build of this layer; children record their parent's. */
  buildId: string;
  parentBuildId?: string;
  file: string;
  backingFile?: string;
  builtAt: string;
  durationMs: number;
  virtualSize: number;
  allocatedBytes: number;
  packages: number;
  builder: string;
  /** How the layer is refreshed besides definition changes (absent in manifests of older builders). */
  refresh?: Refresh;
  /** refresh: upstream — the state of every repository it was built from (URL, checksum, date). */
  upstream?: UpstreamState[];
  /** refresh: daily — the day (UTC) it was built for. */
  day?: string;
  /**
   * The guest takes root's authorized SSH key from the systemd credential `ssh.authorized_keys.root` (SMBIOS
   * type 11) at boot and authorizes no key of its own (a debootstrap base and the layers on it); absent:
   * the set's key is the one the image authorizes. `ost up` and `ost boot-image` read it from here.
   */
  sshCredential?: boolean;
  /** build-images --with-repo: the repos given and the custom packages the layer has at their versions. */
  custom?: { repos: string[]; packages: { name: string; version: string; arch: string; repo: string }[] };
}

/** Where everything for one image set lives under the output directory. */
export class BuildPaths {
  constructor(
    readonly out: string,
    readonly distro: string,
  ) {}

  image(layer: string): string {
    return path.join(this.out, layerFileName(this.distro, layer));
  }
  tmpImage(layer: string): string {
    return `${this.image(layer)}.tmp`;
  }
  manifest(layer: string): string {
    return path.join(this.out, `${this.distro}-${layer}.json`);
  }
  pkglist(layer: string): string {
    return path.join(this.out, `${this.distro}-${layer}-pkglist.txt`);
  }
  /** What changed against the previous build of the same layer (what changed overnight). */
  pkgdiffPrevious(layer: string): string {
    return path.join(this.out, `${this.distro}-${layer}-pkglist-diff-previous.txt`);
  }
  pkgdiff(layer: string): string {
    return path.join(this.out, `${this.distro}-${layer}-pkglist-diff.txt`);
  }
  log(layer: string): string {
    return path.join(this.out, 'logs', `${this.distro}-${layer}.log`);
  }
  consoleLog(layer: string): string {
    return path.join(this.out, 'logs', `${this.distro}-${layer}-console.log`);
  }
  work(layer: string): string {
    return path.join(this.out, '.work', layer);
  }
  workRoot(): string {
    return path.join(this.out, '.work');
  }
  privateKey(): string {
    return path.join(this.out, `${this.distro}_id_rsa`);
  }
  publicKey(): string {
    return `${this.privateKey()}.pub`;
  }
  lock(): string {
    return path.join(this.out, '.lock');
  }
}

function isManifest(v: unknown): v is LayerManifest {
  if (!v || typeof v !== 'object') return false;
  const o = v as Record<string, unknown>;
  return typeof o.key === 'string' && typeof o.buildId === 'string' && typeof o.layer === 'string';
}

/** Read a layer's manifest; undefined when missing or unreadable (a crash mid-write counts as missing). */
export async function readManifest(paths: BuildPaths, layer: string): Promise<LayerManifest | undefined> {
  try {
    const v: unknown = JSON.parse(await fs.readFile(paths.manifest(layer), 'utf8'));
    return isManifest(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Write a layer's manifest atomically. */
export async function writeManifest(paths: BuildPaths, m: LayerManifest): Promise<void> {
  await atomicWriteFile(paths.manifest(m.layer), `${JSON.stringify(m, null, 2)}\n`);
}

/** Remove a layer's manifest (before its qcow2 is replaced, so no child trusts a half-swapped parent). */
export async function dropManifest(paths: BuildPaths, layer: string): Promise<void> {
  await fs.rm(paths.manifest(layer), { force: true });
}
