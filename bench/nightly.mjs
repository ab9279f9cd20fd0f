#!/usr/bin/env node
// The nightly pipeline, timed (scripts/nightly-images.sh, whole process): the first night, a night without
// upstream changes, a night where one package of the upgrade repository changed, and a forced full rebuild —
// same machine, one run. The set: a Debian base imported from a built qcow2, a layer installing a probe
// package, an `upgrade` layer following a local flat apt repository (tiny .debs made here; the guests use
// local repositories only, nothing leaves the machine) and two leaves. Also what a CI host downloads after each night (the RPMs that night added).
// Usage (root): node bench/nightly.mjs --base <debian12-base.qcow2 of a built set>
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { runner } from './lib.mjs';

const repoRoot = path.resolve(import.meta.dirname, '..');
const args = process.argv.slice(2);
const base = args.includes('--base') ? path.resolve(args[args.indexOf('--base') + 1]) : undefined;
if (!base) {
  console.error('usage: node bench/nightly.mjs --base path/to/debian12-base.qcow2');
  process.exit(2);
}
const work = mkdtempSync('/var/tmp/ost-nightly-bench-');
const local = path.join(work, 'local-apt');
const out = path.join(work, 'out');
const repo = path.join(work, 'repo');
const setFile = path.join(work, 'bench.yaml');
const sh = runner(process.env);
const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');

/** One more version of the probe package in `repo`, and its Packages index rewritten. */
function addProbe(repo, version) {
  const pkg = path.join(work, `probe-${version}`);
  mkdirSync(path.join(pkg, 'DEBIAN'), { recursive: true });
  writeFileSync(
    path.join(pkg, 'DEBIAN/control'),
    `Package: ost-bench-probe\nVersion: ${version}\nArchitecture: all\nMaintainer: ost <ost@example.invalid>\nDescription: bench probe\n`,
  );
  mkdirSync(repo, { recursive: true });
  sh('dpkg-deb', [
    '--root-owner-group',
    '--build',
    pkg,
    path.join(repo, `ost-bench-probe_${version}_all.deb`),
  ]);
  rmSync(pkg, { recursive: true, force: true });
  const stanzas = readdirSync(repo)
    .filter((f) => f.endsWith('.deb'))
    .sort()
    .map((deb) => {
      const file = path.join(repo, deb);
      const fields = sh('dpkg-deb', ['-f', file]).stdout.trimEnd();
      return `${fields}\nFilename: ./${deb}\nSize: ${statSync(file).size}\nSHA256: ${sha256(readFileSync(file))}\n`;
    });
  writeFileSync(path.join(repo, 'Packages'), stanzas.join('\n'));
}

const rpms = () =>
  (readdirSync(path.join(repo, 'Packages'), { withFileTypes: true }) ?? []).filter((e) => e.isFile());
function night(label, extraArgs = '') {
  const before = new Set(
    (() => {
      try {
        return rpms().map((e) => e.name);
      } catch {
        return [];
      }
    })(),
  );
  const r = sh(path.join(repoRoot, 'scripts/nightly-images.sh'), [setFile, repo], {
    // the set imports --base from outside its folder
    env: {
      ...process.env,
      OST_NIGHTLY_OUT: out,
      OST_NIGHTLY_KEEP: '3',
      OST_NIGHTLY_ARGS: `--allow-outside ${extraArgs}`.trim(),
    },
  });
  const added = rpms().filter((e) => !before.has(e.name));
  const bytes = added.reduce((a, e) => a + statSync(path.join(repo, 'Packages', e.name)).size, 0);
  const line = r.stdout.split('\n').find((l) => / built, /.test(l)) ?? '';
  return {
    label,
    ms: r.ms,
    added: added.map((e) => e.name.replace(/-1-[0-9.]+\.noarch\.rpm$/, '')),
    bytes,
    line,
  };
}

try {
  const seed = path.join(work, 'seed-apt');
  addProbe(seed, '1.0');
  mkdirSync(local, { recursive: true });
  writeFileSync(path.join(local, 'Packages'), '');
  writeFileSync(
    setFile,
    `distro: bench
family: deb
layers:
  - name: base
    import: { source: ${base}, sha256: ${sh('sha256sum', [base]).stdout.split(' ')[0]} }
  - name: seed
    parent: base
    repos: [{ name: seed, url: "file:${seed}", suite: ./, trusted: true }]
    steps:
      - run: rm -f /etc/apt/sources.list
      - install: [ost-bench-probe]
  - name: upgrade
    parent: seed
    repos: [{ name: local, url: "file:${local}", suite: ./, trusted: true }]
    steps: [{ upgrade: true }]
  - name: leaf-a
    parent: upgrade
    steps: [{ run: "echo a > /etc/ost-role" }]
  - name: leaf-b
    parent: upgrade
    steps: [{ run: "echo b > /etc/ost-role" }]
`,
  );
  const results = [night('first night (nothing built yet)')];
  results.push(night('no upstream change'));
  addProbe(local, '2.0');
  results.push(night('one package updated in the upgrade repository'));
  results.push(night('forced full rebuild (--force base)', '--force base'));
  const mib = (b) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  console.log(`Command: node bench/nightly.mjs --base ${base}\n`);
  console.log('| night | whole `nightly-images.sh` | build | new RPMs (what `dnf upgrade` downloads) |');
  console.log('|---|---|---|---|');
  for (const r of results)
    console.log(
      `| ${r.label} | ${(r.ms / 1000).toFixed(1)} s | ${r.line.replace(/^bench: /, '').replace(/ in [0-9.]+s .*$/, '')} | ${r.added.length ? `${r.added.join(', ')} (${mib(r.bytes)})` : 'none'} |`,
    );
} finally {
  rmSync(work, { recursive: true, force: true });
}
