#!/usr/bin/env node
// Benchmark for `ost build-images` on images/debian12.yaml, in one run:
//  1. full build from scratch: per-layer build time and size (from the manifests)
//  2. no-op rebuild (everything cached), 5 runs            — target ≤ 2 s
//  3. rebuild after changing one leaf's script             — only that leaf is rebuilt
// Usage (root): node bench/build-images.mjs [--out DIR] [--reuse]   (after npm run build)
// --reuse keeps an existing build in DIR and skips step 1's timing of the base if it is cached.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const ost = path.join(root, 'bin/ost');
const args = process.argv.slice(2);
const outArg = args.indexOf('--out');
const work = mkdtempSync('/var/tmp/ost-bench-');
const out = outArg >= 0 ? path.resolve(args[outArg + 1]) : path.join(work, 'out');
const setDir = path.join(work, 'set');
cpSync(path.join(root, 'images'), setDir, { recursive: true });
const setFile = path.join(setDir, 'debian12.yaml');

function build() {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(ost, ['build-images', setFile, '--out', out, '--json'], { encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`build failed:\n${r.stderr}`);
  return { ms, result: JSON.parse(r.stdout) };
}
const fmt = (ms) => `${(ms / 1000).toFixed(2)} s`;
const mib = (b) => `${(b / 2 ** 20).toFixed(0)} MiB`;
const statusLine = (res) => res.layers.map((l) => `${l.layer}=${l.status}`).join(' ');

const lines = [];
const say = (s) => {
  lines.push(s);
  console.log(s);
};
say(`# ost build-images benchmark — ${new Date().toISOString()}`);
say(
  `machine: ${execFileSync('nproc').toString().trim()} cores, accel ${process.env.OST_ACCEL ?? 'auto'}; ${execFileSync('uname', ['-r']).toString().trim()}`,
);

const full = build();
say(`\n## 1. full build: ${fmt(full.ms)} (${statusLine(full.result)})`);
say('| layer | status | build time | size on disk (qcow2 allocated) | virtual size |');
say('|---|---|---|---|---|');
for (const l of full.result.layers) {
  const m = JSON.parse(readFileSync(path.join(out, `debian12-${l.layer}.json`), 'utf8'));
  say(
    `| ${l.layer} | ${l.status} | ${fmt(m.durationMs)} | ${mib(m.allocatedBytes)} | ${mib(m.virtualSize)} |`,
  );
}

const noops = [];
for (let i = 0; i < 5; i++) {
  const r = build();
  if (r.result.layers.some((l) => l.status !== 'cached'))
    throw new Error(`no-op rebuild built something: ${statusLine(r.result)}`);
  noops.push(r.ms);
}
noops.sort((a, b) => a - b);
say(
  `\n## 2. no-op rebuild (5 runs, whole CLI process): median ${fmt(noops[2])}, min ${fmt(noops[0])}, max ${fmt(noops[4])} — target ≤ 2 s`,
);

const script = path.join(setDir, 'debian12/host-setup.sh');
writeFileSync(script, `${readFileSync(script, 'utf8')}echo bench > /etc/ost-bench\n`);
const leaf = build();
say(`\n## 3. rebuild after changing host-installed's script: ${fmt(leaf.ms)} (${statusLine(leaf.result)})`);
console.log(`\nwork dir: ${work}`);
writeFileSync(path.join(work, 'results.md'), `${lines.join('\n')}\n`);
