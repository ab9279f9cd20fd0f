import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, OstError, ToolError } from '../../src/core/errors.js';
import { shellQuote } from '../../src/core/exec.js';
import { self } from '../../src/core/process.js';
import { ownDir } from '../../src/core/safe-dir.js';
import { loadEnvironment } from '../../src/launcher/env/load.js';
import type { Environment } from '../../src/launcher/env/model.js';
import { type FoundEnv, isLeftover, UNOWNED_GRACE_MS } from '../../src/launcher/env-dir/discover.js';
import { imageVars, renderEnvSh, renderHosts } from '../../src/launcher/env-dir/ost-files.js';
import { type EnvRecord, renderInventory, renderSshConfig } from '../../src/launcher/env-dir/record.js';
import { createWorkdir, markerOwner, ownsWorkdir } from '../../src/launcher/env-dir/workdir.js';
import { lookupIdentity, parseQemuConf, unreadableBy } from '../../src/launcher/images/qemu-user.js';
import { isProxyOf, sshdArgv, stopSshdProxy } from '../../src/launcher/ipv6-proxy.js';
import { numaCells, readMetadata, renderDomain, renderNetwork } from '../../src/launcher/libvirt/render.js';
import { Templates } from '../../src/launcher/libvirt/templates.js';
import { parseXml, type XmlNode } from '../../src/launcher/libvirt/xml.js';
import { layoutEnv, macFor, type NetLayout, newEnvId, roleOf } from '../../src/launcher/net/layout.js';
import {
  leaseSubnets,
  parseIpAddrJson,
  pruneUnreadableLeases,
  readLeases,
  releaseLeases,
} from '../../src/launcher/net/leases.js';
import { chooseOverlayRoot, claimOverlayDir, outstandingReservations } from '../../src/launcher/overlays.js';
import { isSubnetInUse } from '../../src/launcher/up/phases/networks.js';
import { parseRpmQuery } from '../../src/tools/rpm.js';
import { isConnectFailure, isNotFound } from '../../src/tools/virsh.js';
import { REPO_ROOT, tempTree } from '../helpers/sets.js';

const FIX = path.join(REPO_ROOT, 'test/fixtures/launcher');
const demo = () => loadEnvironment(path.join(REPO_ROOT, 'ost-env.yaml'), 'demo-suite');
const prefixes = new Map([
  ['management', '192.168.200'],
  ['storage', '192.168.201'],
]);
const ID = '1a2b3c4d';
const meta = {
  envId: ID,
  suite: 'demo-suite',
  workdir: `/run/ost/envs/${ID}`,
  overlayDir: `/dev/shm/ost/${ID}`,
  ownerPid: 4242,
  ownerStart: '12345',
  state: 'starting' as const,
};

function parsed(xml: string, root: string): XmlNode {
  const p = parseXml(xml);
  if ('error' in p) throw new Error(p.error);
  return p.doc[root] as XmlNode;
}

describe('environment layout (as lagofy.sh lays it out)', () => {
  it('names networks ost<id>-<N> and domains <id>-ost-<suite>-<vm>; NIC index from 2 in network order', () => {
    const l = layoutEnv(demo(), ID, prefixes);
    expect(
      l.networks.map((n) => [n.libvirtName, n.bridge, n.subnet, n.ipv4?.cidr, n.ipv6?.cidr, n.forward]),
    ).toEqual([
      ['ost1a2b3c4d-200', 'ost1a2b3c4d-200', 200, '192.168.200.0/24', 'fd8f:1391:3a82:200::/64', 'nat'],
      ['ost1a2b3c4d-201', 'ost1a2b3c4d-201', 201, '192.168.201.0/24', 'fd8f:1391:3a82:201::/64', 'isolated'],
    ]);
    const [engine, host] = l.vms;
    expect(engine).toMatchObject({
      libvirtName: '1a2b3c4d-ost-demo-suite-engine',
      hostname: 'ost-demo-suite-engine',
      roles: ['engine'],
      address: '192.168.200.2',
      hostsAddress: 'fd8f:1391:3a82:200::c0a8:c802',
    });
    expect(engine?.nics).toEqual([
      {
        name: 'engine',
        network: 'management',
        hostname: 'ost-demo-suite-engine',
        index: 2,
        mac: '54:52:c0:a8:c8:02',
        ipv4: '192.168.200.2',
        ipv6: 'fd8f:1391:3a82:200::c0a8:c802',
      },
      {
        name: 'engine-storage',
        network: 'storage',
        hostname: 'ost-demo-suite-engine-storage',
        index: 2,
        mac: '54:52:c0:a8:c9:02',
        ipv4: '192.168.201.2',
        ipv6: 'fd8f:1391:3a82:201::c0a8:c902',
      },
    ]);
    expect(host?.roles).toEqual(['host']);
    expect(host?.address).toBe('192.168.200.3');
    // OST's harness: the name after the first 8 characters and a dash, `name[8:13] == "-ost-"`
    for (const vm of l.vms) {
      expect(vm.libvirtName.slice(8, 13)).toBe('-ost-');
      expect(vm.libvirtName.slice(9)).toBe(vm.hostname);
    }
    for (const n of l.networks) expect(n.bridge.length).toBeLessThanOrEqual(15);
    expect(roleOf('host-12')).toBe('host');
  });

  it('writes the host index of a MAC in two decimal digits, as lagofy.sh (index 10 is :10, not :0a)', () => {
    expect(macFor(202, 2)).toBe('54:52:c0:a8:ca:02');
    expect(macFor(202, 10)).toBe('54:52:c0:a8:ca:10');
    expect(macFor(254, 99)).toBe('54:52:c0:a8:fe:99');
  });

  it('lays out IPv4 only (-4) and IPv6 only (-6): the hosts address follows', () => {
    const v4 = layoutEnv(demo(), ID, prefixes, 'ipv4');
    expect(v4.networks.every((n) => n.ipv4 && !n.ipv6)).toBe(true);
    expect(v4.vms[0]?.hostsAddress).toBe('192.168.200.2');
    const v6 = layoutEnv(demo(), ID, prefixes, 'ipv6');
    expect(v6.networks.every((n) => !n.ipv4 && n.ipv6)).toBe(true);
    expect(v6.vms[0]?.address).toBe('fd8f:1391:3a82:200::c0a8:c802');
    expect(v6.vms[0]?.hostsAddress).toBe('fd8f:1391:3a82:200::c0a8:c802');
  });

  it('gives NICs on networks without IPv4 distinct MACs and no IPv4 address; names repeated NICs', () => {
    const basic = loadEnvironment(path.join(REPO_ROOT, 'ost-env.yaml'), 'basic-suite');
    const l = layoutEnv(basic, '00000001', new Map([...prefixes, ['bonding', '192.168.202']]));
    const host0 = l.vms.find((v) => v.name === 'host-0');
    const bonding = host0?.nics.filter((n) => n.network === 'bonding') ?? [];
    expect(bonding.map((n) => n.name)).toEqual(['host-0-bonding', 'host-0-bonding-2']);
    expect(bonding.every((n) => n.ipv4 === undefined && n.ipv6 === undefined)).toBe(true);
    expect(new Set(bonding.map((n) => n.mac)).size).toBe(2);
    expect(newEnvId()).toMatch(/^[0-9a-f]{8}$/);
  });
});

describe('libvirt XML from domain-templates', () => {
  const t = new Templates();
  const l = layoutEnv(demo(), ID, prefixes);
  const [mgmt, storage] = l.networks as [NetLayout, NetLayout];
  const spec = (net: NetLayout) => ({ net, networks: l.networks, vms: l.vms, meta, shortNames: true });

  it("renders the management network as OST's net_template: NAT, lago.local, DNS for every NIC, DHCP by MAC and DUID-LL", () => {
    const n = parsed(renderNetwork(t, spec(mgmt)), 'network');
    expect(n.name).toBe('ost1a2b3c4d-200');
    expect(n.bridge).toEqual({ '@_name': 'ost1a2b3c4d-200', '@_stp': 'on', '@_delay': '0' });
    expect(n.forward).toEqual({
      '@_mode': 'nat',
      nat: { '@_ipv6': 'yes', port: { '@_start': '1024', '@_end': '65535' } },
    });
    expect(n.domain).toEqual({ '@_name': 'lago.local', '@_localOnly': 'yes' });
    expect(n.dns).toEqual({
      '@_forwardPlainNames': 'no',
      host: [
        { '@_ip': '192.168.200.2', hostname: ['ost-demo-suite-engine', 'engine'] },
        { '@_ip': 'fd8f:1391:3a82:200::c0a8:c802', hostname: ['ost-demo-suite-engine', 'engine'] },
        { '@_ip': '192.168.200.3', hostname: ['ost-demo-suite-host-0', 'host-0'] },
        { '@_ip': 'fd8f:1391:3a82:200::c0a8:c803', hostname: ['ost-demo-suite-host-0', 'host-0'] },
        { '@_ip': '192.168.201.2', hostname: 'ost-demo-suite-engine-storage' },
        { '@_ip': 'fd8f:1391:3a82:201::c0a8:c902', hostname: 'ost-demo-suite-engine-storage' },
        { '@_ip': '192.168.201.3', hostname: 'ost-demo-suite-host-0-storage' },
        { '@_ip': 'fd8f:1391:3a82:201::c0a8:c903', hostname: 'ost-demo-suite-host-0-storage' },
      ],
    });
    const [v4, v6] = n.ip as XmlNode[];
    expect(v4).toEqual({
      '@_address': '192.168.200.1',
      '@_netmask': '255.255.255.0',
      dhcp: {
        range: { '@_start': '192.168.200.100', '@_end': '192.168.200.254' },
        host: [
          { '@_mac': '54:52:c0:a8:c8:02', '@_name': 'ost-demo-suite-engine', '@_ip': '192.168.200.2' },
          { '@_mac': '54:52:c0:a8:c8:03', '@_name': 'ost-demo-suite-host-0', '@_ip': '192.168.200.3' },
        ],
      },
    });
    expect(v6).toEqual({
      '@_family': 'ipv6',
      '@_address': 'fd8f:1391:3a82:200::1',
      '@_prefix': '64',
      dhcp: {
        range: { '@_start': 'fd8f:1391:3a82:200::c0a8:c864', '@_end': 'fd8f:1391:3a82:200::c0a8:c8fe' },
        host: [
          {
            '@_id': '0:3:0:1:54:52:c0:a8:c8:02',
            '@_name': 'ost-demo-suite-engine',
            '@_ip': 'fd8f:1391:3a82:200::c0a8:c802',
          },
          {
            '@_id': '0:3:0:1:54:52:c0:a8:c8:03',
            '@_name': 'ost-demo-suite-host-0',
            '@_ip': 'fd8f:1391:3a82:200::c0a8:c803',
          },
        ],
      },
    });
    const harness = (n.metadata as XmlNode)['ost:ost'];
    expect(harness).toEqual({
      '@_xmlns:ost': 'OST:metadata',
      'ost-network-role': { '@_comment': 'management' },
      'ost-working-dir': { '@_comment': meta.workdir },
    });
    expect(readMetadata(n)).toEqual(meta);
  });

  it('renders an isolated network without forwarding and without a DNS server', () => {
    const n = parsed(renderNetwork(t, spec(storage)), 'network');
    expect(n.forward).toBeUndefined();
    expect(n.dns).toEqual({ '@_enable': 'no' });
    expect(((n.metadata as XmlNode)['ost:ost'] as XmlNode)['ost-network-role']).toEqual({
      '@_comment': 'storage',
    });
  });

  it("renders a domain as OST's vm_template: NUMA cells, disk serials, NICs in order, guest agent, both metadata", () => {
    const vm = l.vms[0];
    if (!vm) throw new Error('no vm');
    const d = parsed(
      renderDomain(t, {
        vm,
        networks: l.networks,
        domainType: 'qemu',
        memoryMiB: 3584,
        vcpus: 4,
        consoleLog: '/d/logs/engine',
        disks: [
          {
            path: '/dev/shm/ost/x/engine.qcow2',
            format: 'qcow2',
            dev: 'vda',
            bus: 'virtio',
            serial: 'ost-root-disk',
          },
          { path: '/d/images/engine-sda.raw', format: 'raw', dev: 'sda', bus: 'scsi', serial: '2' },
        ],
        deployScripts: ['common/deploy-scripts/setup_engine.sh'],
        qemuUser: { uid: 64055, gid: 107 },
        meta: { ...meta, vm: 'engine', roles: ['engine'] },
      }),
      'domain',
    );
    expect(d['@_type']).toBe('qemu');
    expect(d.name).toBe('1a2b3c4d-ost-demo-suite-engine');
    expect(d.memory).toEqual({ '@_unit': 'MiB', '#text': '3584' });
    expect(d.vcpu).toEqual({ '@_placement': 'static', '#text': '4' });
    expect(d.cpu).toEqual({
      '@_mode': 'maximum',
      topology: { '@_sockets': '4', '@_dies': '1', '@_cores': '1', '@_threads': '1' },
      numa: {
        cell: [
          { '@_id': '0', '@_cpus': '0-1', '@_memory': '1792', '@_unit': 'MiB' },
          { '@_id': '1', '@_cpus': '2-3', '@_memory': '1792', '@_unit': 'MiB' },
        ],
      },
    });
    expect(d.seclabel).toEqual({
      '@_type': 'static',
      '@_model': 'dac',
      '@_relabel': 'no',
      label: '+64055:+107',
    });
    const devices = d.devices as XmlNode;
    expect(
      (devices.disk as XmlNode[]).map((x) => [
        x.source,
        x.target,
        (x.driver as XmlNode)['@_type'],
        x.serial,
        x.boot,
      ]),
    ).toEqual([
      [
        { '@_file': '/dev/shm/ost/x/engine.qcow2' },
        { '@_dev': 'vda', '@_bus': 'virtio' },
        'qcow2',
        'ost-root-disk',
        { '@_order': '1' },
      ],
      [{ '@_file': '/d/images/engine-sda.raw' }, { '@_dev': 'sda', '@_bus': 'scsi' }, 'raw', '2', undefined],
    ]);
    expect((devices.interface as XmlNode[]).map((x) => [x.source, x.mac])).toEqual([
      [{ '@_network': 'ost1a2b3c4d-200' }, { '@_address': '54:52:c0:a8:c8:02' }],
      [{ '@_network': 'ost1a2b3c4d-201' }, { '@_address': '54:52:c0:a8:c9:02' }],
    ]);
    expect((devices.serial as XmlNode).log).toEqual({ '@_file': '/d/logs/engine', '@_append': 'on' });
    expect(devices.channel).toEqual({
      '@_type': 'unix',
      source: { '@_mode': 'bind' },
      target: { '@_type': 'virtio', '@_name': 'org.qemu.guest_agent.0' },
    });
    expect((d.metadata as XmlNode)['ost:ost']).toEqual({
      '@_xmlns:ost': 'OST:metadata',
      'ost-working-dir': { '@_comment': meta.workdir },
      // one script: the parser gives it as an element, not a list
      'ost-deploy-scripts': { script: { '@_name': 'common/deploy-scripts/setup_engine.sh' } },
    });
    expect(readMetadata(d)).toEqual({ ...meta, vm: 'engine', roles: ['engine'] });
  });

  it('splits vCPUs and memory into two NUMA cells as lagofy.sh, and none for one vCPU', () => {
    expect(numaCells(1, 1024)).toEqual([]);
    expect(numaCells(2, 1025).map((c) => [c['@_cpus'], c['@_memory']])).toEqual([
      ['0', '512'],
      ['1', '512'],
    ]);
    expect(numaCells(3, 750).map((c) => c['@_cpus'])).toEqual(['0', '1-2']);
  });

  it('takes user templates first and falls back to the bundled ones', () => {
    const dir = tempTree({
      'domain.xml': readFileSync(path.join(REPO_ROOT, 'domain-templates/domain.xml'), 'utf8').replace(
        '<vcpu',
        '<description>custom</description><vcpu',
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
        deployScripts: [],
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

  it("tells a subnet libvirt refuses as already routed (another env's bridge came up first) from other errors", () => {
    const refused = new ToolError('exited', 'virsh net-create /x/network-management.xml', 1, 40, [
      'error: Failed to create network from /x/network-management.xml',
      'error: internal error: Network is already in use by interface ost-squat',
    ]);
    expect(isSubnetInUse(refused)).toBe(true);
    const other = new ToolError('exited', 'virsh net-create /x.xml', 1, 40, ['error: XML error: bad MAC']);
    expect(isSubnetInUse(other)).toBe(false);
    expect(isSubnetInUse(new Error('boom'))).toBe(false);
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
    const [a, b, c, d] = await Promise.all(
      ['env-a', 'env-b', 'env-c2', 'env-d'].map((id) =>
        leaseSubnets(dir, id, self(), [{ network: 'm' }, { network: 's' }]),
      ),
    );
    if (!a || !b || !c || !d) throw new Error('a lease is missing');
    const all = [a, b, c, d].flatMap((m) => [...m.values()]);
    expect(new Set(all).size).toBe(8);
    await expect(leaseSubnets(dir, 'env-c', self(), [{ network: 'm', fixed: a.get('m') }])).rejects.toThrow(
      /in use on this host/,
    );
    expect(await releaseLeases(dir, 'env-a')).toHaveLength(2);
    expect((await readLeases(dir)).filter((l) => l.envId === 'env-b')).toHaveLength(2);
  });

  it('counts an empty or damaged lease file as held (never a raw EEXIST); gc removes it once it is old', async () => {
    const dir = tempTree({ '192.168.200.json': '', '192.168.201.json': '{"prefix": "192.168.2' });
    const m = await leaseSubnets(dir, 'env-x', self(), [{ network: 'm' }]);
    expect(m.get('m')).toBe('192.168.202');
    expect(await pruneUnreadableLeases(dir)).toEqual([]);
    expect((await pruneUnreadableLeases(dir, 0)).sort()).toEqual(['192.168.200', '192.168.201']);
    expect(readdirSync(dir).sort()).toEqual(['.lock', '192.168.202.json']);
  });

  it('writes an inventory with a group per role and VM, and an ssh_config', () => {
    const l = layoutEnv(
      loadEnvironment(path.join(REPO_ROOT, 'ost-env.yaml'), 'basic-suite'),
      '0000000b',
      new Map([
        ['management', '192.168.210'],
        ['storage', '192.168.211'],
        ['bonding', '192.168.212'],
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

  it("writes hosts in lagofy.sh's exact format and an env.sh exporting what lagofy.sh and ost-images.sh do", () => {
    const l = layoutEnv(demo(), ID, prefixes);
    const key = `/home/u/ost/deployment/keys/debian12_id_rsa`;
    const r = {
      id: ID,
      suite: 'demo-suite',
      workdir: '/home/u/ost/deployment',
      uri: 'qemu:///system',
      distro: 'debian12',
      vms: l.vms.map((v) => ({
        ...v,
        key,
        image: {
          ref: `debian12-${v.name === 'engine' ? 'engine' : 'host'}-installed`,
          path: `/usr/share/ost-images/debian12-${v.name === 'engine' ? 'engine' : 'host'}-installed.qcow2`,
          package: {
            name: `ost-images-debian12-${v.name === 'engine' ? 'engine' : 'host'}-installed`,
            version: '1',
            release: '1',
          },
          chain: [],
          var: v.name === 'engine' ? 'OST_IMAGES_ENGINE_INSTALLED' : 'OST_IMAGES_HOST_INSTALLED',
        },
      })),
    } as unknown as EnvRecord;
    // one line per VM and the empty line lagofy's unquoted `echo -e` leaves at the end
    expect(renderHosts(r)).toBe(
      `ost-demo-suite-engine ansible_host=fd8f:1391:3a82:200::c0a8:c802 ansible_ssh_private_key_file=${key} ansible_ssh_extra_args='-o UserKnownHostsFile=/dev/null'\n` +
        `ost-demo-suite-host-0 ansible_host=fd8f:1391:3a82:200::c0a8:c803 ansible_ssh_private_key_file=${key} ansible_ssh_extra_args='-o UserKnownHostsFile=/dev/null'\n\n`,
    );
    const sh = renderEnvSh(r, { ostRepo: '/home/u/ost', uri: 'qemu:///system', ...imageVars(r) });
    for (const line of [
      "export OST_REPO_ROOT='/home/u/ost'",
      "export OST_DEPLOYMENT='/home/u/ost/deployment'",
      "export SUITE='demo-suite'",
      "export OST_IMAGES_DISTRO='debian12'",
      "export OST_IMAGES_DIR='/usr/share/ost-images'",
      `export OST_IMAGES_SSH_KEY='${key}'`,
      "export OST_IMAGES_ENGINE_INSTALLED='/usr/share/ost-images/debian12-engine-installed.qcow2'",
      "export OST_IMAGES_ENGINE_INSTALLED_PACKAGE='ost-images-debian12-engine-installed'",
      "export OST_IMAGES_HOST_INSTALLED='/usr/share/ost-images/debian12-host-installed.qcow2'",
      "export LIBVIRT_DEFAULT_URI='qemu:///system'",
      "export ANSIBLE_HOST_KEY_CHECKING='False'",
    ])
      expect(sh.split('\n')).toContain(line);
    expect(shellQuote("it's")).toBe("'it'\\''s'");
  });
});

describe('the --ipv6-only SOCKS helper sshd (ost.sh run -6)', () => {
  it("is started as lagofy.sh starts it: OST's config, pid file in the deployment dir, image key, one user, the gateway", () => {
    expect(
      sshdArgv({
        sshd: '/usr/sbin/sshd',
        config: '/home/u/ost/common/helpers/sshd_config',
        workdir: '/home/u/ost/deployment',
        hostKey: '/home/u/ost/deployment/keys/el9stream_id_rsa',
        authorizedKey: '/usr/share/ost-images/el9stream_id_rsa.pub',
        user: 'u',
        address: 'fd8f:1391:3a82:202::1',
      }),
    ).toEqual([
      '/usr/sbin/sshd',
      '-f',
      '/home/u/ost/common/helpers/sshd_config',
      '-o',
      'PidFile=/home/u/ost/deployment/sshd_pid',
      '-o',
      'AuthorizedKeysFile=/usr/share/ost-images/el9stream_id_rsa.pub',
      '-o',
      'HostKey=/home/u/ost/deployment/keys/el9stream_id_rsa',
      '-o',
      'AllowUsers=u',
      '-o',
      'ListenAddress=fd8f:1391:3a82:202::1',
    ]);
  });

  it('never kills a process that is not the env’s sshd', async () => {
    const dir = tempTree({ sshd_pid: `${process.pid}\n` });
    expect(isProxyOf(process.pid, dir)).toBe(false);
    expect(await stopSshdProxy(dir)).toBeUndefined();
    expect(await stopSshdProxy(undefined)).toBeUndefined();
  });
});

describe('directories in world-writable places (/dev/shm, /var/tmp)', () => {
  it('makes them with the exact mode, whatever the umask, and reuses its own', async () => {
    const dir = tempTree({});
    const old = process.umask(0o077);
    try {
      await ownDir(path.join(dir, 'a/b'), 0o711, 'the overlay directory');
    } finally {
      process.umask(old);
    }
    expect(statSync(path.join(dir, 'a/b')).mode & 0o7777).toBe(0o711);
    await ownDir(path.join(dir, 'a/b'), 0o711, 'the overlay directory');
  });

  it('refuses a symlink, a file, a group- or world-writable one, and (as root) one another user owns', async () => {
    const dir = tempTree({ file: 'x' });
    const why = async (p: string) => {
      try {
        await ownDir(p, 0o711, 'the overlay directory');
      } catch (err) {
        if (err instanceof OstError) return `${err.message} | ${err.hint}`;
      }
      return 'accepted';
    };
    symlinkSync(dir, path.join(dir, 'link'));
    expect(await why(path.join(dir, 'link'))).toBe(
      `the overlay directory ${dir}/link is a symbolic link, so another user could change what ost puts there | remove it (rm -rf ${dir}/link) and run ost again, which creates it; or choose another directory`,
    );
    expect(await why(path.join(dir, 'file'))).toMatch(/file is not a directory/);
    mkdirSync(path.join(dir, 'open'), { mode: 0o777 });
    chmodSync(path.join(dir, 'open'), 0o1777);
    expect(await why(path.join(dir, 'open'))).toMatch(/open is writable by its group \(mode 1777\)/);
    if (process.getuid?.() === 0) {
      mkdirSync(path.join(dir, 'nobodys'), { mode: 0o755 });
      chownSync(path.join(dir, 'nobodys'), 65534, 65534);
      expect(await why(path.join(dir, 'nobodys'))).toMatch(
        /nobodys belongs to uid 65534, not to you \(uid 0\)/,
      );
    }
  });
});

describe('ost gc never takes a starting env for a leftover', () => {
  it('names the owning ost up in the env dir marker, before anything else is in it', async () => {
    const state = tempTree({});
    const owner = self();
    const dir = await createWorkdir(state, 'abcdef01', owner);
    expect(readFileSync(path.join(dir, '.ost-env'), 'utf8')).toBe(`abcdef01 ${owner.pid} ${owner.start}\n`);
    expect(await markerOwner(dir)).toEqual(owner);
    expect(await ownsWorkdir(dir, 'abcdef01')).toBe(true);
    expect(await ownsWorkdir(dir, 'abcdef02')).toBe(false);
  });

  it('counts an env as a leftover only when its owner is gone, or unknown for over a minute', () => {
    const e = (x: Partial<FoundEnv>): FoundEnv => ({
      id: 'abcdef01',
      suite: 's',
      domains: new Map(),
      networks: new Map(),
      leases: [],
      ...x,
    });
    expect(isLeftover(e({ owner: self() }))).toBe(false);
    expect(isLeftover(e({ owner: { pid: self().pid, start: 'another start' } }))).toBe(true);
    expect(isLeftover(e({ ageMs: 1000 }))).toBe(false);
    expect(isLeftover(e({ ageMs: UNOWNED_GRACE_MS + 1 }))).toBe(true);
    expect(isLeftover(e({}))).toBe(true);
  });
});

describe('room for overlays', () => {
  const env1 = { vms: [{}] } as unknown as Environment;

  it('counts what other starting envs reserved and have not written yet, and claims under a lock', async () => {
    const root = tempTree({ 'aaaaaaaa/.reserve': `${2 ** 60}\n`, 'aaaaaaaa/vm.qcow2': 'x' });
    const fallback = tempTree({});
    expect(await outstandingReservations(root)).toBeGreaterThan(2 ** 59);
    const warnings: string[] = [];
    const chosen = await chooseOverlayRoot({ root, fallback, reservePerVmBytes: 2 ** 20 }, env1, (e) => {
      if (e.type === 'warning') warnings.push(e.message);
    });
    expect(chosen).toBe(fallback);
    expect(warnings[0]).toMatch(/overlays go to/);
    await expect(claimOverlayDir(root, path.join(root, 'bbbbbbbb'), 2 ** 20)).rejects.toThrow(
      /no room for overlays in .*: .* left after other starting environments' reservations/,
    );
    expect(existsSync(path.join(root, 'bbbbbbbb'))).toBe(false);
    await claimOverlayDir(fallback, path.join(fallback, 'bbbbbbbb'), 2 ** 20);
    expect(readFileSync(path.join(fallback, 'bbbbbbbb/.reserve'), 'utf8')).toBe(`${2 ** 20}\n`);
    expect(await outstandingReservations(fallback)).toBe(2 ** 20);
  });
});
