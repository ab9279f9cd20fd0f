// Booting: each VM's root overlay on its image (or custom layer), its extra disks made empty, its domain
// rendered from the templates (with the env's SSH key credential) and created, then every VM waited for
// until SSH answers.

import * as fs from 'node:fs/promises';
import { InternalError } from '../../core/errors.js';
import { faultPoint } from '../../core/fault.js';
import { atomicWriteFile } from '../../core/fsutil.js';
import { sshKeyOemString } from '../../guest/credentials.js';
import { create, createArgv, createOverlay, createOverlayArgv } from '../../tools/qemu-img.js';
import { virsh, virshArgv } from '../../tools/virsh.js';
import type { VmRecord } from '../env-dir/record.js';
import { handToQemu } from '../images/qemu-user.js';
import { renderDomain } from '../libvirt/render.js';
import { waitForVms } from '../ready/wait.js';
import { destroyObject } from '../teardown.js';
import { layoutOf, type UpContext } from './context.js';
import type { PlannedStep, StartStrategy } from './phase.js';
import type { UpPlan, VmPlan } from './plan.js';

async function createDisks(vm: VmPlan): Promise<void> {
  await Promise.all(
    vm.disks.map(async (d) => {
      // a deployed disk (--deployed): an overlay of it, as the root disk is of its layer
      if (d.base) await createOverlay(d.path, d.base);
      else if (d.format === 'raw') {
        // sparse: no block is allocated until the guest writes
        const fh = await fs.open(d.path, 'wx', 0o600);
        await fh.truncate(d.sizeBytes);
        await fh.close();
      } else {
        await create(d.path, String(d.sizeBytes));
      }
    }),
  );
}

/**
 * The domain XML of a booted VM: the root overlay first, extra disks on virtio-scsi (serials 2, 3, …), and
 * the public half of its key as its SSH key credential (SMBIOS type 11).
 */
function domainXml(ctx: UpContext, vm: VmRecord, publicKey: string): string {
  return renderDomain(ctx.templates, {
    vm,
    networks: layoutOf(ctx).networks,
    domainType: ctx.plan.domainType,
    memoryMiB: vm.memoryMiB,
    vcpus: vm.vcpus,
    consoleLog: vm.consoleLog,
    disks: [
      { path: vm.overlay, format: 'qcow2', dev: 'vda', bus: 'virtio', serial: 'ost-root-disk' },
      ...vm.disks.map((d, i) => ({
        path: d.path,
        format: d.format as 'raw' | 'qcow2',
        dev: d.name,
        bus: 'scsi' as const,
        serial: String(i + 2),
      })),
    ],
    deployScripts: vm.deployScripts,
    qemuUser: ctx.qemu,
    meta: { ...ctx.meta, vm: vm.name, roles: vm.roles },
    oemStrings: [sshKeyOemString(publicKey)],
  });
}

export const bootStrategy: StartStrategy = {
  async disks(ctx, vm) {
    await createOverlay(vm.overlay, vm.overlayBase, { signal: ctx.signal });
    await createDisks(vm);
    for (const f of [vm.overlay, ...vm.disks.map((d) => d.path)]) await handToQemu(f, ctx.qemu);
  },
  diskSteps(_plan, vm) {
    return [
      { title: `${vm.name} root disk`, argv: createOverlayArgv(vm.overlay, vm.overlayBase) },
      ...vm.disks.map((d) =>
        d.base
          ? { title: `${vm.name} disk ${d.name}, deployed`, argv: createOverlayArgv(d.path, d.base) }
          : d.format === 'raw'
            ? { title: `${vm.name} disk ${d.name}: a sparse raw file of ${d.size} at ${d.path}` }
            : { title: `${vm.name} disk ${d.name}`, argv: createArgv(d.path, String(d.sizeBytes)) },
      ),
    ];
  },
  domainsTitle: (plan) => `define and start ${plan.vms.length} VMs (${plan.domainType})`,
  async start(ctx, vm) {
    const t0 = Date.now();
    const file = domainXmlFile(ctx.plan, vm.name);
    await atomicWriteFile(file, domainXml(ctx, vm, await fs.readFile(`${vm.key}.pub`, 'utf8')));
    ctx.undo.add(`domain ${vm.libvirtName}`, () => destroyObject(ctx.uri, 'domain', vm.libvirtName));
    await faultPoint(`up:create:${vm.name}`);
    await virsh(ctx.uri, ['create', file], { signal: ctx.signal });
    vm.timings.start = Date.now() - t0;
    // wall-clock moments (epoch ms) a boot breakdown lines the guest's own clocks up with
    vm.timings.startedAt = Date.now();
  },
  startSteps(plan, vm) {
    return [{ title: `${vm.name}: domain`, argv: virshArgv(plan.uri, ['create', vm.domainXml]) }];
  },
  readyTitle: (plan) => `wait for SSH on ${plan.vms.length} VMs`,
  waits: (plan) => plan.wait,
  async ready(ctx) {
    await waitForVms(ctx.record.vms, {
      netns: ctx.record.netns,
      uri: ctx.uri,
      timeoutMs: ctx.timeoutMs,
      reporter: ctx.reporter,
      signal: ctx.signal,
      qemu: ctx.qemu,
      domainXml: (vm) => domainXmlFile(ctx.plan, vm.name),
    });
  },
  readySteps(plan): PlannedStep[] {
    return plan.vms.map((vm) => ({
      title: `${vm.name}: the readiness marker on ${vm.consoleLog}, port 22, one login as root with ${vm.key}`,
    }));
  },
};

/** The domain XML file of a VM of the plan. */
function domainXmlFile(plan: UpPlan, name: string): string {
  const vm = plan.vms.find((v) => v.name === name);
  if (!vm) throw new InternalError(`no VM ${name} in the plan`);
  return vm.domainXml;
}
