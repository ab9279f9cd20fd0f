// Exclusive locks with flock(2): the kernel drops a lock when the last descriptor of its open file goes
// away (exit, kill -9, crash), so there is no stale lock to detect, take over or race for. Node has no
// flock call; util-linux's `flock <fd>` locks a descriptor it inherits from us — the lock belongs to the
// open file, which our descriptor keeps open after `flock` exits, so we hold it until we close it. The
// file itself stays (empty when free); while held it names its holder for the "locked by" message.
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import * as fs from 'node:fs/promises';
import { hostname } from 'node:os';
import { OstError } from './errors.js';
import { processStart } from './process.js';
import { requireTool } from './require-tool.js';

export interface LockInfo {
  pid: number;
  /** The holder's start time (/proc/<pid>/stat): a reused pid is told apart. */
  start: string;
  host: string;
  since: string;
  purpose: string;
}

/** A held lock; call release() when done. */
export interface Lock {
  file: string;
  release(): Promise<void>;
}

/** `flock -x [-n | -w secs] <fd>` on our open file: 0 = locked, 1 = held by another (or timed out). */
function flockFd(fd: number, waitMs: number): Promise<number> {
  const wait = waitMs > 0 ? ['-w', String(Math.max(0.001, waitMs / 1000))] : ['-n'];
  return new Promise((resolve, reject) => {
    const child = spawn(requireTool('flock'), ['-x', ...wait, '3'], {
      stdio: ['ignore', 'ignore', 'pipe', fd],
    });
    let err = '';
    child.stderr?.on('data', (d) => {
      err += String(d);
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code === 0 || code === 1) resolve(code);
      else reject(new Error(`flock on fd ${fd} exited ${code}: ${err.trim()}`));
    });
  });
}

async function holderOf(file: string): Promise<LockInfo | undefined> {
  try {
    const parsed: unknown = JSON.parse(await fs.readFile(file, 'utf8'));
    if (parsed && typeof parsed === 'object' && 'pid' in parsed) return parsed as LockInfo;
  } catch {
    // free (empty), or its holder has not written its name yet
  }
  return undefined;
}

/**
 * Take an exclusive lock on `file` (created 0644 if needed; a symlink there is refused), or fail naming
 * who holds it. `waitMs` waits that long for the holder first. Every taker gets it in turn.
 */
export async function acquireLock(file: string, purpose: string, waitMs = 0): Promise<Lock> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(file, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP')
      throw new OstError(
        `${file} is a symbolic link, not a lock file`,
        `remove it (rm ${file}) and try again`,
      );
    throw err;
  }
  try {
    if ((await flockFd(fh.fd, waitMs)) !== 0) {
      const h = await holderOf(file);
      throw new OstError(
        h
          ? `${file} is locked by pid ${h.pid} on ${h.host} (${h.purpose}, since ${h.since})`
          : `${file} is locked by another process`,
        'wait for that process to finish, or stop it; a lock is freed when its holder exits, however it ends',
      );
    }
  } catch (err) {
    await fh.close();
    throw err;
  }
  const me: LockInfo = {
    pid: process.pid,
    start: processStart(process.pid) ?? '',
    host: hostname(),
    since: new Date().toISOString(),
    purpose,
  };
  await fh.truncate(0);
  await fh.write(JSON.stringify(me), 0);
  let released = false;
  return {
    file,
    release: async () => {
      if (released) return;
      released = true;
      // free again: empty, then the descriptor closed (which is what unlocks)
      await fh.truncate(0).catch(() => {});
      await fh.close();
    },
  };
}
