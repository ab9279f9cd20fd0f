import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { loadEnvironment, parseImageRef } from '../../src/launcher/env/load.js';
import { imageForVar, loadOstJson } from '../../src/launcher/env/ost-json.js';
import { REPO_ROOT, tempTree } from '../helpers/sets.js';

function problems(fn: () => unknown) {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('ost-env.yaml', () => {
  it('loads the shipped suites', () => {
    const demo = loadEnvironment(path.join(REPO_ROOT, 'ost-env.yaml'), 'demo-suite');
    expect(demo.vms.map((v) => [v.name, v.image])).toEqual([
      ['engine', { kind: 'package', distro: 'debian12', layer: 'engine-installed' }],
      ['host-0', { kind: 'package', distro: 'debian12', layer: 'host-installed' }],
    ]);
    const basic = loadEnvironment(path.join(REPO_ROOT, 'ost-env.yaml'), 'basic-suite');
    expect(basic.networks.map((n) => n.name)).toEqual(['management', 'storage', 'bonding']);
    const storage = basic.vms.find((v) => v.name === 'storage');
    expect(storage?.disks).toEqual([
      { name: 'sdb', size: '101G', sizeBytes: 101 * 2 ** 30, format: 'raw' },
      { name: 'sdc', size: '21G', sizeBytes: 21 * 2 ** 30, format: 'raw' },
    ]);
    expect(basic.vms.find((v) => v.name === 'host-0')?.nics.map((n) => n.network)).toEqual([
      'management',
      'storage',
      'bonding',
      'bonding',
    ]);
  });

  it('reports every problem with file, line and key path', () => {
    const dir = tempTree({
      'env.yaml': `suites:
  s:
    networks:
      mgmt: { management: true, ipv4: none }
    vms:
      vm0: { image: "not an image", nics: [mgmt, nope], disks: [{ name: sdb, size: 1G }, { name: sdb, size: 2G }] }
      vm1: { image: debian12-base, nics: [other] }
`,
    });
    const p = problems(() => loadEnvironment(path.join(dir, 'env.yaml'), 's'));
    expect(p.map((x) => `${x.path}: ${x.message}`)).toEqual([
      'suites.s.networks.mgmt.ipv4: the management network needs IPv4 (auto or a /24)',
      'suites.s.vms.vm0.image: "not an image" is neither <distro>-<layer> (e.g. debian12-engine-installed) nor an absolute path',
      'suites.s.vms.vm0.nics[1]: unknown network "nope"; networks are: mgmt',
      'suites.s.vms.vm0.disks[1].name: duplicate disk sdb',
      'suites.s.vms.vm1.nics[0]: unknown network "other"; networks are: mgmt',
      'suites.s.vms.vm1.nics: the first NIC (eth0) must be on the management network mgmt: the VM is reached, and named, through it',
    ]);
    expect(p[0]?.line).toBe(4);
  });

  it('reports unknown networks together with schema problems', () => {
    const dir = tempTree({
      'env.yaml':
        'suites:\n  s:\n    networks:\n      m: { management: true, forward: bridge }\n    vms:\n      vm: { image: debian12-base, nics: [m, nope] }\n',
    });
    const p = problems(() => loadEnvironment(path.join(dir, 'env.yaml'), 's'));
    expect(p.map((x) => `${x.line}: ${x.path}`)).toEqual([
      '4: suites.s.networks.m.forward',
      '6: suites.s.vms.vm.nics[1]',
    ]);
  });

  it('names the known suites when the suite does not exist', () => {
    expect(() => loadEnvironment(path.join(REPO_ROOT, 'ost-env.yaml'), 'nope')).toThrow(
      /no suite "nope"; suites are: demo-suite, basic-suite/,
    );
  });

  it('parses image references', () => {
    expect(parseImageRef('el9stream-he-installed')).toEqual({
      kind: 'package',
      distro: 'el9stream',
      layer: 'he-installed',
    });
    expect(parseImageRef('/var/lib/x.qcow2')).toEqual({ kind: 'path', path: '/var/lib/x.qcow2' });
    expect(parseImageRef('Bad')).toBeUndefined();
  });
});

describe("OST's ost.json", () => {
  const ostJson = JSON.stringify({
    networks: {
      management: {
        is_management: true,
        template: 'common/libvirt-templates/net_template',
        nics: ['engine-eth0', 'host-0-eth0'],
      },
      storage: { template: 'common/libvirt-templates/net_template', nics: ['engine-eth1', 'host-0-eth1'] },
    },
    vms: {
      engine: {
        template: 'common/libvirt-templates/vm_template',
        memory: '4096',
        'deploy-scripts': ['common/deploy-scripts/setup_engine.sh'],
        nics: { 'engine-eth0': { template: 'nic' }, 'engine-eth1': { template: 'nic' } },
        root_disk_var: 'OST_IMAGES_ENGINE_INSTALLED',
        disks: { sdb: { template: 'disk', size: '101G', comment: 'iscsi' } },
      },
      'host-0': {
        memory: 2048,
        nics: { 'host-0-eth0': {}, 'host-0-eth1': {} },
        root_disk_var: 'OST_IMAGES_HOST_INSTALLED',
      },
    },
  });

  const checkout = (extra: Record<string, string> = {}) =>
    tempTree({
      'basic-suite-master/ost.json': ostJson,
      'common/deploy-scripts/setup_engine.sh': 'echo engine\n',
      ...extra,
    });

  it('maps networks, NICs, disks and root_disk_var to the same environment model, as lagofy.sh reads it', () => {
    const dir = checkout();
    const env = loadOstJson(path.join(dir, 'basic-suite-master/ost.json'), {
      OST_IMAGES_DISTRO: 'el9stream',
      OST_IMAGES_HOST_INSTALLED: '/usr/share/ost-images/el9stream-host-installed.qcow2',
    });
    expect(env.suite).toBe('basic-suite-master');
    expect(env.kind).toBe('ost-json');
    expect(env.ostRepo).toBe(dir);
    // created (and numbered) in file order with the management network last, all NAT, as lagofy.sh
    expect(env.networks.map((n) => [n.name, n.management, n.forward, n.nics])).toEqual([
      ['storage', false, 'nat', ['engine-eth1', 'host-0-eth1']],
      ['management', true, 'nat', ['engine-eth0', 'host-0-eth0']],
    ]);
    const engine = env.vms.find((v) => v.name === 'engine');
    expect(engine?.image).toEqual({ kind: 'package', distro: 'el9stream', layer: 'engine-installed' });
    expect(engine?.imageVar).toBe('OST_IMAGES_ENGINE_INSTALLED');
    expect(engine?.memoryMiB).toBe(4096);
    expect(engine?.vcpus).toBe(4);
    expect(engine?.nics).toEqual([
      { name: 'engine-eth0', network: 'management' },
      { name: 'engine-eth1', network: 'storage' },
    ]);
    expect(engine?.disks).toEqual([{ name: 'sdb', size: '101G', sizeBytes: 101 * 2 ** 30, format: 'raw' }]);
    // relative to the OST checkout (the folder holding the suite folder), recorded as written
    expect(engine?.deployScripts).toEqual([
      {
        file: path.join(dir, 'common/deploy-scripts/setup_engine.sh'),
        name: 'common/deploy-scripts/setup_engine.sh',
      },
    ]);
    expect(env.vms.find((v) => v.name === 'host-0')?.image).toEqual({
      kind: 'path',
      path: '/usr/share/ost-images/el9stream-host-installed.qcow2',
    });
  });

  it('drops # comment lines, sorts VMs, NICs and disks by name, and honours vcpu_num', () => {
    const doc = JSON.parse(ostJson);
    doc.vms.engine.vcpu_num = 2;
    doc.vms.engine.nics = { 'engine-eth1': {}, 'engine-eth0': {} };
    doc.vms.engine.disks = { sdb: { size: '2G' }, sda: { size: '1G' } };
    doc.vms = { 'host-0': doc.vms['host-0'], engine: doc.vms.engine };
    const text = `# a comment lagofy.sh strips\n${JSON.stringify(doc, null, 2)}\n#trailing\n`;
    const dir = checkout({ 'basic-suite-master/ost.json': text });
    const env = loadOstJson(path.join(dir, 'basic-suite-master/ost.json'), {});
    expect(env.vms.map((v) => v.name)).toEqual(['engine', 'host-0']);
    const engine = env.vms[0];
    expect(engine?.vcpus).toBe(2);
    expect(engine?.nics.map((n) => n.name)).toEqual(['engine-eth0', 'engine-eth1']);
    expect(engine?.disks.map((d) => d.name)).toEqual(['sda', 'sdb']);
  });

  it('reports a missing deploy script at load, relative to the OST checkout, and a duplicated key with its line', () => {
    const dir = tempTree({ 'basic-suite-master/ost.json': ostJson });
    const p = problems(() => loadOstJson(path.join(dir, 'basic-suite-master/ost.json'), {}));
    expect(p.map((x) => x.path)).toEqual(['vms.engine.deploy-scripts[0]']);
    expect(p[0]?.message).toContain(`resolved to ${path.join(dir, 'common/deploy-scripts/setup_engine.sh')}`);

    const dup = checkout({
      'basic-suite-master/ost.json': '{\n  "networks": {},\n  "vms": {\n    "a": {},\n    "a": {}\n  }\n}\n',
    });
    const d = problems(() => loadOstJson(path.join(dup, 'basic-suite-master/ost.json'), {}));
    expect(d.map((x) => [x.line, x.message])).toEqual([
      [5, 'a key appears twice in the same object; JSON readers keep only the last: remove one'],
    ]);
  });

  it('reports NICs on no network and a missing management network', () => {
    const bad = JSON.parse(ostJson);
    bad.networks.management.is_management = false;
    bad.networks.storage.nics = ['engine-eth1'];
    const dir = checkout({ 'basic-suite-master/ost.json': JSON.stringify(bad, null, 2) });
    const p = problems(() => loadOstJson(path.join(dir, 'basic-suite-master/ost.json'), {}));
    expect(p.map((x) => `${x.line}: ${x.path}: ${x.message}`)).toEqual([
      '2: networks: exactly one network needs "is_management": true (found 0)',
      '46: vms.host-0.nics.host-0-eth1: NIC host-0-eth1 is on no network; list it under networks.<name>.nics',
    ]);
  });

  it('reports a VM without a NIC on the management network (it could not be reached)', () => {
    const bad = JSON.parse(ostJson);
    bad.networks.management.nics = ['engine-eth0'];
    bad.networks.storage.nics = ['engine-eth1', 'host-0-eth1', 'host-0-eth0'];
    const dir = checkout({ 'basic-suite-master/ost.json': JSON.stringify(bad) });
    const p = problems(() => loadOstJson(path.join(dir, 'basic-suite-master/ost.json'), {}));
    expect(p.map((x) => `${x.path}: ${x.message}`)).toEqual([
      'vms.host-0.nics: no NIC on the management network management; add one (and list it in networks.management.nics) so the VM can be reached',
    ]);
  });

  it('keeps deploy scripts inside the checkout (ost.json) or the env file folder unless absolute, and files only', () => {
    const bad = JSON.parse(ostJson);
    bad.vms.engine['deploy-scripts'] = ['../../../../etc/passwd', 'common/deploy-scripts', '/etc/hostname'];
    const dir = checkout({ 'basic-suite-master/ost.json': JSON.stringify(bad) });
    const p = problems(() => loadOstJson(path.join(dir, 'basic-suite-master/ost.json'), {}));
    expect(p.map((x) => `${x.path}: ${x.message}`)).toEqual([
      `vms.engine.deploy-scripts[0]: ../../../../etc/passwd is outside ${dir}; give a path inside it, or an absolute path for a file elsewhere: deploy scripts are relative to the OST checkout, the folder that holds basic-suite-master/`,
      `vms.engine.deploy-scripts[1]: common/deploy-scripts does not exist (resolved to ${path.join(dir, 'common/deploy-scripts')}): deploy scripts are relative to the OST checkout, the folder that holds basic-suite-master/`,
    ]);
    const yamlDir = tempTree({
      'ost-env.yaml': [
        'suites:',
        '  s:',
        '    networks: {m: {management: true}}',
        '    vms:',
        '      a: {image: debian12-base, nics: [m], deployScripts: [../x.sh, ok.sh]}',
        '',
      ].join('\n'),
      'ok.sh': 'true\n',
    });
    const q = problems(() => loadEnvironment(path.join(yamlDir, 'ost-env.yaml'), 's'));
    expect(q.map((x) => `${x.line}: ${x.path}: ${x.message}`)).toEqual([
      `5: suites.s.vms.a.deployScripts[0]: ../x.sh is outside ${yamlDir}; give a path inside it, or an absolute path for a file elsewhere: relative to ost-env.yaml's folder`,
    ]);
  });

  it('names images as ost-images.sh does: storage-base whatever the distro, el9node-base on el9stream', () => {
    expect(imageForVar('OST_IMAGES_STORAGE_BASE', 'el9stream', {})).toEqual({
      kind: 'package',
      distro: 'storage',
      layer: 'base',
    });
    expect(imageForVar('OST_IMAGES_NODE', 'el9stream', {})).toEqual({
      kind: 'package',
      distro: 'el9node',
      layer: 'base',
    });
    expect(imageForVar('OST_IMAGES_NODE', 'debian12', {})).toEqual({
      kind: 'package',
      distro: 'node',
      layer: 'base',
    });
    expect(
      imageForVar('OST_IMAGES_STORAGE_BASE', 'el9stream', { OST_IMAGES_STORAGE_BASE: '/s.qcow2' }),
    ).toEqual({
      kind: 'path',
      path: '/s.qcow2',
    });
  });

  it('derives the package from the variable name when the variable is not set', () => {
    expect(imageForVar('OST_IMAGES_HE_INSTALLED', 'el9stream', {})).toEqual({
      kind: 'package',
      distro: 'el9stream',
      layer: 'he-installed',
    });
  });
});
