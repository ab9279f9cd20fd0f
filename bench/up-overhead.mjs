#!/usr/bin/env node
// `ost up` overhead, this checkout against a baseline checkout (an older commit, built), side by side in one
// run: the same 3-VM suite on the same installed images, rounds alternating baseline / current so that
// both see the same machine. Overhead = everything but the wait for the guests (and the deploy scripts).
// libvirtd runs inside a network namespace this script creates.
// Usage (root):
//   git worktree add /var/tmp/ost-base <commit> && (cd /var/tmp/ost-base && npm ci && npm run build)
//   node bench/up-overhead.mjs --baseline /var/tmp/ost-base --root <installroot> [--rounds 3]
import { mkdtempSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { libvirtNetns, median, runner, upBenchSuite, writeBenchSuite } from './lib.mjs';

const repoRoot = path.resolve(import.meta.dirname, '..');
const args = process.argv.slice(2);
const opt = (name, def) => (args.includes(name) ? args[args.indexOf(name) + 1] : def);
const baseline = opt('--baseline');
const installRoot = opt('--root');
const rounds = Number(opt('--rounds', '3'));
if (!baseline || !installRoot) {
  console.error('usage: node bench/up-overhead.mjs --baseline CHECKOUT --root INSTALLROOT [--rounds N]');
  process.exit(2);
}
const work = mkdtempSync('/var/tmp/ost-overhead-');
const env = {
  ...process.env,
  OST_STATE_DIR: path.join(work, 'state'),
  OST_OVERLAY_DIR: '/dev/shm/ost-overhead',
};
const sh = runner(env);
const { inNs, stop } = libvirtNetns(sh, `ost-ovh-${process.pid}`);
const envFile = writeBenchSuite(work);
const phases = ['resolve', 'overlays', 'lease', 'networks', 'domains', 'overhead'];
const builds = {
  baseline: { ost: path.join(path.resolve(baseline), 'bin/ost'), per: {}, wall: [], down: [] },
  current: { ost: path.join(repoRoot, 'bin/ost'), per: {}, wall: [], down: [] },
};
const sha = (dir) => sh('git', ['-C', dir, 'rev-parse', '--short', 'HEAD']).stdout.trim();
try {
  for (let i = 0; i < rounds; i++) {
    for (const b of Object.values(builds)) {
      const { rec, ms: upMs } = upBenchSuite(inNs, b.ost, envFile, installRoot, repoRoot);
      for (const p of phases) b.per[p] = [...(b.per[p] ?? []), rec.timings[p] ?? 0];
      b.wall.push(upMs - (rec.timings.ready ?? 0) - (rec.timings.deploy ?? 0));
      b.down.push(inNs([b.ost, 'down', rec.id]).ms);
    }
  }
  const ms = (x) => `${x.toFixed(0)} ms`;
  const row = (label, a, c) =>
    console.log(
      `| ${label} | ${ms(median(a))} | ${ms(median(c))} | ${a.map(ms).join(', ')} / ${c.map(ms).join(', ')} |`,
    );
  console.log(
    `Command: node bench/up-overhead.mjs --baseline <checkout of ${sha(baseline)}> --root ${installRoot} --rounds ${rounds} (current: ${sha(repoRoot)})\n`,
  );
  console.log(
    `| phase (3 VMs, median of ${rounds}) | baseline ${sha(baseline)} | current ${sha(repoRoot)} | all rounds (baseline / current) |`,
  );
  console.log('|---|---|---|---|');
  for (const p of phases)
    row(p === 'overhead' ? '**total overhead**' : p, builds.baseline.per[p], builds.current.per[p]);
  row('whole `ost up` process minus the wait for guests', builds.baseline.wall, builds.current.wall);
  row('`ost down`', builds.baseline.down, builds.current.down);
} finally {
  stop();
  rmSync(work, { recursive: true, force: true });
  rmSync('/dev/shm/ost-overhead', { recursive: true, force: true });
}
