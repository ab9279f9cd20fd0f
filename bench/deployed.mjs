#!/usr/bin/env node
// Deployed images against a run-time deploy, in one run (issue 29): a 2-VM suite whose engine's deploy does
// what oVirt's engine-setup spends its time on — installs PostgreSQL from a package repository, creates a
// database and loads it — and whose host's deploy enables a service. Once: `ost build-images --deployed`
// of it on the shared e2e set's build dir, published (the package's size). Then per round, alternating:
//   A  `ost up --deploy`    boot + the deploy scripts (what every CI run does today)
//   B  `ost up --deployed`  boot of the deployed layers, no deploy script
//   C  `ost up --from`      a memory checkpoint of B's env (`ost checkpoint`), restored
// each timed as a whole `ost up` process until it returns (every VM SSH-ready, deployed). The packages come
// from the host's apt (the same Debian release): downloaded once, served to the guests over HTTP from
// inside the benchmark's network namespace; nothing leaves it.
// Usage (root, after npm run build): node bench/deployed.mjs --shared /var/cache/ost-test/debian12-<key> [--rounds 2]
import { spawn } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import { libvirtNetns, median, runner, sec } from './lib.mjs';

const repoRoot = path.resolve(import.meta.dirname, '..');
const ost = path.join(repoRoot, 'bin/ost');
const args = process.argv.slice(2);
const opt = (name, def) => (args.includes(name) ? args[args.indexOf(name) + 1] : def);
const shared = opt('--shared');
if (!shared) {
  console.error('usage: node bench/deployed.mjs --shared <the shared e2e set dir: set/, out/> [--rounds N]');
  process.exit(2);
}
const rounds = Number(opt('--rounds', '2'));
const work = mkdtempSync('/var/tmp/ost-depbench-');
chmodSync(work, 0o755);
const env = {
  ...process.env,
  OST_STATE_DIR: path.join(work, 'state'),
  OST_OVERLAY_DIR: `/dev/shm/ost-depbench-${process.pid}`,
  OST_CHECKPOINT_DIR: path.join(work, 'checkpoints'),
};
const sh = runner(env);
const netns = `ost-depbench-${process.pid}`;
const out = path.join(work, 'out');
const repo = path.join(work, 'repo');
const debs = path.join(work, 'debs');
const suiteDir = path.join(work, 'suite');
const envFile = path.join(suiteDir, 'ost-env.yaml');
const PORT = 8631;

/** The shared build dir and its RPMs linked into `out`: the deployed layers go beside the images. */
function linkBuildDir() {
  for (const sub of ['', 'rpms']) {
    mkdirSync(path.join(out, sub), { recursive: true, mode: 0o755 });
    for (const f of readdirSync(path.join(shared, 'out', sub))) {
      const from = path.join(shared, 'out', sub, f);
      if (!statSync(from).isFile() || f === '.lock') continue;
      try {
        linkSync(from, path.join(out, sub, f));
      } catch {
        copyFileSync(from, path.join(out, sub, f));
      }
    }
  }
}

/** PostgreSQL and everything it needs, as the host's apt resolves it from nothing, in a flat repository. */
function packageRepo() {
  mkdirSync(path.join(debs, 'partial'), { recursive: true });
  writeFileSync(path.join(work, 'empty-status'), '');
  sh('apt-get', [
    '-q',
    '-o',
    `Dir::State::status=${path.join(work, 'empty-status')}`,
    '-o',
    `Dir::Cache::archives=${debs}`,
    '-o',
    'Debug::NoLocking=1',
    '--download-only',
    '--no-install-recommends',
    '-y',
    'install',
    'postgresql',
  ]);
  rmSync(path.join(debs, 'partial'), { recursive: true, force: true });
  const index = sh('dpkg-scanpackages', ['--multiversion', '.'], { cwd: debs });
  writeFileSync(path.join(debs, 'Packages'), index.stdout);
  return readdirSync(debs).filter((f) => f.endsWith('.deb')).length;
}

function writeSuite() {
  mkdirSync(suiteDir, { recursive: true });
  const apt = '-o Dir::Etc::sourcelist=/etc/apt/sources.list.d/bench.list -o Dir::Etc::sourceparts=-';
  writeFileSync(
    path.join(suiteDir, 'deploy-engine.sh'),
    [
      '#!/bin/bash',
      'set -euo pipefail',
      "gw=$(ip -4 route show default | awk '{print $3; exit}')",
      `echo "deb [trusted=yes] http://$gw:${PORT}/ ./" > /etc/apt/sources.list.d/bench.list`,
      `apt-get ${apt} -q update`,
      `DEBIAN_FRONTEND=noninteractive apt-get ${apt} -q -y --no-install-recommends install postgresql`,
      'su postgres -c "createdb engine"',
      'su postgres -c "psql -q engine -c \\"CREATE TABLE vms AS SELECT g AS id, md5(g::text) AS name FROM generate_series(1, 200000) g; CREATE INDEX ON vms (name);\\""',
      '',
    ].join('\n'),
  );
  writeFileSync(
    path.join(suiteDir, 'deploy-host.sh'),
    ['#!/bin/bash', 'set -euo pipefail', 'systemctl enable --now chrony', ''].join('\n'),
  );
  writeFileSync(
    envFile,
    `suites:
  bench-deployed:
    networks:
      management: { management: true, forward: nat }
    vms:
      engine: { image: debian12-engine-installed, memory: 1536, nics: [management], deployScripts: [deploy-engine.sh] }
      host-0: { image: debian12-host-installed, memory: 1024, nics: [management], deployScripts: [deploy-host.sh] }
`,
  );
}

const results = { A: [], B: [], C: [] };
const { inNs, stop } = libvirtNetns(sh, netns);
// the packages, to the guests on the NAT network's gateway, from inside the namespace only
const server = spawn(
  'ip',
  [
    'netns',
    'exec',
    netns,
    'python3',
    '-m',
    'http.server',
    String(PORT),
    '--bind',
    '0.0.0.0',
    '--directory',
    debs,
  ],
  { stdio: 'ignore' },
);
const upArgv = (...flags) => [
  ost,
  'up',
  'bench-deployed',
  '--env-file',
  envFile,
  '--images-dir',
  out,
  '--json',
  '--timeout',
  '1800',
  ...flags,
];
try {
  linkBuildDir();
  const count = packageRepo();
  writeSuite();
  const set = path.join(shared, 'set', 'debian12.yaml');
  const b = inNs(
    [
      ost,
      'build-images',
      set,
      '--out',
      out,
      '--offline',
      '--deployed',
      'bench-deployed',
      '--env-file',
      envFile,
      '--publish',
      repo,
      '--json',
    ],
    { cwd: work },
  );
  const built = JSON.parse(b.stdout);
  const rpm = readdirSync(path.join(repo, 'Packages')).find((f) =>
    f.startsWith('ost-images-debian12-bench-deployed-deployed-'),
  );
  const rpmBytes = statSync(path.join(repo, 'Packages', rpm)).size;
  const layers = readdirSync(out).filter((f) => /^debian12-bench-deployed-.*-deployed\.qcow2$/.test(f));
  const layerBytes = layers.reduce((n, f) => n + statSync(path.join(out, f)).size, 0);
  for (let round = 1; round <= rounds; round++) {
    const a = inNs(upArgv('--deploy'), { cwd: work });
    results.A.push(a.ms);
    inNs([ost, 'down', JSON.parse(a.stdout).id]);
    const d = inNs(upArgv('--deployed'), { cwd: work });
    results.B.push(d.ms);
    const id = JSON.parse(d.stdout).id;
    const ck = `bench-${round}`;
    inNs([ost, 'checkpoint', id, ck]);
    inNs([ost, 'down', id]);
    const c = inNs(upArgv('--from', ck), { cwd: work });
    results.C.push(c.ms);
    inNs([ost, 'down', JSON.parse(c.stdout).id]);
    inNs([ost, 'rm-checkpoint', ck]);
    console.error(`round ${round}: --deploy ${sec(a.ms)}, --deployed ${sec(d.ms)}, --from ${sec(c.ms)}`);
  }
  const m = (k) => median(results[k]);
  console.log(`packages served to the engine's deploy: ${count} .deb files (PostgreSQL and its closure)`);
  console.log(
    `build-images --deployed (cached layers, one boot + deploy + shutdown + commit, then pack/verify/publish): ${sec(b.ms)}; deployed build ${sec(built.deployed[0].durationMs)}`,
  );
  console.log(
    `deployed package ${rpm}: ${(rpmBytes / 2 ** 20).toFixed(1)} MiB (its layers ${(layerBytes / 2 ** 20).toFixed(1)} MiB as qcow2)`,
  );
  console.log(
    '| rounds | `ost up --deploy` (boot + deploy) | `ost up --deployed` | `--deployed` + memory checkpoint (`--from`) | deploy / deployed | deploy / checkpoint |',
  );
  console.log('|---|---|---|---|---|---|');
  console.log(
    `| ${rounds} | ${sec(m('A'))} | ${sec(m('B'))} | ${sec(m('C'))} | ${(m('A') / m('B')).toFixed(2)}× | ${(m('A') / m('C')).toFixed(2)}× |`,
  );
  console.log(
    `runs: ${JSON.stringify(Object.fromEntries(Object.entries(results).map(([k, v]) => [k, v.map((x) => Math.round(x))])))}`,
  );
} finally {
  server.kill();
  for (const e of JSON.parse(inNs([ost, 'list', '--json'], { allowFailure: true }).stdout || '[]'))
    inNs([ost, 'down', e.id], { allowFailure: true });
  stop();
  rmSync(env.OST_OVERLAY_DIR, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
}
