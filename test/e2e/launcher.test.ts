// End-to-end: ost up / down / gc on real libvirt (libvirtd inside a network namespace this test creates),
// from debian12 images that the builder made, published and dnf installed into a root; ost up --custom-repo
// with tiny .debs made here (custom layers built, reused, checked, collected).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { run } from '../../src/core/exec.js';
import type { EnvRecord } from '../../src/launcher/env-dir/record.js';
import { qemuIdentity } from '../../src/launcher/images/qemu-user.js';
import { info } from '../../src/tools/qemu-img.js';
import { sshArgv } from '../../src/tools/ssh.js';
import { makeDeb } from '../helpers/debs.js';
import { REPO_ROOT } from '../helpers/sets.js';
import { ensureBuilt, isRoot, OST } from './helpers.js';
import { LibvirtNetns } from './netns.js';
import { sharedImages } from './shared-images.js';

const MIN = 60_000;
// only made when the suite runs (root): a skipped suite runs no afterAll to remove it
const work =
  process.env.OST_E2E_LAUNCHER_DIR ?? (isRoot ? mkdtempSync('/var/tmp/ost-e2e-launcher-') : '/nonexistent');
// the installroot of the shared debian12 set (engine-installed and host-installed), set in beforeAll
let root = '';
const stateDir = path.join(work, 'state');
const overlayDir = `/dev/shm/ost-e2e-${process.pid}`;
const env = { OST_STATE_DIR: stateDir, OST_OVERLAY_DIR: overlayDir };
let ns: LibvirtNetns;
// ost up --custom-repo: the repos (tiny .debs made here) and the layer cache
const repo1 = path.join(work, 'custom-1');
const repo2 = path.join(work, 'custom-2');
const repo3 = path.join(work, 'custom-3');
const repo4 = path.join(work, 'custom-4');
const repo5 = path.join(work, 'custom-5');
const oneHost = path.join(work, 'one-host.yaml');
const layerCache = path.join(work, 'layers');
const cache = ['--layer-cache', layerCache];
const layerDirs = () =>
  existsSync(layerCache)
    ? readdirSync(layerCache)
        .filter((f) => /^[0-9a-f]{32}$/.test(f))
        .map((f) => path.join(layerCache, f))
    : [];

/** Whether root at a VM's address lets `key` in (one login, inside the namespace). */
async function opens(key: string, vm: { address: string }): Promise<boolean> {
  const r = await ns.exec(sshArgv({ host: vm.address, port: 22, user: 'root', privateKey: key }, 'true'), {
    allowFailure: true,
    timeoutMs: 2 * MIN,
  });
  return r.exitCode === 0;
}

/**
 * Two envs up at once have keys of their own (issue 28): different key pairs, each env's key authorized on
 * its VMs (the SMBIOS credential, which the base layer's sshd reads where systemd put it) and not on the
 * other's, and the key the image set ships (the base RPM's, 0600) opens none of them.
 */
async function expectOwnKeys(a: EnvRecord, b: EnvRecord): Promise<void> {
  const keyA = a.vms[0]?.key as string;
  const keyB = b.vms[0]?.key as string;
  const pub = (k: string) => readFileSync(`${k}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
  expect(pub(keyA)).not.toBe(pub(keyB));
  const shipped = path.join(root, 'usr/share/ost-images/debian12_id_rsa');
  expect(statSync(shipped).mode & 0o777).toBe(0o600);
  for (const [r, own, other] of [
    [a, keyA, keyB],
    [b, keyB, keyA],
  ] as const) {
    for (const vm of r.vms) {
      expect(await opens(own, vm), `${r.id} ${vm.name}: its env's key`).toBe(true);
      expect(await opens(other, vm), `${r.id} ${vm.name}: the other env's key`).toBe(false);
      expect(await opens(shipped, vm), `${r.id} ${vm.name}: the image set's key`).toBe(false);
      // the credential as PID 1 imported it, and no key written to the disk
      const g = await sshF(
        r,
        vm.name,
        'cat /run/credentials/@system/ssh.authorized_keys.root; echo; if test -e /root/.ssh/authorized_keys; then echo written; fi',
      );
      const [authorized, written] = g.stdout.split('\n');
      expect(authorized?.split(' ').slice(0, 2).join(' ')).toBe(pub(own));
      expect(written).toBe('');
    }
    // the domain hands it over as an SMBIOS type 11 OEM string
    const xml = (await ns.exec(['virsh', '-c', 'qemu:///system', 'dumpxml', r.vms[0]?.libvirtName as string]))
      .stdout;
    expect(xml).toContain(`<entry>io.systemd.credential:ssh.authorized_keys.root=${pub(own)}`);
    expect(xml).toMatch(/<smbios mode=["']sysinfo["']\/>/);
  }
}

/** `ost ARGS` inside the namespace. */
async function ostNs(args: string[], timeoutMs = 20 * MIN) {
  const r = await ns.exec([OST, ...args], { allowFailure: true, env, cwd: REPO_ROOT, timeoutMs });
  return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

/** A command on a VM through the env's ssh_config, from inside the namespace. */
async function sshF(r: EnvRecord, vm: string, command: string) {
  return ns.exec(['ssh', '-F', path.join(r.workdir, 'ssh_config'), vm, command], { timeoutMs: 2 * MIN });
}

async function up(extra: string[] = []): Promise<EnvRecord> {
  const r = await ostNs(['up', 'demo-suite', '--images-root', root, '--timeout', '1200', '--json', ...extra]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as EnvRecord;
}

/** Everything an env may leave behind, for "nothing is left" checks. */
async function leftovers() {
  const dir = (d: string) => (existsSync(d) ? readdirSync(d).filter((f) => !f.startsWith('.')) : []);
  return {
    domains: await ns.ostObjects('domain'),
    networks: await ns.ostObjects('network'),
    overlays: dir(overlayDir),
    leases: dir(path.join(stateDir, 'leases')),
    envs: dir(path.join(stateDir, 'envs')),
  };
}
const NOTHING = { domains: [], networks: [], overlays: [], leases: [], envs: [] };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Serve `dir` over http on the test namespace's loopback (python3 -m http.server, a port it picks): its URL,
 * its request log, and stop() to end it.
 */
async function serveHttp(dir: string) {
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      ns.name,
      'python3',
      '-u',
      '-m',
      'http.server',
      '--bind',
      '127.0.0.1',
      '--directory',
      dir,
      '0',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let log = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  child.stderr.on('data', (d) => {
    log += d;
  });
  const closed = new Promise((r) => child.on('close', r));
  for (let i = 0; i < 100 && !/ port (\d+)/.test(out) && child.exitCode === null; i++) await sleep(100);
  const port = / port (\d+)/.exec(out)?.[1];
  if (!port) {
    child.kill('SIGKILL');
    throw new Error(`python3 -m http.server did not start: ${out}${log}`);
  }
  return {
    url: `http://127.0.0.1:${port}/`,
    log: () => log,
    stop: async () => {
      child.kill('SIGTERM');
      await closed;
    },
  };
}

/**
 * Start `ost ARGS` in the namespace held at fault point `point` (OST_FAULT_PAUSE): resolves once it is
 * there (its mark written), failing the test when it exits or takes 2 min instead. Held for good, or until
 * the file `resume` exists. `pid` is ost's own (from the mark), the one to kill.
 */
async function startAt(
  args: string[],
  point: string,
  resume?: string,
  extraEnv: Record<string, string> = {},
) {
  const mark = path.join(work, `fault-${point.replace(/\W/g, '-')}.mark`);
  rmSync(mark, { force: true });
  const child = spawn('ip', ['netns', 'exec', ns.name, OST, ...args], {
    env: {
      ...process.env,
      ...env,
      OST_FAULT_PAUSE: point,
      OST_FAULT_MARK: mark,
      ...(resume ? { OST_FAULT_RESUME: resume } : {}),
      ...extraEnv,
    },
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  let ended = false;
  const exited = new Promise<number | null>((r) =>
    child.on('close', (code) => {
      ended = true;
      r(code);
    }),
  );
  for (let i = 0; i < 1200 && !existsSync(mark) && !ended; i++) await sleep(100);
  if (!existsSync(mark)) {
    if (!ended) child.kill('SIGKILL');
    throw new Error(`ost ${args.join(' ')} did not reach ${point}:\n${stderr}`);
  }
  const pid = Number(readFileSync(mark, 'utf8').split(' ')[1]);
  held.set(pid, exited);
  exited.then(() => held.delete(pid));
  return { pid, exited, running: () => !ended, stdout: () => stdout, stderr: () => stderr };
}

/** ost processes startAt started that have not exited yet, by pid. */
const held = new Map<number, Promise<unknown>>();

/**
 * When the calling test fails: kill what it left held at a fault point and take down every env there is,
 * so that the tests after it start from nothing (call it in tests that leave no env for the next ones).
 */
function cleanUpIfFailed(): void {
  onTestFailed(async () => {
    for (const [pid, exited] of held) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
      await exited;
    }
    const list = JSON.parse((await ostNs(['list', '--json'])).stdout || '[]') as { id: string }[];
    for (const e of list) await ostNs(['down', e.id]);
  }, 5 * MIN);
}

describe.skipIf(!isRoot)('ost up / down on real libvirt in a network namespace', () => {
  beforeAll(async () => {
    ensureBuilt();
    // qemu runs as the libvirt-qemu user: it must get through to what the envs keep under work/
    chmodSync(work, 0o755);
    root = (await sharedImages()).root;
    ns = await LibvirtNetns.start(`ost-e2e-${process.pid}`);
  }, 120 * MIN);

  afterAll(async () => {
    await ns?.stop();
    rmSync(overlayDir, { recursive: true, force: true });
    if (!process.env.OST_E2E_LAUNCHER_DIR) rmSync(work, { recursive: true, force: true });
  }, 5 * MIN);

  it(
    'bad env files and a missing image package fail with one clear error and create nothing',
    async () => {
      const bad = path.join(work, 'bad-env.yaml');
      writeFileSync(
        bad,
        'suites:\n  s:\n    networks:\n      m: { management: true, forward: bridge }\n    vms:\n      vm: { image: debian12-base, nics: [m, nope] }\n',
      );
      const r1 = await ostNs(['up', 's', '--env-file', bad]);
      expect(r1.code).toBe(2);
      expect(r1.stderr).toContain(`${bad}:4: suites.s.networks.m.forward`);
      expect(r1.stderr).toMatch(/suites\.s\.vms\.vm\.nics\[1\]: unknown network "nope"/);

      const missing = path.join(work, 'missing-env.yaml');
      writeFileSync(
        missing,
        'suites:\n  s:\n    networks:\n      m: { management: true }\n    vms:\n      vm: { image: debian12-he-installed, nics: [m] }\n',
      );
      const r2 = await ostNs(['up', 's', '--env-file', missing, '--images-root', root]);
      expect(r2.code).toBe(1);
      expect(r2.stderr).toContain('not installed: ost-images-debian12-he-installed');
      expect(r2.stderr).toContain(`fix: dnf --installroot=${root} install ost-images-debian12-he-installed`);

      // OST's own ost.json: root_disk_var resolves through OST_IMAGES_* to the same packages
      const suiteDir = path.join(work, 'he-suite');
      cpSync(path.join(REPO_ROOT, 'test/fixtures/launcher/ost.json'), path.join(suiteDir, 'ost.json'));
      const r3 = await ns.exec([OST, 'up', '--env', path.join(suiteDir, 'ost.json'), '--images-root', root], {
        allowFailure: true,
        env: { ...env, OST_IMAGES_DISTRO: 'debian12' },
      });
      expect(r3.exitCode).toBe(1);
      expect(r3.stderr).toContain('not installed: ost-images-debian12-he-installed');
      expect(await leftovers()).toEqual(NOTHING);
    },
    2 * MIN,
  );

  let first: EnvRecord;

  it(
    'brings demo-suite up from the installed images: thin overlays, SSH via inventory and ssh -F, DNS, second network',
    async () => {
      const imagesDir = path.join(root, 'usr/share/ost-images');
      const owners = () =>
        readdirSync(imagesDir)
          .filter((f) => f.endsWith('.qcow2'))
          .map((f) => {
            const st = statSync(path.join(imagesDir, f));
            return `${f} ${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)} ${st.ctimeMs}`;
          });
      const before = owners();
      first = await up();
      expect(first.status).toBe('up');
      expect(first.vms.map((v) => v.name)).toEqual(['engine', 'host-0']);
      for (const vm of first.vms) {
        expect(['running', 'degraded']).toContain(vm.systemState);
        expect(vm.image.package?.name).toBe(`ost-images-${vm.image.ref}`);
        expect(vm.image.path).toBe(path.join(root, `usr/share/ost-images/${vm.image.ref}.qcow2`));
        // a thin overlay in the shared cache, backed by the installed file's absolute path
        expect(path.dirname(vm.overlay)).toBe(path.join(overlayDir, first.id));
        const [top] = await info(vm.overlay, undefined, true);
        expect(top?.backingFilename).toBe(vm.image.path);
        expect(statSync(vm.overlay).size).toBeLessThan(64 * 2 ** 20);
        // root's overlays are the qemu user's alone
        const ov = statSync(vm.overlay);
        expect([ov.uid, ov.mode & 0o777], vm.overlay).toEqual([qemuIdentity().uid, 0o600]);
        expect(statSync(vm.key).mode & 0o777).toBe(0o600);
        // ost's own images read the SSH key credential: the env's own key, not the set's
        expect(vm.key).toBe(path.join(first.workdir, 'keys/id_ed25519'));
        expect(vm.timings.bootToSsh).toBeGreaterThan(0);
      }
      // what the images promise a test VM (issue 13): ost saw sshd through the console marker and logged in
      // once; each VM made its own host key at first boot, ed25519 only; nothing nobody asked for at boot
      const hostKeys: string[] = [];
      for (const vm of first.vms) {
        expect(vm.timings.sshdUpAt, `${vm.name}: readiness marker`).toBeGreaterThanOrEqual(
          vm.timings.startedAt as number,
        );
        // the login starts on the first sign of sshd: the marker, or port 22 when its probe came first
        const seen = Math.min(
          vm.timings.sshdUpAt as number,
          vm.timings.sshOpenAt ?? Number.POSITIVE_INFINITY,
        );
        expect(vm.timings.loginAt as number).toBeGreaterThanOrEqual(seen);
        expect(vm.timings.loginAt as number).toBeLessThan(seen + 2000);
        const g = await sshF(
          first,
          vm.name,
          'ls /etc/ssh/ | grep host_; cat /etc/ssh/ssh_host_ed25519_key.pub; systemctl is-active ost-ready.service; ' +
            'systemctl is-enabled e2scrub_reap.service apt-daily.timer man-db.timer; uname -r; ' +
            'find /usr/share/doc -type f ! -name copyright | wc -l',
        );
        const lines = g.stdout.trim().split('\n');
        expect(lines.slice(0, 2)).toEqual(['ssh_host_ed25519_key', 'ssh_host_ed25519_key.pub']);
        hostKeys.push(lines[2] as string);
        expect(lines.slice(3, 7)).toEqual(['inactive', 'masked', 'masked', 'masked']);
        expect(lines[7]).toMatch(/-cloud-amd64$/);
        expect(lines[8]).toBe('0');
      }
      expect(new Set(hostKeys).size).toBe(hostKeys.length);
      // the deploy script ran on both VMs
      for (const vm of ['engine', 'host-0'])
        expect((await sshF(first, vm, 'cat /etc/ost-deployed')).stdout).toMatch(/^deployed by ost up on /);
      for (const k of ['resolve', 'overlays', 'networks', 'domains', 'ready', 'deploy', 'total', 'overhead'])
        expect(first.timings[k], k).toBeTypeOf('number');
      // the installed images were not touched while the env runs: not chowned to qemu (libvirt's dynamic
      // labelling does that to a backing chain and never undoes it), not chmod-ed, not written (ctime)
      expect(owners()).toEqual(before);
      for (const f of first.vms[0]?.image.chain ?? []) expect(statSync(f).mode & 0o222).toBe(0);

      // Ansible through the inventory (raw: the images need no Python)
      const inv = path.join(first.workdir, 'inventory');
      const a = await ns.exec(['ansible', '-i', inv, 'all', '-m', 'raw', '-a', 'hostname -I'], {
        env: { ANSIBLE_HOST_KEY_CHECKING: 'False' },
        timeoutMs: 3 * MIN,
      });
      expect(a.stdout).toMatch(/ost-demo-suite-engine \| CHANGED/);
      expect(a.stdout).toMatch(/ost-demo-suite-host-0 \| CHANGED/);

      // ssh -F, by VM name and by DNS name
      const engine = first.vms[0] as EnvRecord['vms'][number];
      const host = first.vms[1] as EnvRecord['vms'][number];
      expect((await sshF(first, 'engine', 'systemctl is-system-running')).stdout.trim()).toMatch(
        /running|degraded/,
      );
      // VM to VM by DNS name on the management network: IPv4 and IPv6 (the address OST's hosts file names)
      for (const name of ['ost-demo-suite-host-0', 'host-0']) {
        const v4 = await sshF(first, 'ost-demo-suite-engine', `getent ahostsv4 ${name}`);
        expect(v4.stdout.split('\n')[0]?.split(/\s+/)[0], name).toBe(host.address);
        const v6 = await sshF(first, 'engine', `getent ahostsv6 ${name}`);
        expect(v6.stdout.split('\n')[0]?.split(/\s+/)[0], name).toBe(host.hostsAddress);
      }
      // the guest is named by DHCP on its management NIC, as OST's images
      expect((await sshF(first, 'host-0', 'hostname')).stdout.trim()).toBe('ost-demo-suite-host-0');
      await sshF(first, 'engine', 'ping -c 2 -W 5 ost-demo-suite-host-0');
      // the storage network carries traffic: ping host-0's storage address out of engine's storage NIC
      const storageIp = host.nics.find((n) => n.network === 'storage')?.ipv4 as string;
      const storageNic = engine.nics.find((n) => n.network === 'storage')?.mac as string;
      const route = await sshF(first, 'engine', `ip -o route get ${storageIp}; ip -o link`);
      const dev = /dev (\S+)/.exec(route.stdout)?.[1];
      expect(route.stdout).toMatch(new RegExp(`\\d+: ${dev}:.*link/ether ${storageNic}`));
      const ping = await sshF(first, 'engine', `ping -c 3 -W 5 -I ${dev} ${storageIp}`);
      expect(ping.stdout).toMatch(/3 received/);

      // ost ssh / status / list / console --log
      // ost ssh reaches the VM it names (its DHCP hostname and its own address), and passes the exit code
      const s = await ostNs(['ssh', 'host-0', '--env', first.id, '--', 'hostname; hostname -I']);
      expect(s.code, s.stderr).toBe(0);
      const [name, addresses] = s.stdout.split('\n');
      expect(name).toBe('ost-demo-suite-host-0');
      expect(addresses?.split(/\s+/)).toContain(host.address);
      expect((await ostNs(['ssh', 'engine', '--env', first.id, '--', 'exit 7'])).code).toBe(7);
      const st = await ostNs(['status', first.id, '--json']);
      expect(JSON.parse(st.stdout).domains).toEqual({
        [engine.libvirtName]: 'running',
        [host.libvirtName]: 'running',
      });
      // console --log prints that VM's own serial log: a line each guest writes to its serial port shows
      // up in its own log only
      for (const vm of ['engine', 'host-0']) await sshF(first, vm, `echo ost-serial-mark-${vm} > /dev/ttyS0`);
      for (const vm of ['engine', 'host-0']) {
        const log = () => ostNs(['console', vm, '--env', first.id, '--log', '--lines', '1000']);
        let c = await log();
        // virtlogd writes the serial output as it comes; give it a moment
        for (let i = 0; i < 20 && !c.stdout.includes(`ost-serial-mark-${vm}`); i++) {
          await new Promise((r) => setTimeout(r, 500));
          c = await log();
        }
        expect(c.code, c.stderr).toBe(0);
        expect(c.stdout).toContain(`ost-serial-mark-${vm}`);
        expect(c.stdout).not.toContain(`ost-serial-mark-${vm === 'engine' ? 'host-0' : 'engine'}`);
      }
    },
    25 * MIN,
  );

  it(
    'runs a second env of the same suite at the same time without collisions; made with --custom-repo, both VMs run the custom packages from layers built once per image, with no apt at run time',
    async () => {
      await makeDeb(repo1, 'less', '99:1-ost1'); // a higher version of a package both images have
      await makeDeb(repo1, 'ost-custom-probe', '1.0'); // new: installed because it is listed
      const second = await up(['--custom-repo', repo1, '--custom-install', 'ost-custom-probe', ...cache]);
      expect(second.id).not.toBe(first.id);
      const subnets = (r: EnvRecord) => r.networks.map((n) => n.ipv4?.cidr);
      expect(subnets(second).some((c) => subnets(first).includes(c))).toBe(false);
      const bridges = (r: EnvRecord) => r.networks.map((n) => n.bridge);
      expect(bridges(second).some((b) => bridges(first).includes(b))).toBe(false);
      // both answer, each with its own addresses
      expect((await sshF(first, 'host-0', 'hostname -I')).stdout).toContain(first.vms[1]?.address);
      expect((await sshF(second, 'host-0', 'hostname -I')).stdout).toContain(second.vms[1]?.address);
      await expectOwnKeys(first, second);
      const list = JSON.parse((await ostNs(['list', '--json'])).stdout) as { id: string; state: string }[];
      expect(list.map((e) => [e.id, e.state]).sort()).toEqual(
        [
          [first.id, 'up'],
          [second.id, 'up'],
        ].sort(),
      );

      // one layer per distinct image, built now, in the cache, read-only, on the image by a relative name
      expect(second.custom?.repos).toEqual([repo1]);
      expect(second.custom?.layers).toHaveLength(2);
      expect(layerDirs()).toHaveLength(2);
      for (const vm of second.vms) {
        const c = vm.image.custom as NonNullable<EnvRecord['vms'][number]['image']['custom']>;
        expect(c.built, vm.name).toBe(true);
        expect(Object.fromEntries(c.packages.map((p) => [p.name, p.version]))).toEqual({
          less: '99:1-ost1',
          'ost-custom-probe': '1.0',
        });
        expect(path.dirname(path.dirname(c.file))).toBe(layerCache);
        expect(statSync(c.file).mode & 0o777).toBe(0o444);
        // one appliance run per layer: one guestfish session did it all (no virt-customize, no second read)
        const buildLog = readFileSync(path.join(path.dirname(c.file), 'build.log'), 'utf8');
        expect(buildLog.match(/^\$ .*/gm)).toEqual([
          expect.stringMatching(/guestfish --format=qcow2 -a \S+layer\.qcow2$/),
        ]);
        expect(buildLog).toContain('upgrade --with-new-pkgs');
        const [overlay] = await info(vm.overlay, undefined, true);
        expect(overlay?.backingFilename).toBe(c.file);
        const [layer] = await info(c.file, undefined, true);
        expect(layer?.backingFilename).toBe(path.relative(path.dirname(c.file), vm.image.path));
        expect(vm.image.chain).toEqual([
          c.file,
          ...(first.vms.find((v) => v.name === vm.name)?.image.chain ?? []),
        ]);
        // the VM runs them; its package database was last written before it booted (no apt at run time)
        const q = await sshF(
          second,
          vm.name,
          'dpkg-query -W less ost-custom-probe; cat /usr/share/ost-custom-probe/version; ' +
            'echo $(( $(stat -c %Y /var/lib/dpkg/status) <= $(date -d "$(uptime -s)" +%s) )); ' +
            'cat /etc/apt/sources.list.d/ost-custom1.sources; ls /var/lib/ost-custom/custom1',
        );
        const lines = q.stdout.split('\n');
        expect(lines.slice(0, 4), vm.name).toEqual(['less\t99:1-ost1', 'ost-custom-probe\t1.0', '1.0', '1']);
        // the repo stays configured (enabled) in the VM, its copy inside
        expect(q.stdout).toContain('URIs: file:/var/lib/ost-custom/custom1');
        expect(q.stdout).toContain('Enabled: yes');
        expect(q.stdout).toContain('Packages');
      }
      // what OST's harness reads says the repos are applied; ost status lists the custom packages per VM
      expect(readFileSync(path.join(second.workdir, 'env.sh'), 'utf8')).toContain(
        `export OST_CUSTOM_REPOS_APPLIED='${repo1}'`,
      );
      const st = await ostNs(['status', second.id]);
      expect(
        st.stdout.match(
          /custom packages: less 99:1-ost1, ost-custom-probe 1.0 \(layer [0-9a-f]{12}, built now\)/g,
        ),
      ).toHaveLength(2);
      // taken down by hand as OST's ./ost.sh destroy does (its domains and networks destroyed, nothing
      // else): ost lists it as a leftover, and ost gc removes what is left — its overlays too
      for (const dom of second.vms)
        await ns.exec(['virsh', '-c', 'qemu:///system', 'destroy', dom.libvirtName]);
      for (const net of second.networks)
        await ns.exec(['virsh', '-c', 'qemu:///system', 'net-destroy', net.libvirtName]);
      const listed = JSON.parse((await ostNs(['list', '--json'])).stdout) as { id: string; state: string }[];
      expect(listed.find((e) => e.id === second.id)?.state).toBe('leftover');
      expect(existsSync(path.join(overlayDir, second.id))).toBe(true);
      const gc = await ostNs(['gc', '--json']);
      expect(gc.code, gc.stderr).toBe(0);
      expect((JSON.parse(gc.stdout) as { removed: { id: string }[] }).removed.map((r) => r.id)).toContain(
        second.id,
      );
      expect(existsSync(path.join(overlayDir, second.id))).toBe(false);
      expect(existsSync(path.join(stateDir, 'envs', second.id))).toBe(false);
    },
    25 * MIN,
  );

  it(
    'ost down removes domains, networks, overlays, leases and the env dir; again it is a no-op',
    async () => {
      // the local state is gone: down rediscovers the env from libvirt metadata
      rmSync(first.workdir, { recursive: true, force: true });
      const d = await ostNs(['down', first.id, '--json']);
      expect(d.code, d.stderr).toBe(0);
      expect(JSON.parse(d.stdout).domains).toHaveLength(2);
      expect(await leftovers()).toEqual(NOTHING);
      const again = await ostNs(['down', first.id]);
      expect(again.code).toBe(0);
      expect(again.stdout).toContain('nothing to remove');
    },
    5 * MIN,
  );

  it(
    "starts an OST suite from its checkout (--ost-repo) through sudo, IPv4 only, with --deploy: the VM has the suite's memory and vCPUs, its hosts line answers SSH, the deployment dir is the sudo user's",
    async () => {
      cleanUpIfFailed();
      // an OST checkout of the sudo user's (nobody here): the suite folder and a deploy script
      const checkout = path.join(work, 'sudo-checkout');
      const dir = path.join(checkout, 'json-suite');
      mkdirSync(dir, { recursive: true });
      mkdirSync(path.join(checkout, 'common/deploy-scripts'), { recursive: true });
      writeFileSync(
        path.join(checkout, 'common/deploy-scripts/setup_engine.sh'),
        '#!/bin/bash\necho setup_engine > /etc/ost-deployed\n',
      );
      const ostJson = JSON.parse(
        readFileSync(path.join(REPO_ROOT, 'test/fixtures/launcher/ost.json'), 'utf8'),
      );
      ostJson.vms.engine.root_disk_var = 'OST_IMAGES_ENGINE_INSTALLED';
      ostJson.vms.engine.memory = '768';
      ostJson.vms.engine.vcpu_num = 2;
      ostJson.vms.engine['deploy-scripts'] = ['common/deploy-scripts/setup_engine.sh'];
      writeFileSync(path.join(dir, 'ost.json'), JSON.stringify(ostJson, null, 2));
      const [uid, gid] = [65534, 65534];
      await ns.exec(['chown', '-R', `${uid}:${gid}`, checkout]);
      const r = await ns.exec(
        [
          OST,
          'up',
          'json-suite',
          '--ost-repo',
          checkout,
          '--images-root',
          root,
          '--ipv4-only',
          '--deploy',
          '--json',
        ],
        {
          allowFailure: true,
          env: {
            ...env,
            OST_IMAGES_DISTRO: 'debian12',
            SUDO_UID: String(uid),
            SUDO_GID: String(gid),
            SUDO_USER: 'nobody',
          },
          timeoutMs: 20 * MIN,
        },
      );
      expect(r.exitCode, r.stderr).toBe(0);
      const rec = JSON.parse(r.stdout) as EnvRecord;
      const deployment = path.join(checkout, 'deployment');
      expect(rec.suite).toBe('json-suite');
      // ost's own env dir is root's, apart; the deployment dir is the sudo user's
      expect(rec.deployment).toEqual({ dir: deployment, uid, gid });
      expect(rec.workdir).toBe(path.join(stateDir, 'envs', rec.id));
      expect(rec.deployed).toBe(true);
      const vm = rec.vms[0] as EnvRecord['vms'][number];
      expect(vm.image.package?.name).toBe('ost-images-debian12-engine-installed');
      expect(vm.hostname).toBe('ost-json-suite-engine');
      // the suite's shape, as libvirt has it: 768 MiB, 2 vCPUs
      const dominfo = (await ns.exec(['virsh', '-c', 'qemu:///system', 'dominfo', vm.libvirtName])).stdout;
      expect(/^Max memory:\s+(\d+) KiB$/m.exec(dominfo)?.[1], dominfo).toBe(String(768 * 1024));
      expect(/^CPU\(s\):\s+(\d+)$/m.exec(dominfo)?.[1], dominfo).toBe('2');
      // -4: the hosts line names the VM's IPv4 address, and SSH there with the line's key answers; the guest
      // has the suite's vCPUs and memory (less what its kernel keeps), the deploy script ran (--deploy), and
      // its management NIC got no global IPv6 address
      const line = readFileSync(path.join(deployment, 'hosts'), 'utf8').split('\n')[0] as string;
      const m = /^(\S+) ansible_host=(\S+) ansible_ssh_private_key_file=(\S+) /.exec(line);
      expect(m?.slice(1), line).toEqual([
        'ost-json-suite-engine',
        vm.nics[0]?.ipv4,
        path.join(deployment, 'keys/id_ed25519'),
      ]);
      const g = await ns.exec(
        sshArgv(
          { host: m?.[2] as string, port: 22, user: 'root', privateKey: m?.[3] as string },
          'hostname; nproc; grep MemTotal /proc/meminfo; cat /etc/ost-deployed; ip -6 -o addr show dev eth0 scope global | wc -l',
        ),
        { timeoutMs: 2 * MIN },
      );
      const [hostname, nproc, memTotal, deployed, v6] = g.stdout.split('\n');
      // named by DHCP after its management NIC, as lagofy's networks name every NIC: ost-<suite>-<nic>
      expect(hostname).toBe('ost-json-suite-eth0');
      expect(nproc).toBe('2');
      const kib = Number(/^MemTotal:\s+(\d+) kB$/.exec(memTotal ?? '')?.[1]);
      expect(kib, memTotal).toBeLessThanOrEqual(768 * 1024);
      expect(kib, memTotal).toBeGreaterThan(0.85 * 768 * 1024);
      expect(deployed).toBe('setup_engine');
      expect(v6).toBe('0');
      // run through sudo: everything in the deployment dir is the sudo user's; the package lists too
      const notTheirs: string[] = [];
      // the links themselves (logs points into root's env dir, which stays root's)
      const walk = (p: string) => {
        const st = lstatSync(p);
        if (st.uid !== uid || st.gid !== gid) notTheirs.push(`${p} ${st.uid}:${st.gid}`);
        if (st.isDirectory()) for (const e of readdirSync(p)) walk(path.join(p, e));
      };
      walk(deployment);
      walk(path.join(checkout, 'exported-artifacts'));
      expect(notTheirs).toEqual([]);
      expect(statSync(path.join(deployment, 'hosts')).isFile()).toBe(true);
      expect(statSync(path.join(deployment, 'keys/id_ed25519')).mode & 0o777).toBe(0o600);
      // the key and its public half (ost.sh run -6 authorizes ${OST_IMAGES_SSH_KEY}.pub), nothing else
      expect(readdirSync(path.join(deployment, 'keys')).sort()).toEqual(['id_ed25519', 'id_ed25519.pub']);
      // only what OST's harness reads: no record, ssh_config or inventory a user could edit to steer root
      expect(readdirSync(deployment).sort()).toEqual(['.ost-env', 'env.sh', 'hosts', 'keys', 'logs']);
      expect(readdirSync(path.join(deployment, 'logs'))).toEqual(['engine']);
      const d = await ostNs(['down', deployment]);
      expect(d.code, d.stderr).toBe(0);
      expect(existsSync(deployment)).toBe(false);
      expect(await leftovers()).toEqual(NOTHING);
    },
    15 * MIN,
  );

  it(
    'root never writes through a deployment dir its owner swapped for a link mid-up: the root-only victim stays empty, nothing is left',
    async () => {
      cleanUpIfFailed();
      // the checkout of the previous case, nobody's: root's ost up writes its deployment dir as nobody
      const checkout = path.join(work, 'sudo-checkout');
      const deployment = path.join(checkout, 'deployment');
      const victim = path.join(work, 'victim');
      mkdirSync(victim, { mode: 0o700 });
      const resume = path.join(work, 'swap.resume');
      const paused = await startAt(
        ['up', 'json-suite', '--ost-repo', checkout, '--images-root', root, '--no-wait', '--json'],
        'up:leased',
        resume,
        // as the previous case: ost-images.sh's distro for the suite's images
        { OST_IMAGES_DISTRO: 'debian12' },
      );
      // the deployment dir is there, nobody's; its owner swaps it for a link to a root-only dir
      expect(statSync(deployment).uid).toBe(65534);
      // the up holds its env's lock (an ost down or gc of the id waits for it)
      const id = readFileSync(path.join(deployment, '.ost-env'), 'utf8').split(' ')[0] as string;
      const held = await run('flock', ['-n', path.join(stateDir, 'locks', `${id}.lock`), 'true'], {
        allowFailure: true,
      });
      expect(held.exitCode, `env ${id}'s lock during its up`).toBe(1);
      await ns.exec([
        'runuser',
        '-u',
        'nobody',
        '--',
        'sh',
        '-c',
        `mv ${deployment} ${deployment}.real && ln -s ${victim} ${deployment}`,
      ]);
      writeFileSync(resume, '');
      expect(await paused.exited, paused.stderr()).not.toBe(0);
      expect(paused.stderr()).toMatch(/uid 65534/);
      expect(readdirSync(victim)).toEqual([]);
      // undone: nothing of the env is left, and the link and the user's own dir are theirs to remove
      expect(await leftovers()).toEqual(NOTHING);
      expect(lstatSync(deployment).isSymbolicLink()).toBe(true);
      rmSync(deployment);
      rmSync(`${deployment}.real`, { recursive: true, force: true });
    },
    5 * MIN,
  );

  it(
    'a failing deploy script fails ost up with its output; --keep-on-failure leaves the VM to debug (IPv6 only: its hosts line answers SSH)',
    async () => {
      cleanUpIfFailed();
      const dir = path.join(work, 'failing');
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, 'fail.sh'), 'echo "about to fail on $(hostname)"\nexit 3\n');
      writeFileSync(
        path.join(dir, 'ost-env.yaml'),
        'suites:\n  failing:\n    networks:\n      m: { management: true, forward: nat }\n    vms:\n' +
          '      vm: { image: debian12-host-installed, memory: 512, nics: [m], deployScripts: [fail.sh] }\n',
      );
      const r = await ostNs([
        'up',
        'failing',
        '--env-file',
        path.join(dir, 'ost-env.yaml'),
        '--images-root',
        root,
        '--keep-on-failure',
        '--ipv6-only',
        '--timeout',
        '1200',
      ]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain(`deploy script ${path.join(dir, 'fail.sh')} failed on vm`);
      expect(r.stderr).toContain('| about to fail on');
      expect(r.stderr).toMatch(/environment ([0-9a-f]{8}) was left as it is/);
      const id = /environment ([0-9a-f]{8}) was left/.exec(r.stderr)?.[1] as string;
      const list = JSON.parse((await ostNs(['list', '--json'])).stdout) as { id: string; state: string }[];
      expect(list).toEqual([expect.objectContaining({ id, state: 'leftover' })]);
      const s = await ostNs(['ssh', 'vm', '--env', id, '--', 'echo still here']);
      expect(s.stdout.trim()).toBe('still here');
      // -6: the hosts line names the VM's IPv6 address, SSH there with its key answers, and the guest has
      // no IPv4 address
      const kept = JSON.parse(readFileSync(path.join(stateDir, 'envs', id, 'env.json'), 'utf8')) as EnvRecord;
      const line = readFileSync(path.join(kept.workdir, 'hosts'), 'utf8').split('\n')[0] as string;
      const m = /^ost-failing-vm ansible_host=(\S+) ansible_ssh_private_key_file=(\S+) /.exec(line);
      expect(m?.[1], line).toBe(kept.vms[0]?.nics[0]?.ipv6);
      expect(m?.[1]).toMatch(/^fd8f:1391:3a82:\d+::c0a8:/);
      const v6 = await ns.exec(
        sshArgv(
          { host: m?.[1] as string, port: 22, user: 'root', privateKey: m?.[2] as string },
          'echo answers; ip -4 -o addr show dev eth0 | wc -l',
        ),
        { timeoutMs: 2 * MIN },
      );
      expect(v6.stdout.split('\n'), v6.stderr).toEqual(['answers', '0', '']);
      expect((await ostNs(['down', id])).code).toBe(0);
      expect(await leftovers()).toEqual(NOTHING);
    },
    15 * MIN,
  );

  it(
    'kill -9 of ost up midway (while it waits for SSH) leaves a leftover that ost gc removes; Ctrl-C there undoes by itself',
    async () => {
      cleanUpIfFailed();
      for (const signal of ['SIGKILL', 'SIGINT'] as const) {
        // held where its domains were just created, then let go into its wait for SSH
        const resume = path.join(work, `midway-${signal}.resume`);
        rmSync(resume, { force: true });
        const up = await startAt(['up', 'demo-suite', '--images-root', root], 'up:domains', resume);
        expect(await ns.ostObjects('domain')).toHaveLength(2);
        writeFileSync(resume, '');
        // a guest boots in 25 s at the very least here: 2 s on, it is still waiting for SSH
        await sleep(2000);
        expect(up.running(), up.stderr()).toBe(true);
        const listed = JSON.parse((await ostNs(['list', '--json'])).stdout) as {
          id: string;
          state: string;
        }[];
        expect(listed.map((e) => e.state)).toEqual(['starting']);
        process.kill(up.pid, signal);
        const code = await up.exited;
        if (signal === 'SIGINT') {
          expect(code, up.stderr()).toBe(130);
          expect(await leftovers()).toEqual(NOTHING);
          continue;
        }
        const list = JSON.parse((await ostNs(['list', '--json'])).stdout) as { state: string }[];
        expect(list.map((e) => e.state)).toEqual(['leftover']);
        const gc = await ostNs(['gc']);
        expect(gc.code, gc.stderr).toBe(0);
        expect(gc.stdout).toMatch(/removed leftover [0-9a-f]{8}: 2 domains, 2 networks/);
        expect(await leftovers()).toEqual(NOTHING);
      }
    },
    10 * MIN,
  );

  it(
    'kill -9 of ost up at its overlays, its networks, its domains (fault points): ost gc leaves nothing; kill -9 of ost down between domains and networks: a second down finishes',
    async () => {
      cleanUpIfFailed();
      const upArgs = ['up', 'demo-suite', '--images-root', root];
      const overlaysOf = (id: string) =>
        readdirSync(path.join(overlayDir, id))
          .filter((f) => !f.startsWith('.'))
          .sort();
      const leased = () =>
        readdirSync(path.join(stateDir, 'leases')).filter((f) => f.endsWith('.json')).length;
      // at each point, what exists at that moment, then kill -9 there
      const points: [string, (id: string) => Promise<void>][] = [
        [
          'up:overlays',
          async (id) => {
            expect(overlaysOf(id)).toEqual(['engine.qcow2', 'host-0.qcow2']);
            expect(await ns.ostObjects('network')).toEqual([]);
            expect(await ns.ostObjects('domain')).toEqual([]);
          },
        ],
        [
          'up:networks',
          async (id) => {
            expect(overlaysOf(id)).toEqual(['engine.qcow2', 'host-0.qcow2']);
            expect(leased()).toBe(2);
            // both of this env's networks (ost<id>-<N>), no more
            const nets = await ns.ostObjects('network');
            expect(nets.filter((n) => n.startsWith(`ost${id}-`))).toHaveLength(2);
            expect(nets).toHaveLength(2);
            expect(await ns.ostObjects('domain')).toEqual([]);
          },
        ],
        [
          'up:domains',
          async (id) => {
            expect((await ns.ostObjects('domain')).sort()).toEqual([
              `${id}-ost-demo-suite-engine`,
              `${id}-ost-demo-suite-host-0`,
            ]);
            expect(await ns.ostObjects('network')).toHaveLength(2);
          },
        ],
      ];
      for (const [point, check] of points) {
        const up = await startAt(upArgs, point);
        const listed = JSON.parse((await ostNs(['list', '--json'])).stdout) as { id: string }[];
        expect(listed, point).toHaveLength(1);
        const id = listed[0]?.id as string;
        await check(id);
        process.kill(up.pid, 'SIGKILL');
        await up.exited;
        const list = JSON.parse((await ostNs(['list', '--json'])).stdout) as { id: string; state: string }[];
        expect(list, point).toEqual([expect.objectContaining({ id, state: 'leftover' })]);
        if (point !== 'up:domains') {
          const gc = await ostNs(['gc', '--json']);
          expect(gc.code, `${point}: ${gc.stderr}`).toBe(0);
          expect((JSON.parse(gc.stdout) as { removed: { id: string }[] }).removed.map((r) => r.id)).toEqual([
            id,
          ]);
          expect(await leftovers(), point).toEqual(NOTHING);
          continue;
        }
        // the last one is torn down by an ost down killed once its domains are gone, its networks not yet
        const down = await startAt(['down', id], 'down:domains');
        expect(await ns.ostObjects('domain')).toEqual([]);
        expect(await ns.ostObjects('network')).toHaveLength(2);
        process.kill(down.pid, 'SIGKILL');
        await down.exited;
        const again = await ostNs(['down', id]);
        expect(again.code, again.stderr).toBe(0);
        expect(await leftovers()).toEqual(NOTHING);
      }
    },
    10 * MIN,
  );

  it(
    'a /24 taken by someone else between the lease and the network: ost up leases again and comes up elsewhere',
    async () => {
      const envFile = path.join(work, 'squat.yaml');
      writeFileSync(
        envFile,
        'suites:\n  squat:\n    networks:\n      management: { management: true, forward: nat }\n' +
          '    vms:\n      vm: { image: debian12-base, memory: 384, nics: [management] }\n',
      );
      const mark = path.join(work, 'squat.mark');
      const resume = path.join(work, 'squat.resume');
      // stopped right after leasing (OST_FAULT_PAUSE), as another user's ost up could be at that moment
      const child = spawn(
        'ip',
        [
          'netns',
          'exec',
          ns.name,
          OST,
          'up',
          'squat',
          '--env-file',
          envFile,
          '--images-root',
          root,
          '--no-wait',
          '--json',
        ],
        {
          env: {
            ...process.env,
            ...env,
            OST_FAULT_PAUSE: 'up:leased',
            OST_FAULT_MARK: mark,
            OST_FAULT_RESUME: resume,
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => {
        stdout += d;
      });
      child.stderr.on('data', (d) => {
        stderr += d;
      });
      let code: number | null | undefined;
      const exited = new Promise<number | null>((r) =>
        child.on('exit', (c) => {
          code = c;
          r(c);
        }),
      );
      try {
        for (let i = 0; i < 600 && !existsSync(mark); i++) await new Promise((r) => setTimeout(r, 100));
        expect(existsSync(mark), stderr).toBe(true);
        const leased = readdirSync(path.join(stateDir, 'leases'))
          .filter((f) => f.endsWith('.json'))
          .map((f) => f.replace(/\.json$/, ''));
        expect(leased).toHaveLength(1);
        // someone else's bridge comes up on that /24 first
        await ns.exec(['ip', 'link', 'add', 'ost-squat', 'type', 'bridge']);
        await ns.exec(['ip', 'addr', 'add', `${leased[0]}.1/24`, 'dev', 'ost-squat']);
        await ns.exec(['ip', 'link', 'set', 'ost-squat', 'up']);
        writeFileSync(resume, '');
        expect(await exited, stderr).toBe(0);
        const rec = JSON.parse(stdout) as EnvRecord;
        const taken = Number(leased[0]?.split('.')[2]);
        expect(rec.networks[0]?.subnet).toBeGreaterThanOrEqual(200);
        expect(rec.networks[0]?.subnet).not.toBe(taken);
        expect(await ns.ostObjects('network')).toHaveLength(1);
        expect((await ostNs(['down', rec.id])).code).toBe(0);
      } finally {
        // whatever failed: no paused ost up, no squatter, nothing of it left for the next tests
        if (code === undefined) {
          child.kill('SIGKILL');
          await exited;
          await ostNs(['gc']);
        }
        await ns.exec(['ip', 'link', 'del', 'ost-squat'], { allowFailure: true });
      }
      expect(await leftovers()).toEqual(NOTHING);
    },
    5 * MIN,
  );

  it(
    "a VM's virsh create fails while another VM's is still running: nothing is unwound until that one has settled, then nothing is left",
    async () => {
      cleanUpIfFailed();
      // engine's create fails for a real reason: a --templates domain.xml whose <vcpu current="2"> libvirt
      // refuses for a VM of 1 vCPU; host-0 (2 vCPUs) takes it, and is held right before its virsh create
      const templates = path.join(work, 'templates-vcpu');
      mkdirSync(templates, { recursive: true });
      const bundled = readFileSync(path.join(REPO_ROOT, 'domain-templates/domain.xml'), 'utf8');
      const vcpu = '<vcpu placement="static">{{vcpus}}</vcpu>';
      expect(bundled).toContain(vcpu);
      writeFileSync(
        path.join(templates, 'domain.xml'),
        bundled.replace(vcpu, '<vcpu placement="static" current="2">{{vcpus}}</vcpu>'),
      );
      const envFile = path.join(work, 'settle.yaml');
      writeFileSync(
        envFile,
        'suites:\n  settle:\n    networks:\n      management: { management: true, forward: nat }\n' +
          '      storage: {}\n    vms:\n' +
          '      engine: { image: debian12-base, memory: 384, vcpus: 1, nics: [management, storage] }\n' +
          '      host-0: { image: debian12-base, memory: 384, vcpus: 2, nics: [management, storage] }\n',
      );
      const resume = path.join(work, 'settle.resume');
      rmSync(resume, { force: true });
      const up = await startAt(
        ['up', 'settle', '--env-file', envFile, '--images-root', root, '--templates', templates, '--no-wait'],
        'up:create:host-0',
        resume,
      );
      try {
        // engine's create fails within a second or so; for 8 s after host-0 stopped, nothing of the env is
        // undone (its networks stay: an up that unwound now would leave host-0's create to run afterwards)
        for (let i = 0; i < 16; i++) {
          expect(up.running(), up.stderr()).toBe(true);
          expect(await ns.ostObjects('network'), `${i / 2} s after host-0 stopped`).toHaveLength(2);
          expect(await ns.ostObjects('domain')).toEqual([]);
          await sleep(500);
        }
      } finally {
        writeFileSync(resume, '');
      }
      // host-0 created, then everything undone: the up fails with engine's error
      expect(await up.exited, up.stderr()).toBe(1);
      expect(up.stderr()).toContain('maximum vCPU count must not be less than current vCPU count');
      expect(await leftovers()).toEqual(NOTHING);
    },
    5 * MIN,
  );

  it(
    '10 ost up at once, then 10 ost down, while ost gc runs in a loop: 10 of 10 on distinct /24s, nothing removed early, nothing left',
    async () => {
      const envFile = path.join(work, 'one-vm.yaml');
      writeFileSync(
        envFile,
        [
          'suites:',
          '  one:',
          '    networks:',
          '      management: { management: true, forward: nat }',
          '    vms:',
          '      vm: { image: debian12-blank, memory: 256, nics: [management] }',
          '',
        ].join('\n'),
      );
      // what races here is ost (leases, libvirt objects, gc), not the guests: an empty disk, so the ten
      // qemus idle in the firmware instead of ten TCG boots taking both cores from the ups, downs and gcs
      // (an image that reads the key credential, so no shipped key is needed)
      const blank = path.join(work, 'blank');
      mkdirSync(blank, { recursive: true, mode: 0o755 });
      await run('qemu-img', ['create', '-q', '-f', 'qcow2', path.join(blank, 'debian12-blank.qcow2'), '1G']);
      chmodSync(path.join(blank, 'debian12-blank.qcow2'), 0o444);
      writeFileSync(path.join(blank, 'debian12-blank.json'), '{"sshCredential": true}\n');
      let looping = true;
      let phase: 'up' | 'down' = 'up';
      let gcRuns = 0;
      const removedWhileUp: unknown[] = [];
      const gcLoop = (async () => {
        while (looping) {
          const g = await ostNs(['gc', '--json'], 5 * MIN);
          expect(g.code, g.stderr).toBe(0);
          // nothing of a starting env is a leftover (while downs run, gc may help remove what is left)
          if (phase === 'up')
            removedWhileUp.push(...(JSON.parse(g.stdout) as { removed: unknown[] }).removed);
          gcRuns++;
        }
      })();
      try {
        // --no-wait: each returns once its domain runs (as lagofy's ost_init); the SSH wait is not what
        // races with gc, and ten guests booting under TCG on two cores would take many minutes
        const ups = await Promise.all(
          Array.from({ length: 10 }, () =>
            ostNs(['up', 'one', '--env-file', envFile, '--images-dir', blank, '--no-wait', '--json']),
          ),
        );
        for (const u of ups) expect(u.code, u.stderr).toBe(0);
        const records = ups.map((u) => JSON.parse(u.stdout) as EnvRecord);
        expect(new Set(records.map((r) => r.networks[0]?.subnet)).size).toBe(10);
        expect(new Set(records.map((r) => r.id)).size).toBe(10);
        expect(records.every((r) => r.status === 'up' && r.timings.ready === undefined)).toBe(true);
        const list = JSON.parse((await ostNs(['list', '--json'])).stdout) as { id: string; state: string }[];
        expect(
          list
            .filter((e) => e.state === 'up')
            .map((e) => e.id)
            .sort(),
        ).toEqual(records.map((r) => r.id).sort());
        expect(await ns.ostObjects('domain')).toHaveLength(10);
        phase = 'down';
        const downs = await Promise.all(records.map((r) => ostNs(['down', r.id])));
        for (const d of downs) expect(d.code, d.stderr).toBe(0);
      } finally {
        looping = false;
        await gcLoop;
      }
      expect(gcRuns).toBeGreaterThan(1);
      expect(removedWhileUp).toEqual([]);
      expect(await leftovers()).toEqual(NOTHING);
    },
    15 * MIN,
  );
  it(
    'a changed custom package makes a new layer, built once for two ost up at once; a repo that supplies nothing fails with the check',
    async () => {
      writeFileSync(
        oneHost,
        'suites:\n  one-host:\n    networks:\n      management: { management: true, forward: nat }\n' +
          '    vms:\n      vm: { image: debian12-host-installed, memory: 384, nics: [management] }\n',
      );
      const upOne = (repos: string[], extra: string[] = []) =>
        ostNs([
          'up',
          'one-host',
          '--env-file',
          oneHost,
          '--images-root',
          root,
          '--no-wait',
          '--json',
          ...repos.flatMap((r) => ['--custom-repo', r]),
          ...cache,
          ...extra,
        ]);
      await makeDeb(repo2, 'less', '99:2-ost1');
      // and, at the same time (one appliance per CPU), a repo with a lower version than the image has plus
      // a package no image has (not listed to install): it supplies nothing
      await makeDeb(repo3, 'less', '1.0-ost1');
      await makeDeb(repo4, 'ost-nobody-has-it', '1.0');
      // and a package that cannot be installed: the build fails, saying why
      await makeDeb(repo5, 'ost-broken', '1.0', 'ost-no-such-package');
      const [one, other, bad, broken] = await Promise.all([
        upOne([repo2]),
        upOne([repo2]),
        upOne([repo3, repo4]),
        upOne([repo5], ['--custom-install', 'ost-broken']),
      ]);
      const both = [one, other];
      for (const b of both) expect(b.code, b.stderr).toBe(0);
      const recs = both.map((b) => JSON.parse(b.stdout) as EnvRecord);
      const layers = recs.map((r) => r.vms[0]?.image.custom);
      expect(layers[0]?.key).toBe(layers[1]?.key);
      expect(layers.map((l) => l?.built).sort()).toEqual([false, true]);
      expect(layers[0]?.packages.map((p) => `${p.name} ${p.version}`)).toEqual(['less 99:2-ost1']);
      // demo-suite's two, this one, and the one that supplied nothing (kept: the same repos fail at once);
      // the broken one left no layer
      expect(layerDirs()).toHaveLength(4);
      for (const r of recs) expect((await ostNs(['down', r.id])).code).toBe(0);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(
        new RegExp(
          `custom repo ${repo3} supplied nothing to debian12-host-installed: it offers less 1.0-ost1; the image keeps less \\S+`,
        ),
      );
      expect(bad.stderr).toContain(
        `custom repo ${repo4} supplied nothing: none of its packages (ost-nobody-has-it) is installed in debian12-host-installed`,
      );
      expect(bad.stderr).toContain('--skip-custom-check');
      // --skip-custom-check starts it anyway, on the layer the failed check left (the same key: nothing built)
      const skipped = await upOne([repo3, repo4], ['--skip-custom-check']);
      expect(skipped.code, skipped.stderr).toBe(0);
      const sk = JSON.parse(skipped.stdout) as EnvRecord;
      expect(sk.custom?.repos).toEqual([repo3, repo4]);
      expect(sk.vms[0]?.image.custom?.built).toBe(false);
      expect(sk.vms[0]?.image.custom?.packages).toEqual([]);
      expect(layerDirs()).toHaveLength(4);
      expect((await ostNs(['down', sk.id])).code).toBe(0);
      expect(broken.code).toBe(1);
      expect(broken.stderr).toContain('the custom layer of debian12-host-installed failed to build:');
      expect(broken.stderr).toMatch(
        /\| .*ost-broken : Depends: ost-no-such-package but it is not installable/,
      );
      expect(broken.stderr).toMatch(/the whole log: .*\/layers\/[0-9a-f]{32}\.failed\.log/);
      expect(await leftovers()).toEqual(NOTHING);
    },
    15 * MIN,
  );

  it(
    'a second ost up reuses the layers (nothing built, the files untouched); ost gc --layers keeps the layers an env uses',
    async () => {
      const mtimes = () => layerDirs().map((d) => statSync(path.join(d, 'layer.qcow2')).mtimeMs);
      const before = mtimes();
      // demo-suite's two images, without its deploy scripts (--no-wait: the layers matter here, not the boot)
      const two = path.join(work, 'two-images.yaml');
      writeFileSync(
        two,
        'suites:\n  two:\n    networks:\n      management: { management: true, forward: nat }\n    vms:\n' +
          '      engine: { image: debian12-engine-installed, memory: 384, nics: [management] }\n' +
          '      host-0: { image: debian12-host-installed, memory: 384, nics: [management] }\n',
      );
      // repo1's packages, this time as an http URL (a flat apt repository: the .debs and their Packages index,
      // served on the namespace's loopback): a repository is its package set, not where it is, so the
      // layers built from the folder are the ones used
      const served = path.join(work, 'served-1');
      mkdirSync(served);
      const stanzas: string[] = [];
      for (const deb of readdirSync(repo1).sort()) {
        cpSync(path.join(repo1, deb), path.join(served, deb));
        const bytes = readFileSync(path.join(served, deb));
        const control = (await run('dpkg-deb', ['-f', path.join(served, deb)])).stdout.trimEnd();
        stanzas.push(
          `${control}\nFilename: ./${deb}\nSize: ${bytes.length}\nSHA256: ${createHash('sha256').update(bytes).digest('hex')}\n`,
        );
      }
      writeFileSync(path.join(served, 'Packages'), stanzas.join('\n'));
      const http = await serveHttp(served);
      let r: Awaited<ReturnType<typeof ostNs>>;
      try {
        r = await ostNs([
          'up',
          'two',
          '--env-file',
          two,
          '--images-root',
          root,
          '--custom-repo',
          http.url,
          '--custom-install',
          'ost-custom-probe',
          '--no-wait',
          '--json',
          ...cache,
        ]);
      } finally {
        await http.stop();
      }
      expect(r.code, r.stderr).toBe(0);
      // ost read the repository's index from the URL
      expect(http.log()).toMatch(/"GET \/Packages HTTP\/1\.[01]" 200/);
      const rec = JSON.parse(r.stdout) as EnvRecord;
      expect(rec.custom?.repos).toEqual([http.url]);
      expect(rec.vms.map((vm) => vm.image.custom?.built)).toEqual([false, false]);
      for (const vm of rec.vms)
        expect(vm.image.custom?.packages.map((p) => `${p.name} ${p.version}`).sort(), vm.name).toEqual([
          'less 99:1-ost1',
          'ost-custom-probe 1.0',
        ]);
      expect(mtimes()).toEqual(before);
      const listed = JSON.parse((await ostNs(['list', '--layers', '--json', ...cache])).stdout) as {
        bytes: number;
        layers: { dir: string; inUse: boolean; bytes: number }[];
      };
      expect(listed.layers).toHaveLength(4);
      expect(listed.layers.filter((l) => l.inUse)).toHaveLength(2);
      expect(listed.bytes).toBeGreaterThan(0);

      // unused for two days: gc removes the layer no env uses and keeps the two this env's overlays sit on
      const old = new Date(Date.now() - 2 * 86_400_000);
      for (const d of layerDirs()) utimesSync(path.join(d, 'used'), old, old);
      const gc = await ostNs(['gc', '--layers', '--keep-days', '1', '--json', ...cache]);
      expect(gc.code, gc.stderr).toBe(0);
      const res = JSON.parse(gc.stdout) as { removed: unknown[]; kept: { why: string }[] };
      expect(res.removed).toHaveLength(2);
      expect(res.kept.map((k) => k.why)).toEqual(['in use by an environment', 'in use by an environment']);
      expect((await ostNs(['down', rec.id])).code).toBe(0);
      const gc2 = await ostNs(['gc', '--layers', ...cache]);
      expect(gc2.stdout).toContain('2 layers removed');
      expect(layerDirs()).toEqual([]);
      expect(await leftovers()).toEqual(NOTHING);
    },
    10 * MIN,
  );
});
