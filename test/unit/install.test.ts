import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildImages } from '../../src/builder/build.js';
import { renderTemplate } from '../../src/builder/layer-kinds/install.js';
import { expandEnv, loadImageSet } from '../../src/builder/plan/load.js';
import { REPO_ROOT } from '../helpers/sets.js';

describe('answer files and install media', () => {
  it('renders placeholders and refuses unknown ones', () => {
    expect(
      renderTemplate('key "{{ ssh_public_key }}" tz {{tz}}', { ssh_public_key: 'ssh-rsa A', tz: 'UTC' }),
    ).toBe('key "ssh-rsa A" tz UTC');
    expect(() => renderTemplate('{{ nope }}', {})).toThrow(/unknown placeholders: nope/);
  });
  it('expands $VAR and $VAR with a default, in braces', () => {
    const v = (name: string, def?: string) => `\${${name}${def === undefined ? '' : `:-${def}`}}`;
    expect(expandEnv(`${v('A')}/x/${v('B', '/def')}`, { A: '/a' })).toBe('/a/x//def');
    expect(expandEnv(v('B', '/def'), { B: '/set' })).toBe('/set');
  });
  it('boots the netboot kernel with the preseed appended to its initrd (no commas in kernel args)', async () => {
    const set = loadImageSet(path.join(REPO_ROOT, 'test/fixtures/netinst/debian12-netinst.yaml'));
    const res = await buildImages(set, { out: '/nonexistent/ni', dryRun: true, accel: 'tcg', offline: true });
    const vi = res.dryRun?.[0]?.steps.find((s) => s.argv?.[0] === 'virt-install')?.argv ?? [];
    const install = vi[vi.indexOf('--install') + 1] ?? '';
    expect(install).toBe(
      'kernel=/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64/linux,' +
        'initrd=/nonexistent/ni/.work/base/initrd-with-answers.img,' +
        'kernel_args=auto=true priority=critical console=ttyS0,kernel_args_overwrite=yes',
    );
    expect(vi).not.toContain('--location');
    expect(vi[vi.indexOf('--network') + 1]).toBe('user');
  });
  it('installs over the libvirt connection it is given (qemu:///system when none)', async () => {
    const set = loadImageSet(path.join(REPO_ROOT, 'test/fixtures/netinst/debian12-netinst.yaml'));
    const connectOf = async (libvirtUri?: string) => {
      const res = await buildImages(set, {
        out: '/nonexistent/ni',
        dryRun: true,
        accel: 'tcg',
        offline: true,
        libvirtUri,
      });
      const vi = res.dryRun?.[0]?.steps.find((s) => s.argv?.[0] === 'virt-install')?.argv ?? [];
      return vi[vi.indexOf('--connect') + 1];
    };
    expect(await connectOf('qemu+ssh://builder@host/system')).toBe('qemu+ssh://builder@host/system');
    expect(await connectOf()).toBe('qemu:///system');
  });
});
