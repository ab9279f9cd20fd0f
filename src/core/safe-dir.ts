// Directories ost writes into that live in places every user can write (/dev/shm, /var/tmp, /run/user):
// made by us with an explicit mode (never the umask's), or, when they exist, used only if they are ours
// and nobody else can change them. Inside such a directory nobody else can plant a symlink or a file, so
// what ost creates there (overlays, leases, env dirs) is safe to open, chown and hand to qemu.
import { constants } from 'node:fs';
import * as fs from 'node:fs/promises';
import { OstError } from './errors.js';

/**
 * Make `dir` (its parents as needed) with exactly `mode`, or check the one that is there: a real
 * directory (not a symlink), owned by this user, not writable by group or others — and then give it
 * `mode`. The mode is set through a descriptor opened with O_NOFOLLOW, never by path and never left to
 * the umask. `what` names it in the error, which says how to fix it.
 */
export async function ownDir(dir: string, mode: number, what: string): Promise<void> {
  const uid = process.getuid?.() ?? 0;
  try {
    await fs.mkdir(dir, { mode });
    // mkdir's mode passes through the umask (never more open than asked): set exactly below
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') await fs.mkdir(dir, { recursive: true, mode });
    else if (code !== 'EEXIST') throw err;
  }
  const refuse = (why: string) =>
    new OstError(
      `${what} ${dir} ${why}, so another user could change what ost puts there`,
      `remove it (rm -rf ${dir}) and run ost again, which creates it; or choose another directory`,
    );
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // O_DIRECTORY|O_NOFOLLOW on a symlink: ENOTDIR (Linux), or ELOOP
    const link = code === 'ELOOP' || (await fs.lstat(dir).catch(() => undefined))?.isSymbolicLink();
    if (link) throw refuse('is a symbolic link');
    if (code === 'ENOTDIR') throw refuse('is not a directory');
    throw err;
  }
  try {
    const st = await fh.stat();
    if (st.uid !== uid) throw refuse(`belongs to uid ${st.uid}, not to you (uid ${uid})`);
    // made above (no more open than `mode`), or an old one nobody else could write
    if ((st.mode & 0o022) !== 0)
      throw refuse(
        `is writable by ${st.mode & 0o020 ? 'its group' : 'others'} (mode ${(st.mode & 0o7777).toString(8)})`,
      );
    if ((st.mode & 0o7777) !== mode) await fh.chmod(mode);
  } finally {
    await fh.close();
  }
}

/**
 * Run `fn` (file writes only, nothing run beside it) as the owner of `dir` when root works in a dir
 * another user owns: a deployment dir handed to the user of sudo. With that user's effective uid and gid
 * the kernel refuses whatever the user could not do, so a dir or a file in it swapped for a link to
 * /etc gets nothing from root. The real uid stays root's: the user can neither signal nor trace ost
 * meanwhile, and root's identity comes back afterwards. Not root, or a dir root owns: `fn` as it is.
 */
export async function asOwnerOf<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  if (process.geteuid?.() !== 0 || !process.seteuid || !process.setegid) return fn();
  const st = await fs.lstat(dir);
  if (st.isSymbolicLink())
    throw new OstError(
      `${dir} is a symbolic link, not the env's directory`,
      'someone replaced it: ost down the env, or remove the link',
    );
  if (st.uid === 0) return fn();
  process.setegid(st.gid);
  try {
    process.seteuid(st.uid);
  } catch (err) {
    process.setegid(0);
    throw err;
  }
  try {
    return await fn();
  } finally {
    process.seteuid(0);
    process.setegid(0);
  }
}
