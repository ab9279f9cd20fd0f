// OST's own suite topology files (ost.json), read as they are so OST can switch without rewriting suites.
// Shape: {"networks": {NET: {"is_management"?, "template"?, "nics": [NIC]}},
//         "vms": {VM: {"template"?, "memory": "MiB", "deploy-scripts"?: [..], "nics": {NIC: {"template"?}},
//                      "root_disk_var": "OST_IMAGES_ENGINE_INSTALLED", "disks"?: {DEV: {"size": "101G", ...}}}}}
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { formatKeyPath } from '../../core/config-file.js';
import { ConfigError, type ConfigProblem } from '../../core/errors.js';
import { sizeToBytes } from '../../core/units.js';
import type { Environment, EnvNetwork, EnvVm, ImageRef } from './model.js';

const memory = z.union([
  z.number().int().positive(),
  z.string().regex(/^[1-9][0-9]*$/, 'expected MiB as a number'),
]);

const ostJsonSchema = z.object({
  networks: z.record(
    z.string(),
    z.object({
      is_management: z.boolean().optional(),
      template: z.string().optional(),
      nics: z.array(z.string()).default([]),
    }),
  ),
  vms: z.record(
    z.string(),
    z.object({
      template: z.string().optional(),
      memory,
      'deploy-scripts': z.array(z.string()).default([]),
      nics: z.record(z.string(), z.object({ template: z.string().optional() }).passthrough()),
      root_disk_var: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'expected an environment variable name'),
      disks: z
        .record(
          z.string(),
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

/**
 * What a root_disk_var names: `$VAR` when set (an image path, as OST exports it), else the installed
 * package of that layer: OST_IMAGES_ENGINE_INSTALLED → <distro>-engine-installed.
 */
export function imageForVar(varName: string, distro: string, env: NodeJS.ProcessEnv): ImageRef {
  const set = env[varName];
  if (set?.startsWith('/')) return { kind: 'path', path: set };
  const layer = varName
    .replace(/^OST_IMAGES_/, '')
    .toLowerCase()
    .replace(/_/g, '-');
  return { kind: 'package', distro, layer };
}

/** Read an ost.json; the suite is named after its directory. OST_IMAGES_DISTRO picks the distro (default el9stream). */
export function loadOstJson(file: string, env: NodeJS.ProcessEnv = process.env): Environment {
  const abs = path.resolve(file);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(abs, 'utf8'));
  } catch (err) {
    throw new ConfigError([
      { file: abs, path: '', message: `cannot read as JSON: ${(err as Error).message}` },
    ]);
  }
  const parsed = ostJsonSchema.safeParse(raw);
  const problems: ConfigProblem[] = [];
  const add = (p: (string | number)[], message: string) =>
    problems.push({
      file: abs,
      path: formatKeyPath(p),
      message,
    });
  if (!parsed.success) {
    for (const i of parsed.error.issues)
      add(
        i.path.filter((k): k is string | number => typeof k !== 'symbol'),
        i.message,
      );
    throw new ConfigError(problems);
  }
  const j = parsed.data;
  const distro = env.OST_IMAGES_DISTRO ?? 'el9stream';
  const networkOfNic = new Map<string, string>();
  for (const [net, n] of Object.entries(j.networks)) {
    n.nics.forEach((nic, i) => {
      const prev = networkOfNic.get(nic);
      if (prev) add(['networks', net, 'nics', i], `NIC ${nic} is already on network ${prev}`);
      networkOfNic.set(nic, net);
    });
  }
  const mgmtNames = Object.entries(j.networks)
    .filter(([, n]) => n.is_management)
    .map(([k]) => k);
  if (mgmtNames.length !== 1)
    add(['networks'], `exactly one network needs "is_management": true (found ${mgmtNames.length})`);
  const networks: EnvNetwork[] = Object.keys(j.networks).map((n) => ({
    name: n,
    management: mgmtNames.includes(n),
    ipv4: { kind: 'auto' },
    ipv6: true,
    forward: mgmtNames.includes(n) ? 'nat' : 'isolated',
  }));
  const vms: EnvVm[] = Object.entries(j.vms).map(([vm, v]) => {
    const nics = Object.keys(v.nics).map((nic) => {
      const network = networkOfNic.get(nic);
      if (!network)
        add(['vms', vm, 'nics', nic], `NIC ${nic} is on no network; list it under networks.<name>.nics`);
      return { name: nic, network: network ?? '' };
    });
    return {
      name: vm,
      image: imageForVar(v.root_disk_var, distro, env),
      memoryMiB: Number(v.memory),
      vcpus: 2,
      nics,
      disks: Object.entries(v.disks).map(([dev, d]) => ({
        name: dev,
        size: d.size,
        sizeBytes: sizeToBytes(d.size),
        format: 'raw' as const,
      })),
      deployScripts: v['deploy-scripts'].map((s) => path.resolve(path.dirname(abs), s)),
      squashed: false,
    };
  });
  if (problems.length > 0) throw new ConfigError(problems);
  return { suite: path.basename(path.dirname(abs)), file: abs, networks, vms };
}
