// What several command handlers share: the options every env command has, and where checkpoints are.
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
