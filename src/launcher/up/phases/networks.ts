// The networks phase (every network of the env created at once, from the layout of its leased /24s; a
// /24 another user's up took first is leased again) and, for an --isolated env, its network namespace.
import * as path from 'node:path';
import { errorMessage, InternalError, ToolError } from '../../../core/errors.js';
import { faultPoint } from '../../../core/fault.js';
import { atomicWriteFile } from '../../../core/fsutil.js';
import { virsh, virshArgv } from '../../../tools/virsh.js';
import { checkLayout } from '../../checkpoint/from.js';
import { leasesDir } from '../../env-dir/record.js';
import { renderNetwork } from '../../libvirt/render.js';
import { createEnvNetns, netnsDir, removeEnvNetns } from '../../net/isolated.js';
import { layoutEnv } from '../../net/layout.js';
import { releaseLeases } from '../../net/leases.js';
import { destroyObject } from '../../teardown.js';
import { layoutOf, settleAll, type UpContext } from '../context.js';
import { checkDeployedLayout } from '../deployed-start.js';
import type { Phase } from '../phase.js';
import { leaseForPlan } from './disks-leases.js';

/** libvirt refused a network because its subnet is already routed on the host (networkCheckRouteCollision). */
export function isSubnetInUse(err: unknown): boolean {
  const text = err instanceof ToolError ? [err.message, ...err.tail].join('\n') : errorMessage(err);
  return /Network is already in use by interface/.test(text);
}

/** Lay the env out on its subnets (the checkpoint's MACs must come out the same). */
function layOut(ctx: UpContext): void {
  if (!ctx.subnets) throw new InternalError('the networks phase runs after the lease phase');
  const layout = layoutEnv(ctx.plan.env, ctx.plan.id, ctx.subnets, ctx.plan.ipMode);
  if (ctx.plan.from) checkLayout(layout, ctx.plan.from);
  if (ctx.plan.deployed) checkDeployedLayout(layout, ctx.plan.deployed);
  ctx.layout = layout;
  ctx.record.networks = layout.networks;
}

async function createNetworks(ctx: UpContext): Promise<void> {
  const { plan } = ctx;
  const layout = layoutOf(ctx);
  await settleAll(layout.networks, async (net) => {
    const file = path.join(plan.workdir, 'libvirt', `network-${net.name}.xml`);
    await atomicWriteFile(
      file,
      renderNetwork(ctx.templates, {
        net,
        networks: layout.networks,
        vms: layout.vms,
        meta: ctx.meta,
        shortNames: !plan.ostSuite,
        bare: plan.isolated,
      }),
    );
    // undo first: an interrupted net-create may still have created it
    ctx.undo.add(`network ${net.libvirtName}`, () => destroyObject(ctx.uri, 'network', net.libvirtName));
    await virsh(ctx.uri, ['net-create', file], { signal: ctx.signal });
  });
}

export const networksPhase: Phase = {
  id: 'networks',
  title: (plan) => `${plan.networks.length} networks`,
  steps: (plan) =>
    plan.networks.map((n) => ({
      title: `network ${n.name}${plan.isolated ? ' (a bare bridge: the gateway is in the namespace)' : ''}`,
      argv: virshArgv(plan.uri, ['net-create', path.join(plan.workdir, 'libvirt', `network-${n.name}.xml`)]),
    })),
  async run(ctx) {
    const { plan } = ctx;
    // overlays made and subnets leased (as another user's ost up could be at this moment)
    await faultPoint('up:leased');
    layOut(ctx);
    for (let attempt = 1; ; attempt++) {
      try {
        await createNetworks(ctx);
        break;
      } catch (err) {
        // another user's ost up leased the same /24 from its own state dir a moment before us and its
        // bridge came up first: libvirt refuses ours. Its subnet is on the host now; lease again.
        if (!isSubnetInUse(err) || attempt >= 3 || plan.from || plan.networks.some((n) => n.fixed)) throw err;
        ctx.reporter({
          type: 'warning',
          message: `${errorMessage(err).split('\n').pop()}: another environment took the subnet first; leasing again`,
        });
        await Promise.all(
          layoutOf(ctx).networks.map((n) => destroyObject(ctx.uri, 'network', n.libvirtName)),
        );
        await releaseLeases(leasesDir(ctx.stateRoot), plan.id);
        ctx.subnets = await leaseForPlan(ctx);
        layOut(ctx);
      }
    }
    await faultPoint('up:networks');
  },
};

export const netnsPhase: Phase = {
  id: 'netns',
  title: (plan) => `network namespace ost-${plan.id}: gateways, DHCP, DNS`,
  skip: (plan) => !plan.isolated,
  steps: (plan) => [
    {
      title: `ip netns add ost-${plan.id}; a veth per network joins its bridge to the namespace, which holds the gateways and one dnsmasq (DHCP, DHCPv6, RA, DNS)`,
    },
  ],
  async run(ctx) {
    const { plan } = ctx;
    const dir = netnsDir(ctx.stateRoot, plan.id);
    ctx.undo.add(`network namespace of ${plan.id}`, async () => {
      await removeEnvNetns(plan.id, dir);
    });
    ctx.record.netns = await createEnvNetns(plan.id, layoutOf(ctx), dir, { shortNames: !plan.ostSuite });
  },
};
