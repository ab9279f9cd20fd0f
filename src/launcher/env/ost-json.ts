// OST's own suite topology files (ost.json), read as OST's lagofy.sh reads them, so OST can switch without
// rewriting suites. Shape: {"networks": {ROLE: {"is_management"?, "template"?, "nics": [NIC]}},
//   "vms": {VM: {"template"?, "memory": "MiB", "vcpu_num"?, "deploy-scripts"?: [path from the OST checkout],
//                "nics": {NIC: {"template"?}}, "root_disk_var": "OST_IMAGES_ENGINE_INSTALLED",
//                "disks"?: {DEV: {"size": "101G", ...}}}}}
// As lagofy.sh: lines starting with `#` are comments; VMs, their NICs and disks are taken in sorted key
// order (so eth0 is the first NIC by name); networks keep file order with the management one last.
import * as path from 'node:path';
import { z } from 'zod';
import { type ConfigFile, type KeyPath, readJsonConfig } from '../../core/config-file.js';
import { sizeToBytes } from '../../core/units.js';
import {
  type Environment,
  type EnvNetwork,
  type EnvVm,
  explainKeys,
  type ImageRef,
  MAX_NICS_PER_NETWORK,
  NAME,
  NAME_RULE,
  nameSchema,
  resolveDeployScript,
} from './model.js';

const memory = z.union([
  z.number().int().positive(),
  z.string().regex(/^[1-9][0-9]*$/, 'expected MiB as a number'),
]);

const ostJsonSchema = z.object({
  networks: z.record(
    nameSchema,
    z.object({
      is_management: z.boolean().optional(),
      template: z.string().optional(),
      nics: z.array(nameSchema).default([]),
    }),
  ),
  vms: z.record(
    nameSchema,
    z.object({
      template: z.string().optional(),
      memory,
      vcpu_num: z.number().int().min(1).max(64).optional(),
      'deploy-scripts': z.array(z.string().min(1)).default([]),
      nics: z.record(nameSchema, z.object({ template: z.string().optional() }).passthrough()),
      root_disk_var: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'expected an environment variable name'),
      disks: z
        .record(
          z.string().regex(/^(sd|vd)[a-z]{1,2}$/, 'expected a device name such as sda'),
          z.object({
            size: z.string().regex(/^[1-9][0-9]*[KMGT]?$/),
            template: z.string().optional(),
            comment: z.string().optional(),
          }),
        )
        .default({}),
    }),
  ),
});

/** vCPUs of a VM whose ost.json says none (lagofy's `vcpu_num // 4`). */
export const DEFAULT_VCPUS = 4;

/**
 * What a root_disk_var names: `$VAR` when set to a path (as OST's ost-images.sh exports it), else the
 * installed package of that image as ost-images.sh names it: OST_IMAGES_ENGINE_INSTALLED →
 * <distro>-engine-installed, OST_IMAGES_STORAGE_BASE → storage-base (whatever the distro),
 * OST_IMAGES_NODE → el9node-base on el9stream, else node-base.
 */
export function imageForVar(varName: string, distro: string, env: NodeJS.ProcessEnv): ImageRef {
  const set = env[varName];
  if (set?.startsWith('/')) return { kind: 'path', path: set };
  if (varName === 'OST_IMAGES_STORAGE_BASE') return { kind: 'package', distro: 'storage', layer: 'base' };
  if (varName === 'OST_IMAGES_NODE')
    return { kind: 'package', distro: distro === 'el9stream' ? 'el9node' : 'node', layer: 'base' };
  const layer = varName
    .replace(/^OST_IMAGES_/, '')
    .toLowerCase()
    .replace(/_/g, '-');
  return { kind: 'package', distro, layer };
}

const sortedKeys = (o: Record<string, unknown>) => Object.keys(o).sort();

/**
 * An ost.json's networks in lagofy's order (the management network last: lagofy creates, and so numbers,
 * it last), which network each NIC is on, and the management network's name.
 */
function ostNetworks(j: z.infer<typeof ostJsonSchema>, add: (p: KeyPath, m: string) => void) {
  const networkOfNic = new Map<string, string>();
  for (const [net, n] of Object.entries(j.networks)) {
    n.nics.forEach((nic, i) => {
      const prev = networkOfNic.get(nic);
      if (prev) add(['networks', net, 'nics', i], `NIC ${nic} is already on network ${prev}`);
      networkOfNic.set(nic, net);
    });
    if (n.nics.length > MAX_NICS_PER_NETWORK)
      add(
        ['networks', net, 'nics'],
        `${n.nics.length} NICs; a network takes at most ${MAX_NICS_PER_NETWORK} (addresses .2 to .99)`,
      );
  }
  const mgmtNames = Object.entries(j.networks)
    .filter(([, n]) => n.is_management)
    .map(([k]) => k);
  if (mgmtNames.length !== 1)
    add(['networks'], `exactly one network needs "is_management": true (found ${mgmtNames.length})`);
  const mgmt = mgmtNames[0];
  // lagofy creates (and so numbers) the management network last
  const order = [...Object.keys(j.networks).filter((n) => n !== mgmt), ...(mgmt ? [mgmt] : [])];
  const networks: EnvNetwork[] = order.map((n) => ({
    name: n,
    management: n === mgmt,
    ipv4: { kind: 'auto' },
    ipv6: true,
    forward: 'nat',
    nics: (j.networks[n] as { nics: string[] }).nics,
  }));
  return { networks, networkOfNic, mgmt };
}

/**
 * The suite's name, its folder's: it follows the name rule of VMs (it is in every VM's DNS name and in
 * lines of ssh_config, hosts and env.sh), else a problem naming the file and the fix.
 */
function suiteName(cfg: ConfigFile): string {
  const suite = path.basename(path.dirname(cfg.file));
  if (!NAME.test(suite))
    cfg.problems.push({
      file: cfg.file,
      path: '(suite: the folder that holds ost.json)',
      message: `the suite is named after its folder, and ${JSON.stringify(suite)} is not a name: ${NAME_RULE}, as basic-suite-master; rename the folder`,
    });
  return suite;
}

/**
 * Read an ost.json; the suite is named after its folder, and the folder that holds the suite folder is
 * the OST checkout (deploy-script paths are relative to it). OST_IMAGES_DISTRO picks the distro
 * (default el9stream). The path is kept as given (basic-suite-master/ost.json is a symlink into common/).
 */
export function loadOstJson(file: string, env: NodeJS.ProcessEnv): Environment {
  const cfg = readJsonConfig(file, 'pass the ost.json of an OST suite folder (--env SUITE/ost.json)');
  const abs = cfg.file;
  const add = cfg.add;
  const suite = suiteName(cfg);
  const parsed = ostJsonSchema.safeParse(cfg.data);
  if (!parsed.success) {
    cfg.addIssues(explainKeys(parsed.error.issues));
    cfg.throwIfProblems();
  }
  const j = parsed.data as z.infer<typeof ostJsonSchema>;
  const suiteDir = path.dirname(abs);
  const ostRepo = path.dirname(suiteDir);
  const distro = env.OST_IMAGES_DISTRO || 'el9stream';

  const { networks, networkOfNic, mgmt } = ostNetworks(j, add);

  const vms: EnvVm[] = sortedKeys(j.vms).map((vm) => {
    const v = j.vms[vm] as (typeof j.vms)[string];
    const p: KeyPath = ['vms', vm];
    const nics = sortedKeys(v.nics).map((nic) => {
      const network = networkOfNic.get(nic);
      if (!network)
        add([...p, 'nics', nic], `NIC ${nic} is on no network; list it under networks.<name>.nics`);
      return { name: nic, network: network ?? '' };
    });
    if (mgmt && !nics.some((n) => n.network === mgmt))
      add(
        [...p, 'nics'],
        `no NIC on the management network ${mgmt}; add one (and list it in networks.${mgmt}.nics) so the VM can be reached`,
      );
    const deployScripts = v['deploy-scripts'].map((s, i) => {
      const r = resolveDeployScript(ostRepo, s);
      if (r.problem)
        add(
          [...p, 'deploy-scripts', i],
          `${r.problem}: deploy scripts are relative to the OST checkout, the folder that holds ${path.basename(suiteDir)}/`,
        );
      return { file: r.file, name: s };
    });
    return {
      name: vm,
      image: imageForVar(v.root_disk_var, distro, env),
      imageVar: v.root_disk_var,
      memoryMiB: Number(v.memory),
      vcpus: v.vcpu_num ?? DEFAULT_VCPUS,
      nics,
      disks: sortedKeys(v.disks).map((dev) => {
        const d = v.disks[dev] as { size: string };
        return { name: dev, size: d.size, sizeBytes: sizeToBytes(d.size), format: 'raw' as const };
      }),
      deployScripts,
      // a squashed package of the image is used when installed (ost up --chained says no)
      squashed: true,
    };
  });
  if (vms.length === 0) add(['vms'], 'a suite needs at least one VM');
  cfg.throwIfProblems();
  return { suite, file: abs, kind: 'ost-json', ostRepo, distro, networks, vms };
}
