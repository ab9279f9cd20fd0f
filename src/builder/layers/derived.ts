// Derived layers: a qcow2 overlay on the parent (relative backing name) customised by virt-customize.
import * as path from 'node:path';
import { guestfsEnv } from '../../core/accel.js';
import { createOverlayArgv } from '../../tools/qemu-img.js';
import { customizeArgv } from '../../tools/virt-customize.js';
import { layerFileName } from '../plan/model.js';
import type { Action, LayerContext } from './types.js';

/** Timeout for one virt-customize run (package installs under TCG are slow). */
export const CUSTOMIZE_TIMEOUT_MS = 60 * 60_000;

export function derivedActions(ctx: LayerContext): Action[] {
  const parent = ctx.layer.parent;
  if (!parent) throw new Error(`layer ${ctx.layer.name} has no parent`);
  return [
    {
      kind: 'exec',
      title: `create overlay on ${layerFileName(ctx.set.distro, parent)}`,
      argv: createOverlayArgv(ctx.tmpImage, layerFileName(ctx.set.distro, parent)),
      cwd: path.dirname(ctx.tmpImage),
    },
    {
      kind: 'exec',
      title: 'customize with virt-customize',
      argv: customizeArgv({
        disk: ctx.tmpImage,
        memoryMiB: ctx.set.customizeMemoryMiB,
        network: ctx.layer.network,
        family: ctx.set.family,
        selinux: ctx.set.selinux,
        repos: ctx.layer.repos.filter((r) => !r.watchOnly),
        steps: ctx.layer.steps,
      }),
      env: guestfsEnv(ctx.accel),
      timeoutMs: CUSTOMIZE_TIMEOUT_MS,
    },
  ];
}
