// The SSH keys of a checkpoint: the private keys the env it was taken of logged in with (its guests, frozen
// in the checkpoint, authorize them and no other), kept with it in `keys/` (0700, each key 0600 and its
// `.pub`, the store owner's). An env restored from the checkpoint, and an env reverted to it, log in with them.
import { constants as fsConstants } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { OstError } from '../../core/errors.js';
import { atomicWriteFile } from '../../core/fsutil.js';
import { runArgv } from '../../tools/run-tool.js';
import { publicKeyArgv } from '../../tools/ssh-keygen.js';
import type { EnvRecord, VmRecord } from '../env-dir/record.js';
import type { StoredCheckpoint } from './store.js';

/** The env's keys into a checkpoint draft dir; VM name → file name in the checkpoint dir (`keys/<key>`). */
export async function saveKeys(vms: readonly VmRecord[], dir: string): Promise<Record<string, string>> {
  const keysDir = path.join(dir, 'keys');
  await fs.mkdir(keysDir, { mode: 0o700 });
  await fs.chmod(keysDir, 0o700);
  const out: Record<string, string> = {};
  const saved = new Set<string>();
  for (const vm of vms) {
    const name = path.join('keys', path.basename(vm.key));
    if (!saved.has(name)) {
      await atomicWriteFile(path.join(dir, name), await fs.readFile(vm.key), 0o600);
      const pub = await fs.readFile(`${vm.key}.pub`).catch(() => undefined);
      if (pub) await atomicWriteFile(path.join(dir, `${name}.pub`), pub, 0o644);
      saved.add(name);
    }
    out[vm.name] = name;
  }
  return out;
}

/**
 * Why an env cannot be reverted to checkpoint `ck` in place as far as keys go: the checkpoint keeps none
 * (taken before per-env keys: its guests authorize their images' shipped key) and the env logs in with a
 * key of its own. Undefined when it can.
 */
export function keyMismatch(r: EnvRecord, ck: StoredCheckpoint): string | undefined {
  if (ck.record.sshKeys) return undefined;
  const own = r.vms.find((vm) => !/_id_rsa$/.test(vm.key));
  return own
    ? `it keeps no SSH key (taken before each env had its own), and ${own.name} logs in with ${own.key}`
    : undefined;
}

/** A key file a checkpoint names: `keys/<name>` in its own dir, nothing else. */
export function checkpointKeyFile(
  ck: Pick<StoredCheckpoint, 'name' | 'dir'>,
  vm: string,
  rel: unknown,
): string {
  if (typeof rel !== 'string' || !/^keys\/[A-Za-z0-9][A-Za-z0-9._-]*$/.test(rel))
    throw new OstError(
      `checkpoint ${ck.name} names no usable SSH key for ${vm} (${JSON.stringify(rel)})`,
      `ost rm-checkpoint ${ck.name} and take it again`,
    );
  return path.join(ck.dir, rel);
}

/**
 * A checkpoint's private key, read only when it is what ost saved: a regular file (not followed if a link),
 * ours, writable by nobody else.
 */
export async function readCheckpointKey(file: string): Promise<Buffer> {
  const fh = await fs.open(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW).catch((err: unknown) => {
    throw new OstError(`cannot read the checkpoint's SSH key ${file}: ${(err as Error).message}`);
  });
  try {
    const st = await fh.stat();
    const me = process.geteuid?.() ?? 0;
    if (!st.isFile() || st.uid !== me || (st.mode & 0o022) !== 0)
      throw new OstError(
        `the checkpoint's SSH key ${file} is not ost's (a regular file of uid ${me}, writable by nobody else)`,
        'remove the checkpoint (ost rm-checkpoint) and take it again',
      );
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}

/** The checkpoint's keys, read and staged beside the env's before anything of the env changes. */
export interface StagedKeys {
  /** Put them in place of the env's keys (a rename each, and their public halves). */
  install(): Promise<void>;
  /** Drop what was staged (the revert stopped before the VMs did). */
  discard(): Promise<void>;
}

/**
 * `ost revert`: each VM's key file in the env dir is to get the checkpoint's key, so the env logs in as the
 * env the checkpoint was taken of did (the paths `hosts`, env.sh and ssh_config name stay). Everything that
 * can fail — a key missing, not ost's, not a key — fails here, before the VMs are stopped.
 */
export async function stageCheckpointKeys(r: EnvRecord, ck: StoredCheckpoint): Promise<StagedKeys> {
  const keys = ck.record.sshKeys;
  const staged = new Map<string, { tmp: string; pub: string }>();
  const discard = async () => {
    for (const s of staged.values()) await fs.rm(s.tmp, { force: true });
  };
  try {
    for (const vm of keys ? r.vms : []) {
      if (staged.has(vm.key)) continue;
      const bytes = await readCheckpointKey(checkpointKeyFile(ck, vm.name, keys?.[vm.name]));
      const entry = { tmp: `${vm.key}.revert`, pub: '' };
      await atomicWriteFile(entry.tmp, bytes, 0o600);
      staged.set(vm.key, entry);
      // its public half as ssh-keygen derives it from the key itself (which also proves it is one)
      entry.pub = (await runArgv(publicKeyArgv(entry.tmp))).stdout;
    }
  } catch (err) {
    await discard();
    throw err;
  }
  return {
    async install() {
      for (const [key, s] of staged) {
        await fs.rename(s.tmp, key);
        await atomicWriteFile(`${key}.pub`, s.pub, 0o644);
      }
    },
    discard,
  };
}
