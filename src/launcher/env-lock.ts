// The env lock: one lock file per env id under <state>/locks, held by whatever changes a running env —
// `ost checkpoint`, `ost revert`, `ost down`, `ost gc` — so none of them runs into another (a down during a
// revert would leave VMs on deleted overlays with their /24s released).
import * as path from 'node:path';
import { OstError } from '../core/errors.js';
import type { Reporter } from '../core/events.js';
import { acquireLock, holderOf, type Lock, LockBusyError } from '../core/lock.js';
import { ownDir } from '../core/safe-dir.js';

/** How long `ost down` waits for a checkpoint or revert of the env to finish before it refuses. */
export const DOWN_LOCK_WAIT_MS = 10 * 60_000;

/** The lock file of env `id`. */
export const envLockFile = (stateRoot: string, id: string) => path.join(stateRoot, 'locks', `${id}.lock`);

/**
 * Take env `id`'s lock (waiting up to `waitMs` for its holder), or fail with a LockBusyError naming the
 * holder. The locks dir is root's alone (0700).
 */
export async function lockEnv(stateRoot: string, id: string, purpose: string, waitMs = 0): Promise<Lock> {
  const file = envLockFile(stateRoot, id);
  await ownDir(path.dirname(file), 0o700, 'the env lock directory');
  return acquireLock(file, purpose, waitMs);
}

/**
 * Take env `id`'s lock, saying first (an info event) that another command holds it and that this one waits
 * for it, up to `waitMs`; after that, a LockBusyError that says what holds it and what to do.
 */
export async function lockEnvWaiting(
  stateRoot: string,
  id: string,
  purpose: string,
  waitMs: number,
  reporter: Reporter,
): Promise<Lock> {
  try {
    return await lockEnv(stateRoot, id, purpose, 0);
  } catch (err) {
    if (!(err instanceof LockBusyError)) throw err;
    const h = err.holder;
    reporter({
      type: 'info',
      message: `environment ${id} is busy${h ? ` (${h.purpose}, pid ${h.pid})` : ''}: waiting up to ${Math.round(waitMs / 1000)} s for it to finish`,
    });
  }
  try {
    return await lockEnv(stateRoot, id, purpose, waitMs);
  } catch (err) {
    if (!(err instanceof LockBusyError)) throw err;
    const h = err.holder ?? (await holderOf(err.file));
    throw new EnvBusyError(id, h ? `${h.purpose}, pid ${h.pid} since ${h.since}` : undefined, waitMs);
  }
}

/** Another ost command still works on the env after the wait. */
export class EnvBusyError extends OstError {
  constructor(id: string, holder: string | undefined, waitMs: number) {
    super(
      `environment ${id} is still busy after ${Math.round(waitMs / 1000)} s${holder ? `: ${holder}` : ''}`,
      'let that command finish (or stop it with Ctrl-C, which undoes what it did), then run this one again',
    );
  }
}
