// `ost up <suite> --from <checkpoint>`: the checks and pieces `up` needs to start a new env from a
// checkpoint instead of booting. The guests keep the MACs and addresses they had, so the new env takes the
// checkpoint's subnets (an error naming who holds one that is taken), runs on the same images (an error
// naming the build that is installed now), and its VMs are restored, not booted.
import * as path from 'node:path';
import { OstError } from '../../core/errors.js';
import type { Environment, EnvVm } from '../env/model.js';
import type { VmRecord } from '../env-dir/record.js';
import { type Identity, unreadableBy } from '../images/qemu-user.js';
import type { ResolvedImage } from '../images/resolve.js';
import type { EnvLayout } from '../net/layout.js';
import { readLeases } from '../net/leases.js';
import type { StoredCheckpoint } from './store.js';

const nvr = (p?: { name: string; version: string; release: string }) =>
  p ? `${p.name}-${p.version}-${p.release}` : undefined;

/** The suite must be the one the checkpoint was taken of: same VMs and networks. */
export function checkSuite(env: Environment, ck: StoredCheckpoint): void {
  const was = ck.record.env;
  const vms = (names: string[]) => names.join(', ');
  const problems: string[] = [];
  if (env.suite !== was.suite) problems.push(`it was taken of suite ${was.suite}, not ${env.suite}`);
  const now = env.vms.map((vm) => vm.name);
  const then = was.vms.map((vm) => vm.name);
  if (vms(now) !== vms(then)) problems.push(`its VMs are ${vms(then)}, the suite's ${vms(now)}`);
  const nets = (names: string[]) => [...names].sort().join(', ');
  if (nets(env.networks.map((n) => n.name)) !== nets(was.networks.map((n) => n.name)))
    problems.push(
      `its networks are ${nets(was.networks.map((n) => n.name))}, the suite's ${nets(env.networks.map((n) => n.name))}`,
    );
  if (problems.length > 0)
    throw new OstError(
      `checkpoint ${ck.name} does not fit suite ${env.suite} (${env.file}): ${problems.join('; ')}`,
      `name the suite it was taken of (ost up ${was.suite} --from ${ck.name}), or take a new checkpoint`,
    );
}

/** Every VM must run on the very image file (and build) its checkpoint disks are backed by. */
export function checkImages(
  env: Environment,
  imageOf: (vm: EnvVm) => ResolvedImage,
  ck: StoredCheckpoint,
): void {
  const problems: string[] = [];
  for (const vm of env.vms) {
    const was = ck.record.env.vms.find((v) => v.name === vm.name);
    const img = imageOf(vm);
    if (!was) continue;
    const base = was.image.chain[0] ?? was.image.path;
    if (img.path !== was.image.path || nvr(img.package) !== nvr(was.image.package))
      problems.push(
        `${vm.name} was on ${nvr(was.image.package) ?? was.image.path}, installed now is ${nvr(img.package) ?? img.path}`,
      );
    else if (was.image.custom)
      problems.push(
        `${vm.name} ran on a custom layer (${path.basename(base)}), which --from does not restore onto`,
      );
  }
  if (problems.length > 0)
    throw new OstError(
      `checkpoint ${ck.name} was taken on other images: ${problems.join('; ')}`,
      `install the builds it was taken on (dnf install <package>-<version>-<release>), or take a new checkpoint (ost rm-checkpoint ${ck.name})`,
    );
}

/**
 * The subnets the checkpoint's networks had (network name → `a.b.c`), when no lease on this host holds one:
 * else an error naming the env whose lease does, with what to do.
 */
export async function checkpointSubnets(ck: StoredCheckpoint, leases: string): Promise<Map<string, string>> {
  const wanted = new Map(ck.record.env.networks.map((n) => [n.name, `192.168.${n.subnet}`]));
  const held = await readLeases(leases);
  const holders = new Set<string>();
  const clash = ck.record.env.networks.flatMap((n) => {
    const l = held.find((x) => x.prefix === `192.168.${n.subnet}`);
    if (l) holders.add(l.envId);
    return l ? [`${n.name} (192.168.${n.subnet}.0/24) is leased by environment ${l.envId}`] : [];
  });
  if (clash.length > 0)
    throw new OstError(
      `checkpoint ${ck.name}: the guests keep the addresses they had, so a new env from it needs the same subnets, and ${clash.join('; ')}`,
      `stop it first (ost down ${[...holders].join(' ')}), put that env back to the checkpoint in place (ost revert ${[...holders][0]} ${ck.name}), or start one beside it with its networks in a namespace of its own (--isolated)`,
    );
  return wanted;
}

/** The new env's MACs must be those the guests had (the layout is a function of the subnets). */
export function checkLayout(layout: EnvLayout, ck: StoredCheckpoint): void {
  for (const vm of layout.vms) {
    const was = ck.record.env.vms.find((v) => v.name === vm.name) as VmRecord;
    const macs = (nics: { mac: string }[]) => nics.map((n) => n.mac).join(',');
    if (macs(vm.nics) !== macs(was.nics))
      throw new OstError(
        `checkpoint ${ck.name}: ${vm.name}'s NICs would get ${macs(vm.nics)}, the guest has ${macs(was.nics)}`,
        'the suite laid its NICs out differently since the checkpoint: take a new one',
      );
  }
}

/** qemu opens the checkpoint's disks as backing files: each must be readable by it on its whole path. */
export function checkReadable(ck: StoredCheckpoint, qemu: Identity): void {
  for (const vm of ck.record.vms)
    for (const d of vm.disks) {
      const why = unreadableBy(qemu, path.join(ck.dir, d.file));
      if (why)
        throw new OstError(
          `qemu (user ${qemu.name}) cannot read checkpoint ${ck.name}'s disk ${d.file}: ${why}`,
          'keep checkpoints where qemu can reach them (--checkpoint-dir / OST_CHECKPOINT_DIR; every directory on the way searchable)',
        );
    }
}
