// Names, bridges, addresses and MACs of one environment: a pure function of the environment, its id and
// its leased subnets, so two envs of the same suite never collide and the layout is unit-testable.
import { createHash } from 'node:crypto';
import type { Environment } from '../env/model.js';

export interface NetLayout {
  name: string;
  libvirtName: string;
  bridge: string;
  management: boolean;
  forward: 'nat' | 'isolated';
  /** `192.168.200` style prefix of the /24, when the network has IPv4. */
  ipv4?: { prefix: string; cidr: string; gateway: string };
  /** ULA /64 when the network has IPv6. */
  ipv6?: { cidr: string; gateway: string };
}

export interface NicLayout {
  name: string;
  network: string;
  mac: string;
  /** Static DHCP address (first NIC of a VM on an IPv4 network). */
  ipv4?: string;
}

export interface VmLayout {
  name: string;
  libvirtName: string;
  /** DNS name on the management network: `ost-<suite>-<vm>`. */
  hostname: string;
  roles: string[];
  nics: NicLayout[];
  /** The management address SSH uses. */
  address: string;
}

export interface EnvLayout {
  networks: NetLayout[];
  vms: VmLayout[];
}

/** The role of a VM: its name without a trailing index (host-0 → host). */
export function roleOf(vm: string): string {
  return vm.replace(/-\d+$/, '');
}

const hex2 = (n: number) => n.toString(16).padStart(2, '0');

/** The MAC that encodes an IPv4 address: 54:52 then the four octets (54:52:c0:a8:c8:02 = 192.168.200.2). */
export function macForIpv4(ip: string): string {
  return ['54:52', ...ip.split('.').map((o) => hex2(Number(o)))].join(':');
}

/** A ULA /64 for one network of one env: fd + 40 bits from the env id, the subnet id from the network index. */
export function ulaPrefix(envId: string, netIndex: number): string {
  const h = createHash('sha256').update(envId).digest('hex');
  return `fd${h.slice(0, 2)}:${h.slice(2, 6)}:${h.slice(6, 10)}:${netIndex.toString(16)}`;
}

/** A short tag of the env id for bridge names (Linux caps interface names at 15 characters). */
export function envTag(envId: string): string {
  return createHash('sha256').update(envId).digest('hex').slice(0, 6);
}

/** Lay an environment out on its leased /24 prefixes (network name → `a.b.c`). */
export function layoutEnv(env: Environment, envId: string, prefixes: ReadonlyMap<string, string>): EnvLayout {
  const tag = envTag(envId);
  const networks: NetLayout[] = env.networks.map((n, i) => {
    const prefix = prefixes.get(n.name);
    if (n.ipv4.kind !== 'none' && !prefix) throw new Error(`no subnet leased for network ${n.name}`);
    const ula = ulaPrefix(envId, i);
    return {
      name: n.name,
      libvirtName: `ost-${envId}-${n.name}`,
      bridge: `ost${tag}n${i}`,
      management: n.management,
      forward: n.forward,
      ipv4:
        n.ipv4.kind !== 'none' && prefix
          ? { prefix, cidr: `${prefix}.0/24`, gateway: `${prefix}.1` }
          : undefined,
      ipv6: n.ipv6 ? { cidr: `${ula}::/64`, gateway: `${ula}::1` } : undefined,
    };
  });
  const byName = new Map(networks.map((n, i) => [n.name, { n, i }]));
  const vms: VmLayout[] = env.vms.map((vm, vmIndex) => {
    const host = vmIndex + 2;
    const seen = new Set<string>();
    const nics: NicLayout[] = vm.nics.map((nic, nicIndex) => {
      const net = byName.get(nic.network);
      if (!net) throw new Error(`VM ${vm.name}: no network ${nic.network}`);
      const first = !seen.has(nic.network);
      seen.add(nic.network);
      if (net.n.ipv4 && first) {
        const ip = `${net.n.ipv4.prefix}.${host}`;
        return { name: nic.name, network: nic.network, mac: macForIpv4(ip), ipv4: ip };
      }
      // no static address: still unique per network, and never in the 54:52:<ipv4> space of 192.168/10.x
      return {
        name: nic.name,
        network: nic.network,
        mac: ['54:52:00', hex2(net.i), hex2(vmIndex), hex2(nicIndex)].join(':'),
      };
    });
    const mgmt = networks.find((n) => n.management);
    const address = nics.find((n) => n.network === mgmt?.name && n.ipv4)?.ipv4 ?? '';
    return {
      name: vm.name,
      libvirtName: `ost-${envId}-${vm.name}`,
      hostname: `ost-${env.suite}-${vm.name}`,
      roles: [roleOf(vm.name)],
      nics,
      address,
    };
  });
  return { networks, vms };
}
