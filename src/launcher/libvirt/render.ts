// libvirt XML of an environment's networks and domains: templates filled in, then the generated parts
// (metadata, forward, DHCP/DNS, disks, NICs) added as elements.
import type { NetLayout, VmLayout } from '../net/layout.js';
import type { Templates } from './templates.js';
import { appendChildren, attr, buildXml, child, type XmlNode, type XmlValue } from './xml.js';

/** The XML namespace of ost's metadata element in libvirt objects. */
export const OST_NS = 'https://github.com/oVirt/ost/env/1';

/** The DNS domain of the management network: VMs resolve `ost-<suite>-<vm>` (and `<vm>`) under it. */
export const DNS_DOMAIN = 'ost.test';

/** What every libvirt object of an env records about it (so `ost down` works from libvirt alone). */
export interface OstMetadata {
  envId: string;
  suite: string;
  workdir: string;
  overlayDir: string;
  ownerPid: number;
  ownerStart: string;
  /** Domains only. */
  vm?: string;
  roles?: string[];
  /** `starting` while `ost up` runs, `up` once it finished. */
  state: 'starting' | 'up';
}

/** The `<ost:env .../>` element. */
export function metadataElement(m: OstMetadata): XmlNode {
  const node: XmlNode = {
    '@_xmlns:ost': OST_NS,
    '@_id': m.envId,
    '@_suite': m.suite,
    '@_workdir': m.workdir,
    '@_overlays': m.overlayDir,
    '@_owner-pid': String(m.ownerPid),
    '@_owner-start': m.ownerStart,
    '@_state': m.state,
  };
  if (m.vm) node['@_vm'] = m.vm;
  if (m.roles) node['@_roles'] = m.roles.join(',');
  return node;
}

/** Read ost's metadata back from a parsed `<domain>` or `<network>`; undefined when it has none. */
export function readMetadata(root: XmlNode | undefined): OstMetadata | undefined {
  const meta = child(child(root, 'metadata'), 'ost:env');
  const envId = attr(meta, 'id');
  if (!meta || !envId) return undefined;
  const roles = attr(meta, 'roles');
  return {
    envId,
    suite: attr(meta, 'suite') ?? '',
    workdir: attr(meta, 'workdir') ?? '',
    overlayDir: attr(meta, 'overlays') ?? '',
    ownerPid: Number(attr(meta, 'owner-pid') ?? 0),
    ownerStart: attr(meta, 'owner-start') ?? '',
    vm: attr(meta, 'vm'),
    roles: roles ? roles.split(',') : undefined,
    state: attr(meta, 'state') === 'up' ? 'up' : 'starting',
  };
}

/** A network: template + forward mode, DNS names of the VMs, IPv4 with static DHCP by MAC, IPv6 ULA. */
export function renderNetwork(
  t: Templates,
  net: NetLayout,
  vms: readonly VmLayout[],
  meta: OstMetadata,
): string {
  const n = t.render('network', { name: net.libvirtName, bridge: net.bridge });
  n.metadata = { 'ost:env': metadataElement(meta) };
  if (net.forward === 'nat') n.forward = { '@_mode': 'nat' };
  const ips: XmlValue[] = [];
  if (net.ipv4) {
    // every NIC of a VM on this network that has a static address (the VM's first NIC on it)
    const addressed = vms.flatMap((vm) =>
      vm.nics
        .filter((nic) => nic.network === net.name && nic.ipv4)
        .map((nic) => ({ vm, mac: nic.mac, ip: nic.ipv4 as string })),
    );
    ips.push({
      '@_address': net.ipv4.gateway,
      '@_prefix': '24',
      dhcp: {
        range: { '@_start': `${net.ipv4.prefix}.100`, '@_end': `${net.ipv4.prefix}.254` },
        host: addressed.map((a) => ({
          '@_mac': a.mac,
          '@_name': net.management ? a.vm.hostname : a.vm.name,
          '@_ip': a.ip,
        })),
      },
    });
    if (net.management) {
      // a domain makes the names two-label: systemd-resolved never sends single-label names to DNS
      n.domain = { '@_name': DNS_DOMAIN, '@_localOnly': 'yes' };
      n.dns = { host: addressed.map((a) => ({ '@_ip': a.ip, hostname: [a.vm.hostname, a.vm.name] })) };
    }
  }
  // only the management network answers DNS: a second resolver that knows no names would shadow it
  if (!net.management) n.dns = { '@_enable': 'no' };
  if (net.ipv6) {
    const base = net.ipv6.gateway.replace(/::1$/, '');
    ips.push({
      '@_family': 'ipv6',
      '@_address': net.ipv6.gateway,
      '@_prefix': '64',
      dhcp: { range: { '@_start': `${base}::100`, '@_end': `${base}::1ff` } },
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
}

export interface DomainSpec {
  vm: VmLayout;
  networks: readonly NetLayout[];
  domainType: 'kvm' | 'qemu';
  memoryMiB: number;
  vcpus: number;
  consoleLog: string;
  disks: DomainDisk[];
  /** qemu runs as this uid:gid; files are owned by it beforehand, so libvirt relabels nothing. */
  qemuUser: { uid: number; gid: number };
  meta: OstMetadata;
}

/** A domain: template + metadata, DAC label, disks and NICs (from their own templates). */
export function renderDomain(t: Templates, s: DomainSpec): string {
  const d = t.render('domain', {
    name: s.vm.libvirtName,
    domainType: s.domainType,
    memoryMiB: s.memoryMiB,
    vcpus: s.vcpus,
    cpuMode: s.domainType === 'kvm' ? 'host-passthrough' : 'maximum',
    consoleLog: s.consoleLog,
  });
  d.metadata = { 'ost:env': metadataElement(s.meta) };
  // the installed images are never relabelled or chowned: qemu runs as the qemu user, overlays are its own
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
    s.disks.map((disk) => t.render('disk', { ...disk })),
  );
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
