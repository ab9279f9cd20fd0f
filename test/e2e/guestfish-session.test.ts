// The guestfish command loop custom layers are built with, on a disk laid out like an EL install (LVM root
// on xfs, /boot on its own partition, named by UUID in /etc/fstab): no rpm-family image exists here, so this
// is what proves the probing and fstab mounts on that layout. Real qemu-img and guestfish, three appliance
// boots (make the disk, write through a session, read it back through another).
import { randomUUID } from 'node:crypto';
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectAccel, guestfsEnv } from '../../src/core/accel.js';
import { ToolError } from '../../src/core/errors.js';
import { run } from '../../src/core/exec.js';
import {
  commandLine,
  GuestCommandError,
  GuestfishSession,
  mountGuest,
} from '../../src/tools/guestfish-session.js';
import { isRoot } from './helpers.js';

describe.skipIf(!isRoot)('guestfish session on an EL-like disk', () => {
  let dir = '';
  let disk = '';
  const bootUuid = randomUUID();
  let env: Record<string, string> = {};
  beforeAll(async () => {
    dir = mkdtempSync('/var/tmp/ost-gfs-');
    disk = path.join(dir, 'el.qcow2');
    env = guestfsEnv(detectAccel());
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '1G']);
    // a guest userland of one shell: dash and the two libraries it links (the host's)
    const fstab = [
      '/dev/mapper/elvg-root / xfs defaults 0 0',
      `UUID=${bootUuid} /boot ext4 defaults 1 2`,
      'LABEL=not-here /srv/extra ext4 defaults,nofail 0 0',
      '/dev/mapper/elvg-swap none swap defaults 0 0',
      'tmpfs /tmp tmpfs defaults 0 0',
      '',
    ].join('\n');
    const script = [
      ['run'],
      ['part-init', '/dev/sda', 'mbr'],
      ['part-add', '/dev/sda', 'p', '2048', '206847'],
      ['part-add', '/dev/sda', 'p', '206848', '-2048'],
      ['mkfs', 'ext4', '/dev/sda1'],
      ['set-e2uuid', '/dev/sda1', bootUuid],
      ['pvcreate', '/dev/sda2'],
      ['vgcreate', 'elvg', '/dev/sda2'],
      ['lvcreate-free', 'root', 'elvg', '100'],
      ['mkfs', 'xfs', '/dev/elvg/root'],
      ['mount', '/dev/elvg/root', '/'],
      ...['/boot', '/etc', '/var/lib/rpm', '/bin', '/lib/x86_64-linux-gnu', '/lib64'].map((d) => [
        'mkdir-p',
        d,
      ]),
      ['write', '/etc/fstab', fstab],
      ['upload', realpathSync('/bin/dash'), '/bin/sh'],
      ['upload', realpathSync('/lib/x86_64-linux-gnu/libc.so.6'), '/lib/x86_64-linux-gnu/libc.so.6'],
      ['upload', realpathSync('/lib64/ld-linux-x86-64.so.2'), '/lib64/ld-linux-x86-64.so.2'],
      ['chmod', '0755', '/bin/sh'],
      ['chmod', '0755', '/lib64/ld-linux-x86-64.so.2'],
      ['mount', '/dev/sda1', '/boot'],
      ['write', '/boot/marker', 'boot-marker\n'],
      ['umount-all'],
    ];
    const file = path.join(dir, 'make.guestfish');
    writeFileSync(file, `${script.map(commandLine).join('\n')}\n`);
    await run('guestfish', ['--format=qcow2', '-a', disk, '-f', file], { env, timeoutMs: 180_000 });
  }, 240_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('finds the LVM root, mounts /boot by UUID (a missing nofail disk is skipped), runs commands, and writes reach the disk', async () => {
    const log = path.join(dir, 'session.log');
    const s = await GuestfishSession.open({ disk, memoryMiB: 768, network: false }, { env, logFile: log });
    try {
      const m = await mountGuest(s, 'el-like');
      expect(m).toEqual({ root: '/dev/elvg/root', mounts: [{ device: '/dev/sda1', mountpoint: '/boot' }] });
      expect(await s.sh('read l < /boot/marker; echo "$l"; echo written > /boot/new')).toEqual([
        'boot-marker',
      ]);
      // a failing command: its status and output, and the session goes on
      const err = await s.sh('echo partial; echo to-stderr >&2; exit 7').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GuestCommandError);
      expect((err as GuestCommandError).code).toBe(7);
      expect((err as GuestCommandError).output).toEqual(['partial', 'to-stderr']);
      expect(await s.sh('echo still here')).toEqual(['still here']);
      await s.close();
    } finally {
      s.kill();
    }

    const again = await GuestfishSession.open(
      { disk, memoryMiB: 768, network: false },
      { env, logFile: log },
    );
    try {
      await mountGuest(again, 'el-like');
      expect(await again.sh('read l < /boot/new; echo "$l"')).toEqual(['written']);
      // a failed guestfish command ends the session: one error with guestfish's reason, no appliance left
      const err = await again
        .call([['copy-in', path.join(dir, 'no-such-dir'), '/']])
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ToolError);
      expect((err as ToolError).tail.join('\n')).toMatch(/no-such-dir/);
    } finally {
      again.kill();
    }
    const left = await run('pgrep', ['-f', '--', disk], { allowFailure: true });
    expect(left.exitCode).toBe(1); // no process matched (2 would be a usage error)
  }, 240_000);
});
