// Disk files of checkpoints: freezing a VM's writable top into the checkpoint (backed by nothing but the
// image it started from, never by another checkpoint), and the files of an env's old chains that nothing
// uses once its VMs run on new ones.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { InternalError } from '../../core/errors.js';
import { run } from '../../core/exec.js';
import { convertToRawArgv, info, rebaseArgv } from '../../tools/qemu-img.js';
import { runArgv } from '../../tools/run-tool.js';

/**
 * Copy a frozen disk top into the checkpoint as `to`. A qcow2 top comes out backed by `base` (the image the
 * VM first started from): copied as it is when that is its backing already, else (a VM restored from
 * another checkpoint) rebased onto it, so no checkpoint needs another. A raw top is copied sparse; a raw
 * disk that ran on an overlay is flattened back to raw. Returns the format written.
 */
export async function freezeDisk(
  top: string,
  to: string,
  base: string | undefined,
): Promise<{ format: 'qcow2' | 'raw'; backing?: string }> {
  // -U: the running VM holds the chain open (read-only now: it writes its new top)
  const chain = await info(top, {}, true);
  const head = chain[0];
  if (!head) throw new InternalError(`qemu-img info of ${top} returned nothing`);
  if (head.format === 'raw' || !base) {
    if (head.format === 'raw') await run('cp', ['--sparse=always', '--', top, to]);
    else await runArgv(convertToRawArgv(top, to));
    return { format: 'raw' };
  }
  await run('cp', ['--sparse=always', '--', top, to]);
  const backing = head.fullBackingFilename ?? head.backingFilename;
  if (backing !== base) await runArgv(rebaseArgv(to, base));
  return { format: 'qcow2', backing: base };
}

/** The files of a disk's chain that lie in one of `dirs` (an env's own overlays), top first. */
export async function ownChainFiles(top: string, dirs: readonly string[]): Promise<string[]> {
  const chain = await info(top, {}, true).catch(() => []);
  const inside = (f: string) => dirs.some((d) => path.dirname(path.resolve(f)) === path.resolve(d));
  const files = chain.map((c) => c.filename).filter(inside);
  return files.length > 0 ? files : inside(top) ? [top] : [];
}

/** Remove files, missing ones counted as removed. */
export async function removeFiles(files: readonly string[]): Promise<void> {
  await Promise.all(files.map((f) => fs.rm(f, { force: true })));
}
