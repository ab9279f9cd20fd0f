// The normalised environment the launcher works from, whichever file it came from (ost-env.yaml or ost.json).
import { statSync } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';

/**
 * The one rule for every name a suite gives — the suite itself, its VMs, NICs and networks: a hostname
 * label (lowercase letters, digits and dashes, a letter or digit at each end), as OST's own
 * (`basic-suite-master`, `host-0`). They become DNS names (`ost-<suite>-<nic>`), domain names, file names
 * and words of line-based files (ssh_config, hosts, env.sh), so nothing else may pass: no `/`, no space,
 * no line break.
 */
export const NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

/** What `NAME` allows, as a config problem says it. */
export const NAME_RULE = 'expected lowercase letters, digits and dashes (a hostname label)';

/** A name in a suite file (`NAME`). */
export const nameSchema = z.string().regex(NAME, NAME_RULE);

export type Ipv4 = { kind: 'auto' } | { kind: 'none' } | { kind: 'fixed'; cidr: string };

export interface EnvNetwork {
  /** The network's key in the suite file; for ost.json also its role (`ost-network-role`). */
  name: string;
  management: boolean;
  ipv4: Ipv4;
  ipv6: boolean;
  forward: 'nat' | 'isolated';
  /**
   * Names of the NICs on this network in address order: the first gets host index 2 (192.168.N.2), the
   * next 3, … — ost.json's `nics` list as written; for ost-env.yaml the VMs' NICs on it, in VM order.
   */
  nics: string[];
}

/** `<distro>-<layer>` from the installed ost-images RPMs, or an explicit qcow2 path. */
export type ImageRef = { kind: 'package'; distro: string; layer: string } | { kind: 'path'; path: string };

export interface EnvDisk {
  name: string;
  sizeBytes: number;
  size: string;
  format: 'raw' | 'qcow2';
}

export interface EnvVm {
  name: string;
  image: ImageRef;
  /** ost.json's root_disk_var (OST_IMAGES_ENGINE_INSTALLED …): env.sh exports it with the image's path. */
  imageVar?: string;
  memoryMiB: number;
  vcpus: number;
  /** NICs in guest order (eth0 first): name (its DNS name is `ost-<suite>-<name>`) and network. */
  nics: { name: string; network: string }[];
  /** Extra disks in guest order (serials 2, 3, …). */
  disks: EnvDisk[];
  /** Deploy scripts: `file` to read, `name` as the suite file wrote it (recorded in the domain metadata). */
  deployScripts: { file: string; name: string }[];
  squashed: boolean;
}

export interface Environment {
  suite: string;
  /** The file it was read from. */
  file: string;
  /**
   * `ost.json`: an OST suite — its env is the deployment dir OST's harness reads, its deploy scripts are
   * recorded for OST's pytest (run by ost only with --deploy). `ost-env`: ost's own suites.
   */
  kind: 'ost-json' | 'ost-env';
  /** The OST checkout an ost.json suite folder is in (deploy-script paths are relative to it). */
  ostRepo?: string;
  /** OST_IMAGES_DISTRO an ost.json suite was read with. */
  distro?: string;
  networks: EnvNetwork[];
  vms: EnvVm[];
  /**
   * ost-env suites: scripts run on the host once every VM's deploy scripts ran (the suite's bootstrap, as
   * OST's bootstrap tests are), with the env's env.sh sourced, in the env file's folder.
   */
  hostDeployScripts?: { file: string; name: string }[];
}

/** The distro of a suite's images: OST_IMAGES_DISTRO of an ost.json suite, else its first package image's. */
export function suiteDistro(env: Environment): string | undefined {
  return (
    env.distro ?? env.vms.map((vm) => (vm.image.kind === 'package' ? vm.image.distro : '')).find(Boolean)
  );
}

/** At most 98 NICs per network: host indexes 2–99, written as two decimal digits in the MAC (as OST does). */
export const MAX_NICS_PER_NETWORK = 98;

/**
 * Where a deploy script is: relative to `base` (and inside it), or an absolute path given on purpose.
 * Returns the file, or why it cannot be used (it is read as the user who runs ost, root too, and sent to
 * the VMs, so a relative path must not climb out of the suite's folder).
 */
export function resolveDeployScript(base: string, script: string): { file: string; problem?: string } {
  const file = path.resolve(base, script);
  if (!path.isAbsolute(script)) {
    const rel = path.relative(base, file);
    if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`))
      return {
        file,
        problem: `${script} is outside ${base}; give a path inside it, or an absolute path for a file elsewhere`,
      };
  }
  let isFile = false;
  try {
    isFile = statSync(file).isFile();
  } catch {
    // missing
  }
  if (!isFile) return { file, problem: `${script} does not exist (resolved to ${file})` };
  return { file };
}

/** A zod issue as the config readers take it. */
type Issue = { path: readonly PropertyKey[]; message: string; code?: string; issues?: readonly Issue[] };

/**
 * zod's issues with each refused key saying why: zod reports a record key that fails its rule as only
 * "Invalid key in record"; the message then names the key as found and what is allowed (`NAME_RULE`).
 */
export function explainKeys(issues: readonly Issue[]): Issue[] {
  return issues.map((i) => {
    if (i.code !== 'invalid_key' || !i.issues?.length) return i;
    const key = i.path[i.path.length - 1];
    const why = i.issues.map((k) => k.message).join('; ');
    return { ...i, message: `${JSON.stringify(String(key))} is not allowed as a name here: ${why}` };
  });
}
