import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findLayer, usableHit } from '../../src/builder/repo/cache.js';
import { parsePrimary } from '../../src/builder/repo/metadata.js';
import { filesToKeep, type SetRecord } from '../../src/builder/repo/publish.js';
import { payloadProblem, releaseFor, renderSpec } from '../../src/builder/rpm/spec.js';
import { createrepoArgv } from '../../src/tools/createrepo.js';
import { parseDeps, rpmsignArgv } from '../../src/tools/rpmbuild.js';
import { REPO_ROOT } from '../helpers/sets.js';

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
  const pkg = (name: string, evr: string, requires?: string) => ({
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
  it('never drops an RPM that a kept RPM requires, even when its own set is gone', () => {
    const odd = [set(pkg('base', '1-1')), set(pkg('leaf', '1-9', 'base = 1-1'))];
    expect([...filesToKeep(odd, 1)].sort()).toEqual(['base-1-1.noarch.rpm', 'leaf-1-9.noarch.rpm']);
  });
});
