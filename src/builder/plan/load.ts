// Load an image-set file: YAML → zod schema → normalise (a layer's repos: layer-repos.ts; host paths kept
// inside the set's folder: confine.ts) → cross-field rules (the layer graph's: layer-graph.ts), every problem
// reported at once.
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { formatKeyPath, type KeyPath, readYamlConfig } from '../../core/config-file.js';
import { InternalError } from '../../core/errors.js';
import { type HostPaths, hostPaths, type Writers } from './confine.js';
import { checkChains, checkCycles, checkNames, checkParents, topoSort } from './layer-graph.js';
import { normaliseRepos } from './layer-repos.js';
import { type BaseSource, type ImageSet, type Layer, parseDuration, parseSize, type Step } from './model.js';
import { imageSetSchema, type RawImageSet, type RawLayer } from './schema.js';

export { formatKeyPath };

/** Placeholders an answer file may use besides the set's variables. */
export const BUILTIN_PLACEHOLDERS = ['ssh_public_key', 'distro', 'hostname'] as const;

/** `{{ name }}` placeholders in a template. */
export function placeholdersIn(text: string): string[] {
  return [...text.matchAll(/\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g)].map((m) => m[1] as string);
}

/** How a set file is read. */
export interface LoadOptions {
  /** Let the file name host paths outside its own folder (--allow-outside: its author is trusted). */
  allowOutside?: boolean;
  /** Run as root: who may own and write the files the set reads (confine.ts); undefined: not checked. */
  writers?: Writers;
}

/**
 * Load and validate an image-set file. Throws ConfigError listing every problem. `vars`: what `${VAR}` in
 * its install media paths expands to (the CLI passes the environment's variables; none: every default).
 */
export function loadImageSet(file: string, vars: NodeJS.ProcessEnv = {}, opts: LoadOptions = {}): ImageSet {
  const cfg = readYamlConfig(file, 'pass the path of an image-set file such as images/debian12.yaml');
  const abs = cfg.file;
  const add = cfg.add;
  const raw = cfg.data;
  const parsed = imageSetSchema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const p = issue.path.filter((k): k is string | number => typeof k !== 'symbol');
      add(p, describeIssue(issue.message, issue.code, raw, p));
    }
    cfg.throwIfProblems();
    throw new InternalError('the image set failed its schema, yet no problem was recorded');
  }
  const set = normalise(
    parsed.data,
    abs,
    hostPaths(abs, opts.allowOutside === true, add, opts.writers),
    add,
    vars,
  );
  cfg.throwIfProblems();
  return set;
}

function describeIssue(message: string, code: string, raw: unknown, p: KeyPath): string {
  if (code === 'invalid_type' && valueAt(raw, p) === undefined) return `missing; ${message.toLowerCase()}`;
  return message;
}

function valueAt(raw: unknown, p: KeyPath): unknown {
  let cur: unknown = raw;
  for (const k of p) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[k];
  }
  return cur;
}

const isUrl = (s: string) => /^https?:\/\//.test(s);

/** An install medium: a URL as it is, a path resolved and checked (confine.ts). */
const mediaSource = (paths: HostPaths, p: KeyPath, s: string, what: string) =>
  isUrl(s) ? s : paths.media(p, s, what);

/**
 * `${VAR}` and `${VAR:-default}` in install media paths, so a host can point at its own ISO
 * without editing the set (e.g. location: ${OST_EL9STREAM_ISO:-/var/lib/ost-images/iso/...}).
 */
export function expandEnv(text: string, env: NodeJS.ProcessEnv): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_, name: string, def?: string) => {
    const v = env[name];
    return v !== undefined && v !== '' ? v : (def ?? '');
  });
}

/** The set's problems, every one collected, and its normalised form: paths resolved, layers in build order. */
function normalise(
  raw: RawImageSet,
  file: string,
  paths: HostPaths,
  add: (p: KeyPath, m: string) => void,
  vars: NodeJS.ProcessEnv,
): ImageSet {
  const dir = path.dirname(file);
  const mustBeFile = fileChecker(paths, add);
  const firstIndex = checkNames(raw, add);
  checkParents(raw, firstIndex, add);
  checkCycles(raw, firstIndex, add);

  const layers: Layer[] = raw.layers.map((l, i) => normaliseLayer(raw, l, i, paths, mustBeFile, add, vars));

  // repositories: one name per chain; refresh: upstream needs some repository to watch
  checkChains(raw, layers, add);
  checkPlaceholders(raw, paths, add);

  return {
    file,
    dir,
    distro: raw.distro,
    description: raw.description,
    family: raw.family,
    selinux: raw.selinux,
    variables: raw.variables,
    customizeMemoryMiB: raw.customize.memory,
    allowOutside: paths.confinement.allowOutside,
    writers: paths.confinement.writers,
    layers: topoSort(layers),
  };
}

/** A check that a path of the set file names a readable regular file in its folder; a problem at `p` otherwise. */
function fileChecker(
  paths: HostPaths,
  add: (p: KeyPath, m: string) => void,
): (p: KeyPath, rel: string, what: string) => void {
  return (p: KeyPath, rel: string, what: string) => {
    const { abs, ok } = paths.inside(p, rel, what);
    if (!ok) return;
    try {
      if (!statSync(abs).isFile()) {
        add(p, `${what} ${rel} is not a regular file (resolved to ${abs})`);
        return;
      }
      accessSync(abs, constants.R_OK);
    } catch {
      add(p, `${what} ${rel} does not exist (resolved to ${abs}, relative to the image-set file)`);
    }
  };
}

/** Answer files use only placeholders ost fills or the set's variables define. */
function checkPlaceholders(raw: RawImageSet, paths: HostPaths, add: (p: KeyPath, m: string) => void): void {
  raw.layers.forEach((l, i) => {
    if (!l.install) return;
    const abs = paths.resolve(l.install.answerFile);
    if (!paths.allowed(abs)) return; // reported by mustBeFile, and not read
    let text: string;
    try {
      text = readFileSync(abs, 'utf8');
    } catch {
      return; // reported by mustBeFile
    }
    const known = new Set<string>([...BUILTIN_PLACEHOLDERS, ...Object.keys(raw.variables)]);
    const unknown = [...new Set(placeholdersIn(text).filter((p) => !known.has(p)))];
    if (unknown.length > 0) {
      add(
        ['layers', i, 'install', 'answerFile'],
        `${l.install.answerFile} uses unknown placeholder(s) ${unknown.map((u) => `{{ ${u} }}`).join(', ')}; ` +
          `define them under variables: or use one of ${BUILTIN_PLACEHOLDERS.join(', ')}`,
      );
    }
  });
}

/** One layer normalised: its base's build method or its steps, its repositories; its problems collected. */
function normaliseLayer(
  set: RawImageSet,
  l: RawLayer,
  i: number,
  paths: HostPaths,
  mustBeFile: (p: KeyPath, rel: string, what: string) => void,
  add: (p: KeyPath, m: string) => void,
  vars: NodeJS.ProcessEnv,
): Layer {
  checkLayerKind(l, i, add);
  const base = baseSource(set, l, i, paths, mustBeFile, add, vars);
  const steps = normaliseSteps(l, i, paths, mustBeFile, add);
  const repos = normaliseRepos(set, l, i, paths, add);
  // the default refresh is decided once the chain is known (loadImageSet)
  const refresh = l.refresh ?? 'never';
  return {
    name: l.name,
    index: i,
    description: l.description,
    parent: l.parent,
    base,
    steps,
    network: l.network,
    repos,
    refresh,
  };
}

/** A base layer has exactly one build method and no steps; a derived one has steps and no build method. */
function checkLayerKind(l: RawLayer, i: number, add: (p: KeyPath, m: string) => void): void {
  const methods = (['debootstrap', 'import', 'install'] as const).filter((m) => l[m] !== undefined);
  if (l.parent === undefined) {
    if (methods.length !== 1) {
      add(
        ['layers', i],
        methods.length === 0
          ? `base layer "${l.name}" (no parent) needs exactly one of debootstrap:, import:, install:`
          : `base layer "${l.name}" has ${methods.join(' and ')}; keep exactly one of debootstrap:, import:, install:`,
      );
    }
    if (l.steps !== undefined) {
      add(
        ['layers', i, 'steps'],
        `base layer "${l.name}" cannot have steps; put them in a derived layer with parent: ${l.name}`,
      );
    }
  } else {
    for (const m of methods) {
      add(
        ['layers', i, m],
        `derived layer "${l.name}" (parent ${l.parent}) cannot use ${m}:; only base layers can`,
      );
    }
    if (!l.steps || l.steps.length === 0) {
      add(
        ['layers', i, 'steps'],
        `derived layer "${l.name}" needs at least one step (install, script, run or upload)`,
      );
    }
  }
}

/** The base's build method (the first given of debootstrap:, import:, install:), paths resolved. */
function baseSource(
  set: RawImageSet,
  l: RawLayer,
  i: number,
  paths: HostPaths,
  mustBeFile: (p: KeyPath, rel: string, what: string) => void,
  add: (p: KeyPath, m: string) => void,
  vars: NodeJS.ProcessEnv,
): BaseSource | undefined {
  if (l.debootstrap) {
    const d = l.debootstrap;
    const base: BaseSource = {
      kind: 'debootstrap',
      suite: d.suite,
      mirror: d.mirror,
      variant: d.variant,
      components: d.components ?? ['main'],
      packages: d.packages,
      kernel: d.kernel,
      docs: d.docs,
      diskSize: parseSize(d.diskSize),
      hostname: d.hostname ?? set.distro.replace(/\./g, '-'),
    };
    if (set.family !== 'deb')
      add(['family'], `debootstrap base layers need family: deb (found ${set.family})`);
    return base;
  }
  if (l.import) {
    const src = expandEnv(l.import.source, vars);
    return {
      kind: 'import',
      source: isUrl(src) ? src : paths.inside(['layers', i, 'import', 'source'], src, 'image').abs,
      isUrl: isUrl(src),
      sha256: l.import.sha256,
    };
  }
  if (l.install) return installBase(l.install, i, paths, mustBeFile, add, vars);
  return undefined;
}

/** An install base: its answer file, and its media (location:, or kernel: + initrd:) with `${VAR}` expanded. */
function installBase(
  s: NonNullable<RawLayer['install']>,
  i: number,
  paths: HostPaths,
  mustBeFile: (p: KeyPath, rel: string, what: string) => void,
  add: (p: KeyPath, m: string) => void,
  vars: NodeJS.ProcessEnv,
): BaseSource {
  mustBeFile(['layers', i, 'install', 'answerFile'], s.answerFile, 'answer file');
  const hasKernel = s.kernel !== undefined || s.initrd !== undefined;
  if (hasKernel && (s.kernel === undefined || s.initrd === undefined)) {
    add(['layers', i, 'install'], 'kernel: and initrd: go together; set both or neither');
  }
  if (s.location === undefined && !hasKernel) {
    add(
      ['layers', i, 'install', 'location'],
      'missing; set location: (ISO, install tree or URL) or kernel: + initrd:',
    );
  }
  const loc = s.location === undefined ? undefined : expandEnv(s.location, vars);
  const p: KeyPath = ['layers', i, 'install'];
  const kind =
    s.answerKind ??
    (/preseed|\.seed$|\.cfg\.in$/.test(s.answerFile) && !/\.ks/.test(s.answerFile) ? 'preseed' : 'kickstart');
  return {
    kind: 'install',
    location: loc === undefined ? undefined : mediaSource(paths, [...p, 'location'], loc, 'install media'),
    kernel:
      s.kernel === undefined
        ? undefined
        : mediaSource(paths, [...p, 'kernel'], expandEnv(s.kernel, vars), 'kernel'),
    initrd:
      s.initrd === undefined
        ? undefined
        : mediaSource(paths, [...p, 'initrd'], expandEnv(s.initrd, vars), 'initrd'),
    answerFile: paths.resolve(s.answerFile),
    answerKind: kind,
    osVariant: s.osVariant,
    memoryMiB: s.memory,
    vcpus: s.vcpus,
    diskSize: parseSize(s.diskSize),
    timeoutMs: parseDuration(s.timeout),
    extraArgs: s.extraArgs,
    network: s.network,
  };
}

/** A derived layer's steps, each doing one thing; files they name must exist and are resolved. */
function normaliseSteps(
  l: RawLayer,
  i: number,
  paths: HostPaths,
  mustBeFile: (p: KeyPath, rel: string, what: string) => void,
  add: (p: KeyPath, m: string) => void,
): Step[] {
  const steps: Step[] = [];
  (l.steps ?? []).forEach((s, j) => {
    const p: KeyPath = ['layers', i, 'steps', j];
    const actions = (['install', 'dependenciesOf', 'upgrade', 'script', 'run', 'upload'] as const).filter(
      (k) => s[k] !== undefined,
    );
    if (actions.length !== 1) {
      add(
        p,
        actions.length === 0
          ? 'empty step; a step is one of install: [packages], dependenciesOf: [packages], upgrade: true, script: FILE, run: COMMAND, upload: {from, to}'
          : `a step does one thing, found ${actions.join(' and ')}; split it into ${actions.length} steps`,
      );
      return;
    }
    if (s.install) steps.push({ kind: 'install', packages: s.install });
    else if (s.dependenciesOf) steps.push({ kind: 'dependencies', packages: s.dependenciesOf });
    else if (s.upgrade) steps.push({ kind: 'upgrade' });
    else if (s.script !== undefined) {
      mustBeFile([...p, 'script'], s.script, 'script');
      steps.push({ kind: 'script', file: paths.resolve(s.script) });
    } else if (s.run !== undefined) steps.push({ kind: 'run', command: s.run });
    else if (s.upload) {
      mustBeFile([...p, 'upload', 'from'], s.upload.from, 'upload source');
      steps.push({
        kind: 'upload',
        from: paths.resolve(s.upload.from),
        to: s.upload.to,
        mode: s.upload.mode,
      });
    }
  });
  return steps;
}
