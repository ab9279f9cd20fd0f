import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { writeAptFlatIndex } from '../../src/builder/custom/repos.js';
import { run } from '../../src/core/exec.js';
import { fileSha256, linkOrCopy } from '../../src/core/fsutil.js';
import { dnfInstallArgv, dnfUpgradeArgv, rpmQueryAllArgv } from '../../src/tools/dnf.js';
import { runArgv } from '../../src/tools/run-tool.js';
import { makeDeb } from '../helpers/debs.js';
import { REPO_ROOT } from '../helpers/sets.js';
import { ensureBuilt, isRoot, OST, ost } from './helpers.js';
import { sharedImages } from './shared-images.js';

const MIN = 60_000;
const work = isRoot ? mkdtempSync('/var/tmp/ost-e2e-nightly-') : '/nonexistent';
// everything the set reads is in its folder, as a set file's host paths must be (no --allow-outside)
const setDir = path.join(work, 'set');
const seedRepo = path.join(setDir, 'seed-apt'); // where the seed layer installs the probe from (never changes)
const local = path.join(setDir, 'local-apt'); // the "distro updates" the upgrade layer follows
const setFile = path.join(setDir, 'nightly.yaml');
const out = path.join(work, 'out');
const repo = path.join(work, 'repo');
const root = path.join(work, 'root');
const PROBE = 'ost-nightly-probe';
let sharedKey = '';

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Build PROBE at `version` into `repo` and rewrite its Packages index (every version it holds). */
async function addProbe(repo: string, version: string): Promise<void> {
  await makeDeb(repo, PROBE, version);
  await writeAptFlatIndex(repo);
}

async function nightly(): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const t0 = Date.now();
  const r = await run(path.join(REPO_ROOT, 'scripts/nightly-images.sh'), [setFile, repo], {
    allowFailure: true,
    env: { OST, OST_NIGHTLY_OUT: out, OST_NIGHTLY_KEEP: '2' },
    timeoutMs: 40 * MIN,
  });
  return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - t0 };
}

interface Manifest {
  buildId: string;
  key: string;
  upstream?: { name: string; index: string; sha256: string }[];
  custom?: { repos: string[]; packages: { name: string; version: string }[] };
}
const manifest = (layer: string): Manifest =>
  JSON.parse(readFileSync(path.join(out, `nightly-${layer}.json`), 'utf8'));
const pkglist = (layer: string) => readFileSync(path.join(out, `nightly-${layer}-pkglist.txt`), 'utf8');
const repomd = () => readFileSync(path.join(repo, 'repodata/repomd.xml'), 'utf8');
const dnfSpec = {
  installRoot: root,
  repos: { ost: `file://${repo}` },
  gpgcheck: false,
  cacheDir: `${root}-cache`,
};
async function installedImages(): Promise<Record<string, string>> {
  const r = await runArgv(rpmQueryAllArgv(root));
  return Object.fromEntries(
    r.stdout
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('ost-images-'))
      .map((l) => l.split(' ') as [string, string]),
  );
}

const LAYERS = ['base', 'seed', 'upgrade', 'leaf'];
const buildIds = () => Object.fromEntries(LAYERS.map((l) => [l, manifest(l).buildId]));

describe.skipIf(!isRoot)('the nightly pipeline on local package repositories (real tools)', () => {
  beforeAll(async () => {
    ensureBuilt();
    const shared = await sharedImages();
    sharedKey = path.join(shared.out, 'debian12_id_rsa');
    mkdirSync(setDir, { recursive: true });
    const base = path.join(setDir, 'debian12-base.qcow2');
    await linkOrCopy(path.join(shared.out, 'debian12-base.qcow2'), base);
    await addProbe(seedRepo, '1.0');
    mkdirSync(local, { recursive: true });
    await writeAptFlatIndex(local); // no updates yet: an empty index
    mkdirSync(path.dirname(setFile), { recursive: true });
    writeFileSync(
      setFile,
      stringify({
        distro: 'nightly',
        family: 'deb',
        layers: [
          // the shared Debian base, imported: it names no repository, so the host reads none but ours
          { name: 'base', import: { source: base, sha256: await fileSha256(base) } },
          {
            name: 'seed',
            description: 'the probe package at 1.0, as a base package the distro later updates',
            parent: 'base',
            repos: [{ name: 'seed', url: `file:${seedRepo}`, suite: './', trusted: true }],
            steps: [
              // the guests use the local repositories only: no traffic leaves the machine
              { run: 'rm -f /etc/apt/sources.list' },
              { install: [PROBE] },
            ],
          },
          {
            name: 'upgrade',
            description: 'updates from the local repository',
            parent: 'seed',
            repos: [{ name: 'local', url: `file:${local}`, suite: './', trusted: true }],
            steps: [{ upgrade: true }],
          },
          { name: 'leaf', parent: 'upgrade', steps: [{ run: 'echo leaf > /etc/ost-role' }] },
        ],
      }),
    );
  }, 120 * MIN);

  it(
    'first night: builds and publishes the set; each manifest and RPM records the repository state',
    async () => {
      const r = await nightly();
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/nightly nightly: done in \d+s/);
      const up = manifest('upgrade');
      // the upgrade layer's guest uses the seed repository (from its parent) and the updates
      expect(up.upstream?.map((u) => [u.name, u.index])).toEqual([
        ['seed', `file://${seedRepo}/Packages`],
        ['local', `file://${local}/Packages`],
      ]);
      expect(up.upstream?.[1]?.sha256).toBe(await fileSha256(path.join(local, 'Packages')));
      for (const l of ['seed', 'upgrade', 'leaf'])
        expect(pkglist(l)).toMatch(new RegExp(`^${PROBE} 1\\.0 all$`, 'm'));
      // the RPM carries it too: rpm -qi names the index it was built from
      const rpm = readdirSync(path.join(repo, 'Packages')).find((f) =>
        f.startsWith('ost-images-nightly-upgrade-'),
      );
      const qi = await run('rpm', ['-qip', path.join(repo, 'Packages', rpm as string)]);
      expect(qi.stdout).toContain(`file://${local}/Packages sha256 ${up.upstream?.[1]?.sha256}`);
      mkdirSync(root, { mode: 0o755 });
      await runArgv(dnfInstallArgv(dnfSpec, ['ost-images-nightly-leaf']), { timeoutMs: 20 * MIN });
      expect(Object.keys(await installedImages()).sort()).toEqual(
        LAYERS.map((l) => `ost-images-nightly-${l}`).sort(),
      );
    },
    40 * MIN,
  );

  it(
    'a night without changes builds nothing and publishes nothing',
    async () => {
      const before = { md: repomd(), ids: buildIds() };
      const r = await nightly();
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('0 built');
      expect(r.stdout).toContain('nothing new to publish');
      expect(repomd()).toBe(before.md);
      expect(buildIds()).toEqual(before.ids);
    },
    10 * MIN,
  );

  it(
    'an update in the repository rebuilds upgrade (which upgrades the package) and leaf, says why, and dnf upgrade fetches only those two',
    async () => {
      const before = buildIds();
      const installedBefore = await installedImages();
      await addProbe(local, '2.0');
      const plan = await ost(['build-images', setFile, '--out', out, '--dry-run', '--json']);
      expect(plan.code, plan.stderr).toBe(0);
      const reasons = Object.fromEntries(
        (JSON.parse(plan.stdout).plan as { layer: string; action: string; reason: string }[]).map((e) => [
          e.layer,
          `${e.action}: ${e.reason}`,
        ]),
      );
      expect(reasons).toEqual({
        base: 'cached: up to date',
        seed: 'cached: up to date',
        upgrade: expect.stringMatching(
          /^build: upstream: local Packages changed \d{4}-\d\d-\d\d → \d{4}-\d\d-\d\d$/,
        ),
        leaf: 'build: parent upgrade is rebuilt',
      });

      const r = await nightly();
      expect(r.code, r.stderr).toBe(0);
      const after = buildIds();
      expect([after.base, after.seed]).toEqual([before.base, before.seed]);
      expect(after.upgrade).not.toBe(before.upgrade);
      expect(after.leaf).not.toBe(before.leaf);
      expect(manifest('upgrade').upstream?.[1]?.sha256).toBe(await fileSha256(path.join(local, 'Packages')));
      // the upgrade step upgraded it; the leaf carries it
      expect(pkglist('upgrade')).toMatch(new RegExp(`^${PROBE} 2\\.0 all$`, 'm'));
      expect(readFileSync(path.join(out, 'nightly-upgrade-pkglist-diff.txt'), 'utf8')).toContain(
        `~ ${PROBE} 1.0 -> 2.0 all`,
      );
      expect(pkglist('leaf')).toMatch(new RegExp(`^${PROBE} 2\\.0 all$`, 'm'));
      // what changed overnight, next to the diff against the parent
      expect(readFileSync(path.join(out, 'nightly-leaf-pkglist-diff-previous.txt'), 'utf8')).toContain(
        `~ ${PROBE} 1.0 -> 2.0 all`,
      );

      // as a CI host whose metadata cache has expired (dnf trusts cached metadata for 48 hours)
      rmSync(dnfSpec.cacheDir, { recursive: true, force: true });
      const u = await runArgv(dnfUpgradeArgv(dnfSpec, []), { timeoutMs: 20 * MIN });
      expect(u.exitCode).toBe(0);
      const installed = await installedImages();
      for (const l of ['base', 'seed'])
        expect(installed[`ost-images-nightly-${l}`], l).toBe(installedBefore[`ost-images-nightly-${l}`]);
      for (const l of ['upgrade', 'leaf'])
        expect(installed[`ost-images-nightly-${l}`], l).not.toBe(installedBefore[`ost-images-nightly-${l}`]);
    },
    40 * MIN,
  );

  it(
    '--offline keeps the recorded state: a newer package upstream rebuilds nothing',
    async () => {
      await addProbe(local, '3.0');
      const r = await ost(['build-images', setFile, '--out', out, '--offline', '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(
        Object.fromEntries(
          (JSON.parse(r.stdout).layers as { layer: string; status: string }[]).map((l) => [
            l.layer,
            l.status,
          ]),
        ),
      ).toEqual({ base: 'cached', seed: 'cached', upgrade: 'cached', leaf: 'cached' });
    },
    10 * MIN,
  );

  it(
    'build-images --with-repo: only the leaf is rebuilt, with the custom packages in, recorded in its manifest',
    async () => {
      const custom = path.join(work, 'with-repo');
      await makeDeb(custom, PROBE, '3.0'); // a newer version of a package the leaf has
      await makeDeb(custom, 'ost-with-repo-probe', '1.0'); // new: installed because it is listed
      const r = await ost(
        [
          'build-images',
          setFile,
          '--out',
          out,
          '--offline',
          '--with-repo',
          custom,
          '--with-install',
          'ost-with-repo-probe',
          '--json',
        ],
        { timeoutMs: 15 * MIN },
      );
      expect(r.code, r.stderr).toBe(0);
      const layers = (JSON.parse(r.stdout) as { layers: { layer: string; status: string }[] }).layers;
      expect(Object.fromEntries(layers.map((l) => [l.layer, l.status]))).toEqual({
        base: 'cached',
        seed: 'cached',
        upgrade: 'cached',
        leaf: 'built',
      });
      const m = manifest('leaf');
      expect(m.custom?.repos).toEqual([custom]);
      expect(m.custom?.packages.map((p) => `${p.name} ${p.version}`)).toEqual([
        'ost-nightly-probe 3.0',
        'ost-with-repo-probe 1.0',
      ]);
      expect(pkglist('leaf')).toMatch(new RegExp(`^${PROBE} 3\\.0 all$`, 'm'));
      expect(pkglist('leaf')).toMatch(/^ost-with-repo-probe 1\.0 all$/m);
    },
    15 * MIN,
  );

  it(
    'the rebuilt leaf boots with the custom package',
    async () => {
      const r = await ost(
        [
          'boot-image',
          '--image',
          path.join(out, 'nightly-leaf.qcow2'),
          '--key',
          sharedKey,
          '--command',
          `cat /usr/share/${PROBE}/version`,
          '--json',
        ],
        { timeoutMs: 15 * MIN },
      );
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).commandOutput.trim()).toBe('3.0');
    },
    15 * MIN,
  );
});
