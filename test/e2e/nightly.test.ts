// End-to-end: the nightly pipeline (scripts/nightly-images.sh) on a set whose upgrade layer and leaf install
// from a local flat apt repository (tiny .debs made here, copied into the guests): no traffic leaves the
// machine. A night without changes builds and publishes nothing; a newer package in the repository rebuilds
// the upgrade layer and the leaf, not the base; dnf upgrade then downloads only those; --offline rebuilds nothing.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { run } from '../../src/core/exec.js';
import { fileSha256 } from '../../src/core/fsutil.js';
import { dnfInstallArgv, dnfUpgradeArgv, rpmQueryAllArgv } from '../../src/tools/dnf.js';
import { runArgv } from '../../src/tools/run-tool.js';
import { REPO_ROOT } from '../helpers/sets.js';
import { ensureBuilt, isRoot, OST, ost } from './helpers.js';
import { sharedImages } from './shared-images.js';

const MIN = 60_000;
const work = isRoot ? mkdtempSync('/var/tmp/ost-e2e-nightly-') : '/nonexistent';
const local = path.join(work, 'local-apt'); // the flat apt repository the guests install from
const setFile = path.join(work, 'set', 'nightly.yaml');
const out = path.join(work, 'out');
const repo = path.join(work, 'repo');
const root = path.join(work, 'root');
const PROBE = 'ost-nightly-probe';
let sharedKey = '';

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Build PROBE at `version` into the local repository and rewrite its Packages index (all versions). */
async function addProbe(version: string): Promise<void> {
  const pkg = path.join(work, `probe-${version}`);
  mkdirSync(path.join(pkg, 'DEBIAN'), { recursive: true });
  mkdirSync(path.join(pkg, 'usr/share', PROBE), { recursive: true });
  writeFileSync(
    path.join(pkg, 'DEBIAN/control'),
    `Package: ${PROBE}\nVersion: ${version}\nArchitecture: all\nMaintainer: ost e2e <ost@example.invalid>\n` +
      'Description: probe package of the ost nightly e2e test\n',
  );
  writeFileSync(path.join(pkg, 'usr/share', PROBE, 'version'), `${version}\n`);
  mkdirSync(local, { recursive: true });
  await run('dpkg-deb', [
    '--root-owner-group',
    '--build',
    pkg,
    path.join(local, `${PROBE}_${version}_all.deb`),
  ]);
  rmSync(pkg, { recursive: true, force: true });
  const stanzas: string[] = [];
  for (const deb of readdirSync(local)
    .filter((f) => f.endsWith('.deb'))
    .sort()) {
    const file = path.join(local, deb);
    const fields = (await run('dpkg-deb', ['-f', file])).stdout.trimEnd();
    const sha = createHash('sha256').update(readFileSync(file)).digest('hex');
    stanzas.push(`${fields}\nFilename: ./${deb}\nSize: ${statSync(file).size}\nSHA256: ${sha}\n`);
  }
  writeFileSync(path.join(local, 'Packages'), `${stanzas.join('\n')}`);
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

describe.skipIf(!isRoot)('the nightly pipeline on a local package repository (real tools)', () => {
  beforeAll(async () => {
    ensureBuilt();
    const shared = await sharedImages();
    sharedKey = path.join(shared.out, 'debian12_id_rsa');
    const base = path.join(shared.out, 'debian12-base.qcow2');
    await addProbe('1.0');
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
            name: 'upgrade',
            description: 'updates from the local repository',
            parent: 'base',
            repos: [{ name: 'local', url: `file:${local}`, suite: './', trusted: true }],
            steps: [
              // the guests use the local repository only: no traffic leaves the machine
              { run: 'rm -f /etc/apt/sources.list' },
              { upgrade: true },
            ],
          },
          { name: 'leaf', parent: 'upgrade', steps: [{ install: [PROBE] }] },
        ],
      }),
    );
  }, 120 * MIN);

  it(
    'first night: builds and publishes the set; the manifest records the repository state',
    async () => {
      const r = await nightly();
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/nightly nightly: done in \d+s/);
      const up = manifest('upgrade');
      expect(up.upstream).toEqual([
        expect.objectContaining({
          name: 'local',
          index: `file://${local}/Packages`,
          sha256: await fileSha256(path.join(local, 'Packages')),
        }),
      ]);
      expect(pkglist('leaf')).toMatch(new RegExp(`^${PROBE} 1\\.0 all$`, 'm'));
      expect(pkglist('upgrade')).not.toContain(PROBE);
      // the RPM carries it too: rpm -qi names the index it was built from
      const rpm = readdirSync(path.join(repo, 'Packages')).find((f) =>
        f.startsWith('ost-images-nightly-upgrade-'),
      );
      const qi = await run('rpm', ['-qip', path.join(repo, 'Packages', rpm as string)]);
      expect(qi.stdout).toContain(`file://${local}/Packages sha256 ${up.upstream?.[0]?.sha256}`);
      mkdirSync(root, { mode: 0o755 });
      await runArgv(dnfInstallArgv(dnfSpec, ['ost-images-nightly-leaf']), { timeoutMs: 20 * MIN });
      expect(Object.keys(await installedImages()).sort()).toEqual([
        'ost-images-nightly-base',
        'ost-images-nightly-leaf',
        'ost-images-nightly-upgrade',
      ]);
    },
    40 * MIN,
  );

  it(
    'a night without changes builds nothing and publishes nothing',
    async () => {
      const before = { md: repomd(), ids: ['base', 'upgrade', 'leaf'].map((l) => manifest(l).buildId) };
      const r = await nightly();
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('0 built');
      expect(r.stdout).toContain('nothing new to publish');
      expect(repomd()).toBe(before.md);
      expect(['base', 'upgrade', 'leaf'].map((l) => manifest(l).buildId)).toEqual(before.ids);
    },
    10 * MIN,
  );

  it(
    'a newer package rebuilds upgrade and leaf (not base), says why, and dnf upgrade fetches only those two',
    async () => {
      const before = {
        ids: Object.fromEntries(['base', 'upgrade', 'leaf'].map((l) => [l, manifest(l).buildId])),
      };
      const installedBefore = await installedImages();
      await addProbe('2.0');
      const plan = await ost(['build-images', setFile, '--out', out, '--dry-run', '--json']);
      expect(plan.code, plan.stderr).toBe(0);
      const reasons = Object.fromEntries(
        (JSON.parse(plan.stdout).plan as { layer: string; action: string; reason: string }[]).map((e) => [
          e.layer,
          `${e.action}: ${e.reason}`,
        ]),
      );
      expect(reasons.base).toBe('cached: up to date');
      expect(reasons.upgrade).toMatch(
        /^build: upstream: local Packages changed \d{4}-\d\d-\d\d → \d{4}-\d\d-\d\d$/,
      );
      expect(reasons.leaf).toMatch(/^build: (upstream: local Packages changed|parent upgrade is rebuilt)/);

      const r = await nightly();
      expect(r.code, r.stderr).toBe(0);
      expect(manifest('base').buildId).toBe(before.ids.base);
      expect(manifest('upgrade').buildId).not.toBe(before.ids.upgrade);
      expect(manifest('leaf').buildId).not.toBe(before.ids.leaf);
      expect(manifest('upgrade').upstream?.[0]?.sha256).toBe(await fileSha256(path.join(local, 'Packages')));
      expect(pkglist('leaf')).toMatch(new RegExp(`^${PROBE} 2\\.0 all$`, 'm'));
      // what changed overnight, next to the diff against the parent
      expect(readFileSync(path.join(out, 'nightly-leaf-pkglist-diff-previous.txt'), 'utf8')).toMatch(
        new RegExp(`${PROBE}.*1\\.0.*2\\.0`),
      );

      const u = await runArgv(dnfUpgradeArgv({ ...dnfSpec }, []), { timeoutMs: 20 * MIN });
      expect(u.exitCode).toBe(0);
      const after = await installedImages();
      expect(after['ost-images-nightly-base']).toBe(installedBefore['ost-images-nightly-base']);
      expect(after['ost-images-nightly-upgrade']).not.toBe(installedBefore['ost-images-nightly-upgrade']);
      expect(after['ost-images-nightly-leaf']).not.toBe(installedBefore['ost-images-nightly-leaf']);
    },
    40 * MIN,
  );

  it(
    '--offline keeps the recorded state: a newer package upstream rebuilds nothing',
    async () => {
      await addProbe('3.0');
      const r = await ost(['build-images', setFile, '--out', out, '--offline', '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(
        Object.fromEntries(
          (JSON.parse(r.stdout).layers as { layer: string; status: string }[]).map((l) => [
            l.layer,
            l.status,
          ]),
        ),
      ).toEqual({ base: 'cached', upgrade: 'cached', leaf: 'cached' });
    },
    10 * MIN,
  );

  it(
    'the rebuilt leaf boots with the new package',
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
      expect(JSON.parse(r.stdout).commandOutput.trim()).toBe('2.0');
    },
    15 * MIN,
  );
});
