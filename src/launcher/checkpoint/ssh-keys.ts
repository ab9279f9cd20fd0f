// The SSH keys of a checkpoint: the private keys the env it was taken of logged in with (its guests, frozen
// in the checkpoint, authorize them and no other), kept with it in `keys/` (0700, each key 0600 and its
// `.pub`, the store owner's). An env restored from the checkpoint, and an env reverted to it, log in with them.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { OstError } from '../../core/errors.js';
import { atomicWriteFile } from '../../core/fsutil.js';
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

/**
 * `ost revert`: each VM's key file in the env dir gets the checkpoint's key (and `.pub`), so the env logs in
 * as the env the checkpoint was taken of did; the paths `hosts`, env.sh and ssh_config name stay.
 */
export async function installCheckpointKeys(r: EnvRecord, ck: StoredCheckpoint): Promise<void> {
  const keys = ck.record.sshKeys;
  if (!keys) return;
  for (const vm of r.vms) {
    const file = keys[vm.name];
    if (!file || file.split('/').includes('..'))
      throw new OstError(
        `checkpoint ${ck.name} keeps no SSH key for ${vm.name}`,
        `ost rm-checkpoint ${ck.name} and take it again`,
      );
    await atomicWriteFile(vm.key, await fs.readFile(path.join(ck.dir, file)), 0o600);
    const pub = await fs.readFile(path.join(ck.dir, `${file}.pub`)).catch(() => undefined);
    if (pub) await atomicWriteFile(`${vm.key}.pub`, pub, 0o644);
  }
}
