// Derived layers: a qcow2 overlay on the parent (relative backing name), customised in one guestfish
// session: the guest's filesystems mounted (no inspection), the layer's repositories and steps run in
// order, the package list read, all in one appliance boot (guestfish-session.ts).
import * as path from 'node:path';
import { guestfsEnv } from '../../core/accel.js';
import { InternalError } from '../../core/errors.js';
import { type CommandStep, layerSteps } from '../../tools/guest-steps.js';
import { GuestfishSession, mountGuest, runSessionSteps, sessionArgv } from '../../tools/guestfish-session.js';
import { createOverlayArgv } from '../../tools/qemu-img.js';
import { listPackages } from '../pkglist.js';
import { layerFileName } from '../plan/model.js';
import type { Action, LayerContext } from './types.js';

/** Timeout for one layer's session (package installs under TCG are slow). */
export const CUSTOMIZE_TIMEOUT_MS = 60 * 60_000;

/** What a step does in the guest, one line each (for --dry-run). */
export function describeStep(s: CommandStep): string {
  switch (s.kind) {
    case 'run':
      return `sh: ${s.command}`;
    case 'copy-in':
      return `copy-in ${s.from} ${s.toDir}`;
    case 'upload':
      return `upload ${s.from} ${s.to}${s.mode ? ` (mode ${s.mode})` : ''}`;
    default: {
      const never: never = s;
      return String(never);
    }
  }
}

export function derivedActions(ctx: LayerContext): Action[] {
  const parent = ctx.layer.parent;
  if (!parent) throw new InternalError(`layer ${ctx.layer.name} has no parent`);
  const { set, layer } = ctx;
  const steps = layerSteps(
    set.family,
    layer.repos.filter((r) => !r.watchOnly),
    layer.steps,
  );
  const spec = { disk: ctx.tmpImage, memoryMiB: set.customizeMemoryMiB, network: layer.network };
  return [
    {
      kind: 'exec',
      title: `create overlay on ${layerFileName(set.distro, parent)}`,
      argv: createOverlayArgv(ctx.tmpImage, layerFileName(set.distro, parent)),
      cwd: path.dirname(ctx.tmpImage),
    },
    {
      kind: 'internal',
      title: 'customize in one guestfish session',
      argv: sessionArgv(spec),
      guest: steps.map(describeStep),
      run: async (signal) => {
        const session = await GuestfishSession.open(spec, {
          env: guestfsEnv(ctx.accel),
          logFile: ctx.logFile,
          signal,
          timeoutMs: CUSTOMIZE_TIMEOUT_MS,
        });
        try {
          await mountGuest(session, `${set.distro}-${parent}`);
          await runSessionSteps(session, set.family, steps, {
            network: layer.network,
            selinux: set.selinux,
          });
          // the package list from the same boot (no second appliance to read it)
          ctx.packages = await listPackages(session, set.family);
          await session.close();
        } finally {
          session.kill();
        }
      },
    },
  ];
}
