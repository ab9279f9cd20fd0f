#!/usr/bin/env node
// Boot to ready, broken down per VM, for one or more configurations (an ost checkout + an installroot of
// debian12 image RPMs + extra `ost up` flags) side by side in one run, rounds alternating between them:
// `ost up` of demo-suite and the 3-VM bench suite in a network namespace (libvirtd of our own), then in
// every VM over SSH: /proc/uptime (to line the guest's clock up with the host's: kernel start = host time
// - uptime, from the quickest of 8 exchanges over one SSH session, ± half its round trip, a few ms),
// `systemd-analyze` (kernel, initrd — none on Debian's initramfs-tools: counted in kernel —, userspace), sshd's "Server listening" and the readiness marker
// unit's "Finished" (journal, monotonic), blame and critical chain.
// Per VM: firmware+bootloader = kernel start - domain start; sshd listening; boot finished (kernel start
// + systemd's total); when ost saw sshd (console marker, or port 22 for images without it); when its one
// SSH login started; ready (that login saw systemd running) and how late that was after sshd listened.
// Usage (root):
//   node bench/boot.mjs --config NAME=<ost checkout>:<installroot>[:<extra up flag>,...] [--config ...] [--rounds N]
//   node bench/boot.mjs --root <installroot> [--rounds N]      (one configuration: this checkout)
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { libvirtNetns, median, runner, sec, upArgv, writeBenchSuite } from './lib.mjs';

const repoRoot = path.resolve(import.meta.dirname, '..');
const args = process.argv.slice(2);
const opt = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const all = (name) => args.flatMap((a, i) => (a === name ? [args[i + 1]] : []));
const rounds = Number(opt('--rounds') ?? 1);
const configs = all('--config').map((c) => {
  const [name, rest] = c.split(/=(.*)/s);
  const [checkout, root, flags = ''] = rest.split(':');
  return {
    name,
    ost: path.join(path.resolve(checkout), 'bin/ost'),
    root: path.resolve(root),
    flags: flags.split(',').filter(Boolean),
  };
});
if (opt('--root'))
  configs.push({
    name: 'this',
    ost: path.join(repoRoot, 'bin/ost'),
    root: path.resolve(opt('--root')),
    flags: [],
  });
if (configs.length === 0) {
  console.error('usage: node bench/boot.mjs --config NAME=<checkout>:<installroot>[:flags] ... [--rounds N]');
  process.exit(2);
}
const work = mkdtempSync('/var/tmp/ost-boot-bench-');
const env = {
  ...process.env,
  OST_STATE_DIR: path.join(work, 'state'),
  OST_OVERLAY_DIR: `/dev/shm/ost-boot-bench-${process.pid}`,
};
const sh = runner(env);
const netns = `ost-boot-bench-${process.pid}`;
const { inNs, stop } = libvirtNetns(sh, netns);
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
  // the readiness marker unit (images with it): when it finished writing the marker
  "journalctl -b -o short-monotonic --no-pager -u ost-ready.service -g 'Finished' | head -n1",
  `echo ${SEP}`,
  'systemd-analyze blame --no-pager | head -n 8',
  `echo ${SEP}`,
  'systemd-analyze critical-chain --no-pager multi-user.target | head -n 12',
].join('; ');

const mono = (line) => {
  const m = /\[\s*([\d.]+)\]/.exec(line ?? '')?.[1];
  return m === undefined ? undefined : Number(m) * 1000;
};

/**
 * The guest's kernel start on the host clock: one SSH session answers each line sent to it with
 * /proc/uptime (shell builtins only, no process start), 8 times; the quickest exchange is taken, its
 * midpoint minus the uptime read is the kernel start, within half that round trip.
 */
async function kernelStartOf(sshArgv) {
  const loop = 'while read -r _; do read -r u _ </proc/uptime; echo "$u"; done';
  const child = spawn('ip', ['netns', 'exec', netns, ...sshArgv, loop], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const now = () => performance.timeOrigin + performance.now();
  let best;
  try {
    for (let i = 0; i < 9; i++) {
      const sent = now();
      child.stdin.write('\n');
      const { value, done } = await lines.next();
      const got = now();
      if (done) throw new Error('the clock line-up session ended early');
      // the first exchange also waits for the login: not a sample
      if (i > 0 && (best === undefined || got - sent < best.rtt))
        best = { rtt: got - sent, kernelStart: (sent + got) / 2 - Number(value) * 1000 };
    }
  } finally {
    child.stdin.end();
    child.kill();
  }
  return best;
}

/** One VM's breakdown, from the env record, the clock line-up and one SSH call. */
async function breakdown(rec, vm) {
  const sshArgv = ['ssh', '-F', path.join(rec.workdir, 'ssh_config'), vm.name];
  const ssh = (cmd) => inNs([...sshArgv, cmd]);
  const { rtt, kernelStart } = await kernelStartOf(sshArgv);
  const [analyze, listening, marker, blame, chain] = ssh(GUEST).stdout.split(`${SEP}\n`);
  const at = (ms) => (ms === undefined ? undefined : (kernelStart + ms - t.startedAt) / 1000);
  const t = vm.timings;
  const parts = parseAnalyze(analyze);
  const sshd = at(mono(listening));
  const rel = (x) => (x === undefined ? undefined : (x - t.startedAt) / 1000);
  return {
    vm: vm.name,
    image: vm.image.path.split('/').pop(),
    firmware: (kernelStart - t.startedAt) / 1000,
    ...parts,
    sshd,
    finished:
      (kernelStart - t.startedAt) / 1000 + (parts.kernel ?? 0) + (parts.initrd ?? 0) + (parts.userspace ?? 0),
    markerWritten: at(mono(marker)),
    // the first sign of sshd ost had: the console marker or port 22, whichever came first
    seen: rel(Math.min(t.sshdUpAt ?? Infinity, t.sshOpenAt ?? Infinity)),
    seenBy: (t.sshdUpAt ?? Infinity) <= (t.sshOpenAt ?? Infinity) ? 'marker' : 'port 22',
    // older launchers log in as soon as port 22 answers and record no login moment
    login: rel(t.loginAt ?? t.sshOpenAt),
    ready: rel(t.readyAt),
    lag: sshd === undefined ? undefined : rel(t.readyAt) - sshd,
    loginLag: sshd === undefined ? undefined : rel(t.loginAt ?? t.sshOpenAt) - sshd,
    rtt: rtt / 1000,
    blame: blame.trim().split('\n'),
    chain: chain.trim().split('\n'),
  };
}

const results = [];
const live = new Map();
try {
  for (let round = 0; round < rounds; round++)
    for (const c of configs)
      for (const s of suites) {
        const up = inNs([...upArgv(c.ost, s.name, s.envFile, c.root), ...c.flags]);
        const rec = JSON.parse(up.stdout);
        live.set(rec.id, c.ost);
        for (const vm of rec.vms)
          results.push({ config: c.name, suite: s.name, round, ...(await breakdown(rec, vm)) });
        inNs([c.ost, 'down', rec.id]);
        live.delete(rec.id);
      }
} finally {
  for (const [id, o] of live) inNs([o, 'down', id], { allowFailure: true });
  stop();
  rmSync(env.OST_OVERLAY_DIR, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
}

const f = (x) => (x === undefined || Number.isNaN(x) ? '–' : `${x.toFixed(1)} s`);
const med = (xs) => {
  const v = xs.filter((x) => x !== undefined && !Number.isNaN(x));
  return v.length ? median(v) : undefined;
};
console.log(`# Boot to ready, per VM (${new Date().toISOString()}, ${rounds} round(s))`);
for (const c of configs) console.log(`- ${c.name}: ${c.ost} ${c.flags.join(' ')} on ${c.root}`);
console.log(
  '\n| config | suite | round | VM | image | firmware+loader | kernel (+initrd) | userspace | sshd listening | boot finished | ost saw sshd (how) | login started | ready (ost) | ready − sshd listening |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of results)
  console.log(
    `| ${r.config} | ${r.suite} | ${r.round + 1} | ${r.vm} | ${r.image} | ${f(r.firmware)} | ${f((r.kernel ?? 0) + (r.initrd ?? 0))} | ${f(r.userspace)} | ${f(r.sshd)} | ${f(r.finished)} | ${f(r.seen)} (${r.seenBy}) | ${f(r.login)} | ${f(r.ready)} | ${f(r.lag)} |`,
  );
console.log(
  '\n| config | suite | ready, median (max) | firmware+loader | kernel | userspace | login started − sshd listening | ready − sshd listening | ready − boot finished |',
);
console.log('|---|---|---|---|---|---|---|---|---|');
for (const c of configs)
  for (const s of suites) {
    const rs = results.filter((r) => r.config === c.name && r.suite === s.name);
    console.log(
      `| ${c.name} | ${s.name} | ${f(med(rs.map((r) => r.ready)))} (${f(Math.max(...rs.map((r) => r.ready)))}) | ${f(med(rs.map((r) => r.firmware)))} | ${f(med(rs.map((r) => (r.kernel ?? 0) + (r.initrd ?? 0))))} | ${f(med(rs.map((r) => r.userspace)))} | ${f(med(rs.map((r) => r.loginLag)))} | ${f(med(rs.map((r) => r.lag)))} | ${f(med(rs.map((r) => r.ready - r.finished)))} |`,
    );
  }
console.log(
  `\nclock line-up: quickest exchange's round trip, median ${sec(median(results.map((r) => r.rtt * 1000)))}, max ${sec(Math.max(...results.map((r) => r.rtt * 1000)))} (the kernel-start error is half of it)`,
);
for (const r of results.filter((x) => x.round === 0)) {
  console.log(`\n## ${r.config} / ${r.suite} / ${r.vm} (${r.image}): systemd-analyze blame (top 8)`);
  for (const l of r.blame) console.log(`    ${l}`);
  console.log('  critical-chain multi-user.target:');
  for (const l of r.chain) console.log(`    ${l}`);
}
