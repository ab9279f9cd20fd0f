// Atomic writes and careful removal: a failed step never leaves a half-written result behind.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { OstError } from './errors.js';
import { run } from './exec.js';

/** Write a file atomically: write `<file>.tmp-<rand>`, fsync, rename, fsync the directory. */
export async function atomicWriteFile(file: string, data: string | Buffer, mode = 0o644): Promise<void> {
  const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
  const fh = await fs.open(tmp, 'w', mode);
  try {
    await fh.writeFile(data);
    await fh.chmod(mode);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(path.dirname(file));
}

/** fsync a file's data to disk. */
export async function fsyncFile(file: string): Promise<void> {
  const fh = await fs.open(file, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsync a directory so a rename in it is durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } catch {
    // some filesystems refuse fsync on directories; the rename is still atomic
  } finally {
    await fh.close();
  }
}

/** Rename a finished file into place and make the rename durable. */
export async function commitFile(tmp: string, final: string): Promise<void> {
  await fsyncFile(tmp);
  await fs.rename(tmp, final);
  await fsyncDir(path.dirname(final));
}

/** sha256 of a file's bytes, hex. */
export function fileSha256(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file)
      .on('data', (c) => h.update(c))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

/** sha256 of a string, hex. */
export function sha256(text: string | Uint8Array): string {
  return createHash('sha256').update(text).digest('hex');
}

/** JSON with object keys sorted, so equal values always hash equally. */
export function stableStringify(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableStringify(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** True when the path exists. */
export async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

/** Mount points at or below `dir`, deepest first (from /proc/self/mounts). */
export async function mountsUnder(dir: string): Promise<string[]> {
  let text: string;
  try {
    text = await fs.readFile('/proc/self/mounts', 'utf8');
  } catch {
    return [];
  }
  const root = path.resolve(dir);
  const found: string[] = [];
  for (const line of text.split('\n')) {
    const mp = line.split(' ')[1];
    if (!mp) continue;
    const decoded = mp.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
    if (decoded === root || decoded.startsWith(`${root}/`)) found.push(decoded);
  }
  return found.sort((a, b) => b.length - a.length);
}

/**
 * Remove a directory tree that may contain mounts (a debootstrap chroot bind-mounts /dev and /proc):
 * unmount everything below it first, then delete without crossing filesystems.
 */
export async function removeTree(dir: string): Promise<void> {
  if (!(await exists(dir))) return;
  for (const mp of await mountsUnder(dir)) {
    await run('umount', ['--lazy', mp], { allowFailure: true });
  }
  if ((await mountsUnder(dir)).length > 0) {
    throw new OstError(
      `refusing to delete ${dir}: filesystems are still mounted below it`,
      `unmount them (findmnt -R ${dir}; umount …) and try again`,
    );
  }
  await run('rm', ['-rf', '--one-file-system', '--', dir]);
}

/** Hard-link `src` to `dest`, or copy when they are on different filesystems. */
export async function linkOrCopy(src: string, dest: string): Promise<void> {
  try {
    await fs.link(src, dest);
  } catch {
    await fs.copyFile(src, dest);
  }
}

/** A file's length in bytes; 0 when it does not exist (yet). */
export async function fileSize(file: string): Promise<number> {
  return (await fs.stat(file).catch(() => undefined))?.size ?? 0;
}

/** Size on disk (allocated bytes) of a file. */
export async function allocatedBytes(file: string): Promise<number> {
  const st = await fs.stat(file);
  return st.blocks * 512;
}

// terminal escape sequences (colours, cursor moves), as a serial console log has them
const ANSI_ESCAPE = new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[A-Za-z]`, 'g');

/** The last `n` lines of a log (a VM console), escape sequences and CRs stripped; [] when unreadable. */
export async function lastLines(file: string, n: number): Promise<string[]> {
  try {
    const text = await fs.readFile(file, 'utf8');
    return text.replace(ANSI_ESCAPE, '').replace(/\r/g, '').trimEnd().split('\n').slice(-n);
  } catch {
    return [];
  }
}
