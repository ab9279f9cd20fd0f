// ost's renderers against the libvirt objects OST's own lagofy.sh made: test/fixtures/launcher/lagofy holds
// `virsh net-dumpxml` / `virsh dumpxml` and the `hosts` file of a real `ost_init basic-suite-master debian12`
// of the 4-VM 1_engine_2_hosts.json shape (captured by bench/ost-init.mjs). The same suite is laid out here
// with the same env id, subnets and deployment dir, rendered, and every part OST's harness (or lagofy.sh's
// ost_status/shell/console) reads is compared: names, metadata, addressing, DNS, DHCP, disks, NICs, logs.
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadOstJson } from '../../src/launcher/env/ost-json.js';
import { renderHosts } from '../../src/launcher/env-dir/ost-files.js';
import type { EnvRecord } from '../../src/launcher/env-dir/record.js';
import { renderDomain, renderNetwork } from '../../src/launcher/libvirt/render.js';
import { Templates } from '../../src/launcher/libvirt/templates.js';
import { asList, attr, child, parseXml, text, type XmlNode } from '../../src/launcher/libvirt/xml.js';
import { layoutEnv } from '../../src/launcher/net/layout.js';
import { REPO_ROOT, tempTree } from '../helpers/sets.js';

const DIR = path.join(REPO_ROOT, 'test/fixtures/launcher/lagofy');
const fixture = (f: string) => readFileSync(path.join(DIR, f), 'utf8');
const root = (xml: string, name: string): XmlNode => {
  const p = parseXml(xml);
  if ('error' in p) throw new Error(p.error);
  return p.doc[name] as XmlNode;
};

// what the capture was made with: the env id and the deployment dir (from its metadata), the subnets
const lagoMgmt = root(fixture('net-management.xml'), 'network');
const ID = (text(lagoMgmt.name) as string).slice(3, 11);
const DEPLOYMENT = attr(
  child(child(child(lagoMgmt, 'metadata'), 'ost:ost'), 'ost-working-dir'),
  'comment',
) as string;
const SUBNETS: Record<string, number> = {};
for (const f of readdirSync(DIR).filter((f) => f.startsWith('net-'))) {
  const n = root(fixture(f), 'network');
  SUBNETS[f.slice(4, -4)] = Number((text(n.name) as string).split('-')[1]);
}

/** A network as the harness and lagofy's tools see it (libvirt's own uuid, MAC and counters left out). */
function netView(n: XmlNode) {
  return {
    name: text(n.name),
    bridge: n.bridge,
    harness: child(n, 'metadata')?.['ost:ost'],
    forward: n.forward,
    domain: n.domain,
    dns: n.dns,
    ip: n.ip,
  };
}

const kib = (value: string | undefined, unit: string | undefined) =>
  Number(value) * ({ KiB: 1, MiB: 1024, GiB: 1024 * 1024 } as Record<string, number>)[unit ?? 'KiB']!;

/** A domain as the harness reads it; the root disk's file is ost's /dev/shm overlay, so only its name. */
function domainView(d: XmlNode) {
  const cpu = child(d, 'cpu');
  const devices = child(d, 'devices') as XmlNode;
  return {
    name: text(d.name),
    harness: child(d, 'metadata')?.['ost:ost'],
    memoryKiB: kib(text(d.memory), attr(child(d, 'memory'), 'unit')),
    vcpu: text(d.vcpu),
    topology: child(cpu, 'topology'),
    numa: asList(child(cpu, 'numa')?.cell).map((c) => {
      const cell = c as XmlNode;
      return [attr(cell, 'id'), attr(cell, 'cpus'), kib(attr(cell, 'memory'), attr(cell, 'unit'))];
    }),
    disks: asList(devices.disk).map((x) => {
      const disk = x as XmlNode;
      const file = attr(child(disk, 'source'), 'file') as string;
      return {
        file: file.endsWith('.raw') ? file : path.basename(file).replace(/-root\.qcow2$/, '.qcow2'),
        target: { dev: attr(child(disk, 'target'), 'dev'), bus: attr(child(disk, 'target'), 'bus') },
        format: attr(child(disk, 'driver'), 'type'),
        serial: text(disk.serial),
        boot: attr(child(disk, 'boot'), 'order'),
      };
    }),
    nics: asList(devices.interface).map((x) => {
      const nic = x as XmlNode;
      return [
        attr(child(nic, 'mac'), 'address'),
        attr(child(nic, 'source'), 'network'),
        attr(child(nic, 'model'), 'type'),
      ];
    }),
    serialLog: attr(child(child(devices, 'serial'), 'log'), 'file'),
    agent: attr(child(child(devices, 'channel'), 'target'), 'name'),
  };
}

describe("ost's libvirt objects against the ones lagofy.sh made for the same suite", () => {
  const checkout = tempTree({
    'basic-suite-master/ost.json': readFileSync(
      path.join(REPO_ROOT, 'test/fixtures/launcher/1_engine_2_hosts.json'),
      'utf8',
    ),
    'common/deploy-scripts/setup_engine.sh': 'true\n',
    'common/deploy-scripts/setup_storage.sh': 'true\n',
    'common/deploy-scripts/setup_host.sh': 'true\n',
  });
  const env = loadOstJson(path.join(checkout, 'basic-suite-master/ost.json'), {
    OST_IMAGES_DISTRO: 'debian12',
  });
  const prefixes = new Map(Object.entries(SUBNETS).map(([role, n]) => [role, `192.168.${n}`]));
  const layout = layoutEnv(env, ID, prefixes);
  const t = new Templates();
  const meta = {
    envId: ID,
    suite: env.suite,
    workdir: DEPLOYMENT,
    overlayDir: `/dev/shm/ost/${ID}`,
    ownerPid: 1,
    ownerStart: '1',
    state: 'starting' as const,
  };

  it('captured all of the suite: 3 networks and 4 domains', () => {
    expect(Object.keys(SUBNETS).sort()).toEqual(['bonding', 'management', 'storage']);
    expect(readdirSync(DIR).filter((f) => f.startsWith('domain-')).length).toBe(4);
    expect(ID).toMatch(/^[0-9a-f]{8}$/);
  });

  for (const role of ['management', 'storage', 'bonding']) {
    it(`renders the ${role} network as lagofy did: name, bridge, metadata, NAT, DNS, DHCP and DHCPv6 hosts`, () => {
      const net = layout.networks.find((n) => n.name === role);
      if (!net) throw new Error(`no ${role} network`);
      const ours = root(
        renderNetwork(t, { net, networks: layout.networks, vms: layout.vms, meta, shortNames: false }),
        'network',
      );
      expect(netView(ours)).toEqual(netView(root(fixture(`net-${role}.xml`), 'network')));
    });
  }

  for (const vmName of ['engine', 'storage', 'host-0', 'host-1']) {
    it(`renders the ${vmName} domain as lagofy did: name, metadata, memory, NUMA, disks and serials, NICs, log, agent`, () => {
      const i = env.vms.findIndex((v) => v.name === vmName);
      const vm = layout.vms[i];
      const e = env.vms[i];
      if (!vm || !e) throw new Error(`no ${vmName}`);
      const ours = root(
        renderDomain(t, {
          vm,
          networks: layout.networks,
          domainType: 'qemu',
          memoryMiB: e.memoryMiB,
          vcpus: e.vcpus,
          consoleLog: path.join(DEPLOYMENT, 'logs', vmName),
          disks: [
            {
              path: `${meta.overlayDir}/${vmName}.qcow2`,
              format: 'qcow2',
              dev: 'vda',
              bus: 'virtio',
              serial: 'ost-root-disk',
            },
            ...e.disks.map((d, j) => ({
              path: path.join(DEPLOYMENT, 'images', `${vmName}-${d.name}.raw`),
              format: 'raw' as const,
              dev: d.name,
              bus: 'scsi' as const,
              serial: String(j + 2),
            })),
          ],
          deployScripts: e.deployScripts.map((s) => s.name),
          qemuUser: { uid: 64055, gid: 64055 },
          meta: { ...meta, vm: vmName, roles: vm.roles },
        }),
        'domain',
      );
      expect(domainView(ours)).toEqual(domainView(root(fixture(`domain-${vmName}.xml`), 'domain')));
    });
  }

  it("writes hosts as lagofy did, line for line, with ost's 0600 key copy in the deployment dir as the key", () => {
    const lago = fixture('hosts');
    // ost's key column is its copy of the image key in the deployment dir (lagofy names the installed key):
    // a literal here, never read back out of lagofy's file
    const ours = `${DEPLOYMENT}/keys/debian12_id_rsa`;
    const lagoKeys = [...lago.matchAll(/ ansible_ssh_private_key_file=(\S+) /g)].map((m) => m[1]);
    expect(lagoKeys).toHaveLength(4);
    expect(lagoKeys).not.toContain(ours);
    // lagofy's lines with that one column swapped: names, addresses, options and the trailing empty line as
    // lagofy wrote them
    const expected = lago.replace(
      / ansible_ssh_private_key_file=\S+ /g,
      ` ansible_ssh_private_key_file=${ours} `,
    );
    const r = {
      id: ID,
      suite: env.suite,
      workdir: DEPLOYMENT,
      vms: layout.vms.map((v) => ({ ...v, key: ours })),
    };
    expect(renderHosts(r as unknown as EnvRecord)).toBe(expected);
  });
});
