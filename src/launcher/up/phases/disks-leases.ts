// The overlays phase (the env's overlay dir, reserved under the overlay root's lock, and each VM's disks
// made by the start strategy) and the lease phase (a /24 per network). The two run at once.
import * as fs from 'node:fs/promises';
import { faultPoint } from '../../../core/fault.js';
import { ownDir } from '../../../core/safe-dir.js';
import { parseNames, virsh } from '../../../tools/virsh.js';
import { leasesDir } from '../../env-dir/record.js';
import { shareWithQemuGroup } from '../../images/qemu-user.js';
import { NETWORK_NAME } from '../../net/layout.js';
import { leaseSubnets, releaseLeases } from '../../net/leases.js';
import { claimOverlayDir } from '../../overlays.js';
import type { UpContext } from '../context.js';
import type { Phase, StartStrategy } from '../phase.js';

export function disksPhase(strategy: StartStrategy): Phase {
  return {
    id: 'overlays',
    title: (plan) => `${plan.vms.length} overlays in ${plan.overlayDir}`,
    steps: (plan) => [
      {
        title: `mkdir ${plan.overlayDir} (0750, group of ${plan.qemuUser}), reserving ${(plan.reserveBytes / 2 ** 30).toFixed(1)} GiB under ${plan.overlayRoot}/.lock`,
      },
      ...plan.vms.flatMap((vm) => strategy.diskSteps(plan, vm)),
      {
        title:
          'each disk to qemu: root gives it to the qemu user (0600), others share it with its group (0660)',
      },
    ],
    async run(ctx) {
      const { plan } = ctx;
      // the overlay root is shared by every env of this user: theirs alone (0711), each env's dir is
      // readable by qemu's group only (0750), each overlay by qemu only
      await ownDir(plan.overlayRoot, 0o711, 'the overlay directory');
      // made with its reservation under the root's lock: two ups never count the same free room
      ctx.undo.add(`overlays ${plan.overlayDir}`, () =>
        fs.rm(plan.overlayDir, { recursive: true, force: true }),
      );
      await claimOverlayDir(plan.overlayRoot, plan.overlayDir, plan.reserveBytes);
      await fs.chmod(plan.overlayDir, 0o750);
      await shareWithQemuGroup(plan.overlayDir, ctx.qemu);
      await Promise.all(
        plan.vms.map(async (vm) => {
          const t0 = Date.now();
          await strategy.disks(ctx, vm);
          const t = ctx.vmTimings.get(vm.name) ?? {};
          t.overlay = Date.now() - t0;
          ctx.vmTimings.set(vm.name, t);
        }),
      );
      await faultPoint('up:overlays');
    },
  };
}

/** Subnets of other `ost<8 hex>-<N>` networks that are up (OST's own lagofy envs): never leased. */
export async function foreignSubnets(uri: string): Promise<string[]> {
  const r = await virsh(uri, ['net-list', '--name'], { allowFailure: true });
  if (r.exitCode !== 0) return [];
  return parseNames(r.stdout).flatMap((n) => {
    const m = NETWORK_NAME.exec(n);
    return m ? [`192.168.${m[2]}`] : [];
  });
}

/** Lease a /24 for each network of the plan (the fixed ones as asked). */
export async function leaseForPlan(ctx: UpContext): Promise<Map<string, string>> {
  const { plan } = ctx;
  return leaseSubnets(
    leasesDir(ctx.stateRoot),
    plan.id,
    ctx.record.owner,
    plan.networks.map((n) => ({ network: n.name, fixed: n.fixed })),
    await foreignSubnets(ctx.uri),
  );
}

export const leasePhase: Phase = {
  id: 'lease',
  title: () => 'lease subnets',
  steps: (plan) => [
    {
      title: `lease ${plan.networks.length} /24s under ${leasesDir(plan.stateRoot)}/.lock: ${plan.networks.map((n) => `${n.name} ${n.fixed ? `${n.fixed}.0/24` : 'a free one of 192.168.200-254'}`).join(', ')}`,
    },
  ],
  async run(ctx) {
    ctx.undo.add(`leases of ${ctx.plan.id}`, async () => {
      await releaseLeases(leasesDir(ctx.stateRoot), ctx.plan.id);
    });
    ctx.subnets = await leaseForPlan(ctx);
  },
};

/**
 * An isolated env takes its fixed subnets (a checkpoint's, or a deploy's) inside its own namespace, where
 * nothing else is.
 */
export const isolatedSubnetsPhase: Phase = {
  id: 'lease',
  untimed: true,
  title: (plan) => `the ${plan.from ? "checkpoint's" : "deploy's"} subnets, in the env's own namespace`,
  steps: (plan) => [
    {
      title: `no lease: ${plan.networks.map((n) => `${n.name} ${n.fixed}.0/24`).join(', ')} inside ost-${plan.id}`,
    },
  ],
  async run(ctx) {
    ctx.subnets = new Map(ctx.plan.networks.map((n) => [n.name, n.fixed as string]));
  },
};
