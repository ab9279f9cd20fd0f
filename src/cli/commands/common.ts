// What several command handlers share: the options every env command has, and where checkpoints are.

import type { Writers } from '../../builder/plan/confine.js';
import type { OstConfig } from '../../core/config.js';
import { checkpointRoot } from '../../launcher/checkpoint/store.js';

/** Options every env command shares. */
export interface EnvCommon {
  connect?: string;
  json?: boolean;
}

export interface CheckpointCommon extends EnvCommon {
  checkpointDir?: string;
}

/** The checkpoint root this command uses (--checkpoint-dir, $OST_CHECKPOINT_DIR, the default). */
export function rootOf(a: CheckpointCommon, config: OstConfig): string {
  const { checkpointDir, dataHome, home } = config;
  return checkpointRoot(a.checkpointDir, {
    OST_CHECKPOINT_DIR: checkpointDir,
    XDG_DATA_HOME: dataHome,
    HOME: home,
  });
}

/** Where ost up puts overlays (OST_OVERLAY_DIR, else /dev/shm/ost) and where when that is full. */
export function overlayRoots(config: OstConfig): { root: string; fallback: string } {
  const uid = process.getuid?.() ?? 0;
  const suffix = uid === 0 ? '' : `-${uid}`;
  return {
    root: config.overlayDir ?? `/dev/shm/ost${suffix}`,
    fallback: config.overlayFallback ?? `/var/tmp/ost${suffix}`,
  };
}

/**
 * Run as root: who may own and write the files an image-set file reads (root, and the user of sudo); a
 * set file or input anyone else can change is refused (builder/plan/confine.ts). Not root: unchecked.
 */
export function setFileWriters(config: OstConfig): Writers | undefined {
  if ((process.getuid?.() ?? 0) !== 0) return undefined;
  const { uid, gid } = config.sudo;
  return {
    uids: [0, ...(uid !== undefined && uid !== 0 ? [uid] : [])],
    gids: [0, ...(gid !== undefined && gid !== 0 ? [gid] : [])],
  };
}
