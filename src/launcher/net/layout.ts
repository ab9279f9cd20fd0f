// Names, bridges, addresses and MACs of one environment, as OST's lagofy.sh lays them out: a pure function
// of the environment, its 8-hex id and its leased subnets, so two envs never collide and the layout is
// unit-testable. See docs/ost-harness-facts.md §1.3–1.4 for what OST's harness reads back.
import { randomBytes } from 'node:crypto';
import { InternalError } from '../../core/errors.js';
import type { Environment } from '../env/model.js';

/** Which address families the networks carry: both (default), or only one (`ost.sh run -4` / `-6`). */
export type IpMode = 'dual' | 'ipv4' | 'ipv6';

export interface NetLayout {
  /** The network's key in the suite file (its role). */
  name: string;
  /** `ost<id>-<N>`: libvirt network and bridge name (15 characters, the Linux limit). */
  libvirtName: string;
  bridge: string;
  /** N: the third octet of its 192.168.N.0/24 (also in its IPv6 prefix and MACs). */
  subnet: number;
  management: boolean;
  forward: 'nat' | 'isolated';
  ipv4?: { prefix: string; cidr: string; gateway: string };
  /** `fd8f:1391:3a82:N::/64`, as OST's templates. */
  ipv6?: { prefix: string; cidr: string; gateway: string };
}

export interface NicLayout {
  name: string;
  network: string;
  /** `ost-<suite>-<nic>`: its DHCP and DNS name. */
  hostname: string;
  /** Host index on its network: 2, 3, … */
  index: number;
  /** `54:52:c0:a8:<N hex>:<index, two decimal digits>` */
  mac: string;
  ipv4?: string;
  ipv6?: string;
}

export interface VmLayout {
  name: string;
  /** `<id>-ost-<suite>-<vm>`: OST's harness names the VM by what follows the first dash. */
  libvirtName: string;
  /** `ost-<suite>-<vm>`: the guest's hostname (from DHCP on its management NIC) and DNS name. */
  hostname: string;
  roles: string[];
  nics: NicLayout[];
  /** The management address ost connects to (IPv4 when the network has it). */
  address: string;
  /** The management address OST's `hosts` file names: IPv6 unless IPv4 only (as lagofy.sh). */
  hostsAddress: string;
}

export interface EnvLayout {
  networks: NetLayout[];
  vms: VmLayout[];
}

/** A new env id: 8 lowercase hex digits, as lagofy's `uuidgen | cut -c -8`. */
export function newEnvId(): string {
  return randomBytes(4).toString('hex');
}

export const ENV_ID = /^[0-9a-f]{8}$/;

/** The role of a VM: its name without a trailing index (host-0 → host). */
export function roleOf(vm: string): string {
  return vm.replace(/-\d+$/, '');
}

const hex2 = (n: number) => n.toString(16).padStart(2, '0');
const dec2 = (n: number) => String(n).padStart(2, '0');

/** The MAC of host `index` on subnet N: 54:52:c0:a8:<N hex>:<index as two decimal digits> (lagofy.sh). */
export function macFor(subnet: number, index: number): string {
  return `54:52:c0:a8:${hex2(subnet)}:${dec2(index)}`;
}

/** The IPv6 prefix of subnet N: N written as it is (fd8f:1391:3a82:202::/64), as OST's net_template. */
export function ipv6PrefixOf(subnet: number): string {
  return `fd8f:1391:3a82:${subnet}`;
}

/** The NICs on a network, by host index. */
export function nicsOn(vms: readonly VmLayout[], net: NetLayout): NicLayout[] {
  return vms
    .flatMap((vm) => vm.nics.filter((nic) => nic.network === net.name))
    .sort((a, b) => a.index - b.index);
}

/** A network's dynamic DHCP ranges beside its static hosts (lagofy.sh's net_template): .100–.254, and the IPv6 twin. */
export function dhcpRanges(net: NetLayout): {
  ipv4?: { start: string; end: string };
  ipv6?: { start: string; end: string };
} {
  const hex = net.subnet.toString(16).padStart(2, '0');
  return {
    ipv4: net.ipv4 && { start: `${net.ipv4.prefix}.100`, end: `${net.ipv4.prefix}.254` },
    ipv6: net.ipv6 && {
      start: `${net.ipv6.prefix}::c0a8:${hex}64`,
      end: `${net.ipv6.prefix}::c0a8:${hex}fe`,
    },
  };
}

/**
 * What the env's DNS answers: every NIC's addresses by its DNS name (`ost-<suite>-<nic>`), network by
 * network in host-index order, and with `shortNames` each VM's name too on its first NIC's addresses.
 */
export function dnsEntries(
  networks: readonly NetLayout[],
  vms: readonly VmLayout[],
  shortNames: boolean,
): { ip: string; names: string[] }[] {
  const alias = new Map(
    vms.flatMap((vm) => (shortNames ? vm.nics.slice(0, 1).map((nic) => [nic.hostname, vm.name]) : [])),
  );
  return networks.flatMap((net) =>
    nicsOn(vms, net).flatMap((nic) => {
      const names = [nic.hostname, ...(alias.has(nic.hostname) ? [alias.get(nic.hostname) as string] : [])];
      return [nic.ipv4, nic.ipv6].flatMap((ip) => (ip ? [{ ip, names }] : []));
    }),
  );
}

/** The shapes of env object names (lagofy.sh's): `ost<id>-<N>` (N: the subnet) and `<id>-ost-<suite>-<vm>`. */
export const NETWORK_NAME = /^ost([0-9a-f]{8})-(\d{1,3})$/;
export const DOMAIN_NAME = /^([0-9a-f]{8})-ost-/;

/** libvirt network (and bridge) name: `ost<id>-<N>`; OST's allocator reads N back from it. */
export function networkName(envId: string, subnet: number): string {
  return `ost${envId}-${subnet}`;
}

/** Domain name: `<id>-ost-<suite>-<vm>`. */
export function domainName(envId: string, suite: string, vm: string): string {
  return `${envId}-ost-${suite}-${vm}`;
}

/** Lay an environment out on its leased /24 prefixes (network name → `a.b.c`). */
export function layoutEnv(
  env: Environment,
  envId: string,
  prefixes: ReadonlyMap<string, string>,
  mode: IpMode = 'dual',
): EnvLayout {
  const networks: NetLayout[] = env.networks.map((n) => {
    const prefix = prefixes.get(n.name);
    if (!prefix) throw new InternalError(`no subnet leased for network ${n.name}`);
    const subnet = Number(prefix.split('.')[2]);
    const name = networkName(envId, subnet);
    const v6 = ipv6PrefixOf(subnet);
    return {
      name: n.name,
      libvirtName: name,
      bridge: name,
      subnet,
      management: n.management,
      forward: n.forward,
      ipv4:
        n.ipv4.kind !== 'none' && mode !== 'ipv6'
          ? { prefix, cidr: `${prefix}.0/24`, gateway: `${prefix}.1` }
          : undefined,
      ipv6: n.ipv6 && mode !== 'ipv4' ? { prefix: v6, cidr: `${v6}::/64`, gateway: `${v6}::1` } : undefined,
    };
  });
  const byName = new Map(networks.map((n) => [n.name, n]));
  // every NIC's host index is its position in its network's NIC list, from 2
  const nicOf = new Map<string, NicLayout>();
  for (const n of env.networks) {
    const net = byName.get(n.name) as NetLayout;
    n.nics.forEach((nic, i) => {
      const index = i + 2;
      nicOf.set(nic, {
        name: nic,
        network: n.name,
        hostname: `ost-${env.suite}-${nic}`,
        index,
        mac: macFor(net.subnet, index),
        ipv4: net.ipv4 ? `${net.ipv4.prefix}.${index}` : undefined,
        ipv6: net.ipv6 ? `${net.ipv6.prefix}::c0a8:${hex2(net.subnet)}${dec2(index)}` : undefined,
      });
    });
  }
  const mgmt = networks.find((n) => n.management);
  const vms: VmLayout[] = env.vms.map((vm) => {
    const nics = vm.nics.map((nic) => {
      const l = nicOf.get(nic.name);
      if (!l || l.network !== nic.network)
        throw new InternalError(`VM ${vm.name}: NIC ${nic.name} is not on network ${nic.network}`);
      return l;
    });
    const m = nics.find((n) => n.network === mgmt?.name);
    return {
      name: vm.name,
      libvirtName: domainName(envId, env.suite, vm.name),
      hostname: `ost-${env.suite}-${vm.name}`,
      roles: [roleOf(vm.name)],
      nics,
      address: m?.ipv4 ?? m?.ipv6 ?? '',
      hostsAddress: (mode === 'ipv4' ? m?.ipv4 : (m?.ipv6 ?? m?.ipv4)) ?? '',
    };
  });
  return { networks, vms };
}
