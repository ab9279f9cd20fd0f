// The files OST's harness reads from $OST_DEPLOYMENT, in lagofy.sh's exact formats: `hosts` (the Ansible
// inventory pytest copies to ansible_inventory/backend.yml; ost.sh status/shell/copy parse it by field),
// and `env.sh`, which exports what lagofy.sh and ost-images.sh export, so that
// `. lagofy.sh; . deployment/env.sh; ost_run_tests` runs OST's pytest on the env. See
// docs/ost-harness-facts.md §1.0, §1.6, §3.

import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { asUser, copiesFor } from '../../core/as-user.js';
import { OstError } from '../../core/errors.js';
import { shellQuote } from '../../core/exec.js';
import { oneLine, oneLineAll } from '../../core/lines.js';
import type { EnvRecord } from './record.js';

/**
 * `hosts`: one line per VM (sorted VM order), `ost-<suite>-<vm> ansible_host=<mgmt address>
 * ansible_ssh_private_key_file=<key> ansible_ssh_extra_args='-o UserKnownHostsFile=/dev/null'`, and the
 * extra empty line lagofy's `echo -e` leaves at the end.
 */
export function renderHosts(r: EnvRecord): string {
  const lines = r.vms.map((vm, i) => {
    const at = (field: string) => ({ file: 'hosts', field: `vms[${i}].${field}` });
    return `${oneLine(vm.hostname, at('hostname'))} ansible_host=${oneLine(vm.hostsAddress, at('hostsAddress'))} ansible_ssh_private_key_file=${oneLine(vm.key, at('key'))} ansible_ssh_extra_args='-o UserKnownHostsFile=/dev/null'`;
  });
  return `${lines.join('\n')}\n\n`;
}

export interface EnvShInputs {
  /** The OST checkout (ost.json suites). */
  ostRepo?: string;
  /** `qemu:///system` or the URI ost used. */
  uri: string;
  /** OST_IMAGES_DISTRO. */
  distro: string;
  /** OST_IMAGES_* → path, as ost-images.sh exports them (the images this env used, and the SSH key). */
  images: Record<string, string>;
}

/** A shell variable name: what may follow `export ` unquoted. */
const SHELL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `env.sh`: `export NAME='value'` lines, sorted, sourceable by bash and sh; no value may break a line. */
export function renderEnvSh(r: EnvRecord, i: EnvShInputs): string {
  const vars: Record<string, string> = {
    OST_DEPLOYMENT: r.workdir,
    SUITE: r.suite,
    OST_IMAGES_DISTRO: i.distro,
    LIBVIRT_DEFAULT_URI: i.uri,
    ANSIBLE_HOST_KEY_CHECKING: 'False',
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_SSH_CONTROL_PATH_DIR: '/tmp',
    OST_DEPLOYMENT_LOCK: `${r.workdir}/lock`,
    OST_ENV_ID: r.id,
    ...i.images,
  };
  if (i.ostRepo) vars.OST_REPO_ROOT = i.ostRepo;
  // built into the VMs' images by ost up --custom-repo: OST's run needs no --custom-repo of its own
  if (r.custom) vars.OST_CUSTOM_REPOS_APPLIED = r.custom.repos.join(' ');
  // quoted or not, a line break would make env.sh's lines something else than `export NAME='value'`
  const lines = Object.keys(vars)
    .sort()
    .map((k) => {
      if (!SHELL_NAME.test(k))
        throw new OstError(
          `env.sh: ${JSON.stringify(k)} is not a variable name`,
          'name image variables as OST does: OST_IMAGES_<LAYER> (letters, digits and _)',
        );
      return `export ${k}=${shellQuote(oneLine(vars[k] as string, { file: 'env.sh', field: k }))}`;
    });
  oneLineAll({ id: r.id, suite: r.suite }, 'env.sh');
  return [
    `# ost environment ${r.id} (suite ${r.suite}): what lagofy.sh and ost-images.sh export for it.`,
    '# From the OST checkout: . lagofy.sh; . deployment/env.sh; ost_run_tests',
    ...lines,
    '',
  ].join('\n');
}

/**
 * What env.sh exports about the images, as ost-images.sh does: each root_disk_var with the image's path
 * (and `<VAR>_PACKAGE`), OST_IMAGES_DIR, OST_IMAGES_SSH_KEY (the env's private copy) and the distro.
 */
export function imageVars(r: EnvRecord): { distro: string; images: Record<string, string> } {
  const images: Record<string, string> = {};
  for (const vm of r.vms) {
    if (!vm.image.var) continue;
    images[vm.image.var] = vm.image.path;
    if (vm.image.package) images[`${vm.image.var}_PACKAGE`] = vm.image.package.name;
  }
  const first = r.vms[0];
  if (first) {
    images.OST_IMAGES_DIR = path.dirname(first.image.path);
    images.OST_IMAGES_SSH_KEY = first.key;
  }
  return { distro: r.distro ?? '', images };
}

/**
 * Copy each image's package list (`<image>-pkglist.txt` next to its qcow2) to
 * `<checkout>/exported-artifacts/package_lists/`, as ost_init does; a VM on a custom layer adds the
 * layer's list and its diff against the image (`<image>-custom-pkglist.txt`, `-custom-pkglist-diff.txt`).
 * The checkout is its owner's: root reads the lists and a child with the owner's rights writes them
 * (asUser), so links planted in `exported-artifacts` lead root nowhere.
 */
export async function exportPackageLists(r: EnvRecord, checkout: string): Promise<string[]> {
  const owner = await fs.lstat(checkout);
  if (!owner.isDirectory())
    throw new OstError(
      `the OST checkout ${checkout} is not a directory`,
      'give the checkout itself (--ost-repo), not a link to it',
    );
  const dir = path.join(checkout, 'exported-artifacts', 'package_lists');
  const lists = new Map<string, string>();
  for (const vm of r.vms) {
    const list = vm.image.path.replace(/\.qcow2$/, '-pkglist.txt');
    lists.set(path.basename(list), list);
    const layer = vm.image.custom && path.dirname(vm.image.custom.file);
    if (!layer) continue;
    const stem = path.basename(vm.image.path).replace(/\.qcow2$/, '');
    lists.set(`${stem}-custom-pkglist.txt`, path.join(layer, 'pkglist.txt'));
    lists.set(`${stem}-custom-pkglist-diff.txt`, path.join(layer, 'pkglist-diff.txt'));
  }
  const copies = await copiesFor(
    [...lists].map(([name, from]) => ({ from, to: path.join(dir, name), mode: 0o644 })),
  );
  await asUser({ uid: owner.uid, gid: owner.gid }, [
    { op: 'mkdir', path: path.dirname(dir), mode: 0o755 },
    { op: 'mkdir', path: dir, mode: 0o755 },
    ...copies,
  ]);
  return copies.map((c) => c.path);
}
