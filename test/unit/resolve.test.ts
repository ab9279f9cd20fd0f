// resolveImages on real qcow2 chains made with qemu-img in a temp dir, and on an empty rpm root.
import { chmodSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../../src/core/exec.js';
import type { EnvVm } from '../../src/launcher/env/model.js';
import { imageKey, resolveImages } from '../../src/launcher/images/resolve.js';
import { create, createOverlay } from '../../src/tools/qemu-img.js';
import { tinyLayerRpm } from '../helpers/rpms.js';

const root = { name: 'root', uid: 0, gid: 0, groups: [0] };
const vm = (layer: string, squashed = true): EnvVm => ({
  name: 'engine',
  image: { kind: 'package', distro: 'debian12', layer },
  memoryMiB: 512,
  vcpus: 1,
  nics: [{ name: 'eth0', network: 'management' }],
  disks: [],
  deployScripts: [],
  squashed,
});

async function imagesDir(): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ost-resolve-'));
  chmodSync(dir, 0o700);
  await create(path.join(dir, 'debian12-base.qcow2'), '1G');
  await createOverlay(path.join(dir, 'debian12-engine-installed.qcow2'), 'debian12-base.qcow2');
  writeFileSync(path.join(dir, 'debian12_id_rsa'), 'not a real key\n');
  return dir;
}

describe('resolving images', () => {
  it('follows the whole backing chain and finds the key of the set', async () => {
    const dir = await imagesDir();
    const got = await resolveImages([vm('engine-installed')], { imagesDir: dir, qemu: root });
    const img = got.get('debian12-engine-installed');
    expect(img?.chain).toEqual([
      path.join(dir, 'debian12-engine-installed.qcow2'),
      path.join(dir, 'debian12-base.qcow2'),
    ]);
    expect(img?.key).toBe(path.join(dir, 'debian12_id_rsa'));
    expect(img?.virtualSize).toBe(2 ** 30);
    rmSync(dir, { recursive: true });
  });

  it('takes the squashed image where there is one, unless the VM says squashed: false', async () => {
    const dir = await imagesDir();
    const both = [vm('engine-installed'), { ...vm('engine-installed', false), name: 'engine-2' }];
    const before = await resolveImages(both, { imagesDir: dir, qemu: root });
    expect(before.get(imageKey(both[0] as EnvVm))?.ref).toBe('debian12-engine-installed');
    expect(before.get(imageKey(both[0] as EnvVm))?.chain).toHaveLength(2);
    await create(path.join(dir, 'debian12-engine-installed-squashed.qcow2'), '1G');
    const after = await resolveImages(both, { imagesDir: dir, qemu: root });
    expect(after.get(imageKey(both[0] as EnvVm))).toMatchObject({
      ref: 'debian12-engine-installed-squashed',
      chain: [path.join(dir, 'debian12-engine-installed-squashed.qcow2')],
    });
    expect(after.get(imageKey(both[1] as EnvVm))).toMatchObject({
      ref: 'debian12-engine-installed',
      chain: [path.join(dir, 'debian12-engine-installed.qcow2'), path.join(dir, 'debian12-base.qcow2')],
    });
    rmSync(dir, { recursive: true });
  });

  it('takes an installed squashed package of the same build, never one older than the chained layers', async () => {
    const dir = await imagesDir();
    const rpmRoot = mkdtempSync(path.join(tmpdir(), 'ost-rpmroot-'));
    const rpm = (layer: string, release: string, file: string, packageLayer = layer) =>
      tinyLayerRpm(dir, {
        distro: 'debian12',
        layer,
        packageLayer,
        release,
        buildId: `b${release}`,
        file: { src: path.join(dir, file), name: file },
      });
    await create(path.join(dir, 'debian12-engine-installed-squashed.qcow2'), '1G');
    const install = async (...files: string[]) =>
      run('rpm', ['--root', rpmRoot, '-U', '--nodeps', '--replacepkgs', ...files]);
    const rpms = [
      await rpm('base', '202612010000', 'debian12-base.qcow2'),
      await rpm('engine-installed', '202612010000', 'debian12-engine-installed.qcow2'),
      await rpm(
        'engine-installed',
        '202612010000',
        'debian12-engine-installed-squashed.qcow2',
        'engine-installed-squashed',
      ),
    ];
    const key = path.join(dir, 'debian12_id_rsa');
    await install(...rpms.map((r) => r.file));
    const same = await resolveImages([vm('engine-installed')], { root: rpmRoot, qemu: root, key });
    expect(same.get('debian12-engine-installed')).toMatchObject({
      ref: 'debian12-engine-installed-squashed',
      package: { name: 'ost-images-debian12-engine-installed-squashed', release: '202612010000' },
    });
    expect(same.get('debian12-engine-installed')?.note).toBeUndefined();
    // the next night's chained leaf, published without --squash: the squashed one is stale now
    await install((await rpm('engine-installed', '202612020000', 'debian12-engine-installed.qcow2')).file);
    const newer = await resolveImages([vm('engine-installed')], { root: rpmRoot, qemu: root, key });
    expect(newer.get('debian12-engine-installed')).toMatchObject({
      ref: 'debian12-engine-installed',
      package: { name: 'ost-images-debian12-engine-installed', release: '202612020000' },
    });
    expect(newer.get('debian12-engine-installed')?.note).toBe(
      'ost-images-debian12-engine-installed-squashed 1-202612010000 is older than ost-images-debian12-engine-installed 1-202612020000: the chained layers are used (dnf upgrade, or remove ost-images-debian12-engine-installed-squashed)',
    );
    rmSync(dir, { recursive: true });
    rmSync(rpmRoot, { recursive: true });
  });

  it('reports a broken chain and a chain the qemu user cannot read, all at once', async () => {
    const dir = await imagesDir();
    rmSync(path.join(dir, 'debian12-base.qcow2'));
    await create(path.join(dir, 'debian12-host-installed.qcow2'), '1G');
    const qemu = { name: 'libvirt-qemu', uid: 64055, gid: 64055, groups: [64055] };
    const err = await resolveImages([vm('engine-installed'), { ...vm('host-installed'), name: 'host-0' }], {
      imagesDir: dir,
      qemu,
    }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    const msg = (err as Error).message;
    expect(msg).toMatch(/image debian12-engine-installed: the backing chain of .* does not resolve/);
    expect(msg).toMatch(
      /image debian12-host-installed: qemu \(user libvirt-qemu\) cannot read the chain: directory .* is not searchable/,
    );
    rmSync(dir, { recursive: true });
  });

  it('refuses a truncated layer at once (qemu-img check), instead of a guest that never boots', async () => {
    const dir = await imagesDir();
    // a base with data in it, cut short as a failed copy or a full disk would leave it
    const raw = path.join(dir, 'data.raw');
    writeFileSync(raw, Buffer.alloc(8 * 2 ** 20, 0x5a));
    rmSync(path.join(dir, 'debian12-base.qcow2'));
    await run('qemu-img', [
      'convert',
      '-f',
      'raw',
      '-O',
      'qcow2',
      raw,
      path.join(dir, 'debian12-base.qcow2'),
    ]);
    await resolveImages([vm('engine-installed')], { imagesDir: dir, qemu: root });
    truncateSync(path.join(dir, 'debian12-base.qcow2'), 2 * 2 ** 20);
    const err = await resolveImages([vm('engine-installed')], { imagesDir: dir, qemu: root }).catch(
      (e: unknown) => e as Error,
    );
    expect((err as Error).message).toMatch(
      new RegExp(
        `image debian12-engine-installed: ${path.join(dir, 'debian12-base.qcow2')} is damaged \\(qemu-img check: [1-9][0-9]* corruptions, 0 check errors; truncated or overwritten\\?\\)\\n  fix: reinstall it`,
      ),
    );
    rmSync(dir, { recursive: true });
  });

  it('names the dnf install that fixes missing packages', async () => {
    const rpmRoot = mkdtempSync(path.join(tmpdir(), 'ost-rpmroot-'));
    const err = await resolveImages([vm('engine-installed'), { ...vm('he-installed'), name: 'he' }], {
      root: rpmRoot,
      qemu: root,
    }).catch((e: unknown) => e as Error);
    const msg = (err as Error).message;
    expect(msg).toContain(
      'not installed: ost-images-debian12-engine-installed, ost-images-debian12-he-installed\n',
    );
    // an empty root holds no database: where it looked, then the fix
    expect(msg).toContain(`can read in `);
    expect(msg).toContain(`${rpmRoot}/usr/lib/sysimage/rpm, ${rpmRoot}/var/lib/rpm`);
    expect(msg).toContain(`${rpmRoot}/root/.rpmdb`);
    expect(msg).toContain(
      `\n  fix: dnf --installroot=${rpmRoot} install ost-images-debian12-engine-installed ost-images-debian12-he-installed`,
    );
    rmSync(rpmRoot, { recursive: true });
  });
});
