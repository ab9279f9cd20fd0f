// Exclusive lock files that survive crashes: a lock whose owner process is gone is taken over.
import * as fs from 'node:fs/promises';
import { hostname } from 'node:os';
import { OstError } from './errors.js';

export interface LockInfo {
  pid: number;
  host: string;
  since: string;
  purpose: string;
}

/** Whether a process with this pid is alive on this host. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readLock(file: string): Promise<LockInfo | undefined> {
  try {
    const parsed: unknown = JSON.parse(await fs.readFile(file, 'utf8'));
    if (parsed && typeof parsed === 'object' && 'pid' in parsed && typeof parsed.pid === 'number') {
      return parsed as LockInfo;
    }
  } catch {
    // unreadable or half-written: treated as stale
  }
  return undefined;
}

/** A held lock; call release() when done. */
export interface Lock {
  file: string;
  release(): Promise<void>;
}

/**
 * Take an exclusive lock, or fail at once naming who holds it. A lock left by a dead process
 * (kill -9, crash) is taken over. `wait` retries for that many ms before failing.
 */
export async function acquireLock(file: string, purpose: string, waitMs = 0): Promise<Lock> {
  const me: LockInfo = { pid: process.pid, host: hostname(), since: new Date().toISOString(), purpose };
  const deadline = Date.now() + waitMs;
  let delay = 50;
  for (;;) {
    try {
      const fh = await fs.open(file, 'wx', 0o644);
      await fh.writeFile(JSON.stringify(me));
      await fh.close();
      let released = false;
      return {
        file,
        release: async () => {
          if (released) return;
          released = true;
          const cur = await readLock(file);
          if (cur?.pid === process.pid) await fs.rm(file, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = await readLock(file);
    const stale = !holder || (holder.host === me.host && !pidAlive(holder.pid));
    if (stale) {
      // take over: remove only if it is still the same stale file
      const again = await readLock(file);
      if (again?.pid === holder?.pid) await fs.rm(file, { force: true });
      continue;
    }
    if (Date.now() >= deadline) {
      throw new OstError(
        `${file} is locked by pid ${holder.pid} on ${holder.host} (${holder.purpose}, since ${holder.since})`,
        'wait for that process to finish, or stop it; a lock left by a dead process is taken over automatically',
      );
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 1000);
  }
}
