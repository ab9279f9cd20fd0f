#!/usr/bin/env node
// Checkpoints against a cold boot, in one run, on installed debian12 images (issue 14): for demo-suite
// (2 VMs) and the 3-VM bench suite, per round: a cold `ost up` (boot, time to every VM SSH-ready), `ost
// checkpoint` of it (time, how long the VMs stood paused, size per VM: memory and disk), `ost down`, then
// `ost up --from` the checkpoint (time to every VM SSH-ready with its clock set), a second env from the same
// checkpoint beside it (`--from … --isolated`, its networks in a namespace of its own) and `ost revert` of the
// first.
// libvirtd runs inside a network namespace this script creates; everything it makes is removed at the end.
// Usage (root, after npm run build): node bench/checkpoint.mjs --root <installroot of the set> [--rounds 2]
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { libvirtNetns, median, runner, sec, upArgv, writeBenchSuite } from './lib.mjs';

const repoRoot = path.resolve(import.meta.dirname, '..');
const ost = path.join(repoRoot, 'bin/ost');
const args = process.argv.slice(2);
const opt = (name, def) => (args.includes(name) ? args[args.indexOf(name) + 1] : def);
const installRoot = opt('--root') ? path.resolve(opt('--root')) : undefined;
if (!installRoot) {
  console.error('usage: node bench/checkpoint.mjs --root <installroot of the debian12 set> [--rounds N]');
  process.exit(2);
}
const rounds = Number(opt('--rounds', '2'));
const work = mkdtempSync('/var/tmp/ost-ckbench-');
// qemu (the libvirt-qemu user) opens the checkpoint disks under it as backing files
chmodSync(work, 0o755);
const env = {
  ...process.env,
  OST_STATE_DIR: path.join(work, 'state'),
  OST_OVERLAY_DIR: `/dev/shm/ost-ckbench-${process.pid}`,
  OST_CHECKPOINT_DIR: path.join(work, 'checkpoints'),
};
const sh = runner(env);
const netns = `ost-ckbench-${process.pid}`;
const { inNs, stop } = libvirtNetns(sh, netns);
// --isolated names a namespace of its own: ost must run in the host's mount namespace (nsenter --net only)
const inNet = (argv, opts) => sh('nsenter', [`--net=/run/netns/${netns}`, ...argv], opts);
const suites = [
  { suite: 'demo-suite', file: path.join(repoRoot, 'ost-env.yaml') },
  { suite: 'bench-suite', file: writeBenchSuite(work) },
];
const mib = (b) => `${(b / 2 ** 20).toFixed(0)} MiB`;
const results = [];
try {
  for (let round = 1; round <= rounds; round++) {
    for (const { suite, file } of suites) {
      const name = `${suite}-${round}`;
      const cold = inNs(upArgv(ost, suite, file, installRoot), { cwd: work });
      const rec = JSON.parse(cold.stdout);
      const ck = inNs([ost, 'checkpoint', rec.id, name, '--json'], { cwd: work });
      const stored = JSON.parse(ck.stdout);
      inNs([ost, 'down', rec.id]);
      const warm = inNs([...upArgv(ost, suite, file, installRoot), '--from', name], { cwd: work });
      const from = JSON.parse(warm.stdout);
      const second = inNet([...upArgv(ost, suite, file, installRoot), '--from', name, '--isolated'], {
        cwd: work,
      });
      const iso = JSON.parse(second.stdout);
      inNet([ost, 'down', iso.id]);
      const rev = inNs([ost, 'revert', from.id, name, '--json'], { cwd: work });
      inNs([ost, 'down', from.id]);
      inNs([ost, 'rm-checkpoint', name]);
      const r = {
        round,
        suite,
        vms: rec.vms.length,
        coldMs: cold.ms,
        coldReadyMs: rec.timings.total,
        checkpointMs: ck.ms,
        pauseMs: stored.record.timings.pause,
        fromMs: warm.ms,
        fromReadyMs: from.timings.total,
        isolatedMs: second.ms,
        isolatedReadyMs: iso.timings.total,
        revertMs: rev.ms,
        perVm: stored.record.vms.map((v) => ({ vm: v.name, memory: v.memoryBytes, disk: v.diskBytes })),
        sizeBytes: stored.sizeBytes,
      };
      results.push(r);
      console.log(
        `${suite} round ${round}: cold up ${sec(r.coldMs)} (ready ${sec(r.coldReadyMs)}), checkpoint ${sec(r.checkpointMs)} (paused ${sec(r.pauseMs)}), ` +
          `up --from ${sec(r.fromMs)} (ready ${sec(r.fromReadyMs)}), a second one --isolated ${sec(r.isolatedMs)} (ready ${sec(r.isolatedReadyMs)}), revert ${sec(r.revertMs)}; ` +
          `${mib(r.sizeBytes)}: ${r.perVm.map((v) => `${v.vm} memory ${mib(v.memory)} disk ${mib(v.disk)}`).join(', ')}`,
      );
    }
  }
} finally {
  stop();
  rmSync(env.OST_OVERLAY_DIR, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
}
console.log('\nmedians (ost up wall time, as the user waits; ratio from/cold):');
for (const { suite } of suites) {
  const rs = results.filter((r) => r.suite === suite);
  const m = (k) => median(rs.map((r) => r[k]));
  console.log(
    `| ${suite} | ${rs[0].vms} | ${sec(m('coldMs'))} | ${sec(m('fromMs'))} | ${(m('fromMs') / m('coldMs')).toFixed(2)}x | ${sec(m('isolatedMs'))} | ${sec(m('checkpointMs'))} (paused ${sec(m('pauseMs'))}) | ${sec(m('revertMs'))} | ${mib(m('sizeBytes') / rs[0].vms)} |`,
  );
}
console.log(JSON.stringify(results));
