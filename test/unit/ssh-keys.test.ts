// Per-environment SSH keys: each up's own ed25519 pair (real ssh-keygen), handed to the guests as the
// systemd credential ssh.authorized_keys.root in SMBIOS type 11 (libvirt <sysinfo><oemStrings>, qemu
// -smbios type=11), which the base layer's sshd reads where PID 1 put it; the image's shipped key only for images that read no
// credential; a checkpoint keeps its env's key, and an env restored from it (or reverted to it) uses it.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  PROVISION_OVERRIDE,
  rootfsFiles,
  SSH_KEY_SSHD_CONF,
  sshKeyCredentialFiles,
} from '../../src/builder/layer-kinds/debootstrap-tree.js';
import { domainXmlForRestore } from '../../src/launcher/checkpoint/domain-xml.js';
import { keyMismatch, saveKeys, stageCheckpointKeys } from '../../src/launcher/checkpoint/ssh-keys.js';
import type { StoredCheckpoint } from '../../src/launcher/checkpoint/store.js';
import { loadEnvironment } from '../../src/launcher/env/load.js';
import type { Environment } from '../../src/launcher/env/model.js';
import { imageVars, renderEnvSh, renderHosts } from '../../src/launcher/env-dir/ost-files.js';
import type { EnvRecord, VmRecord } from '../../src/launcher/env-dir/record.js';
import { readsSshCredential } from '../../src/launcher/images/resolve.js';
import { addOemStrings, renderDomain } from '../../src/launcher/libvirt/render.js';
import { Templates } from '../../src/launcher/libvirt/templates.js';
import {
  asList,
  attr,
  buildXml,
  child,
  parseXml,
  text,
  type XmlNode,
} from '../../src/launcher/libvirt/xml.js';
import { layoutEnv } from '../../src/launcher/net/layout.js';
import { makeKey } from '../../src/launcher/up/phases/env-dir.js';
import { type PlanInputs, planUp } from '../../src/launcher/up/plan.js';
import { qemuVmArgv } from '../../src/tools/qemu-system.js';
import { planInputs } from '../helpers/plan-inputs.js';
import { REPO_ROOT, tempTree } from '../helpers/sets.js';

const demo = () => loadEnvironment(path.join(REPO_ROOT, 'ost-env.yaml'), 'demo-suite');
const PUB =
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ7f1iJ0d6Qk9rjvH2xQv7m1Zx1cXo9H0Jm5uBbJ0bqf ost-env-0a1b2c3d';
const ENTRY = `io.systemd.credential:ssh.authorized_keys.root=${PUB}`;

const dom = (xml: string): XmlNode => {
  const p = parseXml(xml);
  if ('error' in p) throw new Error(p.error);
  return child(p.doc, 'domain') as XmlNode;
};
/** What a domain hands its guest through SMBIOS: the OEM strings, and whether qemu gets the sysinfo. */
const smbios = (d: XmlNode) => ({
  type: attr(child(d, 'sysinfo'), 'type'),
  entries: asList(child(child(d, 'sysinfo'), 'oemStrings')?.entry).map((e) => text(e)),
  mode: attr(child(child(d, 'os'), 'smbios'), 'mode'),
});

/** Plan inputs over images that need not exist; `credential` says which read the SSH key credential. */
const inputs = (env: Environment, credential: (ref: string) => boolean, over: Partial<PlanInputs> = {}) =>
  planInputs(env, { credential }, over);

describe("the env's key reaches the guests as a systemd credential in SMBIOS type 11", () => {
  it('a booted domain carries the oemStrings entry and <os><smbios mode="sysinfo"/>', () => {
    const env = demo();
    const layout = layoutEnv(
      env,
      '0a1b2c3d',
      new Map(env.networks.map((n, i) => [n.name, `192.168.${201 + i}`])),
    );
    const vm = layout.vms[0];
    if (!vm) throw new Error('no VM');
    const xml = renderDomain(new Templates(), {
      vm,
      networks: layout.networks,
      domainType: 'qemu',
      memoryMiB: 1024,
      vcpus: 1,
      consoleLog: '/run/ost/envs/0a1b2c3d/logs/engine',
      disks: [
        {
          path: '/dev/shm/ost/0a1b2c3d/engine.qcow2',
          format: 'qcow2',
          dev: 'vda',
          bus: 'virtio',
          serial: 'ost-root-disk',
        },
      ],
      deployScripts: [],
      qemuUser: { uid: 107, gid: 107 },
      meta: {
        envId: '0a1b2c3d',
        suite: env.suite,
        workdir: '/run/ost/envs/0a1b2c3d',
        overlayDir: '/dev/shm/ost/0a1b2c3d',
        ownerPid: 1,
        ownerStart: '1',
        state: 'starting',
      },
      oemStrings: [ENTRY],
    });
    const d = dom(xml);
    expect(smbios(d)).toEqual({ type: 'smbios', entries: [ENTRY], mode: 'sysinfo' });
    // the template's <os> keeps what it had
    expect(text(child(child(d, 'os'), 'type'))).toBe('hvm');
  });

  it("a restored VM's saved XML keeps the entry of the env the checkpoint was taken of", () => {
    const saved = dom(
      readFileSync(path.join(REPO_ROOT, 'test/fixtures/launcher/saved-domain-libvirt9.xml'), 'utf8'),
    );
    addOemStrings(saved, [ENTRY]);
    const out = domainXmlForRestore(buildXml({ domain: saved }), {
      disks: new Map([['vda', { path: '/dev/shm/ost/f9aff895/engine.qcow2', format: 'qcow2' }]]),
      consoleLog: '/run/ost/envs/f9aff895/logs/engine',
      rename: {
        name: 'ost-other-engine',
        uuid: '00000000-0000-4000-8000-000000000000',
        networks: new Map([
          ['ostf9aff895-200', 'ost0b0b0b0b-200'],
          ['ostf9aff895-201', 'ost0b0b0b0b-201'],
        ]),
      },
    });
    expect(smbios(dom(out))).toEqual({ type: 'smbios', entries: [ENTRY], mode: 'sysinfo' });
  });

  it('ost boot-image passes it to qemu as -smbios type=11 (a comma written twice)', () => {
    const argv = qemuVmArgv({
      disk: 'd.qcow2',
      accel: 'tcg',
      memoryMiB: 512,
      vcpus: 1,
      sshPort: 2222,
      consoleLog: 'c.log',
      oemStrings: [`${ENTRY}`, 'io.systemd.credential:x=a,b'],
    });
    expect(argv.slice(-4)).toEqual([
      '-smbios',
      `type=11,value=${ENTRY}`,
      '-smbios',
      'type=11,value=io.systemd.credential:x=a,,b',
    ]);
  });
});

describe('the base layer reads the credential (systemd 252 does not install it by itself)', () => {
  const files = sshKeyCredentialFiles();
  const conf = files[SSH_KEY_SSHD_CONF] as string;

  it("sshd takes root's keys from the system credential PID 1 imported, besides .ssh/authorized_keys", () => {
    const lines = conf.split('\n').filter((l) => l && !l.startsWith('#'));
    expect(lines).toEqual([
      'AuthorizedKeysFile .ssh/authorized_keys /run/credentials/@system/ssh.authorized_keys.%u',
    ]);
    // a drop-in Debian's sshd_config includes first (the first AuthorizedKeysFile sshd reads wins)
    expect(SSH_KEY_SSHD_CONF).toMatch(/^\/etc\/ssh\/sshd_config\.d\/[^/]+\.conf$/);
  });

  it('sshd accepts the drop-in (sshd -t -f with it included)', () => {
    // openssh-server: scripts/install-deps.sh (the --ipv6-only SOCKS helper needs it)
    const sshd = '/usr/sbin/sshd';
    const dir = tempTree({ 'inc.conf': conf });
    const cfg = path.join(dir, 'sshd_config');
    writeFileSync(cfg, `Include ${path.join(dir, 'inc.conf')}\nHostKey ${path.join(dir, 'hk')}\n`);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'hk')]);
    const out = execFileSync(sshd, ['-T', '-f', cfg, '-C', 'user=root,host=h,addr=127.0.0.1'], {
      encoding: 'utf8',
    });
    expect(out).toContain(
      'authorizedkeysfile .ssh/authorized_keys /run/credentials/@system/ssh.authorized_keys.%u',
    );
  });

  it("authorizes no key of the set's: the tree has no authorized_keys, and it has the drop-in", () => {
    const tree = rootfsFiles({
      kind: 'debootstrap',
      suite: 'bookworm',
      mirror: 'http://m',
      components: ['main'],
      packages: [],
      kernel: 'k',
      docs: true,
      diskSize: { text: '8G', bytes: 8 },
    } as never);
    expect(Object.keys(tree)).not.toContain('/root/.ssh/authorized_keys');
    expect(tree[SSH_KEY_SSHD_CONF]).toBe(conf);
    // systemd's own provisioning (Debian's 252 has provision.conf's `f^ /root/.ssh/authorized_keys`) is
    // replaced by a file of comments: tmpfiles writes nothing from the credential
    const provision = tree[PROVISION_OVERRIDE] as string;
    expect(PROVISION_OVERRIDE).toBe('/etc/tmpfiles.d/provision.conf');
    expect(provision.split('\n').filter((l) => l.trim() && !l.startsWith('#'))).toEqual([]);
  });
});

describe('one key per env', () => {
  it('two plans of images that read the credential get a fresh key each; the two ups make different keys (ssh-keygen)', async () => {
    const a = planUp(inputs(demo(), () => true));
    const b = planUp(inputs(demo(), () => true, { id: '0b0b0b0b' }));
    for (const p of [a, b]) {
      expect(new Set(p.vms.map((vm) => vm.key))).toEqual(new Set([`${p.workdir}/keys/id_ed25519`]));
      expect(p.vms.every((vm) => vm.keyFrom.kind === 'fresh')).toBe(true);
      expect(p.keyNotice).toBeUndefined();
      const owner = (f: string) => p.paths.find((x) => x.path === f);
      expect(owner(`${p.workdir}/keys/id_ed25519`)).toMatchObject({ uid: 0, mode: 0o600 });
      expect(owner(`${p.workdir}/keys/id_ed25519.pub`)).toMatchObject({ uid: 0, mode: 0o644 });
    }
    const dir = tempTree({});
    const pubs: string[] = [];
    for (const p of [a, b]) {
      const key = path.join(dir, p.id, 'id_ed25519');
      mkdirSync(path.dirname(key), { mode: 0o700 });
      await makeKey(key, { kind: 'fresh' }, p.id);
      expect(statSync(key).mode & 0o777).toBe(0o600);
      const pub = readFileSync(`${key}.pub`, 'utf8');
      expect(pub).toMatch(new RegExp(`^ssh-ed25519 \\S+ ost-env-${p.id}\\n$`));
      // the public half is the private key's
      expect(execFileSync('ssh-keygen', ['-y', '-f', key], { encoding: 'utf8' }).split(' ')[1]).toBe(
        pub.split(' ')[1],
      );
      pubs.push(pub);
    }
    expect(pubs[0]).not.toBe(pubs[1]);
  });

  it("an image that reads no credential: the env logs in with its set's shipped key everywhere, and says so", () => {
    const none = planUp(inputs(demo(), () => false));
    expect(new Set(none.vms.map((vm) => vm.key))).toEqual(
      new Set(['/run/ost/envs/0a1b2c3d/keys/debian12_id_rsa']),
    );
    expect(none.vms[0]?.keyFrom).toEqual({
      kind: 'copy',
      file: '/usr/share/ost-images/debian12_id_rsa',
      why: 'shipped',
    });
    expect(none.keyNotice).toMatch(
      /^debian12-engine-installed, debian12-host-installed read no SSH key credential: .*debian12_id_rsa/,
    );
    // mixed: one key for all (OST's harness knows one), the shipped one
    const mixed = planUp(inputs(demo(), (ref) => ref.endsWith('host-installed')));
    expect(new Set(mixed.vms.map((vm) => vm.key))).toEqual(
      new Set(['/run/ost/envs/0a1b2c3d/keys/debian12_id_rsa']),
    );
    expect(mixed.keyNotice).toMatch(/^debian12-engine-installed reads no SSH key credential/);
  });

  it('an image says it reads the credential in its manifest beside the qcow2', () => {
    const dir = tempTree({
      'a.json': JSON.stringify({ layer: 'a', sshCredential: true }),
      'b.json': JSON.stringify({ layer: 'b' }),
    });
    expect(readsSshCredential(path.join(dir, 'a.qcow2'))).toBe(true);
    expect(readsSshCredential(path.join(dir, 'b.qcow2'))).toBe(false);
    expect(readsSshCredential(path.join(dir, 'none.qcow2'))).toBe(false);
  });

  it("hosts and env.sh name the env's key (the harness's copy of it)", () => {
    const key = '/home/u/ost/deployment/keys/id_ed25519';
    const r = {
      id: '0a1b2c3d',
      suite: 's',
      workdir: '/home/u/ost/deployment',
      distro: 'debian12',
      vms: [
        {
          hostname: 'ost-s-engine',
          hostsAddress: '192.168.201.2',
          key,
          image: {
            path: '/usr/share/ost-images/debian12-engine-installed.qcow2',
            var: 'OST_IMAGES_ENGINE_INSTALLED',
          },
        },
      ],
    } as unknown as EnvRecord;
    expect(renderHosts(r)).toContain(` ansible_ssh_private_key_file=${key} `);
    expect(renderEnvSh(r, { uri: 'qemu:///system', ...imageVars(r) })).toContain(
      `export OST_IMAGES_SSH_KEY='${key}'\n`,
    );
  });
});

describe("a checkpoint keeps its env's key", () => {
  /** An env dir with a fresh key, and a record whose two VMs log in with it. */
  async function envWithKey(id: string) {
    const top = tempTree({});
    const workdir = path.join(top, 'envs', id);
    mkdirSync(path.join(workdir, 'keys'), { recursive: true, mode: 0o700 });
    const key = path.join(workdir, 'keys', 'id_ed25519');
    await makeKey(key, { kind: 'fresh' }, id);
    const vms = ['engine', 'host-0'].map((name) => ({ name, key }) as VmRecord);
    return { top, workdir, key, r: { id, workdir, vms } as unknown as EnvRecord };
  }

  it('records the key path with the checkpoint (0600), and an up --from it logs in with that key', async () => {
    const a = await envWithKey('0a1b2c3d');
    const ckDir = path.join(a.top, 'ck');
    mkdirSync(ckDir, { mode: 0o750 });
    const sshKeys = await saveKeys(a.r.vms, ckDir);
    expect(sshKeys).toEqual({ engine: 'keys/id_ed25519', 'host-0': 'keys/id_ed25519' });
    expect(statSync(path.join(ckDir, 'keys')).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(ckDir, 'keys/id_ed25519')).mode & 0o777).toBe(0o600);
    expect(readFileSync(path.join(ckDir, 'keys/id_ed25519'))).toEqual(readFileSync(a.key));
    expect(readFileSync(path.join(ckDir, 'keys/id_ed25519.pub'))).toEqual(readFileSync(`${a.key}.pub`));
    const env = demo();
    const ck = {
      name: 'ck',
      dir: ckDir,
      sizeBytes: 0,
      record: {
        env: { id: '0a1b2c3d', networks: [] },
        vms: env.vms.map((vm) => ({ name: vm.name, disks: [], memory: 'm', xml: 'x' })),
        sshKeys,
      },
    } as unknown as StoredCheckpoint;
    const plan = planUp(inputs(env, () => true, { from: ck }));
    for (const vm of plan.vms) {
      expect(vm.key).toBe('/run/ost/envs/0a1b2c3d/keys/id_ed25519');
      expect(vm.keyFrom).toEqual({
        kind: 'copy',
        file: path.join(ckDir, 'keys/id_ed25519'),
        why: 'checkpoint',
      });
    }
    // the up copies it (0600), public half beside it
    const copy = path.join(a.top, 'copy', 'id_ed25519');
    mkdirSync(path.dirname(copy));
    await makeKey(copy, plan.vms[0]?.keyFrom as never, plan.id);
    expect(readFileSync(copy)).toEqual(readFileSync(a.key));
    expect(statSync(copy).mode & 0o777).toBe(0o600);
    expect(readFileSync(`${copy}.pub`, 'utf8').split(' ').slice(0, 2)).toEqual(
      readFileSync(`${a.key}.pub`, 'utf8').split(' ').slice(0, 2),
    );
  });

  it("revert puts the checkpoint's key where the env's was; a checkpoint without keys does not fit an env with its own", async () => {
    const a = await envWithKey('0a1b2c3d');
    const ckDir = path.join(a.top, 'ck');
    mkdirSync(ckDir);
    const ck = {
      name: 'ck',
      dir: ckDir,
      record: { sshKeys: await saveKeys(a.r.vms, ckDir) },
    } as unknown as StoredCheckpoint;
    const b = await envWithKey('0b0b0b0b');
    expect(readFileSync(b.key)).not.toEqual(readFileSync(a.key));
    expect(keyMismatch(b.r, ck)).toBeUndefined();
    // staged first (nothing of the env changes), put in place after
    const staged = await stageCheckpointKeys(b.r, ck);
    expect(readFileSync(b.key)).not.toEqual(readFileSync(a.key));
    await staged.install();
    expect(readFileSync(b.key)).toEqual(readFileSync(a.key));
    expect(readFileSync(`${b.key}.pub`)).toEqual(readFileSync(`${a.key}.pub`));
    expect(statSync(b.key).mode & 0o777).toBe(0o600);
    const old = { ...ck, record: {} } as unknown as StoredCheckpoint;
    expect(keyMismatch(b.r, old)).toMatch(/keeps no SSH key/);
    const shipped = {
      ...b.r,
      vms: b.r.vms.map((vm) => ({ ...vm, key: '/x/keys/debian12_id_rsa' })),
    } as EnvRecord;
    expect(keyMismatch(shipped, old)).toBeUndefined();
  });

  it('revert refuses a checkpoint key that is a planted link or a path out of the checkpoint, before any change', async () => {
    const a = await envWithKey('0a1b2c3d');
    const ckDir = path.join(a.top, 'ck2');
    mkdirSync(ckDir);
    const sshKeys = await saveKeys(a.r.vms, ckDir);
    const b = await envWithKey('0b0b0b0b');
    const before = readFileSync(b.key);
    const victim = path.join(a.top, 'victim-key');
    writeFileSync(victim, 'secret', { mode: 0o600 });
    // the key swapped for a link to another root-only file
    const file = path.join(ckDir, 'keys/id_ed25519');
    rmSync(file);
    symlinkSync(victim, file);
    const ck = { name: 'ck2', dir: ckDir, record: { sshKeys } } as unknown as StoredCheckpoint;
    await expect(stageCheckpointKeys(b.r, ck)).rejects.toThrow(/cannot read the checkpoint's SSH key/);
    // a record naming a path out of the checkpoint dir
    const out = { ...ck, record: { sshKeys: { ...sshKeys, [b.r.vms[0]?.name as string]: '../victim-key' } } };
    await expect(stageCheckpointKeys(b.r, out as unknown as StoredCheckpoint)).rejects.toThrow(
      /names no usable SSH key/,
    );
    expect(readFileSync(b.key)).toEqual(before);
    expect(existsSync(`${b.key}.revert`)).toBe(false);
  });
});
