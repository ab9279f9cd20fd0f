import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findLayer, usableHit } from '../../src/builder/repo/cache-repo.js';
import { parsePrimary } from '../../src/builder/repo/metadata.js';
import { filesToKeep, type SetRecord } from '../../src/builder/repo/publish.js';
import { assertNoScripts } from '../../src/builder/rpm/rpm-file.js';
import { payloadProblem, releaseFor, renderSpec } from '../../src/builder/rpm/spec.js';
import { run } from '../../src/core/exec.js';
import { createrepoArgv } from '../../src/tools/createrepo.js';
import { rpmPackageScriptsArgv } from '../../src/tools/rpm.js';
import { parseDeps, rpmbuildArgv, rpmsignArgv } from '../../src/tools/rpmbuild.js';
import { REPO_ROOT, tempTree } from '../helpers/sets.js';

describe('layer RPM spec', () => {
  const spec = renderSpec({
    name: 'ost-images-debian12-engine-installed',
    version: '1',
    release: '202611251945',
    summary: 's',
    description: 'd',
    provides: ['ost-images-layer(debian12-engine-installed) = abc'],
    requires: ['ost-images-debian12-base = 1-202611251900'],
    payload: 'w3T0.zstdio',
    files: [{ src: "/b/it's.qcow2", name: 'debian12-engine-installed.qcow2', mode: '0444' }],
  });
  it('pins the parent exactly, provides the key, installs 0444 under a relocatable prefix', () => {
    expect(spec).toContain('Requires: ost-images-debian12-base = 1-202611251900\n');
    expect(spec).toContain('Provides: ost-images-layer(debian12-engine-installed) = abc\n');
    expect(spec).toContain('Prefix: /usr/share/ost-images\n');
    expect(spec).toContain('%attr(0444,root,root) /usr/share/ost-images/debian12-engine-installed.qcow2\n');
    expect(spec).toContain('%global _binary_payload w3T0.zstdio\n');
    expect(spec).toContain('AutoReqProv: no\n');
  });
  it('hard-links sources with shell-safe quoting', () => {
    expect(spec).toContain(
      `ln -f '/b/it'\\''s.qcow2' "%{buildroot}/usr/share/ost-images/"'debian12-engine-installed.qcow2'`,
    );
  });
  it('derives the release from the build time in UTC and validates payloads', () => {
    expect(releaseFor('2026-11-25T19:45:59.999Z')).toBe('202611251945');
    expect(payloadProblem('w9T4.xzdio')).toBeUndefined();
    expect(payloadProblem('zstd')).toMatch(/bad payload zstd/);
  });
});

describe('set-file text in a spec (rpm expands macros and reads sections)', () => {
  const hostile = (dir: string) => ({
    name: 'ost-images-debian12-leaf',
    version: '1',
    release: '202611271200',
    summary: `leaf %(touch ${dir}/summary-ran)`,
    description: [
      `runs %(touch ${dir}/description-ran) and %{_bindir}`,
      '%post',
      `touch ${dir}/post-ran`,
      '  %files',
      '100% data',
    ].join('\n'),
    provides: ['ost-images-layer(debian12-leaf) = k'],
    requires: [],
    payload: 'w1T0.zstdio',
    files: [{ src: path.join(dir, 'payload %{x}.txt'), name: 'leaf.txt', mode: '0644' }],
  });

  it('keeps every % and every line literal: rpmbuild runs nothing, the RPM has no scriptlets', async () => {
    const dir = tempTree({ 'payload %{x}.txt': 'data\n' });
    const spec = path.join(dir, 'leaf.spec');
    writeFileSync(spec, renderSpec(hostile(dir)));
    await run('rpmbuild', rpmbuildArgv(spec, path.join(dir, 'top')).slice(1));
    const rpm = path.join(dir, 'top/RPMS/noarch/ost-images-debian12-leaf-1-202611271200.noarch.rpm');
    for (const f of ['summary-ran', 'description-ran', 'post-ran'])
      expect(existsSync(path.join(dir, f))).toBe(false);
    expect((await run('rpm', rpmPackageScriptsArgv(rpm).slice(1))).stdout).toBe('');
    await expect(assertNoScripts(rpm)).resolves.toBeUndefined();
    const q = (tag: string) => run('rpm', ['-qp', '--qf', `%{${tag}}`, rpm]).then((r) => r.stdout);
    expect(await q('SUMMARY')).toBe(`leaf %(touch ${dir}/summary-ran)`);
    // a line starting with % is indented by one space, or rpm would take it for a section
    expect((await q('DESCRIPTION')).split('\n')).toEqual([
      `runs %(touch ${dir}/description-ran) and %{_bindir}`,
      ' %post',
      `touch ${dir}/post-ran`,
      '   %files',
      '100% data',
    ]);
    expect((await run('rpm', ['-qpl', rpm])).stdout.trim()).toBe('/usr/share/ost-images/leaf.txt');
  }, 60_000);

  it('refuses a newline in a one-line tag, and an RPM that has a scriptlet', async () => {
    expect(() => renderSpec({ ...hostile('/x'), summary: 'a\n%post' })).toThrow(
      /RPM spec: the Summary .* holds a line break/,
    );
    // rpm expands a %files path twice and globs it: only plain names
    expect(() =>
      renderSpec({ ...hostile('/x'), files: [{ src: '/x/a', name: 'a-%%(id)', mode: '0644' }] }),
    ).toThrow(/RPM file name "a-%%\(id\)": only letters/);
    const dir = tempTree({
      'bad.spec':
        'Name: bad\nVersion: 1\nRelease: 1\nSummary: s\nLicense: x\nBuildArch: noarch\n%description\nd\n%post\ntrue\n%files\n',
    });
    await run('rpmbuild', rpmbuildArgv(path.join(dir, 'bad.spec'), path.join(dir, 'top')).slice(1));
    await expect(assertNoScripts(path.join(dir, 'top/RPMS/noarch/bad-1-1.noarch.rpm'))).rejects.toThrow(
      /bad-1-1\.noarch\.rpm contains scriptlets/,
    );
  }, 60_000);
});

describe('tool argv', () => {
  it('createrepo_c reuses old metadata and writes gzip xml', () => {
    expect(
      createrepoArgv({
        repo: '/r',
        outputDir: '/r/.ost/gen-1',
        updateFrom: '/r/repodata',
        excludes: ['x.rpm'],
      }),
    ).toEqual([
      'createrepo_c',
      '--quiet',
      '--general-compress-type',
      'gz',
      '--no-database',
      '--outputdir',
      '/r/.ost/gen-1',
      '--update',
      '--update-md-path',
      '/r/repodata',
      '--excludes',
      'x.rpm',
      '/r',
    ]);
  });
  it('rpmsign names the key and the gpg binary', () => {
    expect(rpmsignArgv('ABCD', ['/a.rpm'], '/usr/bin/gpg')).toEqual([
      'rpmsign',
      '--addsign',
      '--define',
      '_gpg_name ABCD',
      '--define',
      '__gpg /usr/bin/gpg',
      '/a.rpm',
    ]);
  });
  it('parses rpm dependency lines', () => {
    expect(
      parseDeps('ost-images-debian12-base = 1-2026\nrpmlib(CompressedFileNames) <= 3.0.4-1\nfoo\n'),
    ).toEqual([
      { name: 'ost-images-debian12-base', flags: '=', version: '1-2026' },
      { name: 'rpmlib(CompressedFileNames)', flags: '<=', version: '3.0.4-1' },
      { name: 'foo' },
    ]);
  });
});

describe('repository metadata (captured createrepo_c 0.20 output)', () => {
  const pkgs = parsePrimary(readFileSync(path.join(REPO_ROOT, 'test/fixtures/repo/primary.xml'), 'utf8'));
  it('reads names, versions, locations, checksums and provides', () => {
    expect(pkgs).toHaveLength(1);
    expect(pkgs[0]).toMatchObject({
      name: 'ost-images-t-base',
      version: '1',
      release: '202611251945',
      location: 'Packages/ost-images-t-base-1-202611251945.noarch.rpm',
      sha256: '2abdfacc85907b9f4122c1900abddda6b81ad3d824d5b4d91146b06922b9460f',
    });
    expect(pkgs[0]?.provides).toContainEqual({ name: 'ost-images-layer(t-base)', version: 'abcdef0123' });
  });
  it('finds a layer by key and only uses it on the parent build it was made on', () => {
    expect(findLayer(pkgs, 't', 'base', 'abcdef0123')).toHaveLength(1);
    expect(findLayer(pkgs, 't', 'base', 'other')).toHaveLength(0);
    const hits = [
      { pkg: pkgs[0] as never, buildId: 'b1', parentBuildId: 'p1' },
      { pkg: pkgs[0] as never, buildId: 'b2', parentBuildId: 'p2' },
    ];
    expect(usableHit(hits, 'p2')?.buildId).toBe('b2');
    expect(usableHit(hits, 'p3')).toBeUndefined();
  });
});

describe('retention', () => {
  const pkg = (name: string, evr: string, requires?: string | string[]): SetRecord['packages'][number] => ({
    name,
    evr,
    file: `${name}-${evr}.noarch.rpm`,
    layer: name,
    key: 'k',
    squashed: false,
    requires,
  });
  const set = (...packages: ReturnType<typeof pkg>[]): SetRecord => ({
    distro: 'd',
    publishedAt: '',
    packages,
  });
  const records = [
    set(pkg('base', '1-1'), pkg('leaf', '1-1', 'base = 1-1')),
    set(pkg('base', '1-2'), pkg('leaf', '1-2', 'base = 1-2')),
    set(pkg('base', '1-2'), pkg('leaf', '1-3', 'base = 1-2')),
  ];
  it('keeps every file of the newest N sets', () => {
    expect([...filesToKeep(records, 1)].sort()).toEqual(['base-1-2.noarch.rpm', 'leaf-1-3.noarch.rpm']);
    expect([...filesToKeep(records, 2)].sort()).toEqual([
      'base-1-2.noarch.rpm',
      'leaf-1-2.noarch.rpm',
      'leaf-1-3.noarch.rpm',
    ]);
  });
  it("keeps every layer a kept deployed package pins; a night without one keeps yesterday's and its layers", () => {
    const records = [
      set(
        pkg('base', '1-1'),
        pkg('engine', '1-1', 'base = 1-1'),
        pkg('host', '1-1', 'base = 1-1'),
        pkg('dep', '1-1', ['engine = 1-1', 'host = 1-1']),
      ),
      // the deploy failed: the layers are new, no deployed package
      set(pkg('base', '1-2'), pkg('engine', '1-2', 'base = 1-2'), pkg('host', '1-2', 'base = 1-2')),
    ];
    expect([...filesToKeep(records, 2)].sort()).toEqual([
      'base-1-1.noarch.rpm',
      'base-1-2.noarch.rpm',
      'dep-1-1.noarch.rpm',
      'engine-1-1.noarch.rpm',
      'engine-1-2.noarch.rpm',
      'host-1-1.noarch.rpm',
      'host-1-2.noarch.rpm',
    ]);
    // nights whose deploy failed, more than `keep` of them: the last deployed package and its pins stay
    const dep = { ...pkg('dep', '1-1', ['engine = 1-1', 'host = 1-1']), deployed: true };
    const failing = [
      set(pkg('base', '1-1'), pkg('engine', '1-1', 'base = 1-1'), pkg('host', '1-1', 'base = 1-1'), dep),
      set(pkg('base', '1-2'), pkg('engine', '1-2', 'base = 1-2'), pkg('host', '1-2', 'base = 1-2')),
      set(pkg('base', '1-3'), pkg('engine', '1-3', 'base = 1-3'), pkg('host', '1-3', 'base = 1-3')),
    ];
    const kept = [...filesToKeep(failing, 1)].sort();
    expect(kept).toEqual(
      expect.arrayContaining([
        'dep-1-1.noarch.rpm',
        'engine-1-1.noarch.rpm',
        'host-1-1.noarch.rpm',
        'base-1-1.noarch.rpm',
      ]),
    );
    expect(kept).not.toContain('engine-1-2.noarch.rpm');
    // an old set's deployed package, kept by a newer record naming it, keeps both its pins
    const odd = [records[0] as SetRecord, set(pkg('dep', '1-1', ['engine = 1-1', 'host = 1-1']))];
    expect([...filesToKeep(odd, 1)].sort()).toEqual([
      'base-1-1.noarch.rpm',
      'dep-1-1.noarch.rpm',
      'engine-1-1.noarch.rpm',
      'host-1-1.noarch.rpm',
    ]);
  });

  it('never drops an RPM that a kept RPM requires, even when its own set is gone', () => {
    const odd = [set(pkg('base', '1-1')), set(pkg('leaf', '1-9', 'base = 1-1'))];
    expect([...filesToKeep(odd, 1)].sort()).toEqual(['base-1-1.noarch.rpm', 'leaf-1-9.noarch.rpm']);
  });
});
