// Content keys: a layer's key covers its parent's key, its definition, the bytes of its files, the builder
// and, as its refresh: says, the state of the package repositories it installs from (or the day).
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fileSha256, sha256, stableStringify } from '../../core/fsutil.js';
import type { UpstreamState } from '../upstream.js';
import { BUILDER_VERSION } from '../version.js';
import { type ImageSet, type Layer, layerFiles } from './model.js';

/** Inputs that are not part of the image-set file but change what a layer contains. */
export interface KeyInputs {
  /** The set's SSH public key (baked into base layers); undefined when not generated yet. */
  publicKey?: string;
  /** Layers with refresh: upstream: the state of their repositories (fetched, or as last recorded). */
  upstream?: Map<string, UpstreamState[]>;
  /** Layers with refresh: daily: the day (UTC, YYYY-MM-DD) each is built for; default: today. */
  days?: Map<string, string>;
}

/** Today, UTC, as refresh: daily counts days. */
export function today(): string {
  return new Date().toISOString().slice(0, 10);
}

/** The part of a repository's state that decides a layer's content: which snapshot, not when it was read. */
function upstreamFor(layer: Layer, inputs: KeyInputs): unknown {
  if (layer.refresh === 'daily') return { day: inputs.days?.get(layer.name) ?? today() };
  if (layer.refresh !== 'upstream') return undefined;
  // none: built --offline before any state was recorded; the next online build replaces it
  const states = inputs.upstream?.get(layer.name);
  return states ? states.map((s) => ({ source: s.source, sha256: s.sha256 })) : 'unknown';
}

/** The definition of a layer with absolute paths made relative, so moving the checkout keeps keys. */
function definitionFor(set: ImageSet, layer: Layer): unknown {
  const rel = (p: string) => path.relative(set.dir, p);
  const base = layer.base;
  return {
    name: layer.name,
    parent: layer.parent,
    network: layer.network,
    base:
      base === undefined
        ? undefined
        : base.kind === 'install'
          ? {
              ...base,
              answerFile: rel(base.answerFile),
              location: base.location && !/^https?:/.test(base.location) ? rel(base.location) : base.location,
            }
          : base.kind === 'import'
            ? { kind: 'import', sha256: base.sha256 }
            : base,
    steps: layer.steps.map((s) => {
      switch (s.kind) {
        case 'script':
          return { ...s, file: rel(s.file) };
        case 'upload':
          return { ...s, from: rel(s.from) };
        case 'copy-in':
          // a staged folder of custom packages: its packages' checksums are in the layer's `custom` entry
          return { kind: s.kind, toDir: s.toDir };
        case 'install':
        case 'dependencies':
        case 'upgrade':
        case 'run':
          return s;
        default: {
          const never: never = s;
          return never;
        }
      }
    }),
    // a file:// repository is named by its place relative to the set, as the set's other files
    repos: layer.repos.map((r) =>
      r.url.startsWith('file:') ? { ...r, url: `file:${rel(fileURLToPath(r.url))}` } : r,
    ),
    refresh: layer.refresh,
    // the packages' checksums, not where they were staged or given from
    custom: layer.custom && {
      repos: layer.custom.repos.map((r) => r.packages.map((p) => [p.name, p.version, p.arch, p.sha256])),
      install: layer.custom.install,
      enabled: layer.custom.enabled,
    },
  };
}

/** Compute every layer's key (parents first). Reads the files each layer uses. */
export async function computeKeys(set: ImageSet, inputs: KeyInputs): Promise<Map<string, string>> {
  const keys = new Map<string, string>();
  for (const layer of set.layers) {
    const files: Record<string, string> = {};
    for (const f of layerFiles(layer)) {
      if (layer.base?.kind === 'import') continue; // the declared sha256 stands for the image bytes
      files[path.relative(set.dir, f)] = await fileSha256(f);
    }
    const doc = {
      builder: BUILDER_VERSION,
      distro: set.distro,
      family: set.family,
      selinux: set.selinux,
      parentKey: layer.parent ? keys.get(layer.parent) : undefined,
      definition: definitionFor(set, layer),
      files,
      publicKey: layer.parent === undefined ? (inputs.publicKey ?? '(not generated yet)') : undefined,
      variables: layer.base?.kind === 'install' ? set.variables : undefined,
      upstream: upstreamFor(layer, inputs),
    };
    keys.set(layer.name, sha256(stableStringify(doc)));
  }
  return keys;
}
