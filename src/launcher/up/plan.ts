// The plan of one `ost up`: a pure function of what was asked and what was read (the suite, the images as
// resolved, the custom layers, the checkpoint, who runs it, where overlays go). It decides the env id, the
// mode (boot, restore from a checkpoint, isolated restore), every directory and file the up creates with
// the uid that will own it, and one record per VM with its image chain and overlay base, decided once.
// The phases (phases.ts) carry it out; `ost up --dry-run` prints it (dry-run.ts).

import * as path from 'node:path';
import { InternalError } from '../../core/errors.js';
import type { ProcessId } from '../../core/process.js';
import type { CheckpointVm, StoredCheckpoint } from '../checkpoint/store.js';
import type { Environment, EnvVm } from '../env/model.js';
import { type AppliedCustomLayer, envDirOf } from '../env-dir/record.js';
import { MARKER } from '../env-dir/workdir.js';
import type { Identity } from '../images/qemu-user.js';
import { imageKey, type ResolvedImage } from '../images/resolve.js';
import { SSHD_AUTHORIZED_KEY } from '../ipv6-proxy.js';
import type { IpMode } from '../net/layout.js';
import { type KeySource, type VmKey, vmKeys } from './plan-keys.js';

/** How the VMs come up: booted from their images, or restored from a checkpoint (in a namespace of their own). */
export type UpMode = 'boot' | 'restore' | 'isolated-restore';

/** A directory or file the up creates, and who owns it once the up is done. */
export interface PlannedPath {
  path: string;
  kind: 'dir' | 'file' | 'symlink';
  uid: number;
  gid?: number;
  mode?: number;
  what: string;
}

/** One VM of the plan: its image, the chain its root overlay sits on, and every file of its own. */
export interface VmPlan {
  name: string;
  vm: EnvVm;
  image: ResolvedImage;
  /** The custom layer (--custom-repo) its overlay sits on, when it has one. */
  custom?: AppliedCustomLayer;
  /** Absolute file names under the root overlay, top first (a deployed or custom layer, then the image's chain). */
  chain: string[];
  /** The file the root overlay is created on when booting (and again for a second start). */
  overlayBase: string;
  /** With --from: the checkpoint's record of this VM (its frozen disks are the overlays' backing files). */
  checkpoint?: CheckpointVm;
  overlay: string;
  /** Extra disks; `base`: a deployed disk the disk is an overlay of (qcow2), else made empty. */
  disks: {
    name: string;
    path: string;
    size: string;
    sizeBytes: number;
    format: 'raw' | 'qcow2';
    base?: string;
  }[];
  /** The private key it logs in with, in the env dir (0600), its public half beside it (`.pub`). */
  key: string;
  /** OST suites: the owner's copy of the key in the deployment dir, the one `hosts` names. */
  harnessKey?: string;
  /** Where `key` comes from. */
  keyFrom: KeySource;
  consoleLog: string;
  domainXml: string;
}

export interface UpPlan {
  id: string;
  suite: string;
  env: Environment;
  mode: UpMode;
  from?: StoredCheckpoint;
  /** --deployed: the deployed layers the VMs start from (no deploy script runs). */
  deployed?: DeployedStart;
  /**
   * The env's networks are bare bridges whose host side (gateways, DHCP, DNS) is in a network namespace of
   * its own (net/isolated.ts): an isolated restore, or deployed layers whose subnets another env holds.
   */
  isolated: boolean;
  /** Who may own the host deploy scripts ost runs with its rights (and each folder on their way). */
  scriptOwners: number[];
  ipMode: IpMode;
  /** An OST suite (ost.json): its env dir is the deployment dir OST's harness reads. */
  ostSuite: boolean;
  deploy: boolean;
  wait: boolean;
  domainType: 'kvm' | 'qemu';
  uri: string;
  /** Where ost keeps env links and leases. */
  stateRoot: string;
  /** The user libvirt runs qemu as: the guest disks are its. */
  qemuUser: string;
  /**
   * The env dir, `<state>/envs/<id>`: ost's own (env.json, logs, keys, XML, extra disks of OST suites),
   * never a dir another user can write.
   */
  workdir: string;
  /**
   * An OST suite's deployment dir, the folder OST's harness reads: its owner's (`deploymentOwner`), so
   * what goes there (hosts, env.sh, the key's copy, links to the logs) is written by a child with that
   * owner's rights, never by root by path.
   */
  deployment?: string;
  /** Who the deployment dir belongs to: the user of sudo (SUDO_UID/GID), else the owner of its parent. */
  deploymentOwner?: { uid: number; gid: number };
  overlayRoot: string;
  overlayDir: string;
  /** Where extra disks go: beside the overlays, for every suite (lagofy.sh's went to the deployment's images/). */
  disksDir: string;
  reserveBytes: number;
  /** Networks and the /24 each asks for (fixed by the suite or the checkpoint; else leased). */
  networks: { name: string; fixed?: string }[];
  vms: VmPlan[];
  /** --custom-repo / --custom-install: what the custom layers were made from. */
  customRequest?: { repos: string[]; install: string[] };
  /** Everything created, in order, with its owner when the up is done. */
  paths: PlannedPath[];
  /** Said once by the up: some image reads no SSH key credential, so its set's shipped key opens the env. */
  keyNotice?: string;
}

/** What the plan is made from: the checked request and what was read for it. */
export interface PlanInputs {
  env: Environment;
  id: string;
  ipMode: IpMode;
  deploy: boolean;
  wait: boolean;
  from?: StoredCheckpoint;
  /** --from … --isolated; or, for --deployed, the deploy's subnets are taken on the host. */
  isolated: boolean;
  uri: string;
  stateRoot: string;
  /** OST suites: the deployment dir, absolute (default `<OST checkout>/deployment`). */
  deployment?: string;
  overlayRoot: string;
  reservePerVmBytes: number;
  images: ReadonlyMap<string, ResolvedImage>;
  /** Each image file's custom layer (by ResolvedImage.ref), or none. */
  custom: ReadonlyMap<string, AppliedCustomLayer | undefined>;
  domainType: 'kvm' | 'qemu';
  /** The user ost runs as, and qemu's identity (who owns what). */
  self: { uid: number; gid: number; pid: ProcessId };
  qemu: Identity;
  /** The deployment dir's owner (see UpPlan.deploymentOwner). */
  deploymentOwner?: { uid: number; gid: number };
  /** Who ran ost through sudo (SUDO_UID), if anyone. */
  invoker?: number;
  customRequest?: { repos: string[]; install: string[] };
  /** --deployed: each VM's deployed layers and the subnets its deploy had (images/deployed.ts). */
  deployed?: DeployedStart;
}

/** Where an env started from deployed layers comes from (a checked deployed manifest). */
export interface DeployedStart {
  /** The manifest file, and its key. */
  manifest: string;
  key: string;
  /** VM name → its deployed root layer and its deployed extra disks (by disk name), absolute. */
  vms: ReadonlyMap<string, { root: string; disks: ReadonlyMap<string, string> }>;
  /** Network name → its /24 prefix (`a.b.c`) as the deploy had it. */
  subnets: ReadonlyMap<string, string>;
  /** VM name → its NICs' MACs as the deploy had them (the guests keep them), when the manifest says. */
  macs: ReadonlyMap<string, string[]>;
}

/** The mode an up runs in. */
export function modeOf(from: StoredCheckpoint | undefined, isolated: boolean): UpMode {
  return !from ? 'boot' : isolated ? 'isolated-restore' : 'restore';
}

/** The deployment dir of an OST suite: as given, else `<checkout>/deployment`, absolute. */
export function deploymentOf(env: Environment, given: string | undefined): string | undefined {
  if (env.kind !== 'ost-json') return undefined;
  return path.resolve(given ?? path.join(env.ostRepo as string, 'deployment'));
}

function vmPlan(
  i: PlanInputs,
  vm: EnvVm,
  key: VmKey,
  dirs: { workdir: string; overlayDir: string; disksDir: string },
): VmPlan {
  const { workdir, overlayDir, disksDir } = dirs;
  const image = i.images.get(imageKey(vm));
  if (!image) throw new InternalError(`no resolved image for ${vm.name} (${imageKey(vm)})`);
  const custom = i.custom.get(image.ref);
  const checkpoint = i.from?.record.vms.find((c) => c.name === vm.name);
  if (i.from && !checkpoint) throw new InternalError(`checkpoint ${i.from.name} has no VM ${vm.name}`);
  const deployed = i.deployed?.vms.get(vm.name);
  if (i.deployed && !deployed) throw new InternalError(`no deployed layer for ${vm.name}`);
  const top = deployed?.root ?? custom?.file;
  return {
    name: vm.name,
    vm,
    image,
    custom,
    chain: top ? [top, ...image.chain] : image.chain,
    overlayBase: top ?? image.path,
    checkpoint,
    overlay: path.join(overlayDir, `${vm.name}.qcow2`),
    // a restored VM's extra disks are overlays of the checkpoint's frozen files: qcow2 whatever they were
    disks: vm.disks.map((d) => {
      const base = deployed?.disks.get(d.name);
      const format = i.from || base ? 'qcow2' : d.format;
      return {
        name: d.name,
        path: path.join(disksDir, `${vm.name}-${d.name}.${format === 'raw' ? 'raw' : 'qcow2'}`),
        size: d.size,
        sizeBytes: d.sizeBytes,
        format,
        base,
      };
    }),
    key: path.join(workdir, 'keys', key.name),
    harnessKey: i.deployment && path.join(i.deployment, 'keys', key.name),
    keyFrom: key.from,
    consoleLog: path.join(workdir, 'logs', vm.name),
    domainXml: path.join(workdir, 'libvirt', `domain-${vm.name}.xml`),
  };
}

/**
 * The env's keys (each with its public half, which the guests get), an OST suite's deployment dir and, for
 * ost.sh run -6's SOCKS sshd, the key it authorizes where its user can read it.
 */
function keyPaths(p: Omit<UpPlan, 'paths'>, ost: number): PlannedPath[] {
  const out: PlannedPath[] = [];
  for (const key of new Set(p.vms.map((v) => v.key)))
    out.push(
      { path: key, kind: 'file', uid: ost, mode: 0o600, what: 'private key' },
      {
        path: `${key}.pub`,
        kind: 'file',
        uid: ost,
        mode: 0o644,
        what: 'its public half (the guests get it)',
      },
    );
  out.push(...deploymentPaths(p));
  // ost.sh run -6's SOCKS sshd: the key it authorizes, where its user can read it
  if (p.ostSuite && p.ipMode === 'ipv6') {
    const proxyKey = path.join(p.workdir, SSHD_AUTHORIZED_KEY);
    const proxyDir = {
      path: path.dirname(proxyKey),
      kind: 'dir',
      uid: ost,
      mode: 0o755,
      what: 'the SOCKS sshd',
    } as const;
    out.push(proxyDir, {
      path: proxyKey,
      kind: 'file',
      uid: ost,
      mode: 0o644,
      what: 'the key it authorizes',
    });
  }
  return out;
}

/** Every directory and file the up makes, with its owner once it is done. */
function plannedPaths(i: PlanInputs, p: Omit<UpPlan, 'paths'>): PlannedPath[] {
  const ost = i.self.uid;
  const root = ost === 0;
  // root gives each guest disk to qemu alone; anyone else keeps it and shares it with qemu's group
  const disk = root
    ? { uid: i.qemu.uid, gid: i.qemu.gid, mode: 0o600 }
    : { uid: ost, gid: i.qemu.gid, mode: 0o660 };
  const dir = (d: string, mode: number, what: string): PlannedPath => ({
    path: d,
    kind: 'dir',
    uid: ost,
    mode,
    what,
  });
  const out: PlannedPath[] = [
    // the deployment dir's owner reads the console logs through it (its logs link)
    dir(p.workdir, 0o711, 'env dir'),
    {
      path: path.join(p.workdir, MARKER),
      kind: 'file',
      uid: ost,
      mode: 0o644,
      what: 'marker: env id and this ost up',
    },
    dir(path.join(p.workdir, 'logs'), 0o755, 'logs'),
    dir(path.join(p.workdir, 'libvirt'), 0o700, 'libvirt'),
    dir(path.join(p.workdir, 'keys'), 0o700, 'private keys'),
    { path: path.join(p.workdir, 'env.json'), kind: 'file', uid: ost, mode: 0o644, what: 'env record' },
  ];
  out.push(...keyPaths(p, ost));
  out.push(
    { path: p.overlayDir, kind: 'dir', uid: ost, gid: i.qemu.gid, mode: 0o750, what: 'overlay dir' },
    { path: path.join(p.overlayDir, '.reserve'), kind: 'file', uid: ost, mode: 0o640, what: 'room reserved' },
  );
  for (const vm of p.vms) {
    out.push({ path: vm.overlay, kind: 'file', ...disk, what: `${vm.name} root disk overlay` });
    for (const d of vm.disks)
      out.push({ path: d.path, kind: 'file', ...disk, what: `${vm.name} disk ${d.name}` });
  }
  for (const f of ['network', 'domain'] as const) {
    const names = f === 'network' ? p.networks.map((n) => n.name) : p.vms.map((v) => v.name);
    for (const n of names)
      out.push({
        path: path.join(p.workdir, 'libvirt', `${f}-${n}.xml`),
        kind: 'file',
        uid: ost,
        what: `${f} XML`,
      });
  }
  for (const vm of p.vms)
    out.push({
      path: vm.consoleLog,
      kind: 'file',
      uid: ost,
      mode: 0o644,
      what: `${vm.name} serial console (virtlogd)`,
    });
  for (const f of ['inventory', 'ssh_config'])
    out.push({ path: path.join(p.workdir, f), kind: 'file', uid: ost, what: 'for ssh and Ansible' });
  return out;
}

/** What an OST suite's deployment dir gets, all of it made by a child with its owner's rights. */
export function deploymentPaths(
  p: Pick<UpPlan, 'deployment' | 'deploymentOwner' | 'workdir' | 'vms'>,
): PlannedPath[] {
  const d = p.deployment;
  const uid = p.deploymentOwner?.uid;
  if (!d || uid === undefined) return [];
  const out: PlannedPath[] = [
    { path: d, kind: 'dir', uid, mode: 0o755, what: 'deployment dir (refused when it exists)' },
    { path: path.join(d, MARKER), kind: 'file', uid, mode: 0o644, what: 'marker: env id and this ost up' },
    { path: path.join(d, 'logs'), kind: 'symlink', uid, what: `link to ${path.join(p.workdir, 'logs')}` },
    { path: path.join(d, 'keys'), kind: 'dir', uid, mode: 0o700, what: "the key OST's harness uses" },
  ];
  for (const key of new Set(p.vms.flatMap((v) => (v.harnessKey ? [v.harnessKey] : []))))
    out.push(
      { path: key, kind: 'file', uid, mode: 0o600, what: 'private key (its copy)' },
      // OST's `ost.sh run -6` authorizes ${OST_IMAGES_SSH_KEY}.pub on its SOCKS sshd
      { path: `${key}.pub`, kind: 'file', uid, mode: 0o644, what: 'its public half' },
    );
  for (const f of ['hosts', 'env.sh'])
    out.push({ path: path.join(d, f), kind: 'file', uid, mode: 0o644, what: "for OST's harness" });
  return out;
}

/** The plan of an up. Pure: every value comes from the inputs. */
export function planUp(i: PlanInputs): UpPlan {
  const { env } = i;
  const deployment = i.deployment;
  const workdir = envDirOf(i.stateRoot, i.id);
  const overlayDir = path.join(i.overlayRoot, i.id);
  // beside the overlays (qemu reaches them there, and the room they take is counted with the overlays')
  const disksDir = overlayDir;
  const mode = modeOf(i.from, i.isolated);
  const keys = vmKeys(i);
  // a checkpoint's guests keep their addresses: its subnets (taken in a namespace of its own when isolated)
  const fromSubnets = new Map(i.from?.record.env.networks.map((n) => [n.name, `192.168.${n.subnet}`]));
  const plan: Omit<UpPlan, 'paths'> = {
    id: i.id,
    suite: env.suite,
    env,
    mode,
    from: i.from,
    deployed: i.deployed,
    isolated: i.isolated,
    scriptOwners: [...new Set([0, i.self.uid, ...(i.invoker !== undefined ? [i.invoker] : [])])],
    ipMode: i.ipMode,
    ostSuite: env.kind === 'ost-json',
    deploy: i.deploy,
    wait: i.wait,
    domainType: i.domainType,
    uri: i.uri,
    stateRoot: i.stateRoot,
    qemuUser: i.qemu.name,
    workdir,
    deployment,
    deploymentOwner: deployment ? (i.deploymentOwner ?? { uid: i.self.uid, gid: i.self.gid }) : undefined,
    overlayRoot: i.overlayRoot,
    overlayDir,
    disksDir,
    reserveBytes: i.reservePerVmBytes * env.vms.length,
    networks: env.networks.map((n) => ({
      name: n.name,
      fixed:
        fromSubnets.get(n.name) ??
        i.deployed?.subnets.get(n.name) ??
        (n.ipv4.kind === 'fixed' ? n.ipv4.cidr.replace(/\.0\/24$/, '') : undefined),
    })),
    vms: env.vms.map((vm) =>
      vmPlan(i, vm, keys.keys.get(vm.name) as VmKey, { workdir, overlayDir, disksDir }),
    ),
    customRequest: i.customRequest,
    keyNotice: keys.notice,
  };
  return { ...plan, paths: plannedPaths(i, plan) };
}
