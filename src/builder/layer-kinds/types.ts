// What each kind of layer (layer-kinds/: the three bases and derived layers) makes of a layer: a list of
// actions. --dry-run prints them; a build runs them in order.
import type { Accel } from '../../core/accel.js';
import type { BuildPaths } from '../build-dir.js';
import type { Package } from '../pkglist.js';
import type { ImageSet, Layer } from '../plan/model.js';

export type Action =
  | {
      kind: 'exec';
      title: string;
      argv: string[];
      cwd?: string;
      env?: Record<string, string>;
      timeoutMs?: number;
      allowFailure?: boolean;
      /** Undo registered before the command runs (a transient VM to destroy, say). */
      undo?: { label: string; fn: () => Promise<void> };
    }
  | {
      kind: 'internal';
      title: string;
      run: (signal?: AbortSignal) => Promise<void>;
      /** The process it drives, when it drives one (shown by --dry-run). */
      argv?: string[];
      /** What it does in the guest, a line per step (shown by --dry-run). */
      guest?: string[];
    };

/** What a build uses of the machine it runs on. */
export interface BuildHost {
  accel: Accel;
  /** The libvirt connection install bases use (virt-install, their transient domain's undo). */
  libvirtUri: string;
}

/** Everything a layer builder needs to know. */
export interface LayerContext extends BuildHost {
  set: ImageSet;
  layer: Layer;
  key: string;
  paths: BuildPaths;
  /** The image being built; renamed into place after verification. */
  tmpImage: string;
  /** Scratch directory for this layer, removed afterwards. */
  work: string;
  logFile: string;
  consoleLog: string;
  /** The set's public key (OpenSSH format), or a placeholder during --dry-run before the first build. */
  publicKey: string;
  /** A builder that already knows the package list (debootstrap reads it on the host) sets this. */
  packages?: Package[];
}

export type LayerBuilder = (ctx: LayerContext) => Action[];
