// Which SSH key each VM of an up logs in with: a fresh one per env for images that read the SSH key
// credential, the checkpoint's for an env restored from one, --key, else the key an image set ships.
import * as path from 'node:path';
import { InternalError } from '../../core/errors.js';
import { checkpointKeyFile } from '../checkpoint/ssh-keys.js';
import type { StoredCheckpoint } from '../checkpoint/store.js';
import type { Environment, EnvVm } from '../env/model.js';
import { imageKey, type ResolvedImage } from '../images/resolve.js';

/** The env's own key pair, made by its up (ed25519): what the VMs of images that read the SSH key credential get. */
export const ENV_KEY = 'id_ed25519';

/**
 * Where a VM's key comes from: made fresh for the env (its public half handed to the guests as the SSH
 * key credential), or copied: the key of the env a checkpoint was taken of, `--key`, or the key an image
 * set ships, for images that read no credential (ost-images' own).
 */
export type KeySource =
  | { kind: 'fresh' }
  | { kind: 'copy'; file: string; why: 'checkpoint' | 'given' | 'shipped' };

export type VmKey = { name: string; from: KeySource };

/** The shipped key of an image (a VM's image without one reads the credential, so it never gets here). */
function shippedKey(image: ResolvedImage, why: 'given' | 'shipped' = 'shipped'): VmKey {
  if (!image.key) throw new InternalError(`image ${image.ref} ships no key and reads no SSH key credential`);
  return { name: path.basename(image.key), from: { kind: 'copy', file: image.key, why } };
}

/**
 * Each VM's key: the checkpoint's (an env restored from one logs in as the env it was taken of did; a
 * checkpoint older than per-env keys: the images' shipped keys), `--key`, else one fresh key for the env
 * when every image reads the SSH key credential. An image that does not is opened by its set's shipped key
 * only: the env then logs in with that key everywhere (OST's harness knows one key), and says so once.
 */
export function vmKeys(i: {
  env: Environment;
  images: ReadonlyMap<string, ResolvedImage>;
  from?: StoredCheckpoint;
}): {
  keys: Map<string, VmKey>;
  notice?: string;
} {
  const imageOf = (vm: EnvVm) => {
    const image = i.images.get(imageKey(vm));
    if (!image) throw new InternalError(`no resolved image for ${vm.name} (${imageKey(vm)})`);
    return image;
  };
  const keys = new Map<string, VmKey>();
  const from = i.from;
  if (from) {
    for (const vm of i.env.vms) {
      const saved = from.record.sshKeys?.[vm.name];
      // only `keys/<name>` in the checkpoint's own dir (its record is read back, so checked)
      const file = saved === undefined ? undefined : checkpointKeyFile(from, vm.name, saved);
      keys.set(
        vm.name,
        file
          ? { name: path.basename(file), from: { kind: 'copy', file, why: 'checkpoint' } }
          : shippedKey(imageOf(vm)),
      );
    }
    return { keys };
  }
  const given = i.env.vms.map(imageOf).find((img) => img.keyGiven);
  const without = i.env.vms.filter((vm) => !imageOf(vm).sshCredential);
  const first = without[0];
  for (const vm of i.env.vms) {
    const image = imageOf(vm);
    keys.set(
      vm.name,
      given
        ? shippedKey(given, 'given')
        : !first
          ? { name: ENV_KEY, from: { kind: 'fresh' } }
          : shippedKey(image.sshCredential ? imageOf(first) : image),
    );
  }
  if (given || !first) return { keys };
  const refs = [...new Set(without.map((vm) => imageOf(vm).ref))];
  return {
    keys,
    notice: `${refs.join(', ')} read${refs.length === 1 ? 's' : ''} no SSH key credential: this env logs in with the key its image set ships (${imageOf(first).key}), which opens every VM of those images, not a key of its own`,
  };
}
