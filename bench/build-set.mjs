#!/usr/bin/env node
// Build the debian12 set with a given ost checkout, publish it and dnf-install it, as the e2e tests'
// shared set is made (test/e2e/shared-images.ts: the upgrade layer without bookworm-updates/-security,
// whose ~650 MB of oldstable updates take over 10 min under TCG and differ from day to day). For the
// old-vs-new image benchmarks (issue 13): the same set file, built by the old and by the new builder.
// Usage (root): node bench/build-set.mjs --ost <checkout with dist/ built> --dir <empty or new folder>
//   [--squash LAYER].. [--payload P] [--resume]   (--resume: keep DIR/out, its built layers stay cached)
// Result: DIR/{set,out,repo,root}, DIR/build.json (ost's --json result and the wall time).
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { parse, stringify } from 'yaml';
import { dnfInstallArgv } from '../dist/tools/dnf.js';
import { runner } from './lib.mjs';

const args = process.argv.slice(2);
const opt = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const all = (name) => args.flatMap((a, i) => (a === name ? [args[i + 1]] : []));
const checkout = opt('--ost') ? path.resolve(opt('--ost')) : undefined;
const dir = opt('--dir') ? path.resolve(opt('--dir')) : undefined;
if (!checkout || !dir) {
  console.error(
    'usage: node bench/build-set.mjs --ost <checkout> --dir <folder> [--squash LAYER].. [--payload P]',
  );
  process.exit(2);
}
const sh = runner(process.env);
const ost = path.join(checkout, 'bin/ost');
for (const sub of args.includes('--resume') ? ['set', 'repo', 'root'] : [''])
  if (existsSync(path.join(dir, sub))) rmSync(path.join(dir, sub), { recursive: true, force: true });
mkdirSync(path.join(dir, 'set'), { recursive: true, mode: 0o755 });
for (const f of ['debian12.yaml', 'debian12'])
  cpSync(path.join(checkout, 'images', f), path.join(dir, 'set', f), { recursive: true });
const setFile = path.join(dir, 'set', 'debian12.yaml');
const doc = parse(readFileSync(setFile, 'utf8'));
const upgrade = doc.layers.find((l) => l.name === 'upgrade');
if (upgrade) delete upgrade.repos;
writeFileSync(setFile, stringify(doc));

const out = path.join(dir, 'out');
const repo = path.join(dir, 'repo');
const root = path.join(dir, 'root');
const extra = [
  ...all('--squash').flatMap((l) => ['--squash', l]),
  ...(opt('--payload') ? ['--payload', opt('--payload')] : []),
];
const t0 = Date.now();
const b = sh(ost, ['build-images', setFile, '--out', out, '--publish', repo, ...extra, '--json']);
const buildMs = Date.now() - t0;
mkdirSync(root, { mode: 0o755 });
const leaves = ['ost-images-debian12-engine-installed', 'ost-images-debian12-host-installed'];
const squashed = all('--squash').map((l) => `ost-images-debian12-${l}-squashed`);
const [dnf, ...dnfArgs] = dnfInstallArgv(
  { installRoot: root, repos: { ost: `file://${repo}` }, gpgcheck: false, cacheDir: `${root}-dnfcache` },
  [...leaves, ...squashed],
);
const i = sh(dnf, dnfArgs);
rmSync(`${root}-dnfcache`, { recursive: true, force: true });
writeFileSync(
  path.join(dir, 'build.json'),
  JSON.stringify(
    {
      checkout,
      commit: sh('git', ['-C', checkout, 'rev-parse', 'HEAD']).stdout.trim(),
      buildSeconds: Math.round(buildMs / 1000),
      installSeconds: Math.round(i.ms / 1000),
      result: JSON.parse(b.stdout),
    },
    null,
    2,
  ),
);
console.log(`built in ${(buildMs / 1000).toFixed(0)} s, installed in ${(i.ms / 1000).toFixed(1)} s → ${dir}`);
