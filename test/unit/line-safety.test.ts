// Names and line-based files: the suite's name follows the one name rule of VMs and networks, and every
// renderer of a line-based file (hosts, env.sh, ssh_config, the inventory, dnsmasq.conf, an RPM spec)
// refuses a value with a line break — a suite folder named `s\nProxyCommand x` must not become a line of
// root's ssh_config, nor a `%post` of a spec.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { renderSpec, specDescription } from '../../src/builder/rpm/spec.js';
import { main } from '../../src/cli/main.js';
import { ConfigError, OstError } from '../../src/core/errors.js';
import { oemCredential } from '../../src/guest/credentials.js';
import { loadEnvironment } from '../../src/launcher/env/load.js';
import { NAME } from '../../src/launcher/env/model.js';
import { loadOstJson } from '../../src/launcher/env/ost-json.js';
import { imageVars, renderEnvSh, renderHosts } from '../../src/launcher/env-dir/ost-files.js';
import { type EnvRecord, renderInventory, renderSshConfig } from '../../src/launcher/env-dir/record.js';
import { dnsmasqConfig } from '../../src/launcher/net/isolated.js';
import { type EnvLayout, layoutEnv } from '../../src/launcher/net/layout.js';
import { REPO_ROOT } from '../helpers/sets.js';

const dir = mkdtempSync(path.join(tmpdir(), 'ost-line-safety-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A minimal valid ost.json in a suite folder named `suite` of a checkout of its own; returns its path. */
function ostSuite(suite: string): string {
  const file = path.join(mkdtempSync(path.join(dir, 'checkout-')), suite, 'ost.json');
  mkdirSync(path.dirname(file), { recursive: true });
  const vm = { root_disk_var: 'OST_IMAGES_BASE', memory: '1024', nics: { engine: {} } };
  writeFileSync(
    file,
    JSON.stringify({
      vms: { engine: vm },
      networks: { management: { is_management: true, nics: ['engine'] } },
    }),
  );
  return file;
}

/** The ConfigError loading `file` as an ost.json throws. */
function ostJsonProblems(file: string): ConfigError {
  try {
    loadOstJson(file, {});
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error(`${file} loaded without a problem`);
}

/** `ost <argv>` through main, as bad-input.test.ts runs it: exit code and stderr; nothing may be made. */
async function runCli(argv: string[]) {
  let stderr = '';
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  const saved = { ...process.env };
  Object.assign(process.env, {
    OST_STATE_DIR: path.join(dir, 'state'),
    OST_OVERLAY_DIR: path.join(dir, 'overlays'),
    OST_OVERLAY_FALLBACK: path.join(dir, 'fallback'),
    OST_LAYER_CACHE: path.join(dir, 'layers'),
    LIBVIRT_DEFAULT_URI: 'test:///nonexistent',
    OST_IMAGES_DISTRO: 'debian12',
  });
  try {
    return { code: await main(argv), stderr };
  } finally {
    spy.mockRestore();
    process.env = saved;
  }
}

describe('the suite name follows the name rule of VMs', () => {
  it('a suite folder named "s\\nProxyCommand x" is an input error (exit 2) naming the file, the key and the fix', async () => {
    const file = ostSuite('s\nProxyCommand x');
    const r = await runCli(['up', '--env', file]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(
      `${file}: (suite: the folder that holds ost.json): the suite is named after its folder, and "s\\nProxyCommand x" is not a name`,
    );
    expect(r.stderr).toMatch(/rename the folder/);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('error: '))).toHaveLength(1);
    // and so through --ost-repo, as ./ost.sh runs it
    const checkout = path.dirname(path.dirname(file));
    const again = await runCli(['up', 's\nProxyCommand x', '--ost-repo', checkout]);
    expect(again.code, again.stderr).toBe(2);
    expect(again.stderr).toContain('"s\\nProxyCommand x" is not a name');
  });

  it.each([
    ['a carriage return', 's\rx'],
    ['a space', 'basic suite'],
    ['uppercase', 'Basic-Suite-Master'],
    ['a dot', 'basic-suite-4.3'],
    ['a leading dash', '-suite'],
  ])('a suite folder with %s is refused', (_what, suite) => {
    const e = ostJsonProblems(ostSuite(suite));
    expect(e.problems).toEqual([
      expect.objectContaining({
        path: '(suite: the folder that holds ost.json)',
        message: expect.stringContaining(`${JSON.stringify(suite)} is not a name`),
      }),
    ]);
  });

  it("OST's own suite names stay valid, and are the suite's name", () => {
    for (const suite of [
      'basic-suite-master',
      'he-basic-suite-master',
      'ansible-suite-master',
      'tr-suite-master',
      'separate-machine-basic-suite-master',
    ]) {
      expect(NAME.test(suite)).toBe(true);
      expect(loadOstJson(ostSuite(suite), {}).suite).toBe(suite);
    }
  });

  it('an ost-env.yaml suite key follows the same rule', () => {
    const file = path.join(dir, 'ost-env.yaml');
    writeFileSync(
      file,
      'suites:\n  "s\\nProxyCommand x":\n    networks: { m: { management: true } }\n    vms: { vm: { image: debian12-base, nics: [m] } }\n',
    );
    expect(() => loadEnvironment(file, 's\nProxyCommand x')).toThrow(
      /:3: suites\.s\nProxyCommand x: "s\\nProxyCommand x" is not allowed as a name here: expected lowercase letters, digits and dashes/,
    );
  });
});

const ID = '1a2b3c4d';
const KEY = '/home/u/ost/deployment/keys/debian12_id_rsa';
const demo = () => loadEnvironment(path.join(REPO_ROOT, 'ost-env.yaml'), 'demo-suite');
const layout = (): EnvLayout =>
  layoutEnv(
    demo(),
    ID,
    new Map([
      ['management', '192.168.200'],
      ['storage', '192.168.201'],
    ]),
  );

/** An env record of the demo suite, as `ost up` records it (what the renderers read). */
function record(): EnvRecord {
  return {
    id: ID,
    suite: 'demo-suite',
    workdir: '/home/u/ost/deployment',
    uri: 'qemu:///system',
    distro: 'debian12',
    vms: layout().vms.map((v) => ({
      ...v,
      key: KEY,
      image: {
        ref: 'debian12-base',
        path: '/usr/share/ost-images/debian12-base.qcow2',
        package: { name: 'ost-images-debian12-base', version: '1', release: '1' },
        chain: [],
        var: 'OST_IMAGES_BASE',
      },
    })),
  } as unknown as EnvRecord;
}

const envSh = (r: EnvRecord, over: Partial<Parameters<typeof renderEnvSh>[1]> = {}) =>
  renderEnvSh(r, { ostRepo: '/home/u/ost', uri: 'qemu:///system', ...imageVars(r), ...over });

/** The demo record with one value of its own, or of its first VM, set to `v`. */
function recordWith(field: 'suite' | 'workdir' | 'id', v: string): EnvRecord {
  const r = record();
  r[field] = v;
  return r;
}
function vmWith(field: 'name' | 'hostname' | 'address' | 'hostsAddress' | 'key', v: string): EnvRecord {
  const r = record();
  const vm = r.vms[0] as EnvRecord['vms'][number];
  vm[field] = v;
  return r;
}

type Case = [what: string, render: (bad: string) => unknown];
const recordCases: Case[] = [
  ['hosts: a VM hostname', (b) => renderHosts(vmWith('hostname', b))],
  ['hosts: the address', (b) => renderHosts(vmWith('hostsAddress', b))],
  ['hosts: the key path', (b) => renderHosts(vmWith('key', b))],
  ['env.sh: the suite', (b) => envSh(recordWith('suite', b))],
  ['env.sh: the deployment dir', (b) => envSh(recordWith('workdir', b))],
  ['env.sh: the env id', (b) => envSh(recordWith('id', b))],
  ['env.sh: the OST repo', (b) => envSh(record(), { ostRepo: b })],
  ['env.sh: the URI', (b) => envSh(record(), { uri: b })],
  ['env.sh: an image path', (b) => envSh(record(), { images: { OST_IMAGES_BASE: b } })],
  ['env.sh: the key path', (b) => envSh(vmWith('key', b))],
  ['ssh_config: a VM name', (b) => renderSshConfig(vmWith('name', b))],
  ['ssh_config: a VM hostname', (b) => renderSshConfig(vmWith('hostname', b))],
  ['ssh_config: the address', (b) => renderSshConfig(vmWith('address', b))],
  ['ssh_config: the key path', (b) => renderSshConfig(vmWith('key', b))],
  ['ssh_config: the suite', (b) => renderSshConfig(recordWith('suite', b))],
  ['ssh_config: the workdir', (b) => renderSshConfig(recordWith('workdir', b))],
  ['inventory: a VM hostname', (b) => renderInventory(vmWith('hostname', b))],
  ['inventory: the address', (b) => renderInventory(vmWith('address', b))],
  ['inventory: the key path', (b) => renderInventory(vmWith('key', b))],
  ['inventory: the suite', (b) => renderInventory(recordWith('suite', b))],
  ['inventory: the env id', (b) => renderInventory(recordWith('id', b))],
];

/** The demo layout with one value of its first VM's first NIC (or the VM's name) set to `v`. */
function layoutWith(field: 'hostname' | 'mac' | 'ipv4' | 'ipv6' | 'vm name', v: string): EnvLayout {
  const l = layout();
  const vm = l.vms[0] as EnvLayout['vms'][number];
  const nic = vm.nics[0] as EnvLayout['vms'][number]['nics'][number];
  if (field === 'vm name') vm.name = v;
  else nic[field] = v;
  return l;
}
/** The demo layout with its first network's IPv4 prefix set to `v`. */
function prefixWith(v: string): EnvLayout {
  const l = layout();
  const ipv4 = l.networks[0]?.ipv4;
  if (ipv4) ipv4.prefix = v;
  return l;
}
const dnsmasq = (l: EnvLayout, d = '/run/ost/netns/1a2b3c4d') => dnsmasqConfig(l, d, { shortNames: true });
const dnsmasqCases: Case[] = [
  ['dnsmasq.conf: the dir', (b) => dnsmasq(layout(), `/run/ost/netns/${b}`)],
  ['dnsmasq.conf: a NIC hostname', (b) => dnsmasq(layoutWith('hostname', b))],
  ['dnsmasq.conf: a MAC', (b) => dnsmasq(layoutWith('mac', b))],
  ['dnsmasq.conf: an IPv4 address', (b) => dnsmasq(layoutWith('ipv4', b))],
  ['dnsmasq.conf: an IPv6 address', (b) => dnsmasq(layoutWith('ipv6', b))],
  ['dnsmasq.conf: a network prefix', (b) => dnsmasq(prefixWith(b))],
  ['dnsmasq.hosts: a VM name', (b) => dnsmasq(layoutWith('vm name', b))],
];

const FILE = {
  src: '/b/debian12-engine-installed.qcow2',
  name: 'debian12-engine-installed.qcow2',
  mode: '0444',
};
const spec = () => ({
  name: 'ost-images-debian12-engine-installed',
  version: '1',
  release: '202611251945',
  summary: 's',
  description: 'd',
  provides: ['ost-images-layer(debian12-engine-installed) = abc'],
  requires: ['ost-images-debian12-base = 1-202611251900'],
  payload: 'w3T0.zstdio',
  files: [FILE],
});
const specCases: Case[] = [
  ['spec: the Name', (b) => renderSpec({ ...spec(), name: b })],
  ['spec: the Version', (b) => renderSpec({ ...spec(), version: b })],
  ['spec: the Release', (b) => renderSpec({ ...spec(), release: b })],
  ['spec: the Summary', (b) => renderSpec({ ...spec(), summary: b })],
  ['spec: a Provides', (b) => renderSpec({ ...spec(), provides: [b] })],
  ['spec: a Requires', (b) => renderSpec({ ...spec(), requires: [b] })],
  ['spec: a file source', (b) => renderSpec({ ...spec(), files: [{ ...FILE, src: b }] })],
  ['spec: a file mode', (b) => renderSpec({ ...spec(), files: [{ ...FILE, mode: b }] })],
];

describe('every line-based renderer refuses a line break in a value', () => {
  const cases = [...recordCases, ...dnsmasqCases, ...specCases];
  it.each(
    cases.flatMap(([what, render]): [string, string, Case[1]][] => [
      [what, '\\n', render],
      [what, '\\r', render],
    ]),
  )('%s with %s', (_what, brk, render) => {
    const bad = `x${brk === '\\n' ? '\n' : '\r'}ProxyCommand touch /tmp/owned`;
    expect(() => render(bad)).toThrow(OstError);
    expect(() => render(bad)).toThrow(/holds a line break/);
  });

  it('renders normal values unchanged', () => {
    const r = record();
    expect(renderHosts(r)).toBe(
      `ost-demo-suite-engine ansible_host=fd8f:1391:3a82:200::c0a8:c802 ansible_ssh_private_key_file=${KEY} ansible_ssh_extra_args='-o UserKnownHostsFile=/dev/null'\n` +
        `ost-demo-suite-host-0 ansible_host=fd8f:1391:3a82:200::c0a8:c803 ansible_ssh_private_key_file=${KEY} ansible_ssh_extra_args='-o UserKnownHostsFile=/dev/null'\n\n`,
    );
    expect(envSh(r).split('\n')).toEqual(
      expect.arrayContaining([
        '# ost environment 1a2b3c4d (suite demo-suite): what lagofy.sh and ost-images.sh export for it.',
        "export OST_DEPLOYMENT='/home/u/ost/deployment'",
        "export OST_IMAGES_BASE='/usr/share/ost-images/debian12-base.qcow2'",
        `export OST_IMAGES_SSH_KEY='${KEY}'`,
        "export SUITE='demo-suite'",
      ]),
    );
    expect(renderSshConfig(r)).toContain(
      `# ost environment 1a2b3c4d (suite demo-suite); use: ssh -F /home/u/ost/deployment/ssh_config <vm>\nHost engine ost-demo-suite-engine\n  HostName 192.168.200.2\n  IdentityFile ${KEY}\n  User root\n`,
    );
    const inv = renderInventory(r);
    expect(inv).toContain(
      `[engine]\nost-demo-suite-engine ansible_host=192.168.200.2 ansible_user=root ansible_ssh_private_key_file=${KEY}\n`,
    );
    expect(inv.endsWith('ost_env_id=1a2b3c4d\nost_suite=demo-suite\n')).toBe(true);
    const { conf, hosts } = dnsmasq(layout());
    expect(conf).toContain('\ndhcp-host=54:52:c0:a8:c8:02,192.168.200.2,ost-demo-suite-engine\n');
    expect(hosts).toContain('192.168.200.2 ost-demo-suite-engine engine\n');
    expect(renderSpec(spec())).toContain('\nName: ost-images-debian12-engine-installed\nVersion: 1\n');
  });

  it('env.sh exports only variable names', () => {
    expect(() => envSh(record(), { images: { 'X;touch /tmp/owned;Y': '/x' } })).toThrow(
      /env\.sh: "X;touch \/tmp\/owned;Y" is not a variable name/,
    );
  });
});

describe("a spec's %description stays a body: no line of it can start a section", () => {
  it('keeps several lines, indents one that would start a section, and breaks at a lone \\r too', () => {
    expect(specDescription('one\ntwo\r\nthree')).toBe('one\ntwo\nthree');
    expect(specDescription('built from\n%post\n  %files\n100% data')).toBe(
      'built from\n %%post\n   %%files\n100%% data',
    );
    // rpm reads lines up to \n: a \r left in a line would hide a section header from this check
    const d = specDescription('a\r%post\rtouch /tmp/owned');
    expect(d).not.toMatch(/\r/);
    expect(d.split('\n')).toEqual(['a', ' %%post', 'touch /tmp/owned']);
    const s = renderSpec({ ...spec(), description: 'a\r%pre\n%post\r\n%files' });
    expect(s.split('\n').filter((l) => /^%(pre|post|files)\b/.test(l))).toEqual(['%files']);
  });
});

describe('an SMBIOS credential is one OEM string', () => {
  it('refuses a line break in the value and a line break or "=" in the name', () => {
    expect(oemCredential('ssh.authorized_keys.root', 'ssh-ed25519 AAAA k')).toBe(
      'io.systemd.credential:ssh.authorized_keys.root=ssh-ed25519 AAAA k',
    );
    expect(() => oemCredential('ssh.authorized_keys.root', 'ssh-ed25519 AAAA\nssh-rsa BBBB')).toThrow(
      /holds a line break/,
    );
    expect(() => oemCredential('a=b', 'v')).toThrow(OstError);
    expect(() => oemCredential('a\nb', 'v')).toThrow(OstError);
  });
});
