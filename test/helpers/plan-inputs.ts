// Plan inputs for `ost up`'s pure plan (launcher/up/plan.ts) over resolved images that need not exist: the
// plan reads nothing, so the unit tests of the plan and of per-env keys share these.
import type { Environment } from '../../src/launcher/env/model.js';
import { imageKey, type ResolvedImage } from '../../src/launcher/images/resolve.js';
import type { PlanInputs } from '../../src/launcher/up/plan.js';

export interface PlanInputsOptions {
  /** Which images read the SSH key credential (by ref); default none (the env logs in with the shipped key). */
  credential?: (ref: string) => boolean;
  /** The chain below each image (default: the image alone). */
  below?: string[];
  reservePerVmBytes?: number;
}

/** Plan inputs for `env`, each VM on `/usr/share/ost-images/<distro>-<layer>.qcow2`; `over` wins. */
export function planInputs(
  env: Environment,
  o: PlanInputsOptions = {},
  over: Partial<PlanInputs> = {},
): PlanInputs {
  const images = new Map<string, ResolvedImage>();
  for (const vm of env.vms) {
    const name = vm.image.kind === 'package' ? `${vm.image.distro}-${vm.image.layer}` : 'x';
    const file = `/usr/share/ost-images/${name}.qcow2`;
    images.set(imageKey(vm), {
      ref: name,
      path: file,
      chain: [file, ...(o.below ?? [])],
      virtualSize: 1,
      key: '/usr/share/ost-images/debian12_id_rsa',
      sshCredential: o.credential?.(name) ?? false,
    });
  }
  return {
    env,
    id: '0a1b2c3d',
    ipMode: 'dual',
    deploy: true,
    wait: true,
    isolated: false,
    uri: 'qemu:///system',
    stateRoot: '/run/ost',
    overlayRoot: '/dev/shm/ost',
    reservePerVmBytes: o.reservePerVmBytes ?? 1,
    images,
    custom: new Map(),
    domainType: 'qemu',
    self: { uid: 0, gid: 0, pid: { pid: 1, start: '1' } },
    qemu: { name: 'qemu', uid: 107, gid: 107, groups: [] },
    ...over,
  };
}
