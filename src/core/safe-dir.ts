// Directories ost writes into that live in places every user can write (/dev/shm, /var/tmp, /run/user):
// made by us with an explicit mode (never the umask's), or, when they exist, used only if they are ours
// and nobody else can change them. Inside such a directory nobody else can plant a symlink or a file, so
// what ost creates there (overlays, leases, env dirs) is safe to open, chown and hand to qemu.
import * as fs from 'node:fs/promises';
import { OstError } from './errors.js';

/**
 * Make `dir` (its parents as needed) with exactly `mode`, or check the one that is there: a real
 * directory (not a symlink), owned by this user, not writable by group or others. `what` names it in
 * the error, which says how to fix it.
 */
export async function ownDir(dir: string, mode: number, what: string): Promise<void> {
  const uid = process.getuid?.() ?? 0;
  let made = false;
  try {
    await fs.mkdir(dir, { mode });
    made = true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      await fs.mkdir(dir, { recursive: true, mode });
      made = true;
    } else if (code !== 'EEXIST') throw err;
  }
  const st = await fs.lstat(dir);
  const refuse = (why: string) =>
    new OstError(
      `${what} ${dir} ${why}, so another user could change what ost puts there`,
      `remove it (rm -rf ${dir}) and run ost again, which creates it; or choose another directory`,
    );
  if (st.isSymbolicLink()) throw refuse('is a symbolic link');
  if (!st.isDirectory()) throw refuse('is not a directory');
  if (st.uid !== uid) throw refuse(`belongs to uid ${st.uid}, not to you (uid ${uid})`);
  if (made) {
    // mkdir's mode passes through the umask: set it as asked
    await fs.chmod(dir, mode);
  } else if ((st.mode & 0o022) !== 0) {
    throw refuse(
      `is writable by ${st.mode & 0o020 ? 'its group' : 'others'} (mode ${(st.mode & 0o7777).toString(8)})`,
    );
  }
}
