// ost up --custom-repo, ost list --layers, ost gc --layers: custom layers made by the builder
// (builder/custom) and handed to the launcher through its hook, and the local layer cache they live in.
import { homedir } from 'node:os';
import * as path from 'node:path';
import { customBaseOf } from '../../builder/custom/base.js';
import { customLayers } from '../../builder/custom/custom-layer.js';
import { gcLayers, listLayers } from '../../builder/custom/layer-cache.js';
import { detectAccel } from '../../core/accel.js';
import type { OstConfig } from '../../core/config.js';
import type { Reporter } from '../../core/events.js';
import { discoverEnvs } from '../../launcher/env-dir/discover.js';
import { stateRoot } from '../../launcher/env-dir/record.js';
import type { CustomLayersHook } from '../../launcher/up/run.js';
import { libvirtUri } from '../../tools/virsh.js';

/** What the custom-layer flags of ost up say. */
export interface CustomArgs {
  /** --custom-repo: folders or URLs of packages to build into custom layers. */
  customRepos: string[];
  customInstall: string[];
  disableCustomRepos: boolean;
  skipCustomCheck: boolean;
  layerCache?: string;
}

interface Common {
  connect?: string;
  json?: boolean;
}

/** The local layer cache: --layer-cache, $OST_LAYER_CACHE, else /var/cache/ost/layers (root) or ~/.cache. */
export function layerCacheDir(flag: string | undefined, config: OstConfig): string {
  if (flag) return path.resolve(flag);
  if (config.layerCache) return path.resolve(config.layerCache);
  if ((process.getuid?.() ?? 0) === 0) return '/var/cache/ost/layers';
  return path.join(config.cacheHome ?? path.join(homedir(), '.cache'), 'ost', 'layers');
}

/** Memory of the appliance that builds a custom layer (apt/dnf with a few packages). */
const CUSTOM_LAYER_MEMORY_MIB = 1536;

/** ost up --custom-repo: custom layers made by the builder, handed to the launcher through its hook. */
export function customHook(
  a: CustomArgs,
  config: OstConfig,
  reporter: Reporter,
  signal: AbortSignal,
): CustomLayersHook | undefined {
  // --custom-install without --custom-repo is refused with the other flag rules (launcher/up/request.ts)
  if (a.customRepos.length === 0) return undefined;
  return {
    repos: a.customRepos,
    install: a.customInstall,
    prepare: async (images) => {
      const bases = await Promise.all(images.map((img) => customBaseOf(img.ref, img.chain, img.package)));
      const layers = await customLayers(bases, {
        sources: a.customRepos,
        install: a.customInstall,
        enabled: !a.disableCustomRepos,
        skipCheck: a.skipCustomCheck,
        cacheDir: layerCacheDir(a.layerCache, config),
        accel: detectAccel(config.accel),
        memoryMiB: CUSTOM_LAYER_MEMORY_MIB,
        reporter,
        signal,
      });
      return new Map(
        [...layers].map(([ref, l]) => [
          ref,
          l && {
            file: l.file,
            key: l.key,
            built: l.built,
            repos: l.repos.map((r) => ({ name: r.name, source: r.source })),
            packages: l.packages,
          },
        ]),
      );
    },
  };
}

const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;

/** Layer files the env records of this host's state dir name (their overlays sit on them). */
async function layersInUse(uri: string, config: OstConfig): Promise<Set<string>> {
  const used = new Set<string>();
  for (const e of (await discoverEnvs(uri, stateRoot(config))).values()) {
    // written with the record's first version, before any VM exists
    for (const f of e.record?.custom?.layers ?? []) used.add(f);
  }
  return used;
}

export async function listLayersCommand(
  a: Common & { layerCache?: string },
  config: OstConfig,
): Promise<void> {
  const dir = layerCacheDir(a.layerCache, config);
  const layers = await listLayers(dir);
  const used = await layersInUse(libvirtUri(a.connect, config.libvirtUri), config);
  const total = layers.reduce((n, l) => n + l.bytes, 0);
  if (a.json) {
    const doc = layers.map((l) => ({
      dir: l.dir,
      image: l.info?.image,
      key: l.info?.key,
      packages: l.info?.packages,
      repos: l.info?.repos.map((r) => r.source),
      bytes: l.bytes,
      lastUsed: l.lastUsed.toISOString(),
      inUse: used.has(l.file),
    }));
    process.stdout.write(`${JSON.stringify({ cache: dir, bytes: total, layers: doc }, null, 2)}\n`);
    return;
  }
  const rows = layers.map((l) => {
    const pkgs =
      l.info?.packages.map((p) => `${p.name} ${p.version}`).join(', ') ?? '(unreadable layer.json)';
    return `${path.basename(l.dir).slice(0, 12)}  ${(l.info?.image ?? '?').padEnd(28)} ${mib(l.bytes).padStart(10)}  ${l.lastUsed.toISOString().slice(0, 16)}  ${used.has(l.file) ? 'in use' : '      '}  ${pkgs}`;
  });
  process.stdout.write(
    `${[`layer cache ${dir}: ${layers.length} layers, ${mib(total)}`, ...rows].join('\n')}\n`,
  );
}

export async function gcLayersCommand(
  a: Common & { layerCache?: string; keepDays: number },
  config: OstConfig,
): Promise<void> {
  const dir = layerCacheDir(a.layerCache, config);
  const uri = libvirtUri(a.connect, config.libvirtUri);
  const r = await gcLayers(dir, await layersInUse(uri, config), a.keepDays);
  if (a.json) {
    process.stdout.write(
      `${JSON.stringify(
        {
          cache: dir,
          removed: r.removed.map((l) => ({ dir: l.dir, image: l.info?.image, bytes: l.bytes })),
          kept: r.kept.map((k) => ({ dir: k.layer.dir, image: k.layer.info?.image, why: k.why })),
          leftovers: r.leftovers,
        },
        null,
        2,
      )}\n`,
    );
    return;
  }
  const freed = r.removed.reduce((n, l) => n + l.bytes, 0);
  const lines = [
    ...r.removed.map(
      (l) => `removed layer ${path.basename(l.dir).slice(0, 12)} (${l.info?.image ?? '?'}, ${mib(l.bytes)})`,
    ),
    ...r.kept.map(
      (k) =>
        `kept layer ${path.basename(k.layer.dir).slice(0, 12)} (${k.layer.info?.image ?? '?'}): ${k.why}`,
    ),
    ...r.leftovers.map((d) => `removed ${d} (a build that died)`),
    `${r.removed.length} layers removed, ${mib(freed)} freed; ${r.kept.length} kept`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
