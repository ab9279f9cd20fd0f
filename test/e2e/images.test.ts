// End-to-end: the real debian12 set built with debootstrap, guestfish and qemu-img, then booted.
// The shipped set (base, upgrade, engine-installed, host-installed) is the shared e2e set, built once per content key
// (shared-images.ts); rebuilds, failures, kills, upgrades and the cache run on two tiny leaves of its base.
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { readRepo } from '../../src/builder/repo/metadata.js';
import { run } from '../../src/core/exec.js';
import { fileSha256, linkOrCopy } from '../../src/core/fsutil.js';
import { REPO_ROOT } from '../helpers/sets.js';
import { ensureBuilt, isRoot, OST, ost } from './helpers.js';
import { type SharedImages, sharedImages } from './shared-images.js';

const MIN = 60_000;
const SHIPPED = ['base', 'upgrade', 'deps-installed', 'engine-installed', 'host-installed'];
// the set these tests build: the shipped base and two leaves whose customize is one small script
const LAYERS = ['base', 'leaf-a', 'leaf-b'];

interface LayerJson {
  layer: string;
  status: string;
  reason: string;
}

function manifest(out: string, layer: string): { key: string; buildId: string; parentBuildId?: string } {
  return JSON.parse(readFileSync(path.join(out, `debian12-${layer}.json`), 'utf8'));
}

async function qemuImgCheck(file: string): Promise<number> {
  return (await run('qemu-img', ['check', '-q', file], { allowFailure: true })).exitCode;
}

// One build shared by every suite of this file: the builder's tests, then pack/publish on its outputs.
// only made when the suites run (root)
const work = process.env.OST_E2E_DIR ?? (isRoot ? mkdtempSync('/var/tmp/ost-e2e-') : '/nonexistent');
const out = path.join(work, 'out');
const setDir = path.join(work, 'set');
const setFile = path.join(setDir, 'debian12.yaml');
let shared: SharedImages;

afterAll(() => {
  if (!process.env.OST_E2E_DIR) rmSync(work, { recursive: true, force: true });
});

const statuses = (stdout: string): Record<string, string> =>
  Object.fromEntries((JSON.parse(stdout).layers as LayerJson[]).map((l) => [l.layer, l.status]));

/** Append a line to a leaf's build script, so that (only) that leaf's key changes. */
function touchScript(name: string, line: string): void {
  const f = path.join(setDir, 'debian12', name);
  writeFileSync(f, `${readFileSync(f, 'utf8')}${line}\n`);
}

/** Put a failing first step into leaf-a; returns a function that restores the set file. */
function breakLeafA(command: string): () => void {
  const good = readFileSync(setFile, 'utf8');
  const doc = parse(good);
  doc.layers[1].steps.unshift({ run: command });
  writeFileSync(setFile, stringify(doc));
  return () => writeFileSync(setFile, good);
}

/**
 * The tests' own set: the shipped base (same definition, so the same key) and two tiny leaves, in an
 * output directory that starts with the shared build's base hard-linked in (committed files are never
 * written in place, only replaced by rename).
 */
async function makeTestSet(s: SharedImages): Promise<void> {
  rmSync(setDir, { recursive: true, force: true });
  mkdirSync(path.join(setDir, 'debian12'), { recursive: true });
  const doc = parse(readFileSync(path.join(REPO_ROOT, 'images/debian12.yaml'), 'utf8'));
  doc.layers = [
    doc.layers.find((l: { name: string }) => l.name === 'base'),
    ...['leaf-a', 'leaf-b'].map((name) => ({
      name,
      description: `tiny test leaf ${name}`,
      parent: 'base',
      steps: [{ script: `debian12/${name}-setup.sh` }],
    })),
  ];
  writeFileSync(setFile, stringify(doc));
  for (const leaf of ['leaf-a', 'leaf-b'])
    writeFileSync(
      path.join(setDir, 'debian12', `${leaf}-setup.sh`),
      // leaf-a boots as an image without the readiness marker would (an older RPM, an import): polled
      `#!/bin/sh\necho ${leaf} > /etc/ost-role\n${leaf === 'leaf-a' ? 'systemctl disable ost-ready.service\n' : ''}`,
    );
  mkdirSync(out, { recursive: true });
  for (const f of [
    'debian12-base.qcow2',
    'debian12-base.json',
    'debian12-base-pkglist.txt',
    'debian12_id_rsa',
    'debian12_id_rsa.pub',
  ])
    await linkOrCopy(path.join(s.out, f), path.join(out, f));
}

describe.skipIf(!isRoot)('ost build-images on images/debian12.yaml (real tools)', () => {
  beforeAll(async () => {
    ensureBuilt();
    shared = await sharedImages();
    await makeTestSet(shared);
  }, 120 * MIN);

  it(
    'builds the whole set: verified layers, relative chain, package lists, 0600 key',
    async () => {
      // the shared set was built from nothing by the current builder (its key covers the sources)
      expect(Object.fromEntries(shared.build.layers.map((l) => [l.layer, l.status]))).toEqual({
        base: 'built',
        upgrade: 'built',
        'deps-installed': 'built',
        'engine-installed': 'built',
        'host-installed': 'built',
      });
      const sout = shared.out;
      for (const l of SHIPPED) {
        const img = path.join(sout, `debian12-${l}.qcow2`);
        expect(statSync(img).mode & 0o777).toBe(0o444);
        expect(await qemuImgCheck(img)).toBe(0);
        expect(readFileSync(path.join(sout, `debian12-${l}-pkglist.txt`), 'utf8')).toMatch(
          /^openssh-server /m,
        );
      }
      const info = JSON.parse(
        (await run('qemu-img', ['info', '--output=json', path.join(sout, 'debian12-engine-installed.qcow2')]))
          .stdout,
      );
      expect(info['backing-filename']).toBe('debian12-deps-installed.qcow2');
      // the upgrade layer records the state of the repositories it upgraded from (here the base's mirror:
      // the shared set leaves out the distro's update suites, see shared-images.ts)
      const up = JSON.parse(readFileSync(path.join(sout, 'debian12-upgrade.json'), 'utf8'));
      expect(up.refresh).toBe('upstream');
      expect(up.upstream.map((u: { name: string; index: string }) => [u.name, u.index])).toEqual([
        ['bookworm', 'http://deb.debian.org/debian/dists/bookworm/InRelease'],
      ]);
      expect(up.upstream[0].sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(readFileSync(path.join(sout, 'debian12-engine-installed-pkglist-diff.txt'), 'utf8')).toMatch(
        /^\+ nginx-light /m,
      );
      expect(readFileSync(path.join(sout, 'debian12-host-installed-pkglist-diff.txt'), 'utf8')).toMatch(
        /^\+ chrony /m,
      );
      // deps-installed holds what the leaves' packages need and not the packages; the leaves add only those
      const deps = readFileSync(path.join(sout, 'debian12-deps-installed-pkglist.txt'), 'utf8');
      for (const p of ['nginx-common', 'rpcbind']) expect(deps, p).toMatch(new RegExp(`^${p} `, 'm'));
      for (const p of ['nginx-light', 'nfs-common', 'chrony', 'qemu-guest-agent'])
        expect(deps, p).not.toMatch(new RegExp(`^${p} `, 'm'));
      const diff = (l: string) => readFileSync(path.join(sout, `debian12-${l}-pkglist-diff.txt`), 'utf8');
      expect(diff('engine-installed')).not.toMatch(/^\+ nginx-common /m);
      expect(diff('host-installed')).toMatch(/^\+ nfs-common /m);
      expect(diff('host-installed')).not.toMatch(/^\+ rpcbind /m);
      expect(statSync(path.join(sout, 'debian12_id_rsa')).mode & 0o777).toBe(0o600);
      expect(readdirSync(sout).filter((f) => f.endsWith('.tmp'))).toEqual([]);
      expect(existsSync(path.join(sout, '.work'))).toBe(false);
    },
    5 * MIN,
  );

  it(
    'builds new leaves on a committed base: base cached, leaves verified with a relative chain',
    async () => {
      const r = await ost(['build-images', setFile, '--out', out, '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(statuses(r.stdout)).toEqual({ base: 'cached', 'leaf-a': 'built', 'leaf-b': 'built' });
      for (const l of ['leaf-a', 'leaf-b']) {
        const img = path.join(out, `debian12-${l}.qcow2`);
        expect(statSync(img).mode & 0o777).toBe(0o444);
        expect(await qemuImgCheck(img)).toBe(0);
        const info = JSON.parse((await run('qemu-img', ['info', '--output=json', img])).stdout);
        expect(info['backing-filename']).toBe('debian12-base.qcow2');
        expect(manifest(out, l).parentBuildId).toBe(manifest(shared.out, 'base').buildId);
        expect(readFileSync(path.join(out, `debian12-${l}-pkglist.txt`), 'utf8')).toMatch(
          /^openssh-server /m,
        );
        // one appliance boot made the layer: its overlay, then one guestfish session (steps and package list)
        const log = readFileSync(path.join(out, `logs/debian12-${l}.log`), 'utf8');
        expect(log.match(/^\$ \S+/gm)).toEqual(['$ /usr/bin/qemu-img', '$ /usr/bin/guestfish']);
      }
      expect(readdirSync(out).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    },
    20 * MIN,
  );

  it(
    'boots a VM from engine-installed that answers SSH with the set key',
    async () => {
      const r = await ost([
        'boot-image',
        shared.set,
        'engine-installed',
        '--out',
        shared.out,
        '--json',
        '--command',
        'cat /etc/ost-role; systemctl is-enabled nginx; test -s /etc/machine-id && echo has-machine-id; ' +
          'stat -c %a /etc/motd; sha256sum < /etc/motd',
      ]);
      expect(r.code, r.stderr).toBe(0);
      const res = JSON.parse(r.stdout);
      expect(['running', 'degraded']).toContain(res.systemState);
      // the login started on the guest's readiness marker, not on a polling attempt
      expect(res.marker).toBe(true);
      // the set's upload step: the file as it is in the set, with the mode it names
      const motd = await fileSha256(path.join(path.dirname(shared.set), 'debian12/engine-motd'));
      expect(res.commandOutput.split('\n')).toEqual([
        'engine',
        'enabled',
        'has-machine-id',
        '644',
        `${motd}  -`,
        '',
      ]);
    },
    15 * MIN,
  );

  it(
    'a no-op rebuild builds nothing',
    async () => {
      const before = LAYERS.map((l) => manifest(out, l).buildId);
      const r = await ost(['build-images', setFile, '--out', out, '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(statuses(r.stdout)).toEqual({
        base: 'cached',
        'leaf-a': 'cached',
        'leaf-b': 'cached',
      });
      expect(LAYERS.map((l) => manifest(out, l).buildId)).toEqual(before);
    },
    5 * MIN,
  );

  it(
    "changing one leaf's script rebuilds only that leaf",
    async () => {
      const before = LAYERS.map((l) => manifest(out, l).buildId);
      touchScript('leaf-b-setup.sh', 'echo v2 > /etc/ost-host-version');
      const r = await ost(['build-images', setFile, '--out', out, '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(statuses(r.stdout)).toEqual({
        base: 'cached',
        'leaf-a': 'cached',
        'leaf-b': 'built',
      });
      const after = LAYERS.map((l) => manifest(out, l).buildId);
      expect(after[0]).toBe(before[0]);
      expect(after[1]).toBe(before[1]);
      expect(after[2]).not.toBe(before[2]);
      expect(manifest(out, 'leaf-b').parentBuildId).toBe(after[0]);
    },
    30 * MIN,
  );

  it(
    'a failing step fails that layer with its log tail and leaves the sibling and old image intact',
    async () => {
      const leafABefore = manifest(out, 'leaf-a');
      // a failing first step in leaf-a (fails fast), while leaf-b changes too
      const restore = breakLeafA('echo OST-E2E-BROKEN-STEP >&2; exit 7');
      touchScript('leaf-b-setup.sh', 'echo v3 > /etc/ost-host-version');
      try {
        const r = await ost(['build-images', setFile, '--out', out]);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain(
          'layer leaf-a failed at "customize in one guestfish session": a command in the guest exited with 7',
        );
        expect(r.stderr).toMatch(/last lines of the log:\n(\s+\|.*\n)+/);
        expect(r.stderr).toContain(`full log: ${path.join(out, 'logs/debian12-leaf-a.log')}`);
        expect(r.stderr).toContain('OST-E2E-BROKEN-STEP');
        // the old leaf-a layer is still the committed one, the sibling was built
        expect(manifest(out, 'leaf-a')).toEqual(leafABefore);
        expect(await qemuImgCheck(path.join(out, 'debian12-leaf-a.qcow2'))).toBe(0);
        expect(existsSync(path.join(out, 'debian12-leaf-a.qcow2.tmp'))).toBe(false);
        const leafB = manifest(out, 'leaf-b');
        expect(leafB.parentBuildId).toBe(manifest(out, 'base').buildId);
      } finally {
        restore();
      }
    },
    30 * MIN,
  );

  it(
    'kill -9 half-way leaves the previous layers intact and the next run completes',
    async () => {
      const baseBefore = manifest(out, 'base');
      const leafBBefore = manifest(out, 'leaf-b');
      touchScript('leaf-b-setup.sh', 'echo v4 > /etc/ost-host-version');
      // wait until the leaf's guestfish session has its appliance up, then kill ost without any chance to
      // clean up (the session's sync markers reach the log once guestfish answers)
      const log = path.join(out, 'logs/debian12-leaf-b.log');
      rmSync(log, { force: true });
      const child = spawn(OST, ['build-images', setFile, '--out', out], { stdio: 'ignore' });
      const deadline = Date.now() + 10 * MIN;
      while (Date.now() < deadline) {
        if (existsSync(log) && /@@ost-sync-/.test(readFileSync(log, 'utf8'))) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      expect(existsSync(path.join(out, 'debian12-leaf-b.qcow2.tmp'))).toBe(true);
      child.kill('SIGKILL');
      await new Promise((r) => child.on('exit', r));
      // children die with ost (pdeathsig) and libguestfs stops its appliance
      await new Promise((r) => setTimeout(r, 5000));
      const leftovers = (
        await run('pgrep', ['-f', `(guestfish|qemu).*${out}`], { allowFailure: true })
      ).stdout.trim();
      expect(leftovers).toBe('');
      expect(manifest(out, 'base')).toEqual(baseBefore);
      expect(manifest(out, 'leaf-b')).toEqual(leafBBefore);
      for (const l of LAYERS) expect(await qemuImgCheck(path.join(out, `debian12-${l}.qcow2`))).toBe(0);

      const r = await ost(['build-images', setFile, '--out', out, '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(statuses(r.stdout)).toEqual({
        base: 'cached',
        'leaf-a': 'cached',
        'leaf-b': 'built',
      });
      expect(readdirSync(out).filter((f) => f.endsWith('.tmp'))).toEqual([]);
      // the build lock is free again (flock: the file stays, empty, when no one holds it)
      const lockFile = path.join(out, '.lock');
      expect(existsSync(lockFile) ? readFileSync(lockFile, 'utf8') : '').toBe('');
    },
    30 * MIN,
  );

  it('bad image-set files fail before anything is built, naming file and key path', async () => {
    const bad = path.join(work, 'bad.yaml');
    writeFileSync(
      bad,
      'distro: debian12\nfamily: deb\nlayers:\n  - name: leaf\n    parent: nope\n    steps: [{ script: missing.sh }]\n',
    );
    const r = await ost(['build-images', bad, '--out', path.join(work, 'bad-out')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${bad}:5: layers[0].parent: unknown parent "nope"`);
    expect(r.stderr).toContain('layers[0].steps[0].script: script missing.sh does not exist');
    expect(existsSync(path.join(work, 'bad-out'))).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------------
// Pack and publish, on the outputs of the suite above (real rpmbuild, createrepo_c, dnf, gpg, qemu).

const repo = path.join(work, 'repo');
const PREFIX = 'usr/share/ost-images';

function dnfRoot(root: string, repoDir: string, extra: string[] = []): string[] {
  return [
    '-y',
    '-q',
    `--installroot=${root}`,
    '--releasever=1',
    '--setopt=reposdir=/nonexistent',
    `--setopt=cachedir=${root}-dnfcache`,
    '--disableplugin=*',
    `--repofrompath=ost,file://${repoDir}`,
    ...extra,
  ];
}

async function dnf(root: string, repoDir: string, args: string[], extra: string[] = ['--nogpgcheck']) {
  return run('dnf', [...dnfRoot(root, repoDir, extra), ...args], { allowFailure: true, timeoutMs: 30 * MIN });
}

async function installed(root: string): Promise<Record<string, string>> {
  const r = await run('rpm', ['--root', root, '-qa', '--qf', '%{NAME} %{VERSION}-%{RELEASE}\\n']);
  return Object.fromEntries(
    r.stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(' ') as [string, string]),
  );
}

async function chainFiles(file: string): Promise<string[]> {
  const r = await run('qemu-img', ['info', '--backing-chain', '--output=json', file]);
  return (JSON.parse(r.stdout) as { filename: string }[]).map((x) =>
    path.resolve(path.dirname(file), x.filename),
  );
}

/**
 * Boot an installed image with the key installed next to it; returns what /etc/ost-role says. The test
 * leaves have no readiness marker (leaf-a masks it): ost's SSH polling must find them ready.
 */
async function roleOfBooted(image: string, root: string): Promise<string> {
  const key = path.join(root, PREFIX, 'debian12_id_rsa');
  const r = await ost([
    'boot-image',
    '--image',
    image,
    '--key',
    key,
    '--json',
    '--command',
    'cat /etc/ost-role',
  ]);
  expect(r.code, r.stderr).toBe(0);
  expect(JSON.parse(r.stdout).marker).toBe(false);
  return JSON.parse(r.stdout).commandOutput;
}

const repoFiles = () => readdirSync(path.join(repo, 'Packages')).sort();
const repomd = () => readFileSync(path.join(repo, 'repodata/repomd.xml'), 'utf8');

describe.skipIf(!isRoot)('ost publish-images / build-images --publish (real tools)', () => {
  const root = path.join(work, 'root');

  it(
    'packs, verifies and publishes the set; dnf installs a leaf with its base and the chain resolves inside the root',
    async () => {
      const r = await ost([
        'publish-images',
        setFile,
        '--out',
        out,
        '--repo',
        repo,
        '--squash',
        'leaf-a',
        '--json',
      ]);
      expect(r.code, r.stderr).toBe(0);
      const res = JSON.parse(r.stdout);
      expect(res.rpms.map((x: { name: string }) => x.name).sort()).toEqual([
        'ost-images-debian12-base',
        'ost-images-debian12-leaf-a',
        'ost-images-debian12-leaf-a-squashed',
        'ost-images-debian12-leaf-b',
      ]);
      expect(repoFiles()).toHaveLength(4);
      const i = await dnf(root, repo, [
        'install',
        'ost-images-debian12-leaf-a',
        'ost-images-debian12-leaf-b',
      ]);
      expect(i.exitCode, i.stderr).toBe(0);
      const pk = await installed(root);
      expect(Object.keys(pk).sort()).toEqual([
        'ost-images-debian12-base',
        'ost-images-debian12-leaf-a',
        'ost-images-debian12-leaf-b',
      ]);
      const leaf = path.join(root, PREFIX, 'debian12-leaf-a.qcow2');
      const chain = await chainFiles(leaf);
      expect(chain).toEqual([leaf, path.join(root, PREFIX, 'debian12-base.qcow2')]);
      expect(statSync(leaf).mode & 0o777).toBe(0o444);
      // exact pins: the leaf requires its base at the very version-release it was built on
      const req = await run('rpm', ['--root', root, '-q', '--requires', 'ost-images-debian12-leaf-a']);
      expect(req.stdout).toContain(`ost-images-debian12-base = ${pk['ost-images-debian12-base']}`);
      const prov = await run('rpm', ['--root', root, '-q', '--provides', 'ost-images-debian12-base']);
      expect(prov.stdout).toContain(`ost-images-layer(debian12-base) = ${manifest(out, 'base').key}`);
    },
    30 * MIN,
  );

  it(
    'boots the installed leaf with the private key from the base RPM',
    async () => {
      expect(await roleOfBooted(path.join(root, PREFIX, 'debian12-leaf-a.qcow2'), root)).toBe('leaf-a\n');
    },
    15 * MIN,
  );

  it(
    'the squashed RPM installs alone (no chain) and boots',
    async () => {
      const alone = path.join(work, 'root-squashed');
      const i = await dnf(alone, repo, ['install', 'ost-images-debian12-leaf-a-squashed']);
      expect(i.exitCode, i.stderr).toBe(0);
      expect(Object.keys(await installed(alone))).toEqual(['ost-images-debian12-leaf-a-squashed']);
      const img = path.join(alone, PREFIX, 'debian12-leaf-a-squashed.qcow2');
      expect(await chainFiles(img)).toEqual([img]);
      expect(await roleOfBooted(img, alone)).toBe('leaf-a\n');
      rmSync(alone, { recursive: true, force: true });
    },
    20 * MIN,
  );

  it(
    'a rebuilt leaf upgrades with dnf upgrade while its parent stays',
    async () => {
      const before = await installed(root);
      touchScript('leaf-b-setup.sh', 'echo v5 > /etc/ost-host-version');
      const r = await ost(['build-images', setFile, '--out', out, '--publish', repo, '--json']);
      expect(r.code, r.stderr).toBe(0);
      const res = JSON.parse(r.stdout);
      expect(res.published.added).toHaveLength(1);
      expect(res.published.added[0]).toMatch(/^ost-images-debian12-leaf-b-1-/);
      const u = await dnf(root, repo, ['upgrade', '--refresh']);
      expect(u.exitCode, u.stderr).toBe(0);
      const after = await installed(root);
      expect(after['ost-images-debian12-base']).toBe(before['ost-images-debian12-base']);
      expect(after['ost-images-debian12-leaf-a']).toBe(before['ost-images-debian12-leaf-a']);
      expect(after['ost-images-debian12-leaf-b']).not.toBe(before['ost-images-debian12-leaf-b']);
      const leafB = path.join(root, PREFIX, 'debian12-leaf-b.qcow2');
      expect(await chainFiles(leafB)).toEqual([leafB, path.join(root, PREFIX, 'debian12-base.qcow2')]);
    },
    30 * MIN,
  );

  it(
    'a failed layer publishes nothing and the repo keeps serving the previous set',
    async () => {
      const md = repomd();
      const files = repoFiles();
      const restore = breakLeafA('exit 9');
      touchScript('leaf-b-setup.sh', 'echo v6 > /etc/ost-host-version');
      try {
        const r = await ost(['build-images', setFile, '--out', out, '--publish', repo]);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain('layer leaf-a failed');
        expect(repomd()).toBe(md);
        expect(repoFiles()).toEqual(files);
        const fresh = path.join(work, 'root-after-failure');
        const i = await dnf(fresh, repo, ['install', 'ost-images-debian12-leaf-b']);
        expect(i.exitCode, i.stderr).toBe(0);
        rmSync(fresh, { recursive: true, force: true });
      } finally {
        restore();
      }
    },
    30 * MIN,
  );

  it(
    'a publish killed half-way leaves the repo readable and consistent; the next publish completes',
    async () => {
      // leaf-b was rebuilt by the previous test (v6): publish it, killing ost while createrepo_c runs
      const md = repomd();
      const child = spawn(OST, ['publish-images', setFile, '--out', out, '--repo', repo], {
        stdio: 'ignore',
      });
      const meta = path.join(repo, '.ost');
      const gensBefore = readdirSync(meta).filter((f) => f.startsWith('gen-')).length;
      const deadline = Date.now() + 20 * MIN;
      let sawNew = false;
      while (Date.now() < deadline && child.exitCode === null) {
        if (readdirSync(meta).filter((f) => f.startsWith('gen-')).length > gensBefore) {
          sawNew = true;
          break;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      child.kill('SIGKILL');
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.on('exit', r)));
      expect(sawNew).toBe(true);
      // the metadata is still the previous, complete generation and every package it lists is there
      expect(repomd()).toBe(md);
      const { readRepo } = await import('../../src/builder/repo/metadata.js');
      for (const p of await readRepo(repo))
        expect(existsSync(path.join(repo, p.location)), p.location).toBe(true);
      const fresh = path.join(work, 'root-after-kill');
      const i = await dnf(fresh, repo, ['install', 'ost-images-debian12-leaf-a']);
      expect(i.exitCode, i.stderr).toBe(0);
      rmSync(fresh, { recursive: true, force: true });
      const again = await ost(['publish-images', setFile, '--out', out, '--repo', repo, '--json']);
      expect(again.code, again.stderr).toBe(0);
      expect(repomd()).not.toBe(md);
    },
    30 * MIN,
  );

  it(
    'retention --keep 1: dropped RPMs leave the served metadata at once and the disk one publish later',
    async () => {
      const before = repoFiles();
      const r = await ost(['publish-images', setFile, '--out', out, '--repo', repo, '--keep', '1', '--json']);
      expect(r.code, r.stderr).toBe(0);
      const name = (f: string) => f.replace(/-1-[0-9.]+\.noarch\.rpm$/, '');
      // served: one complete set (base, leaf-a, leaf-b; leaf-a-squashed was not in it)
      const served = (await readRepo(repo)).map((x) => x.location.replace(/^Packages\//, '')).sort();
      expect(served.map(name).sort()).toEqual([
        'ost-images-debian12-base',
        'ost-images-debian12-leaf-a',
        'ost-images-debian12-leaf-b',
      ]);
      // dropped, but still on disk for clients that read the previous metadata
      const dropped = before.filter((f) => !served.includes(f));
      expect(dropped.length).toBeGreaterThan(0);
      expect(repoFiles()).toEqual(expect.arrayContaining(before));
      expect(JSON.parse(readFileSync(path.join(repo, '.ost/dropped-debian12.json'), 'utf8')).sort()).toEqual(
        dropped,
      );
      const fresh = path.join(work, 'root-after-retention');
      const i = await dnf(fresh, repo, [
        'install',
        'ost-images-debian12-leaf-b',
        'ost-images-debian12-leaf-a',
      ]);
      expect(i.exitCode, i.stderr).toBe(0);
      rmSync(fresh, { recursive: true, force: true });
      // the next publish deletes them
      const again = await ost([
        'publish-images',
        setFile,
        '--out',
        out,
        '--repo',
        repo,
        '--keep',
        '1',
        '--json',
      ]);
      expect(again.code, again.stderr).toBe(0);
      expect(repoFiles()).toEqual(served);
    },
    30 * MIN,
  );

  it(
    'a signed repo installs with gpgcheck on and a tampered RPM is refused',
    async () => {
      const gnupg = mkdtempSync(path.join(work, 'gnupg-'));
      const env = { GNUPGHOME: gnupg };
      await run(
        'gpg',
        [
          '--batch',
          '--passphrase',
          '',
          '--quick-gen-key',
          'ost test <ost-test@example.invalid>',
          'rsa2048',
          'sign',
          'never',
        ],
        { env },
      );
      const fpr = (
        await run('gpg', ['--batch', '--with-colons', '--list-secret-keys'], { env })
      ).stdout.match(/^fpr:+([0-9A-F]+):/m)?.[1];
      expect(fpr).toBeDefined();
      const signed = path.join(work, 'repo-signed');
      const r = await run(
        OST,
        ['publish-images', setFile, '--out', out, '--repo', signed, '--sign-key', fpr as string],
        {
          allowFailure: true,
          env,
          cwd: REPO_ROOT,
          timeoutMs: 30 * MIN,
        },
      );
      expect(r.exitCode, r.stderr).toBe(0);
      expect(existsSync(path.join(signed, 'repodata/repomd.xml.asc'))).toBe(true);
      const key = path.join(signed, 'RPM-GPG-KEY-ost-images');
      const gpg = [
        '--setopt=ost.gpgcheck=1',
        '--setopt=ost.repo_gpgcheck=1',
        `--setopt=ost.gpgkey=file://${key}`,
      ];
      // every RPM carries a signature by that key: checked with rpmkeys against the exported key alone
      // (not only dnf's repo checksum)
      const keyring = path.join(work, 'rpmkeys-root');
      mkdirSync(keyring, { recursive: true });
      const rpmkeysK = (f: string) =>
        run('rpmkeys', ['--root', keyring, '-K', f], { allowFailure: true }).then((x) => x);
      const rpmFiles = readdirSync(path.join(signed, 'Packages')).map((f) =>
        path.join(signed, 'Packages', f),
      );
      expect(rpmFiles.length).toBeGreaterThan(0);
      // before the key is known: the signatures cannot be verified
      expect((await rpmkeysK(rpmFiles[0] as string)).exitCode).not.toBe(0);
      await run('rpmkeys', ['--root', keyring, '--import', key]);
      for (const f of rpmFiles) {
        const k = await rpmkeysK(f);
        expect(k.exitCode, `${f}: ${k.stdout}${k.stderr}`).toBe(0);
        expect(k.stdout).toMatch(/digests signatures OK/);
      }
      const okRoot = path.join(work, 'root-signed');
      const ok = await dnf(okRoot, signed, ['install', 'ost-images-debian12-leaf-b'], gpg);
      expect(ok.exitCode, ok.stderr).toBe(0);
      rmSync(okRoot, { recursive: true, force: true });
      // flip one byte in the middle of the base RPM's payload
      const base = readdirSync(path.join(signed, 'Packages')).find((f) =>
        f.startsWith('ost-images-debian12-base-'),
      ) as string;
      const file = path.join(signed, 'Packages', base);
      const bytes = readFileSync(file);
      const mid = Math.floor(bytes.length / 2);
      bytes[mid] = (bytes[mid] as number) ^ 0xff;
      rmSync(file);
      writeFileSync(file, bytes);
      const tampered = await rpmkeysK(file);
      expect(tampered.exitCode).not.toBe(0);
      expect(tampered.stdout).toMatch(/NOT OK/);
      rmSync(keyring, { recursive: true, force: true });
      const badRoot = path.join(work, 'root-tampered');
      const bad = await dnf(badRoot, signed, ['install', 'ost-images-debian12-base'], gpg);
      expect(bad.exitCode).not.toBe(0);
      expect(`${bad.stdout}${bad.stderr}`).toMatch(/checksum|digest|signature|doesn't match|BAD/i);
      expect(existsSync(path.join(badRoot, PREFIX, 'debian12-base.qcow2'))).toBe(false);
      rmSync(badRoot, { recursive: true, force: true });
    },
    30 * MIN,
  );
});

describe.skipIf(!isRoot)('the repository as a shared build cache (real tools)', () => {
  it(
    'a fresh worker fetches published layers instead of building them, and builds only what changed',
    async () => {
      const fresh = path.join(work, 'out-fresh-worker');
      rmSync(fresh, { recursive: true, force: true });
      const r = await ost(['build-images', setFile, '--out', fresh, '--cache-repo', repo, '--json']);
      expect(r.code, r.stderr).toBe(0);
      const st = statuses(r.stdout);
      expect(st.base).toBe('fetched');
      expect(st['leaf-a']).toBe('fetched');
      // every layer of the current set is published (the retention test published it last)
      expect(st['leaf-b']).toBe('fetched');
      // the worker took the set's key pair from the base RPM, so its keys match the publisher's
      expect(readFileSync(path.join(fresh, 'debian12_id_rsa.pub'), 'utf8')).toBe(
        readFileSync(path.join(out, 'debian12_id_rsa.pub'), 'utf8'),
      );
      expect(statSync(path.join(fresh, 'debian12_id_rsa')).mode & 0o777).toBe(0o600);
      expect(manifest(fresh, 'leaf-a').buildId).toBe(
        JSON.parse(readFileSync(path.join(out, 'debian12-leaf-a.json'), 'utf8')).buildId,
      );
      expect(await qemuImgCheck(path.join(fresh, 'debian12-leaf-a.qcow2'))).toBe(0);
      touchScript('leaf-b-setup.sh', 'echo v7 > /etc/ost-host-version');
      const again = await ost(['build-images', setFile, '--out', fresh, '--cache-repo', repo, '--json']);
      expect(again.code, again.stderr).toBe(0);
      expect(statuses(again.stdout)).toEqual({
        base: 'cached',
        'leaf-a': 'cached',
        'leaf-b': 'built',
      });
      rmSync(fresh, { recursive: true, force: true });
    },
    30 * MIN,
  );
});
