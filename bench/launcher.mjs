#!/usr/bin/env node
// Benchmark for `ost up`, in one run, on installed debian12 images:
//  1. ost's own overhead for a 3-VM suite (everything but guest boot), per phase, over several up/down rounds
//  2. overlay creation time on a small, a large and the real installed image (must be flat)
//  3. boot-to-SSH per VM
//  4. the lago baseline on the same image, per VM: a full copy plus virt-sysprep --ssh-inject --selinux-relabel
// libvirtd runs inside a network namespace this script creates (nothing is reachable from outside it).
// Usage (root, after npm run build and the demo's dnf install):
//   node bench/launcher.mjs [--root build/demo-root] [--rounds 3] [--lago-vms 3]
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { libvirtNetns, median, runner, sec, upBenchSuite, writeBenchSuite } from './lib.mjs';

const repoRoot = path.resolve(import.meta.dirname, '..');
const ost = path.join(repoRoot, 'bin/ost');
const args = process.argv.slice(2);
const opt = (name, def) => (args.includes(name) ? args[args.indexOf(name) + 1] : def);
const installRoot = path.resolve(opt('--root', path.join(repoRoot, 'build/demo-root')));
const rounds = Number(opt('--rounds', '3'));
const lagoVms = Number(opt('--lago-vms', '3'));
const images = path.join(installRoot, 'usr/share/ost-images');
const work = mkdtempSync('/var/tmp/ost-upbench-');
const netns = `ost-bench-${process.pid}`;
const env = {
  ...process.env,
  OST_STATE_DIR: path.join(work, 'state'),
  OST_OVERLAY_DIR: '/dev/shm/ost-bench',
};
const msf = (ms) => `${ms.toFixed(0)} ms`;
const lines = [];
const say = (s) => {
  lines.push(s);
  console.log(s);
};

const sh = runner(env);
let inNs;
let stopLibvirt = () => {};
function startLibvirt() {
  ({ inNs, stop: stopLibvirt } = libvirtNetns(sh, netns));
}

const envFile = writeBenchSuite(work);

try {
  if (!existsSync(path.join(images, 'debian12-host-installed.qcow2')))
    throw new Error(`no installed images in ${images}: run scripts/demo.sh (or dnf install them) first`);
  startLibvirt();
  const cpu = sh('sh', ['-c', "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2; nproc"])
    .stdout.trim()
    .split('\n');
  say(
    `Machine: ${cpu[0]?.trim()}, ${cpu[1]} cores, accel ${sh('sh', ['-c', 'grep -qE "vmx|svm" /proc/cpuinfo && echo kvm || echo tcg']).stdout.trim()}`,
  );
  say(
    `Command: node bench/launcher.mjs --root ${path.relative(repoRoot, installRoot)} --rounds ${rounds} --lago-vms ${lagoVms}`,
  );
  say('');

  // 1 + 3: up/down rounds
  const phases = ['resolve', 'overlays', 'lease', 'networks', 'domains', 'overhead'];
  const per = Object.fromEntries(phases.map((p) => [p, []]));
  const boot = {};
  const downs = [];
  const wall = [];
  for (let i = 0; i < rounds; i++) {
    const { rec, ms: upMs } = upBenchSuite(inNs, ost, envFile, installRoot, repoRoot);
    for (const p of phases) per[p].push(rec.timings[p] ?? 0);
    // the whole process as the user waits for it (node start, reading files, printing), minus guest boot
    wall.push(upMs - (rec.timings.ready ?? 0));
    for (const vm of rec.vms) {
      boot[vm.name] = [...(boot[vm.name] ?? []), vm.timings.bootToSsh];
    }
    downs.push(inNs([ost, 'down', rec.id]).ms);
  }
  say(`### \`ost up\` overhead, 3 VMs, excluding guest boot (median of ${rounds} up/down rounds)`);
  say('');
  say('| phase | median | all rounds |');
  say('|---|---|---|');
  for (const p of phases)
    say(
      `| ${p === 'overhead' ? '**total overhead**' : p} | ${msf(median(per[p]))} | ${per[p].map(msf).join(', ')} |`,
    );
  say(
    `| whole \`ost up\` process minus the wait for guests (incl. node start-up) | ${msf(median(wall))} | ${wall.map(msf).join(', ')} |`,
  );
  say(`| \`ost down\` (whole env) | ${msf(median(downs))} | ${downs.map(msf).join(', ')} |`);
  say('');
  say('### Boot to SSH-ready per VM (3 VMs booting at once)');
  say('');
  say('| VM | median | all rounds |');
  say('|---|---|---|');
  for (const [vm, xs] of Object.entries(boot))
    say(`| ${vm} | ${sec(median(xs))} | ${xs.map(sec).join(', ')} |`);
  say('');

  // 2: overlay creation on small / large / real images
  const small = path.join(work, 'small.qcow2');
  const large = path.join(work, 'large.qcow2');
  sh('qemu-img', ['create', '-q', '-f', 'qcow2', small, '1G']);
  sh('sh', [
    '-c',
    `head -c 4G /dev/urandom > ${work}/large.raw && qemu-img convert -O qcow2 ${work}/large.raw ${large} && rm ${work}/large.raw`,
  ]);
  const overlayTimes = (backing) => {
    const xs = [];
    for (let i = 0; i < 10; i++) {
      const o = path.join(work, `o-${i}.qcow2`);
      xs.push(sh('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', backing, o]).ms);
      rmSync(o);
    }
    return xs;
  };
  const engine = path.join(images, 'debian12-engine-installed.qcow2');
  const alloc = (f) =>
    `${(Number(sh('du', ['-B1', '--apparent-size', f]).stdout.split('\t')[0]) / 2 ** 30).toFixed(2)} GiB`;
  say('### Overlay creation: small vs large backing image (10 runs each)');
  say('');
  say('| backing image | file size | median | max |');
  say('|---|---|---|---|');
  for (const [label, f] of [
    ['empty 1 GiB qcow2', small],
    ['4 GiB of random data', large],
    ['installed debian12-engine-installed (chain of 2)', engine],
  ]) {
    const xs = overlayTimes(f);
    say(`| ${label} | ${alloc(f)} | ${msf(median(xs))} | ${msf(Math.max(...xs))} |`);
  }
  say('');

  // 4: lago baseline on the same image
  const pub = path.join(work, 'bench_key.pub');
  sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(work, 'bench_key')]);
  const gfs = { ...env, LIBGUESTFS_BACKEND: 'direct', LIBGUESTFS_BACKEND_SETTINGS: 'force_tcg' };
  const copyMs = [];
  const sysprepMs = [];
  for (let i = 0; i < lagoVms; i++) {
    const copy = path.join(work, `lago-${i}.qcow2`);
    copyMs.push(sh('qemu-img', ['convert', '-O', 'qcow2', engine, copy]).ms);
    sysprepMs.push(
      sh('virt-sysprep', ['-a', copy, '--ssh-inject', `root:file:${pub}`, '--selinux-relabel'], { env: gfs })
        .ms,
    );
    rmSync(copy);
  }
  const lagoPer = median(copyMs) + median(sysprepMs);
  const ostPer = median(per.overhead) / 3;
  say(
    `### Per-VM preparation: ost vs the lago baseline, same image (debian12-engine-installed), ${lagoVms} VMs`,
  );
  say('');
  say('| | per VM (median) | for 3 VMs |');
  say('|---|---|---|');
  say(
    `| lago: full copy (qemu-img convert) | ${sec(median(copyMs))} | ${sec(copyMs.reduce((a, b) => a + b, 0))} |`,
  );
  say(
    `| lago: virt-sysprep --ssh-inject --selinux-relabel | ${sec(median(sysprepMs))} | ${sec(sysprepMs.reduce((a, b) => a + b, 0))} |`,
  );
  say(
    `| **lago total** | **${sec(lagoPer)}** | **${sec(copyMs.concat(sysprepMs).reduce((a, b) => a + b, 0))}** |`,
  );
  say(
    `| **ost up overhead** (overlay + libvirt objects, no image change) | **${sec(ostPer)}** | **${sec(median(per.overhead))}** |`,
  );
  say('');
  say(`ost is ${(lagoPer / ostPer).toFixed(0)}× faster per VM before the guest boots.`);
} finally {
  stopLibvirt();
  rmSync(work, { recursive: true, force: true });
  rmSync('/dev/shm/ost-bench', { recursive: true, force: true });
}
