// Exclusive locks with flock(2): the kernel drops a lock when the last descriptor of its open file goes
// away (exit, kill -9, crash), so there is no stale lock to detect, take over or race for. Node has no
// flock call; util-linux's `flock <fd>` locks a descriptor it inherits from us — the lock belongs to the
// open file, which our descriptor keeps open after `flock` exits, so we hold it until we close it. The
// file itself stays (empty when free); while held it names its holder for the "locked by" message.
// flock(2) needs only a read descriptor: a lock file anyone can read is one anyone can hold (and so stall
// every ost), so lock files are 0600 whatever the umask, and an older 0644 one is made 0600 when opened.
import { constants } from 'node:fs';
import * as fs from 'node:fs/promises';
import { hostname } from 'node:os';
import { OstError } from './errors.js';
import { run } from './exec.js';
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

/** The lock is held by another process (or was not freed within the wait): names the holder when known. */
export class LockBusyError extends OstError {
  constructor(
    readonly file: string,
    readonly holder: LockInfo | undefined,
  ) {
    super(
      holder
        ? `${file} is locked by pid ${holder.pid} on ${holder.host} (${holder.purpose}, since ${holder.since})`
        : `${file} is locked by another process`,
      'wait for that process to finish, or stop it; a lock is freed when its holder exits, however it ends',
    );
  }
}

/** The mode of every lock file: only its owner (root, for root's ost) can open it, so only it can lock. */
export const LOCK_MODE = 0o600;

/** `flock -x [-n | -w secs] 3` with our open file as its fd 3: 0 = locked, 1 = held by another (or timed out). */
async function flockFd(file: string, fd: number, waitMs: number): Promise<number> {
  const wait = waitMs > 0 ? ['-w', String(Math.max(0.001, waitMs / 1000))] : ['-n'];
  const res = await run(requireTool('flock'), ['-x', ...wait, '3'], { inheritFds: [fd], allowFailure: true });
  if (res.exitCode === 0 || res.exitCode === 1) return res.exitCode;
  throw new OstError(
    `cannot lock ${file}: flock exited ${res.exitCode}: ${res.stderr.trim()}`,
    'put the file on a local file system that supports flock(2), or fix what flock says',
  );
}

/** What the holder wrote in the lock file, if it has yet. */
export async function holderOf(file: string): Promise<LockInfo | undefined> {
  try {
    const parsed: unknown = JSON.parse(await fs.readFile(file, 'utf8'));
    if (parsed && typeof parsed === 'object' && 'pid' in parsed) return parsed as LockInfo;
  } catch {
    // free (empty), or its holder has not written its name yet
  }
  return undefined;
}

/**
 * Take an exclusive lock on `file` (created 0600 if needed, an existing one made 0600 through its
 * descriptor; a symlink there is refused), or fail with a LockBusyError naming who holds it. `waitMs`
 * waits that long for the holder first. Every taker gets it in turn.
 */
export async function acquireLock(file: string, purpose: string, waitMs = 0): Promise<Lock> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(file, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, LOCK_MODE);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP')
      throw new OstError(
        `${file} is a symbolic link, not a lock file`,
        `remove it (rm ${file}) and try again`,
      );
    throw err;
  }
  try {
    // open(2)'s mode passes through the umask and does nothing to a file that exists: set it on the fd
    await fh.chmod(LOCK_MODE).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPERM') throw err;
      throw new OstError(
        `${file} belongs to uid ${(await fh.stat()).uid}, not to you: ost cannot make it 0600 (its lock files are only their owner's)`,
        `let its owner run this, or remove it (rm ${file}) so that ost creates its own`,
      );
    });
    if ((await flockFd(file, fh.fd, waitMs)) !== 0) throw new LockBusyError(file, await holderOf(file));
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
