// `ost up <suite> --deployed`: the suite's deployed layers (images/deployed.ts), found beside its images,
// checked against what the suite has now (the images' builds, the suite, the deploy scripts, ost), and
// turned into what the plan starts the VMs from. Without a matching set it says which input differs and
// what fixes it — or, with --deployed=auto, says so and lets the up deploy at run time.
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { OstError } from '../../core/errors.js';
import type { Reporter } from '../../core/events.js';
import { type Environment, suiteDistro } from '../env/model.js';
import {
  type DeployedManifest,
  deployedInputs,
  deployedKey,
  deployedManifestName,
  inputDifferences,
  readDeployedManifest,
} from '../images/deployed.js';
import { type Identity, unreadableBy } from '../images/qemu-user.js';
import { imageKey, type ResolvedImage } from '../images/resolve.js';
import { checkMountNamespace } from '../net/isolated.js';
import type { EnvLayout } from '../net/layout.js';
import { subnetHolders } from '../net/leases.js';
import { foreignSubnets } from './phases/disks-leases.js';
import type { DeployedStart } from './plan.js';

/** --deployed (`require`) or --deployed=auto, and ost's version (part of what the layers were made from). */
export interface DeployedRequest {
  mode: 'require' | 'auto';
  ost: string;
}

/**
 * The deployed layers the VMs of `env` start from, checked; undefined (auto only) when there are none that
 * match, the up then deploying at run time.
 */
export async function deployedStart(
  env: Environment,
  images: ReadonlyMap<string, ResolvedImage>,
  qemu: Identity,
  req: DeployedRequest,
  reporter: Reporter,
): Promise<DeployedStart | undefined> {
  const suite = env.suite;
  const distro = suiteDistro(env);
  const first = env.vms[0] && images.get(imageKey(env.vms[0]));
  if (!distro || !first)
    throw new OstError(
      `ost up ${suite} --deployed: its VMs name no image package (<distro>-<layer>), so no deployed package can be found for them`,
      'name the images by package in the suite',
    );
  const file = path.join(path.dirname(first.path), deployedManifestName(distro, suite));
  const pkg = `ost-images-${distro}-${suite}-deployed`;
  const unusable = (why: string, fix: string): undefined => {
    if (req.mode === 'auto') {
      reporter({ type: 'info', message: `${why}: deploying at run time (--deployed=auto)` });
      return undefined;
    }
    throw new OstError(
      `ost up ${suite} --deployed: ${why}`,
      `${fix}; or --deployed=auto deploys at run time`,
    );
  };
  const m = await readDeployedManifest(file);
  if (!m)
    return unusable(
      `no deployed images of suite ${suite} for ${distro} (${file} does not exist)`,
      `dnf install ${pkg}, or build them: ost build-images <set> --deployed ${suite}`,
    );
  const now = await deployedInputs(env, images, req.ost);
  if (deployedKey(now) !== m.key) {
    const diffs = inputDifferences(m.inputs, now);
    return unusable(
      `the deployed images in ${file} were made from other inputs: ${diffs.length ? diffs.join('; ') : 'their key differs'}`,
      `dnf upgrade ${pkg} (a newer one may match), or build them again: ost build-images <set> --deployed ${suite}`,
    );
  }
  return checkedStart(env, images, m, file, qemu);
}

/** The env's layout must give each VM the MACs its deploy had (a function of the subnets, as for checkpoints). */
export function checkDeployedLayout(layout: EnvLayout, d: DeployedStart): void {
  for (const vm of layout.vms) {
    const was = d.macs.get(vm.name);
    const now = vm.nics.map((n) => n.mac);
    if (was && was.join(',') !== now.join(','))
      throw new OstError(
        `${d.manifest}: ${vm.name}'s NICs would get ${now.join(',')}, the deployed guest has ${was.join(',')}`,
        'the suite laid its NICs out differently since the deploy: build the deployed images again',
      );
  }
}

/**
 * Whether an env from deployed layers starts isolated: its guests keep the deploy's addresses, so it needs
 * the deploy's /24s; when another env (or the host, or another tool) holds one, root starts it with its
 * networks in a namespace of its own (the --isolated machinery of checkpoints), saying so; anyone else is
 * told who holds what.
 */
export async function deployedIsolation(
  d: DeployedStart,
  o: { leases: string; uri: string; root: boolean; reporter: Reporter; ipv6Proxy?: boolean },
): Promise<boolean> {
  const held = await subnetHolders(o.leases, await foreignSubnets(o.uri));
  const taken = [...d.subnets].flatMap(([net, prefix]) => {
    const by = held.get(prefix);
    return by ? [`${net} (${prefix}.0/24) is held by ${by}`] : [];
  });
  if (taken.length === 0) return false;
  if (o.ipv6Proxy)
    throw new OstError(
      `the deployed guests keep the addresses of their deploy, and ${taken.join('; ')}; an isolated env keeps the management network's host side in its namespace, where --ipv6-only's SOCKS helper cannot listen`,
      'stop what holds them (ost list, ost down <id>), or leave out --ipv6-only',
    );
  if (!o.root)
    throw new OstError(
      `the deployed guests keep the addresses of their deploy, and ${taken.join('; ')}`,
      'stop what holds them (ost list, ost down <id>), or run ost up as root: it then starts the env with its networks in a namespace of its own',
    );
  await checkMountNamespace();
  // a warning, said with --json too: the env is reached only from inside its namespace
  o.reporter({
    type: 'warning',
    message: `${taken.join('; ')}: the env starts with its networks in a namespace of its own (isolated); reach it with ost ssh / ost exec`,
  });
  return true;
}

/** Each VM's deployed files, there and readable by qemu, on the very image file the VM resolved to. */
function checkedStart(
  env: Environment,
  images: ReadonlyMap<string, ResolvedImage>,
  m: DeployedManifest,
  file: string,
  qemu: Identity,
): DeployedStart {
  const dir = path.dirname(file);
  const problems: string[] = [];
  const vms = new Map<string, { root: string; disks: Map<string, string> }>();
  for (const vm of env.vms) {
    const d = m.vms.find((x) => x.name === vm.name);
    const image = images.get(imageKey(vm));
    if (!d || !image) {
      problems.push(`${file} has no deployed layer for ${vm.name}`);
      continue;
    }
    if (path.join(dir, d.image.file) !== image.path)
      problems.push(`${vm.name}'s deployed layer sits on ${d.image.file}, the VM's image is ${image.path}`);
    const files = [d.file, ...(d.disks ?? []).map((x) => x.file)].map((f) => path.join(dir, f));
    for (const f of files) {
      const why = existsSync(f) ? unreadableBy(qemu, f) : 'it does not exist';
      if (why) problems.push(`${f}: ${why}`);
    }
    vms.set(vm.name, {
      root: path.join(dir, d.file),
      disks: new Map((d.disks ?? []).map((x) => [x.name, path.join(dir, x.file)])),
    });
  }
  if (problems.length > 0)
    throw new OstError(
      `the deployed images of suite ${env.suite} cannot be used: ${problems.join('; ')}`,
      `reinstall them (dnf reinstall ost-images-<distro>-${env.suite}-deployed), or build them again`,
    );
  return {
    manifest: file,
    key: m.key,
    vms,
    subnets: new Map(m.networks.map((n) => [n.name, n.prefix])),
    macs: new Map(m.vms.flatMap((v) => (v.nics ? [[v.name, v.nics.map((n) => n.mac)]] : []))),
  };
}
