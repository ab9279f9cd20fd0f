// Restoring from a checkpoint: each disk an overlay of the checkpoint's frozen file, each domain restored
// paused from its memory file (renamed for an --isolated copy), then every VM resumed at once and its
// clock set over SSH.

import * as path from 'node:path';
import { InternalError } from '../../core/errors.js';
import { faultPoint } from '../../core/fault.js';
import { createOverlayArgv } from '../../tools/qemu-img.js';
import { virshArgv } from '../../tools/virsh.js';
import { overlaysFromCheckpoint, renameFor, restoreDomain, resumeAndSync } from '../checkpoint/restore.js';
import type { CheckpointVm, StoredCheckpoint } from '../checkpoint/store.js';
import { setDeployedMarker } from '../env-dir/deployment.js';
import { destroyObject } from '../teardown.js';
import type { StartStrategy } from './phase.js';
import type { UpPlan, VmPlan } from './plan.js';

/** The checkpoint an up restores from (a restore plan without one is a bug). */
function checkpointOf(plan: UpPlan): StoredCheckpoint {
  if (!plan.from) throw new InternalError(`a ${plan.mode} plan without a checkpoint`);
  return plan.from;
}

function checkpointVmOf(vm: VmPlan): CheckpointVm {
  if (!vm.checkpoint) throw new InternalError(`no checkpoint record for ${vm.name}`);
  return vm.checkpoint;
}

/** Each disk's new top: the root disk at the VM's overlay, extra disks where up keeps them. */
function tops(vm: {
  overlay: string;
  disks: readonly { name: string; path: string }[];
}): Map<string, string> {
  return new Map([['vda', vm.overlay], ...vm.disks.map((d) => [d.name, d.path] as const)]);
}

export const restoreStrategy: StartStrategy = {
  async disks(ctx, vm) {
    await overlaysFromCheckpoint(checkpointOf(ctx.plan).dir, checkpointVmOf(vm), tops(vm), ctx.qemu);
  },
  diskSteps(plan, vm) {
    const ck = checkpointOf(plan);
    const top = tops(vm);
    return checkpointVmOf(vm).disks.map((d) => ({
      title: `${vm.name} ${d.dev}`,
      argv: createOverlayArgv(top.get(d.dev) ?? `<no top for ${d.dev}>`, path.join(ck.dir, d.file), d.format),
    }));
  },
  domainsTitle: (plan) => `restore ${plan.vms.length} VMs from checkpoint ${checkpointOf(plan).name}`,
  async start(ctx, vm, planned) {
    const t0 = Date.now();
    const ck = checkpointOf(ctx.plan);
    ctx.undo.add(`domain ${vm.libvirtName}`, () => destroyObject(ctx.uri, 'domain', vm.libvirtName));
    await faultPoint(`up:create:${vm.name}`);
    await restoreDomain(
      ctx.uri,
      ck.dir,
      checkpointVmOf(planned),
      planned.domainXml,
      {
        consoleLog: vm.consoleLog,
        meta: { ost: { ...ctx.meta, vm: vm.name, roles: vm.roles }, deployScripts: vm.deployScripts },
        rename: renameFor(ctx.record, ck.record, vm).rename,
      },
      tops(vm),
      ctx.signal,
    );
    vm.timings.start = Date.now() - t0;
    vm.timings.startedAt = Date.now();
  },
  startSteps(plan, vm) {
    const ck = checkpointOf(plan);
    const memory = path.join(ck.dir, checkpointVmOf(vm).memory);
    return plan.mode === 'isolated-restore'
      ? [
          {
            title: `${vm.name}: a copy of ${memory} whose saved domain XML carries the new name, UUID and networks`,
          },
          {
            title: `${vm.name}: domain, paused`,
            argv: virshArgv(plan.uri, ['restore', '<the copy>', '--paused']),
          },
        ]
      : [
          {
            title: `${vm.name}: domain, paused`,
            argv: virshArgv(plan.uri, ['restore', memory, '--xml', vm.domainXml, '--paused']),
          },
        ];
  },
  readyTitle: (plan) => `resume ${plan.vms.length} VMs, set their clocks`,
  waits: () => true,
  async ready(ctx) {
    const ck = checkpointOf(ctx.plan);
    const r = ctx.record;
    await resumeAndSync(ctx.uri, r.vms, ctx.timeoutMs, ctx.reporter, ctx.signal, r.netns);
    await setDeployedMarker(r, ck.record.deployed);
    r.checkpoint = { name: ck.name, dir: ck.dir, key: ck.record.key };
    r.deployed = ck.record.deployed;
  },
  readySteps(plan) {
    return [
      ...(plan.mode === 'isolated-restore'
        ? [{ title: `flush the neighbour table of network namespace ost-${plan.id}` }]
        : []),
      ...plan.vms.map((vm) => ({
        title: `${vm.name}: resume`,
        argv: virshArgv(plan.uri, ['resume', '<domain>']),
      })),
      ...plan.vms.map((vm) => ({ title: `${vm.name}: set the guest clock over SSH with ${vm.key}` })),
    ];
  },
};
