import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, OstError } from '../../src/core/errors.js';
import { self } from '../../src/core/process.js';
import { loadEnvironment } from '../../src/launcher/env/load.js';
import { lookupIdentity, parseQemuConf, unreadableBy } from '../../src/launcher/images/qemu-user.js';
import { readMetadata, renderDomain, renderNetwork } from '../../src/launcher/libvirt/render.js';
import { Templates } from '../../src/launcher/libvirt/templates.js';
import { parseXml, type XmlNode } from '../../src/launcher/libvirt/xml.js';
import { envTag, layoutEnv, macForIpv4, roleOf } from '../../src/launcher/net/layout.js';
import { leaseSubnets, parseIpAddrJson, readLeases, releaseLeases } from '../../src/launcher/net/leases.js';
import { waitReady } from '../../src/launcher/ready/wait.js';
import { type EnvRecord, renderInventory, renderSshConfig } from '../../src/launcher/state/record.js';
import { parseRpmQuery } from '../../src/tools/rpm.js';
import { isConnectFailure, isNotFound } from '../../src/tools/virsh.js';
import { REPO_ROOT, tempTree } from '../helpers/sets.js';

const FIX = path.join(REPO_ROOT, 'test/fixtures/launcher');
const demo = () => loadEnvironment(path.join(REPO_ROOT, 'ost-env.yaml'), 'demo-suite');
const prefixes = new Map([
  ['management', '192.168.200'],
  ['storage', '192.168.201'],
]);
const meta = {
  envId: 'demo-suite-abc123',
  suite: 'demo-suite',
  workdir: '/run/ost/envs/demo-suite-abc123',
  overlayDir: '/dev/shm/ost/demo-suite-abc123',
  ownerPid: 4242,
  ownerStart: '12345',
  state: 'starting' as const,
};

function parsed(xml: string, root: string): XmlNode {
  const p = parseXml(xml);
  if ('error' in p) throw new Error(p.error);
  return p.doc[root] as XmlNode;
}

describe('environment layout', () => {
  it('gives each VM static addresses, MACs that encode them, DNS names and roles', () => {
    const l = layoutEnv(demo(), 'demo-suite-abc123', prefixes);
    expect(l.networks.map((n) => [n.libvirtName, n.ipv4?.cidr, n.forward])).toEqual([
      ['ost-demo-suite-abc123-management', '192.168.200.0/24', 'nat'],
      ['ost-demo-suite-abc123-storage', '192.168.201.0/24', 'isolated'],
    ]);
    const [engine, host] = l.vms;
    expect(engine).toMatchObject({
      libvirtName: 'ost-demo-suite-abc123-engine',
      hostname: 'ost-demo-suite-engine',
      roles: ['engine'],
      address: '192.168.200.2',
    });
    expect(engine?.nics).toEqual([
      { name: 'eth0', network: 'management', mac: '54:52:c0:a8:c8:02', ipv4: '192.168.200.2' },
      { name: 'eth1', network: 'storage', mac: '54:52:c0:a8:c9:02', ipv4: '192.168.201.2' },
    ]);
    expect(host?.roles).toEqual(['host']);
    expect(host?.address).toBe('192.168.200.3');
    for (const n of l.networks) expect(n.bridge.length).toBeLessThanOrEqual(15);
    expect(l.networks[0]?.ipv6?.cidr).toMatch(/^fd[0-9a-f]{2}:[0-9a-f]{4}:[0-9a-f]{4}:0::\/64$/);
  });

  it('never gives two envs of the same suite the same bridges or ULA prefixes', () => {
    const a = layoutEnv(demo(), 'demo-suite-aaaaaa', prefixes);
    const b = layoutEnv(demo(), 'demo-suite-bbbbbb', prefixes);
    expect(envTag('demo-suite-aaaaaa')).not.toBe(envTag('demo-suite-bbbbbb'));
    expect(a.networks.map((n) => n.bridge)).not.toEqual(b.networks.map((n) => n.bridge));
    expect(a.networks[0]?.ipv6?.cidr).not.toBe(b.networks[0]?.ipv6?.cidr);
  });

  it('gives NICs on networks without IPv4 distinct MACs and no address', () => {
    const basic = loadEnvironment(path.join(REPO_ROOT, 'ost-env.yaml'), 'basic-suite');
    const l = layoutEnv(
      basic,
      'basic-suite-000001',
      new Map([...prefixes, ['bonding', 'unused']].filter(([k]) => k !== 'bonding') as [string, string][]),
    );
    const host0 = l.vms.find((v) => v.name === 'host-0');
    const bonding = host0?.nics.filter((n) => n.network === 'bonding') ?? [];
    expect(bonding).toHaveLength(2);
    expect(bonding.every((n) => n.ipv4 === undefined)).toBe(true);
    expect(new Set(bonding.map((n) => n.mac)).size).toBe(2);
    expect(macForIpv4('10.0.0.255')).toBe('54:52:0a:00:00:ff');
    expect(roleOf('host-12')).toBe('host');
  });
});

describe('libvirt XML from domain-templates', () => {
  const t = new Templates();
  const l = layoutEnv(demo(), meta.envId, prefixes);
  const [mgmt, storage] = l.networks;

  it('renders the management network: NAT, DNS domain and names, static DHCP by MAC, IPv6 ULA', () => {
    const n = parsed(renderNetwork(t, mgmt as never, l.vms, meta), 'network');
    expect(n.name).toBe('ost-demo-suite-abc123-management');
    expect(n.forward).toEqual({ '@_mode': 'nat' });
    expect(n.domain).toEqual({ '@_name': 'ost.test', '@_localOnly': 'yes' });
    expect(n.dns).toEqual({
      host: [
        { '@_ip': '192.168.200.2', hostname: ['ost-demo-suite-engine', 'engine'] },
        { '@_ip': '192.168.200.3', hostname: ['ost-demo-suite-host-0', 'host-0'] },
      ],
    });
    const [v4, v6] = n.ip as XmlNode[];
    expect(v4).toEqual({
      '@_address': '192.168.200.1',
      '@_prefix': '24',
      dhcp: {
        range: { '@_start': '192.168.200.100', '@_end': '192.168.200.254' },
        host: [
          { '@_mac': '54:52:c0:a8:c8:02', '@_name': 'ost-demo-suite-engine', '@_ip': '192.168.200.2' },
          { '@_mac': '54:52:c0:a8:c8:03', '@_name': 'ost-demo-suite-host-0', '@_ip': '192.168.200.3' },
        ],
      },
    });
    expect(v6?.['@_family']).toBe('ipv6');
    expect(readMetadata(n)).toEqual(meta);
  });

  it('renders an isolated network without forwarding and without a DNS server', () => {
    const n = parsed(renderNetwork(t, storage as never, l.vms, meta), 'network');
    expect(n.forward).toBeUndefined();
    expect(n.dns).toEqual({ '@_enable': 'no' });
    expect(n.bridge).toEqual({ '@_name': storage?.bridge, '@_stp': 'off', '@_delay': '0' });
  });

  it('renders a domain: type, DAC label, root disk first, extra disk on SCSI, NICs, console log, metadata', () => {
    const vm = l.vms[0];
    if (!vm) throw new Error('no vm');
    const d = parsed(
      renderDomain(t, {
        vm,
        networks: l.networks,
        domainType: 'qemu',
        memoryMiB: 1024,
        vcpus: 2,
        consoleLog: '/run/ost/envs/x/console/engine.log',
        disks: [
          { path: '/dev/shm/ost/x/engine.qcow2', format: 'qcow2', dev: 'vda', bus: 'virtio' },
          { path: '/dev/shm/ost/x/engine-sdb.raw', format: 'raw', dev: 'sdb', bus: 'scsi' },
        ],
        qemuUser: { uid: 64055, gid: 107 },
        meta: { ...meta, vm: 'engine', roles: ['engine'] },
      }),
      'domain',
    );
    expect(d['@_type']).toBe('qemu');
    expect(d.name).toBe('ost-demo-suite-abc123-engine');
    expect(d.memory).toEqual({ '@_unit': 'MiB', '#text': '1024' });
    expect(d.cpu).toEqual({ '@_mode': 'maximum' });
    expect(d.seclabel).toEqual({
      '@_type': 'static',
      '@_model': 'dac',
      '@_relabel': 'no',
      label: '+64055:+107',
    });
    const devices = d.devices as XmlNode;
    expect(
      (devices.disk as XmlNode[]).map((x) => [x.source, x.target, (x.driver as XmlNode)['@_type']]),
    ).toEqual([
      [{ '@_file': '/dev/shm/ost/x/engine.qcow2' }, { '@_dev': 'vda', '@_bus': 'virtio' }, 'qcow2'],
      [{ '@_file': '/dev/shm/ost/x/engine-sdb.raw' }, { '@_dev': 'sdb', '@_bus': 'scsi' }, 'raw'],
    ]);
    expect((devices.interface as XmlNode[]).map((x) => [x.source, x.mac])).toEqual([
      [{ '@_network': 'ost-demo-suite-abc123-management' }, { '@_address': '54:52:c0:a8:c8:02' }],
      [{ '@_network': 'ost-demo-suite-abc123-storage' }, { '@_address': '54:52:c0:a8:c9:02' }],
    ]);
    expect((devices.serial as XmlNode).log).toEqual({
      '@_file': '/run/ost/envs/x/console/engine.log',
      '@_append': 'off',
    });
    expect(readMetadata(d)).toEqual({ ...meta, vm: 'engine', roles: ['engine'] });
  });

  it('reads the metadata back from a domain as libvirt returns it', () => {
    const d = parsed(readFileSync(path.join(FIX, 'virsh-dumpxml.xml'), 'utf8'), 'domain');
    const m = readMetadata(d);
    expect(m?.state).toBe('up');
    expect(m?.vm).toBe('engine');
    expect(m?.envId).toMatch(/^demo-suite-/);
  });

  it('takes user templates first and falls back to the bundled ones', () => {
    const dir = tempTree({
      'domain.xml': readFileSync(path.join(REPO_ROOT, 'domain-templates/domain.xml'), 'utf8').replace(
        '<vcpu>',
        '<description>custom</description><vcpu>',
      ),
    });
    const own = new Templates(dir);
    expect(own.fileOf('domain')).toBe(path.join(dir, 'domain.xml'));
    expect(own.fileOf('nic')).toBe(path.join(REPO_ROOT, 'domain-templates/nic.xml'));
    const vm = l.vms[0];
    if (!vm) throw new Error('no vm');
    const d = parsed(
      renderDomain(own, {
        vm,
        networks: l.networks,
        domainType: 'kvm',
        memoryMiB: 512,
        vcpus: 1,
        consoleLog: '/c.log',
        disks: [],
        qemuUser: { uid: 0, gid: 0 },
        meta,
      }),
      'domain',
    );
    expect(d.description).toBe('custom');
    expect(d.cpu).toEqual({ '@_mode': 'host-passthrough' });
  });

  it('reports a bad template once, naming the file and what is wrong', () => {
    const dir = tempTree({
      'nic.xml': '<interface type="network"><source network="{{net}}"/></interface>',
      'disk.xml': '<disk><source file="{{path}}"></disk>',
      'network.xml': '<domain/>',
    });
    const t2 = new Templates(dir);
    const err = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        if (e instanceof ConfigError) return e.message;
      }
      throw new Error('expected ConfigError');
    };
    expect(err(() => t2.render('nic', { network: 'n', mac: 'm' }))).toMatch(
      /nic\.xml: \(file\): unknown placeholder \{\{net\}\}; this template can use \{\{network\}\} \{\{mac\}\}/,
    );
    expect(err(() => t2.render('disk', { path: 'p' }))).toMatch(/disk\.xml:1: \(file\): not valid XML/);
    expect(err(() => t2.render('network', { name: 'n', bridge: 'b' }))).toMatch(
      /network\.xml: \(file\): expected one <network> root element, found <domain>/,
    );
  });
});

describe('launcher parsers on captured real outputs', () => {
  it('parses rpm -q: installed packages and the ones that are not', () => {
    const q = parseRpmQuery(readFileSync(path.join(FIX, 'rpm-q.txt'), 'utf8'));
    expect(q.missing).toEqual(['ost-images-debian12-he-installed']);
    expect(q.installed.map((p) => p.name)).toEqual([
      'ost-images-debian12-engine-installed',
      'ost-images-debian12-base',
    ]);
    expect(q.installed[0]?.release).toMatch(/^\d{12}$/);
  });

  it('tells virsh errors apart: libvirtd unreachable, object already gone', () => {
    // virsh 9.0.0 without a running libvirtd, and destroying a domain that no longer exists
    expect(
      isConnectFailure(
        "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory\n",
      ),
    ).toBe(true);
    const gone = "error: failed to get domain 'nosuch'\n";
    const goneNet =
      "error: failed to get network 'nosuch'\nerror: Network not found: no network with matching name 'nosuch'\n";
    expect(isConnectFailure(gone)).toBe(false);
    expect(isNotFound({ exitCode: 1, stdout: '', stderr: goneNet, durationMs: 1 })).toBe(true);
    expect(isNotFound({ exitCode: 1, stdout: '', stderr: gone, durationMs: 1 })).toBe(true);
  });

  it('parses ip -j addr into the /24 prefixes in use', () => {
    const used = parseIpAddrJson(readFileSync(path.join(FIX, 'ip-addr.json'), 'utf8'));
    expect(used.has('127.0.0')).toBe(true);
    expect(used.has('192.168.200')).toBe(true);
  });

  it('reads qemu.conf and finds the qemu user in passwd/group', () => {
    expect(parseQemuConf('#user = "root"\nuser = "qemu"\ngroup = "kvm"\n')).toEqual({
      user: 'qemu',
      group: 'kvm',
    });
    const etc = tempTree({
      passwd: 'root:x:0:0::/root:/bin/sh\nlibvirt-qemu:x:64055:108::/var/lib/libvirt:/usr/sbin/nologin\n',
      group: 'root:x:0:\nkvm:x:107:libvirt-qemu\nlibvirt-qemu:x:108:\n',
    });
    expect(lookupIdentity('libvirt-qemu', undefined, etc)).toEqual({
      name: 'libvirt-qemu',
      uid: 64055,
      gid: 108,
      groups: [108, 107],
    });
    expect(lookupIdentity('nobody-here', undefined, etc)).toBeUndefined();
  });

  it('says why the qemu user cannot read an image', () => {
    const dir = tempTree({ 'img.qcow2': 'x' });
    const who = { name: 'qemu', uid: 4321, gid: 4321, groups: [4321] };
    // mkdtemp makes 0700 directories: qemu cannot get through
    expect(unreadableBy(who, path.join(dir, 'img.qcow2'))).toMatch(/is not searchable \(x\) by qemu/);
    expect(unreadableBy({ ...who, uid: 0 }, path.join(dir, 'img.qcow2'))).toBeUndefined();
  });
});

describe('leases, outputs and readiness', () => {
  it('leases distinct subnets to concurrent envs, refuses a taken fixed one, and releases', async () => {
    const dir = tempTree({});
    const [a, b] = await Promise.all([
      leaseSubnets(dir, 'env-a', self(), [{ network: 'm' }, { network: 's' }]),
      leaseSubnets(dir, 'env-b', self(), [{ network: 'm' }, { network: 's' }]),
    ]);
    const all = [...(a?.values() ?? []), ...(b?.values() ?? [])];
    expect(new Set(all).size).toBe(4);
    await expect(leaseSubnets(dir, 'env-c', self(), [{ network: 'm', fixed: a.get('m') }])).rejects.toThrow(
      /in use on this host/,
    );
    expect(await releaseLeases(dir, 'env-a')).toHaveLength(2);
    expect((await readLeases(dir)).map((l) => l.envId).sort()).toEqual(['env-b', 'env-b']);
  });

  it('writes an inventory with a group per role and VM, and an ssh_config', () => {
    const l = layoutEnv(
      loadEnvironment(path.join(REPO_ROOT, 'ost-env.yaml'), 'basic-suite'),
      'b-1',
      new Map([
        ['management', '192.168.210'],
        ['storage', '192.168.211'],
      ]),
    );
    const r = {
      id: 'b-1',
      suite: 'basic-suite',
      workdir: '/run/ost/envs/b-1',
      vms: l.vms.map((v) => ({ ...v, key: '/run/ost/envs/b-1/keys/el9stream_id_rsa' })),
    } as unknown as EnvRecord;
    const inv = renderInventory(r);
    expect(inv).toContain('[host]\nost-basic-suite-host-0 ansible_host=192.168.210.4');
    expect(inv).toMatch(/\[host_1\]\nost-basic-suite-host-1 ansible_host=192\.168\.210\.5 /);
    expect(inv).toContain('[engine]\nost-basic-suite-engine ansible_host=192.168.210.2');
    const cfg = renderSshConfig(r);
    expect(cfg).toContain('Host storage ost-basic-suite-storage\n  HostName 192.168.210.3\n');
    expect(cfg).toContain('IdentityFile /run/ost/envs/b-1/keys/el9stream_id_rsa');
  });

  it('gives up at the deadline with the tail of the serial console', async () => {
    const dir = tempTree({
      'console.log': 'line 1\r\n\u001b[0;32mBooting\u001b[0m kernel\r\nKernel panic - not syncing\r\n',
    });
    const err = await waitReady(
      { vm: 'engine', address: '127.0.0.1', key: '/nonexistent', consoleLog: path.join(dir, 'console.log') },
      1500,
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OstError);
    expect((err as Error).message).toMatch(/VM engine \(127\.0\.0\.1\) was not ready within 2s/);
    expect((err as Error).message).toContain('  | Booting kernel\n  | Kernel panic - not syncing');
  });
});
