// Issue 28 (a trust boundary): lock files are 0600 whatever the umask (flock(2) needs only a read
// descriptor, so a lock anyone can read is one anyone can hold and stall every ost with), and the dirs ost
// makes under its state root get explicit modes, whatever the umask. Run as root, like ost on CI hosts.
import { spawnSync } from 'node:child_process';
import { chmodSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { acquireLock } from '../../src/core/lock.js';
import { ownDir } from '../../src/core/safe-dir.js';
import { lockEnv } from '../../src/launcher/env-lock.js';
import { leaseSubnets } from '../../src/launcher/net/leases.js';
import { tempTree } from '../helpers/sets.js';

const isRoot = process.getuid?.() === 0;
const modeOf = (p: string) => statSync(p).mode & 0o7777;

/** A dir everyone may traverse: what keeps `nobody` out of a lock file in it is the file's own mode. */
function openDir(): string {
  const dir = tempTree({});
  chmodSync(dir, 0o755);
  return dir;
}

/** Whether `nobody` can take the lock (`flock -n` opens the file read-only when it cannot write it). */
function nobodyCanLock(file: string): { ok: boolean; stderr: string } {
  const r = spawnSync('runuser', ['-u', 'nobody', '--', 'flock', '-n', file, 'true'], { encoding: 'utf8' });
  return { ok: r.status === 0, stderr: r.stderr };
}

describe('lock files', () => {
  let umask = 0;
  beforeEach(() => {
    umask = process.umask();
  });
  afterEach(() => {
    process.umask(umask);
  });

  it('are created 0600, also under umask 0', async () => {
    for (const mask of [0o022, 0]) {
      process.umask(mask);
      const file = path.join(openDir(), '.lock');
      const l = await acquireLock(file, 'test');
      expect(modeOf(file)).toBe(0o600);
      await l.release();
      expect(modeOf(file)).toBe(0o600);
    }
  });

  it('an existing 0644 (or 0666) lock file becomes 0600 when ost opens it', async () => {
    process.umask(0);
    for (const mode of [0o644, 0o666]) {
      const file = path.join(openDir(), '.lock');
      writeFileSync(file, '');
      chmodSync(file, mode);
      const l = await acquireLock(file, 'test');
      expect(modeOf(file)).toBe(0o600);
      await l.release();
    }
  });

  it.runIf(isRoot)("another user cannot hold ost's lock: runuser -u nobody flock -n fails", async () => {
    process.umask(0);
    const dir = openDir();
    // the control: with a 0644 lock file nobody could take it (and so stall every ost up)
    const old = path.join(dir, 'old.lock');
    writeFileSync(old, '');
    chmodSync(old, 0o644);
    expect(nobodyCanLock(old).ok).toBe(true);
    const l = await acquireLock(old, 'test');
    await l.release();
    const r = nobodyCanLock(old);
    expect(r.ok).toBe(false);
    expect(r.stderr).toMatch(/Permission denied/);
    // and the lock files ost makes: the leases', an env's
    const state = openDir();
    await leaseSubnets(path.join(state, 'leases'), 'e1', { pid: process.pid, start: '' }, [
      { network: 'n', fixed: '192.168.251' },
    ]);
    chmodSync(path.join(state, 'leases'), 0o755); // even were the dir open, the file is not
    expect(nobodyCanLock(path.join(state, 'leases', '.lock')).ok).toBe(false);
    const env = await lockEnv(state, 'e1', 'test');
    await env.release();
    chmodSync(path.join(state, 'locks'), 0o755);
    expect(modeOf(env.file)).toBe(0o600);
    expect(nobodyCanLock(env.file).ok).toBe(false);
  });
});

describe('state dirs under umask 0', () => {
  let umask = 0;
  beforeEach(() => {
    umask = process.umask();
    process.umask(0);
  });
  afterEach(() => {
    process.umask(umask);
  });

  it('ownDir makes a dir with exactly its mode, and sets it on one of ours that has another', async () => {
    const dir = path.join(tempTree({}), 'a', 'b');
    await ownDir(dir, 0o711, 'test dir');
    expect(modeOf(dir)).toBe(0o711);
    expect(modeOf(path.dirname(dir))).toBe(0o711);
    chmodSync(dir, 0o755);
    await ownDir(dir, 0o700, 'test dir');
    expect(modeOf(dir)).toBe(0o700);
  });

  it('leases/ and locks/ are 0700', async () => {
    const state = tempTree({});
    await leaseSubnets(path.join(state, 'leases'), 'e1', { pid: process.pid, start: '' }, [
      { network: 'n', fixed: '192.168.252' },
    ]);
    expect(modeOf(path.join(state, 'leases'))).toBe(0o700);
    const l = await lockEnv(state, 'e1', 'test');
    await l.release();
    expect(modeOf(path.join(state, 'locks'))).toBe(0o700);
  });
});

describe.runIf(isRoot)('a lock file another user owns', () => {
  it('is refused, naming its owner, when ost (as another user) cannot make it 0600', async () => {
    const file = path.join(openDir(), '.lock');
    writeFileSync(file, '');
    chmodSync(file, 0o666);
    process.seteuid?.(65534);
    try {
      await expect(acquireLock(file, 'test')).rejects.toThrow(
        /\.lock belongs to uid 0, not to you: ost cannot make it 0600/,
      );
    } finally {
      process.seteuid?.(0);
    }
    expect(modeOf(file)).toBe(0o666);
  });
});
