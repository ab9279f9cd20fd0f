// `ost down` and `ost gc` take the env lock as checkpoint and revert do (issue 28): a down during a paused
// revert waits for it (and refuses, naming it, when it does not end in time); a gc takes down a leftover
// only if, under the lock, it is one still — not the new `ost up --from` that reused its id. The lock is
// held by a real process (util-linux flock, as a paused `ost revert` holds it); libvirt is not needed.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { collectingReporter } from '../../src/core/events.js';
import type { LockInfo } from '../../src/core/lock.js';
import { processStart } from '../../src/core/process.js';
import type { FoundEnv } from '../../src/launcher/env-dir/discover.js';
import { envLockFile } from '../../src/launcher/env-lock.js';
import {
  downLocked,
  type LockedTeardown,
  reapLeftover,
  type TeardownResult,
} from '../../src/launcher/teardown.js';
import { tempTree } from '../helpers/sets.js';

const ID = '0a1b2c3d';
const holders: ChildProcess[] = [];

/** Another process holds env ID's lock, as `ost revert … ` paused at revert:stopped does. */
async function holdEnvLock(state: string, purpose: string): Promise<ChildProcess> {
  const file = envLockFile(state, ID);
  mkdirSync(`${state}/locks`, { recursive: true, mode: 0o700 });
  const info: LockInfo = { pid: 1, start: '', host: 'here', since: '2026-12-08T00:00:00.000Z', purpose };
  writeFileSync(file, JSON.stringify(info), { mode: 0o600 });
  const h = spawn('flock', ['-x', file, 'sleep', '60'], { stdio: 'ignore', detached: true });
  holders.push(h);
  // held once a non-blocking flock of our own is refused
  for (let i = 0; i < 200 && spawnSync('flock', ['-n', file, 'true']).status === 0; i++)
    await new Promise((r) => setTimeout(r, 10));
  return h;
}

const release = (h: ChildProcess) => process.kill(-(h.pid as number), 'SIGKILL');

afterEach(() => {
  for (const h of holders.splice(0)) {
    try {
      release(h);
    } catch {
      // gone already
    }
  }
});

const env = (owner?: { pid: number; start: string }): FoundEnv => ({
  id: ID,
  suite: 's',
  owner,
  domains: new Map(),
  networks: new Map(),
  leases: [],
});
const torn: TeardownResult = { domains: [], networks: [], removed: [], leases: [] };

/** Deps that record when the env was looked up and torn down. */
function deps(state: string, found: () => FoundEnv | undefined) {
  const log: string[] = [];
  const { reporter, events } = collectingReporter();
  const d: LockedTeardown = {
    stateRoot: state,
    find: async () => {
      log.push('find');
      return found();
    },
    tear: async (e) => {
      log.push(`tear ${e.id}`);
      return torn;
    },
    reporter,
  };
  return { d, log, events };
}

describe('ost down under the env lock', () => {
  it('waits while a revert holds the lock, and takes the env down (found again) once it is free', async () => {
    const state = tempTree({});
    const h = await holdEnvLock(state, 'revert to ck1');
    const { d, log, events } = deps(state, () => env());
    const down = downLocked(d, ID, 20_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(log).toEqual([]);
    expect(events).toContainEqual(
      expect.objectContaining({
        type: 'info',
        message: expect.stringMatching(/0a1b2c3d is busy \(revert to ck1, pid 1\): waiting up to 20 s/),
      }),
    );
    release(h);
    const r = await down;
    expect(r?.result).toBe(torn);
    expect(log).toEqual(['find', `tear ${ID}`]);
  });

  it('refuses, naming what holds the env, when the lock is not free in time', async () => {
    const state = tempTree({});
    await holdEnvLock(state, 'revert to ck1');
    const { d, log } = deps(state, () => env());
    await expect(downLocked(d, ID, 300)).rejects.toThrow(
      /environment 0a1b2c3d is still busy after 0 s: revert to ck1, pid 1 since 2026-12-08/,
    );
    expect(log).toEqual([]);
  });

  it('says there is nothing to remove when the env is gone once the lock is free', async () => {
    const { d, log } = deps(tempTree({}), () => undefined);
    expect(await downLocked(d, ID, 0)).toBeUndefined();
    expect(log).toEqual(['find']);
  });
});

describe('ost gc under the env lock', () => {
  it('skips an env another command holds the lock of', async () => {
    const state = tempTree({});
    await holdEnvLock(state, 'ost up --from ck1');
    const { d, log, events } = deps(state, () => env({ pid: 999_999_999, start: '1' }));
    expect(await reapLeftover(d, ID)).toBeUndefined();
    expect(log).toEqual([]);
    expect(events).toContainEqual(
      expect.objectContaining({
        type: 'warning',
        message: expect.stringMatching(/not removing 0a1b2c3d: .*ost up --from ck1/),
      }),
    );
  });

  it('a stale gc: the id now names a new env (its ost up alive): not torn down; a leftover still is', async () => {
    const state = tempTree({});
    const me = { pid: process.pid, start: processStart(process.pid) ?? '' };
    const fresh = deps(state, () => env(me));
    expect(await reapLeftover(fresh.d, ID)).toBeUndefined();
    expect(fresh.log).toEqual(['find']);
    const stale = deps(state, () => env({ pid: 999_999_999, start: '1' }));
    expect(await reapLeftover(stale.d, ID)).toBe(torn);
    expect(stale.log).toEqual(['find', `tear ${ID}`]);
  });
});
