// The guestfish command loop's pieces without an appliance: argv, quoting (read back by the real guestfish),
// the wrapped guest command (run by the real /bin/sh), fstab parsing of real EL and Debian fstabs, and the
// DNS swap a networked build does (on a scratch tree).
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  chainCommands,
  commandLine,
  fstabDevice,
  parseFstab,
  parseWrappedOutput,
  resolvConfCommands,
  sessionArgv,
  sessionEnv,
  wrapGuestCommand,
} from '../../src/tools/guestfish-session.js';

const dir = mkdtempSync(path.join(tmpdir(), 'ost-gfs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('guestfish session', () => {
  it('starts one command loop on the writable layer, with the network only when asked', () => {
    const spec = { disk: '/c/layer.qcow2', memoryMiB: 1024, network: false };
    expect(sessionArgv(spec)).toEqual(['guestfish', '--format=qcow2', '-a', '/c/layer.qcow2']);
    // guestfish's -m mounts a filesystem: the memory goes through the environment
    expect(sessionEnv(spec)).toEqual({ LIBGUESTFS_MEMSIZE: '1024' });
    expect(sessionArgv({ disk: 'l.qcow2', memoryMiB: 768, network: true }).at(-1)).toBe('--network');
  });

  it('sends a multi-line, quoted shell command as one guestfish line that guestfish reads back whole', () => {
    const script = 'printf %s \'Types: deb\nURIs: file:/x\n\' > "/etc/a b"\n\ttab \\ back $HOME';
    const line = commandLine(['echo', script]);
    expect(line.split('\n')).toHaveLength(1);
    expect(line.startsWith('echo "')).toBe(true);
    // guestfish's own parser, no appliance needed for echo
    const out = execFileSync('guestfish', [], { input: `${line}\n`, encoding: 'utf8' });
    expect(out).toBe(`${script}\n`);
    expect(commandLine(['-mount-ro', '/dev/sda1', '/'])).toBe('-mount-ro /dev/sda1 /');
  });

  it('wraps a guest command so the session survives its failure and reads its status and output (stderr too)', () => {
    const mark = '@@ost-rc-abc';
    const run = (cmd: string) =>
      parseWrappedOutput(
        execFileSync('/bin/sh', ['-c', wrapGuestCommand(cmd, mark)], { encoding: 'utf8' }).split('\n'),
        mark,
      );
    expect(run('echo one && echo two >&2 && false')).toEqual({ code: 1, output: ['one', 'two'] });
    expect(run('exit 3')).toEqual({ code: 3, output: [] });
    expect(run('echo fine')).toEqual({ code: 0, output: ['fine'] });
    expect(run('echo $PATH').output[0]).toContain('/usr/sbin');
    expect(parseWrappedOutput(['no', 'status'], mark).code).toBeUndefined();
    // steps chained into one guest sh: the first failure stops the rest and is the status, even mid-&&-list
    expect(run(chainCommands(['echo a && false && echo not-me', 'echo nor-me']))).toEqual({
      code: 1,
      output: ['a'],
    });
    expect(run(chainCommands(['echo a # comment', 'x=1 && echo "b$x"']))).toEqual({
      code: 0,
      output: ['a', 'b1'],
    });
  });

  it("reads what a guest's /etc/fstab mounts from its disks, parents first", () => {
    // an EL9 kickstart install (LVM root, /boot, /boot/efi, swap) with a few hand edits
    const el9 = [
      '#',
      '# /etc/fstab',
      '# Created by anaconda on Tue Mar  5 10:11:12 2024',
      '/dev/mapper/rl-root     /                       xfs     defaults        0 0',
      'UUID=0b1c8a4e-5f2d-4c0e-9a7b-1d2e3f4a5b6c /boot/efi vfat umask=0077,shortname=winnt 0 2',
      'UUID=7e9a1d3c-2b4f-4e6a-8c0d-9f1e2a3b4c5d /boot                   xfs     defaults        0 0',
      '/dev/mapper/rl-swap     none                    swap    defaults        0 0',
      'tmpfs /tmp tmpfs defaults 0 0',
      'LABEL="data" /var/data ext4 defaults,nofail 0 2',
      '/dev/vdb1 /srv/backup ext4 noauto 0 0',
      'server:/export /mnt/nfs nfs defaults 0 0',
      '/srv/a /srv/b none bind 0 0',
    ].join('\n');
    expect(parseFstab(el9)).toEqual([
      { spec: 'UUID=7e9a1d3c-2b4f-4e6a-8c0d-9f1e2a3b4c5d', mountpoint: '/boot', type: 'xfs', nofail: false },
      {
        spec: 'UUID=0b1c8a4e-5f2d-4c0e-9a7b-1d2e3f4a5b6c',
        mountpoint: '/boot/efi',
        type: 'vfat',
        nofail: false,
      },
      { spec: 'LABEL="data"', mountpoint: '/var/data', type: 'ext4', nofail: true },
    ]);
    // ost's debootstrap base: the root alone
    expect(parseFstab('LABEL=ost-root\t/\text4\terrors=remount-ro\t0\t1\n')).toEqual([]);
    expect(fstabDevice('UUID=7e9a')).toEqual(['uuid', '7e9a']);
    expect(fstabDevice('LABEL="data"')).toEqual(['label', 'data']);
    expect(fstabDevice('/dev/disk/by-uuid/7e9a')).toEqual(['uuid', '7e9a']);
    expect(fstabDevice('/dev/vda2')).toEqual(['device', '/dev/sda2']);
    expect(fstabDevice('/dev/xvdb1')).toEqual(['device', '/dev/sdb1']);
    expect(fstabDevice('/dev/mapper/rl-home')).toEqual(['device', '/dev/mapper/rl-home']);
    expect(fstabDevice('PARTUUID=1234-01')).toBeUndefined();
    expect(fstabDevice('/dev/disk/by-partuuid/1234-01')).toBeUndefined();
  });

  it('points DNS at the appliance while a networked build runs and puts the guest’s own back, symlink and all', () => {
    const root = path.join(dir, 'guest');
    mkdirSync(path.join(root, 'etc'), { recursive: true });
    symlinkSync('../run/systemd/resolve/stub-resolv.conf', path.join(root, 'etc/resolv.conf'));
    const inRoot = (cmd: string) => cmd.replaceAll('/etc/', `${root}/etc/`);
    const { before, after } = resolvConfCommands();
    execFileSync('/bin/sh', ['-c', inRoot(before)]);
    expect(readFileSync(path.join(root, 'etc/resolv.conf'), 'utf8')).toBe('nameserver 169.254.2.3\n');
    execFileSync('/bin/sh', ['-c', inRoot(after)]);
    expect(lstatSync(path.join(root, 'etc/resolv.conf')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(path.join(root, 'etc/resolv.conf'))).toBe('../run/systemd/resolve/stub-resolv.conf');
    // a guest without one gets none back
    rmSync(path.join(root, 'etc/resolv.conf'));
    execFileSync('/bin/sh', ['-c', inRoot(before)]);
    execFileSync('/bin/sh', ['-c', inRoot(after)]);
    expect(existsSync(path.join(root, 'etc/resolv.conf'))).toBe(false);
  });
});
