import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildImages, formatDryRun } from '../../src/builder/build.js';
import { loadImageSet } from '../../src/builder/plan/load.js';
import { REPO_ROOT } from '../helpers/sets.js';

describe('--dry-run on el9stream (the ISO is not here)', async () => {
  const set = loadImageSet(path.join(REPO_ROOT, 'images/el9stream.yaml'));
  const out = '/nonexistent/ost-dry-run-out';
  const result = await buildImages(set, { out, dryRun: true, accel: 'tcg' });
  const byLayer = new Map((result.dryRun ?? []).map((l) => [l.layer, l]));

  it('plans every layer for building, parents first', () => {
    expect(result.dryRun?.map((l) => [l.layer, l.action])).toEqual([
      ['base', 'build'],
      ['engine-installed', 'build'],
      ['host-installed', 'build'],
      ['he-installed', 'build'],
    ]);
    expect(byLayer.get('he-installed')?.reason).toBe('parent host-installed is rebuilt');
  });

  it('shows the exact virt-install command for the kickstart base', () => {
    const steps = byLayer.get('base')?.steps ?? [];
    expect(steps[1]?.argv).toEqual([
      'qemu-img',
      'create',
      '-q',
      '-f',
      'qcow2',
      `${out}/el9stream-base.qcow2.tmp`,
      '12G',
    ]);
    const vi = steps[2]?.argv ?? [];
    expect(vi[0]).toBe('virt-install');
    const opt = (name: string) => vi[vi.indexOf(name) + 1];
    expect(opt('--location')).toBe('/var/lib/ost-images/iso/CentOS-Stream-9-latest-x86_64-dvd1.iso');
    expect(opt('--initrd-inject')).toBe(`${out}/.work/base/ks.cfg`);
    expect(opt('--extra-args')).toBe('inst.ks=file:/ks.cfg inst.text console=ttyS0');
    expect(opt('--os-variant')).toBe('centos-stream9');
    expect(opt('--memory')).toBe('2048');
    expect(opt('--vcpus')).toBe('2');
    expect(opt('--virt-type')).toBe('qemu');
    expect(opt('--disk')).toBe(`path=${out}/el9stream-base.qcow2.tmp,format=qcow2,bus=virtio,cache=unsafe`);
    expect(opt('--serial')).toBe(`file,path=${out}/logs/el9stream-base-console.log`);
    expect(opt('--wait')).toBe('90');
    expect(vi).toEqual(
      expect.arrayContaining(['--noreboot', '--transient', '--noautoconsole', '--graphics', 'none']),
    );
  });

  it('honours OST_EL9STREAM_ISO for the install media', () => {
    process.env.OST_EL9STREAM_ISO = '/srv/iso/stream9.iso';
    try {
      const s = loadImageSet(path.join(REPO_ROOT, 'images/el9stream.yaml'));
      expect(s.layers[0]?.base?.kind === 'install' && s.layers[0].base.location).toBe('/srv/iso/stream9.iso');
    } finally {
      delete process.env.OST_EL9STREAM_ISO;
    }
  });

  it('shows the overlay and virt-customize commands of derived layers', () => {
    const he = byLayer.get('he-installed')?.steps ?? [];
    expect(he[0]?.argv).toEqual([
      'qemu-img',
      'create',
      '-q',
      '-f',
      'qcow2',
      '-F',
      'qcow2',
      '-b',
      'el9stream-host-installed.qcow2',
      `${out}/el9stream-he-installed.qcow2.tmp`,
    ]);
    expect(he[0]?.cwd).toBe(out);
    expect(he[1]?.argv).toEqual([
      'virt-customize',
      '--format',
      'qcow2',
      '-a',
      `${out}/el9stream-he-installed.qcow2.tmp`,
      '-m',
      '2048',
      '--network',
      '--run-command',
      'mkdir -p /var/cache/dnf && mount -t tmpfs -o mode=0755 ost-pkgcache /var/cache/dnf',
      '--install',
      'ovirt-hosted-engine-setup,ovirt-engine-appliance',
      '--run-command',
      'umount /var/cache/dnf',
      '--truncate',
      '/etc/machine-id',
      '--selinux-relabel',
    ]);
    const host = byLayer.get('host-installed')?.steps[1]?.argv ?? [];
    expect(host).toEqual(
      expect.arrayContaining([
        '--run',
        path.join(REPO_ROOT, 'images/el9stream/ovirt-repos.sh'),
        '--run-command',
        'systemctl enable vdsmd',
      ]),
    );
    const engine = byLayer.get('engine-installed')?.steps[1]?.argv ?? [];
    const up = engine.indexOf('--upload');
    expect(engine.slice(up, up + 4)).toEqual([
      '--upload',
      `${path.join(REPO_ROOT, 'images/el9stream/engine-answers.conf')}:/root/engine-answers.conf`,
      '--chmod',
      '0600:/root/engine-answers.conf',
    ]);
  });

  it('renders a readable plan', () => {
    const text = formatDryRun(result);
    expect(text).toContain('base: BUILD (not built yet; the SSH key pair is generated first)');
    expect(text).toContain('$ virt-install --connect qemu:///system');
    expect(text).toContain("--extra-args 'inst.ks=file:/ks.cfg inst.text console=ttyS0'");
  });
});
