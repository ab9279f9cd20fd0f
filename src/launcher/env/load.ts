// ost-env.yaml: suites of networks and VMs. Schema (zod) → normalise → rules; every problem at once.
import * as path from 'node:path';
import { z } from 'zod';
import { type KeyPath, readYamlConfig } from '../../core/config-file.js';
import { ConfigError, InternalError } from '../../core/errors.js';
import { sizeToBytes } from '../../core/units.js';
import {
  type EnvDisk,
  type Environment,
  type EnvNetwork,
  type EnvVm,
  explainKeys,
  type ImageRef,
  type Ipv4,
  MAX_NICS_PER_NETWORK,
  nameSchema,
  resolveDeployScript,
} from './model.js';

const CIDR24 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.0\/24$/;
const SIZE = /^([1-9][0-9]*)([KMGT])?$/;
const PACKAGE_IMAGE = /^([a-z0-9][a-z0-9.]*)-([a-z0-9][a-z0-9-]*)$/;

const networkSchema = z.strictObject({
  management: z.boolean().default(false),
  ipv4: z
    .string()
    .refine((v) => v === 'auto' || v === 'none' || CIDR24.test(v), {
      message: 'expected auto, none or a /24 such as 192.168.201.0/24',
    })
    .default('auto'),
  ipv6: z.boolean().default(true),
  forward: z.enum(['nat', 'isolated']).default('isolated'),
});

const vmSchema = z.strictObject({
  image: z.string().min(1),
  memory: z.number().int().min(256, 'at least 256 (MiB)').default(1024),
  vcpus: z.number().int().min(1).max(64).default(1),
  nics: z.array(z.string().min(1)).min(1, 'a VM needs at least one NIC (on the management network)'),
  disks: z
    .array(
      z.strictObject({
        name: z.string().regex(/^(sd|vd)[b-z]$/, 'expected a device name such as sdb'),
        size: z.string().regex(SIZE, 'expected a size such as 101G or 512M'),
        format: z.enum(['raw', 'qcow2']).default('raw'),
      }),
    )
    .default([]),
  deployScripts: z.array(z.string().min(1)).default([]),
  // true: a squashed package of the image stands in for its chained layers when installed and not older
  squashed: z.boolean().default(true),
});

const suiteSchema = z.strictObject({
  description: z.string().optional(),
  networks: z.record(nameSchema, networkSchema),
  vms: z.record(nameSchema, vmSchema),
  /** Scripts run on the host after every VM's deploy scripts, with the env's env.sh sourced. */
  hostDeployScripts: z.array(z.string().min(1)).default([]),
});

export const envFileSchema = z.strictObject({ suites: z.record(nameSchema, suiteSchema) });

/** Parse an image reference: `/abs/path.qcow2` or `<distro>-<layer>`. */
export function parseImageRef(ref: string): ImageRef | undefined {
  if (ref.startsWith('/')) return { kind: 'path', path: ref };
  const m = PACKAGE_IMAGE.exec(ref);
  return m ? { kind: 'package', distro: m[1] as string, layer: m[2] as string } : undefined;
}

function ipv4Of(v: string): Ipv4 {
  if (v === 'auto') return { kind: 'auto' };
  if (v === 'none') return { kind: 'none' };
  return { kind: 'fixed', cidr: v };
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * NICs naming unknown networks, checked on the raw file so that they are reported together with schema
 * problems (the rules below only run on a file that passed the schema).
 */
function crossReferences(data: unknown, suite: string, add: (p: KeyPath, m: string) => void): void {
  const raw = isRecord(data) && isRecord(data.suites) ? data.suites[suite] : undefined;
  if (!isRecord(raw) || !isRecord(raw.networks) || !isRecord(raw.vms)) return;
  const nets = Object.keys(raw.networks);
  for (const [vm, v] of Object.entries(raw.vms)) {
    if (!isRecord(v) || !Array.isArray(v.nics)) continue;
    v.nics.forEach((n, i) => {
      if (typeof n === 'string' && !nets.includes(n))
        add(
          ['suites', suite, 'vms', vm, 'nics', i],
          `unknown network "${n}"; networks are: ${nets.join(', ')}`,
        );
    });
  }
}

/**
 * NIC names as OST's suites write them: the management NIC (eth0) is named after the VM, the others
 * `<vm>-<network>` (`-2`, `-3` … for more on the same network). Each answers DNS as `ost-<suite>-<nic>`.
 */
export function nicNames(vm: string, networks: readonly string[]): { name: string; network: string }[] {
  const count = new Map<string, number>();
  return networks.map((network, i) => {
    const n = (count.get(network) ?? 0) + 1;
    count.set(network, n);
    return { name: i === 0 ? vm : n === 1 ? `${vm}-${network}` : `${vm}-${network}-${n}`, network };
  });
}

type Add = (p: KeyPath, m: string) => void;
type RawSuite = z.infer<typeof envFileSchema>['suites'][string];

/** A suite's networks, normalised; exactly one is the management network, and it has IPv4. */
function suiteNetworks(raw: RawSuite['networks'], base: KeyPath, add: Add): EnvNetwork[] {
  const networks: EnvNetwork[] = Object.entries(raw).map(([n, v]) => ({
    name: n,
    management: v.management,
    ipv4: ipv4Of(v.ipv4),
    ipv6: v.ipv6,
    forward: v.forward,
    nics: [],
  }));
  const mgmt = networks.filter((n) => n.management);
  if (mgmt.length !== 1) {
    add(
      [...base, 'networks'],
      `exactly one network needs management: true (found ${mgmt.length}); VMs are reached over it`,
    );
  }
  for (const n of mgmt) {
    if (n.ipv4.kind === 'none')
      add([...base, 'networks', n.name, 'ipv4'], 'the management network needs IPv4 (auto or a /24)');
  }
  return networks;
}

/** One VM of a suite, normalised: its image, NICs on known networks (eth0 on management), disks, scripts. */
function suiteVm(
  vmName: string,
  v: RawSuite['vms'][string],
  c: { base: KeyPath; abs: string; add: Add; networks: string[]; mgmt?: string },
): EnvVm {
  const { add } = c;
  const p: KeyPath = [...c.base, 'vms', vmName];
  const image = parseImageRef(v.image);
  if (!image)
    add(
      [...p, 'image'],
      `"${v.image}" is neither <distro>-<layer> (e.g. debian12-engine-installed) nor an absolute path`,
    );
  v.nics.forEach((n, i) => {
    if (!c.networks.includes(n))
      add([...p, 'nics', i], `unknown network "${n}"; networks are: ${c.networks.join(', ')}`);
  });
  if (c.mgmt && v.nics[0] !== c.mgmt) {
    add(
      [...p, 'nics'],
      `the first NIC (eth0) must be on the management network ${c.mgmt}: the VM is reached, and named, through it`,
    );
  }
  const seen = new Set<string>();
  const disks: EnvDisk[] = v.disks.map((d, i) => {
    if (seen.has(d.name)) add([...p, 'disks', i, 'name'], `duplicate disk ${d.name}`);
    seen.add(d.name);
    return { name: d.name, size: d.size, sizeBytes: sizeToBytes(d.size), format: d.format };
  });
  return {
    name: vmName,
    image: image ?? { kind: 'path', path: v.image },
    memoryMiB: v.memory,
    vcpus: v.vcpus,
    nics: nicNames(vmName, v.nics),
    disks,
    deployScripts: v.deployScripts.map((s, i) => {
      const r = resolveDeployScript(path.dirname(c.abs), s);
      if (r.problem)
        add([...p, 'deployScripts', i], `${r.problem}: relative to ${path.basename(c.abs)}'s folder`);
      return { file: r.file, name: s };
    }),
    squashed: v.squashed,
  };
}

/** Load one suite of an ost-env.yaml. Throws ConfigError with every problem. */
export function loadEnvironment(file: string, suite: string): Environment {
  const cfg = readYamlConfig(file, 'pass --env-file or run from the checkout');
  const abs = cfg.file;
  const add = cfg.add;
  const parsed = envFileSchema.safeParse(cfg.data);
  if (!parsed.success) {
    cfg.addIssues(explainKeys(parsed.error.issues));
    crossReferences(cfg.data, suite, add);
    cfg.throwIfProblems();
    throw new InternalError('the env file failed its schema, yet no problem was recorded');
  }
  const raw = parsed.data.suites[suite];
  if (!raw) {
    const known = Object.keys(parsed.data.suites);
    throw new ConfigError([
      {
        file: abs,
        path: 'suites',
        message: `no suite "${suite}"; suites are: ${known.join(', ') || '(none)'}`,
      },
    ]);
  }
  const base: KeyPath = ['suites', suite];
  const networks = suiteNetworks(raw.networks, base, add);
  const mgmt = networks.find((n) => n.management);
  const vms: EnvVm[] = Object.entries(raw.vms).map(([vmName, v]) =>
    suiteVm(vmName, v, { base, abs, add, networks: networks.map((n) => n.name), mgmt: mgmt?.name }),
  );
  if (vms.length === 0) add([...base, 'vms'], 'a suite needs at least one VM');
  // each network's NICs in VM order: their host indexes (2, 3, …) and DNS names
  for (const n of networks) {
    n.nics = vms.flatMap((vm) => vm.nics.filter((nic) => nic.network === n.name).map((nic) => nic.name));
    if (n.nics.length > MAX_NICS_PER_NETWORK)
      add(
        [...base, 'networks', n.name],
        `${n.nics.length} NICs on it; a network takes at most ${MAX_NICS_PER_NETWORK} (addresses .2 to .99)`,
      );
  }
  const hostDeployScripts = raw.hostDeployScripts.map((s, i) => {
    const r = resolveDeployScript(path.dirname(abs), s);
    if (r.problem)
      add([...base, 'hostDeployScripts', i], `${r.problem}: relative to ${path.basename(abs)}'s folder`);
    return { file: r.file, name: s };
  });
  cfg.throwIfProblems();
  return { suite, file: abs, kind: 'ost-env', networks, vms, hostDeployScripts };
}
