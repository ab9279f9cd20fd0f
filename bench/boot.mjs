#!/usr/bin/env node
// Boot to ready, broken down per VM: `ost up` of demo-suite and the 3-VM bench suite in a network namespace
// (libvirtd of our own), then in every VM over SSH: /proc/uptime (to line the guest's clock up with the
// host's: kernel start = host time - uptime, ± half that SSH round trip), `systemd-analyze` (kernel, initrd
// — none on Debian's initramfs-tools: counted in kernel —, userspace), the moment sshd said "Server listening" (journal, monotonic), blame and critical chain.
// Per VM: firmware+bootloader = kernel start - domain start; sshd listening; port 22 first seen by ost;
// ready (ost's SSH login saw systemd running) and how late ost noticed after sshd listened.
// Usage (root): node bench/boot.mjs --root <installroot with the debian12 ost-images RPMs> [--rounds N]
import { mkdtempSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { libvirtNetns, median, runner, sec, upArgv, writeBenchSuite } from './lib.mjs';

const repoRoot = path.resolve(import.meta.dirname, '..');
const args = process.argv.slice(2);
const opt = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const root = opt('--root') ? path.resolve(opt('--root')) : undefined;
const rounds = Number(opt('--rounds') ?? 1);
if (!root) {
  console.error('usage: node bench/boot.mjs --root <installroot> [--rounds N]');
  process.exit(2);
}
const ost = path.join(repoRoot, 'bin/ost');
const work = mkdtempSync('/var/tmp/ost-boot-bench-');
const env = {
  ...process.env,
  OST_STATE_DIR: path.join(work, 'state'),
  OST_OVERLAY_DIR: `/dev/shm/ost-boot-bench-${process.pid}`,
};
const sh = runner(env);
const { inNs, stop } = libvirtNetns(sh, `ost-boot-bench-${process.pid}`);
const suites = [
  { name: 'demo-suite', envFile: path.join(repoRoot, 'ost-env.yaml') },
  { name: 'bench-suite', envFile: writeBenchSuite(work) },
];

/** systemd-analyze's "Startup finished in 12.6s (kernel) + 43.2s (userspace) = ..." as seconds per part. */
function parseAnalyze(text) {
  const out = {};
  const line = text.split('\n').find((l) => l.startsWith('Startup finished in')) ?? '';
  for (const m of line.matchAll(/((?:\d+min )?[\d.]+m?s) \((\w+)\)/g)) out[m[2]] = toSec(m[1]);
  return out;
}
function toSec(t) {
  let s = 0;
  for (const m of t.matchAll(/([\d.]+)(min|ms|s)/g))
    s += Number(m[1]) * (m[2] === 'min' ? 60 : m[2] === 'ms' ? 0.001 : 1);
  return s;
}

const SEP = '@@ost-boot-bench';
const GUEST = [
  'systemd-analyze',
  `echo ${SEP}`,
  // sshd's own moment: "Server listening on 0.0.0.0 port 22." in seconds since boot
  "journalctl -b -o short-monotonic --no-pager -t sshd -g 'Server listening' | head -n1",
  `echo ${SEP}`,
  'systemd-analyze blame --no-pager | head -n 8',
  `echo ${SEP}`,
  'systemd-analyze critical-chain --no-pager multi-user.target | head -n 12',
].join('; ');

/** One VM's breakdown, from the env record and one SSH call. */
function breakdown(rec, vm) {
  const ssh = (cmd) => inNs(['ssh', '-F', path.join(rec.workdir, 'ssh_config'), vm.name, cmd]);
  // the clock line-up on its own quick call (the analysis below takes seconds under TCG)
  const before = Date.now();
  const uptime = ssh('cat /proc/uptime').stdout;
  const after = Date.now();
  const kernelStart = (before + after) / 2 - Number(uptime.split(' ')[0]) * 1000;
  const [analyze, listening, blame, chain] = ssh(GUEST).stdout.split(`${SEP}\n`);
  const sshdMono = /\[\s*([\d.]+)\]/.exec(listening ?? '')?.[1];
  const sshdAt = sshdMono === undefined ? undefined : kernelStart + Number(sshdMono) * 1000;
  const t = vm.timings;
  return {
    vm: vm.name,
    image: vm.image.path.split('/').pop(),
    firmware: (kernelStart - t.startedAt) / 1000,
    ...parseAnalyze(analyze),
    sshd: sshdAt === undefined ? undefined : (sshdAt - t.startedAt) / 1000,
    port22: (t.sshOpenAt - t.startedAt) / 1000,
    ready: (t.readyAt - t.startedAt) / 1000,
    lag: sshdAt === undefined ? undefined : (t.readyAt - sshdAt) / 1000,
    rtt: (after - before) / 1000,
    blame: blame.trim().split('\n'),
    chain: chain.trim().split('\n'),
  };
}

const results = [];
const live = new Set();
try {
  for (let round = 0; round < rounds; round++)
    for (const s of suites) {
      const up = inNs(upArgv(ost, s.name, s.envFile, root));
      const rec = JSON.parse(up.stdout);
      live.add(rec.id);
      for (const vm of rec.vms) results.push({ suite: s.name, round, ...breakdown(rec, vm) });
      inNs([ost, 'down', rec.id]);
      live.delete(rec.id);
    }
} finally {
  for (const id of live) inNs([ost, 'down', id], { allowFailure: true });
  stop();
  rmSync(env.OST_OVERLAY_DIR, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
}

const f = (x) => (x === undefined || Number.isNaN(x) ? '–' : `${x.toFixed(1)} s`);
console.log(`# Boot to ready, per VM (${new Date().toISOString()}, ${rounds} round(s))`);
console.log(
  '| suite | VM | image | firmware+loader | kernel | initrd | userspace | sshd listening | port 22 seen | ready (ost) | ready − sshd listening |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of results)
  console.log(
    `| ${r.suite} | ${r.vm} | ${r.image} | ${f(r.firmware)} | ${f(r.kernel)} | ${f(r.initrd)} | ${f(r.userspace)} | ${f(r.sshd)} | ${f(r.port22)} | ${f(r.ready)} | ${f(r.lag)} |`,
  );
console.log(
  `\nmedian ready − sshd listening: ${f(median(results.map((r) => r.lag).filter((x) => x !== undefined)))}; ` +
    `ssh round trip of the measuring call: median ${sec(median(results.map((r) => r.rtt * 1000)))} (the kernel-start error is half of it)`,
);
for (const s of suites) {
  const rs = results.filter((r) => r.suite === s.name);
  console.log(
    `\n${s.name}: ready median ${f(median(rs.map((r) => r.ready)))}, max ${f(Math.max(...rs.map((r) => r.ready)))}`,
  );
}
for (const r of results.filter((x) => x.round === 0)) {
  console.log(`\n## ${r.suite} / ${r.vm} (${r.image}): systemd-analyze blame (top 8)`);
  for (const l of r.blame) console.log(`    ${l}`);
  console.log('  critical-chain multi-user.target:');
  for (const l of r.chain) console.log(`    ${l}`);
}
