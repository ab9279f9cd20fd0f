// Custom layers without a guest: repositories staged with the real dpkg-deb, rpm and createrepo_c, the keys,
// the supplied-nothing check, the guest argv for both families (the rpm path has no image to run on here),
// the guest's package query, and the layer cache's gc.
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { LayerManifest } from '../../src/builder/build-dir.js';
import { appliedPackages } from '../../src/builder/custom/applied.js';
import { customBaseOf, familyOfName } from '../../src/builder/custom/base.js';
import {
  type CustomBase,
  type CustomLayerInfo,
  checkSupplied,
  customLayerKey,
  isAffected,
} from '../../src/builder/custom/custom-layer.js';
import { gcLayers, listLayers } from '../../src/builder/custom/layer-cache.js';
import { type CustomRepo, parsePackagesIndex, stageCustomRepos } from '../../src/builder/custom/repos.js';
import { checkWithRepoBuild, withCustomRepos } from '../../src/builder/custom/with-repo.js';
import { diffPackages, formatDiff, PACKAGE_QUERY } from '../../src/builder/pkglist.js';
import { computeKeys } from '../../src/builder/plan/keys.js';
import { loadImageSet } from '../../src/builder/plan/load.js';
import { readRepo } from '../../src/builder/repo/metadata.js';
import { customPackageSteps, OST_UPGRADE_EXCLUDES } from '../../src/tools/guest-steps.js';
import { makeDeb } from '../helpers/debs.js';
import { tinyLayerRpm } from '../helpers/rpms.js';
import { tempTree } from '../helpers/sets.js';

const dir = mkdtempSync(path.join(tmpdir(), 'ost-custom-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const base = (packages?: [string, string][]): CustomBase => ({
  ref: 'debian12-host-installed',
  file: '/usr/share/ost-images/debian12-host-installed.qcow2',
  family: 'deb',
  buildId: 'b1',
  packages: packages?.map(([name, version]) => ({ name, version, arch: 'amd64' })),
});
const repo = (name: string, pkgs: [string, string, string?][]): CustomRepo => ({
  name,
  source: `/src/${name}`,
  packages: pkgs.map(([n, v, sha]) => ({ name: n, version: v, arch: 'all', sha256: sha ?? `sha-${n}-${v}` })),
});

describe('custom repositories', () => {
  it('stages a folder of .debs (subfolders too) into a flat apt repo, leaving the folder as it was', async () => {
    const src = path.join(dir, 'debs');
    await makeDeb(src, 'less', '99:1-ost1');
    await makeDeb(path.join(src, 'sub'), 'ost-probe', '1.0');
    const before = readdirSync(src).sort();
    const [r] = await stageCustomRepos([src], 'deb', path.join(dir, 'stage-deb'));
    expect(r?.name).toBe('custom1');
    expect(r?.packages.map((p) => [p.name, p.version, p.arch])).toEqual([
      ['less', '99:1-ost1', 'all'],
      ['ost-probe', '1.0', 'all'],
    ]);
    expect(r?.packages.every((p) => /^[0-9a-f]{64}$/.test(p.sha256))).toBe(true);
    expect(readdirSync(src).sort()).toEqual(before);
    const index = readFileSync(path.join(r?.stagedDir as string, 'Packages'), 'utf8');
    expect(parsePackagesIndex(index)).toEqual(r?.packages);
    expect(index).toContain('Filename: ./less_1-ost1_all.deb');
  });

  it('stages a folder of .rpms with createrepo_c; its primary.xml lists what rpm -qp read', async () => {
    const src = path.join(dir, 'rpms');
    mkdirSync(src);
    mkdirSync(path.join(dir, 'rpmbuild'));
    const a = await tinyLayerRpm(path.join(dir, 'rpmbuild'), {
      distro: 'd',
      layer: 'a',
      release: '7',
      buildId: 'x',
    });
    writeFileSync(path.join(src, path.basename(a.file)), readFileSync(a.file));
    const [r] = await stageCustomRepos([src], 'rpm', path.join(dir, 'stage-rpm'));
    expect(r?.packages.map((p) => [p.name, p.version, p.arch])).toEqual([
      ['ost-images-d-a', '1-7', 'noarch'],
    ]);
    const staged = r?.stagedDir as string;
    expect(readFileSync(path.join(staged, 'repodata/repomd.xml'), 'utf8')).toMatch(/primary\.xml\.gz/);
    // what createrepo_c wrote, read back as a URL repo is read
    const primary = await readRepo(staged);
    expect(
      primary.map((p) => ({
        name: p.name,
        version: `${p.version}-${p.release}`,
        arch: p.arch,
        sha256: p.sha256,
      })),
    ).toEqual(r?.packages);
  });

  it('refuses a missing folder, a folder of the other family, and an empty one, naming the fix', async () => {
    await expect(stageCustomRepos([path.join(dir, 'nope')], 'deb', path.join(dir, 's1'))).rejects.toThrow(
      /--custom-repo .*nope: no such folder/,
    );
    await expect(stageCustomRepos([path.join(dir, 'rpms')], 'deb', path.join(dir, 's2'))).rejects.toThrow(
      /no \.deb files in it \(it has 1 \.rpm files, for rpm-based images\)/,
    );
    mkdirSync(path.join(dir, 'empty'));
    await expect(stageCustomRepos([path.join(dir, 'empty')], 'deb', path.join(dir, 's3'))).rejects.toThrow(
      /no \.deb files in it$/m,
    );
  });
});

describe('custom layer keys and checks', () => {
  it('keys on the image build, the package checksums and the options, not on where the repo is', () => {
    const r = [repo('custom1', [['less', '2']])];
    const k = customLayerKey(base(), r, { install: [], enabled: true });
    expect(
      customLayerKey(base(), [{ ...(r[0] as CustomRepo), source: 'http://elsewhere/' }], {
        install: [],
        enabled: true,
      }),
    ).toBe(k);
    expect(customLayerKey({ ...base(), buildId: 'b2' }, r, { install: [], enabled: true })).not.toBe(k);
    expect(
      customLayerKey(base(), [repo('custom1', [['less', '2', 'other-sha']])], { install: [], enabled: true }),
    ).not.toBe(k);
    expect(customLayerKey(base(), r, { install: ['x'], enabled: true })).not.toBe(k);
    expect(customLayerKey(base(), r, { install: [], enabled: false })).not.toBe(k);
  });

  it('builds a layer only for images that have a package of the repos (or when something is installed)', () => {
    const r = [repo('custom1', [['vdsm', '2']])];
    expect(isAffected(base([['less', '1']]), r, [])).toBe(false);
    expect(isAffected(base([['vdsm', '1']]), r, [])).toBe(true);
    expect(isAffected(base([['less', '1']]), r, ['vdsm'])).toBe(true);
    expect(isAffected(base(), r, [])).toBe(true); // no package list: build and see
  });

  it('names the packages a layer runs at the repos versions, and each repo that supplied nothing', () => {
    const up = repo('custom1', [['less', '2']]);
    const lower = repo('custom2', [['less', '0.5']]);
    const nobody = repo('custom3', [['ost-nobody', '1']]);
    const after = [
      { name: 'less', version: '2', arch: 'amd64' },
      { name: 'bash', version: '5', arch: 'amd64' },
    ];
    expect(appliedPackages([up, lower], after)).toEqual([
      { name: 'less', version: '2', arch: 'amd64', repo: 'custom1' },
    ]);
    const b = base([['less', '1']]);
    const layer = { packages: appliedPackages([up], after) } as CustomLayerInfo;
    expect(checkSupplied([{ base: b, layer }], [up])).toEqual([]);
    const none = { packages: [] as CustomLayerInfo['packages'] } as CustomLayerInfo;
    expect(checkSupplied([{ base: b, layer: none }], [lower, nobody])).toEqual([
      '/src/custom2 supplied nothing to debian12-host-installed: it offers less 0.5; the image keeps less 1'.replace(
        /^/,
        'custom repo ',
      ),
      'custom repo /src/custom3 supplied nothing: none of its packages (ost-nobody) is installed in debian12-host-installed',
    ]);
  });

  it('reads an installed image: build id and family from its manifest, packages from its list', async () => {
    const d = path.join(dir, 'images');
    mkdirSync(d);
    writeFileSync(
      path.join(d, 'el9stream-host-installed.json'),
      JSON.stringify({ distro: 'el9stream', buildId: 'u-1' }),
    );
    writeFileSync(path.join(d, 'el9stream-host-installed-pkglist.txt'), 'vdsm 4.50-1 x86_64\n');
    writeFileSync(path.join(d, 'el9stream-host-installed.qcow2'), '');
    const b = await customBaseOf('el9stream-host-installed', [
      path.join(d, 'el9stream-host-installed.qcow2'),
    ]);
    expect([b.buildId, b.family, b.packages]).toEqual([
      'u-1',
      'rpm',
      [{ name: 'vdsm', version: '4.50-1', arch: 'x86_64' }],
    ]);
    writeFileSync(path.join(d, 'plain.qcow2'), '');
    const p = await customBaseOf('/x/plain.qcow2', [path.join(d, 'plain.qcow2')], {
      name: 'n',
      version: '1',
      release: '2',
    });
    expect([p.buildId, p.packages]).toEqual(['n-1-2', undefined]);
    expect([
      familyOfName('debian12'),
      familyOfName('ubuntu22.04-base.qcow2'),
      familyOfName('el9stream'),
    ]).toEqual(['deb', 'deb', 'rpm']);
  });

  it('diffs an upgrade that changes the arch (amd64 -> all) as an upgrade', () => {
    const d = diffPackages(
      [{ name: 'less', version: '1', arch: 'amd64' }],
      [{ name: 'less', version: '2', arch: 'all' }],
    );
    expect(formatDiff(d)).toBe('~ less 1 -> 2 amd64->all\n');
  });
});

describe('custom layer guest commands', () => {
  it('deb: apt from the custom repos only (the image own sources left out), upgrade, install, repos left configured', () => {
    const steps = customPackageSteps('deb', {
      repos: [
        { name: 'custom1', hostDir: '/stage/custom1' },
        { name: 'custom2', url: 'http://repo.example/x' },
      ],
      install: ['ost-probe'],
      enabled: false,
    });
    expect(steps[0]).toEqual({ kind: 'copy-in', from: '/stage/custom1', toDir: '/var/lib/ost-custom' });
    const cmd = (steps[1] as { command: string }).command;
    expect(cmd).toContain(
      'apt-get -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts=/etc/ost-custom-apt',
    );
    expect(cmd).toContain('URIs: file:/var/lib/ost-custom/custom1');
    expect(cmd).toContain('URIs: http://repo.example/x');
    // one apt run upgrades and installs the listed new packages; no fsync per file
    expect(cmd).toMatch(
      /--force-unsafe-io -y upgrade --with-new-pkgs 'ost-probe' && rm -rf \/etc\/ost-custom-apt$/,
    );
    expect(cmd.match(/apt-get /g)).toHaveLength(2); // update, upgrade
    expect((steps[2] as { command: string }).command).toMatch(
      /Enabled: no\n' > \/etc\/apt\/sources\.list\.d\/ost-custom1\.sources$/,
    );
  });

  it('rpm: dnf with only the custom repos enabled, no GPG check, no versionlock, OST excludes; repo files with enabled=0|1', () => {
    const steps = customPackageSteps('rpm', {
      repos: [{ name: 'custom1', hostDir: '/stage/custom1' }],
      install: ['vdsm-hook-x'],
      enabled: true,
    });
    expect(steps.map((s) => s.kind)).toEqual(['copy-in', 'run', 'run']);
    const repoFile = (steps[1] as { command: string }).command;
    expect(repoFile).toContain('baseurl=file:///var/lib/ost-custom/custom1');
    expect(repoFile).toContain('enabled=1');
    expect(repoFile).toContain('gpgcheck=0');
    expect(repoFile).toMatch(/> \/etc\/yum\.repos\.d\/ost-custom1\.repo$/);
    const dnf = (steps[2] as { command: string }).command;
    const prefix =
      "dnf -y --nogpgcheck --disableplugin=versionlock --disablerepo='*' --enablerepo=ost-custom1";
    expect(dnf).toBe(
      `${prefix} upgrade ${OST_UPGRADE_EXCLUDES.map((x) => `-x ${x}`).join(' ')} && ${prefix} install 'vdsm-hook-x'`,
    );
    // the layer lists an EL guest's packages with the builder's own query and parser
    expect(PACKAGE_QUERY.rpm.command).toBe(
      "rpm -qa --qf '%{NAME}\\t%{EPOCH}:%{VERSION}-%{RELEASE}\\t%{ARCH}\\n'",
    );
    expect(
      PACKAGE_QUERY.rpm.parse(
        'vdsm\t0:4.50.0-1.el9\tx86_64\nbash\t(none):5.1.8-9.el9\tx86_64\ngpg-pubkey\t(none):1-2\t(none)\n',
      ),
    ).toEqual([
      { name: 'bash', version: '5.1.8-9.el9', arch: 'x86_64' },
      { name: 'vdsm', version: '0:4.50.0-1.el9', arch: 'x86_64' },
    ]);
  });
});

describe('build-images --with-repo', () => {
  const setYaml = [
    'distro: debian12',
    'family: deb',
    'layers:',
    '  - name: base',
    '    debootstrap: { suite: bookworm, mirror: "http://deb.debian.org/debian" }',
    '  - { name: engine-installed, parent: base, steps: [ { run: "true" } ] }',
    '  - { name: host-installed, parent: base, steps: [ { run: "true" } ] }',
    '',
  ].join('\n');

  it('adds the custom steps to the leaves only; their keys follow the packages, the base stays cached', async () => {
    const set = loadImageSet(path.join(tempTree({ 'set.yaml': setYaml }), 'set.yaml'));
    const src = path.join(dir, 'with-repo');
    await makeDeb(src, 'less', '99:1-ost1');
    const a = await withCustomRepos(
      set,
      { sources: [src], install: [], enabled: true },
      path.join(dir, 'wr-a'),
    );
    expect(a.set.layers.map((l) => [l.name, l.steps.length, l.custom?.repos[0]?.packages.length])).toEqual([
      ['base', 0, undefined],
      ['engine-installed', 4, 1],
      ['host-installed', 4, 1],
    ]);
    const plain = await computeKeys(set, { publicKey: 'k' });
    const ka = await computeKeys(a.set, { publicKey: 'k' });
    expect(ka.get('base')).toBe(plain.get('base'));
    expect(ka.get('host-installed')).not.toBe(plain.get('host-installed'));
    // staged elsewhere, same packages: same keys; a changed package: new leaf keys
    const again = await withCustomRepos(
      set,
      { sources: [src], install: [], enabled: true },
      path.join(dir, 'wr-b'),
    );
    expect(await computeKeys(again.set, { publicKey: 'k' })).toEqual(ka);
    await makeDeb(src, 'less', '99:2-ost1');
    const b = await withCustomRepos(
      set,
      { sources: [src], install: [], enabled: true },
      path.join(dir, 'wr-c'),
    );
    const kb = await computeKeys(b.set, { publicKey: 'k' });
    expect([kb.get('base'), kb.get('host-installed') === ka.get('host-installed')]).toEqual([
      plain.get('base'),
      false,
    ]);
  });

  it('fails a build to which a repo supplied nothing, naming what the leaves kept', async () => {
    const set = loadImageSet(path.join(tempTree({ 'set.yaml': setYaml }), 'set.yaml'));
    const r = repo('custom1', [['less', '0.5']]);
    const m = (packages: { name: string; version: string; arch: string; repo: string }[]) =>
      ({ custom: { repos: [r.source], packages } }) as unknown as LayerManifest;
    const lists = new Map([
      ['engine-installed', [{ name: 'less', version: '590', arch: 'amd64' }]],
      ['host-installed', [{ name: 'less', version: '590', arch: 'amd64' }]],
    ]);
    const none = new Map([
      ['engine-installed', m([])],
      ['host-installed', m([])],
    ]);
    expect(() => checkWithRepoBuild(set, [r], none, lists)).toThrow(
      '--with-repo /src/custom1 supplied nothing to engine-installed, host-installed: it offers less 0.5; the leaves keep less 590 (engine-installed), less 590 (host-installed)',
    );
    const one = new Map([
      ...none,
      ['host-installed', m([{ name: 'less', version: '0.5', arch: 'all', repo: 'custom1' }])],
    ]);
    expect(() => checkWithRepoBuild(set, [r], one, lists)).not.toThrow();
  });
});

describe('layer cache gc', () => {
  it('keeps layers in use and recently used ones, removes the others and dead builds', async () => {
    const cache = path.join(dir, 'cache');
    const layer = (key: string, usedDaysAgo: number) => {
      const d = path.join(cache, key.repeat(32));
      mkdirSync(d, { recursive: true });
      writeFileSync(path.join(d, 'layer.qcow2'), 'x');
      writeFileSync(
        path.join(d, 'layer.json'),
        JSON.stringify({ format: 'custom-1', image: `img-${key}`, packages: [], repos: [] }),
      );
      writeFileSync(path.join(d, 'used'), '');
      const t = new Date(Date.now() - usedDaysAgo * 86_400_000);
      utimesSync(path.join(d, 'used'), t, t);
      return path.join(d, 'layer.qcow2');
    };
    const inUse = layer('a', 30);
    layer('b', 30);
    layer('c', 2);
    layer('d', 0);
    mkdirSync(path.join(cache, '.tmp-0123456789abcdef-999999-abc123')); // a build whose process is gone
    mkdirSync(path.join(cache, `.stage-${process.pid}-abc123`)); // ours: alive
    writeFileSync(path.join(cache, `${'e'.repeat(32)}.failed.log`), 'x');
    const monthAgo = new Date(Date.now() - 30 * 86_400_000);
    utimesSync(path.join(cache, `${'e'.repeat(32)}.failed.log`), monthAgo, monthAgo);
    expect((await listLayers(cache)).map((l) => l.info?.image)).toEqual(['img-a', 'img-b', 'img-c', 'img-d']);
    const r = await gcLayers(cache, new Set([inUse]), 7);
    expect(r.removed.map((l) => l.info?.image)).toEqual(['img-b']);
    expect(r.kept.map((k) => [k.layer.info?.image, k.why])).toEqual([
      ['img-a', 'in use by an environment'],
      ['img-c', 'used in the last 7 days'],
      ['img-d', 'used in the last minutes'],
    ]);
    expect(r.leftovers.sort()).toEqual(
      [
        path.join(cache, '.tmp-0123456789abcdef-999999-abc123'),
        path.join(cache, `${'e'.repeat(32)}.failed.log`),
      ].sort(),
    );
    expect(readdirSync(cache).filter((f) => f.startsWith('.'))).toEqual([`.stage-${process.pid}-abc123`]);
    const again = await gcLayers(cache, new Set(), 0);
    expect(again.removed.map((l) => l.info?.image)).toEqual(['img-a', 'img-c']);
  });
});
