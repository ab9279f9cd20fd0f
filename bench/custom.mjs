#!/usr/bin/env node
// Testing your own packages, timed to "every VM runs the custom packages" — same machine, same packages,
// one run: (a) OST's way: ost up, then in every VM the repos switched to the custom one and one apt run
// over SSH, all VMs at once (what OST's deploy fixture does with dnf); (b) ost up --custom-repo with an
// empty layer cache (layers built); (c) the same again (layers cached); and a plain ost up to compare (c)'s
// own overhead with. The issue's two tiny packages on demo-suite (2 VMs of 2 images) and the 3-VM bench
// suite (2 VMs share an image); a vdsm-sized set of packages on the 3-VM suite.
// Usage (root): node bench/custom.mjs --root <installroot with the debian12 ost-images RPMs>
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { writeAptFlatIndex } from '../dist/builder/custom/repos.js';
import { libvirtNetns, runner, sec, upArgv, writeBenchSuite } from './lib.mjs';

const repoRoot = path.resolve(import.meta.dirname, '..');
const args = process.argv.slice(2);
const root = args.includes('--root') ? path.resolve(args[args.indexOf('--root') + 1]) : undefined;
if (!root) {
  console.error('usage: node bench/custom.mjs --root <installroot>');
  process.exit(2);
}
const ost = path.join(repoRoot, 'bin/ost');
const work = mkdtempSync('/var/tmp/ost-custom-bench-');
chmodSync(work, 0o755); // qemu reads the layer cache inside it
mkdirSync(path.join(work, 'state'));
const env = {
  ...process.env,
  OST_STATE_DIR: path.join(work, 'state'),
  OST_OVERLAY_DIR: `/dev/shm/ost-custom-bench-${process.pid}`,
};
const sh = runner(env);
const layers = path.join(work, 'layers');

/** A .deb of `name` at `version` with `payloadBytes` of incompressible files, maybe depending on `depends`. */
function makeDeb(repo, name, version, payloadBytes = 0, depends) {
  const tree = path.join(work, `tree-${name}`);
  mkdirSync(path.join(tree, 'DEBIAN'), { recursive: true });
  mkdirSync(path.join(tree, 'usr/share', name), { recursive: true });
  writeFileSync(
    path.join(tree, 'DEBIAN/control'),
    `Package: ${name}\nVersion: ${version}\nArchitecture: all\nMaintainer: ost <ost@example.invalid>\n` +
      `${depends ? `Depends: ${depends}\n` : ''}Description: bench package\n`,
  );
  writeFileSync(path.join(tree, 'usr/share', name, 'version'), `${version}\n`);
  for (let i = 0; payloadBytes > 0; i++, payloadBytes -= 256 * 1024)
    writeFileSync(
      path.join(tree, 'usr/share', name, `data-${i}`),
      randomBytes(Math.min(payloadBytes, 256 * 1024)),
    );
  mkdirSync(repo, { recursive: true });
  sh('dpkg-deb', [
    '--root-owner-group',
    '-Zgzip',
    '--build',
    tree,
    path.join(repo, `${name}_${version.replace(/^\d+:/, '')}_all.deb`),
  ]);
  rmSync(tree, { recursive: true, force: true });
}

/**
 * The workloads: the issue's two tiny packages (both suites), and a set the size of a vdsm build (12
 * packages depending on the first, 1.5 MiB of files each, plus the `less` upgrade) on the 3-VM suite.
 */
const SIM = Array.from({ length: 12 }, (_, i) => `ost-vdsm-sim${i ? `-${i}` : ''}`);
const workloads = [
  {
    id: 'tiny',
    title: "less 99:1-ost1 (upgrades the images' less), ost-custom-probe 1.0 (--custom-install)",
    suites: ['demo-suite', 'bench-suite'],
    install: ['ost-custom-probe'],
    make: (repo) => {
      makeDeb(repo, 'less', '99:1-ost1');
      makeDeb(repo, 'ost-custom-probe', '1.0');
    },
  },
  {
    id: 'vdsm-sized',
    title: `less 99:1-ost1 + ${SIM.length} new packages of 1.5 MiB each (${SIM[0]}, ${SIM[1]} ... depending on ${SIM[0]}; --custom-install)`,
    suites: ['bench-suite'],
    install: SIM,
    make: (repo) => {
      makeDeb(repo, 'less', '99:1-ost1');
      for (const [i, n] of SIM.entries())
        makeDeb(repo, n, '4.50.0-1', 1.5 * 1024 * 1024, i ? SIM[0] : undefined);
    },
  },
];
for (const w of workloads) {
  w.repo = path.join(work, `repo-${w.id}`);
  w.make(w.repo);
}

const { inNs, stop } = libvirtNetns(sh, `ost-custom-bench-${process.pid}`);
const suites = [
  { name: 'demo-suite', envFile: path.join(repoRoot, 'ost-env.yaml') },
  { name: 'bench-suite', envFile: writeBenchSuite(work) },
];
const upArgs = (s) => upArgv(ost, s.name, s.envFile, root);
const custom = (w) => [
  '--custom-repo',
  w.repo,
  ...w.install.flatMap((p) => ['--custom-install', p]),
  '--layer-cache',
  layers,
];

/** Every VM's versions of the workload's packages: the proof each way really got there. */
function versions(rec, w) {
  const names = ['less', ...w.install];
  return rec.vms.map((vm) => {
    const r = inNs([
      'ssh',
      '-F',
      path.join(rec.workdir, 'ssh_config'),
      vm.name,
      `dpkg-query -W ${names.join(' ')}`,
    ]);
    const got = r.stdout
      .trim()
      .split('\n')
      .map((l) => l.replace('\t', ' '));
    return `${vm.name}: ${got.length > 3 ? `${got.length} packages (${got[0]}, ${got.at(-1)})` : got.join(', ')}`;
  });
}
const live = new Set();
const down = (rec) => {
  inNs([ost, 'down', rec.id]);
  live.delete(rec.id);
};
/** An `ost up` whose env is taken down however the benchmark ends. */
const upTimed = (argv) => {
  const r = inNs(argv);
  const rec = JSON.parse(r.stdout);
  live.add(rec.id);
  return { ms: r.ms, rec };
};
const ownTime = (rec) => rec.timings.total - (rec.timings.ready ?? 0) - (rec.timings.deploy ?? 0);

const rows = [];
try {
  for (const w of workloads)
    for (const s of suites.filter((x) => w.suites.includes(x.name))) {
      // (a) OST's way: plain up, then each VM upgraded from the custom repo over SSH, all VMs at once
      rmSync(path.join(w.repo, 'Packages'), { force: true });
      const t0 = Date.now();
      await writeAptFlatIndex(w.repo); // OST's custom repos come with metadata (createrepo); ours needs its index too
      const plain = inNs(upArgs(s));
      const rec = JSON.parse(plain.stdout);
      live.add(rec.id);
      // the steps of OST's deploy fixture, with apt: only the custom repo, then the same one apt run the
      // layer does (upgrade, with the new packages named)
      const script = path.join(work, 'ost-way.sh');
      writeFileSync(
        script,
        [
          'set -e',
          'mkdir -p /etc/ost-run-apt',
          `printf 'Types: deb\\nURIs: file:/var/tmp/${path.basename(w.repo)}\\nSuites: ./\\nTrusted: yes\\n' > /etc/ost-run-apt/c.sources`,
          'A="apt-get -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts=/etc/ost-run-apt -y -q"',
          '$A update',
          `DEBIAN_FRONTEND=noninteractive $A upgrade --with-new-pkgs ${w.install.join(' ')}`,
          '',
        ].join('\n'),
      );
      const cfg = path.join(rec.workdir, 'ssh_config');
      const perVm = rec.vms
        .map(
          (vm) =>
            `(scp -q -r -F ${cfg} ${w.repo} ${vm.name}:/var/tmp/ && ssh -F ${cfg} ${vm.name} bash -s < ${script} > ${work}/ost-way-${vm.name}.log 2>&1) & pids+=($!);`,
        )
        .join(' ');
      const t1 = Date.now();
      inNs(['bash', '-c', `pids=(); ${perVm} for p in "\${pids[@]}"; do wait $p || exit 1; done`]);
      const a = { ms: Date.now() - t0, upgradeMs: Date.now() - t1, versions: versions(rec, w), rec };
      down(rec);

      // (b) cold: layers built; (c) warm: layers cached
      rmSync(layers, { recursive: true, force: true });
      const b = upTimed([...upArgs(s), ...custom(w)]);
      b.versions = versions(b.rec, w);
      down(b.rec);
      const c = upTimed([...upArgs(s), ...custom(w)]);
      c.versions = versions(c.rec, w);
      down(c.rec);
      rows.push({ w, suite: s.name, vms: rec.vms.length, a, b, c });
    }
} finally {
  for (const id of live) inNs([ost, 'down', id], { allowFailure: true });
  stop();
  rmSync(env.OST_OVERLAY_DIR, { recursive: true, force: true });
}

console.log(`# ost up --custom-repo vs OST's run-time upgrade (${new Date().toISOString()})`);
for (const w of workloads) console.log(`- ${w.id}: ${w.title}`);
console.log(
  '\n| packages | suite | VMs | (a) OST way: up + apt in each VM | (b) --custom-repo cold | (c) warm | ost own time: plain up / (c) | custom phase (b) / (c) |',
);
console.log('|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(
    `| ${r.w.id} | ${r.suite} | ${r.vms} | ${sec(r.a.ms)} (up ${sec(r.a.ms - r.a.upgradeMs)} + upgrade ${sec(r.a.upgradeMs)}) | ${sec(r.b.ms)} | ${sec(r.c.ms)} | ${sec(ownTime(r.a.rec))} / ${sec(ownTime(r.c.rec))} | ${sec(r.b.rec.timings.custom)} / ${sec(r.c.rec.timings.custom)} |`,
  );
}
for (const r of rows) {
  console.log(
    `\n${r.w.id}, ${r.suite}: boot to SSH (a) ${sec(r.a.rec.timings.ready)}, (b) ${sec(r.b.rec.timings.ready)}, (c) ${sec(r.c.rec.timings.ready)}`,
  );
  for (const [k, v] of [
    ['a', r.a],
    ['b', r.b],
    ['c', r.c],
  ])
    console.log(`  (${k}) ${v.versions.join('; ')}`);
}
rmSync(work, { recursive: true, force: true });
