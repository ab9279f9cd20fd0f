// The checkpoint store: one directory per checkpoint under the checkpoint root, made complete or not at
// all. A checkpoint is written into `.tmp-<name>-<rand>` (with its writer's pid) and renamed to `<name>`
// once every file is in and synced; `checkpoint.json` is written last, so a directory without it, or a
// `.tmp-*` one, is never restored from. `ost gc --checkpoints` removes what a killed writer left.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { OstError, UsageError } from '../../core/errors.js';
import { atomicWriteFile, fsyncDir } from '../../core/fsutil.js';
import { acquireLock } from '../../core/lock.js';
import { type ProcessId, processAlive, self } from '../../core/process.js';
import { ownDir } from '../../core/safe-dir.js';
import type { EnvRecord } from '../env-dir/record.js';

/**
 * Where checkpoints live: `explicit` (--checkpoint-dir), else OST_CHECKPOINT_DIR, else /var/lib/ost/checkpoints
 * for root and `$XDG_DATA_HOME/ost/checkpoints` (~/.local/share) for others. They outlive reboots and envs.
 */
export function checkpointRoot(
  explicit: string | undefined,
  env: NodeJS.ProcessEnv,
  uid = process.getuid?.() ?? 0,
): string {
  const chosen = explicit ?? env.OST_CHECKPOINT_DIR;
  if (chosen) return path.resolve(chosen);
  if (uid === 0) return '/var/lib/ost/checkpoints';
  const data = env.XDG_DATA_HOME || path.join(env.HOME || `/home/${uid}`, '.local/share');
  return path.join(data, 'ost', 'checkpoints');
}

/** A checkpoint name: a letter or digit, then letters, digits, `.`, `_`, `-` (64 at most). */
export const CHECKPOINT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function checkName(name: string): void {
  if (!CHECKPOINT_NAME.test(name))
    throw new UsageError(
      `checkpoint name ${JSON.stringify(name)} is not allowed`,
      'use letters, digits, ".", "_" and "-", starting with a letter or digit (at most 64 characters)',
    );
}

/** One disk of a VM as frozen in the checkpoint. */
export interface CheckpointDisk {
  /** Guest device (vda, sda, …), as in the domain XML. */
  dev: string;
  /** File name in the checkpoint dir: the disk's writable top as it was, its backing chain unchanged. */
  file: string;
  format: 'qcow2' | 'raw';
  /** What the frozen file is backed by (an installed image, a custom layer), absolute; none for raw. */
  backing?: string;
}

export interface CheckpointVm {
  name: string;
  libvirtName: string;
  /** Memory and device state (`virsh restore` format), file name in the checkpoint dir. */
  memory: string;
  /** The domain XML the memory file was saved with (its device addresses must not change on restore). */
  xml: string;
  disks: CheckpointDisk[];
  memoryBytes: number;
  diskBytes: number;
}

/** checkpoint.json: what was frozen, of which env, on which images. */
export interface CheckpointRecord {
  version: 1;
  name: string;
  created: string;
  /** Content key: images' builds + the suite definition + deploy scripts + the name (--checkpoint-cache). */
  key: string;
  /** The env as it was when frozen (names, layout, addresses, images). */
  env: EnvRecord;
  /** The env was deployed (deploy scripts ran, or OST's `deployed` marker was there). */
  deployed: boolean;
  vms: CheckpointVm[];
  /**
   * Each VM's SSH private key as the env logged in with it (its guests authorize that key and no other):
   * VM name → file in the checkpoint dir (`keys/<key>`, 0600, its `.pub` beside it). An env restored from
   * the checkpoint, or reverted to it, logs in with it. Absent in checkpoints older than per-env keys.
   */
  sshKeys?: Record<string, string>;
  /** ms: pause (all VMs frozen) and the whole checkpoint. */
  timings: Record<string, number>;
}

export const RECORD_FILE = 'checkpoint.json';
const OWNER_FILE = '.writer';
const TMP_PREFIX = '.tmp-';
const OLD_PREFIX = '.old-';

export interface StoredCheckpoint {
  name: string;
  dir: string;
  record: CheckpointRecord;
  sizeBytes: number;
}

/** Bytes on disk of a directory's files (not recursive: a checkpoint is flat). */
export async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const f of await fs.readdir(dir).catch(() => [] as string[])) {
    const st = await fs.lstat(path.join(dir, f)).catch(() => undefined);
    if (st?.isFile()) total += st.blocks * 512;
  }
  return total;
}

async function readRecordIn(dir: string): Promise<CheckpointRecord | undefined> {
  try {
    const r = JSON.parse(await fs.readFile(path.join(dir, RECORD_FILE), 'utf8')) as CheckpointRecord;
    return r.version === 1 && Array.isArray(r.vms) ? r : undefined;
  } catch {
    return undefined;
  }
}

/** A complete checkpoint by name, or an error that says what there is. */
export async function readCheckpoint(root: string, name: string): Promise<StoredCheckpoint> {
  checkName(name);
  const dir = path.join(root, name);
  const record = await readRecordIn(dir);
  if (!record) {
    const names = (await listCheckpoints(root)).map((c) => c.name);
    throw new OstError(
      `no checkpoint ${name} in ${root}`,
      names.length > 0
        ? `checkpoints there: ${names.join(', ')} (ost list --checkpoints)`
        : 'take one with ost checkpoint <env> <name>, or point --checkpoint-dir / OST_CHECKPOINT_DIR elsewhere',
    );
  }
  return { name, dir, record, sizeBytes: await dirBytes(dir) };
}

/** Every complete checkpoint, oldest first. */
export async function listCheckpoints(root: string): Promise<StoredCheckpoint[]> {
  const out: StoredCheckpoint[] = [];
  for (const name of await fs.readdir(root).catch(() => [] as string[])) {
    if (!CHECKPOINT_NAME.test(name)) continue;
    const dir = path.join(root, name);
    const record = await readRecordIn(dir);
    if (record) out.push({ name, dir, record, sizeBytes: await dirBytes(dir) });
  }
  return out.sort((a, b) => a.record.created.localeCompare(b.record.created));
}

/** A checkpoint being written: its files go into `dir`, `commit` puts it in place under its name. */
export interface CheckpointDraft {
  dir: string;
  final: string;
  commit(record: CheckpointRecord, replace: boolean): Promise<void>;
  discard(): Promise<void>;
}

/**
 * Start writing checkpoint `name`: the root is made (0711: qemu must reach the frozen disks, nobody lists
 * them), the draft dir (0750, qemu's group: the disks are backing files of restored VMs) named after its
 * writer. Refuses when a checkpoint of that name exists, unless `replace`.
 */
export async function startCheckpoint(
  root: string,
  name: string,
  qemuGid: number,
  replace: boolean,
): Promise<CheckpointDraft> {
  checkName(name);
  await ownDir(root, 0o711, 'the checkpoint directory');
  const final = path.join(root, name);
  const existing = await readRecordIn(final);
  if (existing && !replace)
    throw new OstError(
      `checkpoint ${name} exists (taken ${existing.created} of environment ${existing.env.id}, suite ${existing.env.suite})`,
      `choose another name, remove it (ost rm-checkpoint ${name}), or replace it (--force)`,
    );
  const dir = path.join(root, `${TMP_PREFIX}${name}-${randomBytes(4).toString('hex')}`);
  await fs.mkdir(dir, { mode: 0o750 });
  await fs.chmod(dir, 0o750);
  await fs.chown(dir, process.getuid?.() ?? 0, qemuGid);
  await fs.writeFile(path.join(dir, OWNER_FILE), `${JSON.stringify(self())}\n`, { mode: 0o600 });
  return {
    dir,
    final,
    async commit(record, replaceNow) {
      await fs.rm(path.join(dir, OWNER_FILE), { force: true });
      await atomicWriteFile(path.join(dir, RECORD_FILE), `${JSON.stringify(record, null, 2)}\n`, 0o640);
      await fsyncDir(dir);
      // two writers of one name, or a replace: one at a time under the root's lock
      const lock = await acquireLock(path.join(root, '.lock'), `commit checkpoint ${name}`, 30_000);
      try {
        let old: string | undefined;
        if (await readRecordIn(final)) {
          if (!replaceNow)
            throw new OstError(
              `checkpoint ${name} was taken by someone else meanwhile`,
              `choose another name, or replace it (--force)`,
            );
          old = path.join(root, `${OLD_PREFIX}${name}-${randomBytes(4).toString('hex')}`);
          await fs.rename(final, old);
        } else {
          // an incomplete dir of that name (a crash of an older ost) is not a checkpoint
          await fs.rm(final, { recursive: true, force: true });
        }
        await fs.rename(dir, final);
        await fsyncDir(root);
        if (old) await fs.rm(old, { recursive: true, force: true });
      } finally {
        await lock.release();
      }
    },
    async discard() {
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/** Remove a complete checkpoint (the caller checked no env runs on it). */
export async function removeCheckpoint(root: string, name: string): Promise<void> {
  const c = await readCheckpoint(root, name);
  // out of the name first, so a half-removed checkpoint is never found under it
  const doomed = path.join(root, `${OLD_PREFIX}${name}-${randomBytes(4).toString('hex')}`);
  await fs.rename(c.dir, doomed);
  await fsyncDir(root);
  await fs.rm(doomed, { recursive: true, force: true });
}

async function writerOf(dir: string): Promise<ProcessId | undefined> {
  try {
    return JSON.parse(await fs.readFile(path.join(dir, OWNER_FILE), 'utf8')) as ProcessId;
  } catch {
    return undefined;
  }
}

export interface CheckpointGc {
  /** Drafts of writers that are gone, and removals that were cut short. */
  partial: string[];
  /** Complete checkpoints older than keepDays that no env runs on. */
  expired: string[];
}

/**
 * Clean the store: every draft whose writer is gone (kill -9 during `ost checkpoint`), every `.old-*` left by
 * an interrupted replace or removal, and with `keepDays`, checkpoints created longer ago than that which
 * no env in `inUse` (checkpoint dirs) runs on.
 */
export async function gcCheckpoints(
  root: string,
  o: { keepDays?: number; inUse: ReadonlySet<string>; now?: number },
): Promise<CheckpointGc> {
  const result: CheckpointGc = { partial: [], expired: [] };
  for (const name of await fs.readdir(root).catch(() => [] as string[])) {
    const dir = path.join(root, name);
    if (name.startsWith(OLD_PREFIX)) {
      await fs.rm(dir, { recursive: true, force: true });
      result.partial.push(dir);
    } else if (name.startsWith(TMP_PREFIX)) {
      const writer = await writerOf(dir);
      // a draft being committed has no writer file for a moment: leave young ones alone
      const st = await fs.stat(dir).catch(() => undefined);
      const young = st !== undefined && (o.now ?? Date.now()) - st.mtimeMs < 60_000;
      if (writer ? processAlive(writer) : young) continue;
      await fs.rm(dir, { recursive: true, force: true });
      result.partial.push(dir);
    }
  }
  if (o.keepDays !== undefined) {
    const cutoff = (o.now ?? Date.now()) - o.keepDays * 86_400_000;
    for (const c of await listCheckpoints(root)) {
      if (Date.parse(c.record.created) >= cutoff || o.inUse.has(c.dir)) continue;
      await removeCheckpoint(root, c.name);
      result.expired.push(c.name);
    }
  }
  return result;
}
