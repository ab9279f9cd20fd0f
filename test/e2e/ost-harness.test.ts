// End-to-end: an OST suite (ost.json in an OST-shaped checkout: engine, storage with two extra disks,
// host-0 and host-1 with four NICs; management, storage and bonding networks) brought up by `ost up` from
// the shared debian12 images through OST_IMAGES_*, then read the way OST's harness reads it: virsh
// dumpxml / net-dumpxml (ost_harness_view.py), lagofy.sh's shell pipelines, the hosts file, SSH with the
// hosts line's key and address. Two deployments side by side: one made by root, one by an unprivileged user
// in the libvirt and qemu groups (as OST users run ost.sh), whose checkout holds a 2-VM cut of the same
// topology (host-0 and storage: bonding NICs and extra disks; six TCG guests on two cores, not eight, which
// once took a CI run's boots past 25 min). libvirtd runs inside a network namespace.
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/core/exec.js';
import type { EnvRecord } from '../../src/launcher/env-dir/record.js';
import { qemuIdentity } from '../../src/launcher/images/qemu-user.js';
import { sshArgv } from '../../src/tools/ssh.js';
import { REPO_ROOT } from '../helpers/sets.js';
import { ensureBuilt, isRoot, OST } from './helpers.js';
import { LibvirtNetns } from './netns.js';
import { sharedImages } from './shared-images.js';

const MIN = 60_000;
const SUITE = 'basic-suite-master';
const VMS = ['engine', 'host-0', 'host-1', 'storage'];
const USER_VMS = ['host-0', 'storage'];
const hostnames = (vms: string[]) => vms.map((vm) => `ost-${SUITE}-${vm}`);
const work = isRoot ? mkdtempSync('/var/tmp/ost-e2e-harness-') : '/nonexistent';
const repo = path.join(work, 'ovirt-system-tests');
const stateDir = path.join(work, 'state');
const overlayDir = `/dev/shm/ost-e2e-harness-${process.pid}`;
// the unprivileged user: its own home with its own OST checkout, its runtime dir (ost's state when not root)
const USER = 'ost-e2e-user';
const home = path.join(work, 'user');
const userRepo = path.join(home, 'ovirt-system-tests');
const runtimeDir = path.join(home, 'run');
let userUid = -1;
let createdUser = false;
let ns: LibvirtNetns;
let imagesEnv: Record<string, string> = {};
/** The shared set's installroot (root's dnf install: its rpm database is <root>/root/.rpmdb on Debian). */
let imagesRoot = '';

/**
 * An OST checkout as far as ost reads it: the suite folder (ost.json a symlink, as OST's), deploy scripts.
 * `only`: the VMs to keep of the topology (and their NICs on the networks).
 */
function makeCheckout(dir: string, only = VMS): void {
  mkdirSync(path.join(dir, 'common/init-configs'), { recursive: true });
  mkdirSync(path.join(dir, 'common/deploy-scripts'), { recursive: true });
  mkdirSync(path.join(dir, SUITE), { recursive: true });
  // OST's topology, same shape (smaller VMs), with its # comment line as lagofy.sh allows
  const [comment, ...rest] = readFileSync(
    path.join(REPO_ROOT, 'test/fixtures/launcher/1_engine_2_hosts.json'),
    'utf8',
  ).split('\n');
  const doc = JSON.parse(rest.join('\n')) as {
    networks: Record<string, { nics: string[] }>;
    vms: Record<string, { nics: Record<string, unknown> }>;
  };
  for (const vm of Object.keys(doc.vms)) {
    if (only.includes(vm)) continue;
    const nics = Object.keys(doc.vms[vm]?.nics ?? {});
    for (const net of Object.values(doc.networks)) net.nics = net.nics.filter((n) => !nics.includes(n));
    delete doc.vms[vm];
  }
  writeFileSync(
    path.join(dir, 'common/init-configs/1_engine_2_hosts.json'),
    `${comment}\n${JSON.stringify(doc, null, 2)}\n`,
  );
  symlinkSync('../common/init-configs/1_engine_2_hosts.json', path.join(dir, SUITE, 'ost.json'));
  for (const s of ['setup_engine', 'setup_storage', 'setup_host'])
    writeFileSync(
      path.join(dir, `common/deploy-scripts/${s}.sh`),
      `#!/bin/bash\necho ${s} > /etc/ost-deployed\n`,
    );
}

/** Each VM's memory (MiB) and vCPUs as the suite's ost.json gives them (read apart from ost). */
const SHAPE: Record<string, { memoryMiB: number; vcpus: number }> = Object.fromEntries(
  Object.entries(
    (
      JSON.parse(
        readFileSync(path.join(REPO_ROOT, 'test/fixtures/launcher/1_engine_2_hosts.json'), 'utf8')
          .split('\n')
          .slice(1)
          .join('\n'),
      ) as { vms: Record<string, { memory: string; vcpu_num: number }> }
    ).vms,
  ).map(([vm, v]) => [vm, { memoryMiB: Number(v.memory), vcpus: v.vcpu_num }]),
);

/** `ost up` of the suite inside the namespace, as a user of ost.sh would (deployment dir from OST_DEPLOYMENT). */
function upArgs(checkout = repo): string[] {
  return [OST, 'up', '--env', path.join(checkout, SUITE, 'ost.json'), '--timeout', '1500', '--json'];
}

/** A user in libvirt's group and in the group qemu runs as (kvm on Debian, qemu on EL), as OST asks. */
async function makeUser(): Promise<void> {
  const qemuGroup = (await run('getent', ['group', String(qemuIdentity().gid)])).stdout.split(':')[0];
  const exists = (await run('id', ['-u', USER], { allowFailure: true })).exitCode === 0;
  if (!exists) {
    await run('useradd', [
      '--system',
      '--no-create-home',
      '--home-dir',
      '/nonexistent',
      '--shell',
      '/usr/sbin/nologin',
      USER,
    ]);
    createdUser = true;
  }
  await run('usermod', ['-G', `libvirt,${qemuGroup}`, USER]);
  userUid = Number((await run('id', ['-u', USER])).stdout.trim());
  makeCheckout(userRepo, USER_VMS);
  mkdirSync(runtimeDir, { mode: 0o700 });
  await run('chown', ['-R', `${USER}:`, home]);
}

/** Run argv as the unprivileged user inside the namespace, with only the environment a shell of theirs has. */
function asUser(argv: string[], env: Record<string, string> = {}, timeoutMs = 5 * MIN) {
  const vars = {
    PATH: '/usr/local/bin:/usr/bin:/bin',
    HOME: home,
    XDG_RUNTIME_DIR: runtimeDir,
    LIBVIRT_DEFAULT_URI: 'qemu:///system',
    ...imagesEnv,
    ...env,
  };
  return ns.exec(
    ['runuser', '-u', USER, '--', 'env', '-i', ...Object.entries(vars).map(([k, v]) => `${k}=${v}`), ...argv],
    { allowFailure: true, cwd: home, timeoutMs, env: {} },
  );
}

function nsEnv(deployment?: string): Record<string, string> {
  const env: Record<string, string> = {
    ...imagesEnv,
    OST_STATE_DIR: stateDir,
    OST_OVERLAY_DIR: overlayDir,
    LIBVIRT_DEFAULT_URI: 'qemu:///system',
  };
  if (deployment) env.OST_DEPLOYMENT = deployment;
  return env;
}

interface View {
  networks: Record<string, { libvirt_name: string; ipv4: string; ipv6: string; gw4: string }>;
  vms: Record<
    string,
    {
      libvirt_name: string;
      deploy_scripts: string[];
      nics: { name: string; mac: string; role: string }[];
      ip_mapping: Record<string, string[]>;
      mac_mapping: Record<string, string[]>;
      disks: { dev: string; serial: string }[];
    }
  >;
}

async function harnessView(deployment: string): Promise<View> {
  const r = await ns.exec(['python3', path.join(REPO_ROOT, 'test/e2e/ost_harness_view.py'), deployment], {
    env: { LIBVIRT_DEFAULT_URI: 'qemu:///system' },
  });
  return JSON.parse(r.stdout) as View;
}

/** An OST suite's deployment dir, as its env record names it (ost's own env dir is apart). */
function deploymentOf(r: EnvRecord): string {
  return r.deployment?.dir as string;
}

/** The hosts file's lines as lagofy.sh's readers split them: name, address, key. */
function hostsLines(deployment: string): { name: string; ip: string; key: string }[] {
  const text = readFileSync(path.join(deployment, 'hosts'), 'utf8');
  expect(text.endsWith("'-o UserKnownHostsFile=/dev/null'\n\n")).toBe(true);
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const m =
        /^(\S+) ansible_host=(\S+) ansible_ssh_private_key_file=(\S+) ansible_ssh_extra_args='-o UserKnownHostsFile=\/dev\/null'$/.exec(
          l,
        );
      expect(m, l).not.toBeNull();
      return { name: m?.[1] as string, ip: m?.[2] as string, key: m?.[3] as string };
    });
}

/** SSH as OST's harness does from a hosts line: root at its address with its key. */
const hostsSsh = (l: { ip: string; key: string }, command: string) =>
  sshArgv({ host: l.ip, port: 22, user: 'root', privateKey: l.key }, command);

describe.skipIf(!isRoot)(
  "an OST suite on ost up, as OST's harness sees it (real libvirt in a namespace)",
  () => {
    // root's: <checkout>/deployment (no OST_DEPLOYMENT); the user's: OST_DEPLOYMENT in its home
    const first = path.join(repo, 'deployment');
    const second = path.join(home, 'deployment-2');
    let r1: EnvRecord;
    let r2: EnvRecord;

    beforeAll(async () => {
      ensureBuilt();
      chmodSync(work, 0o755);
      const shared = await sharedImages();
      imagesRoot = shared.root;
      const dir = path.join(shared.root, 'usr/share/ost-images');
      imagesEnv = {
        OST_IMAGES_DISTRO: 'debian12',
        OST_IMAGES_ENGINE_INSTALLED: path.join(dir, 'debian12-engine-installed.qcow2'),
        OST_IMAGES_HOST_INSTALLED: path.join(dir, 'debian12-host-installed.qcow2'),
        OST_IMAGES_STORAGE_BASE: path.join(dir, 'debian12-base.qcow2'),
      };
      makeCheckout(repo);
      await makeUser();
      // members of the libvirt group manage qemu:///system without polkit, as on an OST host
      ns = await LibvirtNetns.start(`ost-e2e-h${process.pid}`, {
        unix_sock_group: 'libvirt',
        unix_sock_rw_perms: '0770',
        auth_unix_rw: 'none',
        auth_unix_ro: 'none',
      });
    }, 120 * MIN);

    afterAll(async () => {
      await ns?.stop();
      rmSync(overlayDir, { recursive: true, force: true });
      if (userUid > 0) rmSync(`/dev/shm/ost-${userUid}`, { recursive: true, force: true });
      rmSync(work, { recursive: true, force: true });
      if (createdUser) await run('userdel', [USER], { allowFailure: true });
    }, 5 * MIN);

    it(
      'brings two deployments of the suite up side by side: root (default deployment dir, 4 VMs), a user in libvirt+qemu groups ($OST_DEPLOYMENT, 2 VMs)',
      async () => {
        const rootUp = ns.exec(upArgs(), {
          allowFailure: true,
          env: nsEnv(),
          cwd: repo,
          timeoutMs: 40 * MIN,
        });
        // the user's up starts once root's networks exist: each user leases subnets under its own state dir,
        // and both see libvirt's networks (two users leasing in the same instant is not covered yet)
        for (let i = 0; i < 600 && (await ns.ostObjects('network')).length < 3; i++)
          await new Promise((r) => setTimeout(r, 500));
        const userUp = asUser(upArgs(userRepo), { OST_DEPLOYMENT: second }, 40 * MIN);
        const [a, b] = await Promise.all([rootUp, userUp]);
        expect(a?.exitCode, a?.stderr).toBe(0);
        expect(b?.exitCode, b?.stderr).toBe(0);
        r1 = JSON.parse(a?.stdout as string) as EnvRecord;
        r2 = JSON.parse(b?.stdout as string) as EnvRecord;
        // <OST checkout>/deployment when OST_DEPLOYMENT is not set, as lagofy.sh
        expect(deploymentOf(r1)).toBe(first);
        expect(deploymentOf(r2)).toBe(second);
        expect(r1.id).toMatch(/^[0-9a-f]{8}$/);
        expect(r1.id).not.toBe(r2.id);
        const subnets = (r: EnvRecord) => r.networks.map((n) => n.subnet);
        expect(subnets(r1).some((s) => subnets(r2).includes(s))).toBe(false);
        expect(r1.vms.map((v) => v.name)).toEqual(VMS);
        expect(r2.vms.map((v) => v.name)).toEqual(USER_VMS);
      },
      45 * MIN,
    );

    it(
      "resolves images through rpm for the user too: --images-root finds the database root's dnf wrote there",
      async () => {
        // Debian's rpm keeps a database per user: the user's own rpm would look in <root>/<home>/.rpmdb.
        // A dry run resolves and plans (nothing boots); no OST_IMAGES_* path is given, only the root.
        const noPaths = {
          OST_IMAGES_ENGINE_INSTALLED: '',
          OST_IMAGES_HOST_INSTALLED: '',
          OST_IMAGES_STORAGE_BASE: '',
        };
        const r = await asUser(
          [OST, 'up', 'demo-suite', '--images-root', imagesRoot, '--dry-run', '--json'],
          noPaths,
        );
        expect(r.exitCode, r.stderr).toBe(0);
        const plan = JSON.parse(r.stdout) as {
          vms: { name: string; image: { path: string; package?: { name: string } } }[];
        };
        const dir = path.join(imagesRoot, 'usr/share/ost-images');
        expect(plan.vms.map((v) => [v.name, v.image.package?.name, v.image.path])).toEqual([
          [
            'engine',
            'ost-images-debian12-engine-installed',
            path.join(dir, 'debian12-engine-installed.qcow2'),
          ],
          ['host-0', 'ost-images-debian12-host-installed', path.join(dir, 'debian12-host-installed.qcow2')],
        ]);
      },
      5 * MIN,
    );

    it(
      "is found by OST's backend reads: every VM by name slice and working dir, IPs and MACs per role, netmask, deploy scripts",
      async () => {
        for (const r of [r1, r2]) {
          const v = await harnessView(deploymentOf(r));
          expect(Object.keys(v.networks).sort()).toEqual(['bonding', 'management', 'storage']);
          expect(Object.keys(v.vms).sort()).toEqual(hostnames(r === r1 ? VMS : USER_VMS));
          for (const [role, n] of Object.entries(v.networks)) {
            const net = r.networks.find((x) => x.name === role);
            expect(n.libvirt_name).toBe(`ost${r.id}-${net?.subnet}`);
            expect(n.ipv4).toBe(`192.168.${net?.subnet}.0/24`);
            expect(n.gw4).toBe(`192.168.${net?.subnet}.1`);
            expect(n.ipv6).toBe(`fd8f:1391:3a82:${net?.subnet}::/64`);
          }
          for (const vm of r.vms) {
            const seen = v.vms[vm.hostname];
            expect(seen?.libvirt_name).toBe(`${r.id}-ost-${SUITE}-${vm.name}`);
            // eth0 is the first NIC by name: the management one
            expect(seen?.nics[0]).toEqual({ name: 'eth0', mac: vm.nics[0]?.mac, role: 'management' });
            const expected: Record<string, string[]> = {};
            for (const nic of vm.nics)
              expected[nic.network] = [
                ...(expected[nic.network] ?? []),
                nic.ipv6 as string,
                nic.ipv4 as string,
              ];
            expect(seen?.ip_mapping).toEqual(expected);
          }
          const host0 = v.vms[`ost-${SUITE}-host-0`];
          const bond = r.networks.find((n) => n.name === 'bonding')?.subnet.toString(16);
          expect(host0?.mac_mapping.bonding).toEqual([`54:52:c0:a8:${bond}:02`, `54:52:c0:a8:${bond}:03`]);
          expect(host0?.nics.map((n) => `${n.name}:${n.role}`)).toEqual([
            'eth0:management',
            'eth1:bonding',
            'eth2:bonding',
            'eth3:storage',
          ]);
          expect(v.vms[`ost-${SUITE}-${r === r1 ? 'engine' : 'storage'}`]?.deploy_scripts).toEqual([
            `common/deploy-scripts/setup_${r === r1 ? 'engine' : 'storage'}.sh`,
          ]);
          expect(v.vms[`ost-${SUITE}-storage`]?.disks).toEqual([
            { dev: 'vda', serial: 'ost-root-disk' },
            { dev: 'sda', serial: '2' },
            { dev: 'sdb', serial: '3' },
          ]);
        }
        // lagofy.sh's own lookup (_get_uuid): grep the working dir out of net-dumpxml, cut on double quotes
        const uuid = await ns.exec(
          [
            'bash',
            '-c',
            'for n in $(virsh net-list --name | grep ^ost); do ' +
              'if [ "$(virsh net-dumpxml "$n" | grep "ost-working-dir comment" | cut -d \\" -f 2)" = "$OST_DEPLOYMENT" ]; ' +
              // biome-ignore lint/suspicious/noTemplateCurlyInString: bash's substring expansion, as lagofy.sh's
              'then echo "${n:3:8}"; break; fi; done',
          ],
          { env: nsEnv(first) },
        );
        expect(uuid.stdout.trim()).toBe(r1.id);
      },
      10 * MIN,
    );

    it(
      'answers SSH at the hosts line address (IPv6, DUID-LL) with its key; guests are named ost-<suite>-<vm>',
      async () => {
        for (const r of [r1, r2]) {
          const lines = hostsLines(deploymentOf(r));
          expect(lines.map((l) => l.name)).toEqual(hostnames(r === r1 ? VMS : USER_VMS));
          for (const l of lines) {
            expect(l.ip).toBe(r.vms.find((v) => v.hostname === l.name)?.nics[0]?.ipv6);
            // the owner's 0600 copy of the env's own key, in the deployment dir (same shape as lagofy's line)
            expect(l.key).toBe(path.join(deploymentOf(r), 'keys/id_ed25519'));
            expect(statSync(l.key).mode & 0o777).toBe(0o600);
            const s = await ns.exec(
              hostsSsh(
                l,
                'hostname; test -e /etc/ost-deployed && echo deployed || echo not-deployed; nproc; grep MemTotal /proc/meminfo',
              ),
              { timeoutMs: 2 * MIN },
            );
            const [name, deployed, nproc, memTotal] = s.stdout.split('\n');
            expect(name).toBe(l.name);
            // deploy scripts are OST's pytest's to run (ost up runs them only with --deploy)
            expect(deployed).toBe('not-deployed');
            // the suite's shape: its vcpu_num, and its memory less what the guest's kernel keeps (< 15%)
            const want = SHAPE[l.name.slice(`ost-${SUITE}-`.length)];
            expect(nproc, l.name).toBe(String(want?.vcpus));
            const kib = Number(/^MemTotal:\s+(\d+) kB$/.exec(memTotal ?? '')?.[1]);
            expect(kib, `${l.name} ${memTotal}`).toBeLessThanOrEqual((want?.memoryMiB ?? 0) * 1024);
            expect(kib, `${l.name} ${memTotal}`).toBeGreaterThan(0.85 * (want?.memoryMiB ?? 0) * 1024);
          }
        }
        // each deployment has its own key: one deployment's key opens none of the other's VMs
        const [l1, l2] = [hostsLines(deploymentOf(r1)), hostsLines(deploymentOf(r2))];
        const pub = (k: string) => readFileSync(`${k}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
        expect(pub(l1[0]?.key as string)).not.toBe(pub(l2[0]?.key as string));
        for (const [mine, theirs] of [
          [l1, l2],
          [l2, l1],
        ] as const) {
          const crossed = await ns.exec(
            hostsSsh({ ...(theirs[0] as { ip: string }), key: mine[0]?.key as string }, 'true'),
            {
              allowFailure: true,
              timeoutMs: 2 * MIN,
            },
          );
          expect(crossed.exitCode, `${mine[0]?.key} on ${theirs[0]?.name}`).not.toBe(0);
        }
        // the storage VM sees its extra disks where OST's setup_storage.sh looks for them
        const storage = hostsLines(deploymentOf(r1)).find((l) => l.name.endsWith('-storage'));
        if (!storage) throw new Error('no storage line in hosts');
        // by serial, as OST's scripts find them (the kernel's sdX order is not fixed): 2 = sda 101G, 3 = sdb 191G
        const byId = '/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_';
        // one device per call: lsblk lists several in its own order, not the arguments'
        const disks = await ns.exec(
          hostsSsh(storage, `blockdev --getsize64 ${byId}2; blockdev --getsize64 ${byId}3`),
          {
            timeoutMs: 2 * MIN,
          },
        );
        expect(disks.stdout.split('\n').map((l) => l.trim())).toEqual([
          String(101 * 2 ** 30),
          String(191 * 2 ** 30),
          '',
        ]);
      },
      10 * MIN,
    );

    it(
      'writes what the harness reads in the deployment dir: logs, env.sh, package lists; sparse disks; refuses a second up there',
      async () => {
        for (const vm of VMS) expect(statSync(path.join(first, 'logs', vm)).size).toBeGreaterThan(0);
        // the extra disks sit beside the overlays, sparse
        const sdaPath = r1.vms.find((v) => v.name === 'storage')?.disks[0]?.path as string;
        expect(sdaPath).toBe(path.join(r1.overlayDir, 'storage-sda.raw'));
        const sda = statSync(sdaPath);
        expect(sda.size).toBe(101 * 2 ** 30);
        expect(sda.blocks * 512).toBeLessThan(64 * 2 ** 20);
        // . deployment/env.sh gives OST's pytest its variables
        const sh = await ns.exec(
          [
            'bash',
            '-c',
            `. ${path.join(first, 'env.sh')}; echo "$OST_REPO_ROOT|$OST_DEPLOYMENT|$SUITE|$OST_IMAGES_DISTRO|$OST_IMAGES_SSH_KEY|$OST_IMAGES_STORAGE_BASE|$LIBVIRT_DEFAULT_URI|$ANSIBLE_HOST_KEY_CHECKING"`,
          ],
          { env: {} },
        );
        expect(sh.stdout.trim()).toBe(
          [
            repo,
            first,
            SUITE,
            'debian12',
            hostsLines(first)[0]?.key,
            imagesEnv.OST_IMAGES_STORAGE_BASE,
            'qemu:///system',
            'False',
          ].join('|'),
        );
        expect(readdirSync(path.join(repo, 'exported-artifacts/package_lists')).sort()).toEqual([
          'debian12-base-pkglist.txt',
          'debian12-engine-installed-pkglist.txt',
          'debian12-host-installed-pkglist.txt',
        ]);
        const again = await ns.exec(upArgs(), {
          allowFailure: true,
          env: nsEnv(),
          cwd: repo,
          timeoutMs: 5 * MIN,
        });
        expect(again.exitCode).toBe(1);
        expect(again.stderr).toContain(`deployment dir ${first} already exists`);
        // ost.sh run -6 needs OST's sshd_config for its SOCKS helper: refused before anything is made
        const v6 = await ns.exec([...upArgs(), '--ipv6-only'], {
          allowFailure: true,
          env: nsEnv(path.join(work, 'deployment-v6')),
          cwd: repo,
          timeoutMs: 5 * MIN,
        });
        expect(v6.exitCode).toBe(1);
        expect(v6.stderr).toContain(`${path.join(repo, 'common/helpers/sshd_config')} does not exist`);
        expect(existsSync(path.join(work, 'deployment-v6'))).toBe(false);
        expect((await ns.ostObjects('domain')).length).toBe(VMS.length + USER_VMS.length);
      },
      10 * MIN,
    );

    it(
      "checkpointed after OST's deploy: reverted in place (4 VMs), then restored after down, it is the same env to the harness: names, addresses, hosts, deployed marker",
      async () => {
        const ck = ['--checkpoint-dir', path.join(work, 'checkpoints')];
        const before = await harnessView(first);
        const hostsBefore = readFileSync(path.join(first, 'hosts'), 'utf8');
        // OST's pytest marks a deployed env so (its deploy fixture skips the deploy scripts then)
        for (const l of hostsLines(first)) await ns.exec(hostsSsh(l, 'touch /etc/ost-deployed'));
        writeFileSync(path.join(first, 'deployed'), '');
        // per VM: the marker file's content, uptime, and the guest clock's offset from the host's (s)
        const look = async () => {
          const out: Record<string, { file: string; uptime: number; offset: number }> = {};
          for (const l of hostsLines(first)) {
            const before = Date.now() / 1000;
            const r = await ns.exec(
              hostsSsh(
                l,
                'printf "%s\\n" "$(cat /etc/ost-deployed)"; cut -d" " -f1 /proc/uptime; date +%s.%N',
              ),
              {
                timeoutMs: 2 * MIN,
              },
            );
            const after = Date.now() / 1000;
            const [file, uptime, now] = r.stdout.split('\n');
            const g = Number(now);
            out[l.name] = {
              file: file ?? '',
              uptime: Number(uptime),
              offset: g < before ? g - before : g > after ? g - after : 0,
            };
          }
          return out;
        };
        const atCheckpoint = await look();
        const c = await ns.exec([OST, 'checkpoint', r1.id, 'after-deploy', ...ck], {
          allowFailure: true,
          env: nsEnv(),
        });
        expect(c.exitCode, c.stderr).toBe(0);
        expect(c.stdout).toContain('deployed');
        // a 4-VM env (storage with its two raw disks) put back in place: files as they were, uptime goes on
        for (const l of hostsLines(first)) await ns.exec(hostsSsh(l, 'echo changed > /etc/ost-deployed'));
        const rv = await ns.exec([OST, 'revert', r1.id, 'after-deploy', ...ck], {
          allowFailure: true,
          env: nsEnv(),
        });
        expect(rv.exitCode, rv.stderr).toBe(0);
        const reverted = await look();
        for (const [vm, was] of Object.entries(atCheckpoint)) {
          expect(reverted[vm]?.file, vm).toBe('');
          expect(reverted[vm]?.uptime ?? 0, vm).toBeGreaterThanOrEqual(was.uptime);
          expect(Math.abs(reverted[vm]?.offset ?? 99), `${vm} clock`).toBeLessThan(2);
        }
        expect(existsSync(path.join(first, 'deployed'))).toBe(true);
        const down = await ns.exec([OST, 'down', first], { allowFailure: true, env: nsEnv() });
        expect(down.exitCode, down.stderr).toBe(0);
        expect(existsSync(first)).toBe(false);
        const up = await ns.exec([...upArgs(), '--from', 'after-deploy', ...ck], {
          allowFailure: true,
          env: nsEnv(),
          cwd: repo,
          timeoutMs: 10 * MIN,
        });
        expect(up.exitCode, up.stderr).toBe(0);
        const back = JSON.parse(up.stdout) as EnvRecord;
        expect(back.id).toBe(r1.id);
        expect(deploymentOf(back)).toBe(first);
        expect(existsSync(path.join(first, 'deployed'))).toBe(true);
        expect(readFileSync(path.join(first, 'hosts'), 'utf8')).toBe(hostsBefore);
        expect(await harnessView(first)).toEqual(before);
        for (const l of hostsLines(first)) {
          const s = await ns.exec(hostsSsh(l, 'hostname; cat /etc/ost-deployed && echo deployed'), {
            timeoutMs: 2 * MIN,
          });
          expect(s.stdout.split('\n')).toEqual([l.name, 'deployed', '']);
        }
        r1 = back;
      },
      15 * MIN,
    );

    it(
      'ost status and ost down address an env by its deployment dir; down removes the dir and leaves nothing',
      async () => {
        const st = await ns.exec([OST, 'status', first, '--json'], { env: nsEnv() });
        expect(JSON.parse(st.stdout).id).toBe(r1.id);
        const down = await ns.exec([OST, 'down', first], { allowFailure: true, env: nsEnv() });
        expect(down.exitCode, down.stderr).toBe(0);
        expect(existsSync(first)).toBe(false);
        expect(await ns.ostObjects('domain')).toHaveLength(USER_VMS.length);
        const visible = (d: string) =>
          existsSync(d) ? readdirSync(d).filter((f) => !f.startsWith('.')) : [];
        expect(visible(overlayDir)).toEqual([]);
        expect(readdirSync(path.join(stateDir, 'envs'))).toEqual([]);
        expect(readdirSync(path.join(stateDir, 'leases')).filter((f) => !f.startsWith('.'))).toEqual([]);
        // the OST checkout itself is untouched
        expect(existsSync(path.join(repo, SUITE, 'ost.json'))).toBe(true);
      },
      10 * MIN,
    );

    it(
      'the unprivileged user owns its env: files, 0600 key, overlays qemu can open; status, ssh, list, gc and down work without root',
      async () => {
        // everything ost made for the user is the user's; what qemu opens is group qemu's, 0660
        const qemuGid = qemuIdentity().gid;
        for (const f of [
          second,
          path.join(second, 'hosts'),
          path.join(second, 'env.sh'),
          path.join(second, 'logs'),
        ])
          expect(statSync(f).uid, f).toBe(userUid);
        const key = hostsLines(second)[0]?.key as string;
        expect(key.startsWith(`${second}/`)).toBe(true);
        expect([statSync(key).uid, statSync(key).mode & 0o777]).toEqual([userUid, 0o600]);
        const overlays = `/dev/shm/ost-${userUid}/${r2.id}`;
        // its overlays and, beside them, its extra disks
        const disks = r2.vms.flatMap((v) => v.disks.map((d) => path.basename(d.path)));
        expect(disks).toContain('storage-sda.raw');
        expect(
          readdirSync(overlays)
            .filter((f) => !f.startsWith('.'))
            .sort(),
        ).toEqual([...USER_VMS.map((vm) => `${vm}.qcow2`), ...disks].sort());
        for (const f of [
          ...readdirSync(overlays)
            .filter((f) => f.endsWith('.qcow2'))
            .map((o) => path.join(overlays, o)),
          path.join(overlays, 'storage-sda.raw'),
        ]) {
          const s = statSync(f);
          expect([s.uid, s.gid, s.mode & 0o777], f).toEqual([userUid, qemuGid, 0o660]);
        }
        // its state lives under its runtime dir
        expect(readdirSync(path.join(runtimeDir, 'ost/envs'))).toEqual([r2.id]);
        const st = await asUser([OST, 'status', second, '--json']);
        expect(st.exitCode, st.stderr).toBe(0);
        const status = JSON.parse(st.stdout) as { id: string; domains: Record<string, string> };
        expect(status.id).toBe(r2.id);
        expect(Object.values(status.domains)).toEqual(USER_VMS.map(() => 'running'));
        const ssh = await asUser([OST, 'ssh', '--env', second, 'storage', 'hostname']);
        expect(ssh.exitCode, ssh.stderr).toBe(0);
        expect(ssh.stdout.trim()).toBe(`ost-${SUITE}-storage`);
        const list = await asUser([OST, 'list', '--json']);
        expect(list.exitCode, list.stderr).toBe(0);
        expect(JSON.stringify(JSON.parse(list.stdout))).toContain(r2.id);
        const gc = await asUser([OST, 'gc', '--json']);
        expect(gc.exitCode, gc.stderr).toBe(0);
        expect(await ns.ostObjects('domain')).toHaveLength(USER_VMS.length);
        const down = await asUser([OST, 'down', second]);
        expect(down.exitCode, down.stderr).toBe(0);
        expect(existsSync(second)).toBe(false);
        expect(await ns.ostObjects('domain')).toEqual([]);
        expect(await ns.ostObjects('network')).toEqual([]);
        expect(readdirSync(`/dev/shm/ost-${userUid}`).filter((f) => !f.startsWith('.'))).toEqual([]);
        expect(readdirSync(path.join(runtimeDir, 'ost/envs'))).toEqual([]);
        expect(readdirSync(path.join(runtimeDir, 'ost/leases')).filter((f) => !f.startsWith('.'))).toEqual(
          [],
        );
      },
      10 * MIN,
    );
  },
);
