#!/usr/bin/env node
// Benchmark, in one run on the same images: `ost up` of a 4-VM OST suite (its own overhead: everything but
// the guests' boot) against OST's own lagofy.sh `ost_init` (which only creates and starts, never waits),
// and a side-by-side read of both envs the way OST's harness reads them (test/e2e/ost_harness_view.py).
// It also saves the libvirt XML of the lagofy-made env (virsh dumpxml / net-dumpxml) for the unit tests.
//
// lagofy.sh, its templates and ost-images.sh come from an OST checkout you give (--ost-repo; nothing of
// OST is part of ost). On a host without KVM the copied templates are adjusted to run (domain type qemu,
// this host's emulator, cpu mode maximum); chcon and `sg qemu` fail harmlessly where there is no SELinux
// or qemu group, as they would for lagofy.sh itself. libvirtd runs in a network namespace of its own.
//
// Usage (root, after npm run build, with debian12 images installed into --root):
//   node bench/ost-init.mjs --ost-repo /path/to/ovirt-system-tests --root /var/tmp/root [--rounds 3]
//        [--save-xml test/fixtures/launcher/lagofy]
import {
  chmodSync,
  chownSync,
  copyFileSync,
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
import { libvirtNetns, median, runner, sec } from './lib.mjs';

const repoRoot = path.resolve(import.meta.dirname, '..');
const ost = path.join(repoRoot, 'bin/ost');
const args = process.argv.slice(2);
const opt = (name, def) => (args.includes(name) ? args[args.indexOf(name) + 1] : def);
const ostRepo = opt('--ost-repo');
const installRoot = path.resolve(opt('--root', '/var/tmp/ost-demo-root'));
const rounds = Number(opt('--rounds', '3'));
const saveXml = opt('--save-xml');
if (!ostRepo || !existsSync(path.join(ostRepo, 'lagofy.sh'))) {
  console.error('usage: node bench/ost-init.mjs --ost-repo OST_CHECKOUT --root INSTALLROOT [--rounds N]');
  process.exit(2);
}
const images = path.join(installRoot, 'usr/share/ost-images');
const SUITE = 'basic-suite-master';
const work = mkdtempSync('/var/tmp/ost-initbench-');
chmodSync(work, 0o755); // qemu (another uid) opens lagofy's overlays and our extra disks under it
const checkout = path.join(work, 'ovirt-system-tests');
const netns = `ost-ib-${process.pid}`;
const imagesEnv = {
  OST_IMAGES_DISTRO: 'debian12',
  OST_IMAGES_DIR: images,
  OST_IMAGES_ENGINE_INSTALLED: path.join(images, 'debian12-engine-installed.qcow2'),
  OST_IMAGES_HOST_INSTALLED: path.join(images, 'debian12-host-installed.qcow2'),
  OST_IMAGES_STORAGE_BASE: path.join(images, 'debian12-base.qcow2'),
  OST_IMAGES_BASE: path.join(images, 'debian12-base.qcow2'),
  OST_IMAGES_SSH_KEY: path.join(images, 'debian12_id_rsa'),
};
const env = {
  ...process.env,
  ...imagesEnv,
  OST_STATE_DIR: path.join(work, 'state'),
  OST_OVERLAY_DIR: '/dev/shm/ost-initbench',
  LIBVIRT_DEFAULT_URI: 'qemu:///system',
};
const say = (s) => console.log(s);

/**
 * The installed images' owners and modes. libvirt's dynamic DAC labelling chowns a domain's backing chain
 * to the qemu user and, for backing files, never gives them back: lagofy's XML asks for it (ost's does
 * not), so the bench puts them back after each lagofy env, as the RPM installed them.
 */
const imageOwners = readdirSync(images).map((f) => {
  const st = statSync(path.join(images, f));
  return { file: path.join(images, f), uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 };
});
function restoreImageOwners() {
  for (const o of imageOwners) {
    chownSync(o.file, o.uid, o.gid);
    chmodSync(o.file, o.mode);
  }
}

const sh = runner(env);
let inNs;
let stopLibvirt = () => {};

/** An OST checkout with lagofy.sh, ost-images.sh and the templates from --ost-repo, and our 4-VM suite. */
function makeCheckout() {
  const kvm =
    sh('sh', ['-c', 'grep -qE "vmx|svm" /proc/cpuinfo && test -w /dev/kvm'], { allowFailure: true })
      .status === 0;
  for (const f of ['lagofy.sh', 'common/helpers/ost-images.sh']) {
    mkdirSync(path.dirname(path.join(checkout, f)), { recursive: true });
    copyFileSync(path.join(ostRepo, f), path.join(checkout, f));
  }
  const tdir = path.join(checkout, 'common/libvirt-templates');
  mkdirSync(tdir, { recursive: true });
  for (const t of [
    'net_template',
    'net_template.ipv4',
    'net_template.ipv6',
    'nic_template',
    'disk_template',
    'vm_template',
  ]) {
    let text = readFileSync(path.join(ostRepo, 'common/libvirt-templates', t), 'utf8');
    if (t === 'vm_template' && !kvm)
      text = text
        .replace("<domain type='kvm'>", "<domain type='qemu'>")
        .replace('/usr/libexec/qemu-kvm', '/usr/bin/qemu-system-x86_64')
        .replace("mode='host-passthrough'", "mode='maximum'")
        .replace("<timer name='kvmclock'/>", '');
    writeFileSync(path.join(tdir, t), text);
  }
  mkdirSync(path.join(checkout, 'common/init-configs'), { recursive: true });
  mkdirSync(path.join(checkout, 'common/deploy-scripts'), { recursive: true });
  mkdirSync(path.join(checkout, SUITE), { recursive: true });
  copyFileSync(
    path.join(repoRoot, 'test/fixtures/launcher/1_engine_2_hosts.json'),
    path.join(checkout, 'common/init-configs/1_engine_2_hosts.json'),
  );
  symlinkSync('../common/init-configs/1_engine_2_hosts.json', path.join(checkout, SUITE, 'ost.json'));
  for (const s of ['setup_engine', 'setup_storage', 'setup_host'])
    writeFileSync(path.join(checkout, `common/deploy-scripts/${s}.sh`), 'true\n');
  return kvm;
}

const lagofy = (deployment, fn) =>
  inNs(['bash', '-c', `cd ${checkout} && . ./lagofy.sh && export OST_INITIALIZED=yes && ${fn}`], {
    env: { ...env, OST_DEPLOYMENT: deployment },
    allowFailure: true,
  });

function harnessView(deployment) {
  return JSON.parse(
    inNs(['python3', path.join(repoRoot, 'test/e2e/ost_harness_view.py'), deployment]).stdout,
  );
}

/** What must match between the two envs (names and addresses differ by id and subnet). */
function shape(view) {
  // sorted by host: the view lists VMs in virsh's order, which is not the creation order
  const vms = Object.fromEntries(
    Object.entries(view.vms)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([host, v]) => [
        host,
        {
          name: v.libvirt_name.slice(9),
          nics: v.nics.map((n) => `${n.name}:${n.role}`),
          ips: Object.entries(v.ip_mapping)
            .map(([r, ips]) => `${r}:${ips.length}`)
            .sort(),
          scripts: v.deploy_scripts,
          disks: v.disks.map((d) => `${d.dev}:${d.serial}`),
        },
      ]),
  );
  return { roles: Object.keys(view.networks).sort(), vms };
}

try {
  for (const f of Object.values(imagesEnv).filter((p) => p.endsWith('.qcow2')))
    if (!existsSync(f))
      throw new Error(`${f} is missing: install the debian12 images into ${installRoot} first`);
  const kvm = makeCheckout();
  ({ inNs, stop: stopLibvirt } = libvirtNetns(sh, netns));
  const cpu = sh('sh', ['-c', "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2; nproc"])
    .stdout.trim()
    .split('\n');
  say(`Machine: ${cpu[0]?.trim()}, ${cpu[1]} cores, ${kvm ? 'KVM' : 'TCG (no usable KVM)'}`);
  say(
    `Command: node bench/ost-init.mjs --ost-repo <ovirt-system-tests checkout> --root ${installRoot} --rounds ${rounds}`,
  );
  say(
    `OST checkout: ${sh('git', ['-C', ostRepo, 'log', '-1', '--format=%h %cs'], { allowFailure: true }).stdout.trim() || ostRepo}`,
  );
  say('');
  const lago = [];
  const ostOverhead = [];
  const ostWall = [];
  const ostPhases = [];
  let compared = false;
  // lagofy first, alone: its VMs are destroyed before ost's boot, so neither slows the other's guests
  const dl = path.join(checkout, 'deployment');
  let lagoView;
  for (let i = 0; i < rounds; i++) {
    const r = lagofy(dl, `ost_init ${SUITE} debian12`);
    if (r.status !== 0 || !existsSync(path.join(dl, 'hosts')))
      throw new Error(`ost_init failed:\n${r.stdout}\n${r.stderr}`);
    lago.push(r.ms);
    if (i === 0) {
      lagoView = harnessView(dl);
      if (saveXml) {
        const dir = path.resolve(repoRoot, saveXml);
        mkdirSync(dir, { recursive: true });
        for (const [role, n] of Object.entries(lagoView.networks))
          writeFileSync(
            path.join(dir, `net-${role}.xml`),
            inNs(['virsh', 'net-dumpxml', n.libvirt_name]).stdout,
          );
        for (const [host, v] of Object.entries(lagoView.vms))
          writeFileSync(
            path.join(dir, `domain-${host.replace(`ost-${SUITE}-`, '')}.xml`),
            inNs(['virsh', 'dumpxml', v.libvirt_name]).stdout,
          );
        copyFileSync(path.join(dl, 'hosts'), path.join(dir, 'hosts'));
        say(`saved the lagofy-made env's XML to ${dir}`);
      }
      lagoView.hosts = readFileSync(path.join(dl, 'hosts'), 'utf8');
    }
    lagofy(dl, 'ost_destroy');
    restoreImageOwners();
  }
  for (let i = 0; i < rounds; i++) {
    const d2 = path.join(work, `deployment-ost-${i}`);
    const u = inNs(
      [ost, 'up', '--env', path.join(checkout, SUITE, 'ost.json'), '--json', '--timeout', '1500'],
      {
        env: { ...env, OST_DEPLOYMENT: d2 },
        cwd: checkout,
      },
    );
    const rec = JSON.parse(u.stdout);
    ostOverhead.push(rec.timings.overhead);
    ostPhases.push(rec.timings);
    ostWall.push(u.ms - rec.timings.ready);
    if (!compared) {
      const a = shape(lagoView);
      const b = shape(harnessView(d2));
      const same = JSON.stringify(a) === JSON.stringify(b);
      say(
        `OST's harness view of the two envs (roles; per VM: name after the id, NIC roles, IPs per role, deploy scripts, disk serials): ${same ? 'identical' : 'DIFFERENT'}`,
      );
      if (!same) say(`lagofy: ${JSON.stringify(a)}\nost:    ${JSON.stringify(b)}`);
      const masked = (t) => t.replace(/ansible_host=\S+/g, 'ansible_host=X').replace(/_file=\S+/g, '_file=K');
      say(
        `hosts files, addresses and key paths masked: ${masked(lagoView.hosts) === masked(readFileSync(path.join(d2, 'hosts'), 'utf8')) ? 'identical' : 'DIFFERENT'}`,
      );
      compared = true;
    }
    inNs([ost, 'down', d2]);
  }
  say('');
  say(`| 4-VM suite, ${rounds} rounds | median | min | max |`);
  say('|---|---|---|---|');
  const row = (label, xs) =>
    say(`| ${label} | ${sec(median(xs))} | ${sec(Math.min(...xs))} | ${sec(Math.max(...xs))} |`);
  row('lagofy.sh ost_init (create and start; no wait)', lago);
  row('ost up, its own overhead (all but the guests booting)', ostOverhead);
  row('ost up, whole process minus the wait for SSH', ostWall);
  say('');
  // ost's own phases (its --json timings), so that a change can be put where the time goes
  const phases = Object.keys(ostPhases[0] ?? {}).filter((k) => !['ready', 'total', 'overhead'].includes(k));
  say(`| ost up phase | ${ostPhases.map((_, i) => `round ${i + 1}`).join(' | ')} | median |`);
  say(`|---|${ostPhases.map(() => '---|').join('')}---|`);
  for (const k of phases)
    say(
      `| ${k} | ${ostPhases.map((t) => `${Math.round(t[k] ?? 0)} ms`).join(' | ')} | ${Math.round(median(ostPhases.map((t) => t[k] ?? 0)))} ms |`,
    );
} finally {
  stopLibvirt();
  restoreImageOwners();
  rmSync('/dev/shm/ost-initbench', { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
}
