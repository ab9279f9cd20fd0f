// The env dir: env.json (what `ost up` made and how long it took), the Ansible inventory and ssh_config.
import * as path from 'node:path';
import { atomicWriteFile } from '../../core/fsutil.js';
import { oneLine, oneLineAll } from '../../core/lines.js';
import type { ProcessId } from '../../core/process.js';
import type { IpMode, NetLayout, VmLayout } from '../net/layout.js';

/**
 * Where ost keeps env dirs and leases: `stateDir` (OST_STATE_DIR), else /run/ost for root and the user's
 * runtime dir (`runtimeDir`, $XDG_RUNTIME_DIR: `<it>/ost`) for others — gone on reboot, like the VMs.
 */
export function stateRoot(
  dirs: { stateDir?: string; runtimeDir?: string },
  uid = process.getuid?.() ?? 0,
): string {
  if (dirs.stateDir) return path.resolve(dirs.stateDir);
  if (uid !== 0) return path.join(dirs.runtimeDir || `/run/user/${uid}`, 'ost');
  return '/run/ost';
}
export const envsDir = (root: string) => path.join(root, 'envs');
export const leasesDir = (root: string) => path.join(root, 'leases');
export const envDirOf = (root: string, id: string) => path.join(envsDir(root), id);

export interface VmRecord extends VmLayout {
  image: {
    ref: string;
    path: string;
    package?: { name: string; version: string; release: string };
    chain: string[];
    /** The OST_IMAGES_* variable an ost.json named it by. */
    var?: string;
    /** The custom layer (ost up --custom-repo) the VM's overlay sits on, on top of this image. */
    custom?: AppliedCustomLayer;
  };
  /** The file the root overlay was made on (the custom layer, else the image); a second start uses it too. */
  overlayBase?: string;
  overlay: string;
  disks: { name: string; path: string; size: string; format: string }[];
  memoryMiB: number;
  vcpus: number;
  consoleLog: string;
  key: string;
  /** Deploy scripts as the suite wrote them. */
  deployScripts: string[];
  systemState?: string;
  /** ms per step (overlay, start, bootToSsh); `startedAt`, `sshOpenAt`, `readyAt`: wall-clock epoch ms. */
  timings: Record<string, number>;
}

/**
 * The file a VM's root overlay was made on: as the plan decided it (env.json since the overlay base was
 * recorded), else as it was decided then — the custom layer when the VM has one, else its image.
 */
export function overlayBaseOf(vm: Pick<VmRecord, 'overlayBase' | 'image'>): string {
  return vm.overlayBase ?? vm.image.custom?.file ?? vm.image.path;
}

/** A custom layer as the launcher uses it: the file its overlays go on, and what it carries. */
export interface AppliedCustomLayer {
  /** layer.qcow2 in the layer cache (its backing file is the image). */
  file: string;
  key: string;
  /** Built by this ost up (false: reused from the cache). */
  built: boolean;
  repos: { name: string; source: string }[];
  /** The custom packages the VM runs, at the repos' versions. */
  packages: { name: string; version: string; arch: string; repo: string }[];
}

export interface EnvRecord {
  version: 1;
  id: string;
  suite: string;
  source: string;
  /** `ost-json`: an OST suite, with a deployment dir OST's harness reads. */
  kind: 'ost-json' | 'ost-env';
  /** The OST checkout of an ost.json suite. */
  ostRepo?: string;
  ipMode: IpMode;
  /** ost.sh run -6 of an OST suite: the SOCKS helper sshd (port 2222 at the management IPv6 gateway). */
  ipv6Proxy?: { address: string; pid: number };
  /** OST_IMAGES_DISTRO of an ost.json suite. */
  distro?: string;
  status: 'starting' | 'up' | 'failed';
  owner: ProcessId;
  created: string;
  uri: string;
  /** ost's env dir, `<state>/envs/<id>`: root's own when root runs ost. */
  workdir: string;
  /**
   * An OST suite's deployment dir and its owner: what is there (hosts, env.sh, the key's copy, a link to
   * the logs) is written and removed by a child with the owner's rights (env-dir/deployment.ts).
   */
  deployment?: { dir: string; uid: number; gid: number };
  overlayDir: string;
  domainType: 'kvm' | 'qemu';
  networks: NetLayout[];
  vms: VmRecord[];
  /** ost up --custom-repo: the repos applied (in the VMs' images already) and the layers the env uses. */
  custom?: { repos: string[]; install: string[]; layers: string[] };
  /** Its deploy scripts ran (by this up, before the checkpoint it was restored from, or before its deployed layers were made). */
  deployed?: boolean;
  /** ost up --deployed: the deployed manifest its VMs started from, and its key. */
  deployedFrom?: { manifest: string; key: string };
  /** An isolated env (ost up --from … --isolated): the network namespace its networks' host side is in. */
  netns?: string;
  /** The checkpoint the VMs were restored from (ost up --from, ost revert): their disks sit on its files. */
  checkpoint?: { name: string; dir: string; key: string };
  /** Milliseconds per phase, and `total`. */
  timings: Record<string, number>;
}

export const envJsonPath = (workdir: string) => path.join(workdir, 'env.json');

/** env.json, 0644 whatever the umask (read back only when nobody else can write it: trusted-record.ts). */
export async function writeRecord(r: EnvRecord): Promise<void> {
  await atomicWriteFile(envJsonPath(r.workdir), `${JSON.stringify(r, null, 2)}\n`, 0o644);
}

const SSH_OPTIONS = [
  'User root',
  'IdentitiesOnly yes',
  'StrictHostKeyChecking no',
  'UserKnownHostsFile /dev/null',
  'LogLevel ERROR',
  'ConnectTimeout 10',
];

/** `ssh -F ssh_config <vm>` works with the VM name or its DNS name. Every value stays on its line. */
export function renderSshConfig(r: EnvRecord): string {
  const file = 'ssh_config';
  const blocks = r.vms.map((vm, i) => {
    const at = (field: string) => ({ file, field: `vms[${i}].${field}` });
    return [
      `Host ${oneLine(vm.name, at('name'))} ${oneLine(vm.hostname, at('hostname'))}`,
      `  HostName ${oneLine(vm.address, at('address'))}`,
      `  IdentityFile ${oneLine(vm.key, at('key'))}`,
    ]
      .concat(SSH_OPTIONS.map((o) => `  ${o}`))
      .join('\n');
  });
  oneLineAll({ id: r.id, suite: r.suite, workdir: r.workdir }, file);
  return `# ost environment ${r.id} (suite ${r.suite}); use: ssh -F ${path.join(r.workdir, 'ssh_config')} <vm>\n${blocks.join('\n\n')}\n`;
}

const group = (name: string) => name.replace(/[^A-Za-z0-9_]/g, '_');

/** Ansible INI inventory: a group per role and per VM, connection variables per host; one line each. */
export function renderInventory(r: EnvRecord): string {
  const file = 'inventory';
  oneLineAll({ id: r.id, suite: r.suite }, file);
  for (const [i, vm] of r.vms.entries()) {
    const v = `vms[${i}]`;
    const roles = Object.fromEntries(vm.roles.map((role, j) => [`${v}.roles[${j}]`, role]));
    const { name, hostname, address, key } = vm;
    oneLineAll(
      {
        [`${v}.name`]: name,
        [`${v}.hostname`]: hostname,
        [`${v}.address`]: address,
        [`${v}.key`]: key,
        ...roles,
      },
      file,
    );
  }
  const lines = [`# ost environment ${r.id} (suite ${r.suite})`];
  const host = (vm: VmRecord) =>
    `${vm.hostname} ansible_host=${vm.address} ansible_user=root ansible_ssh_private_key_file=${vm.key}`;
  const roles = [...new Set(r.vms.flatMap((vm) => vm.roles))];
  for (const role of roles) {
    lines.push('', `[${group(role)}]`, ...r.vms.filter((vm) => vm.roles.includes(role)).map(host));
  }
  for (const vm of r.vms) {
    if (vm.roles.length === 1 && vm.roles[0] === vm.name) continue;
    lines.push('', `[${group(vm.name)}]`, host(vm));
  }
  lines.push(
    '',
    '[all:vars]',
    "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes'",
    `ost_env_id=${r.id}`,
    `ost_suite=${r.suite}`,
  );
  return `${lines.join('\n')}\n`;
}
