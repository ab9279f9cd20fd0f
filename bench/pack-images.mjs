#!/usr/bin/env node
// Benchmark for packing and installing the debian12 layers, in one run, on an existing build:
//  1. rpmbuild time, RPM size and `dnf install` time per payload: our candidates vs ost-images' w9T4.xzdio
//  2. bytes `dnf upgrade` downloads after only one leaf changed
//  3. squashed vs chained engine-installed: RPM size, and time for a VM to answer SSH
// Usage (root, after npm run build and ost build-images images/debian12.yaml):
//   node bench/pack-images.mjs [--out build/debian12] [--set images/debian12.yaml] [--payloads w3T0.zstdio,w6T0.zstdio,w9T0.zstdio,w9T4.xzdio]
//     [--payloads-only]   (part 1 alone, e.g. for the old and the new images of one set: issue 13)
//     [--ost CHECKOUT]    (publish with that checkout's bin/ost: the one that built --out)
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const args = process.argv.slice(2);
const opt = (name, def) => (args.includes(name) ? args[args.indexOf(name) + 1] : def);
// --ost CHECKOUT: pack with another build of ost (a set is published only by the builder that made it)
const ost = path.join(path.resolve(opt('--ost', root)), 'bin/ost');
const out = path.resolve(opt('--out', path.join(root, 'build/debian12')));
const setArg = path.resolve(opt('--set', path.join(root, 'images/debian12.yaml')));
const payloads = opt('--payloads', 'w3T0.zstdio,w6T0.zstdio,w9T0.zstdio,w9T4.xzdio').split(',');
const work = mkdtempSync('/var/tmp/ost-packbench-');
const lines = [];
const say = (s) => {
  lines.push(s);
  console.log(s);
};
const sec = (ms) => `${(ms / 1000).toFixed(1)} s`;
const mib = (b) => `${(b / 2 ** 20).toFixed(0)} MiB`;
function timed(cmd, argv, opts = {}) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 1 << 28, ...opts });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed:\n${r.stderr}`);
  return { ms, stdout: r.stdout };
}
function dnf(rootDir, repo, verb, pkgs) {
  return timed('dnf', [
    '-y',
    '-q',
    `--installroot=${rootDir}`,
    '--releasever=1',
    '--setopt=reposdir=/nonexistent',
    '--nogpgcheck',
    `--setopt=cachedir=${rootDir}-cache`,
    '--disableplugin=*',
    `--repofrompath=b,file://${repo}`,
    verb,
    ...pkgs,
  ]);
}
const layers = readdirSync(out)
  .filter((f) => /^debian12-.*\.qcow2$/.test(f) && !f.endsWith('-squashed.qcow2'))
  .map((f) => f.slice('debian12-'.length, -'.qcow2'.length));
const images = layers.map((l) => path.join(out, `debian12-${l}.qcow2`));
const imageBytes = images.reduce((a, f) => a + statSync(f).size, 0);

say(`# ost pack/install benchmark — ${new Date().toISOString()}`);
say(
  `machine: ${execFileSync('nproc').toString().trim()} cores; rpm ${execFileSync('rpm', ['--version']).toString().trim()}; layers: ${layers.map((l, i) => `${l} ${mib(statSync(images[i]).size)}`).join(', ')} (total ${mib(imageBytes)})`,
);
say(
  `\n## 1. payload comparison (the same ${layers.length} layer RPMs, rpmbuild then dnf install of the two leaves)`,
);
say(
  `| payload | rpmbuild (${layers.length} RPMs) | total RPM size | dnf install (the chain of both leaves) |`,
);
say('|---|---|---|---|');
const results = {};
for (const p of payloads) {
  // each payload packs a copy of the build dir (hard links), so RPM reuse never kicks in
  const copy = path.join(work, `out-${p}`);
  execFileSync('cp', ['-al', out, copy]);
  rmSync(path.join(copy, 'rpms'), { recursive: true, force: true });
  rmSync(path.join(copy, '.lock'), { force: true });
  const repo = path.join(work, `repo-${p}`);
  const r = timed(ost, ['publish-images', setArg, '--out', copy, '--repo', repo, '--payload', p, '--json']);
  const res = JSON.parse(r.stdout);
  const packMs = res.rpms.reduce((a, x) => a + (x.buildMs ?? 0), 0);
  const size = res.rpms.reduce((a, x) => a + x.bytes, 0);
  const rootDir = path.join(work, `root-${p}`);
  const inst = dnf(rootDir, repo, 'install', [
    'ost-images-debian12-engine-installed',
    'ost-images-debian12-host-installed',
  ]);
  results[p] = { packMs, size, installMs: inst.ms };
  say(`| ${p} | ${sec(packMs)} | ${mib(size)} | ${sec(inst.ms)} |`);
  rmSync(rootDir, { recursive: true, force: true });
  rmSync(`${rootDir}-cache`, { recursive: true, force: true });
  if (p !== payloads[0]) rmSync(copy, { recursive: true, force: true });
}
const base = results['w9T4.xzdio'];
if (base) {
  say(
    "\nrelative to ost-images' w9T4.xzdio (targets: pack ≥ 20× faster, install ≥ 4× faster, size ≤ 1.15×):",
  );
  for (const [p, r] of Object.entries(results)) {
    if (p === 'w9T4.xzdio') continue;
    say(
      `- ${p}: pack ${(base.packMs / r.packMs).toFixed(1)}× faster, install ${(base.installMs / r.installMs).toFixed(1)}× faster, size ${(r.size / base.size).toFixed(2)}×`,
    );
  }
}

if (args.includes('--payloads-only')) {
  rmSync(work, { recursive: true, force: true });
  process.exit(0);
}

// 2. a leaf changes: what does dnf upgrade download?
const p0 = payloads[0];
const copy = path.join(work, `out-${p0}`);
const repo = path.join(work, `repo-${p0}`);
const rootDir = path.join(work, 'root-upgrade');
dnf(rootDir, repo, 'install', ['ost-images-debian12-engine-installed', 'ost-images-debian12-host-installed']);
const setDir = path.join(work, 'set');
cpSync(path.join(root, 'images'), setDir, { recursive: true });
writeFileSync(
  path.join(setDir, 'debian12/host-setup.sh'),
  `${readFileSync(path.join(setDir, 'debian12/host-setup.sh'), 'utf8')}echo pack-bench-${Date.now()} > /etc/ost-bench\n`,
);
timed(ost, [
  'build-images',
  path.join(setDir, 'debian12.yaml'),
  '--out',
  copy,
  '--publish',
  repo,
  '--payload',
  p0,
]);
const before = new Set(readdirSync(path.join(repo, 'Packages')));
// serve the repo over HTTP on 127.0.0.1 and count the bytes dnf actually fetches
const served = path.join(work, 'served.log');
const server = spawn(
  process.execPath,
  [
    '-e',
    `
  const http = require('http'), fs = require('fs'), path = require('path');
  const root = process.argv[1], log = process.argv[2];
  const srv = http.createServer((req, res) => {
    const f = path.join(root, decodeURIComponent(req.url.split('?')[0]));
    fs.stat(f, (err, st) => {
      if (err || !st.isFile()) { res.statusCode = 404; return res.end(); }
      res.setHeader('content-length', st.size);
      fs.appendFileSync(log, req.url + ' ' + st.size + '\\n');
      fs.createReadStream(f).pipe(res);
    });
  });
  srv.listen(0, '127.0.0.1', () => console.log(srv.address().port));
`,
    repo,
    served,
  ],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
const port = await new Promise((resolve) =>
  server.stdout.once('data', (d) => resolve(Number(String(d).trim()))),
);
const cacheDir = `${rootDir}-cache`;
rmSync(cacheDir, { recursive: true, force: true });
const up = await new Promise((resolve, reject) => {
  const t0 = Date.now();
  const c = spawn(
    'dnf',
    [
      '-y',
      '-q',
      `--installroot=${rootDir}`,
      '--releasever=1',
      '--setopt=reposdir=/nonexistent',
      '--nogpgcheck',
      `--setopt=cachedir=${cacheDir}`,
      '--disableplugin=*',
      `--repofrompath=h,http://127.0.0.1:${port}/`,
      'upgrade',
    ],
    { stdio: 'inherit' },
  );
  c.on('exit', (code) =>
    code === 0 ? resolve({ ms: Date.now() - t0 }) : reject(new Error(`dnf upgrade exited ${code}`)),
  );
});
server.kill();
const fetched = readFileSync(served, 'utf8')
  .trim()
  .split('\n')
  .map((l) => l.split(' '));
const rpmBytes = fetched.filter(([u]) => u.endsWith('.rpm')).reduce((a, [, n]) => a + Number(n), 0);
const metaBytes = fetched.filter(([u]) => !u.endsWith('.rpm')).reduce((a, [, n]) => a + Number(n), 0);
const upgraded = spawnSync('rpm', ['--root', rootDir, '-qa', '--qf', '%{NAME}-%{VERSION}-%{RELEASE}\n'], {
  encoding: 'utf8',
})
  .stdout.trim()
  .split('\n')
  .sort();
const repoBytes = [...before].reduce((a, f) => a + statSync(path.join(repo, 'Packages', f)).size, 0);
say(
  `\n## 2. dnf upgrade after only host-installed changed (repo served over HTTP on 127.0.0.1): ${sec(up.ms)}`,
);
say(
  `- RPMs downloaded: ${fetched
    .filter(([u]) => u.endsWith('.rpm'))
    .map(([u]) => path.basename(u))
    .join(
      ', ',
    )} = ${mib(rpmBytes)} (repo holds ${mib(repoBytes)}); metadata ${(metaBytes / 1024).toFixed(0)} KiB`,
);
say(`- installed after the upgrade: ${upgraded.join(', ')}`);

// 3. squashed vs chained leaf
const sq = timed(ost, [
  'publish-images',
  path.join(setDir, 'debian12.yaml'),
  '--out',
  copy,
  '--repo',
  repo,
  '--payload',
  p0,
  '--squash',
  'engine-installed',
  '--json',
]);
const sqRpm = JSON.parse(sq.stdout).rpms.find((x) => x.name.endsWith('-squashed'));
const chainRpms = JSON.parse(sq.stdout).rpms.filter((x) =>
  ['ost-images-debian12-base', 'ost-images-debian12-engine-installed'].includes(x.name),
);
const sqRoot = path.join(work, 'root-squashed');
dnf(sqRoot, repo, 'install', ['ost-images-debian12-engine-installed-squashed']);
const prefix = 'usr/share/ost-images';
/** Boot an installed image with the key its RPM installed next to it; returns boot-image's JSON. */
const bootInstalled = (root, image) =>
  JSON.parse(
    timed(ost, [
      'boot-image',
      '--image',
      path.join(root, prefix, image),
      '--key',
      path.join(root, prefix, 'debian12_id_rsa'),
      '--json',
    ]).stdout,
  );
const bootChained = bootInstalled(rootDir, 'debian12-engine-installed.qcow2');
const bootSquashed = bootInstalled(sqRoot, 'debian12-engine-installed-squashed.qcow2');
say('\n## 3. squashed vs chained engine-installed');
say('| variant | RPMs to install | boot to SSH |');
say('|---|---|---|');
say(
  `| chained (base + leaf) | ${mib(chainRpms.reduce((a, x) => a + x.bytes, 0))} | ${sec(bootChained.bootToSshMs)} |`,
);
say(`| squashed | ${mib(sqRpm.bytes)} | ${sec(bootSquashed.bootToSshMs)} |`);
writeFileSync(path.join(work, 'results.md'), `${lines.join('\n')}\n`);
console.log(`\nwork dir: ${work} (remove it when done)`);
