// libvirt XML of an environment's networks and domains as OST's lagofy.sh renders them (OST's harness reads
// them back with virsh dumpxml/net-dumpxml; docs/ost-harness-facts.md §2, §5): templates filled in, then
// the generated parts (metadata, forward, DHCP/DNS, disks, NICs) added as elements.
import { dhcpRanges, dnsEntries, type NetLayout, nicsOn, type VmLayout } from '../net/layout.js';
import type { Templates } from './templates.js';
import { appendChildren, attr, buildXml, child, type XmlNode, type XmlValue } from './xml.js';

/** OST's metadata namespace: `<ost:ost xmlns:ost="OST:metadata">` with un-prefixed children. */
export const OST_HARNESS_NS = 'OST:metadata';

/** ost's own metadata element in libvirt objects, under its own prefix (`ost:` is OST's). */
export const OST_NS = 'https://github.com/oVirt/ost/env/1';
export const OST_PREFIX = 'ostenv';

/** The DNS domain of the management network (as lagofy.sh): a guest's FQDN is `ost-<suite>-<vm>.lago.local`. */
export const DNS_DOMAIN = 'lago.local';

/** What every libvirt object of an env records about it (so `ost down` works from libvirt alone). */
export interface OstMetadata {
  envId: string;
  suite: string;
  /** ost's env dir (root's own). */
  workdir: string;
  /** An OST suite's deployment dir: what OST's harness knows the env by (its `ost-working-dir`). */
  deployment?: string;
  overlayDir: string;
  ownerPid: number;
  ownerStart: string;
  /** Domains only. */
  vm?: string;
  roles?: string[];
  /** `starting` while `ost up` runs, `up` once it finished. */
  state: 'starting' | 'up';
}

/** The `<ostenv:env .../>` element. */
export function metadataElement(m: OstMetadata): XmlNode {
  const node: XmlNode = {
    [`@_xmlns:${OST_PREFIX}`]: OST_NS,
    '@_id': m.envId,
    '@_suite': m.suite,
    '@_workdir': m.workdir,
    '@_overlays': m.overlayDir,
    '@_owner-pid': String(m.ownerPid),
    '@_owner-start': m.ownerStart,
    '@_state': m.state,
  };
  if (m.deployment) node['@_deployment'] = m.deployment;
  if (m.vm) node['@_vm'] = m.vm;
  if (m.roles) node['@_roles'] = m.roles.join(',');
  return node;
}

/**
 * OST's own element, as its harness reads it: `ost-working-dir comment=` (compared with $OST_DEPLOYMENT),
 * and `ost-network-role comment=` on networks or `ost-deploy-scripts/script name=` on domains.
 */
export function harnessElement(
  workdir: string,
  extra: { role: string } | { deployScripts: readonly string[] },
): XmlNode {
  const node: XmlNode = { '@_xmlns:ost': OST_HARNESS_NS };
  if ('role' in extra) node['ost-network-role'] = { '@_comment': extra.role };
  node['ost-working-dir'] = { '@_comment': workdir };
  if ('deployScripts' in extra)
    node['ost-deploy-scripts'] = { script: extra.deployScripts.map((s) => ({ '@_name': s })) };
  return node;
}

/** Read ost's metadata back from a parsed `<domain>` or `<network>`; undefined when it has none. */
export function readMetadata(root: XmlNode | undefined): OstMetadata | undefined {
  const meta = child(child(root, 'metadata'), `${OST_PREFIX}:env`);
  const envId = attr(meta, 'id');
  if (!meta || !envId) return undefined;
  const roles = attr(meta, 'roles');
  return {
    envId,
    suite: attr(meta, 'suite') ?? '',
    workdir: attr(meta, 'workdir') ?? '',
    deployment: attr(meta, 'deployment'),
    overlayDir: attr(meta, 'overlays') ?? '',
    ownerPid: Number(attr(meta, 'owner-pid') ?? 0),
    ownerStart: attr(meta, 'owner-start') ?? '',
    vm: attr(meta, 'vm'),
    roles: roles ? roles.split(',') : undefined,
    state: attr(meta, 'state') === 'up' ? 'up' : 'starting',
  };
}

export interface NetworkSpec {
  net: NetLayout;
  /** Every network of the env: the management network answers DNS for the NICs on all of them. */
  networks: readonly NetLayout[];
  vms: readonly VmLayout[];
  meta: OstMetadata;
  /** Also answer DNS for each VM's short name (ost-env.yaml suites: `ping host-0`). */
  shortNames: boolean;
  /**
   * A bridge and nothing else: no address, DHCP, DNS or NAT on the host (an isolated env's network: its
   * gateway and dnsmasq are in the env's namespace, net/isolated.ts).
   */
  bare?: boolean;
}

/**
 * A network as lagofy.sh's net_template: NAT (or isolated), IPv4 /24 with a static DHCP host per NIC by
 * MAC, IPv6 /64 with static DHCPv6 hosts by DUID-LL (`0:3:0:1:<mac>`), the lago.local domain, and DNS on
 * the management network for every NIC of the env (`ost-<suite>-<nic>`); the IPv4 `<ip>` comes first
 * (OST's hosted-engine code updates the IPv6 one by --parent-index 1).
 */
export function renderNetwork(t: Templates, s: NetworkSpec): string {
  const { net } = s;
  const n = t.render('network', { name: net.libvirtName, bridge: net.bridge });
  n.metadata = {
    'ost:ost': harnessElement(s.meta.deployment ?? s.meta.workdir, { role: net.name }),
    [`${OST_PREFIX}:env`]: metadataElement(s.meta),
  };
  if (s.bare) return buildXml({ network: n });
  if (net.forward === 'nat') {
    n.forward = {
      '@_mode': 'nat',
      nat: { ...(net.ipv6 ? { '@_ipv6': 'yes' } : {}), port: { '@_start': '1024', '@_end': '65535' } },
    };
  }
  n.domain = { '@_name': DNS_DOMAIN, '@_localOnly': 'yes' };
  if (net.management) {
    const hosts: XmlNode[] = dnsEntries(s.networks, s.vms, s.shortNames).map(({ ip, names }) => ({
      '@_ip': ip,
      hostname: names.length === 1 ? (names[0] as string) : names,
    }));
    n.dns = { '@_forwardPlainNames': 'no', host: hosts };
  } else {
    // only the management network answers DNS: a second resolver that knows no names would shadow it
    n.dns = { '@_enable': 'no' };
  }
  const mine = nicsOn(s.vms, net);
  const ranges = dhcpRanges(net);
  const ips: XmlValue[] = [];
  if (net.ipv4 && ranges.ipv4) {
    ips.push({
      '@_address': net.ipv4.gateway,
      '@_netmask': '255.255.255.0',
      dhcp: {
        range: { '@_start': ranges.ipv4.start, '@_end': ranges.ipv4.end },
        host: mine.map((nic) => ({ '@_mac': nic.mac, '@_name': nic.hostname, '@_ip': nic.ipv4 as string })),
      },
    });
  }
  if (net.ipv6 && ranges.ipv6) {
    ips.push({
      '@_family': 'ipv6',
      '@_address': net.ipv6.gateway,
      '@_prefix': '64',
      dhcp: {
        range: { '@_start': ranges.ipv6.start, '@_end': ranges.ipv6.end },
        host: mine.map((nic) => ({
          '@_id': `0:3:0:1:${nic.mac}`,
          '@_name': nic.hostname,
          '@_ip': nic.ipv6 as string,
        })),
      },
    });
  }
  appendChildren(n, 'ip', ips);
  return buildXml({ network: n });
}

export interface DomainDisk {
  path: string;
  format: 'qcow2' | 'raw';
  dev: string;
  bus: 'virtio' | 'scsi';
  /** `ost-root-disk` for the root disk, 2, 3, … for extra disks (OST's scripts find them by it). */
  serial: string;
}

export interface DomainSpec {
  vm: VmLayout;
  networks: readonly NetLayout[];
  domainType: 'kvm' | 'qemu';
  memoryMiB: number;
  vcpus: number;
  consoleLog: string;
  /** The root disk first. */
  disks: DomainDisk[];
  /** Deploy scripts as the suite wrote them (OST's pytest runs them, from the OST checkout). */
  deployScripts: readonly string[];
  /** qemu runs as this uid:gid; files are readable by it beforehand, so libvirt relabels nothing. */
  qemuUser: { uid: number; gid: number };
  meta: OstMetadata;
  /**
   * SMBIOS type 11 OEM strings (`io.systemd.credential:NAME=VALUE`): the env's SSH key credential, which
   * systemd in the guest imports at boot (guest/credentials.ts).
   */
  oemStrings?: readonly string[];
}

/**
 * SMBIOS type 11 OEM strings in a domain: `<sysinfo type='smbios'><oemStrings><entry>…` and
 * `<os><smbios mode='sysinfo'/>` (without it qemu gets no sysinfo at all).
 */
export function addOemStrings(d: XmlNode, entries: readonly string[]): void {
  if (entries.length === 0) return;
  d.sysinfo = { '@_type': 'smbios', oemStrings: { entry: [...entries] } };
  const os = child(d, 'os') ?? {};
  os.smbios = { '@_mode': 'sysinfo' };
  d.os = os;
}

/** NUMA as lagofy.sh: two cells, the vCPUs and the memory split between them (one vCPU: no NUMA). */
export function numaCells(vcpus: number, memoryMiB: number): XmlNode[] {
  if (vcpus < 2) return [];
  const half = Math.floor(vcpus / 2);
  const mem = String(Math.floor(memoryMiB / 2));
  return [
    { '@_id': '0', '@_cpus': half === 1 ? '0' : `0-${half - 1}`, '@_memory': mem, '@_unit': 'MiB' },
    {
      '@_id': '1',
      '@_cpus': vcpus - 1 === half ? String(half) : `${half}-${vcpus - 1}`,
      '@_memory': mem,
      '@_unit': 'MiB',
    },
  ];
}

/** A domain: template + metadata, DAC label, NUMA, disks and NICs (from their own templates). */
export function renderDomain(t: Templates, s: DomainSpec): string {
  const d = t.render('domain', {
    name: s.vm.libvirtName,
    domainType: s.domainType,
    memoryMiB: s.memoryMiB,
    vcpus: s.vcpus,
    cpuMode: s.domainType === 'kvm' ? 'host-passthrough' : 'maximum',
    consoleLog: s.consoleLog,
  });
  d.metadata = {
    'ost:ost': harnessElement(s.meta.deployment ?? s.meta.workdir, { deployScripts: s.deployScripts }),
    [`${OST_PREFIX}:env`]: metadataElement(s.meta),
  };
  const cells = numaCells(s.vcpus, s.memoryMiB);
  const cpu = child(d, 'cpu');
  if (cpu && cells.length > 0) {
    cpu.topology = {
      '@_sockets': String(s.vcpus),
      '@_dies': '1',
      '@_cores': '1',
      '@_threads': '1',
    };
    cpu.numa = { cell: cells };
  }
  // the installed images are never relabelled or chowned: qemu runs as the qemu user and reads them as they are
  d.seclabel = {
    '@_type': 'static',
    '@_model': 'dac',
    '@_relabel': 'no',
    label: `+${s.qemuUser.uid}:+${s.qemuUser.gid}`,
  };
  const devices = child(d, 'devices') ?? {};
  d.devices = devices;
  appendChildren(
    devices,
    'disk',
    s.disks.map((disk, i) => {
      const node = t.render('disk', {
        path: disk.path,
        format: disk.format,
        dev: disk.dev,
        bus: disk.bus,
        serial: disk.serial,
      });
      if (i === 0) node.boot = { '@_order': '1' };
      return node;
    }),
  );
  addOemStrings(d, s.oemStrings ?? []);
  const byName = new Map(s.networks.map((n) => [n.name, n]));
  appendChildren(
    devices,
    'interface',
    s.vm.nics.map((nic) =>
      t.render('nic', { network: byName.get(nic.network)?.libvirtName ?? nic.network, mac: nic.mac }),
    ),
  );
  return buildXml({ domain: d });
}
