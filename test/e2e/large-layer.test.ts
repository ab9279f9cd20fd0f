// A layer file bigger than 4 GiB (rpm's old cpio limit) packs and installs: real qemu-img, rpmbuild, dnf.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildPaths, writeManifest } from '../../src/builder/build-dir.js';
import { ensureKeyPair } from '../../src/builder/keypair.js';
import { computeKeys } from '../../src/builder/plan/keys.js';
import { loadImageSet } from '../../src/builder/plan/load.js';
import { verifyInstall } from '../../src/builder/repo/verify-install.js';
import { packSet } from '../../src/builder/rpm/pack.js';
import { run } from '../../src/core/exec.js';
import { isRoot } from './helpers.js';

const GiB = 2 ** 30;

describe.skipIf(!isRoot)('a layer bigger than 4 GiB', () => {
  // made in beforeAll, not while collecting: a skipped describe runs its body but not its hooks
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync('/var/tmp/ost-large-');
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(
    'packs into an RPM and installs with dnf',
    async () => {
      const out = path.join(dir, 'out');
      const paths = new BuildPaths(out, 'big');
      await run('mkdir', ['-p', out]);
      // preallocated metadata makes a sparse file whose length is the virtual size
      const image = paths.image('base');
      await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'preallocation=metadata', image, '4600M']);
      expect(statSync(image).size).toBeGreaterThan(4 * GiB);
      const src = path.join(dir, 'src.qcow2');
      writeFileSync(src, 'placeholder');
      const sha = createHash('sha256').update('placeholder').digest('hex');
      writeFileSync(
        path.join(dir, 'set.yaml'),
        `distro: big\nfamily: deb\nlayers:\n  - name: base\n    import: { source: src.qcow2, sha256: ${sha} }\n`,
      );
      const set = loadImageSet(path.join(dir, 'set.yaml'));
      const { publicKey } = await ensureKeyPair(paths);
      const keys = await computeKeys(set, { publicKey });
      writeFileSync(paths.pkglist('base'), 'bash 5.2 amd64\n');
      await writeManifest(paths, {
        distro: 'big',
        layer: 'base',
        key: keys.get('base') as string,
        buildId: 'f0e1d2c3-0000-4000-8000-000000000001',
        file: 'big-base.qcow2',
        builtAt: new Date().toISOString(),
        durationMs: 0,
        virtualSize: 4600 * 2 ** 20,
        allocatedBytes: 0,
        packages: 1,
        builder: 'test',
      });
      const [rpm] = await packSet(set, { out });
      expect(rpm?.name).toBe('ost-images-big-base');
      const size = await run('rpm', ['-qp', '--nosignature', '--qf', '%{LONGSIZE}', rpm?.file as string]);
      expect(Number(size.stdout)).toBeGreaterThan(4 * GiB);
      const res = await verifyInstall(set, [rpm as NonNullable<typeof rpm>], {
        work: path.join(dir, 'verify'),
        keep: true,
      });
      expect(res.installed).toEqual(['ost-images-big-base']);
      const installed = path.join(dir, 'verify/root/usr/share/ost-images/big-base.qcow2');
      expect(statSync(installed).size).toBe(statSync(image).size);
      expect((await run('qemu-img', ['check', '-q', installed], { allowFailure: true })).exitCode).toBe(0);
    },
    30 * 60_000,
  );
});
